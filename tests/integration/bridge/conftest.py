"""Fixtures of the bridge tests: a JetStream connection and bridges on the session's real nats-server.

Functions are in-process Python handlers behind :class:`HandlerInvoker` (the real local Lambda runtime is tested in
``tests/integration/runtime``). Every test uses fresh platform tenant ids and consumer names, so tests sharing the
session's server and streams never see each other's events. The suite runs with ``--import-mode=importlib``, so the
helpers reach the tests through the ``kit`` fixture rather than an import; ``js`` and ``make_bridge`` are the shared
ones of ``tests/integration/conftest.py``.
"""

from __future__ import annotations

import inspect
import json
from types import SimpleNamespace
from typing import Any, Callable

import pytest

from soorma.events import EventEnvelope
from soorma.functions.bridge import FunctionThrottled, InvokeResult
from soorma.jetstream import publish_envelope


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


@pytest.fixture
def kit(bus_kit) -> SimpleNamespace:
    """The shared helpers (``tests/integration/conftest.py``: ``kit.Routes``, ``kit.make_route``, ``kit.envelope``,
    ``kit.new_id``, ``kit.wait_until``, ``kit.FAST_BACKOFF``) and ``kit.HandlerInvoker``."""
    return SimpleNamespace(**vars(bus_kit), HandlerInvoker=HandlerInvoker)


@pytest.fixture
async def publish(js):
    async def publish_(*envelopes: EventEnvelope) -> list[EventEnvelope]:
        for env in envelopes:
            await publish_envelope(js, env)
        return list(envelopes)

    return publish_
