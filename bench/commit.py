"""Benchmark of one handler commit, ``POST /v1/events/commit`` (issue 19), on embedded PostgreSQL and NATS JetStream.
Prints one JSON line per code version.

The gateway's app runs in this process behind its Mangum handler (as the integration tests drive it: the authorizer's
identity in the event, role ``soorma_app`` with row-level security, the real JetStream), and commits the shapes of the
``worker-basic`` round trip's three commits on the critical path, ``--commits`` times each after a warm-up:

* ``first``: the order processor's first commit: two events (the sub-requests), a new task context, two spans and a
  ``traceparent`` (so the commit stores its server span);
* ``sub``: a sub-worker's commit: one event (its result), one span, a ``traceparent``;
* ``answer``: the processor's last commit: one event (the answer), the task context deleted, one span;
* ``replay``: ``sub`` sent again with the same key (a redelivered event's commit).

Per shape: ``p50_ms``/``p90_ms`` of the request (the handler call; the client's HTTP time is not in it), and what does
not vary with the machine's load, per commit: ``db_round_trips`` (blocking exchanges with PostgreSQL: psycopg's
``Connection.wait``, so a pipeline's batch of statements counts once), ``db_statements`` (statements sent, with
``BEGIN``/``COMMIT`` and the pool's connection check), ``db_commits`` (transactions committed: each one a WAL flush)
and ``bus_waits`` (waits for JetStream acknowledgements); and where the time went, per commit (means):
``db_ms`` (waiting for PostgreSQL), ``bus_ms`` (waiting for JetStream), the rest being Python. ``wal_flush_ms``: the p50 of an empty-ish transaction's
``COMMIT`` round trip (one row inserted into a table and committed on its own connection), i.e. what each
committed transaction costs the database's WAL flush here, and ``durability``: the server's ``fsync``,
``synchronous_commit`` and ``wal_sync_method`` (reported, never tuned: durability settings stay as they are).

``--baseline REF``: the same benchmark first on the code of git revision ``REF`` (exported with ``git archive`` into a
temporary directory and imported instead of this checkout's ``soorma`` package, in a child process with its own
servers), then on this checkout, back to back; the last line is the ratio of this checkout's p50 to the baseline's.

Run: ``.venv/bin/python bench/commit.py [--commits 200] [--warmup 20] [--baseline main]``. Timings on a shared machine
are noisy: compare the two versions of one run, and the counts.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def use_source(source: Path) -> None:
    """Import the ``soorma`` packages from ``source`` (a checkout) instead of this one: the editable install's finder
    maps package names to directories of this checkout; point them at ``source``'s."""
    import importlib

    for module in list(sys.modules.values()):
        finder_map = getattr(module, "MAPPING", None)
        if getattr(module, "__name__", "").startswith("__editable__") and isinstance(finder_map, dict):
            for name, path in finder_map.items():
                if path.startswith(str(ROOT)):
                    finder_map[name] = str(source) + path[len(str(ROOT)):]
    importlib.invalidate_caches()


