"""Benchmark of event delivery to functions: prints one JSON line.

Through the NATS bridge (a private nats-server with JetStream) and through the SNS/SQS adapter (moto's server and the
local event source mapping), with a no-op function in the measuring process (it parses each record's envelope, as an
agent's entry point does, and returns an empty partial batch response):

* ``drain`` — events/s of the delivery path alone: N events are stored first, then the bridge (or poller) delivers
  them; timed from its start to the last event handled;
* ``live`` — a publisher in another process publishes N events as fast as it can (each stamped with its publish time,
  acknowledgement awaited, a window of outstanding publishes) while the path delivers them: events/s from the first
  publish to the last event handled, and publish-to-handler latency p50/p99 (queueing under full load included);
* ``steady`` — the publisher paced at a fixed rate (500 events/s for the bridge) at batch size 10: latency p50/p99.

Batch sizes 1, 10 and 100. Bridge: one route, 4 fetch workers (``max_concurrency``). SQS: 4 pollers; SQS returns at
most 10 messages per receive, so batches above 10 are gathered from several receives (no batching window). The
publisher and the servers are separate processes; everything shares this machine's cores.

Targets (issue 5): >= 5,000 events/s at batch size 10 through the bridge (``drain``); p99 <= 25 ms at a steady 500
events/s through the bridge. ``targets_met`` says whether this run met them; timings on a shared machine are noisy.

A run in which some row did not handle every event before its wait ran out is *incomplete*: the row has
``complete: false`` (``timed_out: true``), the line has ``complete: false`` and ``incomplete_rows``, every
``targets_met`` entry is false, and the exit status is 1.

Usage: ``python bench/delivery.py [--events N] [--sqs-events N] [--steady-seconds S] [--skip-sqs]``
(the ``--role`` options are the publisher subprocess's).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from soorma.testing import free_port  # below the ephemeral range (soorma.testing.ports)

BATCH_SIZES = (1, 10, 100)
WORKERS = 4


def percentile(values: list[float], q: float) -> float | None:
    ordered = sorted(values)
    if not ordered:
        return None
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return round(ordered[index], 2)


def make_envelope(tenant: str, i: int):
    from soorma.events import EventEnvelope

    return EventEnvelope(type="bench.event", topic="action-requests", platform_tenant_id=tenant,
                         data={"i": i, "t": time.time()})


# ------------------------------------------------------------------------------------------------ publishers


async def publish_nats(url: str, tenant: str, count: int, rate: float, window: int) -> dict:
    import nats

    from soorma.jetstream import publish_envelope

    nc = await nats.connect(url)
    js = nc.jetstream()
    started = time.time()
    if rate > 0:  # paced: one publish every 1/rate s, acks awaited in the background
        pending: set[asyncio.Task] = set()
        for i in range(count):
            due = started + i / rate
            delay = due - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.ensure_future(publish_envelope(js, make_envelope(tenant, i)))
            pending.add(task)
            task.add_done_callback(pending.discard)
        await asyncio.gather(*pending)
    else:
        for start in range(0, count, window):
            await asyncio.gather(*(publish_envelope(js, make_envelope(tenant, i))
                                   for i in range(start, min(count, start + window))))
    elapsed = time.time() - started
    await nc.close()
    return {"published": count, "seconds": round(elapsed, 3), "per_s": round(count / elapsed, 1)}


def publish_sns(endpoint: str, topic_arn: str, tenant: str, count: int, rate: float, threads: int) -> dict:
    from concurrent.futures import ThreadPoolExecutor

    from soorma.functions.gateway.publisher import SnsPublisher
    from soorma.local.sqs import clients

    sns, _ = clients(endpoint, max_pool_connections=threads * 2)
    publisher = SnsPublisher(topic_arn, client=sns)
    started = time.time()

    def one(i: int) -> None:
        if rate > 0:
            delay = started + i / rate - time.time()
            if delay > 0:
                time.sleep(delay)
        publisher.publish(make_envelope(tenant, i))

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, range(count)))
    elapsed = time.time() - started
    return {"published": count, "seconds": round(elapsed, 3), "per_s": round(count / elapsed, 1)}


def start_publisher(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, __file__, "--role", *args], stdout=subprocess.PIPE, text=True)


def publisher_result(proc: subprocess.Popen, timeout: float = 600) -> dict:
    out, _ = proc.communicate(timeout=timeout)
    return json.loads(out.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------------------ no-op function


class NoopFunction:
    """Parses each record's envelope, notes when it arrived and its publish stamp; returns no failures."""

    def __init__(self) -> None:
        self.latencies_ms: list[float] = []
        self.handled = 0
        self.first_at: float | None = None
        self.last_at = 0.0
        self.done = asyncio.Event()
        self.expect = 0
        self.timed_out = False

    def reset(self, expect: int) -> None:
        self.latencies_ms, self.handled, self.first_at, self.last_at = [], 0, None, 0.0
        self.expect = expect
        self.timed_out = False
        self.done = asyncio.Event()

    async def invoke(self, function_name: str, payload: bytes):
        from soorma.functions.bridge import InvokeResult

        now = time.time()
        if self.first_at is None:
            self.first_at = now
        for record in json.loads(payload)["Records"]:
            body = json.loads(record["body"])
            self.latencies_ms.append((now - body["data"]["t"]) * 1000)
        self.handled = len(self.latencies_ms)
        self.last_at = now
        if self.handled >= self.expect:
            self.done.set()
        return InvokeResult(b'{"batchItemFailures":[]}')


