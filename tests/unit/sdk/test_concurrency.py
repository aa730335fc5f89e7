"""Parallel delegation under concurrency: deferred requests, optimistic concurrency (409) and handler re-runs."""

from __future__ import annotations

import asyncio

from soorma import DelegationSpec, EventEnvelope, Worker

from .fakes import FakePlatform, deliver

TENANT, USER = "acme", "alice"


def order_request(**overrides):
    event = EventEnvelope(
        type="order.process.requested", topic="action-requests",
        data={"order_id": "o-7", "items": ["a", "b"], "total": 12.5},
        correlation_id="client-corr-7", response_event="order.process.completed", response_topic="action-results",
        tenant_id=TENANT, user_id=USER, goal_id="goal-7",
    )
    return event.model_copy(update=overrides).model_dump(mode="json", exclude_none=True)


def build_order_worker(platform: FakePlatform) -> Worker:
    """soorma-core's example 08 handlers, unchanged in substance."""
    worker = Worker("order-processor", context=platform.context())

    @worker.on_task("order.process.requested")
    async def handle_order(task, context):
        group_id = await task.delegate_parallel([
            DelegationSpec("inventory.reserve.requested", {"order_id": task.data["order_id"]},
                           "inventory.reserve.completed"),
            DelegationSpec("payment.process.requested", {"order_id": task.data["order_id"],
                                                         "amount": task.data["total"]},
                           "payment.process.completed"),
        ])
        task.state["pending_group"] = group_id
        await task.save()

    @worker.on_result("inventory.reserve.completed")
    @worker.on_result("payment.process.completed")
    async def handle_result(result, context):
        task = await result.restore_task()
        task.update_sub_task_result(result.correlation_id, result.data.get("result", result.data))
        aggregated = task.aggregate_parallel_results(task.state.get("pending_group"))
        if not aggregated:
            await task.save()
            return
        by_type = {info.event_type: info.result for info in task.sub_tasks.values()}
        await task.complete({"order_id": task.data["order_id"],
                             "inventory": by_type["inventory.reserve.requested"],
                             "payment": by_type["payment.process.requested"]})

    return worker


def answer(request: dict, result: dict) -> dict:
    """The response a sub-task worker publishes for ``request``."""
    return EventEnvelope(
        type=request["response_event"], topic="action-results", correlation_id=request["correlation_id"],
        data={"task_id": request["data"]["task_id"], "status": "completed", "result": result},
        tenant_id=request.get("tenant_id"), user_id=request.get("user_id"), goal_id=request.get("goal_id"),
    ).model_dump(mode="json", exclude_none=True)


def test_delegated_requests_leave_after_the_handler_saved_everything():
    platform = FakePlatform()
    worker = build_order_worker(platform)
    assert deliver(worker, order_request()) == {"batchItemFailures": []}
    calls = [(c.method, c.path) for c in platform.calls]
    saves = [i for i, c in enumerate(calls) if c == ("POST", "/v1/memory/task-context")]
    publishes = [i for i, c in enumerate(calls) if c == ("POST", "/v1/events/publish")]
    assert len(saves) == 2 and len(publishes) == 2
    assert max(saves) < min(publishes), calls  # both saves (group id included) before any request
    [record] = platform.tasks.values()
    assert record["state"]["pending_group"]
    requests = platform.published_of("inventory.reserve.requested") + platform.published_of("payment.process.requested")
    assert {r["goal_id"] for r in requests} == {"goal-7"}
    assert all(r["correlation_id"] == r["data"]["task_id"] for r in requests)


async def test_parallel_results_at_the_same_time_are_both_kept_and_answer_once():
    platform = FakePlatform()
    worker = build_order_worker(platform)
    # two execution environments (separate agent objects, separate caches) handling one result each
    other = build_order_worker(platform)
    await worker.dispatch(EventEnvelope.model_validate(order_request()))
    inventory = platform.published_of("inventory.reserve.requested")[0]
    payment = platform.published_of("payment.process.requested")[0]
    # both results restore the task before either saves
    platform.delays["/by-subtask/"] = 0.05
    await asyncio.gather(
        worker.dispatch(EventEnvelope.model_validate(answer(inventory, {"reserved": True}))),
        other.dispatch(EventEnvelope.model_validate(answer(payment, {"charged": 12.5}))),
    )
    assert platform.conflicts >= 1  # the slower save was refused (409) ...
    [done] = platform.published_of("order.process.completed")  # ... re-run on fresh state, and answered once
    assert done["correlation_id"] == "client-corr-7"
    assert done["data"]["result"] == {"order_id": "o-7", "inventory": {"reserved": True},
                                      "payment": {"charged": 12.5}}
    assert platform.tasks == {}  # completed: the saved context is gone


def test_results_arriving_one_after_another_complete_on_the_second():
    platform = FakePlatform()
    worker = build_order_worker(platform)
    deliver(worker, order_request())
    inventory = platform.published_of("inventory.reserve.requested")[0]
    payment = platform.published_of("payment.process.requested")[0]
    deliver(worker, answer(payment, {"charged": 12.5}))
    assert platform.published_of("order.process.completed") == []
    deliver(worker, answer(inventory, {"reserved": True}))
    [done] = platform.published_of("order.process.completed")
    assert done["data"]["status"] == "completed" and platform.conflicts == 0


async def test_a_conflict_that_never_clears_fails_the_event_for_redelivery():
    from soorma.errors import ConflictError

    platform = FakePlatform()
    worker = Worker("stubborn", context=platform.context())
    runs = []

    @worker.on_task("always.conflicts")
    async def conflicted(task, context):
        runs.append(1)
        raise ConflictError(409, "moved on")

    event = EventEnvelope(type="always.conflicts", topic="action-requests", response_event="x")
    try:
        await worker.dispatch(event)
    except ConflictError:
        pass
    else:
        raise AssertionError("expected the conflict to propagate")
    assert len(runs) == 6  # the first run and five re-runs


async def test_every_conflict_rerun_is_counted_in_an_embedded_metric(capsys):
    """Each run that lost the race writes one ConflictReruns datapoint in CloudWatch's embedded metric format
    (dimensions agent and outcome): five re-runs, then the sixth conflict marked given_up."""
    import json

    from soorma.errors import ConflictError

    platform = FakePlatform()
    worker = Worker("stubborn", context=platform.context())

    @worker.on_task("always.conflicts")
    async def conflicted(task, context):
        raise ConflictError(409, "moved on")

    event = EventEnvelope(type="always.conflicts", topic="action-requests", response_event="x")
    try:
        await worker.dispatch(event)
    except ConflictError:
        pass
    metrics = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"ConflictReruns"' in line]
    assert [m["outcome"] for m in metrics] == ["rerun"] * 5 + ["given_up"]
    assert all(m["agent"] == "stubborn" and m["ConflictReruns"] == [1.0] and "conflicted" in m["handler"]
               and m["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "Soorma" for m in metrics)
