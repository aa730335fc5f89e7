"""``SOORMA_IDEMPOTENCY=commit`` (issue 19): a handler run's publishes and task-context writes are buffered and sent in
ONE ``POST /v1/events/commit`` when it returns; a failed run sends nothing; a conflict re-runs it with the same key.

The platform is an ``httpx.MockTransport`` that records every request (the commit route itself is tested against the
real gateway in ``tests/integration/functions/test_handler_commit.py``)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from soorma import PlatformContext, Worker
from soorma.errors import ConflictError, TaskNotFoundError
from soorma.events import EventEnvelope
from soorma.settings import Settings
from soorma.task_context import DelegationSpec

TENANT, USER = "st_1", "su_1"


class Recorder:
    """Records requests; answers commits with ``commit_answers`` (status codes, in order; then 200) and task reads
    with ``tasks`` (sub-task id → record)."""

    def __init__(self, *, commit_answers: list[int] | None = None, tasks: dict[str, dict] | None = None) -> None:
        self.requests: list[tuple[str, str, Any]] = []
        self.commit_answers = list(commit_answers or [])
        self.tasks = tasks or {}

    def handle(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        self.requests.append((request.method, request.url.path, body))
        if request.url.path == "/v1/events/commit":
            status = self.commit_answers.pop(0) if self.commit_answers else 200
            if status == 409:
                return httpx.Response(409, json={"detail": "task context t is at version 4, not 3"})
            return httpx.Response(200, json={"replayed": False, "event_ids": [e["id"] for e in body["events"]],
                                             "task_versions": {}})
        if request.url.path == "/v1/events/publish":  # a progress report: published at once, not committed
            return httpx.Response(200, json={"success": True, "event_id": body["event"]["id"]})
        if "/by-subtask/" in request.url.path:
            found = self.tasks.get(request.url.path.rsplit("/", 1)[1])
            return httpx.Response(200, json=found) if found else httpx.Response(404, json={"detail": "none"})
        return httpx.Response(500, json={"detail": f"unexpected {request.method} {request.url.path}"})

    def context(self) -> PlatformContext:
        return PlatformContext.from_env(settings=Settings(api_url="http://platform.test", api_key="sk_test_x"),
                                        transport=httpx.MockTransport(self.handle))

    def commits(self) -> list[dict]:
        return [body for method, path, body in self.requests if path == "/v1/events/commit"]


def request_event(**data: Any) -> EventEnvelope:
    return EventEnvelope(type="order.process.requested", topic="action-requests", data=data, correlation_id="c-1",
                         response_event="order.done", tenant_id=TENANT, user_id=USER, goal_id="g-1")


def delegating_worker(recorder: Recorder) -> Worker:
    worker = Worker("order-processor", context=recorder.context())

    @worker.on_task("order.process.requested")
    async def handle(task, context):
        group = await task.delegate_parallel([
            DelegationSpec(event_type="inventory.reserve.requested", data={"n": 1},
                           response_event="inventory.reserve.completed"),
            DelegationSpec(event_type="payment.process.requested", data={"n": 2},
                           response_event="payment.process.completed"),
        ])
        task.state["pending_group"] = group
        await task.save()
        restored = await context.memory.get_task_context(task.task_id)  # reads what this run wrote
        assert restored is not None and restored.state["pending_group"] == group
        await task.report_progress(0.1, "requested")

    return worker


async def test_a_handler_run_is_one_commit_request():
    recorder = Recorder()
    worker = delegating_worker(recorder)
    event = request_event(order_id="o-1")
    assert await worker.dispatch(event, commit=True) == 1
    # the progress report leaves at once (it tells about a run still going), everything else in the one commit
    assert [(m, p) for m, p, _ in recorder.requests] == [("POST", "/v1/events/publish"), ("POST", "/v1/events/commit")]
    assert recorder.requests[0][2]["event"]["type"] == "task.progress"
    commit = recorder.commits()[0]
    assert commit["key"] == worker.commit_key(event, 0) and commit["expiry_timestamp"] > 0
    # the delegated requests leave after everything the handler did (they are deferred to its end)
    assert [e["type"] for e in commit["events"]] == ["inventory.reserve.requested", "payment.process.requested"]
    assert all(e["tenant_id"] == TENANT and e["parent_event_id"] == event.id for e in commit["events"])
    # the two saves of the run are one write, of the last state, checked against nothing (a new task)
    [written] = commit["task_contexts"]
    assert "version" not in written and written["state"]["pending_group"]
    assert len(written["sub_tasks"]) == 2 and commit["deleted_task_contexts"] == []


async def test_the_commit_acts_for_the_events_tenant_and_user():
    seen: list[httpx.Request] = []
    recorder = Recorder()

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return recorder.handle(request)

    worker = delegating_worker(recorder)
    worker.context = PlatformContext.from_env(settings=Settings(api_url="http://platform.test", api_key="sk_test_x"),
                                              transport=httpx.MockTransport(handle))
    await worker.dispatch(request_event(), commit=True)
    assert seen[0].headers["x-soorma-service-tenant"] == TENANT and seen[0].headers["x-soorma-service-user"] == USER


async def test_a_failed_handler_sends_nothing():
    recorder = Recorder()
    worker = Worker("failing", context=recorder.context())

    @worker.on_task("order.process.requested")
    async def handle(task, context):
        await task.delegate("inventory.reserve.requested", {"n": 1}, "inventory.reserve.completed")
        await context.bus.publish("business-facts", "order.noted", {"n": 1})
        raise RuntimeError("boom")

    event = request_event()
    with pytest.raises(RuntimeError):
        await worker.dispatch(event, commit=True)
    # nothing written or published; only the question whether an earlier run committed the event
    assert [(m, p) for m, p, _ in recorder.requests] == [
        ("GET", f"/v1/memory/idempotency/{worker.commit_key(event, 0)}")]


async def test_a_conflict_reruns_the_handler_and_commits_with_the_same_key():
    record = {"task_id": "t-1", "event_type": "order.process.requested", "response_event": "order.done",
              "sub_tasks": ["sub-1", "sub-2"], "version": 3, "correlation_id": "c-1",
              "state": {"_soorma_sub_tasks": {}}}
    recorder = Recorder(commit_answers=[409], tasks={"sub-1": record})
    worker = Worker("order-processor", context=recorder.context())

    @worker.on_result("inventory.reserve.completed")
    async def on_result(result, context):
        task = await result.restore_task()
        task.state["seen"] = True
        await task.save()

    event = EventEnvelope(type="inventory.reserve.completed", topic="action-results", correlation_id="sub-1",
                          data={"status": "completed", "result": {"ok": True}}, tenant_id=TENANT, user_id=USER)
    assert await worker.dispatch(event, commit=True) == 1
    commits = recorder.commits()
    assert len(commits) == 2 and commits[0]["key"] == commits[1]["key"] == worker.commit_key(event, 0)
    assert commits[1]["task_contexts"][0]["version"] == 3  # checked against the version the run read
    reads = [p for m, p, _ in recorder.requests if m == "GET"]
    assert len(reads) == 2  # the re-run read the task again


async def test_a_conflict_that_never_clears_raises_for_redelivery():
    record = {"task_id": "t-1", "event_type": "x", "sub_tasks": ["sub-1"], "version": 1, "state": {}}
    recorder = Recorder(commit_answers=[409] * 10, tasks={"sub-1": record})
    worker = Worker("stubborn", context=recorder.context())

    @worker.on_result("inventory.reserve.completed")
    async def on_result(result, context):
        task = await result.restore_task()
        await task.save()

    event = EventEnvelope(type="inventory.reserve.completed", topic="action-results", correlation_id="sub-1",
                          tenant_id=TENANT, user_id=USER)
    with pytest.raises(ConflictError):
        await worker.dispatch(event, commit=True)


async def test_answering_deletes_the_task_in_the_same_commit():
    record = {"task_id": "t-9", "event_type": "order.process.requested", "response_event": "order.done",
              "sub_tasks": ["sub-9"], "version": 2, "correlation_id": "c-9", "state": {}}
    recorder = Recorder(tasks={"sub-9": record})
    worker = Worker("order-processor", context=recorder.context())

    @worker.on_result("payment.process.completed")
    async def on_result(result, context):
        task = await result.restore_task()
        await task.complete({"done": True})
        assert await context.memory.get_task_context("t-9") is None  # deleted, as far as this run is concerned

    event = EventEnvelope(type="payment.process.completed", topic="action-results", correlation_id="sub-9",
                          tenant_id=TENANT, user_id=USER)
    await worker.dispatch(event, commit=True)
    [commit] = recorder.commits()
    assert commit["deleted_task_contexts"] == ["t-9"] and commit["task_contexts"] == []
    [answer] = commit["events"]
    assert answer["type"] == "order.done" and answer["correlation_id"] == "c-9"


async def test_a_run_that_did_nothing_sends_nothing():
    recorder = Recorder()
    worker = Worker("idle", context=recorder.context())

    @worker.on_event("x.y", topic="business-facts")
    async def noop(event, context):
        return None

    assert await worker.dispatch(EventEnvelope(type="x.y", topic="business-facts"), commit=True) == 1
    assert recorder.requests == []


async def test_calls_for_another_tenant_are_not_buffered():
    recorder = Recorder()
    worker = Worker("cross", context=recorder.context())

    @worker.on_event("x.y", topic="business-facts")
    async def publish_elsewhere(event, context):
        await context.bus.publish("business-facts", "x.z", {}, tenant_id="st_other")

    await worker.dispatch(EventEnvelope(type="x.y", topic="business-facts", tenant_id=TENANT, user_id=USER),
                          commit=True)
    # sent at once, not buffered: the commit acts for the event's tenant and user only
    assert [(m, p) for m, p, _ in recorder.requests][0] == ("POST", "/v1/events/publish")
    assert recorder.requests[0][2]["event"]["type"] == "x.z"
    assert all(e["type"] != "x.z" for commit in recorder.commits() for e in commit["events"])


@pytest.mark.parametrize("stored,ignored", [
    ({"status": "COMPLETED", "expiry_timestamp": 4_000_000_000}, True),
    ({"status": "COMPLETED", "expiry_timestamp": 1}, False),  # expired: the event may run again
    (None, False),
])
async def test_a_redelivery_of_a_committed_event_that_fails_is_done(stored, ignored):
    """The final result's redelivery after its commit: the task it answered is gone, so restoring it fails; the
    commit key says the event was handled, so the failure is not retried into a dead letter."""
    requests: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        requests.append(request.url.path)
        if "/idempotency/" in request.url.path:
            if stored is None:
                return httpx.Response(404, json={"detail": "none"})
            return httpx.Response(200, json={"key": "k", **stored})
        return httpx.Response(404, json={"detail": "no task"})

    worker = Worker("order-processor", context=PlatformContext.from_env(
        settings=Settings(api_url="http://platform.test", api_key="sk_test_x"), transport=httpx.MockTransport(handle)))

    @worker.on_result("payment.process.completed")
    async def on_result(result, context):
        await result.restore_task()

    event = EventEnvelope(type="payment.process.completed", topic="action-results", correlation_id="sub-9",
                          tenant_id=TENANT, user_id=USER)
    if ignored:
        assert await worker.dispatch(event, commit=True) == 1
    else:
        with pytest.raises(TaskNotFoundError):
            await worker.dispatch(event, commit=True)
    assert requests[-1] == "/v1/memory/idempotency/" + worker.commit_key(event, 0)


async def test_a_task_this_environment_committed_is_restored_without_a_platform_call():
    """The order's first handler commits its task; the first result restores it from what was committed (no GET), and
    so does the second from what the first result committed. A stale copy (another environment wrote since) is
    refused by the commit (409) and the re-run reads the platform's copy."""
    recorder = Recorder()
    worker = delegating_worker(recorder)

    @worker.on_result("inventory.reserve.completed")
    @worker.on_result("payment.process.completed")
    async def on_result(result, context):
        task = await result.restore_task()
        task.update_sub_task_result(result.correlation_id, result.data.get("result"))
        if task.aggregate_parallel_results(task.state["pending_group"]) is None:
            await task.save()
        else:
            await task.complete({"both": True})

    def versions_answer(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        return httpx.Response(200, json={"replayed": False, "event_ids": [e["id"] for e in body["events"]],
                                         "task_versions": {t["task_id"]: t.get("version", 0) + 1
                                                           for t in body["task_contexts"]}})

    answers: list[httpx.Response] = []

    def handle(request: httpx.Request) -> httpx.Response:
        recorder.requests.append((request.method, request.url.path, None))
        if request.url.path == "/v1/events/commit":
            return answers.pop(0) if answers else versions_answer(request)
        if request.url.path == "/v1/events/publish":  # the first run's progress report, sent at once
            return httpx.Response(200, json={"success": True, "event_id": json.loads(request.content)["event"]["id"]})
        return httpx.Response(404, json={"detail": "not asked in this test"})

    worker.context = PlatformContext.from_env(settings=Settings(api_url="http://platform.test", api_key="sk_test_x"),
                                              transport=httpx.MockTransport(handle))
    order = request_event(order_id="o-1")
    await worker.dispatch(order, commit=True)
    assert [p for _, p, _ in recorder.requests] == ["/v1/events/publish", "/v1/events/commit"]
    task_id = next(iter(worker._committed_tasks._tasks.values()))["task_id"]
    subs = worker._committed_tasks.get((None, TENANT, USER), task_id)["sub_tasks"]
    for sub, kind in zip(subs, ("inventory.reserve.completed", "payment.process.completed")):
        await worker.dispatch(EventEnvelope(type=kind, topic="action-results", correlation_id=sub,
                                            data={"status": "completed", "result": {"ok": kind}},
                                            tenant_id=TENANT, user_id=USER), commit=True)
    # no read at all
    assert [p for _, p, _ in recorder.requests] == ["/v1/events/publish"] + ["/v1/events/commit"] * 3
    assert worker._committed_tasks.get((None, TENANT, USER), task_id) is None  # answered: deleted, forgotten


async def test_a_stale_cached_task_is_refused_and_the_rerun_reads_the_platforms_copy():
    worker = Worker("order-processor")
    scope = (None, TENANT, USER)
    worker._committed_tasks.put(scope, {"task_id": "t-5", "event_type": "x", "sub_tasks": ["sub-5"], "state": {}},
                                1)
    fresh = {"task_id": "t-5", "event_type": "x", "sub_tasks": ["sub-5"], "state": {"other": 1}, "version": 5}
    recorder = Recorder(commit_answers=[409], tasks={"sub-5": fresh})
    worker.context = recorder.context()

    @worker.on_result("inventory.reserve.completed")
    async def on_result(result, context):
        task = await result.restore_task()
        task.state["mine"] = True
        await task.save()

    await worker.dispatch(EventEnvelope(type="inventory.reserve.completed", topic="action-results",
                                        correlation_id="sub-5", tenant_id=TENANT, user_id=USER), commit=True)
    first, second = recorder.commits()
    assert first["task_contexts"][0]["version"] == 1  # from the cache: stale
    assert [(m, p) for m, p, _ in recorder.requests][1] == ("GET", "/v1/memory/task-context/by-subtask/sub-5")
    assert second["task_contexts"][0]["version"] == 5 and second["task_contexts"][0]["state"]["other"] == 1


async def test_a_run_publishing_more_than_a_commit_carries_sends_the_rest_at_once():
    from soorma._current import MAX_COMMIT_EVENTS

    recorder = Recorder()
    published: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/events/publish":
            event_id = json.loads(request.content)["event"]["id"]
            published.append(event_id)
            return httpx.Response(200, json={"success": True, "event_id": event_id})
        return recorder.handle(request)

    worker = Worker("fan-out", context=PlatformContext.from_env(
        settings=Settings(api_url="http://platform.test", api_key="sk_test_x"), transport=httpx.MockTransport(handle)))

    @worker.on_event("x.y", topic="business-facts")
    async def fan_out(event, context):
        for n in range(MAX_COMMIT_EVENTS + 3):
            await context.bus.publish("business-facts", "x.z", {"n": n})

    await worker.dispatch(EventEnvelope(type="x.y", topic="business-facts", tenant_id=TENANT, user_id=USER),
                          commit=True)
    [commit] = recorder.commits()
    assert len(commit["events"]) == MAX_COMMIT_EVENTS and len(published) == 3