async def wait_done(fn: NoopFunction, timeout_s: float) -> bool:
    """Wait until ``fn`` has handled every expected event; ``True`` if it did, ``False`` if ``timeout_s`` ran out first.

    A timeout is not swallowed silently: it is reported on standard error with the counts, and :func:`summary` marks
    the row incomplete (``complete: false``, ``timed_out: true``), which makes ``targets_met`` false.
    """
    try:
        await asyncio.wait_for(fn.done.wait(), timeout_s)
    except TimeoutError:
        fn.timed_out = True
        print(f"delivery bench: timed out after {timeout_s:g} s with {fn.handled} of {fn.expect} events handled",
              file=sys.stderr, flush=True)
        return False
    return True


def summary(fn: NoopFunction, started: float, count: int) -> dict:
    """One row of figures. ``complete`` is true only if every one of ``count`` events was handled (and the wait did
    not time out); rates and percentiles of an incomplete row describe only what was handled."""
    elapsed = (fn.last_at - started) if fn.handled else None
    return {
        "events": count,
        "handled": fn.handled,
        "complete": fn.handled >= count and not fn.timed_out,
        "timed_out": fn.timed_out,
        "events_per_s": round(fn.handled / elapsed, 1) if elapsed else None,
        "latency_p50_ms": percentile(fn.latencies_ms, 50),
        "latency_p99_ms": percentile(fn.latencies_ms, 99),
    }


# ------------------------------------------------------------------------------------------------ bridge