class Counts:
    """Counts psycopg's blocking exchanges, statements and commits, and the publisher's waits, while :attr:`on`."""

    def __init__(self) -> None:
        self.on = False
        self.counter: Counter[str] = Counter()  # float values for the times

    def add(self, what: str, n: float = 1) -> None:
        if self.on:
            self.counter[what] += n

    def install(self) -> None:
        import psycopg
        from psycopg.waiting import Wait

        counts = self
        wait, execute, executemany = psycopg.Connection.wait, psycopg.Cursor.execute, psycopg.Cursor.executemany
        exec_command = psycopg.Connection._exec_command

        def exchanges(gen):
            """``gen`` as it is, counting each time it starts waiting to read after sending (one round trip; a
            generator that does no I/O, such as switching autocommit, counts none)."""
            reading, ready = False, None
            while True:
                try:
                    state = gen.send(ready)
                except StopIteration as done:
                    return done.value
                if state == Wait.R:
                    if not reading:
                        counts.add("db_round_trips")
                    reading = True
                else:
                    reading = False
                ready = yield state

        def counted_wait(conn, gen, *args, **kwargs):
            started = time.perf_counter()
            try:
                return wait(conn, exchanges(gen), *args, **kwargs)
            finally:
                counts.add("db_ms", (time.perf_counter() - started) * 1000)

        def counted_execute(cursor, query, params=None, **kwargs):
            counts.add("db_statements")
            if isinstance(query, str) and query.strip().lower() == "commit":
                counts.add("db_commits")
            return execute(cursor, query, params, **kwargs)

        def counted_executemany(cursor, query, params_seq, **kwargs):
            params_seq = list(params_seq)
            counts.add("db_statements", len(params_seq))
            return executemany(cursor, query, params_seq, **kwargs)

        def counted_command(conn, command, *args, **kwargs):
            text = command if isinstance(command, bytes) else str(command).encode()
            counts.add("db_statements")
            if text.strip().upper().startswith(b"COMMIT"):
                counts.add("db_commits")
            return exec_command(conn, command, *args, **kwargs)

        psycopg.Connection.wait = counted_wait  # type: ignore[method-assign]
        psycopg.Cursor.execute = counted_execute  # type: ignore[method-assign]
        psycopg.Cursor.executemany = counted_executemany  # type: ignore[method-assign]
        psycopg.Connection._exec_command = counted_command  # type: ignore[method-assign]

    def wrap_publisher(self, publisher: Any) -> None:
        counts = self
        for name in ("publish", "publish_many"):
            method = getattr(publisher, name, None)
            if method is None:
                continue

            def counted(*args, _method=method, **kwargs):
                counts.add("bus_waits")
                started = time.perf_counter()
                try:
                    return _method(*args, **kwargs)
                finally:
                    counts.add("bus_ms", (time.perf_counter() - started) * 1000)

            setattr(publisher, name, counted)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def wal_flush_ms(dsn: str, n: int = 50) -> float:
    """The p50 of one small transaction's ``COMMIT`` round trip (ms): one row inserted into a (logged) table of its
    own, so the commit waits for its WAL flush as a commit's transaction does."""
    import psycopg

    times = []
    with psycopg.connect(dsn) as conn:
        conn.execute("create table if not exists bench_flush_probe (n int)")
        conn.commit()
        for i in range(n):
            conn.execute("insert into bench_flush_probe values (%s)", (i,))
            started = time.perf_counter()
            conn.commit()
            times.append((time.perf_counter() - started) * 1000)
        conn.execute("drop table bench_flush_probe")
        conn.commit()
    return round(statistics.median(times), 3)


def durability(dsn: str) -> dict[str, str]:
    """The server's settings that decide what a commit waits for (reported, not changed)."""
    import psycopg

    with psycopg.connect(dsn) as conn:
        return {name: conn.execute(f"show {name}").fetchone()[0]
                for name in ("fsync", "synchronous_commit", "wal_sync_method")}


