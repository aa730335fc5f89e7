"""Plan context (versioned upsert, by-correlation lookup), plans and sessions through the Lambda handler."""

from __future__ import annotations

import threading

from soorma.functions.shared.service import ensure_event_loop


def _plan_context(api, who, plan_id="plan-1", **overrides):
    body = {
        "plan_id": plan_id,
        "session_id": "session-1",
        "goal_event": "research.goal",
        "goal_data": {"topic": "pgvector"},
        "response_event": "research.done",
        "state": {"step": 0},
        "current_state": "start",
        "correlation_ids": [plan_id, f"corr-{plan_id}"],
        **overrides,
    }
    reply = api.call("POST", "/v1/memory/plan-context", who, body=body)
    assert reply.status == 200, reply.body
    return reply.body


def test_plan_context_upsert_get_update_delete(api, make_identity):
    who = make_identity()
    first = _plan_context(api, who)
    assert set(first) >= {"planId", "sessionId", "goalEvent", "goalData", "responseEvent", "state", "currentState",
                          "correlationIds", "version", "createdAt", "updatedAt", "tenantId"}
    assert first["version"] == 1 and first["correlationIds"] == ["plan-1", "corr-plan-1"]
    second = _plan_context(api, who, current_state="searching", state={"step": 1})
    assert second["version"] == 2 and second["currentState"] == "searching"

    got = api.call("GET", "/v1/memory/plan-context/plan-1", who)
    assert got.status == 200 and got.body["state"] == {"step": 1}

    updated = api.call("PUT", "/v1/memory/plan-context/plan-1", who,
                       body={"currentState": "done", "version": 2})
    assert updated.status == 200, updated.body
    assert updated.body["version"] == 3 and updated.body["currentState"] == "done"
    assert updated.body["state"] == {"step": 1}  # fields left out are unchanged
    stale = api.call("PUT", "/v1/memory/plan-context/plan-1", who, body={"state": {}, "version": 2})
    assert stale.status == 409 and "version 3" in stale.body["detail"]
    stale_upsert = api.call("POST", "/v1/memory/plan-context", who,
                            body={"plan_id": "plan-1", "goal_event": "g", "version": 1})
    assert stale_upsert.status == 409

    assert api.call("DELETE", "/v1/memory/plan-context/plan-1", who).status == 204
    assert api.call("GET", "/v1/memory/plan-context/plan-1", who).status == 404
    assert api.call("DELETE", "/v1/memory/plan-context/plan-1", who).status == 404
    assert api.call("PUT", "/v1/memory/plan-context/plan-1", who, body={"state": {}}).status == 404
    assert api.call("GET", "/v1/memory/plan-context/by-correlation/corr-plan-1", who).status == 404


def test_by_correlation_lookup_follows_the_list(api, make_identity):
    who = make_identity()
    _plan_context(api, who, plan_id="p1", correlation_ids=["p1", "c-a", "c-b"])
    _plan_context(api, who, plan_id="p2", correlation_ids=["p2", "c-c"])
    assert api.call("GET", "/v1/memory/plan-context/by-correlation/c-b", who).body["planId"] == "p1"
    assert api.call("GET", "/v1/memory/plan-context/by-correlation/c-c", who).body["planId"] == "p2"
    # update the list: c-a dropped, c-d added
    api.call("PUT", "/v1/memory/plan-context/p1", who, body={"correlation_ids": ["p1", "c-b", "c-d"]})
    assert api.call("GET", "/v1/memory/plan-context/by-correlation/c-a", who).status == 404
    assert api.call("GET", "/v1/memory/plan-context/by-correlation/c-d", who).body["planId"] == "p1"
    # an id claimed by a later write of another plan moves to it
    _plan_context(api, who, plan_id="p2", correlation_ids=["p2", "c-c", "c-b"])
    assert api.call("GET", "/v1/memory/plan-context/by-correlation/c-b", who).body["planId"] == "p2"
    missing = api.call("GET", "/v1/memory/plan-context/by-correlation/nope", who)
    assert missing.status == 404 and "nope" in missing.body["detail"]