async def bench_bridge(events: int, steady_s: float, steady_rate: float) -> dict:
    import nats

    from soorma.functions.bridge import Bridge, Route
    from soorma.jetstream import ensure_streams, publish_envelope
    from soorma.local.nats import EmbeddedNats
    from soorma.subjects import filter_subject

    tmp = Path(tempfile.mkdtemp(prefix="soorma-bench-nats-"))
    server = EmbeddedNats(tmp / "nats", port=free_port())
    url = server.start()
    results: dict = {}
    fn = NoopFunction()
    nc = await nats.connect(url)
    js = nc.jetstream()
    await ensure_streams(js)

    def route_for(tenant: str, batch: int) -> Route:
        return Route(consumer_name=f"{tenant}__noop", function_name="noop",
                     filter_subjects=(filter_subject(tenant, "action-requests", "bench.event"),),
                     platform_tenant_id=tenant, agent="noop", batch_size=batch, max_concurrency=WORKERS)

    async def run_bridge(route: Route) -> Bridge:
        async def routes():
            return [route]

        bridge = Bridge(url, routes, fn, name="bench", metrics_interval_s=None, refresh_interval_s=30)
        await bridge.start()
        return bridge

    try:
        for batch in BATCH_SIZES:
            row: dict = {}
            # drain: events stored first (consumer created beforehand so none is skipped), then delivered
            tenant = f"d{uuid.uuid4().hex[:8]}"
            route = route_for(tenant, batch)
            from soorma.delivery.consumer import ConsumerPolicy, ensure_consumer

            await ensure_consumer(js, route, ConsumerPolicy())
            for start in range(0, events, 500):
                await asyncio.gather(*(publish_envelope(js, make_envelope(tenant, i))
                                       for i in range(start, min(events, start + 500))))
            fn.reset(events)
            started = time.time()
            bridge = await run_bridge(route)
            await wait_done(fn, 300)
            row["drain"] = summary(fn, started, events)
            row["drain"].pop("latency_p50_ms"), row["drain"].pop("latency_p99_ms")
            await bridge.stop()

            # live: a publisher process at full speed while the bridge delivers
            tenant = f"l{uuid.uuid4().hex[:8]}"
            route = route_for(tenant, batch)
            bridge = await run_bridge(route)
            fn.reset(events)
            started = time.time()
            proc = start_publisher(["nats", url, tenant, str(events), "0"])
            await wait_done(fn, 300)
            row["live"] = summary(fn, started, events)
            row["live"]["publisher"] = await asyncio.to_thread(publisher_result, proc)
            await bridge.stop()
            results[f"batch_{batch}"] = row

        # steady: paced publisher at batch size 10
        tenant = f"s{uuid.uuid4().hex[:8]}"
        route = route_for(tenant, 10)
        bridge = await run_bridge(route)
        count = int(steady_s * steady_rate)
        fn.reset(count)
        started = time.time()
        proc = start_publisher(["nats", url, tenant, str(count), str(steady_rate)])
        await wait_done(fn, steady_s + 60)
        steady = summary(fn, started, count)
        steady["rate_per_s"] = steady_rate
        steady["publisher"] = await asyncio.to_thread(publisher_result, proc)
        await bridge.stop()
        results["steady_batch_10"] = steady
    finally:
        await nc.close()
        server.stop()
    return results


# ------------------------------------------------------------------------------------------------ SQS adapter


