"""The registry function: agents (with their deployment binding) and event definitions, per platform tenant.

Routes (docs/architecture.md "Registry"; paths and bodies of soorma-core's registry, responses camelCase):

* ``POST /v1/agents`` ``{"agent": AgentDefinition}`` → ``{agentId, success, message}`` (upsert by agent id). The
  agent's ``deployment`` binding (which function receives its events) is written only by the deploy path (``soorma
  local deploy`` through the stack's control route, the ``Custom::SoormaAgent`` registrar in the cloud), never through
  this API: a registration without ``deployment`` keeps the binding the agent has, one that repeats it unchanged is
  accepted, and one that sets or changes it is refused with 403 (issue 12, finding 3: a caller could otherwise
  point its agent — and so its tenant's events — at any function name or ARN, another tenant's included)
* ``GET /v1/agents?agent_id=&name=&consumed_event=&produced_event=`` → ``{agents, count}``
* ``GET /v1/agents/discover?consumed_event=`` → ``{agents, count}``
* ``DELETE /v1/agents/{agent_id}`` → 204, or 404
* ``GET /v1/agents/{agent_id}`` → the agent, or 404; ``PUT|POST /v1/agents/{agent_id}/heartbeat`` (soorma-core
  clients call it; it only touches ``updated_at``) → ``{agentId, success, message}``, or 404
* ``POST /v1/events`` ``{"event": EventDefinition}`` → ``{eventName, success, message}`` (upsert by name)
* ``GET /v1/events?event_name=&topic=`` → ``{events, count}``
* ``POST /v1/schemas`` ``{"schema": PayloadSchema}`` → ``{schemaName, version, success, message}`` (201), or 409
  when that (name, version) exists: a version is immutable
* ``GET /v1/schemas?owner_agent_id=`` → ``{schemas, count}``; ``GET /v1/schemas/{name}`` → the latest version (by
  ``createdAt``), or 404; ``GET /v1/schemas/{name}/versions/{version}`` → that version, or 404

Rows are scoped by platform tenant through row-level security (the transaction carries the caller's identity).
Writes need role admin, developer or agent (403 for role user). Serverless agents do not heartbeat: an agent is live
while it is registered, so ``include_expired`` is accepted and ignored, and ``lastHeartbeat`` is the last update.
Fixes over soorma-core: ``?name=`` works (it matches ``name`` exactly or soorma-core's ``name:version`` form); no
per-process cache, so a write is visible at once on every instance.
"""

from __future__ import annotations

from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Path, Query, Response
from psycopg.types.json import Jsonb

from soorma.events import EventTopic
from soorma.functions.registry.models import (
    AgentDefinition,
    AgentList,
    AgentOut,
    AgentRegistrationRequest,
    AgentWriteResult,
    Deployment,
    EventDefinition,
    EventList,
    EventOut,
    EventRegistrationRequest,
    EventWriteResult,
    PayloadSchemaList,
    PayloadSchemaOut,
    PayloadSchemaRegistrationRequest,
    PayloadSchemaWriteResult,
)
from soorma.functions.shared.db import Database, database_from_env
from soorma.functions.shared.service import current_identity, function_app
from soorma.identity import WRITER_ROLES, Identity

_SCHEMA_COLUMNS = "schema_name, version, json_schema, description, owner_agent_id, created_at, updated_at"
_AGENT_COLUMNS = (
    "agent_id, name, description, version, capabilities, consumed_events, produced_events, deployment,"
    " created_at, updated_at"
)


def _require_writer(identity: Identity) -> None:
    if identity.role not in WRITER_ROLES:
        raise HTTPException(403, f"role {identity.role!r} may not change the registry")


def _agent_out(row: dict[str, Any]) -> dict[str, Any]:
    return AgentOut.model_validate({**row, "last_heartbeat": row["updated_at"]}).wire()


def _event_out(row: dict[str, Any]) -> dict[str, Any]:
    return EventOut.model_validate(row).wire()


class DeploymentRefused(Exception):
    """A registration through the API tried to set or change a deployment binding (see the module docstring)."""


