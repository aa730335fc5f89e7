"""soorma-core's tracker reads (issue 17; reference §2.4) with the SDK's TrackerClient through the in-process API
(local API Gateway + the real tracker and memory functions, PostgreSQL as soorma_app): plan progress and actions
in soorma-core's shapes, agent metrics, sub-plans, session plans and delegation groups, each confined to the
caller's identity (another tenant's key gets 404 / empty answers), bad input a 4xx."""

from __future__ import annotations

import uuid

import httpx
import pytest

from soorma.clients.memory import MemoryClient
from soorma.clients.tracker import TrackerClient
from soorma.errors import PlatformError
from soorma.events import EventEnvelope
from soorma.functions.tracker.app import process_batch
from soorma.testing import sqs_batch


@pytest.fixture(scope="module")
def tenants(api, platform_admin, gx):
    return gx.onboard(api, platform_admin), gx.onboard(api, platform_admin)


def clients(api, key: str) -> tuple[TrackerClient, MemoryClient]:
    transport = httpx.ASGITransport(app=api.app)
    return (TrackerClient("http://api.local", key, transport=transport),
            MemoryClient("http://api.local", key, transport=transport))


def envelope(tenant, topic: str, type_: str, correlation_id: str, goal_id: str, source: str,
             data: dict | None = None) -> EventEnvelope:
    return EventEnvelope(source=source, type=type_, topic=topic, data=data or {}, correlation_id=correlation_id,
                         goal_id=goal_id, platform_tenant_id=tenant.id, tenant_id=tenant.service_tenant,
                         user_id=f"su_user_{tenant.id}")


async def test_tracker_reads_in_soorma_core_shapes_and_per_identity(api, tenants, gw_db):
    mine, theirs = tenants
    tracker, memory = clients(api, mine.keys["user"])
    other_tracker, _ = clients(api, theirs.keys["user"])
    session_id = f"s-{uuid.uuid4()}"
    goal = await tracker.submit_goal("trip.plan", {"to": "Oslo"}, session_id)
    goal_id = goal["goal_id"]
    agent = f"booker-{uuid.uuid4().hex[:6]}"
    process_batch(gw_db, sqs_batch(
        envelope(mine, "action-requests", "flight.book", "sub-1", goal_id, "planner"),
        envelope(mine, "action-results", "flight.booked", "sub-1", goal_id, agent, {"success": True}),
        envelope(mine, "action-requests", "hotel.book", "sub-2", goal_id, "planner"),
        envelope(mine, "action-results", "hotel.booked", "sub-2", goal_id, agent,
                 {"success": False, "error": "full"}),
        envelope(mine, "action-requests", "car.book", "sub-3", goal_id, "planner"),
    ))

    progress = await tracker.get_plan_progress(goal_id)
    assert progress is not None and progress.status == "running"
    assert (progress.task_count, progress.completed_tasks, progress.failed_tasks, progress.running_tasks) == (3, 1, 1, 1)
    assert progress.started_at is not None
    actions = await tracker.get_plan_actions(goal_id)
    assert [(a.task_id, a.event_type, a.state) for a in actions] == [
        ("sub-1", "flight.book", "completed"), ("sub-2", "hotel.book", "failed"), ("sub-3", "car.book", "running")]
    assert actions[0].agent == agent and actions[0].duration_seconds is not None
    raw = await tracker._request("GET", f"/v1/tracker/plans/{goal_id}")
    assert {"plan_id", "status", "started_at", "completed_at", "task_count", "completed_tasks", "failed_tasks",
            "current_state"} <= set(raw)

    metrics = await tracker.query_agent_metrics(agent, period="1d")
    assert (metrics.total_tasks, metrics.completed_tasks, metrics.failed_tasks, metrics.success_rate) == (2, 1, 1, 0.5)

    await memory.create_plan(goal_id, "trip.plan", session_id=session_id)
    child = f"child-{uuid.uuid4()}"
    await memory.create_plan(child, "hotel.search", session_id=session_id, parent_plan_id=goal_id)
    assert [p.plan_id for p in await tracker.get_sub_plans(goal_id)] == [child]
    session_plans = await tracker.get_session_plans(session_id)
    assert [p.plan_id for p in session_plans] == [goal_id, child]
    assert session_plans[1].parent_plan_id == goal_id and session_plans[0].goal_event == "trip.plan"

    group_id = f"group-{uuid.uuid4()}"
    subs = {sid: {"sub_task_id": sid, "event_type": kind, "response_event": f"{kind}.done", "status": "pending",
                  "parallel_group_id": group_id} for sid, kind in
            (("sub-1", "flight.book"), ("sub-2", "hotel.book"), ("sub-9", "taxi.book"))}
    await memory.store_task_context("parent-task", goal_id, "trip.plan", state={"_sub_tasks": subs})
    group = await tracker.get_delegation_group(group_id)
    assert group is not None and group.parent_task_id == "parent-task" and group.plan_id == goal_id
    assert [(t.task_id, t.state) for t in group.tasks] == [("sub-1", "completed"), ("sub-2", "failed"),
                                                           ("sub-9", "pending")]
    assert (group.total, group.completed, group.failed, group.status) == (3, 1, 1, "running")

    # the attack: another tenant names the same ids and gets nothing
    assert await other_tracker.get_plan_progress(goal_id) is None
    assert await other_tracker.get_plan_actions(goal_id) == []
    assert await other_tracker.get_sub_plans(goal_id) == []
    assert await other_tracker.get_session_plans(session_id) == []
    assert await other_tracker.get_delegation_group(group_id) is None
    assert (await other_tracker.query_agent_metrics(agent)).total_tasks == 0

    # bad input: clear 4xx
    with pytest.raises(PlatformError) as bad:
        await tracker.query_agent_metrics(agent, period="forever")
    assert bad.value.status == 400
    assert await tracker.get_delegation_group("x" * 300) is None
    assert await tracker.get_plan_progress("not-a-plan") is None
    for client in (tracker, memory, other_tracker):
        await client.close()
