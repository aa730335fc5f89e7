"""Spans riding a handler commit (issue 19 / issue 18 item 1, docs/observability.md): ``POST /v1/events/commit``
with ``spans`` stores them in the commit's transaction under the caller's identity, records the commit's own server
span below the request's ``traceparent``, and ``GET /v1/goals/{id}/trace`` shows them to the goal's owner only. Real
gateway handler, real PostgreSQL (role soorma_app, row-level security), real JetStream."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from soorma.events import EventEnvelope
from soorma.functions.shared.traces import goal_root_span_id, goal_trace_id


@pytest.fixture(autouse=True)
def _tracing_on(monkeypatch):
    monkeypatch.setenv("SOORMA_TRACING", "on")


def _span(trace_id: str, *, parent: str | None, name: str, goal_id: str | None, **extra) -> dict:
    start = datetime.now(UTC)
    return {"trace_id": trace_id, "span_id": uuid.uuid4().hex[:16], "parent_span_id": parent, "name": name,
            "kind": "consumer", "start_time": start.isoformat(),
            "end_time": (start + timedelta(milliseconds=5)).isoformat(), "status": "ok",
            "attributes": {"soorma.agent": "worker"}, "goal_id": goal_id, **extra}


def _commit(key: str, spans: list[dict], events: list[dict] | None = None) -> dict:
    return {"key": key, "expiry_timestamp": int(time.time()) + 3600, "events": events or [], "task_contexts": [],
            "deleted_task_contexts": [], "spans": spans}


@pytest.fixture
def goal(fx, gateway, nats_url):
    """A goal submitted by a fresh developer: (owner, goal id, its request envelope)."""
    owner = fx.new_identity("developer")
    reply = fx.invoke(gateway, fx.http_event("POST", "/v1/goals", identity=owner,
                                             body={"goal_type": "research.topic", "data": {}}))
    assert reply.status == 202, reply.body
    msg = fx.last_message(nats_url, f"soorma.{owner.platform_tenant_id}.action-requests.research.topic")
    return owner, reply.body["goal_id"], EventEnvelope.from_json(msg.data)


def _agent_for(fx, owner):
    """The owner's agent acting for the goal's service tenant and user (as a delivery grant makes it)."""
    return fx.new_identity("agent", pt=owner.platform_tenant_id, st=owner.service_tenant_id,
                           su=owner.service_user_id)


def _trace(fx, gateway, identity, goal_id) -> list[dict]:
    reply = fx.invoke(gateway, fx.http_event("GET", f"/v1/goals/{goal_id}/trace", identity=identity))
    assert reply.status == 200, reply.body
    return reply.body["spans"]


@pytest.mark.parametrize("with_event", [False, True])
def test_a_commit_stores_its_spans_and_its_own_server_span(fx, gateway, goal, with_event):
    owner, goal_id, _ = goal
    agent = _agent_for(fx, owner)
    trace_id, root = goal_trace_id(goal_id), goal_root_span_id(goal_id)
    process = _span(trace_id, parent=root, name="process research.topic", goal_id=goal_id)
    handler = _span(trace_id, parent=process["span_id"], name="handler research", goal_id=goal_id, kind="internal")
    events = [{"id": str(uuid.uuid4()), "type": "research.progress", "topic": "task-events", "data": {},
               "goal_id": goal_id}] if with_event else []
    key = f"soorma.commit.worker#{uuid.uuid4().hex}"
    traceparent = f"00-{trace_id}-{process['span_id']}-01"
    request = fx.http_event("POST", "/v1/events/commit", identity=agent, body=_commit(key, [process, handler], events),
                            headers={"traceparent": traceparent})
    before = datetime.now(UTC)
    reply = fx.invoke(gateway, request)
    after = datetime.now(UTC)
    assert reply.status == 200, reply.body

    spans = {span["name"]: span for span in _trace(fx, gateway, owner, goal_id)}
    assert {"goal research.topic", "process research.topic", "handler research", "POST /v1/events/commit"} \
        == set(spans), list(spans)
    server = spans["POST /v1/events/commit"]
    assert server["kind"] == "server" and server["parent_span_id"] == process["span_id"]
    assert server["trace_id"] == trace_id and server["status"] == "ok"
    assert server["attributes"]["soorma.events"] == len(events)
    assert before <= datetime.fromisoformat(server["start_time"]) <= datetime.fromisoformat(server["end_time"]) \
        <= after  # the commit's own time, measured by the gateway

    # the same request again (the SDK's retry): the key is committed, nothing is stored twice
    again = fx.invoke(gateway, request)
    assert again.status == 200 and again.body["replayed"] is True
    names = [span["name"] for span in _trace(fx, gateway, owner, goal_id)]
    assert sorted(names) == sorted(spans), names


def test_a_commit_without_traceparent_stores_its_spans_only(fx, gateway, goal):
    owner, goal_id, _ = goal
    trace_id = goal_trace_id(goal_id)
    process = _span(trace_id, parent=goal_root_span_id(goal_id), name="process research.topic", goal_id=goal_id)
    reply = fx.invoke(gateway, fx.http_event("POST", "/v1/events/commit", identity=_agent_for(fx, owner),
                                             body=_commit(f"k-{uuid.uuid4().hex}", [process]),
                                             headers={"traceparent": "00-garbage"}))
    assert reply.status == 200, reply.body
    names = {span["name"] for span in _trace(fx, gateway, owner, goal_id)}
    assert names == {"goal research.topic", "process research.topic"}


def test_spans_committed_by_another_tenant_never_enter_the_goals_trace(fx, gateway, goal):
    """The attack: another platform tenant's agent, and an agent of the same platform tenant acting for another
    service user, commit spans naming the owner's goal, trace and root span (and a traceparent below it)."""
    owner, goal_id, _ = goal
    trace_id, root = goal_trace_id(goal_id), goal_root_span_id(goal_id)
    intruders = [fx.new_identity("agent"), fx.new_identity("agent", pt=owner.platform_tenant_id)]
    for intruder in intruders:
        forged = _span(trace_id, parent=root, name="forged", goal_id=goal_id)
        reply = fx.invoke(gateway, fx.http_event("POST", "/v1/events/commit", identity=intruder,
                                                 body=_commit(f"k-{uuid.uuid4().hex}", [forged]),
                                                 headers={"traceparent": f"00-{trace_id}-{root}-01"}))
        assert reply.status == 200, reply.body  # stored under the intruder's own identity, where only it sees it
    names = [span["name"] for span in _trace(fx, gateway, owner, goal_id)]
    assert names == ["goal research.topic"], names


@pytest.mark.parametrize("spans, why", [
    ([{"trace_id": "xyz"}], "incomplete span"),
    ([_span("0" * 32, parent=None, name="p", goal_id=None)], "all-zero trace id"),
    ([_span(uuid.uuid4().hex, parent=None, name="p", goal_id=None, kind="sideways")], "unknown kind"),
    ([_span(uuid.uuid4().hex, parent=None, name="p", goal_id=None)] * 513, "too many"),
])
def test_bad_spans_in_a_commit_are_a_clear_422_and_nothing_is_applied(fx, gateway, db, spans, why):
    agent = fx.new_identity("agent")
    key = f"k-{uuid.uuid4().hex}"
    reply = fx.invoke(gateway, fx.http_event("POST", "/v1/events/commit", identity=agent, body=_commit(key, spans)))
    assert reply.status == 422, (why, reply.body)
    with db.transaction(agent) as conn:
        assert conn.execute("select count(*) as n from memory.idempotency_records where key = %s",
                            (key,)).fetchone()["n"] == 0
