"""Registry function through its Mangum handler: routes, validation, RLS isolation, and the bridge's routes."""

from __future__ import annotations

import psycopg
import pytest

from soorma.functions.registry.routes import Route, list_routes, routes_version


def agent_body(agent_id: str, name: str = "summarizer", **extra):
    agent = {
        "agent_id": agent_id,
        "name": name,
        "description": "summarizes documents",
        "version": "1.0.0",
        "capabilities": [
            {"task_name": "summarize", "description": "summarize text",
             "consumed_event": {"event_name": "doc.summarize", "topic": "action-requests"},
             "produced_events": [{"event_name": "doc.summarized", "topic": "action-results"}]},
            "plain-capability",
        ],
        "consumed_events": ["doc.summarize"],
        "produced_events": ["doc.summarized"],
    }
    agent.update(extra)
    return {"agent": agent}


DEPLOYMENT = {
    "function_name": "summarizer-fn",
    "transport": "nats",
    "subscriptions": [{"topic": "action-requests", "event_type": "doc.summarize"}],
}


@pytest.fixture
def call(fx, registry):
    def _call(method, path, identity, body=None, query=None):
        return fx.invoke(registry, fx.http_event(method, path, identity=identity, body=body, query=query))

    return _call


@pytest.fixture
def deploy(db):
    """Register an agent with its deployment binding the way the deploy path does (the registrar custom resource's
    ``upsert_agent(..., write_deployment=True)``): the registry's HTTP API refuses bindings."""
    from soorma.functions.registry.app import upsert_agent
    from soorma.functions.registry.models import AgentDefinition

    def _deploy(identity, body):
        with db.transaction(identity) as conn:
            return upsert_agent(conn, identity, AgentDefinition.model_validate(body["agent"]), write_deployment=True)

    return _deploy


def test_register_and_query_agent(fx, call, deploy):
    me = fx.new_identity()
    reply = call("POST", "/v1/agents", me, agent_body("sum-1"))
    assert reply.status == 200, reply.body
    assert reply.body == {"agentId": "sum-1", "success": True, "message": "Agent registered"}
    assert call("GET", "/v1/agents/sum-1", me).body["deployment"] is None
    deploy(me, agent_body("sum-1", deployment=DEPLOYMENT))

    by_name = call("GET", "/v1/agents", me, query={"name": "summarizer"})
    assert by_name.status == 200 and by_name.body["count"] == 1  # soorma-core's ?name= always returned 0
    agent = by_name.body["agents"][0]
    assert agent["agentId"] == "sum-1" and agent["version"] == "1.0.0"
    assert agent["consumedEvents"] == ["doc.summarize"] and agent["producedEvents"] == ["doc.summarized"]
    assert agent["capabilities"][0]["taskName"] == "summarize"
    assert agent["capabilities"][0]["consumedEvent"]["eventName"] == "doc.summarize"
    assert agent["capabilities"][1]["taskName"] == "plain-capability"
    assert agent["deployment"] == {
        "functionName": "summarizer-fn", "transport": "nats",
        "subscriptions": [{"topic": "action-requests", "eventType": "doc.summarize"}],
        "batchSize": 10, "maxConcurrency": 2, "maxDeliveries": 5, "timeoutSeconds": 30,
    }
    assert {"createdAt", "updatedAt", "lastHeartbeat"} <= agent.keys()

    assert call("GET", "/v1/agents", me, query={"agent_id": "sum-1"}).body["count"] == 1
    assert call("GET", "/v1/agents", me, query={"agent_id": "nope"}).body["count"] == 0
    assert call("GET", "/v1/agents", me, query={"consumed_event": "doc.summarize"}).body["count"] == 1
    assert call("GET", "/v1/agents", me, query={"produced_event": "doc.summarized"}).body["count"] == 1
    assert call("GET", "/v1/agents", me, query={"consumed_event": "other"}).body["count"] == 0
    assert call("GET", "/v1/agents", me).body["count"] == 1
    assert call("GET", "/v1/agents/sum-1", me).body["agentId"] == "sum-1"
    assert call("GET", "/v1/agents/nope", me).status == 404