def run(commits: int, warmup: int) -> dict[str, Any]:
    counts = Counts()
    counts.install()  # before the app's modules bind anything of psycopg

    from mangum import Mangum

    from soorma import testing
    from soorma.functions.gateway.app import create_app
    from soorma.functions.gateway.publisher import NatsPublisher
    from soorma.functions.migrate import apply
    from soorma.functions.shared.db import Database
    from soorma.functions.shared.service import ensure_event_loop
    from soorma.local.nats import EmbeddedNats
    from soorma.local.postgres import EmbeddedPostgres, app_dsn

    os.environ.setdefault("SOORMA_API_KEY_PEPPER", "bench-pepper")
    work = Path(tempfile.mkdtemp(prefix="soorma-bc-"))
    postgres = EmbeddedPostgres(work / "pg", cleanup="delete")
    nats_server = EmbeddedNats(work / "nats", port=testing.free_port())
    owner_dsn = postgres.start()
    try:
        apply(owner_dsn)
        nats_url = nats_server.start()
        db = Database(app_dsn(owner_dsn))
        publisher = NatsPublisher(nats_url)
        counts.wrap_publisher(publisher)
        handler = Mangum(create_app(db, publisher), lifespan="off")
        ensure_event_loop()
        agent = testing.new_identity("agent")

        def span(goal_id: str, trace_id: str) -> dict[str, Any]:
            now = datetime.now(UTC)
            return {"trace_id": trace_id, "span_id": uuid.uuid4().hex[:16], "name": "handle", "kind": "consumer",
                    "start_time": (now - timedelta(milliseconds=3)).isoformat(), "end_time": now.isoformat(),
                    "goal_id": goal_id}

        def event(event_type: str, topic: str, goal_id: str) -> dict[str, Any]:
            return {"id": str(uuid.uuid4()), "type": event_type, "topic": topic, "goal_id": goal_id,
                    "correlation_id": goal_id, "data": {"order": "o-1"}}

        def bodies() -> dict[str, dict[str, Any]]:
            goal_id = str(uuid.uuid4())
            trace = uuid.UUID(goal_id).hex
            task = {"task_id": f"task-{goal_id}", "event_type": "order.process.requested",
                    "sub_tasks": ["inventory", "payment"], "state": {"order": "o-1"}}
            expiry = int(time.time()) + 3600
            sub = {"key": f"soorma.inventory#{uuid.uuid4().hex}", "expiry_timestamp": expiry,
                   "events": [event("inventory.reserve.completed", "action-results", goal_id)],
                   "spans": [span(goal_id, trace)]}
            return {
                "first": {"key": f"soorma.order#{uuid.uuid4().hex}", "expiry_timestamp": expiry,
                          "events": [event("inventory.reserve.requested", "action-requests", goal_id),
                                     event("payment.charge.requested", "action-requests", goal_id)],
                          "task_contexts": [task], "spans": [span(goal_id, trace), span(goal_id, trace)]},
                "sub": sub,
                "answer": {"key": f"soorma.order#{uuid.uuid4().hex}", "expiry_timestamp": expiry,
                           "events": [event("order.process.completed", "action-results", goal_id)],
                           "deleted_task_contexts": [task["task_id"]], "spans": [span(goal_id, trace)]},
                "replay": sub,
                "_traceparent": f"00-{trace}-{uuid.uuid4().hex[:16]}-01",  # type: ignore[dict-item]
            }

        times: dict[str, list[float]] = {}
        per_shape: dict[str, Counter[str]] = {}
        for round_ in range(warmup + commits):
            measured = round_ >= warmup
            shapes = bodies()
            traceparent = shapes.pop("_traceparent")
            for shape, body in shapes.items():
                request = testing.http_api_event("POST", "/v1/events/commit", identity=agent, body=body, headers={
                    "host": "api.local", "content-type": "application/json", "traceparent": traceparent})
                counts.counter.clear()
                counts.on = measured
                started = time.perf_counter()
                reply = handler(request, None)
                elapsed = (time.perf_counter() - started) * 1000
                counts.on = False
                if reply["statusCode"] != 200:
                    raise RuntimeError(f"{shape}: {reply['statusCode']} {reply.get('body')}")
                replayed = json.loads(reply["body"])["replayed"]
                if replayed != (shape == "replay"):
                    raise RuntimeError(f"{shape}: replayed = {replayed}")
                if measured:
                    times.setdefault(shape, []).append(elapsed)
                    per_shape.setdefault(shape, Counter()).update(counts.counter)
        result: dict[str, Any] = {}
        for shape, values in times.items():
            n = len(values)
            result[shape] = {"p50_ms": round(statistics.median(values), 2), "p90_ms": round(percentile(values, 0.9), 2),
                             **{what: round(total / n, 2) for what, total in sorted(per_shape[shape].items())}}
        result["wal_flush_ms"] = wal_flush_ms(owner_dsn)
        result["durability"] = durability(owner_dsn)
        publisher.close()
        db.close()
        return result
    finally:
        nats_server.stop()
        postgres.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--commits", type=int, default=200, help="measured commits of each shape")
    parser.add_argument("--warmup", type=int, default=20, help="unmeasured rounds first")
    parser.add_argument("--baseline", help="git revision to measure first, back to back with this checkout")
    parser.add_argument("--source", help=argparse.SUPPRESS)  # the child's: import soorma from this checkout
    args = parser.parse_args()
    if args.source:
        use_source(Path(args.source))
    if not args.baseline:
        figures = run(args.commits, args.warmup)
        print(json.dumps({"code": args.source and "baseline" or "this checkout", **figures,
                          "load_avg": os.getloadavg()[0]}), flush=True)
        return
    with tempfile.TemporaryDirectory(prefix="soorma-bc-src-") as source:
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.baseline], check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", source], input=archive, check=True)
        common = [sys.executable, __file__, "--commits", str(args.commits), "--warmup", str(args.warmup)]
        before = subprocess.run([*common, "--source", source], check=True, capture_output=True, text=True).stdout
    after = subprocess.run(common, check=True, capture_output=True, text=True).stdout
    print(before.strip().splitlines()[-1])
    print(after.strip().splitlines()[-1])
    old, new = json.loads(before.strip().splitlines()[-1]), json.loads(after.strip().splitlines()[-1])
    print(json.dumps({"p50_ratio_after_over_before": {
        shape: round(new[shape]["p50_ms"] / old[shape]["p50_ms"], 3)
        for shape in ("first", "sub", "answer", "replay")}, "baseline": args.baseline}))


if __name__ == "__main__":
    main()
