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
    # the handler awaited nothing after its progress report: the report rides the commit, first; one request in all
    assert [(m, p) for m, p, _ in recorder.requests] == [("POST", "/v1/events/commit")]
    commit = recorder.commits()[0]
    assert commit["key"] == worker.commit_key(event, 0) and commit["expiry_timestamp"] > 0
    # the delegated requests leave after everything the handler did (they are deferred to its end)
    assert [e["type"] for e in commit["events"]] == ["task.progress", "inventory.reserve.requested",
                                                      "payment.process.requested"]
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
        if request.url.path == "/v1/events/publish":  # a progress report sent while the handler awaited
            return httpx.Response(200, json={"success": True, "event_id": json.loads(request.content)["event"]["id"]})
        return httpx.Response(404, json={"detail": "not asked in this test"})

    worker.context = PlatformContext.from_env(settings=Settings(api_url="http://platform.test", api_key="sk_test_x"),
                                              transport=httpx.MockTransport(handle))
    order = request_event(order_id="o-1")
    await worker.dispatch(order, commit=True)
    assert [p for _, p, _ in recorder.requests] == ["/v1/events/commit"]
    task_id = next(iter(worker._committed_tasks._tasks.values()))["task_id"]
    subs = worker._committed_tasks.get((None, TENANT, USER), task_id)["sub_tasks"]
    for sub, kind in zip(subs, ("inventory.reserve.completed", "payment.process.completed")):
        await worker.dispatch(EventEnvelope(type=kind, topic="action-results", correlation_id=sub,
                                            data={"status": "completed", "result": {"ok": kind}},
                                            tenant_id=TENANT, user_id=USER), commit=True)
    # no read at all
    assert [p for _, p, _ in recorder.requests] == ["/v1/events/commit"] * 3
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


# --- progress reports: sent while the handler awaits, or with its commit -------------------------------------------
def progress_worker(recorder: Recorder, after_report) -> Worker:
    worker = Worker("reporter", context=recorder.context())

    @worker.on_task("order.process.requested")
    async def handle(task, context):
        await task.report_progress(0.5, "half way")
        await after_report(task)

    return worker


async def test_a_progress_report_goes_out_while_the_handler_awaits_and_before_its_commit():
    import asyncio

    recorder = Recorder()
    seen_during_wait: list[str] = []

    async def slow_work(task):
        await asyncio.sleep(0.05)  # a model call, say: the report must not wait for the run's end
        seen_during_wait.extend(path for _, path, _ in recorder.requests)
        await task.complete({"done": True})

    worker = progress_worker(recorder, slow_work)
    await worker.dispatch(request_event(order_id="o-9"), commit=True)
    assert seen_during_wait == ["/v1/events/publish"]
    assert recorder.requests[0][2]["event"]["type"] == "task.progress"
    # sent once: the commit carries only the answer
    assert [e["type"] for e in recorder.commits()[0]["events"]] == ["order.done"]  # the request_event's response_event


