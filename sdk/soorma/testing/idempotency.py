"""An in-memory stand-in for the memory function's idempotency routes (``/v1/memory/idempotency/{key}``), for unit
tests and benchmarks of code that uses :class:`soorma.idempotency.PlatformPersistenceLayer` without a platform.

Same semantics as :mod:`soorma.functions.memory.resources.idempotency` (which the integration tests check on PostgreSQL): a
create succeeds when there is no record, or it is expired (``expiry_timestamp`` < now, seconds), or it is INPROGRESS
with an ``in_progress_expiry_timestamp`` < now (milliseconds); otherwise 409 with the live record. Records are scoped
by the identity headers (``X-Soorma-Service-Tenant`` / ``X-Soorma-Service-User``), as an agent principal's are.

    store = FakeIdempotencyStore()
    context = PlatformContext(settings=Settings(api_url="http://platform.test", api_key="sk_x"),
                              transport=httpx.MockTransport(store.handle))

``store.calls`` lists ``(method, key)`` of every request; ``store.records`` maps ``(tenant, user, key)`` to the
record (camelCase, as the route answers).
"""

from __future__ import annotations

import json
import time
from typing import Any, Callable
from urllib.parse import unquote

import httpx

from .._current import TENANT_HEADER, USER_HEADER

PREFIX = "/v1/memory/idempotency/"


class FakeIdempotencyStore:
    """``FakeIdempotencyStore(clock=time.time, fallback=None)``: ``handle(request) -> httpx.Response`` serves the
    idempotency routes; any other path goes to ``fallback`` (a handler of the same shape) or answers 404."""

    def __init__(self, clock: Callable[[], float] = time.time,
                 fallback: Callable[[httpx.Request], httpx.Response] | None = None) -> None:
        self.clock = clock
        self.fallback = fallback
        self.records: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.calls: list[tuple[str, str]] = []

    def _live(self, record: dict[str, Any]) -> bool:
        now = self.clock()
        if record["expiryTimestamp"] < int(now):
            return False
        in_progress = record.get("inProgressExpiryTimestamp")
        return not (record["status"] == "INPROGRESS" and in_progress is not None and in_progress < int(now * 1000))

    def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.raw_path.decode().split("?")[0]
        if not path.startswith(PREFIX):
            if self.fallback is not None:
                return self.fallback(request)
            return httpx.Response(404, json={"detail": f"not served by the fake: {path}"})
        key = unquote(path[len(PREFIX):])
        scope = (request.headers.get(TENANT_HEADER, ""), request.headers.get(USER_HEADER, ""), key)
        self.calls.append((request.method, key))
        body = json.loads(request.content) if request.content else {}
        current = self.records.get(scope)
        if request.method == "PUT":
            if current is not None and self._live(current):
                return httpx.Response(409, json={"detail": {"message": "live record", "record": current}})
            record = {"key": key, "status": body.get("status", "INPROGRESS"),
                      "expiryTimestamp": body["expiry_timestamp"],
                      "inProgressExpiryTimestamp": body.get("in_progress_expiry_timestamp"),
                      "responseData": body.get("response_data") or "", "payloadHash": body.get("payload_hash") or ""}
            self.records[scope] = record
            return httpx.Response(201, json=record)
        if request.method == "GET":
            return httpx.Response(200, json=current) if current else httpx.Response(404, json={"detail": "none"})
        if request.method == "PATCH":
            record = dict(current or {"key": key, "inProgressExpiryTimestamp": None, "payloadHash": ""})
            record.update(status=body["status"], expiryTimestamp=body["expiry_timestamp"],
                          responseData=body.get("response_data") or "")
            if body.get("payload_hash") is not None:
                record["payloadHash"] = body["payload_hash"]
            self.records[scope] = record
            return httpx.Response(200, json=record)
        if request.method == "DELETE":
            if self.records.pop(scope, None) is None:
                return httpx.Response(404, json={"detail": "none"})
            return httpx.Response(204)
        return httpx.Response(405, json={"detail": "method not allowed"})

    async def handle_async(self, request: httpx.Request) -> httpx.Response:
        """:meth:`handle` for ``httpx.MockTransport`` with an async client."""
        await request.aread()
        return self.handle(request)


__all__ = ["FakeIdempotencyStore"]
