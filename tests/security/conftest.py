"""Fixtures of the issue-12 ("Trust") tests, shared with the other test folders rather than copied (the suite runs
with ``--import-mode=importlib``, so their conftest modules are loaded by path):

* the platform's HTTP API as a client on the network sees it, in-process: the gateway tests' fixtures (the local API
  Gateway with its authorizer cache on, in front of the real authorizer and the real gateway, registry, memory and
  tracker functions, on the session's real PostgreSQL as ``soorma_app`` and NATS JetStream), re-exported;
* the real memory function behind Mangum for SDK clients (the memory tests' helpers);
* one real local stack (``soorma local up`` in a temporary ``SOORMA_HOME`` on free ports) with one plain function
  deployed through the deploy path (``PUT /_local/functions``): ``sec-echo`` answers with its event, the client
  context it was given and the names of its environment. Its helpers sign like any client of the stack would: boto3
  with the access key of ``secrets.json``.

No service of ours is mocked.
"""

from __future__ import annotations

import importlib.util
import json
import secrets
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import httpx
import pytest
from botocore.config import Config

_TESTS = Path(__file__).resolve().parents[1]


def load_helpers(relative: str, name: str):
    """Import ``tests/<relative>`` as module ``name`` (helpers shared with another test folder)."""
    spec = importlib.util.spec_from_file_location(name, _TESTS / relative)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


# -- the HTTP API in-process (findings 1, 8, 9, 10) ------------------------------------------------------------------
_gateway = load_helpers("integration/gateway/conftest.py", "soorma_gateway_test_helpers")
gw_env, gw_db, gw_publisher, apps, invoker = (_gateway.gw_env, _gateway.gw_db, _gateway.gw_publisher, _gateway.apps,
                                              _gateway.invoker)
api, owner_conn, platform_admin, gx = _gateway.api, _gateway.owner_conn, _gateway.platform_admin, _gateway.gx
bearer = _gateway.bearer


@pytest.fixture(scope="session")
def sec_db(gw_env, gw_db):
    """The functions' database (``soorma_app``), with the functions' environment (pepper, JWT settings) in force, for
    tests that call the authorizer's logic directly."""
    return gw_db


def onboard(api, platform_admin: str, *, service_tenant: str | None = None,
            users: tuple[str, ...] = ("alice", "bob")) -> SimpleNamespace:
    """Onboard a fresh platform tenant through the API: its admin key, an ``agent`` key (acting as itself in
    ``service_tenant``), and a ``user`` key per name in ``users`` (service tenant ``service_tenant``, default
    ``st_<tenant>``, user id = the name). Rate limits lifted (these tests make many calls)."""
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
def sx(gx):
    """The gateway tests' helpers, with :func:`onboard` giving named users (test modules cannot import conftest)."""
    return SimpleNamespace(**{**vars(gx), "onboard": onboard})


# -- the real memory function for SDK clients (finding 5) ------------------------------------------------------------
@pytest.fixture(scope="session")
def memory_helpers():
    return load_helpers("integration/memory/conftest.py", "soorma_memory_test_helpers")


@pytest.fixture(scope="session")
def memory_api(app_dsn, memory_helpers, gw_env):
    """The real memory function (``soorma.functions.memory.app``) behind Mangum, on the session's PostgreSQL, with the
    functions' environment (``gx.PEPPER``: the key of the delivery grants it verifies)."""
    from mangum import Mangum

    from soorma.functions.memory.app import create_app
    from soorma.functions.shared.db import Database

    db = Database(app_dsn)
    yield memory_helpers.MemoryApi(Mangum(create_app(db=db), lifespan="off"))
    db.close()


# -- the real local stack (findings 2, 6 and 10's local items) -------------------------------------------------------
ECHO = "sec-echo"
ECHO_SOURCE = """
    import os

    def handler(event, context):
        custom = context.client_context.custom if context.client_context else None
        return {"event": event, "client_context": custom, "env": sorted(os.environ)}
"""



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
    helpers = load_helpers("e2e/conftest.py", "soorma_e2e_helpers")
    code = tmp_path_factory.mktemp("sec-code")
    (code / "echo.py").write_text(textwrap.dedent(ECHO_SOURCE))
    with helpers.local_stack("soorma-security-") as running:
        running["secrets"] = json.loads((running["home"] / "secrets.json").read_text())
        running["code_dir"] = code
        deployed = put_function(running, ECHO, "sec-echo-agent", code)
        assert deployed.status_code == 200, deployed.text
        yield running