def test_name_query_matches_soorma_core_name_version_form(fx, call):
    me = fx.new_identity()
    assert call("POST", "/v1/agents", me, agent_body("w-1", name="worker:0.1.0")).status == 200
    assert call("GET", "/v1/agents", me, query={"name": "worker"}).body["count"] == 1
    assert call("GET", "/v1/agents", me, query={"name": "worker:0.1.0"}).body["count"] == 1
    assert call("GET", "/v1/agents", me, query={"name": "work"}).body["count"] == 0


def test_camel_case_body_and_upsert(fx, call, deploy):
    me = fx.new_identity(role="agent")
    body = {"agent": {"agentId": "a-1", "name": "camel", "consumedEvents": [{"eventName": "x.y"}],
                      "deployment": {"functionName": "fn", "subscriptions": [{"topic": "business-facts",
                                                                             "eventType": "*"}],
                                     "batchSize": 3}}}
    deploy(me, body)
    again = call("POST", "/v1/agents", me, body)  # the binding repeated unchanged (read, then registered back)
    assert again.status == 200, again.body
    assert again.body["message"] == "Agent unchanged"
    body["agent"]["version"] = "2.0.0"
    assert call("POST", "/v1/agents", me, body).body["message"] == "Agent registered"
    agent = call("GET", "/v1/agents", me, query={"agent_id": "a-1"}).body["agents"][0]
    assert agent["version"] == "2.0.0" and agent["consumedEvents"] == ["x.y"]
    assert agent["deployment"]["batchSize"] == 3 and agent["deployment"]["subscriptions"][0]["eventType"] == "*"


def test_discover(fx, call):
    me = fx.new_identity()
    call("POST", "/v1/agents", me, agent_body("d-1"))
    call("POST", "/v1/agents", me, agent_body("d-2", name="other", consumed_events=["x.other"], capabilities=[]))
    found = call("GET", "/v1/agents/discover", me, query={"consumed_event": "doc.summarize"})
    assert found.status == 200 and [a["agentId"] for a in found.body["agents"]] == ["d-1"]
    # a capability's consumed event counts too
    call("POST", "/v1/agents", me, agent_body("d-3", name="cap-only", consumed_events=[]))
    found = call("GET", "/v1/agents/discover", me, query={"consumed_event": "doc.summarize"})
    assert sorted(a["agentId"] for a in found.body["agents"]) == ["d-1", "d-3"]
    assert call("GET", "/v1/agents/discover", me).body["count"] == 3


@pytest.mark.parametrize(
    "deployment",
    [
        {**DEPLOYMENT, "transport": "kafka"},
        {**DEPLOYMENT, "batch_size": 0},
        {**DEPLOYMENT, "batch_size": 101},
        {**DEPLOYMENT, "max_concurrency": 0},
        {**DEPLOYMENT, "max_deliveries": 101},
        {**DEPLOYMENT, "timeout_seconds": 901},
        {**DEPLOYMENT, "function_name": ""},
        {**DEPLOYMENT, "function_name": "bad name"},
        {**DEPLOYMENT, "subscriptions": [{"topic": "not-a-topic", "event_type": "x"}]},
        {**DEPLOYMENT, "subscriptions": [{"topic": "action-requests", "event_type": "bad type!"}]},
        {**DEPLOYMENT, "subscriptions": [{"topic": "action-requests", "event_type": "a..b"}]},
        {**DEPLOYMENT, "unknown_option": 1},
        "not-an-object",
    ],
)
def test_invalid_deployment_is_422(fx, call, deployment):
    reply = call("POST", "/v1/agents", fx.new_identity(), agent_body("bad", deployment=deployment))
    assert reply.status == 422, reply.body
    assert reply.body["detail"]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"agent": {"name": "no-id"}},
        {"agent": {"agent_id": "", "name": "x"}},
        {"agent": {"agent_id": "x" * 256, "name": "x"}},
        {"agent": {"agent_id": "x", "name": "x", "consumed_events": "not-a-list"}},
    ],
)
def test_invalid_agent_is_422(fx, call, body):
    assert call("POST", "/v1/agents", fx.new_identity(), body).status == 422


