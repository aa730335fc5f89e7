"""Latency of an MCP ``tools/call`` through the local stack against the same call through the goal API (issue 15).
Prints one JSON line.

On a fresh ``soorma local up`` (temporary ``SOORMA_HOME``, free ports) with ``examples/hello-tool`` deployed, the
same request (``calculate.add`` of ``[1, 2, 3.5]``) is made ``--calls`` times sequentially per path, after
``--warmup`` unmeasured calls (the first use of each execution environment), alternating the paths call by call so
both see the same load:

* **goal API** (``goal_api``): ``POST /v1/goals`` then ``GET /v1/goals/{id}?wait=25`` until the goal is final;
* **MCP** (``mcp``): ``tools/call`` on ``/v1/mcp`` through the ``mcp`` SDK's ``ClientSession`` (one session for the
  run, opened before the clock starts: a stateless server makes every call its own HTTP request anyway), which
  submits the same goal and answers when it ended.

Per path: ``p50_ms``, ``p95_ms``, ``p99_ms`` (nearest rank), ``mean_ms``, ``calls``; ``mcp_minus_goal_api_p50_ms``
is the difference of the medians. Every answer is checked (``value`` 6.5): a wrong or failed one stops the run.

Run: ``.venv/bin/python bench/mcp_call.py [--calls 50] [--warmup 5]``. Timings on a shared machine are noisy: compare
runs made together (``load_avg`` is printed).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import statistics
import time
from pathlib import Path
from typing import Any

import httpx
import httpx2

from _stack import fresh_stack  # bench/_stack.py (bench/ is on sys.path when run)

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "hello-tool"
TOOL = "calculate.add"
ARGUMENTS = {"numbers": [1, 2, 3.5]}
EXPECTED = 6.5


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank ``q`` percentile (0 < q <= 100) of ``values``."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def summary(times_s: list[float]) -> dict[str, Any]:
    """``{calls, p50_ms, p95_ms, p99_ms, mean_ms}`` of durations in seconds."""
    ms = [t * 1000 for t in times_s]
    return {"calls": len(ms), "p50_ms": round(percentile(ms, 50), 1), "p95_ms": round(percentile(ms, 95), 1),
            "p99_ms": round(percentile(ms, 99), 1), "mean_ms": round(statistics.fmean(ms), 1)}


def goal_api_call(client: httpx.Client) -> float:
    """One call through the goal API; returns its duration in seconds. Raises ``RuntimeError`` on a wrong answer."""
    started = time.perf_counter()
    accepted = client.post("/v1/goals", json={"goal_type": TOOL, "data": ARGUMENTS})
    accepted.raise_for_status()
    goal_id = accepted.json()["goal_id"]
    while True:
        goal = client.get(f"/v1/goals/{goal_id}", params={"wait": 25}).json()
        if goal["status"] not in ("pending", "running"):
            break
    elapsed = time.perf_counter() - started
    if goal["status"] != "completed" or goal["result"]["result"]["value"] != EXPECTED:
        raise RuntimeError(f"goal API: unexpected answer {goal}")
    return elapsed


async def mcp_call(session: Any) -> float:
    """One ``tools/call`` through MCP; returns its duration in seconds. Raises ``RuntimeError`` on a wrong answer."""
    started = time.perf_counter()
    result = await session.call_tool(TOOL, ARGUMENTS)
    elapsed = time.perf_counter() - started
    if result.is_error or result.structured_content["result"]["value"] != EXPECTED:
        raise RuntimeError(f"MCP: unexpected answer {result}")
    return elapsed


async def measure(api_url: str, api_key: str, calls: int, warmup: int) -> dict[str, Any]:
    """Both paths, alternating, ``warmup`` unmeasured calls each first."""
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    headers = {"Authorization": f"Bearer {api_key}"}
    goal_times: list[float] = []
    mcp_times: list[float] = []
    with httpx.Client(base_url=api_url, timeout=60, headers=headers) as client:
        async with (
            httpx2.AsyncClient(headers=headers, timeout=60) as http,
            streamable_http_client(f"{api_url}/v1/mcp", http_client=http) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            for index in range(warmup + calls):
                goal_s = await asyncio.to_thread(goal_api_call, client)
                mcp_s = await mcp_call(session)
                if index >= warmup:
                    goal_times.append(goal_s)
                    mcp_times.append(mcp_s)
            version = session.protocol_version
    goal_api, mcp = summary(goal_times), summary(mcp_times)
    return {"goal_api": goal_api, "mcp": mcp, "mcp_protocol_version": version,
            "mcp_minus_goal_api_p50_ms": round(mcp["p50_ms"] - goal_api["p50_ms"], 1)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=50, help="measured calls per path (default 50)")
    parser.add_argument("--warmup", type=int, default=5, help="unmeasured calls per path first (default 5)")
    args = parser.parse_args(argv)

    with fresh_stack("soorma-bench-mcp-",
                     unset=("SOORMA_API_URL", "SOORMA_API_KEY", "SOORMA_NATS_URL",
                            "SOORMA_PLATFORM_TENANT_ID")) as stack:
        home, soorma = stack.home, stack.soorma
        soorma("local", "deploy", str(EXAMPLE))
        credentials = json.loads((home / "credentials.json").read_text())
        out: dict[str, Any] = {"benchmark": "mcp_call", "example": "hello-tool", "tool": TOOL,
                               **asyncio.run(measure(credentials["api_url"], credentials["api_key"], args.calls,
                                                     args.warmup))}
    out["load_avg"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
