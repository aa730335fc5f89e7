"""Worker / Tool / Planner flows through the Lambda entry, against the in-memory fake platform."""

from __future__ import annotations

from soorma import DelegationSpec, EventEnvelope, Planner, Tool, Worker

from .fakes import FakePlatform, deliver

TENANT, USER = "acme", "alice"


def client_request(**overrides):
    """An order request as a client would publish it (what the bridge then delivers)."""
    event = EventEnvelope(
        type="order.process",
        topic="action-requests",
        data={"order_id": "o-1", "amount": 42},
        correlation_id="client-corr-123",
        response_event="order.processed",
        response_topic="action-results",
        tenant_id=TENANT,
        user_id=USER,
        session_id="sess-1",
        trace_id="trace-1",
    )
    return event.model_copy(update=overrides).model_dump(mode="json", exclude_none=True)


def build_agents(platform: FakePlatform):
    worker = Worker("order-worker", context=platform.context())
    tool = Tool("payment-tool", context=platform.context())

    @worker.on_task("order.process")
    async def process(task, context):
        task.state["order_id"] = task.data["order_id"]
        await task.delegate("payment.charge", {"amount": task.data["amount"]}, response_event="payment.charged")

    @worker.on_result("payment.charged")
    async def charged(result, context):
        task = await result.restore_task()
        task.update_sub_task_result(result.correlation_id, result.result, success=result.success)
        await task.complete({"order_id": task.state["order_id"], "paid": result.success, "charge": result.result})

    @tool.on_invoke("payment.charge")
    async def charge(request, context):
        if request.data["amount"] > 1000:
            raise ValueError("amount over limit")
        return {"charged": request.data["amount"]}

    return worker, tool


def test_delegate_result_restore_complete_keeps_caller_correlation_id():
    platform = FakePlatform()
    worker, tool = build_agents(platform)
    request = client_request()

    assert deliver(worker, request) == {"batchItemFailures": []}
    [sub_request] = platform.published_of("payment.charge")
    sub_task_id = sub_request["correlation_id"]
    assert sub_request["data"] == {"amount": 42, "task_id": sub_task_id}
    assert sub_request["response_event"] == "payment.charged"
    assert sub_request["topic"] == "action-requests"
    # the saved context holds the caller's correlation id in its own field
    [(scope, saved)] = [(k[0], v) for k, v in platform.tasks.items()]
    assert scope == (TENANT, USER)
    assert saved["correlation_id"] == "client-corr-123" and saved["sub_tasks"] == [sub_task_id]

    assert deliver(tool, sub_request) == {"batchItemFailures": []}
    [tool_answer] = platform.published_of("payment.charged")
    assert tool_answer["correlation_id"] == sub_task_id
    assert tool_answer["data"] == {"request_id": sub_request["id"], "success": True, "result": {"charged": 42}}

    assert deliver(worker, tool_answer) == {"batchItemFailures": []}
    [final] = platform.published_of("order.processed")
    assert final["correlation_id"] == "client-corr-123"
    assert final["topic"] == "action-results"
    assert final["data"]["status"] == "completed"
    assert final["data"]["task_id"] == request["id"]
    assert final["data"]["result"] == {"order_id": "o-1", "paid": True, "charge": {"charged": 42}}
    assert platform.tasks == {}, "complete() deletes the saved context"

    # propagation: every event of the chain carries the trace, session and identity; parents chain up
    for event in (sub_request, tool_answer, final):
        assert (event["trace_id"], event["session_id"]) == ("trace-1", "sess-1")
        assert (event["tenant_id"], event["user_id"]) == (TENANT, USER)
    assert sub_request["parent_event_id"] == request["id"]
    assert tool_answer["parent_event_id"] == sub_request["id"]
    assert final["parent_event_id"] == tool_answer["id"]
    assert (sub_request["source"], tool_answer["source"], final["source"]) == ("order-worker", "payment-tool", "order-worker")

    # identity: every memory call acted for the event's service tenant and user
    memory_calls = platform.memory_calls()
    assert memory_calls, "the worker used memory"
    for call in memory_calls:
        assert call.headers["x-soorma-service-tenant"] == TENANT
        assert call.headers["x-soorma-service-user"] == USER
        assert call.headers["authorization"] == "Bearer sk_test_secret"


def test_tool_exception_is_a_failed_result_not_a_retry():
    platform = FakePlatform()
    worker, tool = build_agents(platform)
    deliver(worker, client_request(data={"order_id": "o-2", "amount": 5000}))
    [sub_request] = platform.published_of("payment.charge")

    assert deliver(tool, sub_request) == {"batchItemFailures": []}
    [answer] = platform.published_of("payment.charged")
    assert answer["data"] == {"request_id": sub_request["id"], "success": False, "error": "amount over limit"}

    deliver(worker, answer)
    [final] = platform.published_of("order.processed")
    assert final["data"]["result"]["paid"] is False
    assert final["correlation_id"] == "client-corr-123"


def test_tool_default_response_event_and_response_topic():
    platform = FakePlatform()
    tool = Tool("calc", context=platform.context())

    @tool.on_invoke("calc.add", response_schema={"type": "object", "required": ["sum"]})
    def add(request, context):  # sync handlers work too
        return {"sum": request.data["a"] + request.data["b"]}

    request = EventEnvelope(type="calc.add", topic="action-requests", data={"a": 1, "b": 2}, correlation_id="c-9",
                            response_topic="business-facts")
    deliver(tool, request.model_dump(mode="json"))
    [answer] = platform.published
    assert answer["type"] == "calc.add.completed"
    assert answer["topic"] == "business-facts"
    assert answer["correlation_id"] == "c-9"
    assert answer["data"] == {"request_id": request.id, "success": True, "result": {"sum": 3}}

    # a result that breaks response_schema is a failed result too
    @tool.on_invoke("calc.bad", response_schema={"type": "object", "required": ["sum"]})
    async def bad(request, context):
        return {"nope": 1}

    deliver(tool, EventEnvelope(type="calc.bad", topic="action-requests", response_event="calc.answer").model_dump(mode="json"))
    answer = platform.published_of("calc.answer")[0]
    assert answer["data"]["success"] is False and "sum" in answer["data"]["error"]


