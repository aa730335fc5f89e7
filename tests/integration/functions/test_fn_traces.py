"""Traces across events on the platform side (docs/observability.md): the gateway starts one trace per goal and
stamps its ``traceparent`` on the goal's request, agents' spans are stored through ``POST /v1/tracker/spans`` under
the caller's identity, and ``GET /v1/goals/{id}/trace`` answers the goal's spans to its owner only. Real gateway and
tracker handlers, real PostgreSQL (role soorma_app, row-level security), real JetStream."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from soorma.events import EventEnvelope
from soorma.functions.shared.traces import goal_root_span_id, goal_trace_id


def _span(trace_id: str, *, parent: str | None, name: str = "process research.topic", goal_id: str | None = None,
          **extra) -> dict:
    start = datetime.now(UTC)
    return {"trace_id": trace_id, "span_id": uuid.uuid4().hex[:16], "parent_span_id": parent, "name": name,
            "kind": "consumer", "start_time": start.isoformat(), "end_time": (start + timedelta(milliseconds=5)).isoformat(),
            "status": "ok", "attributes": {"soorma.agent": "researcher"}, "goal_id": goal_id, **extra}


@pytest.fixture(autouse=True)
def _tracing_on(monkeypatch):
    monkeypatch.setenv("SOORMA_TRACING", "on")  # in process, not a Lambda function: off unless asked for


@pytest.fixture
def submit(fx, gateway, nats_url):
    def _submit(identity, goal_type="research.topic"):
        reply = fx.invoke(gateway, fx.http_event("POST", "/v1/goals", identity=identity,
                                                 body={"goal_type": goal_type, "data": {}}))
        assert reply.status == 202, reply.body
        msg = fx.last_message(nats_url, f"soorma.{identity.platform_tenant_id}.action-requests.{goal_type}")
        return reply.body["goal_id"], EventEnvelope.from_json(msg.data)

    return _submit


def _trace(fx, gateway, identity, goal_id):
    return fx.invoke(gateway, fx.http_event("GET", f"/v1/goals/{goal_id}/trace", identity=identity))


def test_a_goal_starts_one_trace_and_its_owner_reads_the_agents_spans(fx, gateway, tracker_http, submit):
    owner = fx.new_identity("developer")
    goal_id, envelope = submit(owner)
    trace_id, root = goal_trace_id(goal_id), goal_root_span_id(goal_id)
    assert envelope.traceparent == f"00-{trace_id}-{root}-01"
    assert trace_id == uuid.UUID(goal_id).hex

    spans = [_span(trace_id, parent=root, goal_id=goal_id)]
    spans.append(_span(trace_id, parent=spans[0]["span_id"], name="handler research", goal_id=goal_id,
                       kind="internal"))
    stored = fx.invoke(tracker_http, fx.http_event("POST", "/v1/tracker/spans", identity=owner,
                                                   body={"spans": spans}))
    assert stored.status == 202 and stored.body == {"accepted": 2, "stored": 2}, stored.body
    again = fx.invoke(tracker_http, fx.http_event("POST", "/v1/tracker/spans", identity=owner, body={"spans": spans}))
    assert again.body == {"accepted": 2, "stored": 0}  # a re-sent span is kept once

    reply = _trace(fx, gateway, owner, goal_id)
    assert reply.status == 200, reply.body
    body = reply.body
    assert body["goal_id"] == goal_id and body["trace_id"] == trace_id
    names = [span["name"] for span in body["spans"]]
    assert names == ["goal research.topic", "process research.topic", "handler research"], names
    first = body["spans"][0]
    assert first["span_id"] == root and first["parent_span_id"] is None and first["kind"] == "server"
    assert set(first) == {"trace_id", "span_id", "parent_span_id", "name", "kind", "start_time", "end_time",
                          "duration_ms", "status", "attributes"}
    assert first["start_time"].endswith("+00:00") and first["duration_ms"] >= 0
    assert body["spans"][1]["parent_span_id"] == root and body["spans"][1]["duration_ms"] == pytest.approx(5.0)
    assert body["spans"][2]["parent_span_id"] == body["spans"][1]["span_id"]


def test_another_tenant_can_neither_read_a_trace_nor_write_into_it(fx, gateway, tracker_http, submit):
    owner = fx.new_identity("developer")
    other = fx.new_identity("developer")  # another platform tenant
    neighbour = fx.new_identity("developer", pt=owner.platform_tenant_id)  # same platform tenant, other service user
    goal_id, _ = submit(owner)
    trace_id = goal_trace_id(goal_id)

    # The attack: write spans into the owner's trace, with its goal id, trace id and root span as parent.
    for intruder in (other, neighbour):
        forged = _span(trace_id, parent=goal_root_span_id(goal_id), name="forged", goal_id=goal_id)
        reply = fx.invoke(tracker_http, fx.http_event("POST", "/v1/tracker/spans", identity=intruder,
                                                      body={"spans": [forged]}))
        assert reply.status == 202  # stored under the intruder's own identity, where only it can see it
        assert _trace(fx, gateway, intruder, goal_id).status == 404  # and the goal is not theirs to read

    names = [span["name"] for span in _trace(fx, gateway, owner, goal_id).body["spans"]]
    assert "forged" not in names and names == ["goal research.topic"], names


@pytest.mark.parametrize("spans, why", [
    ([], "no spans"),
    ([{"trace_id": "xyz"}], "incomplete span"),
    ([_span("0" * 32, parent=None)], "all-zero trace id"),
    ([_span(uuid.uuid4().hex, parent="not-hex")], "bad parent"),
    ([_span(uuid.uuid4().hex, parent=None, kind="sideways")], "unknown kind"),
    ([_span(uuid.uuid4().hex, parent=None, name="x" * 300)], "name too long"),
    ([_span(uuid.uuid4().hex, parent=None, attributes={"nested": {"a": 1}})], "nested attribute"),
    ([_span(uuid.uuid4().hex, parent=None)] * 513, "too many"),
])
def test_bad_spans_are_a_clear_422(fx, tracker_http, spans, why):
    owner = fx.new_identity("developer")
    reply = fx.invoke(tracker_http, fx.http_event("POST", "/v1/tracker/spans", identity=owner,
                                                  body={"spans": spans}))
    assert reply.status == 422, (why, reply.body)


def test_trace_of_an_unknown_or_malformed_goal_is_404(fx, gateway):
    owner = fx.new_identity("developer")
    assert _trace(fx, gateway, owner, str(uuid.uuid4())).status == 404
    assert _trace(fx, gateway, owner, "not-a-goal").status == 404


def test_tracing_off_stamps_no_traceparent_and_records_no_root_span(fx, gateway, submit, monkeypatch):
    monkeypatch.setenv("SOORMA_TRACING", "off")
    owner = fx.new_identity("developer")
    goal_id, envelope = submit(owner)
    assert envelope.traceparent is None
    assert _trace(fx, gateway, owner, goal_id).body["spans"] == []


def test_a_malformed_traceparent_on_publish_is_a_422(fx, gateway):
    owner = fx.new_identity("developer")
    event = {"type": "research.topic", "topic": "action-requests", "data": {}, "traceparent": "00-abc-def-01"}
    reply = fx.invoke(gateway, fx.http_event("POST", "/v1/events/publish", identity=owner, body={"event": event}))
    assert reply.status == 422 and "traceparent" in str(reply.body), reply.body


def test_a_rolled_back_goal_leaves_no_spans(fx, gateway, tracker_http, db):
    owner = fx.new_identity("developer")
    session = fx.invoke(gateway, fx.http_event("POST", "/v1/sessions", identity=owner, body={}))
    assert session.status == 201, session.body
    sid = session.body["session_id"]

    def post(strategy=None):
        body = {"goal_type": "research.topic", "data": {}, "session_id": sid,
                **({"multitask_strategy": strategy} if strategy else {})}
        reply = fx.invoke(gateway, fx.http_event("POST", "/v1/goals", identity=owner, body=body))
        assert reply.status == 202, reply.body
        return reply.body["goal_id"]

    first = post()
    agent_span = _span(goal_trace_id(first), parent=goal_root_span_id(first), goal_id=first)
    fx.invoke(tracker_http, fx.http_event("POST", "/v1/tracker/spans", identity=owner, body={"spans": [agent_span]}))
    assert len(_trace(fx, gateway, owner, first).body["spans"]) == 2
    post("rollback")
    assert _trace(fx, gateway, owner, first).status == 404
    with db.transaction(owner) as conn:
        left = conn.execute("select count(*) as n from gateway.goal_spans where goal_id = %s", (first,)).fetchone()
    assert left["n"] == 0
