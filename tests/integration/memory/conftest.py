"""Fixtures for the memory function's integration tests: the real app behind Mangum, called with API Gateway HTTP API
(payload 2.0) events that carry an authorizer context, on the session's real PostgreSQL + pgvector.
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import psycopg
import pytest

from soorma import testing
from soorma.identity import Identity


def http_event(
    method: str,
    path: str,
    *,
    body: Any = None,
    raw_body: str | None = None,
    query: dict[str, Any] | None = None,
    identity: Identity | None = None,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """An API Gateway HTTP API (payload format 2.0) event as the gateway sends it to a Lambda integration
    (:func:`soorma.testing.http_api_event`), with the Lambda authorizer's context at
    ``requestContext.authorizer.lambda`` when ``identity`` is given."""
    defaults = {"host": "localhost", "user-agent": "pytest"}
    if body is not None or raw_body is not None:
        defaults["content-type"] = "application/json"
    return testing.http_api_event(
        method, path, identity=identity, body=body, raw_body=raw_body, query=query,
        headers={**defaults, **(headers or {})},
    )


@dataclass
class Reply:
    status: int
    body: Any
    headers: dict[str, str]


class MemoryApi:
    """Calls the Lambda handler the way API Gateway does and decodes the reply."""

    def __init__(self, handler) -> None:
        self.handler = handler
        self.context = SimpleNamespace(function_name="memory", aws_request_id="test", get_remaining_time_in_millis=lambda: 30000)

    def call(self, method: str, path: str, identity: Identity | None, **kwargs: Any) -> Reply:
        result = self.handler(http_event(method, path, identity=identity, **kwargs), self.context)
        raw = result.get("body") or ""
        if result.get("isBase64Encoded"):
            raw = base64.b64decode(raw).decode()
        body = json.loads(raw) if raw else None
        return Reply(result["statusCode"], body, result.get("headers") or {})


def memory_transport(api: "MemoryApi", who: Identity):
    """An httpx transport that sends an SDK client's requests to the real memory function as the gateway would: the
    authorizer's identity is ``who``, and the request's ``X-Soorma-Service-Tenant`` / ``-User`` / ``X-Soorma-Grant``
    headers reach the function, which applies them itself (:func:`soorma.identity.act_for`: an ``agent`` acts for
    the tenant and user they name with the delivery grant of the event it handles). Paths outside ``/v1/memory/`` answer 404 (only the memory function is served)."""
    import asyncio

    import httpx

    from soorma.functions.shared.service import ensure_event_loop
    from soorma.identity import GRANT_HEADER, SERVICE_TENANT_HEADER, SERVICE_USER_HEADER

    def call(request: httpx.Request) -> httpx.Response:
        ensure_event_loop()
        if not request.url.path.startswith("/v1/memory/"):
            return httpx.Response(404, json={"detail": f"not served in this test: {request.url.path}"})
        headers = {"content-type": "application/json", "host": "memory.test"}
        for name in (SERVICE_TENANT_HEADER, SERVICE_USER_HEADER, GRANT_HEADER):
            if name in request.headers:
                headers[name] = request.headers[name]
        body = request.content.decode() if request.content else None
        event = testing.http_api_event(
            request.method, request.url.path, identity=who, raw_body=body,
            query=request.url.query.decode() if request.url.query else None, headers=headers,
        )
        event["rawPath"] = request.url.raw_path.decode().split("?")[0]
        result = api.handler(event, api.context)
        raw = result.get("body") or ""
        content = base64.b64decode(raw) if result.get("isBase64Encoded") else raw.encode()
        return httpx.Response(result["statusCode"], content=content, headers=result.get("headers") or {})

    async def handle(request: httpx.Request) -> httpx.Response:
        await request.aread()
        return await asyncio.to_thread(call, request)

    return httpx.MockTransport(handle)


def new_identity(platform: str | None = None, service: str | None = None, user: str | None = None,
                 role: str = "agent") -> Identity:
    """A fresh identity (unique ids unless given), so tests sharing the session database never see each other
    (:func:`soorma.testing.new_identity`)."""
    return testing.new_identity(role, platform_tenant_id=platform, service_tenant_id=service, service_user_id=user)


class CountingEmbedder:
    """The real embedder, counting the texts it was asked to embed (to observe embedding reuse)."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.dimensions = inner.dimensions
        self.texts: list[str] = []

    def embed(self, texts: list[str]) -> list[list[float]]:
        self.texts.extend(texts)
        return self.inner.embed(texts)


@pytest.fixture(scope="session")
def pgvector_works(postgres) -> None:
    """Fail early, with the reason, when the server's pgvector cannot compute a distance on this CPU (a vector.so
    built with ``-march=native`` on an AVX-512 machine dies with SIGILL on 16+-dimension vectors)."""
    probe = "select (array_fill(1.0, array[16]))::vector <=> (array_fill(2.0, array[16]))::vector"
    try:
        with psycopg.connect(postgres, autocommit=True) as conn:
            conn.execute(probe).fetchone()
    except psycopg.OperationalError as exc:
        time.sleep(3)  # let the postmaster finish its crash recovery before anything else connects
        pytest.fail(
            "pgvector crashed the PostgreSQL backend computing a cosine distance (likely SIGILL: its vector.so uses "
            f"CPU instructions this machine lacks, e.g. AVX-512): {exc}",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def embedder():
    from soorma.functions.memory.embeddings.local import LocalMiniLM

    model = LocalMiniLM()
    model.load()
    return model


@pytest.fixture(scope="session")
def memory_db(app_dsn, pgvector_works):
    from soorma.functions.shared.db import Database

    db = Database(app_dsn)
    yield db
    db.close()


@pytest.fixture
def counting_embedder(embedder) -> CountingEmbedder:
    return CountingEmbedder(embedder)


#: The functions' ``SOORMA_API_KEY_PEPPER`` in these tests: the delivery grants of events are derived from it.
PEPPER = "memory-test-pepper"


@pytest.fixture
def api(memory_db, counting_embedder, monkeypatch) -> MemoryApi:
    from mangum import Mangum

    monkeypatch.setenv("SOORMA_API_KEY_PEPPER", PEPPER)  # the memory function verifies delivery grants with it

    from soorma.functions.memory.app import create_app

    return MemoryApi(Mangum(create_app(db=memory_db, embedder=counting_embedder), lifespan="off"))


@pytest.fixture
def make_identity():
    """``make_identity(platform=None, service=None, user=None, role="agent") -> Identity`` with fresh ids."""
    return new_identity
