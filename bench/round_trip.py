"""Benchmark of a delegation round trip on the local stack (issue 19). Prints one JSON line.

The flow is ``examples/worker-basic`` (soorma-core's ``worker-basic``): a client asks the order processor
(``order.process.requested``), which delegates two sub-tasks in parallel (inventory, payment) to two other workers,
gathers both results and answers. One round trip is timed from the client's first request to its answer, ``--round-trips``
of them sequentially after ``--warmup`` unmeasured ones (the first use of each execution environment), on a fresh
``soorma local up`` (temporary ``SOORMA_HOME``, free ports), through:

* **the goal API** (``goal_api``): ``POST /v1/goals`` then ``GET /v1/goals/{id}?wait=25`` until the goal is final (the
  gateway's long-poll);
* **the SDK's EventClient** (``event_client``, unless ``--no-event-client``): ``publish`` of the request (through
  ``POST /v1/events/publish``) with a ``response_event``, the answer heard on the gateway's live stream (an event
  subscription, docs/event-client.md), matched by correlation id.

Per path: ``p50_ms``, ``p95_ms``, ``p99_ms`` (nearest rank), ``server_p50_ms`` (goal API only: the goal's
``completed_at - created_at`` as the platform recorded it, so the client's own HTTP time is excluded;
``client_beyond_server_p50_ms``: per goal, the client's time minus that, i.e. the submit's answer, the long-poll
noticing the end and its answer — the part the long-poll decides, and less sensitive to the machine's load;
``events_after_created_p50_ms``: per ``topic/type`` of the goal's recorded events, the p50 of the time from the goal's
creation to the event's own time, i.e. when its handler created it: where the server time goes),
``invocations_per_round_trip`` (REPORT lines in the stack's function logs over the measured round trips, every
function, per round trip; the per-function split is in ``invocations_by_function``) and ``platform_calls_per_round_trip``
(every HTTP request through the local API Gateway, from its access log ``logs/api.log`` (:mod:`soorma.local.apigw`),
minus the client's own requests: the calls the agents made to the platform, whatever function serves them — commits,
spans sent on their own (``POST /v1/tracker/spans``), memory reads; the split by route is in
``platform_calls_by_route``), ``conflict_reruns_per_round_trip`` (handler runs that
lost an optimistic-concurrency race and ran again: the agents' ``ConflictReruns`` metric lines in their logs, written
by :func:`soorma.agents.base.record_conflict_rerun`). ``lost`` and ``duplicated`` check every answer once: a goal must be ``completed`` with its own
order in the result and exactly one recorded ``soorma.goal.result`` event and one task per sub-request; an EventClient
request must get exactly one answer (duplicates are looked for one second after the last answer).

Run: ``.venv/bin/python bench/round_trip.py [--round-trips 100] [--warmup 5] [--no-event-client] [--tracing on|off]``
(``--tracing``: ``SOORMA_TRACING`` for the whole stack, platform functions and agents; default on, as deployed; printed
as ``tracing``). Timings on a shared machine are noisy: compare runs made together (``load_avg`` is printed).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import time
import uuid
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from _stack import fresh_stack  # bench/_stack.py (bench/ is on sys.path when run)

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "worker-basic"
GOAL_TYPE = "order.process.requested"
ANSWER_EVENT = "bench.order.answered"
#: The local API Gateway's access log in the stack's ``logs`` folder (one JSON line per HTTP request).
ACCESS_LOG = "api.log"
ROUTE = "route:"  # key prefix of the access log's requests per route in the counts of :func:`invocations`
SUB_REQUESTS = ("inventory.reserve.requested", "payment.process.requested")
FINAL = ("completed", "failed", "cancelled")
REPORT = re.compile(r"^REPORT RequestId: ", re.MULTILINE)
# soorma.agents.base.record_conflict_rerun's embedded-metric line: one per handler run that lost a race
CONFLICT = re.compile(r'"ConflictReruns":\[1(?:\.0)?\]')


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile ``q`` (0..1) of ``values``."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def invocations(logs: Path) -> Counter[str]:
    """REPORT lines per function log (``<function>.log``) of a local stack's ``logs`` folder, under the key
    :data:`CONFLICTS` the conflict re-runs the agents counted (their ``ConflictReruns`` metric lines), and under
    ``route:<route key>`` the HTTP requests of the access log :data:`ACCESS_LOG`."""
    counts: Counter[str] = Counter()
    access_log = logs / ACCESS_LOG
    if access_log.exists():
        for line in access_log.read_text(errors="replace").splitlines():
            try:
                counts[ROUTE + json.loads(line)["routeKey"]] += 1
            except (ValueError, KeyError):
                continue  # a line being written
    for path in logs.glob("*.log"):
        if path.stem == "stack" or path.name == ACCESS_LOG:
            continue
        text = path.read_text(errors="replace")
        counts[path.stem] = len(REPORT.findall(text))
        counts[CONFLICTS] += len(CONFLICT.findall(text))
    return counts


CONFLICTS = "(conflict re-runs)"


def settled_invocations(logs: Path, quiet_s: float = 1.0, limit_s: float = 30.0) -> Counter[str]:
    """:func:`invocations` once no count changed for ``quiet_s`` (the functions' log files are written as they run,
    so the last invocations of a round trip may land just after its answer)."""
    last, since, started = invocations(logs), time.monotonic(), time.monotonic()
    while time.monotonic() - since < quiet_s and time.monotonic() - started < limit_s:
        time.sleep(0.2)
        now = invocations(logs)
        if now != last:
            last, since = now, time.monotonic()
    return last


def order(index: int, run: str) -> dict[str, Any]:
    return {"order_id": f"{run}-{index}", "items": ["widget", "gadget"], "total": 10 + index}


def summary(latencies_s: list[float], used: Counter[str], client_requests: int) -> dict[str, Any]:
    """Percentiles (ms) and calls per round trip of one path."""
    n = len(latencies_s)
    used = Counter(used)
    conflicts = used.pop(CONFLICTS, 0)
    routes = {name[len(ROUTE):]: used.pop(name) for name in list(used) if name.startswith(ROUTE)}
    platform = sum(routes.values()) - client_requests
    return {
        "round_trips": n,
        "p50_ms": round(statistics.median(latencies_s) * 1000, 1),
        "p95_ms": round(percentile(latencies_s, 0.95) * 1000, 1),
        "p99_ms": round(percentile(latencies_s, 0.99) * 1000, 1),
        "invocations_per_round_trip": round(sum(used.values()) / n, 2),
        "platform_calls_per_round_trip": round(platform / n, 2),
        "client_requests_per_round_trip": round(client_requests / n, 2),
        "conflict_reruns_per_round_trip": round(conflicts / n, 2),
        "invocations_by_function": {name: round(count / n, 2) for name, count in sorted(used.items()) if count},
        # the client's own requests included (POST /v1/goals and the long-polls, or the EventClient's publishes)
        "platform_calls_by_route": {name: round(count / n, 2) for name, count in sorted(routes.items()) if count},
    }


# ------------------------------------------------------------------------------------------------ goal API
def goal_round_trip(client: httpx.Client, data: dict[str, Any]) -> tuple[float, dict[str, Any], int]:
    """One goal submitted and long-polled until final: (seconds, the goal, HTTP requests made)."""
    started = time.monotonic()
    reply = client.post("/v1/goals", json={"goal_type": GOAL_TYPE, "data": data})
    reply.raise_for_status()
    goal_id, requests = reply.json()["goal_id"], 1
    while True:
        goal = client.get(f"/v1/goals/{goal_id}", params={"wait": 25})
        requests += 1
        goal.raise_for_status()
        if goal.json()["status"] in FINAL or time.monotonic() - started > 120:
            return time.monotonic() - started, goal.json(), requests


def goal_problems(client: httpx.Client, goal: dict[str, Any], data: dict[str, Any],
                  steps: dict[str, list[float]] | None = None) -> tuple[bool, bool]:
    """(lost, duplicated) for one goal: lost unless completed with its own order confirmed; duplicated when its
    trace holds more than one goal result or more than one task per sub-request. ``steps``: gets, per event type of
    the goal, the milliseconds from the goal's creation to the event's time (when its handler created it)."""
    result = (goal.get("result") or {}).get("result") or {}
    lost = not (goal["status"] == "completed" and result.get("order_id") == data["order_id"]
                and result.get("status") == "confirmed" and result.get("inventory") and result.get("payment"))
    events = client.get(f"/v1/goals/{goal['goal_id']}/events").json()["events"]
    if steps is not None and goal.get("created_at"):
        created = datetime.fromisoformat(goal["created_at"])
        seen: Counter[str] = Counter()
        for event in events:  # in time order: the n-th event of a type is "<topic>/<type>#n" from the second on
            name = f"{event['topic']}/{event['type']}"
            seen[name] += 1
            steps.setdefault(name + (f"#{seen[name]}" if seen[name] > 1 else ""), []).append(
                (datetime.fromisoformat(event["time"]) - created).total_seconds() * 1000)
    answers = sum(1 for event in events if event["type"] == "soorma.goal.result")
    tasks = Counter(task["event_type"] for task in goal["tasks"])
    duplicated = answers > 1 or any(tasks[name] > 1 for name in SUB_REQUESTS)
    return lost, duplicated


def bench_goal_api(client: httpx.Client, logs: Path, rounds: int, warmup: int) -> dict[str, Any]:
    run = f"g{uuid.uuid4().hex[:6]}"
    for index in range(warmup):
        goal_round_trip(client, order(-1 - index, run))
    before = settled_invocations(logs)
    latencies, goals, requests = [], [], 0
    for index in range(rounds):
        elapsed, goal, made = goal_round_trip(client, order(index, run))
        latencies.append(elapsed)
        goals.append(goal)
        requests += made
    used = settled_invocations(logs) - before
    steps: dict[str, list[float]] = {}
    problems = [goal_problems(client, goal, order(index, run), steps) for index, goal in enumerate(goals)]
    server = {g["goal_id"]: (datetime.fromisoformat(g["completed_at"])
                             - datetime.fromisoformat(g["created_at"])).total_seconds()
              for g in goals if g.get("completed_at")}
    beyond = [elapsed - server[g["goal_id"]] for elapsed, g in zip(latencies, goals) if g["goal_id"] in server]
    return {
        **summary(latencies, used, requests),
        "server_p50_ms": round(statistics.median(server.values()) * 1000, 1) if server else None,
        "client_beyond_server_p50_ms": round(statistics.median(beyond) * 1000, 1) if beyond else None,
        # where the server time goes: per event of the goal, ms from the goal's creation to the event's time (p50)
        "events_after_created_p50_ms": {name: round(statistics.median(times), 1)
                                         for name, times in sorted(steps.items(), key=lambda kv: statistics.median(kv[1]))},
        "lost": sum(lost for lost, _ in problems),
        "duplicated": sum(dup for _, dup in problems),
    }


# ------------------------------------------------------------------------------------------------ EventClient
async def bench_event_client(logs: Path, rounds: int, warmup: int) -> dict[str, Any]:
    """The same flow through :class:`soorma.EventClient` (the stack is found through ``SOORMA_HOME``)."""
    from soorma import EventClient, EventEnvelope, EventTopic

    client = EventClient(agent_id="bench-client", source="bench-client")
    answers: Counter[str] = Counter()
    answered: dict[str, asyncio.Event] = {}
    arrived: dict[str, float] = {}

    @client.on_event(ANSWER_EVENT, topic=EventTopic.ACTION_RESULTS)
    async def on_answer(event: EventEnvelope) -> None:
        cid = str(event.correlation_id)
        answers[cid] += 1
        if cid in answered and not answered[cid].is_set():
            arrived[cid] = time.monotonic()
            answered[cid].set()

    async def round_trip(data: dict[str, Any]) -> tuple[str, float]:
        cid = str(uuid.uuid4())
        answered[cid] = asyncio.Event()
        started = time.monotonic()
        await client.publish(event_type=GOAL_TYPE, topic=EventTopic.ACTION_REQUESTS, data=data, correlation_id=cid,
                             response_event=ANSWER_EVENT, response_topic=EventTopic.ACTION_RESULTS.value)
        try:
            await asyncio.wait_for(answered[cid].wait(), 120)
        except TimeoutError:
            return cid, time.monotonic() - started
        return cid, arrived[cid] - started

    await client.connect(topics=[EventTopic.ACTION_RESULTS])
    try:
        run = f"e{uuid.uuid4().hex[:6]}"
        for index in range(warmup):
            await round_trip(order(-1 - index, run))
        before = await asyncio.to_thread(settled_invocations, logs)
        measured = [await round_trip(order(index, run)) for index in range(rounds)]
        await asyncio.sleep(1.0)  # a duplicate answer would arrive in this time
        used = await asyncio.to_thread(settled_invocations, logs) - before
    finally:
        await client.disconnect()
    cids = [cid for cid, _ in measured]
    return {
        # the client's requests: one publish per round trip (its subscription is one message at connect; the tracker
        # pushes the answers)
        **summary([seconds for _, seconds in measured], used, len(measured)),
        "lost": sum(1 for cid in cids if answers[cid] == 0),
        "duplicated": sum(1 for cid in cids if answers[cid] > 1),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--round-trips", type=int, default=100, help="measured round trips per path (default 100)")
    parser.add_argument("--warmup", type=int, default=5, help="unmeasured round trips first (default 5)")
    parser.add_argument("--no-event-client", action="store_true", help="only the goal API path")
    parser.add_argument("--tracing", choices=("on", "off"), default="on",
                        help="SOORMA_TRACING for the stack's functions and agents (default on, as deployed)")
    args = parser.parse_args(argv)

    with fresh_stack("soorma-bench-", env={"SOORMA_TRACING": args.tracing}) as stack:
        home, soorma = stack.home, stack.soorma
        soorma("local", "deploy", str(EXAMPLE))
        credentials = json.loads((home / "credentials.json").read_text())
        logs = home / "logs"
        with httpx.Client(base_url=credentials["api_url"], timeout=60,
                          headers={"authorization": f"Bearer {credentials['api_key']}"}) as client:
            out: dict[str, Any] = {"benchmark": "round_trip", "example": "worker-basic", "tracing": args.tracing,
                                   "goal_api": bench_goal_api(client, logs, args.round_trips, args.warmup)}
        if not args.no_event_client:
            os.environ["SOORMA_HOME"] = str(home)  # EventClient finds the local stack's API URL and key there
            for name in ("SOORMA_API_URL", "SOORMA_API_KEY", "SOORMA_NATS_URL"):  # rather than another stack's
                os.environ.pop(name, None)
            out["event_client"] = asyncio.run(bench_event_client(logs, args.round_trips, args.warmup))
    out["load_avg"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