async def test_reports_made_while_one_is_in_flight_reach_the_bus_in_order():
    import asyncio

    order: list[str] = []
    gate = asyncio.Event()

    async def handle(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        if request.url.path == "/v1/events/publish":
            await gate.wait()  # the first report is slow to be acknowledged
            order.append(body["event"]["data"]["message"])
            return httpx.Response(200, json={"success": True, "event_id": body["event"]["id"]})
        order.extend(e["data"].get("message") or e["type"] for e in body["events"])
        return httpx.Response(200, json={"replayed": False, "event_ids": [e["id"] for e in body["events"]],
                                         "task_versions": {}})

    worker = Worker("reporter", context=PlatformContext.from_env(
        settings=Settings(api_url="http://platform.test", api_key="sk_test_x"), transport=httpx.MockTransport(handle)))

    @worker.on_task("order.process.requested")
    async def reports(task, context):
        await task.report_progress(0.1, "one")
        await asyncio.sleep(0.01)  # "one" is now in flight
        await task.report_progress(0.2, "two")
        await task.report_progress(0.3, "three")
        asyncio.get_running_loop().call_later(0.02, gate.set)

    await worker.dispatch(request_event(order_id="o-10"), commit=True)
    # the commit waited for the report in flight; the later ones went with it or after it, never before
    assert order[0] == "one" and sorted(order[1:]) == ["three", "two"] and order.index("two") < order.index("three")
    assert len(order) == 3


async def test_a_failed_runs_progress_report_is_still_published_and_nothing_is_committed():
    recorder = Recorder()

    async def fail(task):
        raise RuntimeError("model unavailable")

    worker = progress_worker(recorder, fail)
    with pytest.raises(RuntimeError):
        await worker.dispatch(request_event(order_id="o-11"), commit=True)
    # the report, then the check whether an earlier run committed this event (it did not): no commit
    assert [p.split("/soorma.")[0] for _, p, _ in recorder.requests] == ["/v1/events/publish", "/v1/memory/idempotency"]
    assert recorder.requests[0][2]["event"]["data"]["message"] == "half way"


# --- the runs of one batch commit together ---------------------------------------------------------------------
def batch_worker(answers: list[int], later_single_status: int = 200) -> tuple[Worker, list[tuple[str, Any]]]:
    """The order processor with its order already committed here (version 1); commits of several runs are answered
    with ``answers`` (status codes, in order; then 200), the order's single commit with 200 and later ones with
    ``later_single_status``."""
    requests: list[tuple[str, Any]] = []

    def result(body: dict) -> dict:
        return {"replayed": False, "event_ids": [e["id"] for e in body["events"]],
                "task_versions": {t["task_id"]: t.get("version", 0) + 1 for t in body["task_contexts"]}}

    def handle(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        requests.append((request.url.path, body))
        if request.url.path == "/v1/events/commits":
            status = answers.pop(0) if answers else 200
            if status != 200:
                return httpx.Response(status, json={"detail": "commits[1]: task context t-7 is at version 2, not 1"})
            return httpx.Response(200, json={"results": [result(commit) for commit in body["commits"]]})
        if request.url.path == "/v1/events/commit":
            if not stored:  # the order's commit: the platform's copy of the task, at version 1
                stored.append({**body["task_contexts"][0], "version": 1})
            elif later_single_status != 200:
                return httpx.Response(later_single_status, json={"detail": "database unavailable"})
            return httpx.Response(200, json=result(body))
        if "/by-subtask/" in request.url.path and stored and request.url.path.rsplit("/", 1)[1] in stored[0][
                "sub_tasks"]:
            return httpx.Response(200, json=stored[0])
        return httpx.Response(404, json={"detail": "not asked in this test"})

    stored: list[dict] = []
    recorder = Recorder()
    worker = delegating_worker(recorder)  # its order handler commits the order (version 1) into the read cache
    worker.context = PlatformContext.from_env(
        settings=Settings(api_url="http://platform.test", api_key="sk_test_x"), transport=httpx.MockTransport(handle))

    @worker.on_result("inventory.reserve.completed")
    @worker.on_result("payment.process.completed")
    async def on_result(result, context):
        task = await result.restore_task()
        task.state.setdefault("seen", []).append(result.event_type)
        if len(task.state["seen"]) < 2:
            await task.save()
            await task.report_progress(0.5, "one of two")
        else:
            await task.complete({"seen": task.state["seen"]})

    return worker, requests


def results_batch(worker: Worker, requests: list) -> tuple[dict, str]:
    """The order's request handled alone (committed at once), then its two results in one batch; and the task id."""
    from soorma.testing import sqs_batch

    assert worker(sqs_batch(request_event(order_id="o-7").model_dump_json()), None)["batchItemFailures"] == []
    assert [path for path, _ in requests] == ["/v1/events/commit"]
    requests.clear()
    [order] = [fields for key, fields in worker._committed_tasks._tasks.items()]
    subs = order["sub_tasks"]
    return sqs_batch(*(EventEnvelope(type=kind, topic="action-results", correlation_id=sub, tenant_id=TENANT,
                                     user_id=USER, data={"status": "completed", "result": {}}).model_dump_json()
                       for kind, sub in zip(("inventory.reserve.completed", "payment.process.completed"), subs))
                     ), order["task_id"]


def test_the_runs_of_one_batch_commit_in_one_request(monkeypatch):
    monkeypatch.setenv("SOORMA_IDEMPOTENCY", "commit")
    worker, requests = batch_worker([])
    batch, task_id = results_batch(worker, requests)
    assert worker(batch, None)["batchItemFailures"] == []
    # the second run read what the first wrote without waiting for its commit, and both went in one request
    assert [path for path, _ in requests] == ["/v1/events/commits"]
    first, second = requests[0][1]["commits"]
    assert [e["type"] for e in first["events"]] == ["task.progress"]
    assert first["task_contexts"][0]["version"] == 1 and first["task_contexts"][0]["state"]["seen"] == [
        "inventory.reserve.completed"]
    assert [e["type"] for e in second["events"]] == ["order.done"]
    assert second["events"][0]["data"]["result"]["seen"] == ["inventory.reserve.completed", "payment.process.completed"]
    assert second["deleted_task_contexts"] == [task_id] and first["key"] != second["key"]
    assert worker._committed_tasks.get((None, TENANT, USER), task_id) is None  # answered: deleted, forgotten


def test_when_the_batchs_commit_fails_each_run_is_handled_again_alone(monkeypatch):
    monkeypatch.setenv("SOORMA_IDEMPOTENCY", "commit")
    worker, requests = batch_worker([409])
    batch, task_id = results_batch(worker, requests)
    assert worker(batch, None)["batchItemFailures"] == []
    # the first run reads the platform's copy again (what it read from the cache may have been stale)
    assert [path.split("/by-subtask/")[0] for path, _ in requests] == [
        "/v1/events/commits", "/v1/memory/task-context", "/v1/events/commit", "/v1/events/commit"]
    again_first, again_second = requests[2][1], requests[3][1]
    # the same runs (same keys and event ids), now one commit each: the second expects the first's stored version
    assert [again_first["key"], again_second["key"]] == [c["key"] for c in requests[0][1]["commits"]]
    assert again_first["task_contexts"][0]["version"] == 1 and again_second["deleted_task_contexts"] == [task_id]
    assert again_second["events"][0]["id"] == requests[0][1]["commits"][1]["events"][0]["id"]


def test_a_batch_whose_commit_and_rerun_fail_reports_its_records_failed(monkeypatch):
    monkeypatch.setenv("SOORMA_IDEMPOTENCY", "commit")
    worker, requests = batch_worker([503] * 10, later_single_status=503)  # the client retries a 503 too
    batch, _ = results_batch(worker, requests)
    response = worker(batch, None)
    assert requests[0][0] == "/v1/events/commits"
    assert sorted(f["itemIdentifier"] for f in response["batchItemFailures"]) == sorted(
        r["messageId"] for r in batch["Records"])