def test_concurrent_read_modify_write_loses_no_update(api, make_identity):
    """Eight writers race on one plan context, each incrementing a counter with read → PUT(version) → retry on 409.
    Without the version check some increments would be lost."""
    who = make_identity()
    _plan_context(api, who, plan_id="race", state={"count": 0})
    writers, conflicts, errors = 8, [], []

    def writer() -> None:
        ensure_event_loop()
        try:
            for _ in range(50):
                current = api.call("GET", "/v1/memory/plan-context/race", who).body
                reply = api.call("PUT", "/v1/memory/plan-context/race", who, body={
                    "state": {"count": current["state"]["count"] + 1}, "version": current["version"]})
                if reply.status == 200:
                    return
                assert reply.status == 409, reply.body
                conflicts.append(1)
            errors.append("gave up")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(repr(exc))

    threads = [threading.Thread(target=writer) for _ in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    final = api.call("GET", "/v1/memory/plan-context/race", who).body
    assert final["state"]["count"] == writers
    assert final["version"] == 1 + writers


def test_plans_crud_and_listing(api, make_identity):
    who = make_identity()
    created = api.call("POST", "/v1/memory/plans", who, body={
        "plan_id": "plan-a", "goal_event": "g.a", "goal_data": {"x": 1}, "session_id": "s1"})
    assert created.status == 201, created.body
    assert created.body["status"] == "running" and created.body["goalData"] == {"x": 1}
    assert set(created.body) >= {"tenantId", "userId", "planId", "sessionId", "goalEvent", "goalData", "status",
                                 "parentPlanId", "createdAt", "updatedAt"}
    duplicate = api.call("POST", "/v1/memory/plans", who, body={"plan_id": "plan-a", "goal_event": "g.a"})
    assert duplicate.status == 409 and "plan-a" in duplicate.body["detail"]
    api.call("POST", "/v1/memory/plans", who, body={"plan_id": "plan-b", "goal_event": "g.b",
                                                     "parent_plan_id": "plan-a"})
    api.call("POST", "/v1/memory/plans", who, body={"plan_id": "plan-c", "goal_event": "g.c", "session_id": "s1"})

    listed = api.call("GET", "/v1/memory/plans", who).body
    assert [p["planId"] for p in listed] == ["plan-c", "plan-b", "plan-a"]  # newest first
    assert [p["planId"] for p in api.call("GET", "/v1/memory/plans", who, query={"limit": 1}).body] == ["plan-c"]
    assert [p["planId"] for p in api.call("GET", "/v1/memory/plans", who,
                                          query={"session_id": "s1"}).body] == ["plan-c", "plan-a"]

    done = api.call("PUT", "/v1/memory/plans/plan-a", who, body={"status": "completed"})
    assert done.status == 200 and done.body["status"] == "completed"
    assert [p["planId"] for p in api.call("GET", "/v1/memory/plans", who,
                                          query={"status": "completed"}).body] == ["plan-a"]
    assert api.call("GET", "/v1/memory/plans", who, query={"status": "bogus"}).status == 422
    assert api.call("PUT", "/v1/memory/plans/plan-a", who, body={"status": "exploded"}).status == 422
    assert api.call("PUT", "/v1/memory/plans/plan-a", who, body={}).status == 422
    assert api.call("GET", "/v1/memory/plans/plan-b", who).body["parentPlanId"] == "plan-a"

    unknown = api.call("GET", "/v1/memory/plans/nope", who)
    assert unknown.status == 404 and "nope" in unknown.body["detail"]
    assert api.call("PUT", "/v1/memory/plans/nope", who, body={"status": "failed"}).status == 404
    assert api.call("DELETE", "/v1/memory/plans/plan-b", who).status == 204
    assert api.call("DELETE", "/v1/memory/plans/plan-b", who).status == 404


def test_sessions(api, make_identity):
    who = make_identity()
    first = api.call("POST", "/v1/memory/sessions", who,
                     body={"session_id": "s-1", "name": "Trip planning", "metadata": {"lang": "en"}})
    assert first.status == 201, first.body
    assert set(first.body) >= {"sessionId", "name", "metadata", "createdAt", "lastInteraction", "tenantId", "userId"}
    api.call("POST", "/v1/memory/sessions", who, body={"session_id": "s-2"})
    touched = api.call("POST", "/v1/memory/sessions", who, body={"sessionId": "s-1"})
    assert touched.status == 200  # existing: touched, name and metadata kept
    assert touched.body["name"] == "Trip planning" and touched.body["metadata"] == {"lang": "en"}
    assert touched.body["lastInteraction"] > first.body["lastInteraction"]

    listed = api.call("GET", "/v1/memory/sessions", who).body
    assert [s["sessionId"] for s in listed] == ["s-1", "s-2"]  # most recent interaction first
    assert len(api.call("GET", "/v1/memory/sessions", who, query={"limit": 1}).body) == 1
    assert api.call("GET", "/v1/memory/sessions/s-2", who).body["sessionId"] == "s-2"
    assert api.call("DELETE", "/v1/memory/sessions/s-2", who).status == 204
    assert api.call("GET", "/v1/memory/sessions/s-2", who).status == 404
    assert api.call("DELETE", "/v1/memory/sessions/s-2", who).status == 404