async def bench_sqs(events: int, steady_s: float, steady_rate: float) -> dict:
    from soorma.local.esm import EventSourceMapping, Mapping
    from soorma.local.sqs import clients, ensure_agent_queue, ensure_topic

    port = free_port()
    moto = subprocess.Popen([str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    results: dict = {}
    try:
        deadline = time.time() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.time() > deadline:
                    raise RuntimeError("moto server did not start") from None
                time.sleep(0.1)
        sns, sqs = clients(endpoint, max_pool_connections=64)
        topic_arn = ensure_topic(sns, "bench-events")
        fn = NoopFunction()

        async def run(batch: int, count: int, rate: float, mode: str) -> dict:
            tenant = f"{mode[0]}{uuid.uuid4().hex[:8]}"
            queue = ensure_agent_queue(sqs, sns, topic_arn, platform_tenant_id=tenant, agent="noop",
                                       subscriptions=[("action-requests", "bench.event")], visibility_timeout_s=60)
            esm = EventSourceMapping(sqs, Mapping("noop", queue.queue_url, batch_size=batch, max_concurrency=WORKERS),
                                     fn, wait_time_s=1)
            fn.reset(count)
            if mode == "drain":
                pub = await asyncio.to_thread(publish_sns, endpoint, topic_arn, tenant, count, 0, 8)
                started = time.time()
                await esm.start()
                await wait_done(fn, 300)
                row = summary(fn, started, count)
                row.pop("latency_p50_ms"), row.pop("latency_p99_ms")
            else:
                await esm.start()
                started = time.time()
                proc = start_publisher(["sns", endpoint, topic_arn, tenant, str(count), str(rate)])
                await wait_done(fn, 300)
                row = summary(fn, started, count)
                pub = await asyncio.to_thread(publisher_result, proc)
            row["publisher"] = pub
            await esm.stop()
            return row

        for batch in BATCH_SIZES:
            results[f"batch_{batch}"] = {"drain": await run(batch, events, 0, "drain"),
                                         "live": await run(batch, events, 0, "live")}
        row = await run(10, int(steady_s * steady_rate), steady_rate, "steady")
        row["rate_per_s"] = steady_rate
        results["steady_batch_10"] = row
    finally:
        moto.terminate()
        moto.wait(10)
    return results


# ------------------------------------------------------------------------------------------------ main

TARGETS = {"bridge_batch_10_events_per_s": 5000, "bridge_steady_500_p99_ms": 25}


def incomplete_rows(results: dict, prefix: str = "") -> list[str]:
    """Dotted paths of the rows (dicts with ``complete``) in ``results`` that did not handle every event."""
    out: list[str] = []
    for key, value in (results or {}).items():
        if not isinstance(value, dict):
            continue
        path = f"{prefix}{key}"
        if "complete" in value:
            if not value["complete"]:
                out.append(path)
        else:
            out.extend(incomplete_rows(value, path + "."))
    return out


def targets_met(bridge: dict, sqs: dict | None = None) -> dict[str, bool]:
    """Per target of issue 5, whether this run met it. A target is never met by a run that did not handle every
    event: an incomplete row anywhere (bridge or SQS) makes every target false, since a partial run's rate and
    percentiles leave out the events that never arrived."""
    complete = not incomplete_rows({"bridge": bridge, "sqs": sqs})
    b10 = bridge["batch_10"]["drain"]
    steady = bridge["steady_batch_10"]
    steady_p99 = steady.get("latency_p99_ms")
    return {
        "bridge_batch_10_events_per_s": complete and (b10.get("events_per_s") or 0) >= TARGETS[
            "bridge_batch_10_events_per_s"],
        "bridge_steady_500_p99_ms": complete and steady_p99 is not None
        and steady_p99 <= TARGETS["bridge_steady_500_p99_ms"],
    }



def role_main(argv: list[str]) -> None:
    kind, *rest = argv
    if kind == "nats":
        url, tenant, count, rate = rest
        result = asyncio.run(publish_nats(url, tenant, int(count), float(rate), window=256))
    else:
        endpoint, topic_arn, tenant, count, rate = rest
        result = publish_sns(endpoint, topic_arn, tenant, int(count), float(rate), threads=8)
    print(json.dumps(result), flush=True)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--role":
        role_main(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20_000, help="events per bridge run")
    parser.add_argument("--sqs-events", type=int, default=500, help="events per SQS run (moto is slow)")
    parser.add_argument("--steady-seconds", type=float, default=10.0)
    parser.add_argument("--steady-rate", type=float, default=500.0)
    parser.add_argument("--sqs-steady-rate", type=float, default=50.0)
    parser.add_argument("--skip-sqs", action="store_true")
    args = parser.parse_args()

    import logging

    logging.basicConfig(level=logging.ERROR)
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    started = time.time()
    bridge = asyncio.run(bench_bridge(args.events, args.steady_seconds, args.steady_rate))
    sqs = None if args.skip_sqs else asyncio.run(bench_sqs(args.sqs_events, args.steady_seconds, args.sqs_steady_rate))
    from importlib import metadata

    incomplete = incomplete_rows({"bridge": bridge, "sqs": sqs})
    out = {
        "bench": "delivery",
        "complete": not incomplete,
        "incomplete_rows": incomplete,
        "bridge": bridge,
        "sqs": sqs,
        "targets": dict(TARGETS),
        "targets_met": targets_met(bridge, sqs),
        "machine": {
            "cpus": os.cpu_count(), "loadavg_at_start": load_at_start,
            "loadavg_at_end": [round(x, 2) for x in os.getloadavg()],
            "python": platform.python_version(), "nats_py": metadata.version("nats-py"),
            "moto": metadata.version("moto"),
        },
        "seconds": round(time.time() - started, 1),
    }
    print(json.dumps(out, separators=(",", ":")))
    if incomplete:  # the figures describe a partial run: say so in the exit status too
        print(f"delivery bench incomplete: {', '.join(incomplete)}", file=sys.stderr)
        raise SystemExit(1)


if __name__ == "__main__":
    main()
