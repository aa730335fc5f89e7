"""Benchmark of the OpenAI-compatible chat API against the goal API on the local stack (issue 15). Prints one JSON
line.

A fresh ``soorma local up`` (temporary ``SOORMA_HOME``, free ports) runs ``examples/research-advisor`` (a planner, a
researcher searching semantic memory, an advisor, a validator: four agents, three delegations per question; no LLM,
so the advisor's answer is its extractive one). The same questions (``questions.json``, in turn) are asked through

* **the chat API** (``chat``): ``client.chat.completions.create(model="research-advisor", ...)`` with the ``openai``
  package's client — one request, answered when the goal has ended;
* **the goal API** (``goal_api``): ``POST /v1/goals`` ``research.goal`` then ``GET /v1/goals/{id}?wait=25`` until
  the goal is final (the gateway's long-poll);

alternately (chat, goal, chat, goal, ...) so both see the same machine load, ``--calls`` measured each after
``--warmup`` unmeasured each. Per path: ``p50_ms``, ``p95_ms``, ``p99_ms`` (nearest rank), ``mean_ms`` and
``failed`` (answers that were not a completed goal). ``chat_minus_goal_p50_ms`` is the chat API's own cost.

Run: ``.venv/bin/python bench/chat.py [--calls 50] [--warmup 3]``. Timings on a shared machine are noisy: compare
runs made together (``load_avg`` is printed).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

import httpx
from openai import OpenAI

from _stack import fresh_stack  # bench/_stack.py (bench/ is on sys.path when run)

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "research-advisor"
MODEL = "research-advisor"
GOAL_TYPE = "research.goal"
FINAL = ("completed", "failed", "cancelled")


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile ``q`` (0..1) of ``values``."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def summary(latencies_s: list[float], failed: int) -> dict[str, Any]:
    """Percentiles and mean (ms) of one path's latencies (seconds), and how many calls failed."""
    return {
        "calls": len(latencies_s),
        "p50_ms": round(statistics.median(latencies_s) * 1000, 1),
        "p95_ms": round(percentile(latencies_s, 0.95) * 1000, 1),
        "p99_ms": round(percentile(latencies_s, 0.99) * 1000, 1),
        "mean_ms": round(statistics.fmean(latencies_s) * 1000, 1),
        "failed": failed,
    }


def chat_call(client: OpenAI, question: str) -> tuple[float, bool]:
    """One chat completion: (seconds, answered with text)."""
    started = time.monotonic()
    answer = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": question}])
    return time.monotonic() - started, bool(answer.choices[0].message.content)


def goal_call(client: httpx.Client, question: str) -> tuple[float, bool]:
    """One goal submitted and long-polled until final: (seconds, completed)."""
    started = time.monotonic()
    reply = client.post("/v1/goals", json={"goal_type": GOAL_TYPE, "data": {"question": question}})
    reply.raise_for_status()
    goal_id = reply.json()["goal_id"]
    while True:
        goal = client.get(f"/v1/goals/{goal_id}", params={"wait": 25})
        goal.raise_for_status()
        if goal.json()["status"] in FINAL or time.monotonic() - started > 120:
            return time.monotonic() - started, goal.json()["status"] == "completed"


def bench(chat: OpenAI, goals: httpx.Client, questions: list[str], calls: int, warmup: int) -> dict[str, Any]:
    """Both paths, alternately, on the same questions."""
    for index in range(warmup):
        chat_call(chat, questions[index % len(questions)])
        goal_call(goals, questions[index % len(questions)])
    timings: dict[str, list[float]] = {"chat": [], "goal_api": []}
    failed = {"chat": 0, "goal_api": 0}
    for index in range(calls):
        question = questions[index % len(questions)]
        for path, (seconds, ok) in (("chat", chat_call(chat, question)), ("goal_api", goal_call(goals, question))):
            timings[path].append(seconds)
            failed[path] += not ok
    out = {path: summary(timings[path], failed[path]) for path in timings}
    out["chat_minus_goal_p50_ms"] = round(out["chat"]["p50_ms"] - out["goal_api"]["p50_ms"], 1)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=50, help="measured calls per path (default 50)")
    parser.add_argument("--warmup", type=int, default=3, help="unmeasured calls per path first (default 3)")
    args = parser.parse_args(argv)

    questions = [q["question"] for q in json.loads((EXAMPLE / "questions.json").read_text())]
    with fresh_stack("soorma-bench-chat-",
                     unset=("SOORMA_API_URL", "SOORMA_API_KEY", "SOORMA_NATS_URL", "SOORMA_LLM_BASE_URL")) as stack:
        home, soorma = stack.home, stack.soorma
        soorma("local", "deploy", str(EXAMPLE))
        credentials = json.loads((home / "credentials.json").read_text())
        chat = OpenAI(base_url=f"{credentials['api_url']}/v1", api_key=credentials["api_key"], timeout=60,
                      max_retries=0)
        with httpx.Client(base_url=credentials["api_url"], timeout=60,
                          headers={"authorization": f"Bearer {credentials['api_key']}"}) as goals:
            out: dict[str, Any] = {"benchmark": "chat", "example": "research-advisor",
                                   **bench(chat, goals, questions, args.calls, args.warmup)}
        chat.close()
    out["load_avg"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