def test_nul_character_is_a_client_error_not_500(fx, call):
    reply = call("POST", "/v1/agents", fx.new_identity(), agent_body("nul", description="bad \x00 byte"))
    assert reply.status == 422, reply.body


def test_malformed_json_is_422(fx, registry):
    event = fx.http_event("POST", "/v1/agents", identity=fx.new_identity(), raw_body="{not json")
    assert fx.invoke(registry, event).status == 422


def test_heartbeat_compatibility(fx, call):
    me = fx.new_identity(role="agent")
    call("POST", "/v1/agents", me, agent_body("hb-1"))
    for method in ("PUT", "POST"):
        reply = call(method, "/v1/agents/hb-1/heartbeat", me)
        assert reply.status == 200 and reply.body["agentId"] == "hb-1" and reply.body["success"] is True
    assert call("PUT", "/v1/agents/nope/heartbeat", me).status == 404
    assert call("PUT", "/v1/agents/hb-1/heartbeat", fx.new_identity()).status == 404  # another tenant


def test_non_finite_numbers_are_a_client_error(fx, registry):
    raw = '{"event": {"event_name": "n.f", "payload_schema": {"max": 1e400}}}'
    event = fx.http_event("POST", "/v1/events", identity=fx.new_identity(), raw_body=raw)
    assert fx.invoke(registry, event).status == 422


def test_delete_agent(fx, call):
    me = fx.new_identity()
    call("POST", "/v1/agents", me, agent_body("del-1"))
    assert call("DELETE", "/v1/agents/del-1", me).status == 204
    assert call("DELETE", "/v1/agents/del-1", me).status == 404
    assert call("GET", "/v1/agents", me).body["count"] == 0


def test_role_user_cannot_write(fx, call):
    user = fx.new_identity(role="user")
    assert call("POST", "/v1/agents", user, agent_body("u-1")).status == 403
    assert call("POST", "/v1/events", user, {"event": {"event_name": "a.b"}}).status == 403
    assert call("DELETE", "/v1/agents/u-1", user).status == 403
    assert call("GET", "/v1/agents", user).status == 200


@pytest.mark.parametrize(
    "method,path,body",
    [
        ("POST", "/v1/agents", agent_body("x")),
        ("GET", "/v1/agents", None),
        ("GET", "/v1/agents/discover", None),
        ("GET", "/v1/agents/x", None),
        ("DELETE", "/v1/agents/x", None),
        ("POST", "/v1/events", {"event": {"event_name": "a.b"}}),
        ("GET", "/v1/events", None),
    ],
)
def test_every_route_needs_identity(fx, call, method, path, body):
    reply = call(method, path, None, body)
    assert reply.status == 401 and "detail" in reply.body


def test_tenant_isolation(fx, call, db):
    a = fx.new_identity()
    b = fx.new_identity()
    same_platform_other_user = fx.new_identity(pt=a.platform_tenant_id)
    assert call("POST", "/v1/agents", a, agent_body("shared-id")).status == 200
    call("POST", "/v1/events", a, {"event": {"event_name": "secret.event"}})

    assert call("GET", "/v1/agents", b).body["count"] == 0
    assert call("GET", "/v1/agents", b, query={"name": "summarizer"}).body["count"] == 0
    assert call("GET", "/v1/agents/discover", b, query={"consumed_event": "doc.summarize"}).body["count"] == 0
    assert call("GET", "/v1/agents/shared-id", b).status == 404
    assert call("DELETE", "/v1/agents/shared-id", b).status == 404
    assert call("GET", "/v1/events", b).body["count"] == 0
    # B registers the same agent id: a separate row, A's is untouched
    call("POST", "/v1/agents", b, agent_body("shared-id", name="b-agent"))
    assert call("GET", "/v1/agents/shared-id", a).body["name"] == "summarizer"
    assert call("GET", "/v1/agents/shared-id", b).body["name"] == "b-agent"
    # the registry is scoped by platform tenant only: another service user of A's platform tenant sees A's agents
    assert call("GET", "/v1/agents/shared-id", same_platform_other_user).body["name"] == "summarizer"

    # RLS, not only WHERE clauses: without an identity soorma_app sees no row at all
    with db.transaction() as conn:
        assert conn.execute("select count(*) as n from registry.agents").fetchone()["n"] == 0
        assert conn.execute("select count(*) as n from registry.events").fetchone()["n"] == 0


