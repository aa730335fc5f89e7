"""Benchmark of the gateway through the local API Gateway. Prints one JSON line.

For ``POST /v1/goals`` and ``GET /v1/goals/{id}``, at concurrency 1 and 16: p50 and p99 latency seen by the client,
and the authorizer's share of it — the sum of the ``authorizer;dur=`` values of the local API Gateway's
``Server-Timing`` header over the sum of the client latencies. It runs twice, on two fresh stacks: with the
authorizer's result cache on (30 s, the stack's default: the authorizer runs once per credential per 30 s) and off
(``SOORMA_LOCAL_AUTHORIZER_TTL=0``: the authorizer runs on every request, a cold-cache upper bound).

Every request also passes the functions' admission check (revocation, suspension, token buckets: one database call),
which is part of the integration time, not of the authorizer's. The stack's rate limits are lifted for the tenant
so the buckets never refuse.

Run: ``.venv/bin/python bench/gateway.py [--requests 200] [--ttl 30 --ttl 0]``. Timings on shared machines are noisy:
compare figures from one run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from soorma.testing import free_port  # below the ephemeral range (soorma.testing.ports)

ROOT = Path(__file__).resolve().parents[1]
SOORMA = str(Path(sys.executable).with_name("soorma"))
_AUTH = re.compile(r"authorizer;dur=([\d.]+)")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


async def measure(client: httpx.AsyncClient, requests: list[tuple[str, str, dict | None]], concurrency: int) -> dict:
    latencies: list[float] = []
    authorizer: list[float] = []
    statuses: dict[int, int] = {}
    queue = list(requests)
    started = time.perf_counter()

    async def worker() -> None:
        while queue:
            method, path, body = queue.pop()
            t0 = time.perf_counter()
            reply = await client.request(method, path, json=body)
            latencies.append((time.perf_counter() - t0) * 1000)
            statuses[reply.status_code] = statuses.get(reply.status_code, 0) + 1
            match = _AUTH.search(reply.headers.get("server-timing", ""))
            authorizer.append(float(match.group(1)) if match else 0.0)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    return {
        "n": len(latencies),
        "p50_ms": round(statistics.median(latencies), 2),
        "p99_ms": round(percentile(latencies, 0.99), 2),
        "rps": round(len(latencies) / elapsed, 1),
        "authorizer_share": round(sum(authorizer) / sum(latencies), 4),
        "authorizer_p50_ms": round(statistics.median(authorizer), 2),
        "statuses": statuses,
    }


async def run_load(url: str, key: str, n: int) -> dict:
    figures: dict = {}
    headers = {"authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60, limits=limits) as client:
        # warm-up: every execution environment of the gateway and the authorizer starts once
        warm = [("POST", "/v1/goals", {"goal_type": "bench.goal", "data": {"i": i}}) for i in range(32)]
        await measure(client, warm, 16)
        goal_ids: list[str] = []
        for concurrency in (1, 16):
            count = n if concurrency == 1 else n * 2
            posts = [("POST", "/v1/goals", {"goal_type": "bench.goal", "data": {"i": i}}) for i in range(count)]
            figures[f"post_goals_c{concurrency}"] = await measure(client, posts, concurrency)
            if not goal_ids:
                reply = await client.get("/v1/goals", params={"limit": 100})
                goal_ids = [g["goal_id"] for g in reply.json()["goals"]]
            gets = [("GET", f"/v1/goals/{goal_ids[i % len(goal_ids)]}", None) for i in range(count)]
            figures[f"get_goal_c{concurrency}"] = await measure(client, gets, concurrency)
    return figures


def bench_stack(ttl: str, n: int) -> dict:
    home = Path(tempfile.mkdtemp(prefix="soorma-bench-gw-")) / "s"
    env = {**os.environ, "SOORMA_HOME": str(home), "SOORMA_LOCAL_PORT": str(free_port()),
           "SOORMA_NATS_PORT": str(free_port()), "SOORMA_LOCAL_AUTHORIZER_TTL": ttl}
    for name in ("SOORMA_API_URL", "SOORMA_API_KEY", "SOORMA_DATABASE_URL", "SOORMA_NATS_URL"):
        env.pop(name, None)

    def run(*args: str) -> subprocess.CompletedProcess:
        result = subprocess.run([SOORMA, *args], env=env, cwd=ROOT, capture_output=True, text=True)
        if result.returncode != 0:
            raise SystemExit(f"soorma {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result

    run("local", "up")
    try:
        credentials = json.loads((home / "credentials.json").read_text())
        url = credentials["api_url"]
        lifted = {"key_rps": 1e5, "key_burst": 1e5, "tenant_rps": 1e5, "tenant_burst": 1e5}
        reply = httpx.patch(f"{url}/v1/tenants/local", json=lifted, timeout=30,
                            headers={"authorization": f"Bearer {credentials['admin_api_key']}"})
        reply.raise_for_status()
        return asyncio.run(run_load(url, credentials["api_key"], n))
    finally:
        run("local", "down")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200, help="requests per case at concurrency 1 (×2 at 16)")
    parser.add_argument("--ttl", action="append", help="authorizer cache TTL(s) in seconds (default: 30 and 0)")
    args = parser.parse_args()
    result = {"benchmark": "gateway", "requests": args.requests}
    for ttl in args.ttl or ["30", "0"]:
        label = "authorizer_cached" if float(ttl) > 0 else "authorizer_uncached"
        result[label] = bench_stack(ttl, args.requests)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
