"""Gateway function through its Mangum handler: goals published to the real JetStream, event publishing, RLS."""

from __future__ import annotations

import json
import socket
import uuid

import pytest
from mangum import Mangum

from soorma.functions.gateway.app import create_app
from soorma.functions.gateway.publisher import NatsPublisher


@pytest.fixture
def call(fx, gateway):
    def _call(method, path, identity, body=None, query=None):
        return fx.invoke(gateway, fx.http_event(method, path, identity=identity, body=body, query=query))

    return _call


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_submit_goal_publishes_envelope(fx, call, nats_url):
    me = fx.new_identity(role="user")
    reply = call("POST", "/v1/goals", me, {"goal_type": "research.topic", "data": {"topic": "bees"},
                                           "session_id": "sess-1"})
    assert reply.status == 202, reply.body
    goal_id = reply.body["goal_id"]
    assert reply.body == {"goal_id": goal_id, "status": "running", "goal_type": "research.topic"}
    uuid.UUID(goal_id)

    msg = fx.last_message(nats_url, f"soorma.{me.platform_tenant_id}.action-requests.research.topic")
    envelope = json.loads(msg.data)
    assert msg.headers["Nats-Msg-Id"] == f"{me.platform_tenant_id}:{envelope['id']}"  # scoped by the tenant
    assert envelope["type"] == "research.topic" and envelope["topic"] == "action-requests"
    assert envelope["data"] == {"topic": "bees"}
    assert envelope["correlation_id"] == envelope["goal_id"] == envelope["trace_id"] == goal_id
    assert envelope["response_event"] == "soorma.goal.result" and envelope["response_topic"] == "action-results"
    assert envelope["platform_tenant_id"] == me.platform_tenant_id
    assert envelope["tenant_id"] == me.service_tenant_id and envelope["user_id"] == me.service_user_id
    assert envelope["session_id"] == "sess-1"

    goal = call("GET", f"/v1/goals/{goal_id}", me)
    assert goal.status == 200
    assert goal.body["goal_id"] == goal_id and goal.body["status"] == "running"
    assert goal.body["goal_type"] == "research.topic" and goal.body["data"] == {"topic": "bees"}
    assert goal.body["result"] is None and goal.body["error"] is None and goal.body["completed_at"] is None
    assert goal.body["tasks"] == [] and goal.body["events"] == 0 and goal.body["created_at"]


def test_goal_body_accepts_camel_case(fx, call):
    reply = call("POST", "/v1/goals", fx.new_identity(), {"goalType": "camel.goal", "sessionId": "s1"})
    assert reply.status == 202 and reply.body["goal_type"] == "camel.goal"


def test_goal_of_another_identity_is_404(fx, call):
    a = fx.new_identity(role="user")
    goal_id = call("POST", "/v1/goals", a, {"goal_type": "g.x"}).body["goal_id"]
    assert call("GET", f"/v1/goals/{goal_id}", a).status == 200
    other_platform = fx.new_identity(role="user")
    same_platform_other_user = fx.new_identity(role="user", pt=a.platform_tenant_id, st=a.service_tenant_id)
    same_platform_other_tenant = fx.new_identity(role="admin", pt=a.platform_tenant_id, su=a.service_user_id)
    for other in (other_platform, same_platform_other_user, same_platform_other_tenant):
        assert call("GET", f"/v1/goals/{goal_id}", other).status == 404


def test_unknown_and_malformed_goal_ids_are_404(fx, call):
    me = fx.new_identity()
    assert call("GET", f"/v1/goals/{uuid.uuid4()}", me).status == 404
    assert call("GET", "/v1/goals/not-a-uuid", me).status == 404


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"goal_type": ""},
        {"goal_type": "bad type"},
        {"goal_type": "a..b"},
        {"goal_type": "x" * 201},
        {"goal_type": "ok", "data": "not-an-object"},
        {"goal_type": "ok", "data": [1, 2]},
        {"goal_type": "ok", "session_id": ""},
    ],
)
def test_invalid_goal_is_422(fx, call, body):
    reply = call("POST", "/v1/goals", fx.new_identity(), body)
    assert reply.status == 422, reply.body
    assert reply.body["detail"]


