"""Tracker: the function payload (SQS-shaped batches, as the bridge sends them) records events, tasks and goal
completion; its HTTP route lists a goal's events. Goals are submitted through the real gateway and taken from the real
JetStream stream, the way the bridge would deliver them."""

from __future__ import annotations

import json
import uuid

import pytest
from psycopg_pool import ConnectionPool

from soorma.events import EventEnvelope
from soorma.functions.shared.db import Database
from soorma.functions.tracker.app import process_batch
from soorma.testing import sqs_batch


def payload(*envelopes) -> dict:
    """The function payload, one record per envelope (or raw body), as the bridge delivers it to the tracker."""
    return sqs_batch(*envelopes, consumer="tracker")


def request(identity, *, goal_id, correlation_id, type_="task.do", **extra) -> EventEnvelope:
    return EventEnvelope(type=type_, topic="action-requests", goal_id=goal_id, correlation_id=correlation_id,
                         platform_tenant_id=identity.platform_tenant_id, tenant_id=identity.service_tenant_id,
                         user_id=identity.service_user_id, source="planner", **extra)


def result(identity, *, goal_id, correlation_id, type_="task.done", data=None, **extra) -> EventEnvelope:
    return EventEnvelope(type=type_, topic="action-results", goal_id=goal_id, correlation_id=correlation_id,
                         platform_tenant_id=identity.platform_tenant_id, tenant_id=identity.service_tenant_id,
                         user_id=identity.service_user_id, source="worker-a", data=data or {}, **extra)


@pytest.fixture
def submit(fx, gateway, nats_url):
    """Submit a goal through the gateway and return (goal_id, the published envelope from JetStream)."""

    def _submit(identity, goal_type="research.topic", data=None):
        reply = fx.invoke(gateway, fx.http_event("POST", "/v1/goals", identity=identity,
                                                 body={"goal_type": goal_type, "data": data or {}}))
        assert reply.status == 202, reply.body
        msg = fx.last_message(nats_url, f"soorma.{identity.platform_tenant_id}.action-requests.{goal_type}")
        envelope = EventEnvelope.from_json(msg.data)
        assert envelope.goal_id == reply.body["goal_id"]
        return reply.body["goal_id"], envelope

    return _submit


@pytest.fixture
def goal_of(fx, gateway):
    def _get(identity, goal_id):
        reply = fx.invoke(gateway, fx.http_event("GET", f"/v1/goals/{goal_id}", identity=identity))
        return reply.body if reply.status == 200 else reply.status

    return _get


def test_request_then_result_completes_task(fx, db, goal_of, submit):
    me = fx.new_identity(role="user")
    goal_id, _ = submit(me)
    req = request(me, goal_id=goal_id, correlation_id="task-1")
    assert process_batch(db, payload(req)) == {"batchItemFailures": []}
    tasks = goal_of(me, goal_id)["tasks"]
    assert [(t["task_id"], t["event_type"], t["status"]) for t in tasks] == [("task-1", "task.do", "running")]
    assert tasks[0]["started_at"] and tasks[0]["completed_at"] is None

    res = result(me, goal_id=goal_id, correlation_id="task-1", data={"answer": 42})
    assert process_batch(db, payload(res)) == {"batchItemFailures": []}
    goal = goal_of(me, goal_id)
    task = goal["tasks"][0]
    assert task["status"] == "completed" and task["completed_at"] and task["agent"] == "worker-a"
    assert goal["events"] == 2 and goal["status"] == "running"  # a task result is not the goal's response


def progress(identity, *, goal_id, correlation_id, value, message=None, time=None) -> EventEnvelope:
    extra = {"time": time} if time else {}
    return EventEnvelope(type="task.progress", topic="task-events", goal_id=goal_id, correlation_id=correlation_id,
                         platform_tenant_id=identity.platform_tenant_id, tenant_id=identity.service_tenant_id,
                         user_id=identity.service_user_id, source="worker-a",
                         data={"task_id": correlation_id, "progress": value, "message": message}, **extra)


def test_progress_reports_show_on_the_running_task(fx, db, goal_of, submit):
    me = fx.new_identity(role="user")
    goal_id, _ = submit(me)
    process_batch(db, payload(request(me, goal_id=goal_id, correlation_id="task-p")))
    newer = progress(me, goal_id=goal_id, correlation_id="task-p", value=0.5, message="half",
                     time="2030-01-01T00:00:02+00:00")
    older = progress(me, goal_id=goal_id, correlation_id="task-p", value=0.25, message="quarter",
                     time="2030-01-01T00:00:01+00:00")
    bogus = progress(me, goal_id=goal_id, correlation_id="task-p", value="lots")
    assert process_batch(db, payload(newer, older, bogus)) == {"batchItemFailures": []}
    (task,) = goal_of(me, goal_id)["tasks"]
    assert (task["progress"], task["progress_message"]) == (0.5, "half")  # the late, older report lost

    other = fx.new_identity(role="user")  # another tenant's report cannot touch this task
    process_batch(db, payload(progress(other, goal_id=goal_id, correlation_id="task-p", value=0.9,
                                       time="2030-01-01T00:00:09+00:00")))
    assert goal_of(me, goal_id)["tasks"][0]["progress"] == 0.5


