"""The custom resource that registers deployed agents: ``soorma.infra.runtime.registrar.handler``.

Run by the CDK provider framework on deploy (``onEvent``; the framework sends the CloudFormation response). Two
resource types:

* ``Custom::SoormaAgent`` — properties ``PlatformTenantId``, ``Agent`` (the ``AgentDefinition`` found in the user's
  file at synth time), ``Events`` (its event definitions as JSON text), ``Deployment`` (function name, transport, subscriptions, batch size, concurrency, maximum
  deliveries, timeout) and ``KeySecretArn``. Create/Update upserts the agent in the registry with its deployment
  binding (:func:`soorma.functions.registry.app.upsert_agent` with ``write_deployment=True``: this resource, written
  by the stack's own CDK code, is the only writer of bindings in the cloud — the registry API refuses them) and, when the agent's key secret holds no key yet, issues an
  API key of role ``agent`` and writes it there (the agent function reads it at start). Delete removes the agent from
  the registry, so the NATS bridge stops routing to it.
* ``Custom::SoormaBootstrapKey`` — ``PlatformTenantId``, ``SecretArn``: onboards the platform tenant (its row in
  ``gateway.tenants``) and issues its first ``developer`` key into that secret, once (``soorma`` CLI users read it
  from there).
* ``Custom::SoormaPlatformAdmin`` — ``AdminTenantId`` (``SOORMA_PLATFORM_ADMIN_TENANT``, default ``platform``),
  ``SecretArn``: onboards the platform-operator tenant and issues the bootstrap platform-admin key (role ``admin`` of
  that tenant: it onboards tenants with ``POST /v1/tenants`` and sets their limits) into that secret, once — what
  ``soorma local`` does in ``LocalStack._ensure_credentials``. The key exists only in the database (hashed) and in
  the secret, never in the template.

"Once": a key is issued only while the secret does not hold one (``sk_...``); a deploy never replaces a key an
operator revoked or rotated. To get a new one, put ``{}`` in the secret and update the resource. Deleting either
resource leaves the tenant and its keys in place (revoke keys through the API).

Connects as ``soorma_app`` (row-level security applies) with the identity of the tenant concerned.
"""

from __future__ import annotations

import json
import logging
from typing import Any

log = logging.getLogger("soorma.infra.registrar")

DEPLOYER = "soorma-deployer"


def _identity(tenant: str, role: str = "admin"):
    from soorma.identity import Identity

    return Identity(tenant, tenant, DEPLOYER, DEPLOYER, role)


def _secrets():
    import boto3

    return boto3.client("secretsmanager")


def _has_key(client: Any, arn: str) -> bool:
    try:
        value = client.get_secret_value(SecretId=arn).get("SecretString") or ""
    except client.exceptions.ResourceNotFoundException:
        return False
    value = value.strip()
    if value.startswith("{"):
        value = str(json.loads(value).get("api_key") or "")
    return value.startswith("sk_")


def onboard_tenant(conn, tenant: str) -> None:
    """The tenant's row in ``gateway.tenants`` (status ``active``, default limits), if it has none yet."""
    conn.execute(
        "insert into gateway.tenants (platform_tenant_id, name, created_by) values (%s, %s, %s)"
        " on conflict (platform_tenant_id) do nothing",
        (tenant, tenant, DEPLOYER),
    )


def _issue_key(db, tenant: str, service_user: str, role: str, name: str, *, onboard: bool = False) -> str:
    from soorma.functions.gateway.keys import create_api_key

    identity = _identity(tenant, role)
    with db.transaction(identity) as conn:
        if onboard:
            onboard_tenant(conn, tenant)
        return create_api_key(
            conn, platform_tenant_id=tenant, service_tenant_id=tenant, service_user_id=service_user, role=role,
            name=name,
        )


def bootstrap_key(db, secrets: Any, *, tenant: str, secret_arn: str, user: str, role: str, name: str) -> bool:
    """Onboard ``tenant`` and issue a key of ``role`` into ``secret_arn`` unless it holds one. True when issued."""
    if _has_key(secrets, secret_arn):
        with db.transaction(_identity(tenant, role)) as conn:
            onboard_tenant(conn, tenant)
        return False
    key = _issue_key(db, tenant, user, role, name, onboard=True)
    secrets.put_secret_value(SecretId=secret_arn, SecretString=json.dumps(
        {"api_key": key, "platform_tenant_id": tenant, "role": role}))
    return True


