"""The gateway and the tracker on embedded PostgreSQL and NATS: a queued goal starts when the tracker records the
running goal's result (published on the bus), a session left with queued goals but none active is unblocked by its
next submit, and an input request's answer races its timeout timer in the database (whichever commits first wins;
the other is refused)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

from soorma.events import EventEnvelope
from soorma.functions.shared import timers
from soorma.functions.shared.inputs import timeout_key
from soorma.functions.tracker.recording import record_envelope


def _submit(fx, gateway, identity, session_id, goal_type="queue.work", strategy=None):
    body = {"goal_type": goal_type, "data": {}, "session_id": session_id}
    if strategy:
        body["multitask_strategy"] = strategy
    return fx.invoke(gateway, fx.http_event("POST", "/v1/goals", identity=identity, body=body))


def _status(db, identity, goal_id):
    with db.transaction(identity) as conn:
        return conn.execute("select status from gateway.goals where goal_id = %s", (goal_id,)).fetchone()["status"]


def test_the_tracker_starts_the_queued_goal_when_the_running_one_ends(fx, db, gateway, gateway_publisher, nats_url):
    me = fx.new_identity(role="user")
    sid = f"s-{uuid.uuid4().hex[:8]}"
    first = _submit(fx, gateway, me, sid)
    second = _submit(fx, gateway, me, sid, goal_type="queue.next")
    assert first.body["status"] == "running" and second.body["status"] == "queued", second.body
    result = EventEnvelope(source="worker", type="soorma.goal.result", topic="action-results", data={"ok": True},
                           correlation_id=first.body["goal_id"], goal_id=first.body["goal_id"],
                           platform_tenant_id=me.platform_tenant_id, tenant_id=me.service_tenant_id,
                           user_id=me.service_user_id)
    assert record_envelope(db, result, gateway_publisher) == "recorded"
    assert _status(db, me, first.body["goal_id"]) == "completed"
    assert _status(db, me, second.body["goal_id"]) == "running"
    message = fx.last_message(nats_url, f"soorma.{me.platform_tenant_id}.action-requests.queue.next")
    assert json.loads(message.data)["goal_id"] == second.body["goal_id"]


def test_a_session_with_queued_goals_but_none_active_is_unblocked_by_its_next_submit(fx, db, gateway):
    me = fx.new_identity(role="user")
    sid = f"s-{uuid.uuid4().hex[:8]}"
    first = _submit(fx, gateway, me, sid)
    second = _submit(fx, gateway, me, sid)
    with db.transaction(me) as conn:  # ended on a path that could not start the next one (the bus was down)
        conn.execute("update gateway.goals set status = 'failed' where goal_id = %s", (first.body["goal_id"],))
    third = _submit(fx, gateway, me, sid)
    assert third.status == 202 and third.body["status"] == "queued"
    assert _status(db, me, second.body["goal_id"]) == "running"


def _input_request(fx, db, gateway, me, timeout_s):
    """A running goal whose agent asked for input (recorded as the gateway records the agent's publish)."""
    goal = fx.invoke(gateway, fx.http_event("POST", "/v1/goals", identity=me, body={"goal_type": "ask.me"}))
    goal_id = goal.body["goal_id"]
    request_id = f"r-{uuid.uuid4().hex[:8]}"
    asked = EventEnvelope(type="soorma.input.requested", topic="task-events", correlation_id=goal_id, goal_id=goal_id,
                          tenant_id=me.service_tenant_id, user_id=me.service_user_id,
                          data={"request_id": request_id, "task_id": goal_id, "agent": "a", "prompt": "ok?",
                                "schema": {"type": "boolean"}, "timeout_seconds": timeout_s, "has_default": False})
    agent = fx.new_identity(role="agent", pt=me.platform_tenant_id, st=me.service_tenant_id, su=me.service_user_id)
    published = fx.invoke(gateway, fx.http_event("POST", "/v1/events/publish", identity=agent,
                                                 body={"event": asked.model_dump(mode="json")}))
    assert published.status == 200, published.body
    assert _status(db, me, goal_id) == "input-required"
    return goal_id, request_id


def test_an_answer_cancels_the_timeout_timer(fx, db, gateway):
    me = fx.new_identity(role="user")
    goal_id, request_id = _input_request(fx, db, gateway, me, 600)
    with db.transaction(me) as conn:
        timer = conn.execute("select status, due_at from scheduler.timers where timer_key = %s",
                             (timeout_key(request_id),)).fetchone()
    assert timer["status"] == "pending" and timer["due_at"] > datetime.now(UTC) + timedelta(seconds=500)
    path = f"/v1/goals/{goal_id}/input/{request_id}"
    assert fx.invoke(gateway, fx.http_event("POST", path, identity=me, body={"answer": "yes"})).status == 422
    answered = fx.invoke(gateway, fx.http_event("POST", path, identity=me, body={"answer": True}))
    assert answered.status == 200 and answered.body["status"] == "answered", answered.body
    assert _status(db, me, goal_id) == "running"
    with db.transaction(me) as conn:
        assert conn.execute("select status from scheduler.timers where timer_key = %s",
                            (timeout_key(request_id),)).fetchone()["status"] == "cancelled"
    again = fx.invoke(gateway, fx.http_event("POST", path, identity=me, body={"answer": False}))
    assert again.status == 409


def test_an_answer_after_the_timer_fired_is_refused(fx, db, gateway, gateway_publisher):
    me = fx.new_identity(role="user")
    goal_id, request_id = _input_request(fx, db, gateway, me, 1)
    with db.transaction(me) as conn:  # due now
        conn.execute("update scheduler.timers set due_at = now() - interval '1 second' where timer_key = %s",
                     (timeout_key(request_id),))
    timers.fire_due(db, gateway_publisher)
    late = fx.invoke(gateway, fx.http_event("POST", f"/v1/goals/{goal_id}/input/{request_id}", identity=me,
                                            body={"answer": True}))
    assert late.status == 409 and "timed out" in late.body["detail"], late.body
