"""Results of one goal reach a route's function one invocation at a time (issue 19): the parallel sub-tasks of a
delegation answer together, and delivered side by side they would race on their parent's task context."""

from __future__ import annotations

import asyncio
import json

import pytest

pytestmark = pytest.mark.timeout(30)

RESULT = "sub.task.completed"


def overlap_recorder(seconds: float):
    """A function that takes ``seconds`` per invocation and records, per invocation, its goals and the goals of the
    invocations running at the same time."""
    running: list[set[str]] = []
    overlaps: list[tuple[set[str], set[str]]] = []

    async def handler(name, event):
        goals = {json.loads(r["body"]).get("goal_id") for r in event["Records"]}
        for other in running:
            overlaps.append((goals, other))
        running.append(goals)
        try:
            await asyncio.sleep(seconds)
        finally:
            running.remove(goals)
        return {"batchItemFailures": []}

    return handler, overlaps


async def test_results_of_one_goal_are_delivered_one_invocation_at_a_time(publish, make_bridge, kit):
    tenant = kit.new_id()
    route = kit.make_route(tenant, "parent", RESULT, topic="action-results", batch_size=1, max_concurrency=4)
    handler, overlaps = overlap_recorder(0.3)
    invoker = kit.HandlerInvoker(handler)
    await make_bridge([route], invoker)
    # Two goals, three results each, all published at once.
    sent = await publish(*(kit.envelope(tenant, RESULT, topic="action-results", n=n)
                           .model_copy(update={"goal_id": goal}) for n in range(3) for goal in ("g-1", "g-2")))
    await kit.wait_until(lambda: len(invoker.records()) == len(sent), timeout_s=15)
    # Never two invocations of the same goal at once; the two goals did run side by side (not one queue for all).
    assert not [pair for pair in overlaps if pair[0] & pair[1]], overlaps
    assert [pair for pair in overlaps if pair[0] != pair[1]]
    assert sorted(invoker.event_ids()) == sorted(e.id for e in sent)  # each once


async def test_requests_of_one_goal_still_run_in_parallel(publish, make_bridge, kit):
    tenant = kit.new_id()
    route = kit.make_route(tenant, "worker", "sub.task.requested", batch_size=1, max_concurrency=3)
    handler, overlaps = overlap_recorder(0.3)
    invoker = kit.HandlerInvoker(handler)
    await make_bridge([route], invoker)
    sent = await publish(*(kit.envelope(tenant, "sub.task.requested", n=n).model_copy(update={"goal_id": "g-1"})
                           for n in range(3)))
    await kit.wait_until(lambda: len(invoker.records()) == len(sent), timeout_s=15)
    assert [pair for pair in overlaps if pair[0] & pair[1]]  # a fan-out of one goal is not serialized