def test_goal_data_postgres_cannot_store_is_422(fx, call):
    reply = call("POST", "/v1/goals", fx.new_identity(), {"goal_type": "ok", "data": {"x": "nul \u0000"}})
    assert reply.status == 422, reply.body


@pytest.mark.parametrize("raw", ['{"goal_type": "ok", "data": {"x": 1e400}}', '{"goal_type": "ok", "data": {"x": NaN}}',
                                 '{"goal_type": ' + "[" * 5000 + "]" * 5000 + "}", "not json", ""])
def test_odd_bodies_are_client_errors(fx, gateway, raw):
    reply = fx.invoke(gateway, fx.http_event("POST", "/v1/goals", identity=fx.new_identity(), raw_body=raw))
    assert 400 <= reply.status < 500, reply.body


def test_publisher_replaces_a_dead_connection(fx, nats_url):
    import asyncio

    from soorma.events import EventEnvelope

    publisher = NatsPublisher(nats_url)
    try:
        me = fx.new_identity()
        first = EventEnvelope(type="warm.one", topic="business-facts", platform_tenant_id=me.platform_tenant_id)
        publisher.publish(first)
        # what a long Lambda freeze can leave behind: the connection is gone
        asyncio.run_coroutine_threadsafe(publisher._nc.close(), publisher._loop).result(5)
        second = EventEnvelope(type="warm.two", topic="business-facts", platform_tenant_id=me.platform_tenant_id)
        publisher.publish(second)
        msg = fx.last_message(nats_url, f"soorma.{me.platform_tenant_id}.business-facts.warm.two")
        assert json.loads(msg.data)["id"] == second.id
    finally:
        publisher.close()


def test_oversized_events_are_413(fx, call):
    me = fx.new_identity()
    big = {"blob": "x" * 1_100_000}
    reply = call("POST", "/v1/goals", me, {"goal_type": "big.goal", "data": big})
    assert reply.status == 413, reply.body
    assert "maximum payload" in reply.body["detail"]
    assert call("GET", "/v1/goals", me).body["count"] == 0  # refused before the goal (and its data) was stored
    reply = call("POST", "/v1/events/publish", me, {"event": {"type": "big.fact", "topic": "business-facts",
                                                              "data": big}})
    assert reply.status == 413, reply.body


def test_publish_failure_leaves_goal_pending_and_answers_503(fx, db, pepper):
    broken = NatsPublisher(f"nats://127.0.0.1:{closed_port()}", connect_timeout_s=0.5, publish_timeout_s=0.5)
    try:
        app = Mangum(create_app(db, broken), lifespan="off")
        me = fx.new_identity()
        reply = fx.invoke(app, fx.http_event("POST", "/v1/goals", identity=me, body={"goal_type": "g.down"},
                                             headers={"idempotency-key": f"k-{uuid.uuid4()}"}))
        assert reply.status == 503, reply.body
        assert "event bus unavailable" in reply.body["detail"] and reply.body["status"] == "pending"
        goal = fx.invoke(app, fx.http_event("GET", f"/v1/goals/{reply.body['goal_id']}", identity=me)).body
        assert goal["status"] == "pending" and goal["completed_at"] is None  # not failed: a retry can publish it

        # Without an Idempotency-Key nothing can retry it: it ends failed with the reason, never pending forever.
        reply = fx.invoke(app, fx.http_event("POST", "/v1/goals", identity=me, body={"goal_type": "g.down"}))
        assert reply.status == 503 and reply.body["status"] == "failed", reply.body
        goal = fx.invoke(app, fx.http_event("GET", f"/v1/goals/{reply.body['goal_id']}", identity=me)).body
        assert goal["status"] == "failed" and "not published" in goal["error"], goal

        published = fx.invoke(app, fx.http_event("POST", "/v1/events/publish", identity=me, body={
            "event": {"type": "x.y", "topic": "business-facts"}}))
        assert published.status == 503
    finally:
        broken.close()


