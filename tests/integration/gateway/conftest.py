"""The platform's HTTP API as a client sees it, in-process: the local API Gateway (:class:`LocalApiGateway`, with its
authorizer cache) in front of the real authorizer and the real gateway, registry, memory and tracker handlers, on the
session's real PostgreSQL (as soorma_app, RLS applies) and NATS JetStream.

The in-process invoker calls each Lambda handler directly on a worker thread (what the local Lambda runtime does in a
subprocess), so a test sees exactly the status, headers and body a client of ``soorma local`` would.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import psycopg
import pytest
from mangum import Mangum
from starlette.applications import Starlette
from starlette.routing import Route
from starlette.testclient import TestClient

from soorma.functions.shared.db import Database

PEPPER = "gateway-test-pepper"
JWT_SECRET = "gateway-test-jwt-secret-0123456789abcdef"
JWT_AUDIENCE = "soorma-test"
PLATFORM = "platform"


@dataclass
class Result:
    payload: bytes
    function_error: str | None = None


class InProcessInvoker:
    """``invoke(function_name, payload)`` → :class:`Result`, calling the handlers in this process."""

    def __init__(self, handlers: dict[str, Any]) -> None:
        self.handlers = handlers
        self.calls: list[str] = []

    def _call(self, name: str, event: dict[str, Any]) -> Result:
        from soorma.functions.shared.service import ensure_event_loop

        ensure_event_loop()
        try:
            out = self.handlers[name](event, None)
        except Exception as exc:  # noqa: BLE001 - a function error, as Lambda reports it
            return Result(json.dumps({"errorMessage": str(exc)}).encode(), "Unhandled")
        return Result(json.dumps(out).encode())

    async def invoke(self, function_name: str, payload: bytes) -> Result:
        self.calls.append(function_name)
        return await asyncio.to_thread(self._call, function_name, json.loads(payload))


@pytest.fixture(scope="session")
def gw_env():
    """Environment of the functions under test (the pepper, the JWT secret, generous default rate limits)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SOORMA_API_KEY_PEPPER", PEPPER)
        mp.setenv("SOORMA_JWT_SECRET", JWT_SECRET)
        mp.setenv("SOORMA_JWT_AUDIENCE", JWT_AUDIENCE)
        mp.setenv("SOORMA_PLATFORM_ADMIN_TENANT", PLATFORM)
        mp.setenv("SOORMA_EMBEDDING_PROVIDER", os.environ.get("SOORMA_EMBEDDING_PROVIDER", "local"))
        yield os.environ


@pytest.fixture(scope="session")
def gw_db(app_dsn) -> Database:
    database = Database(app_dsn, max_size=4)
    yield database
    database.close()


@pytest.fixture(scope="session")
def gw_publisher(nats_url):
    from soorma.functions.gateway.publisher import NatsPublisher

    publisher = NatsPublisher(nats_url)
    yield publisher
    publisher.close()


@pytest.fixture(scope="session")
def apps(gw_env, gw_db, gw_publisher):
    from soorma.functions.gateway.app import create_app as gateway_app
    from soorma.functions.identity.app import create_app as identity_app
    from soorma.functions.memory.app import create_app as memory_app
    from soorma.functions.protocols.app import create_app as protocols_app
    from soorma.functions.registry.app import create_app as registry_app
    from soorma.functions.tracker.app import create_app as tracker_app

    return {
        "gateway": gateway_app(gw_db, gw_publisher),
        "registry": registry_app(gw_db),
        "memory": memory_app(gw_db),
        "tracker": tracker_app(gw_db),
        "protocols": protocols_app(gw_db, gw_publisher),
        "identity": identity_app(gw_db),
    }


@pytest.fixture(scope="session")
def invoker(apps, gw_db):
    from soorma.functions.gateway import authorizer
    from soorma.functions.gateway.tokens import JwtSettings

    settings = JwtSettings(secret=JWT_SECRET, audience=(JWT_AUDIENCE,))
    handlers: dict[str, Any] = {name: Mangum(app, lifespan="off") for name, app in apps.items()}
    handlers["authorizer"] = lambda event, context: authorizer.authorize(
        event, gw_db, pepper=PEPPER, jwt_settings=settings
    )
    return InProcessInvoker(handlers)


