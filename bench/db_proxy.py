"""What the local stack's pausable database proxy (:mod:`soorma.local.dbpause`) adds to a database round trip.
Prints one JSON line.

On a fresh local stack's PostgreSQL (as role soorma_app, over its Unix socket), sequential ``select 1`` round trips
(p50 and p90, microseconds): straight to the server, through a :class:`~soorma.local.dbpause.PausableDatabase` whose
event loop has nothing else to do, and through one whose loop is busy half the time (a callback computing 0.5 ms
every millisecond, as the stack's loop serves the API Gateway, the Lambda runtime and the bridge at once). Every
function's database round trip crosses the proxy twice (there and back).

Run: ``.venv/bin/python bench/db_proxy.py [--round-trips 3000]``. Timings on a shared machine are noisy: compare the
rows of one run, or runs made back to back.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

import psycopg

from _stack import fresh_stack  # bench/_stack.py (bench/ is on sys.path when run)
from soorma.local.dbpause import PausableDatabase, Upstream

ROOT = Path(__file__).resolve().parents[1]


def round_trips(dsn: str, n: int) -> dict[str, float]:
    """p50 and p90 of ``n`` sequential ``select 1`` on one connection to ``dsn``, in microseconds."""
    with psycopg.connect(dsn) as conn:
        for _ in range(50):
            conn.execute("select 1").fetchone()
        times = []
        for _ in range(n):
            started = time.perf_counter()
            conn.execute("select 1").fetchone()
            times.append((time.perf_counter() - started) * 1e6)
    times.sort()
    return {"p50_us": round(statistics.median(times)), "p90_us": round(times[int(0.9 * (len(times) - 1))])}


def proxied(dsn: str, n: int, *, busy: bool) -> dict[str, float]:
    """:func:`round_trips` through a proxy on its own loop (in a thread), that loop busy half the time if ``busy``."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    proxy = PausableDatabase(Upstream.from_dsn(dsn), Path(tempfile.mkdtemp(prefix="soorma-px-")))
    asyncio.run_coroutine_threadsafe(proxy.start(), loop).result()

    def spin() -> None:  # 0.5 ms of work, then again 0.5 ms later
        until = time.perf_counter() + 0.0005
        while time.perf_counter() < until:
            pass
        loop.call_later(0.0005, spin)

    if busy:
        loop.call_soon_threadsafe(spin)
    try:
        return round_trips(proxy.dsn(dsn), n)
    finally:
        asyncio.run_coroutine_threadsafe(proxy.stop(), loop).result()
        loop.call_soon_threadsafe(loop.stop)
        thread.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--round-trips", type=int, default=3000)
    args = parser.parse_args()
    with fresh_stack("soorma-bench-px-",
                     unset=("SOORMA_API_URL", "SOORMA_API_KEY", "SOORMA_DATABASE_URL", "SOORMA_NATS_URL")) as stack:
        home = stack.home
        password = json.loads((home / "secrets.json").read_text())["app_db_password"]
        dsn = psycopg.conninfo.make_conninfo(host=str(home / "pg"), port="5432", dbname="soorma", user="soorma_app",
                                             password=password)
        figures = {"direct": round_trips(dsn, args.round_trips),
                   "proxy_idle_loop": proxied(dsn, args.round_trips, busy=False),
                   "proxy_busy_loop": proxied(dsn, args.round_trips, busy=True)}
        print(json.dumps({"benchmark": "db_proxy", "round_trips": args.round_trips, **figures,
                          "load_avg": round(os.getloadavg()[0], 2)}))


if __name__ == "__main__":
    main()