def test_events_routes(fx, call):
    me = fx.new_identity()
    event = {"event_name": "order.placed", "topic": "business-facts", "description": "an order",
             "payload_schema": {"type": "object"}}
    reply = call("POST", "/v1/events", me, {"event": event})
    assert reply.status == 200 and reply.body == {"eventName": "order.placed", "success": True,
                                                  "message": "Event registered"}
    call("POST", "/v1/events", me, {"event": {"eventName": "order.ship", "topic": "action-requests",
                                              "responseSchema": {"type": "object"}}})
    got = call("GET", "/v1/events", me, query={"event_name": "order.placed"}).body
    assert got["count"] == 1
    assert got["events"][0]["payloadSchema"] == {"type": "object"} and got["events"][0]["topic"] == "business-facts"
    assert call("GET", "/v1/events", me, query={"topic": "action-requests"}).body["events"][0]["eventName"] == \
        "order.ship"
    assert call("GET", "/v1/events", me).body["count"] == 2
    # upsert by name
    call("POST", "/v1/events", me, {"event": {**event, "description": "changed"}})
    got = call("GET", "/v1/events", me, query={"event_name": "order.placed"}).body
    assert got["count"] == 1 and got["events"][0]["description"] == "changed"


@pytest.mark.parametrize(
    "event",
    [
        {"event_name": "bad name", "topic": "business-facts"},
        {"event_name": "ok.name", "topic": "no-such-topic"},
        {"topic": "business-facts"},
        {"event_name": "x" * 201},
    ],
)
def test_invalid_event_is_422(fx, call, event):
    assert call("POST", "/v1/events", fx.new_identity(), {"event": event}).status == 422


def test_events_bad_topic_query_is_422(fx, call):
    assert call("GET", "/v1/events", fx.new_identity(), query={"topic": "nope"}).status == 422


def test_list_routes_and_version(fx, call, deploy, app_dsn):
    a = fx.new_identity()
    b = fx.new_identity()
    with psycopg.connect(app_dsn) as conn:  # plain soorma_app connection, no identity, tuple rows
        v0 = routes_version(conn)
    deploy(a, agent_body("r-1", deployment=DEPLOYMENT))
    call("POST", "/v1/agents", a, agent_body("r-2", name="undeployed"))  # no deployment: not a route
    deploy(b, agent_body("r-1", name="b-summarizer", deployment={**DEPLOYMENT, "transport": "sqs", "batch_size": 7}))
    with psycopg.connect(app_dsn) as conn:
        v1 = routes_version(conn)
        mine = [r for r in list_routes(conn) if r.platform_tenant_id in (a.platform_tenant_id, b.platform_tenant_id)]
    assert v1 >= v0 + 2
    assert [(r.platform_tenant_id, r.agent_id, r.name) for r in mine] == sorted(
        [(a.platform_tenant_id, "r-1", "summarizer"), (b.platform_tenant_id, "r-1", "b-summarizer")]
    )
    assert all(isinstance(r, Route) for r in mine)
    route_b = next(r for r in mine if r.platform_tenant_id == b.platform_tenant_id)
    assert route_b.deployment.transport == "sqs" and route_b.deployment.batch_size == 7
    assert route_b.deployment.subscriptions[0].topic == "action-requests"
    assert route_b.created_at is not None and route_b.updated_at >= route_b.created_at

    # a no-op re-registration does not move the version (with the same binding, or without one: it is kept); an
    # undeployed agent's change neither
    assert call("POST", "/v1/agents", a, agent_body("r-1", deployment=DEPLOYMENT)).body["message"] == "Agent unchanged"
    assert call("POST", "/v1/agents", a, agent_body("r-1")).body["message"] == "Agent unchanged"
    call("POST", "/v1/agents", a, agent_body("r-2", name="undeployed", version="9"))
    with psycopg.connect(app_dsn) as conn:
        assert routes_version(conn) == v1
    call("DELETE", "/v1/agents/r-1", a)
    with psycopg.connect(app_dsn) as conn:
        assert routes_version(conn) == v1 + 1
        assert all(r.platform_tenant_id != a.platform_tenant_id for r in list_routes(conn))


