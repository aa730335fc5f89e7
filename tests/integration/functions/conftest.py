"""Helpers for the platform-function tests: API Gateway v2 events (with an authorizer context) driven through the real
Mangum handlers, on the real PostgreSQL (role soorma_app, RLS applies) and the real NATS JetStream."""

from __future__ import annotations

import asyncio
import base64
import json
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import psycopg
import pytest
from mangum import Mangum

from soorma import testing
from soorma.functions.shared.db import Database
from soorma.identity import Identity

PEPPER = "test-pepper"


def new_identity(role: str = "developer", *, pt: str | None = None, st: str | None = None,
                 su: str | None = None) -> Identity:
    """An identity with fresh (unique) tenant values unless given (:func:`soorma.testing.new_identity`)."""
    return testing.new_identity(role, platform_tenant_id=pt, service_tenant_id=st, service_user_id=su)


def http_event(
    method: str,
    path: str,
    *,
    identity: Identity | None = None,
    body: Any = None,
    raw_body: str | None = None,
    query: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """An API Gateway HTTP API (payload format 2.0) event (:func:`soorma.testing.http_api_event`) with JSON headers;
    ``identity`` goes to ``requestContext.authorizer.lambda`` as the authorizer's context would."""
    return testing.http_api_event(
        method, path, identity=identity, body=body, raw_body=raw_body, query=query,
        headers={"host": "api.local", "content-type": "application/json", **(headers or {})},
    )


def authorizer_event(headers: dict[str, str], path: str = "/v1/goals", method: str = "POST") -> dict[str, Any]:
    """An HTTP API Lambda authorizer event (payload format 2.0) for a request with ``headers``."""
    return testing.authorizer_event(http_event(method, path, headers=headers))


@dataclass
class Reply:
    status: int
    body: Any
    raw: dict[str, Any]


def invoke(handler, event: dict[str, Any]) -> Reply:
    """Call a Lambda handler with an HTTP event and decode its response."""
    from soorma.functions.shared.service import ensure_event_loop

    ensure_event_loop()  # Mangum needs an open loop on this thread (what the Lambda runtime's main thread has)
    out = handler(event, None)
    text = out.get("body") or ""
    if out.get("isBase64Encoded"):
        text = base64.b64decode(text).decode()
    try:
        body = json.loads(text) if text else None
    except ValueError:
        body = text
    return Reply(out["statusCode"], body, out)


def run(coro):
    """Run a coroutine on a private loop (leaves the main thread's loop alone for Mangum)."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


async def _last_message(nats_url: str, subject: str):
    import nats

    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        return await js.get_last_msg("SOORMA_EVENTS", subject)
    finally:
        await nc.close()


def last_message(nats_url: str, subject: str):
    """The last stored JetStream message on ``subject`` (``RawStreamMsg``: ``.data``, ``.headers``, ``.seq``)."""
    return run(_last_message(nats_url, subject))


@pytest.fixture(scope="session")
def fx():
    """The helpers above (with --import-mode=importlib test modules cannot import conftest)."""
    return SimpleNamespace(
        new_identity=new_identity,
        http_event=http_event,
        authorizer_event=authorizer_event,
        invoke=invoke,
        run=run,
        last_message=last_message,
        PEPPER=PEPPER,
    )


@pytest.fixture(scope="session")
def db(app_dsn) -> Database:
    """The functions' database access, as role soorma_app."""
    database = Database(app_dsn)
    yield database
    database.close()


@pytest.fixture
def owner(postgres):
    """An autocommit owner connection (creates and revokes API keys)."""
    with psycopg.connect(postgres, autocommit=True) as conn:
        yield conn


@pytest.fixture
def pepper(monkeypatch):
    monkeypatch.setenv("SOORMA_API_KEY_PEPPER", PEPPER)
    return PEPPER


@pytest.fixture(scope="session")
def registry(db):
    from soorma.functions.registry.app import create_app

    return Mangum(create_app(db), lifespan="off")


@pytest.fixture(scope="session")
def gateway_publisher(nats_url):
    from soorma.functions.gateway.publisher import NatsPublisher

    publisher = NatsPublisher(nats_url)
    yield publisher
    publisher.close()


@pytest.fixture(scope="session")
def gateway(db, gateway_publisher):
    from soorma.functions.gateway.app import create_app

    # The gateway stamps a delivery grant on every event it accepts, with the key derived from the pepper (as the
    # platform's functions always have it).
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SOORMA_API_KEY_PEPPER", PEPPER)
        yield Mangum(create_app(db, gateway_publisher), lifespan="off")


@pytest.fixture(scope="session")
def tracker_http(db):
    from soorma.functions.tracker.app import create_app

    return Mangum(create_app(db), lifespan="off")
