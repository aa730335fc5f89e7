"""Results of one goal arriving together go in ONE invocation (issue 19, the bridge's ``results_window_s``): the
second result of a delegation is handed to the batch still open for its goal instead of waiting for that batch's
invocation to end; every message is still settled by its own outcome."""

from __future__ import annotations

import asyncio
import json

import pytest

pytestmark = pytest.mark.timeout(30)

RESULT = "sub.task.completed"


def _goals(event: dict) -> list[str]:
    return [json.loads(record["body"]).get("goal_id") for record in event["Records"]]


async def test_results_of_one_goal_arriving_together_share_one_invocation(publish, make_bridge, kit):
    tenant = kit.new_id()
    route = kit.make_route(tenant, "parent", RESULT, topic="action-results", batch_size=10, max_concurrency=2)
    invoker = kit.HandlerInvoker(lambda name, event: {"batchItemFailures": []})
    await make_bridge([route], invoker, results_window_s=0.2)  # wide, so a loaded machine cannot split them
    first, second = (kit.envelope(tenant, RESULT, topic="action-results", n=n).model_copy(update={"goal_id": "g-1"})
                     for n in range(2))
    await publish(first)
    await asyncio.sleep(0.02)  # the second result arrives after the first was fetched, as a delegation's do
    await publish(second)
    await kit.wait_until(lambda: len(invoker.records()) >= 2, timeout_s=10)
    await asyncio.sleep(1.0)  # a redelivery (an unsettled message) would show up as a further call
    assert [_goals(event) for _, event in invoker.calls] == [["g-1", "g-1"]], invoker.calls
    assert sorted(invoker.event_ids()) == sorted([first.id, second.id])


async def test_in_a_shared_invocation_each_result_is_settled_by_its_own_outcome(publish, make_bridge, kit):
    tenant = kit.new_id()
    route = kit.make_route(tenant, "parent", RESULT, topic="action-results", batch_size=10, max_concurrency=2)
    failed_once: set[str] = set()

    def handler(name, event):
        failures = []
        for record in event["Records"]:
            body = json.loads(record["body"])
            if body["data"].get("n") == 1 and body["id"] not in failed_once:
                failed_once.add(body["id"])
                failures.append({"itemIdentifier": record["messageId"]})
        return {"batchItemFailures": failures}

    invoker = kit.HandlerInvoker(handler)
    await make_bridge([route], invoker, results_window_s=0.2)
    first, second = (kit.envelope(tenant, RESULT, topic="action-results", n=n).model_copy(update={"goal_id": "g-1"})
                     for n in range(2))
    await publish(first)
    await asyncio.sleep(0.02)
    await publish(second)
    await kit.wait_until(lambda: len(invoker.records()) >= 3, timeout_s=15)
    await asyncio.sleep(1.0)
    ids = invoker.event_ids()
    # the failed one is redelivered (once, then it succeeds), the other is not
    assert sorted(ids) == sorted([first.id, second.id, second.id]), ids
    assert _goals(invoker.calls[0][1]) == ["g-1", "g-1"]


async def test_results_of_other_goals_are_not_held_for_an_open_batch(publish, make_bridge, kit):
    tenant = kit.new_id()
    route = kit.make_route(tenant, "parent", RESULT, topic="action-results", batch_size=10, max_concurrency=2)
    invoker = kit.HandlerInvoker(lambda name, event: {"batchItemFailures": []})
    await make_bridge([route], invoker, results_window_s=0.3)
    await publish(kit.envelope(tenant, RESULT, topic="action-results", n=0).model_copy(update={"goal_id": "g-1"}))
    await asyncio.sleep(0.05)
    await publish(kit.envelope(tenant, RESULT, topic="action-results", n=1).model_copy(update={"goal_id": "g-2"}))
    await kit.wait_until(lambda: len(invoker.records()) >= 2, timeout_s=10)
    assert sorted(_goals(event) for _, event in invoker.calls) == [["g-1"], ["g-2"]], invoker.calls


async def test_a_window_that_a_result_joined_closes_after_the_join_grace(publish, make_bridge, kit):
    """The batch is invoked ``results_join_grace_s`` after the latest join, long before its window would end; a
    result joining within that grace is still in it."""
    tenant = kit.new_id()
    route = kit.make_route(tenant, "parent", RESULT, topic="action-results", batch_size=10, max_concurrency=3)
    invoked_at: list[float] = []

    def handler(name, event):
        invoked_at.append(asyncio.get_running_loop().time())
        return {"batchItemFailures": []}

    invoker = kit.HandlerInvoker(handler)
    await make_bridge([route], invoker, results_window_s=30.0, results_join_grace_s=0.3)
    results = [kit.envelope(tenant, RESULT, topic="action-results", n=n).model_copy(update={"goal_id": "g-1"})
               for n in range(3)]
    await publish(results[0])
    await asyncio.sleep(0.05)
    await publish(results[1])
    await asyncio.sleep(0.05)  # within the grace the second result's join opened
    await publish(results[2])
    published_at = asyncio.get_running_loop().time()
    await kit.wait_until(lambda: len(invoker.records()) >= 3, timeout_s=10)  # a 30 s window would fail this
    await asyncio.sleep(0.5)
    assert [_goals(event) for _, event in invoker.calls] == [["g-1", "g-1", "g-1"]], invoker.calls
    assert invoked_at[0] - published_at >= 0.2  # it waited out the grace after the last join, not less


async def test_a_window_that_no_result_joined_stays_open_to_its_end(publish, make_bridge, kit):
    tenant = kit.new_id()
    route = kit.make_route(tenant, "parent", RESULT, topic="action-results", batch_size=10, max_concurrency=2)
    invoker = kit.HandlerInvoker(lambda name, event: {"batchItemFailures": []})
    await make_bridge([route], invoker, results_window_s=0.6, results_join_grace_s=0.01)
    started = asyncio.get_running_loop().time()
    await publish(kit.envelope(tenant, RESULT, topic="action-results", n=0).model_copy(update={"goal_id": "g-1"}))
    await asyncio.sleep(0.3)
    assert invoker.calls == []  # the grace applies only after a join
    await kit.wait_until(lambda: len(invoker.records()) >= 1, timeout_s=10)
    assert asyncio.get_running_loop().time() - started >= 0.55
