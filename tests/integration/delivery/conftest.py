"""Fixtures of the delivery fault tests: real nats-server (the session's, or a private one that a test restarts),
bridges in-process or in a subprocess that a test kills, and the local Lambda runtime.

Every test uses fresh platform tenant ids, so tests sharing the session's server never see each other's events. The
suite runs with ``--import-mode=importlib``: helpers reach the tests through the ``dk`` fixture, not an import.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

import nats
import pytest

from soorma.events import EventEnvelope
from soorma.functions.bridge import Bridge, ExponentialBackoff, InvokeResult, Route
from soorma.jetstream import ensure_streams, publish_envelope
from soorma.subjects import STREAM, filter_subject
from soorma.testing import free_port

FAST_BACKOFF = ExponentialBackoff(base_s=0.02, cap_s=0.1)
BRIDGE_PROC = Path(__file__).with_name("bridge_proc.py")


def new_id(prefix: str = "d") -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def envelope(tenant: str, event_type: str, topic: str = "action-requests", **data) -> EventEnvelope:
    return EventEnvelope(type=event_type, topic=topic, platform_tenant_id=tenant, data=data)


def make_route(tenant: str, agent: str, *event_types: str, topic: str = "action-requests", **kw) -> Route:
    return Route(
        consumer_name=kw.pop("consumer_name", f"{tenant}__{agent}"),
        function_name=kw.pop("function_name", f"fn-{tenant}-{agent}"),
        filter_subjects=tuple(filter_subject(tenant, topic, t) for t in event_types),
        platform_tenant_id=tenant,
        agent=agent,
        **kw,
    )


class Routes:
    def __init__(self, *routes: Route) -> None:
        self.items = list(routes)

    async def __call__(self) -> list[Route]:
        return list(self.items)


async def wait_until(predicate: Callable[[], bool], timeout_s: float = 10.0, interval_s: float = 0.02,
                     what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout_s}s")
        await asyncio.sleep(interval_s)


class RecordingInvoker:
    """An in-process function: ``handler(event_id, record)`` per record (raise = that item fails, reported as a
    partial batch failure, the way the SDK's BatchProcessor entry point reports it). ``handled`` lists every
    (event id, receive count) that returned without error; ``seen`` every one that reached the function."""

    def __init__(self, handler: Callable[[str, dict], Any] | None = None) -> None:
        self.handler = handler
        self.handled: list[tuple[str, int]] = []
        self.seen: list[tuple[str, int]] = []
        self.invocations = 0

    async def invoke(self, function_name: str, payload: bytes) -> InvokeResult:
        self.invocations += 1
        failures = []
        for record in json.loads(payload)["Records"]:
            event_id = json.loads(record["body"])["id"]
            count = int(record["attributes"]["ApproximateReceiveCount"])
            self.seen.append((event_id, count))
            try:
                if self.handler is not None:
                    result = self.handler(event_id, record)
                    if asyncio.iscoroutine(result):
                        await result
            except Exception:  # noqa: BLE001 - the item failed
                failures.append({"itemIdentifier": record["messageId"]})
            else:
                self.handled.append((event_id, count))
        return InvokeResult(json.dumps({"batchItemFailures": failures}).encode())

    def handled_ids(self) -> set[str]:
        return {event_id for event_id, _ in self.handled}


async def publish_all(js, envelopes: list[EventEnvelope], *, window: int = 256) -> None:
    """Publish with up to ``window`` acknowledgements outstanding (each awaited: nothing unstored is counted)."""
    for start in range(0, len(envelopes), window):
        await asyncio.gather(*(publish_envelope(js, e) for e in envelopes[start:start + window]))


async def consumer_settled(js, consumer: str) -> bool:
    info = await js.consumer_info(STREAM, consumer)
    return info.num_ack_pending == 0 and info.num_pending == 0


class BridgeProcess:
    """A bridge in its own process (``bridge_proc.py``) whose function appends ``<event id> <receive count>`` lines
    to ``out`` before it returns success — so a SIGKILL leaves exactly what the function saw on disk."""

    def __init__(self, nats_url: str, route: Route, out: Path, *, name: str, log: Path, **bridge_kw) -> None:
        self.config = {
            "nats_url": nats_url,
            "name": name,
            "out": str(out),
            "bridge": bridge_kw,
            "route": {
                "consumer_name": route.consumer_name, "function_name": route.function_name,
                "filter_subjects": list(route.filter_subjects), "platform_tenant_id": route.platform_tenant_id,
                "agent": route.agent, "batch_size": route.batch_size, "max_concurrency": route.max_concurrency,
                "max_deliveries": route.max_deliveries, "timeout_s": route.timeout_s,
            },
        }
        self.log = log
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen([sys.executable, str(BRIDGE_PROC), json.dumps(self.config)],
                                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def kill(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def terminate(self) -> int | None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                return self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode if self.process else None


def read_deliveries(path: Path) -> list[tuple[str, int]]:
    """``(event id, receive count)`` per complete line of a :class:`BridgeProcess` output file."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    out = []
    for line in text.splitlines(keepends=True):
        if line.endswith("\n"):
            event_id, count = line.split()
            out.append((event_id, int(count)))
    return out


@pytest.fixture
def dk() -> SimpleNamespace:
    return SimpleNamespace(
        new_id=new_id, envelope=envelope, make_route=make_route, Routes=Routes, wait_until=wait_until,
        RecordingInvoker=RecordingInvoker, publish_all=publish_all, consumer_settled=consumer_settled,
        BridgeProcess=BridgeProcess, read_deliveries=read_deliveries, FAST_BACKOFF=FAST_BACKOFF, free_port=free_port,
    )


@pytest.fixture
async def js(nats_url):
    nc = await nats.connect(nats_url)
    jsc = nc.jetstream()
    await ensure_streams(jsc)
    yield jsc
    await nc.close()


@pytest.fixture
async def make_bridge(nats_url):
    """``await make_bridge(routes, invoker, **kw)``: a started bridge with fast test settings (stopped after)."""
    bridges: list[Bridge] = []

    async def make(routes, invoker, *, url: str | None = None, **kw) -> Bridge:
        kw.setdefault("refresh_interval_s", 0.2)
        kw.setdefault("backoff", FAST_BACKOFF)
        kw.setdefault("fetch_timeout_s", 0.5)
        kw.setdefault("metrics_interval_s", None)
        kw.setdefault("name", f"dbridge-{len(bridges)}")
        bridge = Bridge(url or nats_url, routes if callable(routes) else Routes(*routes), invoker, **kw)
        await bridge.start()
        bridges.append(bridge)
        return bridge

    yield make
    for bridge in bridges:
        await bridge.stop(drain_timeout_s=5)