@pytest.mark.parametrize("data", [{"status": "failed"}, {"success": False, "error": "boom"}])
def test_failed_result_fails_task(fx, db, goal_of, submit, data):
    me = fx.new_identity()
    goal_id, _ = submit(me)
    process_batch(db, payload(request(me, goal_id=goal_id, correlation_id="t-f"),
                              result(me, goal_id=goal_id, correlation_id="t-f", data=data)))
    assert goal_of(me, goal_id)["tasks"][0]["status"] == "failed"


def test_result_before_request_still_tracks_the_task(fx, db, goal_of, submit):
    me = fx.new_identity()
    goal_id, _ = submit(me)
    process_batch(db, payload(result(me, goal_id=goal_id, correlation_id="t-ooo")))
    process_batch(db, payload(request(me, goal_id=goal_id, correlation_id="t-ooo", type_="late.request")))
    task = goal_of(me, goal_id)["tasks"][0]
    assert task["status"] == "completed" and task["event_type"] == "late.request"


def test_goal_response_completes_goal_through_the_bus(fx, db, goal_of, submit, tracker_http):
    me = fx.new_identity(role="user")
    goal_id, goal_request = submit(me, data={"topic": "bees"})
    # the bridge delivers the goal request itself, then a worker's sub-task, then the planner's goal response
    sub = request(me, goal_id=goal_id, correlation_id="sub-1", type_="web.search",
                  parent_event_id=goal_request.id)
    sub_done = result(me, goal_id=goal_id, correlation_id="sub-1", type_="web.search.done", data={"hits": 3})
    response = EventEnvelope(type="soorma.goal.result", topic="action-results",
                             data={"success": True, "summary": "bees are great"},
                             **{**goal_request.propagation(), "correlation_id": goal_id},
                             platform_tenant_id=me.platform_tenant_id, source="planner")
    assert response.tenant_id == me.service_tenant_id
    assert process_batch(db, payload(goal_request, sub, sub_done, response)) == {"batchItemFailures": []}

    goal = goal_of(me, goal_id)
    assert goal["status"] == "completed"
    assert goal["result"] == {"success": True, "summary": "bees are great"}
    assert goal["error"] is None and goal["completed_at"] is not None
    assert goal["events"] == 4
    statuses = {t["task_id"]: t["status"] for t in goal["tasks"]}
    assert statuses == {goal_id: "completed", "sub-1": "completed"}

    # a completed goal is not changed again by a later (different) response
    late = EventEnvelope(type="soorma.goal.result", topic="action-results", data={"success": False},
                         **{**goal_request.propagation(), "correlation_id": goal_id},
                         platform_tenant_id=me.platform_tenant_id)
    process_batch(db, payload(late))
    goal = goal_of(me, goal_id)
    assert goal["status"] == "completed" and goal["result"]["summary"] == "bees are great"

    # the tracker's HTTP route lists the events in order
    events = fx.invoke(tracker_http, fx.http_event("GET", f"/v1/tracker/goals/{goal_id}/events", identity=me))
    assert events.status == 200
    assert [e["type"] for e in events.body["events"]] == [
        "research.topic", "web.search", "web.search.done", "soorma.goal.result", "soorma.goal.result"]
    assert events.body["count"] == 5 and events.body["events"][1]["parent_event_id"] == goal_request.id
    assert events.body["events"][2]["data"] == {"hits": 3}


@pytest.mark.parametrize("data,error", [({"status": "failed", "error": "no sources"}, "no sources"),
                                        ({"success": False, "error": {"code": 7}}, '{"code": 7}'),
                                        ({"success": False}, None)])
def test_failed_goal_response(fx, db, goal_of, submit, data, error):
    me = fx.new_identity()
    goal_id, goal_request = submit(me)
    response = result(me, goal_id=goal_id, correlation_id=goal_id, type_="soorma.goal.result", data=data)
    process_batch(db, payload(response))
    goal = goal_of(me, goal_id)
    assert goal["status"] == "failed" and goal["result"] == data and goal["error"] == error


def test_response_of_another_type_does_not_complete_goal(fx, db, goal_of, submit):
    me = fx.new_identity()
    goal_id, _ = submit(me)
    process_batch(db, payload(result(me, goal_id=goal_id, correlation_id=goal_id, type_="something.else")))
    assert goal_of(me, goal_id)["status"] == "running"


def test_duplicate_event_is_recorded_once(fx, db, goal_of, submit):
    me = fx.new_identity()
    goal_id, goal_request = submit(me)
    req = request(me, goal_id=goal_id, correlation_id="dup-1")
    assert process_batch(db, payload(goal_request, req, req)) == {"batchItemFailures": []}
    assert process_batch(db, payload(req, goal_request)) == {"batchItemFailures": []}
    goal = goal_of(me, goal_id)
    assert goal["events"] == 2 and len(goal["tasks"]) == 2
    with db.transaction(me) as conn:
        n = conn.execute("select count(*) as n from gateway.goal_events where event_id = %s", (req.id,)).fetchone()
    assert n["n"] == 1