@pytest.mark.parametrize(
    "method,path,body",
    [
        ("POST", "/v1/goals", {"goal_type": "a.b"}),
        ("GET", f"/v1/goals/{uuid.uuid4()}", None),
        ("POST", "/v1/events/publish", {"event": {"type": "a.b", "topic": "business-facts"}}),
    ],
)
def test_every_route_needs_identity(fx, call, method, path, body):
    assert call(method, path, None, body).status == 401


def test_publish_event_forces_identity_for_users(fx, call, nats_url):
    for role in ("user", "developer"):
        me = fx.new_identity(role=role)
        event = {"type": "order.placed", "topic": "business-facts", "data": {"n": 1},
                 "platform_tenant_id": "someone-else", "tenant_id": "other-tenant", "user_id": "other-user",
                 "custom_field": "kept"}
        reply = call("POST", "/v1/events/publish", me, {"event": event})
        assert reply.status == 200, reply.body
        assert reply.body["success"] is True
        msg = fx.last_message(nats_url, f"soorma.{me.platform_tenant_id}.business-facts.order.placed")
        sent = json.loads(msg.data)
        assert sent["id"] == reply.body["event_id"]
        assert msg.headers["Nats-Msg-Id"] == f"{me.platform_tenant_id}:{sent['id']}"
        assert reply.body["duplicate"] is False
        assert sent["platform_tenant_id"] == me.platform_tenant_id
        assert sent["tenant_id"] == me.service_tenant_id and sent["user_id"] == me.service_user_id
        assert sent["data"] == {"n": 1} and sent["custom_field"] == "kept"


def test_publish_event_for_agents(fx, call, nats_url):
    me = fx.new_identity(role="agent")
    filled = call("POST", "/v1/events/publish", me, {"event": {"type": "step.done", "topic": "action-results"}})
    assert filled.status == 200
    sent = json.loads(fx.last_message(nats_url, f"soorma.{me.platform_tenant_id}.action-results.step.done").data)
    assert sent["tenant_id"] == me.service_tenant_id and sent["user_id"] == me.service_user_id

    matching = {"type": "step.done", "topic": "action-results", "tenant_id": me.service_tenant_id,
                "user_id": me.service_user_id, "id": "evt-fixed-1"}
    assert call("POST", "/v1/events/publish", me, {"event": matching}).body["event_id"] == "evt-fixed-1"

    for field in ("tenant_id", "user_id"):
        reply = call("POST", "/v1/events/publish", me, {"event": {**matching, field: "somebody-else"}})
        assert reply.status == 403 and field in reply.body["detail"]


@pytest.mark.parametrize(
    "event",
    [
        {"type": "x.y", "topic": "no-such-topic"},
        {"type": "bad type", "topic": "business-facts"},
        {"type": "a..b", "topic": "business-facts"},
        {"topic": "business-facts"},
        {"type": "x.y"},
        {"type": "x.y", "topic": "business-facts", "id": "bad\r\nid"},
        {"type": "x.y", "topic": "business-facts", "data": "not-an-object"},
    ],
)
def test_publish_invalid_event_is_422(fx, call, event):
    reply = call("POST", "/v1/events/publish", fx.new_identity(), {"event": event})
    assert reply.status == 422, reply.body
    assert reply.body["detail"]


def test_publish_missing_event_is_422(fx, call):
    assert call("POST", "/v1/events/publish", fx.new_identity(), {}).status == 422


def test_handler_module_from_environment(fx, app_env, nats_url):
    from soorma.functions.gateway.handler import handler

    me = fx.new_identity()
    reply = fx.invoke(handler, fx.http_event("POST", "/v1/goals", identity=me, body={"goal_type": "env.goal"}))
    assert reply.status == 202, reply.body
    sent = json.loads(fx.last_message(nats_url, f"soorma.{me.platform_tenant_id}.action-requests.env.goal").data)
    assert sent["goal_id"] == reply.body["goal_id"]
    # a second (warm) invocation reuses the same app and NATS connection
    again = fx.invoke(handler, fx.http_event("POST", "/v1/goals", identity=me, body={"goal_type": "env.goal"}))
    assert again.status == 202
    assert fx.invoke(handler, fx.http_event("GET", f"/v1/goals/{again.body['goal_id']}", identity=me)).status == 200
