"""Issue 12, finding 3 — an agent's delivery target can be any function.

The attack: ``Deployment.function_name`` in the registry accepted any name or ARN from any key of any tenant, and the
bridge invoked it. Tenant A registers an agent bound to tenant B's function; A's events then reach B's agent, which
acts inside B with B's key.

Now deployment bindings are written only by the deploy path (``soorma local deploy`` through the stack's control
route, the ``Custom::SoormaAgent`` registrar in the cloud): the registry's API answers 403 to a binding it is sent,
and the control route binds a function only to an agent of the tenant the function was deployed for. Defence in
depth: the local route source routes a binding only to a function deployed for the binding's own tenant, so even a
binding written straight into the database around the deploy path delivers nothing to another tenant's function.

Black-box, on a real local stack (``soorma local up`` on free ports, a temporary ``SOORMA_HOME``): the victim (the
stack's own tenant) deploys an agent with ``soorma local deploy``; the attacker is a second tenant onboarded through
the API, who deploys its own agent through the same deploy path (the legitimate use, still working).
"""

from __future__ import annotations

import json
import tempfile
import textwrap
import time
from pathlib import Path

import psycopg
import pytest

from tests.e2e.conftest import local_stack, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

AGENT = """
    from soorma.agents.base import Agent

    agent = Agent("{name}", description="finding 3 test agent")


    @agent.on_event("vault.open", topic="business-facts")
    async def opened(event, context):
        print(f"vault.open for tenant {{event.platform_tenant_id}} marker {{event.data.get('marker')}}", flush=True)
"""


def write_app(root: Path, folder: str, agent: str) -> Path:
    app = root / folder
    app.mkdir(parents=True)
    (app / "agents.py").write_text(textwrap.dedent(AGENT.format(name=agent)))
    return app


@pytest.fixture(scope="module")
def stack():
    apps = Path(tempfile.mkdtemp(prefix="soorma-f3-apps-"))
    victim_app = write_app(apps, "victim", "vault")
    with local_stack("soorma-f3-", deploy=[victim_app]) as s:
        s["apps"] = apps
        s["control"] = json.loads((s["home"] / "secrets.json").read_text())["control_token"]
        yield s


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def invocations(stack, function: str) -> int:
    status = stack["client"].get("/_local/status", headers={"x-soorma-control-token": stack["control"]}).json()
    return int((status["functions"].get(function) or {}).get("invocations", 0))


def publish(stack, key: str, marker: str) -> None:
    reply = stack["client"].post("/v1/events/publish", headers=bearer(key), json={"event": {
        "type": "vault.open", "topic": "business-facts", "data": {"marker": marker}}})
    assert reply.status_code == 200, reply.text