def test_app_role_privileges(app_dsn):
    with psycopg.connect(app_dsn) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("update registry.route_version set version = 0")
        conn.rollback()
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("delete from registry.events")
        conn.rollback()
        row = conn.execute(
            "select relrowsecurity, relforcerowsecurity from pg_class where oid = 'registry.agents'::regclass"
        ).fetchone()
        assert row == (True, True)


def test_handler_module_from_environment(fx, app_env):
    from soorma.functions.registry.handler import handler

    me = fx.new_identity()
    assert fx.invoke(handler, fx.http_event("POST", "/v1/agents", identity=me, body=agent_body("h-1"))).status == 200
    assert fx.invoke(handler, fx.http_event("GET", "/v1/agents", identity=me)).body["count"] == 1
    assert fx.invoke(handler, fx.http_event("GET", "/v1/agents")).status == 401


def schema_body(name: str = "ticket", version: str = "1.0.0", **extra):
    schema = {"schema_name": name, "version": version, "description": "a support ticket",
              "json_schema": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}}
    schema.update(extra)
    return {"schema": schema}


def test_payload_schemas_register_immutable_versions_latest_and_exact(fx, call):
    me = fx.new_identity()
    first = call("POST", "/v1/schemas", me, schema_body(owner_agent_id="router"))
    assert first.status == 201, first.body
    assert first.body == {"schemaName": "ticket", "version": "1.0.0", "success": True,
                          "message": "Schema registered"}
    # a version is immutable: registering it again (even with another body) is a 409 and changes nothing
    again = call("POST", "/v1/schemas", me, schema_body(description="changed"))
    assert again.status == 409 and "immutable" in again.body["detail"]
    assert call("POST", "/v1/schemas", me, schema_body(version="2.0.0")).status == 201

    latest = call("GET", "/v1/schemas/ticket", me)
    assert latest.status == 200 and latest.body["version"] == "2.0.0"
    exact = call("GET", "/v1/schemas/ticket/versions/1.0.0", me)
    assert exact.status == 200 and exact.body["description"] == "a support ticket"
    assert exact.body["jsonSchema"]["required"] == ["text"] and exact.body["ownerAgentId"] == "router"
    assert call("GET", "/v1/schemas/ticket/versions/9.9.9", me).status == 404
    assert call("GET", "/v1/schemas/nothing", me).status == 404

    listed = call("GET", "/v1/schemas", me)
    assert listed.status == 200 and [(s["schemaName"], s["version"]) for s in listed.body["schemas"]] == [
        ("ticket", "1.0.0"), ("ticket", "2.0.0")]
    owned = call("GET", "/v1/schemas", me, query={"owner_agent_id": "router"})
    assert [s["version"] for s in owned.body["schemas"]] == ["1.0.0"]


def test_payload_schemas_are_per_platform_tenant_and_need_a_writer(fx, call):
    me, other = fx.new_identity(), fx.new_identity()
    assert call("POST", "/v1/schemas", me, schema_body()).status == 201
    assert call("GET", "/v1/schemas/ticket", other).status == 404
    assert call("GET", "/v1/schemas", other).body == {"schemas": [], "count": 0}
    assert call("POST", "/v1/schemas", other, schema_body()).status == 201  # its own (name, version)
    reader = fx.new_identity("user", pt=me.platform_tenant_id)
    refused = call("POST", "/v1/schemas", reader, schema_body(version="3.0.0"))
    assert refused.status == 403
    assert call("GET", "/v1/schemas/ticket", me).body["version"] == "1.0.0"


@pytest.mark.parametrize("body", [
    {"schema": {"schema_name": "x"}},  # no json_schema
    {"schema": {"schema_name": "has space", "json_schema": {}}},
    {"schema": {"schema_name": "x", "json_schema": ["not", "an", "object"]}},
    {"schema": {"schema_name": "x" * 300, "json_schema": {}}},
    {"nothing": True},
])
def test_payload_schema_bad_input_is_a_422(fx, call, body):
    reply = call("POST", "/v1/schemas", fx.new_identity(), body)
    assert reply.status == 422, reply.body