def check_api_deployment(conn, agent: AgentDefinition) -> None:
    """Raise :class:`DeploymentRefused` unless ``agent.deployment`` is absent or equal to the binding the agent already
    has (a client that reads an agent and registers it back unchanged keeps working). Runs in the caller's
    transaction, so row-level security limits the lookup to the caller's platform tenant."""
    if agent.deployment is None:
        return
    row = conn.execute("select deployment from registry.agents where agent_id = %s", (agent.agent_id,)).fetchone()
    stored = row["deployment"] if row else None
    if stored is not None and agent.deployment.model_dump(mode="json") == _normalised(stored):
        return
    raise DeploymentRefused(
        "the deployment binding of an agent is written only by the deploy path (soorma local deploy, the SoormaAgent"
        " CDK construct), not through the registry API: register the agent without 'deployment'"
    )


def _normalised(stored: dict[str, Any]) -> dict[str, Any] | None:
    try:
        return Deployment.model_validate(stored).model_dump(mode="json")
    except ValueError:
        return None


def upsert_agent(conn, identity: Identity, agent: AgentDefinition, *, write_deployment: bool = False) -> bool:
    """Insert or update one agent of the caller's platform tenant; returns True when a row was written.

    ``write_deployment`` is for the deploy path only (the registrar custom resource, the local stack's control
    route): then ``agent.deployment`` (or its absence) replaces the stored binding. Otherwise — every registration
    through the HTTP API — the stored binding is left as it is and a new agent has none."""
    capabilities = [c.model_dump(mode="json") for c in agent.capabilities]
    deployment = agent.deployment.model_dump(mode="json") if agent.deployment and write_deployment else None
    # Without write_deployment the update keeps the row's binding: ``excluded.deployment`` is replaced by it.
    new_deployment = "excluded.deployment" if write_deployment else "a.deployment"
    row = conn.execute(
        f"""
        insert into registry.agents as a (platform_tenant_id, service_tenant_id, service_user_id, agent_id, name,
                                          description, version, capabilities, consumed_events, produced_events,
                                          deployment)
        values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
        on conflict (platform_tenant_id, agent_id) do update
           set service_tenant_id = excluded.service_tenant_id, service_user_id = excluded.service_user_id,
               name = excluded.name, description = excluded.description, version = excluded.version,
               capabilities = excluded.capabilities, consumed_events = excluded.consumed_events,
               produced_events = excluded.produced_events, deployment = {new_deployment}, updated_at = now()
         where (a.name, a.description, a.version, a.capabilities, a.consumed_events, a.produced_events,
                a.deployment, a.service_tenant_id, a.service_user_id)
               is distinct from
               (excluded.name, excluded.description, excluded.version, excluded.capabilities,
                excluded.consumed_events, excluded.produced_events, {new_deployment},
                excluded.service_tenant_id, excluded.service_user_id)
        returning agent_id
        """,
        (
            identity.platform_tenant_id,
            identity.service_tenant_id,
            identity.service_user_id,
            agent.agent_id,
            agent.name,
            agent.description,
            agent.version,
            Jsonb(capabilities),
            agent.consumed_events,
            agent.produced_events,
            Jsonb(deployment) if deployment is not None else None,
        ),
    ).fetchone()
    return row is not None


def upsert_event(conn, identity: Identity, event: EventDefinition) -> None:
    """Insert or replace one event definition of the caller's platform tenant (by event name)."""
    conn.execute(
        """
        insert into registry.events as e (platform_tenant_id, service_tenant_id, service_user_id, event_name,
            topic, description, payload_schema, response_schema, payload_schema_name, response_schema_name,
            owner_agent_id)
        values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
        on conflict (platform_tenant_id, event_name) do update
           set service_tenant_id = excluded.service_tenant_id, service_user_id = excluded.service_user_id,
               topic = excluded.topic, description = excluded.description,
               payload_schema = excluded.payload_schema, response_schema = excluded.response_schema,
               payload_schema_name = excluded.payload_schema_name,
               response_schema_name = excluded.response_schema_name,
               owner_agent_id = excluded.owner_agent_id, updated_at = now()
        """,
        (
            identity.platform_tenant_id,
            identity.service_tenant_id,
            identity.service_user_id,
            event.event_name,
            event.topic,
            event.description,
            Jsonb(event.payload_schema) if event.payload_schema is not None else None,
            Jsonb(event.response_schema) if event.response_schema is not None else None,
            event.payload_schema_name,
            event.response_schema_name,
            event.owner_agent_id,
        ),
    )