def test_a_tenant_cannot_bind_its_agent_to_another_tenants_function(stack):
    client, creds = stack["client"], stack["credentials"]
    victim_fn = "victim-vault"  # <app folder>-<agent name>
    control = {"x-soorma-control-token": stack["control"]}

    # The attacker: a second platform tenant, onboarded by the platform admin.
    reply = client.post("/v1/tenants", headers=bearer(creds["admin_api_key"]),
                        json={"platform_tenant_id": "f3-attacker", "name": "attacker"})
    assert reply.status_code == 201, reply.text
    attacker_key = reply.json()["admin_api_key"]

    # Legitimate use: the attacker deploys its own agent through the deploy path, and its events reach it.
    from soorma.local.deploy import Deployer

    Deployer(api_url=creds["api_url"], api_key=attacker_key, control_token=stack["control"],
             platform_tenant_id="f3-attacker", setup_dir=stack["apps"] / "setup", echo=lambda _: None,
             ).deploy(write_app(stack["apps"], "attacker", "prober"))
    publish(stack, attacker_key, "attacker-own")
    wait_until(lambda: invocations(stack, "attacker-prober") >= 1, "the attacker's own agent ran", timeout=60)

    # Attack 1: register an agent whose binding names the victim's function → refused, nothing registered.
    before = invocations(stack, victim_fn)
    hijack = {"agent": {"agent_id": "hijack", "name": "hijack", "consumed_events": ["vault.open"], "deployment": {
        "function_name": victim_fn, "transport": "nats",
        "subscriptions": [{"topic": "business-facts", "event_type": "vault.open"}]}}}
    reply = client.post("/v1/agents", headers=bearer(attacker_key), json=hijack)
    assert reply.status_code == 403, reply.text
    assert "deploy path" in reply.json()["detail"]
    assert client.get("/v1/agents/hijack", headers=bearer(attacker_key)).status_code == 404
    # ... nor can the attacker re-point its own deployed agent at the victim's function.
    prober = client.get("/v1/agents", headers=bearer(attacker_key), params={"name": "prober"}).json()["agents"][0]
    reply = client.post("/v1/agents", headers=bearer(attacker_key), json={"agent": {
        "agent_id": prober["agentId"], "name": "prober", "deployment": {**hijack["agent"]["deployment"]}}})
    assert reply.status_code == 403, reply.text

    # Attack 2: the deploy path's own control route binds a function only inside the tenant it was deployed for:
    # the attacker's agent id is unknown in the victim's tenant.
    assert client.post("/v1/agents", headers=bearer(attacker_key),
                       json={"agent": {"agent_id": "hijack", "name": "hijack"}}).status_code == 200
    reply = client.put(f"/_local/functions/{victim_fn}/binding", headers=control,
                       json={"agent_id": "hijack", "deployment": hijack["agent"]["deployment"]})
    assert reply.status_code == 404, reply.text
    reply = client.put("/_local/functions/attacker-prober/binding", headers=control,
                       json={"agent_id": prober["agentId"], "deployment": hijack["agent"]["deployment"]})
    assert reply.status_code == 400, reply.text  # a binding of one function cannot name another

    # Attack 3 (defence in depth): a binding written straight into the database, around the deploy path.
    # (the embedded server's owner URL has no password: its Unix socket lives in the owner-only data folder)
    owner_dsn = stack["state"]["database_url"]
    with psycopg.connect(owner_dsn, autocommit=True) as conn:
        conn.execute("update registry.agents set deployment = %s::jsonb"
                     " where platform_tenant_id = 'f3-attacker' and agent_id = 'hijack'",
                     (json.dumps(hijack["agent"]["deployment"]),))
    time.sleep(3)  # the bridge re-reads its routes every second

    publish(stack, attacker_key, "attacker-attack")
    time.sleep(3)
    assert invocations(stack, victim_fn) == before  # the victim's function never ran for the attacker's events
    bridge = stack["client"].get("/_local/status", headers=control).json()["bridge"]
    assert "f3-attacker__hijack" not in (bridge.get("consumers") or bridge)
    # the route source saw the forged binding and refused it
    assert "bound to function victim-vault, which was not deployed for that tenant" in \
        (stack["home"] / "logs" / "stack.log").read_text()

    # Legitimate use: the victim's own events still reach the victim's function.
    publish(stack, creds["api_key"], "victim-own")
    wait_until(lambda: invocations(stack, victim_fn) >= before + 1, "the victim's agent ran", timeout=60)
    log = (stack["home"] / "logs" / f"{victim_fn}.log").read_text()
    assert "marker victim-own" in log and "marker attacker" not in log


def test_route_source_routes_a_binding_only_to_its_own_tenants_function(postgres, app_dsn):
    """The same defence at the function level, on the session's PostgreSQL (no stack): bindings written straight
    into the registry — one to another tenant's function, one to the tenant's own — through the real route source."""
    import asyncio
    import uuid

    from soorma.functions.bridge.routes import RouteSource

    a, b = f"f3a{uuid.uuid4().hex[:8]}", f"f3b{uuid.uuid4().hex[:8]}"
    binding = {"transport": "nats", "subscriptions": [{"topic": "business-facts", "event_type": "vault.open"}]}
    with psycopg.connect(postgres, autocommit=True) as conn:
        for tenant, agent, function in ((a, "hijack", f"fn-{b}"), (a, "own", f"fn-{a}"), (b, "vault", f"fn-{b}")):
            conn.execute(
                "insert into registry.agents (platform_tenant_id, service_tenant_id, service_user_id, agent_id, name,"
                " deployment) values (%s, %s, 'x', %s, %s, %s::jsonb)",
                (tenant, tenant, agent, agent, json.dumps({**binding, "function_name": function})))
    owners = {f"fn-{a}": a, f"fn-{b}": b}
    source = RouteSource(app_dsn, tracker_function="soorma-tracker", function_tenant=owners.get)
    try:
        routes = asyncio.run(source.routes())
    finally:
        source.db.close()
    mine = {(r.platform_tenant_id, r.agent, r.function_name) for r in routes if r.platform_tenant_id in (a, b)}
    assert mine == {(a, "own", f"fn-{a}"), (b, "vault", f"fn-{b}")}  # (a, "hijack", fn-b) is not routed