def make_client(invoker, ttl: float = 30.0) -> TestClient:
    from soorma.local.apigw import LocalApiGateway

    gateway = LocalApiGateway(invoker, authorizer="authorizer", authorizer_ttl_s=ttl)

    async def api(request):
        return await gateway.handle(request)

    app = Starlette(routes=[Route("/{path:path}", api, methods=["GET", "POST", "PUT", "PATCH", "DELETE"])])
    client = TestClient(app, base_url="http://api.local")
    client.gateway = gateway  # type: ignore[attr-defined]
    client.asgi_app = app  # type: ignore[attr-defined]
    return client


@pytest.fixture(scope="session")
def api(invoker):
    """A client of the local API Gateway (authorizer cache on, 30 s as in the stack)."""
    with make_client(invoker) as client:
        yield client


@pytest.fixture(scope="session")
def owner_conn(postgres):
    with psycopg.connect(postgres, autocommit=True) as conn:
        yield conn


@pytest.fixture(scope="session")
def platform_admin(gw_env, owner_conn) -> str:
    """The bootstrap platform admin's key (what the local stack writes to credentials.json as admin_api_key)."""
    from soorma.functions.gateway.keys import create_api_key

    owner_conn.execute(
        "insert into gateway.tenants (platform_tenant_id, name) values (%s, 'platform operator')"
        " on conflict do nothing",
        (PLATFORM,),
    )
    return create_api_key(owner_conn, platform_tenant_id=PLATFORM, service_tenant_id=PLATFORM,
                          service_user_id="admin", role="admin", name="bootstrap", pepper=PEPPER)


def bearer(key: str, **extra: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}", **extra}


def onboard(api, platform_admin: str, *, limits: bool = True) -> SimpleNamespace:
    """Onboard a fresh tenant through the API; return its id and keys of every role (created through the API)."""
    tenant = f"pt_{secrets.token_hex(5)}"
    reply = api.post("/v1/tenants", headers=bearer(platform_admin), json={"platform_tenant_id": tenant, "name": tenant})
    assert reply.status_code == 201, reply.text
    admin = reply.json()["admin_api_key"]
    ids = {"admin": reply.json()["admin_key_id"]}
    if limits:  # the matrix makes hundreds of calls: lift this tenant's buckets
        reply = api.patch(f"/v1/tenants/{tenant}", headers=bearer(platform_admin),
                          json={"key_rps": 10000, "key_burst": 10000, "tenant_rps": 10000, "tenant_burst": 10000})
        assert reply.status_code == 200, reply.text
    keys = {"admin": admin}
    for role in ("developer", "agent", "user"):
        created = api.post("/v1/api-keys", headers=bearer(admin),
                           json={"role": role, "name": role, "service_tenant_id": f"st_{tenant}",
                                 "service_user_id": f"su_{role}_{tenant}"})
        assert created.status_code == 201, created.text
        keys[role] = created.json()["api_key"]
        ids[role] = created.json()["key_id"]
    return SimpleNamespace(id=tenant, keys=keys, key_ids=ids, service_tenant=f"st_{tenant}")


def jwt_for(tenant: str, role: str = "admin", *, ttl_s: float = 600, **claims: Any) -> str:
    from soorma.functions.gateway.tokens import issue_hs256

    return issue_hs256({"sub": f"jwt_{role}", "platform_tenant_id": tenant, "role": role, "aud": JWT_AUDIENCE,
                        **claims}, JWT_SECRET,
                       ttl_s=ttl_s)


@pytest.fixture(scope="session")
def gx():
    """Helpers for the gateway tests (test modules cannot import conftest with --import-mode=importlib)."""
    return SimpleNamespace(bearer=bearer, onboard=onboard, jwt_for=jwt_for, make_client=make_client,
                           PEPPER=PEPPER, JWT_SECRET=JWT_SECRET, JWT_AUDIENCE=JWT_AUDIENCE,
                           PLATFORM=PLATFORM)