def query_agents(
    conn,
    *,
    agent_id: str | None = None,
    name: str | None = None,
    consumed_event: str | None = None,
    produced_event: str | None = None,
) -> list[dict[str, Any]]:
    """Agents of the transaction's platform tenant matching every given filter, ordered by name and id."""
    where, params = ["true"], []
    if agent_id is not None:
        where.append("agent_id = %s")
        params.append(agent_id)
    if name is not None:
        where.append("(name = %s or split_part(name, ':', 1) = %s)")
        params += [name, name]
    if consumed_event is not None:
        where.append("(%s = any(consumed_events) or capabilities @> %s)")
        params += [consumed_event, Jsonb([{"consumed_event": {"event_name": consumed_event}}])]
    if produced_event is not None:
        where.append("(%s = any(produced_events) or capabilities @> %s)")
        params += [produced_event, Jsonb([{"produced_events": [{"event_name": produced_event}]}])]
    return conn.execute(
        f"select {_AGENT_COLUMNS} from registry.agents where {' and '.join(where)} order by name, agent_id",
        params,
    ).fetchall()


def create_app(db: Database | None = None) -> FastAPI:
    """The registry's FastAPI app; ``db`` defaults to :func:`soorma.functions.shared.db.database_from_env` (role ``soorma_app``)."""
    db = db if db is not None else database_from_env()
    app = function_app("Soorma registry")
    app.state.db = db

    @app.post("/v1/agents", response_model=AgentWriteResult)
    def register_agent(body: AgentRegistrationRequest, identity: Identity = Depends(current_identity)):
        _require_writer(identity)
        with db.transaction(identity) as conn:
            try:
                check_api_deployment(conn, body.agent)
            except DeploymentRefused as exc:
                raise HTTPException(403, str(exc)) from None
            changed = upsert_agent(conn, identity, body.agent)
        return {
            "agentId": body.agent.agent_id,
            "success": True,
            "message": "Agent registered" if changed else "Agent unchanged",
        }

    @app.get("/v1/agents", response_model=AgentList)
    def list_agents(
        agent_id: str | None = Query(None, max_length=255),
        name: str | None = Query(None, max_length=255),
        consumed_event: str | None = Query(None, max_length=200),
        produced_event: str | None = Query(None, max_length=200),
        include_expired: bool = False,
        identity: Identity = Depends(current_identity),
    ):
        with db.transaction(identity) as conn:
            rows = query_agents(
                conn, agent_id=agent_id, name=name, consumed_event=consumed_event, produced_event=produced_event
            )
        agents = [_agent_out(r) for r in rows]
        return {"agents": agents, "count": len(agents)}

    @app.get("/v1/agents/discover", response_model=AgentList)
    def discover_agents(
        consumed_event: str | None = Query(None, max_length=200),
        identity: Identity = Depends(current_identity),
    ):
        with db.transaction(identity) as conn:
            rows = query_agents(conn, consumed_event=consumed_event)
        agents = [_agent_out(r) for r in rows]
        return {"agents": agents, "count": len(agents)}

    @app.get("/v1/agents/{agent_id}", response_model=AgentOut)
    def get_agent(agent_id: str, identity: Identity = Depends(current_identity)):
        with db.transaction(identity) as conn:
            rows = query_agents(conn, agent_id=agent_id)
        if not rows:
            raise HTTPException(404, f"agent {agent_id!r} not found")
        return _agent_out(rows[0])

    @app.delete("/v1/agents/{agent_id}", status_code=204)
    def delete_agent(agent_id: str, identity: Identity = Depends(current_identity)):
        _require_writer(identity)
        with db.transaction(identity) as conn:
            row = conn.execute(
                "delete from registry.agents where agent_id = %s returning agent_id", (agent_id,)
            ).fetchone()
        if row is None:
            raise HTTPException(404, f"agent {agent_id!r} not found")
        return Response(status_code=204)

    @app.put("/v1/agents/{agent_id}/heartbeat", operation_id="heartbeat_put", response_model=AgentWriteResult)
    def heartbeat(agent_id: str, identity: Identity = Depends(current_identity)):
        """soorma-core compatibility: serverless agents need no heartbeat; this only touches ``updated_at``."""
        _require_writer(identity)
        with db.transaction(identity) as conn:
            row = conn.execute(
                "update registry.agents set updated_at = now() where agent_id = %s returning agent_id", (agent_id,)
            ).fetchone()
        if row is None:
            raise HTTPException(404, f"agent {agent_id!r} not found")
        return {"agentId": agent_id, "success": True, "message": "Heartbeat recorded"}

    # the same handler for POST, under its own operation id (one id per operation keeps the OpenAPI document valid)
    app.add_api_route("/v1/agents/{agent_id}/heartbeat", heartbeat, methods=["POST"], operation_id="heartbeat_post",
                      response_model=AgentWriteResult)

    @app.post("/v1/events", response_model=EventWriteResult)
    def register_event(body: EventRegistrationRequest, identity: Identity = Depends(current_identity)):
        _require_writer(identity)
        with db.transaction(identity) as conn:
            upsert_event(conn, identity, body.event)
        return {"eventName": body.event.event_name, "success": True, "message": "Event registered"}

    @app.get("/v1/events", response_model=EventList)
    def list_events(
        event_name: str | None = Query(None, max_length=200),
        topic: EventTopic | None = None,
        identity: Identity = Depends(current_identity),
    ):
        where, params = ["true"], []
        if event_name is not None:
            where.append("event_name = %s")
            params.append(event_name)
        if topic is not None:
            where.append("topic = %s")
            params.append(topic.value)
        with db.transaction(identity) as conn:
            rows = conn.execute(
                "select event_name, topic, description, payload_schema, response_schema, payload_schema_name,"
                " response_schema_name, owner_agent_id, created_at, updated_at from registry.events"
                f" where {' and '.join(where)} order by event_name",
                params,
            ).fetchall()
        events = [_event_out(r) for r in rows]
        return {"events": events, "count": len(events)}

    @app.post("/v1/schemas", status_code=201, response_model=PayloadSchemaWriteResult)
    def register_schema(body: PayloadSchemaRegistrationRequest, identity: Identity = Depends(current_identity)):
        """Register one immutable version of a payload schema; the same (name, version) again is a 409."""
        _require_writer(identity)
        schema = body.schema_
        with db.transaction(identity) as conn:
            row = conn.execute(
                "insert into registry.payload_schemas (platform_tenant_id, service_tenant_id, service_user_id,"
                " schema_name, version, json_schema, description, owner_agent_id)"
                " values (%s, %s, %s, %s, %s, %s, %s, %s)"
                " on conflict (platform_tenant_id, schema_name, version) do nothing returning schema_name",
                (identity.platform_tenant_id, identity.service_tenant_id, identity.service_user_id,
                 schema.schema_name, schema.version, Jsonb(schema.json_schema), schema.description,
                 schema.owner_agent_id),
            ).fetchone()
        if row is None:
            raise HTTPException(409, f"schema {schema.schema_name!r} version {schema.version!r} already exists;"
                                     " a version is immutable: register a new version")
        return {"schemaName": schema.schema_name, "version": schema.version, "success": True,
                "message": "Schema registered"}

    @app.get("/v1/schemas", response_model=PayloadSchemaList)
    def list_schemas(
        owner_agent_id: str | None = Query(None, max_length=255),
        identity: Identity = Depends(current_identity),
    ):
        where, params = ["true"], []
        if owner_agent_id is not None:
            where.append("owner_agent_id = %s")
            params.append(owner_agent_id)
        with db.transaction(identity) as conn:
            rows = conn.execute(
                f"select {_SCHEMA_COLUMNS} from registry.payload_schemas where {' and '.join(where)}"
                " order by schema_name, created_at",
                params,
            ).fetchall()
        schemas = [PayloadSchemaOut.model_validate(r).wire() for r in rows]
        return {"schemas": schemas, "count": len(schemas)}

    @app.get("/v1/schemas/{schema_name}", response_model=PayloadSchemaOut)
    def get_latest_schema(schema_name: str = Path(..., max_length=255),
                          identity: Identity = Depends(current_identity)):
        with db.transaction(identity) as conn:
            row = conn.execute(
                f"select {_SCHEMA_COLUMNS} from registry.payload_schemas where schema_name = %s"
                " order by created_at desc limit 1",
                (schema_name,),
            ).fetchone()
        if row is None:
            raise HTTPException(404, f"schema {schema_name!r} not found")
        return PayloadSchemaOut.model_validate(row).wire()

    @app.get("/v1/schemas/{schema_name}/versions/{version}", response_model=PayloadSchemaOut)
    def get_schema_version(schema_name: str = Path(..., max_length=255), version: str = Path(..., max_length=64),
                           identity: Identity = Depends(current_identity)):
        with db.transaction(identity) as conn:
            row = conn.execute(
                f"select {_SCHEMA_COLUMNS} from registry.payload_schemas where schema_name = %s and version = %s",
                (schema_name, version),
            ).fetchone()
        if row is None:
            raise HTTPException(404, f"schema {schema_name!r} version {version!r} not found")
        return PayloadSchemaOut.model_validate(row).wire()

    return app
