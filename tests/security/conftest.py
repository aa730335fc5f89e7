"""Fixtures of the security tests (issue 12): the platform's HTTP API as an attacker on the network sees it, in-process
— the local API Gateway (:class:`soorma.local.apigw.LocalApiGateway`, authorizer cache on as in the stack) in front of
the real authorizer and the real gateway, registry, memory and tracker functions, on the session's real PostgreSQL
(as soorma_app, RLS applies) and NATS JetStream. No service of ours is mocked.

The in-process invoker calls each Lambda handler on a worker thread, as the local Lambda runtime does in a subprocess.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import secrets
import textwrap
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import httpx
import psycopg
import pytest
from botocore.config import Config
from mangum import Mangum
from starlette.applications import Starlette
from starlette.routing import Route
from starlette.testclient import TestClient

from soorma.db import Database

PEPPER = "security-test-pepper"
JWT_SECRET = "security-test-jwt-secret-0123456789abcdef"
JWT_AUDIENCE = "soorma-security-test"
PLATFORM = "platform"


@dataclass
class Result:
    payload: bytes
    function_error: str | None = None


class InProcessInvoker:
    """``invoke(function_name, payload)`` → :class:`Result`, calling the real handlers in this process."""

    def __init__(self, handlers: dict[str, Any]) -> None:
        self.handlers = handlers

    def _call(self, name: str, event: dict[str, Any]) -> Result:
        from soorma.service import ensure_event_loop

        ensure_event_loop()
        try:
            out = self.handlers[name](event, None)
        except Exception as exc:  # noqa: BLE001 - a function error, as Lambda reports it
            return Result(json.dumps({"errorMessage": str(exc)}).encode(), "Unhandled")
        return Result(json.dumps(out).encode())

    async def invoke(self, function_name: str, payload: bytes) -> Result:
        return await asyncio.to_thread(self._call, function_name, json.loads(payload))


@pytest.fixture(scope="session")
def sec_env():
    """The functions' environment: the pepper (API key hashes and the delivery-grant key), HS256 JWTs with their
    audience, the platform-operator tenant."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SOORMA_API_KEY_PEPPER", PEPPER)
        mp.setenv("SOORMA_JWT_SECRET", JWT_SECRET)
        mp.setenv("SOORMA_JWT_AUDIENCE", JWT_AUDIENCE)
        mp.setenv("SOORMA_PLATFORM_ADMIN_TENANT", PLATFORM)
        mp.setenv("SOORMA_EMBEDDING_PROVIDER", os.environ.get("SOORMA_EMBEDDING_PROVIDER", "local"))
        yield os.environ


@pytest.fixture(scope="session")
def sec_db(app_dsn) -> Database:
    database = Database(app_dsn, max_size=4)
    yield database
    database.close()


@pytest.fixture(scope="session")
def sec_publisher(nats_url):
    from soorma.functions.gateway.publisher import NatsPublisher

    publisher = NatsPublisher(nats_url)
    yield publisher
    publisher.close()


@pytest.fixture(scope="session")
def invoker(sec_env, sec_db, sec_publisher):
    from soorma.functions.gateway import authorizer
    from soorma.functions.gateway.app import create_app as gateway_app
    from soorma.functions.memory.app import create_app as memory_app
    from soorma.functions.registry.app import create_app as registry_app
    from soorma.functions.tracker.app import create_app as tracker_app

    apps = {"gateway": gateway_app(sec_db, sec_publisher), "registry": registry_app(sec_db),
            "memory": memory_app(sec_db), "tracker": tracker_app(sec_db)}
    handlers: dict[str, Any] = {name: Mangum(app, lifespan="off") for name, app in apps.items()}
    # The real authorizer handler's logic on the session database, its settings from the environment above.
    handlers["authorizer"] = lambda event, context: authorizer.authorize(event, sec_db)
    return InProcessInvoker(handlers)


def make_client(invoker, ttl: float = 30.0) -> TestClient:
    """A client of a fresh local API Gateway (``ttl`` > 0: authorizer cache on, keyed on ``Authorization``)."""
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
    """A client of the local API Gateway with its authorizer cache on (30 s, as in the stack)."""
    with make_client(invoker) as client:
        yield client


@pytest.fixture(scope="session")
def owner_conn(postgres):
    with psycopg.connect(postgres, autocommit=True) as conn:
        yield conn


@pytest.fixture(scope="session")
def platform_admin(sec_env, owner_conn) -> str:
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