def test_events_without_goal_and_malformed_bodies_are_processed(fx, db):
    me = fx.new_identity()
    no_goal = EventEnvelope(type="fact.x", topic="business-facts", platform_tenant_id=me.platform_tenant_id,
                            tenant_id=me.service_tenant_id, user_id=me.service_user_id)
    no_identity = EventEnvelope(type="fact.x", topic="business-facts", goal_id=str(uuid.uuid4()),
                                platform_tenant_id=me.platform_tenant_id)
    nul = request(me, goal_id=str(uuid.uuid4()), correlation_id="nul\x00id", data={"text": "a\x00b"})
    out = process_batch(db, payload(no_goal, no_identity, "{not json", json.dumps({"type": "no topic"}), nul))
    assert out == {"batchItemFailures": []}
    with db.transaction(me) as conn:
        rows = conn.execute("select event_id, correlation_id, data_summary from gateway.goal_events").fetchall()
    assert rows == [{"event_id": nul.id, "correlation_id": "nulid", "data_summary": {"text": "ab"}}]


def test_large_data_is_summarized(fx, db):
    me = fx.new_identity()
    big = request(me, goal_id=str(uuid.uuid4()), correlation_id="big", data={"blob": "x" * 10_000, "k": 1})
    process_batch(db, payload(big))
    with db.transaction(me) as conn:
        summary = conn.execute("select data_summary from gateway.goal_events").fetchone()["data_summary"]
    assert summary["_truncated"] is True and summary["keys"] == ["blob", "k"] and summary["bytes"] > 10_000


def test_database_outage_reports_batch_item_failures(fx, app_dsn):
    broken = Database(app_dsn)
    broken._pool = ConnectionPool("postgresql://nobody@127.0.0.1:1/none", min_size=0, max_size=1, timeout=0.5,
                                  open=True)
    try:
        me = fx.new_identity()
        event = payload(request(me, goal_id=str(uuid.uuid4()), correlation_id="c"),
                        request(me, goal_id=str(uuid.uuid4()), correlation_id="d"))
        out = process_batch(broken, event)
        assert sorted(f["itemIdentifier"] for f in out["batchItemFailures"]) == \
            sorted(r["messageId"] for r in event["Records"])
    finally:
        broken.close()


def test_other_tenant_cannot_complete_or_read_a_goal(fx, db, goal_of, submit, tracker_http):
    a = fx.new_identity()
    b = fx.new_identity()
    b_same_platform = fx.new_identity(pt=a.platform_tenant_id)
    goal_id, goal_request = submit(a)
    process_batch(db, payload(goal_request))
    for intruder in (b, b_same_platform):
        fake = result(intruder, goal_id=goal_id, correlation_id=goal_id, type_="soorma.goal.result",
                      data={"success": True})
        process_batch(db, payload(fake))
    goal = goal_of(a, goal_id)
    assert goal["status"] == "running" and goal["events"] == 1
    assert goal_of(b, goal_id) == 404
    for who in (b, b_same_platform):
        reply = fx.invoke(tracker_http, fx.http_event("GET", f"/v1/tracker/goals/{goal_id}/events", identity=who))
        # the intruders see only their own (recorded) events, never A's
        assert reply.status == 200 and [e["source"] for e in reply.body["events"]] == ["worker-a"]
    own = fx.invoke(tracker_http, fx.http_event("GET", f"/v1/tracker/goals/{goal_id}/events", identity=a))
    assert [e["event_id"] for e in own.body["events"]] == [goal_request.id]


def test_tracker_http_route_errors(fx, tracker_http):
    me = fx.new_identity()
    assert fx.invoke(tracker_http, fx.http_event("GET", f"/v1/tracker/goals/{uuid.uuid4()}/events",
                                                 identity=me)).status == 404
    assert fx.invoke(tracker_http, fx.http_event("GET", "/v1/tracker/goals/whatever/events",
                                                 identity=me)).status == 404
    assert fx.invoke(tracker_http, fx.http_event("GET", f"/v1/tracker/goals/{uuid.uuid4()}/events")).status == 401


def test_handler_module_dispatches_batches_and_http(fx, app_env, submit):
    from soorma.functions.tracker.handler import handler

    me = fx.new_identity()
    goal_id, goal_request = submit(me)
    assert handler(payload(goal_request), None) == {"batchItemFailures": []}
    reply = fx.invoke(handler, fx.http_event("GET", f"/v1/tracker/goals/{goal_id}/events", identity=me))
    assert reply.status == 200 and reply.body["count"] == 1
    assert fx.invoke(handler, fx.http_event("GET", f"/v1/tracker/goals/{goal_id}/events")).status == 401
