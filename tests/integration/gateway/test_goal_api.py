"""The goal API in full through the local API Gateway: idempotent submit, listing with filters and cursors, long-poll,
cancel (with its system event), the goal's event trace, sessions; per-tenant policy; rate limits."""

from __future__ import annotations

import json
import threading
import time
import uuid

import pytest

from soorma.events import EventEnvelope
from soorma.testing import sqs_batch


@pytest.fixture(scope="module")
def tenant(api, platform_admin, gx):
    return gx.onboard(api, platform_admin)


def _user(tenant, gx):
    return gx.bearer(tenant.keys["user"])


def test_idempotency_key(api, tenant, gx):
    headers = {**_user(tenant, gx), "Idempotency-Key": f"order-{uuid.uuid4()}"}
    body = {"goal_type": "idem.goal", "data": {"n": 1}}
    first = api.post("/v1/goals", headers=headers, json=body)
    assert first.status_code == 202 and "idempotent-replayed" not in first.headers
    again = api.post("/v1/goals", headers=headers, json=body)
    assert again.status_code == 202 and again.headers["idempotent-replayed"] == "true"
    assert again.json()["goal_id"] == first.json()["goal_id"]
    different = api.post("/v1/goals", headers=headers, json={**body, "data": {"n": 2}})
    assert different.status_code == 409
    # the same key is private to its identity: another user gets its own goal
    other = api.post("/v1/goals", headers={**gx.bearer(tenant.keys["developer"]),
                                          "Idempotency-Key": headers["Idempotency-Key"]}, json=body)
    assert other.status_code == 202 and other.json()["goal_id"] != first.json()["goal_id"]
    # concurrent first uses of one key make one goal
    key = {**_user(tenant, gx), "Idempotency-Key": f"race-{uuid.uuid4()}"}
    ids: list[str] = []
    threads = [threading.Thread(target=lambda: ids.append(api.post("/v1/goals", headers=key, json=body)
                                                          .json()["goal_id"])) for _ in range(6)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert len(ids) == 6 and len(set(ids)) == 1


def test_list_filter_and_paginate(api, platform_admin, gx):
    t = gx.onboard(api, platform_admin)
    user = _user(t, gx)
    session = api.post("/v1/sessions", headers=user, json={"metadata": {"topic": "pagination"}})
    assert session.status_code == 201
    sid = session.json()["session_id"]
    made = []
    for i in range(7):
        body = {"goal_type": "list.goal", "data": {"i": i}, **({"session_id": sid} if i % 2 == 0 else {})}
        made.append(api.post("/v1/goals", headers=user, json=body).json()["goal_id"])
    api.post(f"/v1/goals/{made[0]}/cancel", headers=user)
    seen, cursor = [], None
    while True:
        page = api.get("/v1/goals", headers=user, params={"limit": 3, **({"cursor": cursor} if cursor else {})})
        assert page.status_code == 200, page.text
        seen += [g["goal_id"] for g in page.json()["goals"]]
        cursor = page.json()["next_cursor"]
        if not cursor:
            break
    assert seen == list(reversed(made))  # newest first, every goal once
    in_session = api.get("/v1/goals", headers=user, params={"session_id": sid}).json()["goals"]
    assert {g["goal_id"] for g in in_session} == {made[i] for i in (0, 2, 4, 6)}
    cancelled = api.get("/v1/goals", headers=user, params={"status": "cancelled"}).json()["goals"]
    assert [g["goal_id"] for g in cancelled] == [made[0]]
    assert api.get("/v1/goals", headers=user, params={"cursor": "not-a-cursor"}).status_code == 422
    # sessions: listed, with goal counts; another identity sees none of them
    listed = api.get("/v1/sessions", headers=user).json()
    assert [s["session_id"] for s in listed["sessions"]] == [sid]
    assert api.get(f"/v1/sessions/{sid}", headers=user).json()["goal_count"] == 4
    assert api.get(f"/v1/sessions/{sid}", headers=gx.bearer(t.keys["developer"])).status_code == 404
    assert api.post("/v1/sessions", headers=user, json={"session_id": sid}).status_code == 409
    assert api.get("/v1/goals", headers=gx.bearer(t.keys["developer"])).json()["count"] == 0


def _complete(gw_db, tenant, goal_id: str, service_user: str, data: dict) -> None:
    from soorma.functions.tracker.app import process_batch

    result = EventEnvelope(source="worker", type="soorma.goal.result", topic="action-results", data=data,
                           correlation_id=goal_id, goal_id=goal_id, trace_id=goal_id,
                           platform_tenant_id=tenant.id, tenant_id=tenant.service_tenant, user_id=service_user)
    assert process_batch(gw_db, sqs_batch(result)) == {"batchItemFailures": []}


def test_long_poll_returns_when_the_goal_ends(api, tenant, gx, gw_db):
    user = _user(tenant, gx)
    goal_id = api.post("/v1/goals", headers=user, json={"goal_type": "poll.goal"}).json()["goal_id"]
    started = time.monotonic()
    assert api.get(f"/v1/goals/{goal_id}", headers=user, params={"wait": 0.6}).json()["status"] == "running"
    assert 0.5 <= time.monotonic() - started < 3
    timer = threading.Timer(0.5, _complete, (gw_db, tenant, goal_id, f"su_user_{tenant.id}", {"answer": 42}))
    timer.start()
    started = time.monotonic()
    done = api.get(f"/v1/goals/{goal_id}", headers=user, params={"wait": 20})
    elapsed = time.monotonic() - started
    timer.join()
    assert done.json()["status"] == "completed" and done.json()["result"] == {"answer": 42}
    assert 0.4 <= elapsed < 5, elapsed
    assert api.get(f"/v1/goals/{goal_id}", headers=user, params={"wait": 26}).status_code == 422  # bounded


def test_cancel_publishes_a_system_event_and_ends_the_goal(api, tenant, gx, nats_url, gw_db):
    import nats

    from soorma.functions.tracker.app import process_batch

    user = _user(tenant, gx)
    goal_id = api.post("/v1/goals", headers=user, json={"goal_type": "cancel.goal", "data": {"x": 1}}).json()["goal_id"]
    cancelled = api.post(f"/v1/goals/{goal_id}/cancel", headers=user, json={"reason": "changed my mind"})
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled" and cancelled.json()["error"] == "changed my mind"
    assert api.post(f"/v1/goals/{goal_id}/cancel", headers=user).status_code == 409
    assert api.post(f"/v1/goals/{uuid.uuid4()}/cancel", headers=user).status_code == 404

    async def last():
        nc = await nats.connect(nats_url)
        try:
            return await nc.jetstream().get_last_msg("SOORMA_EVENTS",
                                                     f"soorma.{tenant.id}.system-events.soorma.goal.cancel")
        finally:
            await nc.close()

    import asyncio

    event = json.loads(asyncio.run(last()).data)
    assert event["goal_id"] == goal_id and event["data"]["reason"] == "changed my mind"
    assert event["tenant_id"] == tenant.service_tenant and event["correlation_id"] == goal_id
    # a late result does not resurrect a cancelled goal
    _complete(gw_db, tenant, goal_id, f"su_user_{tenant.id}", {"answer": 1})
    assert api.get(f"/v1/goals/{goal_id}", headers=user).json()["status"] == "cancelled"
    # the trace: request, cancel, the late result; in order
    request = EventEnvelope(source="soorma-gateway", type="cancel.goal", topic="action-requests", data={},
                            correlation_id=goal_id, goal_id=goal_id, time="2020-01-01T00:00:00+00:00",
                            platform_tenant_id=tenant.id, tenant_id=tenant.service_tenant,
                            user_id=f"su_user_{tenant.id}")
    cancel = EventEnvelope.model_validate(event)
    assert process_batch(gw_db, sqs_batch(cancel, request)) == {"batchItemFailures": []}
    trace = api.get(f"/v1/goals/{goal_id}/events", headers=user).json()
    types = [e["type"] for e in trace["events"]]
    assert types[0] == "cancel.goal" and set(types) == {"cancel.goal", "soorma.goal.cancel", "soorma.goal.result"}
    times = [e["time"] for e in trace["events"]]
    assert times == sorted(times)
    page = api.get(f"/v1/goals/{goal_id}/events", headers=user, params={"limit": 2}).json()
    rest = api.get(f"/v1/goals/{goal_id}/events", headers=user, params={"cursor": page["next_cursor"]}).json()
    assert [e["event_id"] for e in page["events"] + rest["events"]] == [e["event_id"] for e in trace["events"]]
    assert api.get(f"/v1/goals/{goal_id}/events", headers=gx.bearer(tenant.keys["developer"])).status_code == 404


def test_policy_rules_refuse_with_403_naming_the_rule(api, platform_admin, gx):
    t = gx.onboard(api, platform_admin)
    admin, dev, user = (gx.bearer(t.keys[r]) for r in ("admin", "developer", "user"))
    assert api.get("/v1/policy", headers=dev).json()["allowed_goal_types"] is None
    rules = {"allowed_goal_types": ["research.*"], "allowed_event_types": ["facts.*", "work.*"],
             "max_payload_bytes": 1000, "max_actions_per_plan": 2}  # an empty envelope is ~400 bytes
    assert api.put("/v1/policy", headers=dev, json=rules).status_code == 403
    put = api.put("/v1/policy", headers=admin, json=rules)
    assert put.status_code == 200 and put.json()["max_actions_per_plan"] == 2

    def refused(reply, rule):
        assert reply.status_code == 403, reply.text
        assert reply.json()["rule"] == rule and rule in reply.json()["detail"]

    assert api.post("/v1/goals", headers=user, json={"goal_type": "research.goal", "data": {"q": "x"}}).status_code == 202
    refused(api.post("/v1/goals", headers=user, json={"goal_type": "mine.bitcoin"}), "allowed_goal_types")
    refused(api.post("/v1/goals", headers=user, json={"goal_type": "research.goal", "data": {"q": "x" * 2000}}),
            "max_payload_bytes")
    refused(api.post("/v1/events/publish", headers=user, json={"event": {"type": "other.x", "topic": "business-facts"}}),
            "allowed_event_types")
    refused(api.post("/v1/events/publish", headers=user,
                     json={"event": {"type": "facts.x", "topic": "business-facts", "data": {"b": "y" * 2000}}}),
            "max_payload_bytes")
    plan = {"type": "work.step", "topic": "action-requests", "plan_id": "plan-1"}
    for _ in range(2):
        assert api.post("/v1/events/publish", headers=user, json={"event": plan}).status_code == 200
    refused(api.post("/v1/events/publish", headers=user, json={"event": plan}), "max_actions_per_plan")
    assert api.post("/v1/events/publish", headers=user, json={"event": {**plan, "plan_id": "plan-2"}}).status_code == 200
    # nothing refused was recorded
    goals = api.get("/v1/goals", headers=user).json()["goals"]
    assert [g["goal_type"] for g in goals] == ["research.goal"]
    # back to no restriction
    assert api.put("/v1/policy", headers=admin, json={}).status_code == 200
    assert api.post("/v1/goals", headers=user, json={"goal_type": "mine.bitcoin"}).status_code == 202


def test_rate_limits_per_key_and_per_tenant_answer_429_with_retry_after(api, platform_admin, gx):
    t = gx.onboard(api, platform_admin, limits=False)
    platform = gx.bearer(platform_admin)
    assert api.patch(f"/v1/tenants/{t.id}", headers=platform,
                     json={"key_rps": 1, "key_burst": 3, "tenant_rps": 1, "tenant_burst": 5}).status_code == 200
    user, dev = _user(t, gx), gx.bearer(t.keys["developer"])
    answers = [api.get("/v1/goals", headers=user) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert 1 <= int(answers[-1].headers["retry-after"]) <= 2
    # the tenant bucket (5) is shared: the developer gets the 2 tokens left, then 429 too
    answers = [api.get("/v1/goals", headers=dev) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    time.sleep(1.1)
    assert api.get("/v1/goals", headers=user).status_code == 200  # refilled
    # registry and memory routes are limited by the same buckets
    for _ in range(3):
        reply = api.get("/v1/agents", headers=dev)
    assert reply.status_code == 429 and "retry-after" in reply.headers
    # another tenant is not affected
    other = gx.onboard(api, platform_admin)
    assert api.get("/v1/goals", headers=gx.bearer(other.keys["user"])).status_code == 200
    # back to defaults (null)
    assert api.patch(f"/v1/tenants/{t.id}", headers=platform,
                     json={"key_rps": None, "key_burst": None, "tenant_rps": None, "tenant_burst": None}
                     ).json()["key_rps"] is None