def onboard(api, platform_admin: str, *, service_tenant: str | None = None,
            users: tuple[str, ...] = ("alice", "bob")) -> SimpleNamespace:
    """Onboard a fresh platform tenant through the API: its admin key, an ``agent`` key (acting as itself in
    ``service_tenant``), and a ``user`` key per name in ``users`` (service tenant ``service_tenant``, default
    ``st_<tenant>``). Rate limits lifted (these tests make many calls)."""
    tenant = f"pt_{secrets.token_hex(5)}"
    st = service_tenant or f"st_{tenant}"
    reply = api.post("/v1/tenants", headers=bearer(platform_admin), json={"platform_tenant_id": tenant, "name": tenant})
    assert reply.status_code == 201, reply.text
    admin = reply.json()["admin_api_key"]
    reply = api.patch(f"/v1/tenants/{tenant}", headers=bearer(platform_admin),
                      json={"key_rps": 10000, "key_burst": 10000, "tenant_rps": 10000, "tenant_burst": 10000})
    assert reply.status_code == 200, reply.text
    keys = {"admin": admin}
    for role, user in (("agent", "the-agent"), *(("user", u) for u in users)):
        created = api.post("/v1/api-keys", headers=bearer(admin),
                           json={"role": role, "name": user, "service_tenant_id": st, "service_user_id": user})
        assert created.status_code == 201, created.text
        keys[user if role == "user" else role] = created.json()["api_key"]
    return SimpleNamespace(id=tenant, keys=keys, service_tenant=st)


@pytest.fixture(scope="session")
def sx():
    """Helpers (test modules cannot import conftest with --import-mode=importlib)."""
    return SimpleNamespace(bearer=bearer, onboard=onboard, make_client=make_client, PEPPER=PEPPER,
                           JWT_SECRET=JWT_SECRET, JWT_AUDIENCE=JWT_AUDIENCE, PLATFORM=PLATFORM)


# --- the real local stack (findings 2, 6 and 10's local items) ---
# One real local stack (``soorma local up`` in a temporary ``SOORMA_HOME`` on free ports) shared by the security
# tests of the local stack, with one plain function deployed through the deploy path (``PUT /_local/functions``):
# ``sec-echo`` answers with its event, the client context it was given and the names of its environment.
#
# The helpers sign like any client of the stack would: boto3 with the access key of ``secrets.json``.




ROOT = Path(__file__).resolve().parents[2]
ECHO = "sec-echo"
ECHO_SOURCE = """
    import os

    def handler(event, context):
        custom = context.client_context.custom if context.client_context else None
        return {"event": event, "client_context": custom, "env": sorted(os.environ)}
"""


def _e2e_helpers():
    """``tests/e2e/conftest.py`` as a module (its ``local_stack`` starts and stops a stack)."""
    spec = importlib.util.spec_from_file_location("soorma_e2e_helpers", ROOT / "tests" / "e2e" / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def lambda_client(stack: dict[str, Any], **overrides: str):
    """boto3's Lambda client on the stack, signing with the stack's access key (or ``overrides``)."""
    secrets = stack["secrets"]
    return boto3.client(
        "lambda", endpoint_url=stack["credentials"]["api_url"], region_name="us-east-1",
        aws_access_key_id=overrides.get("key_id", secrets["aws_access_key_id"]),
        aws_secret_access_key=overrides.get("secret", secrets["aws_secret_access_key"]),
        config=Config(retries={"max_attempts": 1}, read_timeout=60, connect_timeout=10))


def put_function(stack: dict[str, Any], name: str, agent_name: str, code_dir: Path,
                 handler: str = "echo.handler") -> httpx.Response:
    """The deploy path's ``PUT /_local/functions/{name}`` (what ``soorma local deploy`` sends)."""
    return httpx.put(f"{stack['credentials']['api_url']}/_local/functions/{name}",
                     headers={"x-soorma-control-token": stack["secrets"]["control_token"]},
                     json={"handler": handler, "code_dir": str(code_dir), "platform_tenant_id": "local",
                           "agent_name": agent_name}, timeout=30)


def function_config(stack: dict[str, Any], name: str) -> dict[str, Any]:
    return json.loads((stack["home"] / "functions" / f"{name}.json").read_text())


def known_secrets(stack: dict[str, Any]) -> dict[str, str]:
    """Every secret value of the stack: ``secrets.json``, the API keys of ``credentials.json``, the echo function's
    agent key, and the passwords inside the NATS URL."""
    from urllib.parse import urlsplit

    # (the access key id is the public half of the Lambda API's credentials: `up` prints it)
    values = {f"secrets.{k}": v for k, v in stack["secrets"].items()
              if k not in ("nats_url", "aws_access_key_id") and isinstance(v, str)}
    for name in ("api_key", "admin_api_key"):
        values[f"credentials.{name}"] = stack["credentials"][name]
    values["echo agent key"] = function_config(stack, ECHO)["env"]["SOORMA_API_KEY"]
    password = urlsplit(stack["secrets"]["nats_url"]).password
    if password:
        values["nats password"] = password
    return values


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    helpers = _e2e_helpers()
    code = tmp_path_factory.mktemp("sec-code")
    (code / "echo.py").write_text(textwrap.dedent(ECHO_SOURCE))
    with helpers.local_stack("soorma-security-") as running:
        running["secrets"] = json.loads((running["home"] / "secrets.json").read_text())
        running["code_dir"] = code
        deployed = put_function(running, ECHO, "sec-echo-agent", code)
        assert deployed.status_code == 200, deployed.text
        yield running
