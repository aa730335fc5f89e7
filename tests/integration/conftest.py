"""Helpers and fixtures shared by the event-delivery tests (``bridge``, ``delivery``, ``sqs``): fresh ids and
envelopes, routes, polling, an in-process function that records what it was given, and bridges on the session's
nats-server.

The suite runs with ``--import-mode=importlib``, so the helpers reach the tests (and each folder's own ``kit``,
``dk`` and ``sq`` namespaces) through the ``bus_kit`` fixture rather than an import.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from types import SimpleNamespace
from typing import Any, Callable

import nats
import pytest

from soorma.events import EventEnvelope
from soorma.functions.bridge import Bridge, ExponentialBackoff, FunctionThrottled, InvokeResult, Route
from soorma.jetstream import ensure_streams
from soorma.subjects import filter_subject
from soorma.testing import free_port

FAST_BACKOFF = ExponentialBackoff(base_s=0.02, cap_s=0.1)


def new_id(prefix: str = "t") -> str:
    """``prefix`` and 10 random hex digits: a tenant, agent or consumer no other test uses."""
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def envelope(tenant: str, event_type: str, topic: str = "action-requests", **data) -> EventEnvelope:
    return EventEnvelope(type=event_type, topic=topic, platform_tenant_id=tenant, data=data)


def make_route(tenant: str, agent: str, *event_types: str, topic: str = "action-requests", **kw) -> Route:
    """A bridge route of ``agent`` for ``event_types`` on ``topic`` (consumer ``<tenant>__<agent>`` and function
    ``fn-<tenant>-<agent>`` unless given); other ``kw`` are :class:`Route` fields."""
    return Route(
        consumer_name=kw.pop("consumer_name", f"{tenant}__{agent}"),
        function_name=kw.pop("function_name", f"fn-{tenant}-{agent}"),
        filter_subjects=tuple(filter_subject(tenant, topic, t) for t in event_types),
        platform_tenant_id=tenant,
        agent=agent,
        **kw,
    )


class Routes:
    """A mutable route table: ``await routes()`` returns the current list (what the registry adapter does)."""

    def __init__(self, *routes: Route) -> None:
        self.items = list(routes)

    async def __call__(self) -> list[Route]:
        return list(self.items)


async def wait_until(predicate: Callable[[], bool], timeout_s: float = 10.0, interval_s: float = 0.02,
                     what: str = "condition") -> None:
    """Poll ``predicate`` every ``interval_s`` seconds; ``AssertionError`` naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout_s}s")
        await asyncio.sleep(interval_s)


class RecordingFunction:
    """An in-process function of an SQS-shaped batch: ``handler(event_id, record)`` per record (sync or async;
    raising fails that item, reported as a partial batch failure the way the SDK's BatchProcessor entry point reports
    it), after sleeping ``seconds``. Keeps every (event id, receive count) that reached it (``seen``) and that returned
    without error (``handled``), the batches, and the number of invocations."""

    def __init__(self, handler: Callable[[str, dict], Any] | None = None, *, seconds: float = 0.0) -> None:
        self.handler = handler
        self.seconds = seconds
        self.seen: list[tuple[str, int]] = []
        self.handled: list[tuple[str, int]] = []
        self.batches: list[list[dict]] = []
        self.invocations = 0

    async def invoke(self, function_name: str, payload: bytes) -> InvokeResult:
        self.invocations += 1
        records = json.loads(payload)["Records"]
        self.batches.append(records)
        if self.seconds:
            await asyncio.sleep(self.seconds)
        failures = []
        for record in records:
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


class ThrottledFunction:
    """A function with a reserved concurrency of ``limit`` in front of ``inner``: a call beyond it is refused the way
    Lambda refuses it (429, :class:`FunctionThrottled`); each admitted call takes ``seconds`` more."""

    def __init__(self, inner, limit: int = 1, seconds: float = 0.02) -> None:
        self.inner, self.limit, self.seconds = inner, limit, seconds
        self.running = 0
        self.throttles = 0

    async def invoke(self, function_name: str, payload: bytes) -> InvokeResult:
        if self.running >= self.limit:
            self.throttles += 1
            raise FunctionThrottled("Rate Exceeded. (TooManyRequestsException)")
        self.running += 1
        try:
            await asyncio.sleep(self.seconds)
            return await self.inner.invoke(function_name, payload)
        finally:
            self.running -= 1


@pytest.fixture
def bus_kit() -> SimpleNamespace:
    """The helpers above, for each folder's own namespace fixture."""
    return SimpleNamespace(new_id=new_id, envelope=envelope, make_route=make_route, Routes=Routes,
                           wait_until=wait_until, RecordingFunction=RecordingFunction,
                           ThrottledFunction=ThrottledFunction, FAST_BACKOFF=FAST_BACKOFF, free_port=free_port)


@pytest.fixture
async def js(nats_url):
    """A JetStream context on the session's nats-server, with the platform's streams."""
    nc = await nats.connect(nats_url)
    jsc = nc.jetstream()
    await ensure_streams(jsc)
    yield jsc
    await nc.close()


@pytest.fixture
async def make_bridge(nats_url):
    """``await make_bridge(routes, invoker, *, url=None, **kw)``: a started bridge on ``url`` (default the session's
    nats-server) with fast test settings and no periodic metrics unless ``kw`` says otherwise; all stopped after."""
    bridges: list[Bridge] = []

    async def make(routes, invoker, *, url: str | None = None, **kw) -> Bridge:
        kw.setdefault("refresh_interval_s", 0.2)
        kw.setdefault("backoff", FAST_BACKOFF)
        kw.setdefault("fetch_timeout_s", 0.5)
        kw.setdefault("metrics_interval_s", None)
        kw.setdefault("name", f"bridge-{len(bridges)}")
        bridge = Bridge(url or nats_url, routes if callable(routes) else Routes(*routes), invoker, **kw)
        await bridge.start()
        bridges.append(bridge)
        return bridge

    yield make
    for bridge in bridges:
        await bridge.stop(drain_timeout_s=5)