def register_agent(db, props: dict[str, Any]) -> str:
    """Upsert the agent's event definitions (``Events``, a JSON string) and then the agent with its deployment
    binding, in one transaction; returns the physical id ``<tenant>/<agent id>``.

    ``Events`` travels as JSON text because CloudFormation turns every number and boolean of a nested property into
    a string, which would corrupt the JSON Schemas inside. A definition the registry's model refuses is logged and
    skipped (``soorma local deploy`` does the same), so soorma-core code naming an unknown topic still deploys.
    """
    from pydantic import ValidationError

    from soorma.functions.registry.app import upsert_agent, upsert_event
    from soorma.functions.registry.models import AgentDefinition, EventDefinition

    tenant = props["PlatformTenantId"]
    agent = dict(props["Agent"])
    agent["deployment"] = _numbers(props["Deployment"])
    definition = AgentDefinition.model_validate(agent)
    events = []
    for raw in json.loads(props.get("Events") or "[]"):
        try:
            events.append(EventDefinition.model_validate(raw))
        except ValidationError as exc:
            log.warning("event %s of agent %s not registered: %s", raw.get("event_name"), definition.agent_id, exc)
    with db.transaction(_identity(tenant)) as conn:
        for event in events:
            upsert_event(conn, _identity(tenant), event)
        # The deploy path is the only writer of deployment bindings (the registry's HTTP API refuses them), so the
        # bridge's routes name only functions this stack created (issue 12, finding 3).
        upsert_agent(conn, _identity(tenant), definition, write_deployment=True)
    return f"{tenant}/{definition.agent_id}"


def _numbers(deployment: dict[str, Any]) -> dict[str, Any]:
    """CloudFormation passes every property as a string: restore the deployment binding's integers."""
    out = dict(deployment)
    for key in ("batch_size", "max_concurrency", "max_deliveries", "timeout_seconds"):
        if key in out:
            out[key] = int(out[key])
    return out


def unregister_agent(db, tenant: str, agent_id: str) -> None:
    with db.transaction(_identity(tenant)) as conn:
        conn.execute("delete from registry.agents where agent_id = %s", (agent_id,))


def on_event(event: dict[str, Any], db=None, secrets=None) -> dict[str, Any]:
    from soorma.functions.shared.db import database_from_env

    db = db or database_from_env()
    kind = event.get("ResourceType", "")
    request = event["RequestType"]
    props = event.get("ResourceProperties") or {}
    if kind == "Custom::SoormaAgent":
        if request == "Delete":
            tenant, _, agent_id = str(event.get("PhysicalResourceId", "")).partition("/")
            if tenant and agent_id:
                unregister_agent(db, tenant, agent_id)
            return {"PhysicalResourceId": event.get("PhysicalResourceId")}
        physical = register_agent(db, props)
        secrets = secrets or _secrets()
        arn = props.get("KeySecretArn")
        if arn and not _has_key(secrets, arn):
            name = props["Agent"].get("name") or props["Agent"]["agent_id"]
            key = _issue_key(db, props["PlatformTenantId"], name, "agent", f"agent {name}")
            secrets.put_secret_value(SecretId=arn, SecretString=json.dumps({"api_key": key}))
        return {"PhysicalResourceId": physical}
    if kind == "Custom::SoormaBootstrapKey":
        physical = f"bootstrap/{props['PlatformTenantId']}"
        if request != "Delete":
            bootstrap_key(db, secrets or _secrets(), tenant=props["PlatformTenantId"], secret_arn=props["SecretArn"],
                          user="developer", role="developer", name="bootstrap developer")
        return {"PhysicalResourceId": physical}
    if kind == "Custom::SoormaPlatformAdmin":
        physical = f"platform-admin/{props['AdminTenantId']}"
        if request != "Delete":
            bootstrap_key(db, secrets or _secrets(), tenant=props["AdminTenantId"], secret_arn=props["SecretArn"],
                          user="admin", role="admin", name="bootstrap platform admin")
        return {"PhysicalResourceId": physical}
    raise ValueError(f"unknown resource type {kind!r}")


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    log.info("%s %s", event.get("RequestType"), event.get("ResourceType"))
    return on_event(event)
