"""Fixtures of the bridge tests: a JetStream connection and bridges on the session's real nats-server.

Functions are in-process Python handlers behind :class:`HandlerInvoker` (the real local Lambda runtime is tested in
``tests/integration/runtime``). Every test uses fresh platform tenant ids and consumer names, so tests sharing the
session's server and streams never see each other's events. The suite runs with ``--import-mode=importlib``, so the
helpers reach the tests through the ``kit`` fixture rather than an import.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import time
import uuid
from types import SimpleNamespace
from typing import Any, Callable

import nats
import pytest

from soorma.events import EventEnvelope
from soorma.functions.bridge import Bridge, ExponentialBackoff, FunctionThrottled, InvokeResult, Route
from soorma.jetstream import ensure_streams, publish_envelope
from soorma.subjects import filter_subject

FAST_BACKOFF = ExponentialBackoff(base_s=0.02, cap_s=0.1)


def new_id(prefix: str = "t") -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


class HandlerInvoker:
    """Runs ``handler(function_name, event)`` in-process like a synchronous Lambda invoke.

    A returned value is the JSON response (``None`` → ``null``); ``bytes`` are returned raw; an exception becomes an
    ``Unhandled`` function error with Lambda's error payload; :class:`FunctionThrottled` propagates. Every call's
    decoded event is kept in ``calls`` as ``(function_name, event)``.
    """

    def __init__(self, handler: Callable[[str, dict], Any] | None = None) -> None:
        self.handler = handler or (lambda name, event: None)
        self.calls: list[tuple[str, dict]] = []

    async def invoke(self, function_name: str, payload: bytes) -> InvokeResult:
        event = json.loads(payload)
        self.calls.append((function_name, event))
        try:
            result = self.handler(function_name, event)
            if inspect.isawaitable(result):
                result = await result
        except FunctionThrottled:
            raise
        except Exception as exc:  # what a Lambda reports for an unhandled error
            body = {"errorMessage": str(exc), "errorType": type(exc).__name__}
            return InvokeResult(json.dumps(body).encode(), "Unhandled")
        if isinstance(result, bytes):
            return InvokeResult(result)
        return InvokeResult(json.dumps(result).encode())

    def records(self, function_name: str | None = None) -> list[dict]:
        return [r for name, event in self.calls if function_name in (None, name) for r in event["Records"]]

    def event_ids(self, function_name: str | None = None) -> list[str]:
        return [json.loads(r["body"])["id"] for r in self.records(function_name)]


async def wait_until(predicate: Callable[[], bool], timeout_s: float = 10.0, interval_s: float = 0.02) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s")
        await asyncio.sleep(interval_s)


def make_route(tenant: str, agent: str, *event_types: str, topic: str = "action-requests", **kw) -> Route:
    return Route(
        consumer_name=kw.pop("consumer_name", f"{tenant}__{agent}"),
        function_name=kw.pop("function_name", f"fn-{tenant}-{agent}"),
        filter_subjects=tuple(filter_subject(tenant, topic, t) for t in event_types),
        platform_tenant_id=tenant,
        agent=agent,
        **kw,
    )


def envelope(tenant: str, event_type: str, topic: str = "action-requests", **data) -> EventEnvelope:
    return EventEnvelope(type=event_type, topic=topic, platform_tenant_id=tenant, data=data)


class Routes:
    """A mutable route table: ``await routes()`` returns the current list (what the registry adapter does)."""

    def __init__(self, *routes: Route) -> None:
        self.items = list(routes)

    async def __call__(self) -> list[Route]:
        return list(self.items)


@pytest.fixture
def kit() -> SimpleNamespace:
    """The helpers above: ``kit.HandlerInvoker``, ``kit.Routes``, ``kit.make_route``, ``kit.envelope``,
    ``kit.new_id``, ``kit.wait_until``, ``kit.FAST_BACKOFF``."""
    return SimpleNamespace(HandlerInvoker=HandlerInvoker, Routes=Routes, make_route=make_route, envelope=envelope,
                           new_id=new_id, wait_until=wait_until, FAST_BACKOFF=FAST_BACKOFF)


@pytest.fixture
async def js(nats_url):
    nc = await nats.connect(nats_url)
    jsc = nc.jetstream()
    await ensure_streams(jsc)
    yield jsc
    await nc.close()


@pytest.fixture
async def publish(js):
    async def publish_(*envelopes: EventEnvelope) -> list[EventEnvelope]:
        for env in envelopes:
            await publish_envelope(js, env)
        return list(envelopes)

    return publish_


@pytest.fixture
async def make_bridge(nats_url):
    """``await make_bridge(routes, invoker, **kw)`` starts a bridge with fast test settings; all are stopped after."""
    bridges: list[Bridge] = []

    async def make(routes, invoker, **kw) -> Bridge:
        kw.setdefault("refresh_interval_s", 0.2)
        kw.setdefault("backoff", FAST_BACKOFF)
        kw.setdefault("fetch_timeout_s", 0.5)
        kw.setdefault("name", f"bridge-{len(bridges)}")
        bridge = Bridge(nats_url, routes if callable(routes) else Routes(*routes), invoker, **kw)
        await bridge.start()
        bridges.append(bridge)
        return bridge

    yield make
    for bridge in bridges:
        await bridge.stop(drain_timeout_s=5)
