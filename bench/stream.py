"""Benchmark of the live goal streams on the local stack (issue 14, item 1). Prints one JSON line.

On a fresh ``soorma local up`` (temporary ``SOORMA_HOME``, free ports) with tests/e2e/sdk_apps/stream_ticker deployed,
``--goals`` goals (``stream.tick.requested``, ``--steps`` progress reports ``--delay`` seconds apart) are submitted
one after another, each followed over the WebSocket API by :meth:`soorma.clients.gateway.GatewayClient.follow_goal`
from before its first event. For every event the client receives it notes the time, and reports:

* ``published_to_received_ms``: from the event's own ``time`` (the envelope's, set by the agent's SDK or the gateway
  when it published) to the client receiving its frame: bus, bridge, tracker (record + push) and the WebSocket;
* ``recorded_to_received_ms``: from the tracker's ``recorded_at`` to receipt: the push alone (the tracker's
  ``@connections`` post through the local WebSocket API);

each with ``p50``, ``p99`` (nearest rank), ``max`` and ``n``; ``missed`` and ``repeated`` compare every goal's stream
with ``GET /v1/goals/{id}/events``. The clocks are one machine's, so the differences are real; the first
``--warmup`` goals (cold execution environments) are not measured.

Run: ``.venv/bin/python bench/stream.py [--goals 20] [--steps 10] [--delay 0.05] [--warmup 2]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from soorma.clients.gateway import GatewayClient
from soorma.testing import free_port

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "tests" / "e2e" / "sdk_apps" / "stream_ticker"
SOORMA = str(Path(sys.executable).with_name("soorma"))


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, int(round(q / 100 * len(ordered) + 0.5)) - 1))]


def summary(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0}
    return {"p50": round(percentile(values, 50), 2), "p99": round(percentile(values, 99), 2),
            "max": round(max(values), 2), "n": len(values)}


def epoch(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


async def follow_one(client: GatewayClient, steps: int, delay: float) -> tuple[str, list[tuple[Any, float]]]:
    goal = await client.submit_goal("stream.tick.requested", {"steps": steps, "delay_s": delay})
    received: list[tuple[Any, float]] = []
    async for item in client.follow_goal(goal["goal_id"], max_reconnects=3):
        received.append((item, time.time()))
    return goal["goal_id"], received


async def measure(api_url: str, key: str, args: argparse.Namespace) -> dict[str, Any]:
    client = GatewayClient(api_url, key)
    published, recorded, missed, repeated = [], [], 0, 0
    http = httpx.Client(base_url=api_url, headers={"Authorization": f"Bearer {key}"}, timeout=30)
    for index in range(args.warmup + args.goals):
        goal_id, received = await follow_one(client, args.steps, args.delay)
        events = [(item, at) for item, at in received if item.kind == "event"]
        if index < args.warmup:
            continue
        for item, at in events:
            published.append((at - epoch(item.event["time"])) * 1000)
            if item.recorded_at:
                recorded.append((at - epoch(item.recorded_at)) * 1000)
        expected = [e["event_id"] for e in http.get(f"/v1/goals/{goal_id}/events").json()["events"]]
        got = [item.event["event_id"] for item, _ in events]
        missed += len(set(expected) - set(got))
        repeated += len(got) - len(set(got))
    http.close()
    return {"published_to_received_ms": summary(published), "recorded_to_received_ms": summary(recorded),
            "missed": missed, "repeated": repeated}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--goals", type=int, default=20)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--delay", type=float, default=0.05)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="soorma-bench-stream-")) / "s"
    env = {**os.environ, "SOORMA_HOME": str(home), "SOORMA_LOCAL_PORT": str(free_port()),
           "SOORMA_NATS_PORT": str(free_port())}
    for name in ("SOORMA_API_URL", "SOORMA_API_KEY", "SOORMA_NATS_URL", "SOORMA_STREAM_URL"):
        env.pop(name, None)

    def soorma(*cli: str) -> None:
        done = subprocess.run([SOORMA, *cli], env=env, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            raise SystemExit(f"soorma {' '.join(cli)} failed:\n{done.stdout}{done.stderr}")

    soorma("local", "up")
    try:
        soorma("local", "deploy", str(APP))
        credentials = json.loads((home / "credentials.json").read_text())
        result = asyncio.run(measure(credentials["api_url"], credentials["api_key"], args))
    finally:
        soorma("local", "down")
    print(json.dumps({"benchmark": "goal_stream_latency", "goals": args.goals, "steps": args.steps,
                      "delay_s": args.delay, "warmup": args.warmup, "load_avg": os.getloadavg()[0], **result}))


if __name__ == "__main__":
    main()
