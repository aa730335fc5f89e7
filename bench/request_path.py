"""Where one platform request's time goes through the local stack. Prints one JSON line.

Sequential small authorized requests (``GET /v1/goals/{id}`` of an existing goal: one database transaction) from
one keep-alive client (the tenant's rate limits lifted), each split into its shares (p50 over the requests, ms):

* ``client_ms``: what the client waits, request sent to response read;
* ``front_ms``: the client's time minus the local API Gateway's ``Server-Timing`` figures (the HTTP exchange with
  the local API Gateway's uvicorn server, the event's building, the response's mapping);
* ``authorizer_ms``: the ``authorizer;dur=`` figure (a cache hit after the first request);
* ``handoff_ms``: ``integration;dur=`` minus the function's ``REPORT`` ``Duration`` (the local Lambda runtime
  handing the event to the waiting ``GET /next`` of an execution environment and taking its response);
* ``function_ms``: the ``REPORT`` ``Duration`` of the gateway function (awslambdaric, Mangum, FastAPI, the route).

Run: ``.venv/bin/python bench/request_path.py [--requests 300]``. Timings on a shared machine are noisy: compare
figures of one run, or runs made back to back.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import time
from pathlib import Path

import httpx

from _stack import fresh_stack  # bench/_stack.py (bench/ is on sys.path when run)

ROOT = Path(__file__).resolve().parents[1]
_TIMING = re.compile(r"(authorizer|integration);dur=([\d.]+)")
_REPORT = re.compile(r"REPORT RequestId: \S+\tDuration: ([\d.]+) ms")


def shares(client: httpx.Client, path: str, n: int, gateway_log: Path) -> dict[str, float]:
    """Send ``n`` sequential ``GET path`` and split each one's time (module docstring); p50 of each share in ms."""
    reports_before = len(_REPORT.findall(gateway_log.read_text()))
    rows: list[dict[str, float]] = []
    for _ in range(n):
        started = time.perf_counter()
        reply = client.get(path)
        elapsed = (time.perf_counter() - started) * 1000
        reply.raise_for_status()
        timing = {name: float(value) for name, value in _TIMING.findall(reply.headers.get("server-timing", ""))}
        rows.append({"client_ms": elapsed, "authorizer_ms": timing.get("authorizer", 0.0),
                     "integration_ms": timing["integration"]})
    durations = [float(d) for d in _REPORT.findall(gateway_log.read_text())][reports_before:]
    if len(durations) != n:
        raise SystemExit(f"expected {n} REPORT lines of the gateway, found {len(durations)}")
    for row, duration in zip(rows, durations):
        row["function_ms"] = duration
        row["handoff_ms"] = row["integration_ms"] - duration
        row["front_ms"] = row["client_ms"] - row["integration_ms"] - row["authorizer_ms"]
    keys = ("client_ms", "front_ms", "authorizer_ms", "handoff_ms", "function_ms")
    return {key: round(statistics.median(row[key] for row in rows), 2) for key in keys}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300, help="measured requests (after 30 warm-up ones)")
    args = parser.parse_args()
    with fresh_stack("soorma-bench-path-",
                     unset=("SOORMA_API_URL", "SOORMA_API_KEY", "SOORMA_DATABASE_URL", "SOORMA_NATS_URL")) as stack:
        home = stack.home
        credentials = json.loads((home / "credentials.json").read_text())
        headers = {"authorization": f"Bearer {credentials['api_key']}"}
        lifted = {"key_rps": 1e5, "key_burst": 1e5, "tenant_rps": 1e5, "tenant_burst": 1e5}
        httpx.patch(f"{credentials['api_url']}/v1/tenants/local", json=lifted, timeout=30,
                    headers={"authorization": f"Bearer {credentials['admin_api_key']}"}).raise_for_status()
        with httpx.Client(base_url=credentials["api_url"], headers=headers, timeout=60) as client:
            goal = client.post("/v1/goals", json={"goal_type": "bench.path", "data": {}})
            goal.raise_for_status()
            path = f"/v1/goals/{goal.json()['goal_id']}"
            gateway_log = home / "logs" / "soorma-gateway.log"
            shares(client, path, 30, gateway_log)
            figures = shares(client, path, args.requests, gateway_log)
        print(json.dumps({"benchmark": "request_path", "requests": args.requests, "p50": figures,
                          "load_avg": round(os.getloadavg()[0], 2)}))


if __name__ == "__main__":
    main()