def test_delegate_parallel_same_event_type_keeps_each_spec_data():
    platform = FakePlatform()
    worker = Worker("fanout", context=platform.context())

    @worker.on_task("check.all")
    async def fan_out(task, context):
        group = await task.delegate_parallel([
            DelegationSpec("sku.check", {"sku": "A"}, "sku.checked"),
            DelegationSpec("sku.check", {"sku": "B"}, "sku.checked"),
        ])
        task.state["group"] = group
        await task.save()

    @worker.on_result("sku.checked")
    async def checked(result, context):
        task = await result.restore_task()
        task.update_sub_task_result(result.correlation_id, result.result)
        done = task.aggregate_parallel_results(task.state["group"])
        if done is None:
            await task.save()
        else:
            await task.complete(sorted(r["sku"] for r in done.values()))

    deliver(worker, client_request(type="check.all", response_event="check.done"))
    requests = platform.published_of("sku.check")
    assert sorted(r["data"]["sku"] for r in requests) == ["A", "B"]
    assert len({r["correlation_id"] for r in requests}) == 2

    for r in requests:
        answer = EventEnvelope(type="sku.checked", topic="action-results", correlation_id=r["correlation_id"],
                               data={"status": "completed", "result": {"sku": r["data"]["sku"]}},
                               tenant_id=TENANT, user_id=USER)
        assert deliver(worker, answer.model_dump(mode="json")) == {"batchItemFailures": []}
    [final] = platform.published_of("check.done")
    assert final["data"]["result"] == ["A", "B"]
    assert final["correlation_id"] == "client-corr-123"


def test_planner_goal_delegates_then_completes_the_goal():
    platform = FakePlatform()
    planner = Planner("trip-planner", context=platform.context())
    worker = Worker("flight-worker", context=platform.context())

    @planner.on_goal("trip.plan")
    async def plan(goal, context):
        goal.state["destination"] = goal.data["to"]
        await goal.delegate("flight.find", {"to": goal.data["to"]}, response_event="flight.found")

    @planner.on_result("flight.found")
    async def found(result, context):
        goal = await result.restore_task()
        await goal.complete({"destination": goal.state["destination"], "flight": result.result})

    @worker.on_task("flight.find")
    async def find(task, context):
        await task.complete({"flight": "SK-1", "to": task.data["to"]})

    # what the gateway publishes for POST /v1/goals
    goal_event = EventEnvelope(type="trip.plan", topic="action-requests", data={"to": "OSL"}, correlation_id="g-1",
                               goal_id="g-1", trace_id="g-1", response_event="soorma.goal.result",
                               response_topic="action-results", tenant_id=TENANT, user_id=USER)
    deliver(planner, goal_event.model_dump(mode="json"))
    [flight_request] = platform.published_of("flight.find")
    assert flight_request["goal_id"] == "g-1"
    deliver(worker, flight_request)
    [flight_found] = platform.published_of("flight.found")
    assert flight_found["correlation_id"] == flight_request["correlation_id"]
    deliver(planner, flight_found)
    [goal_result] = platform.published_of("soorma.goal.result")
    assert goal_result["correlation_id"] == "g-1"
    assert goal_result["goal_id"] == "g-1"
    assert goal_result["data"]["status"] == "completed"
    assert goal_result["data"]["result"] == {"destination": "OSL", "flight": {"flight": "SK-1", "to": "OSL"}}


def test_goal_dispatch_keeps_goal_correlation_id():
    platform = FakePlatform()
    planner = Planner("p", context=platform.context())

    @planner.on_goal("g.type")
    async def plan(goal, context):
        await goal.dispatch("work.do", {"x": 1}, response_event="work.done")

    deliver(planner, EventEnvelope(type="g.type", topic="action-requests", correlation_id="g-7", goal_id="g-7",
                                   response_event="soorma.goal.result").model_dump(mode="json"))
    [request] = platform.published
    assert (request["type"], request["correlation_id"], request["goal_id"]) == ("work.do", "g-7", "g-7")


def test_assigned_to_another_worker_is_skipped():
    platform = FakePlatform()
    worker = Worker("w1", context=platform.context())
    seen = []

    @worker.on_task("job.run")
    async def run(task, context):
        seen.append(task.data["n"])

    deliver(worker, client_request(type="job.run", data={"n": 1, "assigned_to": "w2"}),
            client_request(type="job.run", data={"n": 2, "assigned_to": "w1"}),
            client_request(type="job.run", data={"n": 3}))
    assert seen == [2, 3]


def test_report_progress_and_fail():
    platform = FakePlatform()
    worker = Worker("w", context=platform.context())

    @worker.on_task("long.job")
    async def job(task, context):
        await task.report_progress(0.5, "halfway")
        await task.fail(RuntimeError("disk full"))

    deliver(worker, client_request(type="long.job", response_event="long.job.done"))
    [progress] = platform.published_of("task.progress")
    assert progress["topic"] == "task-events"
    assert progress["data"]["progress"] == 0.5 and progress["data"]["message"] == "halfway"
    [done] = platform.published_of("long.job.done")
    assert done["data"]["status"] == "failed" and done["data"]["error"] == "disk full"
    assert done["correlation_id"] == "client-corr-123"
