"""How late durable timers fire on the local stack, and that none is lost or fired twice (issue 14, item 4). Prints
one JSON line.

On a fresh ``soorma local up`` (temporary ``SOORMA_HOME``, free ports; the gateway's rate limits off, so scheduling
1,000 timers is not throttled), ``--timers`` delayed events are scheduled through ``POST /v1/events/publish`` with
``deliver_at`` spread evenly over ``--window`` seconds that begin ``--lead`` seconds after the run starts (time
enough to schedule them all first). A NATS subscriber on their subject, opened before the first is scheduled,
records when each arrives; the run ends ``--grace`` seconds after the last due time.

Printed: ``late_ms`` (arrival minus due time: ``p50``, ``p99``, ``max``, ``min``; nearest rank), ``scheduled``,
``received`` (distinct event ids), ``lost`` (scheduled, never received), ``duplicates`` (received more than once),
``scheduled_late`` (timers whose scheduling request returned after their due time: their lateness is the API's, not
the scheduler's; 0 unless ``--lead`` is too short), and the machine's ``load_avg``.

Run: ``.venv/bin/python bench/timers.py [--timers 1000] [--window 5] [--lead 30] [--grace 10]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from _stack import fresh_stack  # bench/_stack.py (bench/ is on sys.path when run)

ROOT = Path(__file__).resolve().parents[1]
EVENT_TYPE = "bench.timer"
#: Scheduling requests in flight at once.
CONCURRENCY = 16


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank ``q`` percentile (0 < q <= 100) of ``values``."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


async def measure(api_url: str, api_key: str, nats_url: str, platform_tenant: str, count: int, window_s: float,
                  lead_s: float, grace_s: float) -> dict[str, Any]:
    import nats

    arrivals: dict[str, list[float]] = {}
    due_of: dict[str, float] = {}
    nc = await nats.connect(nats_url)

    async def on_message(msg) -> None:
        now = time.time()
        envelope = json.loads(msg.data)
        arrivals.setdefault(envelope["id"], []).append(now)

    await nc.subscribe(f"soorma.{platform_tenant}.business-facts.{EVENT_TYPE}", cb=on_message)
    await nc.flush()
    start = time.time() + lead_s
    step = window_s / max(count - 1, 1)
    scheduled_late = 0
    limit = asyncio.Semaphore(CONCURRENCY)
    async with httpx.AsyncClient(base_url=api_url, timeout=60,
                                 headers={"Authorization": f"Bearer {api_key}"}) as client:

        async def schedule(i: int) -> None:
            nonlocal scheduled_late
            event_id = str(uuid.uuid4())
            due = start + i * step
            body = {"event": {"id": event_id, "type": EVENT_TYPE, "topic": "business-facts", "data": {"i": i}},
                    "deliver_at": datetime.fromtimestamp(due, UTC).isoformat()}
            async with limit:
                reply = await client.post("/v1/events/publish", json=body)
            if reply.status_code != 200:
                raise SystemExit(f"scheduling timer {i} failed: HTTP {reply.status_code} {reply.text}")
            due_of[event_id] = due
            if time.time() > due:
                scheduled_late += 1

        began = time.time()
        await asyncio.gather(*(schedule(i) for i in range(count)))
        scheduling_s = time.time() - began
    await asyncio.sleep(max(0.0, start + window_s + grace_s - time.time()))
    await nc.close()
    late_ms = [(times[0] - due_of[eid]) * 1000 for eid, times in arrivals.items() if eid in due_of]
    return {
        "scheduled": len(due_of),
        "received": len([e for e in arrivals if e in due_of]),
        "lost": len(set(due_of) - set(arrivals)),
        "duplicates": sum(len(times) - 1 for eid, times in arrivals.items() if eid in due_of),
        "scheduled_late": scheduled_late,
        "scheduling_s": round(scheduling_s, 2),
        "late_ms": {
            "p50": round(percentile(late_ms, 50), 1), "p99": round(percentile(late_ms, 99), 1),
            "max": round(max(late_ms), 1), "min": round(min(late_ms), 1),
        } if late_ms else None,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--timers", type=int, default=1000, help="timers to schedule (default 1000)")
    parser.add_argument("--window", type=float, default=5.0, help="seconds their due times spread over (default 5)")
    parser.add_argument("--lead", type=float, default=30.0,
                        help="seconds from the start to the first due time (default 30)")
    parser.add_argument("--grace", type=float, default=10.0,
                        help="seconds to keep listening after the last due time (default 10)")
    args = parser.parse_args(argv)

    with fresh_stack("soorma-bench-timers-", env={"SOORMA_RATE_LIMITS": "off"},
                     unset=("SOORMA_API_URL", "SOORMA_API_KEY", "SOORMA_NATS_URL",
                            "SOORMA_PLATFORM_TENANT_ID")) as stack:
        home = stack.home
        credentials = json.loads((home / "credentials.json").read_text())
        nats_url = json.loads((home / "secrets.json").read_text())["nats_url"]
        out: dict[str, Any] = {"benchmark": "timers", "timers": args.timers, "window_s": args.window,
                               **asyncio.run(measure(credentials["api_url"], credentials["api_key"], nats_url,
                                                     credentials["platform_tenant_id"], args.timers, args.window,
                                                     args.lead, args.grace))}
    out["load_avg"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
