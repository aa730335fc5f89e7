"""The rest of the reference SDK surface: Tool schemas and defaults, Agent lifecycle and emit, Worker.execute_task,
report_progress, WorkflowState (atomic operations), bus helpers, tracker progress, A2A, reference imports."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from soorma import Agent, EventEnvelope, Tool, Worker, WorkflowState

from .fakes import FakePlatform, deliver

TENANT, USER = "acme", "alice"


def request(event_type, data, **extra):
    return EventEnvelope(type=event_type, topic="action-requests", data=data, tenant_id=TENANT, user_id=USER,
                         **extra).model_dump(mode="json", exclude_none=True)


def test_tool_validates_its_response_schema_and_uses_its_default_response_event():
    platform = FakePlatform()
    tool = Tool("calculator", default_response_event="calc.answered", context=platform.context())
    schema = {"type": "object", "properties": {"sum": {"type": "number"}}, "required": ["sum"]}

    @tool.on_invoke("calc.add", response_schema=schema)
    async def add(req, context):
        if req.data.get("broken"):
            return {"total": 1}  # breaks the schema
        return {"sum": sum(req.data["numbers"])}

    deliver(tool, request("calc.add", {"numbers": [1, 2, 3]}, correlation_id="c1"))
    deliver(tool, request("calc.add", {"broken": True}, correlation_id="c2"))
    deliver(tool, request("calc.add", {"numbers": [1]}, correlation_id="c3", response_event="caller.wants.this"))
    ok, bad = platform.published_of("calc.answered")
    assert ok["data"] == {"request_id": ok["data"]["request_id"], "success": True, "result": {"sum": 6}}
    assert ok["correlation_id"] == "c1"
    assert bad["data"]["success"] is False and "'sum' is a required property" in bad["data"]["error"]
    [custom] = platform.published_of("caller.wants.this")
    assert custom["correlation_id"] == "c3"
    assert asyncio.run(tool.invoke("calc.add", {"numbers": [2, 2]}))["result"] == {"sum": 4}
    assert "calc.answered" in tool.definition()["produced_events"]


def test_agent_lifecycle_and_emit():
    platform = FakePlatform()
    agent = Agent("notifier", events_produced=[{"event_name": "user.notified", "topic": "notification-events"}],
                  context=platform.context())
    seen = []

    @agent.on_startup
    async def up():
        seen.append("start")

    @agent.on_shutdown
    def down():
        seen.append("stop")

    @agent.on_event("order.placed", topic="business-facts")
    async def placed(event, context):
        await agent.emit("user.notified", {"order": event.data["id"]})
        await agent.emit("order.seen", {"order": event.data["id"]}, correlation_id="c-9")

    deliver(agent, EventEnvelope(type="order.placed", topic="business-facts", data={"id": 7},
                                 goal_id="g-1").model_dump(mode="json", exclude_none=True))
    [notified] = platform.published_of("user.notified")
    assert notified["topic"] == "notification-events" and notified["goal_id"] == "g-1"
    [seen_event] = platform.published_of("order.seen")
    assert seen_event["topic"] == "business-facts" and seen_event["correlation_id"] == "c-9"
    asyncio.run(agent.stop())
    assert seen == ["start", "stop"]


def test_worker_execute_task_and_report_progress():
    platform = FakePlatform()
    worker = Worker("reporter", context=platform.context())
    done = []

    @worker.on_task("report.build")
    async def build(task, context):
        await task.report_progress(0.5, "half way")
        done.append(task.data)

    assert asyncio.run(worker.execute_task("report.build", {"n": 1}, plan_id="p1", goal_id="g1")) == 1
    assert done == [{"n": 1}]
    [progress] = platform.published_of("task.progress")
    assert progress["topic"] == "task-events" and progress["goal_id"] == "g1" and progress["plan_id"] == "p1"
    assert progress["data"]["progress"] == 0.5 and progress["data"]["message"] == "half way"
    with pytest.raises(KeyError):
        asyncio.run(worker.execute_task("no.such", {}))


@pytest.mark.parametrize("atomic", [True, False])
def test_workflow_state_operations(atomic):
    platform = FakePlatform(working_ops=atomic)
    ctx = platform.context()

    async def scenario():
        state = WorkflowState(ctx.memory, "plan-1", TENANT, USER)
        assert await state.increment("count") == 1
        assert await state.increment("count", 4) == 5
        assert await state.append("items", "a") == ["a"]
        assert await state.extend("items", ["b", "c"]) == ["a", "b", "c"]
        assert await state.update_dict("d", {"x": 1}) == {"x": 1}
        assert await state.update_dict("d", {"y": 2}) == {"x": 1, "y": 2}
        await state.record_action("research.started")
        await state.record_action("research.done")
        assert await state.get_action_history() == ["research.started", "research.done"]
        await state.set("k", {"v": 1})
        assert await state.get("k") == {"v": 1} and await state.has("k")
        assert await state.delete("k") and not await state.has("k")
        assert await state.get("missing", "dflt") == "dflt"
        await state.cleanup()
        assert await state.get("count") is None

    asyncio.run(scenario())
    ops = [c.path for c in platform.calls if c.path.endswith(("/increment", "/append", "/merge"))]
    assert len(ops) == 8  # every helper tried the atomic route (and the fallback was used without it)


def test_concurrent_increments_are_not_lost_with_the_atomic_route():
    platform = FakePlatform()
    platform.delays["/increment"] = 0.01
    ctx = platform.context()

    async def scenario():
        state = WorkflowState(ctx.memory, "plan-2", TENANT, USER)
        await asyncio.gather(*(state.increment("n") for _ in range(10)))
        return await state.get("n")

    assert asyncio.run(scenario()) == 10


def test_bus_helpers_build_unpackable_requests_and_responses():
    platform = FakePlatform()
    ctx = platform.context()
    goal = EventEnvelope(type="research.goal", topic="action-requests", correlation_id="g", response_event="r.done",
                         tenant_id=TENANT, user_id=USER, trace_id="t-1")

    async def scenario():
        child = ctx.bus.create_child_request(goal, "web.search.requested", {"q": "AI"}, "search.done")
        await ctx.bus.request(**child)
        response = ctx.bus.create_response(goal, {"answer": 1})
        await ctx.bus.respond(**response)
        await ctx.bus.announce("fact.learned", {"x": 1})

    asyncio.run(scenario())
    [search] = platform.published_of("web.search.requested")
    assert search["trace_id"] == "t-1" and search["parent_event_id"] == goal.id and search["tenant_id"] == TENANT
    assert search["response_event"] == "search.done"
    [answer] = platform.published_of("r.done")
    assert answer["correlation_id"] == "g" and answer["topic"] == "action-results"
    assert platform.published_of("fact.learned")[0]["topic"] == "business-facts"


def test_tracker_plan_progress_from_the_tracker():
    goal_id = "0b7b6a3e-3f0e-4f0a-a7c1-2d9c0e3b7a55"

    def platform(req: httpx.Request) -> httpx.Response:
        if req.url.path == f"/v1/tracker/plans/{goal_id}":
            return httpx.Response(200, json={
                "plan_id": goal_id, "status": "running", "events": 5, "task_count": 2, "completed_tasks": 1,
                "running_tasks": 1, "tasks": [{"task_id": "a", "state": "completed"},
                                              {"task_id": "b", "state": "running"}],
            })
        if req.url.path == f"/v1/tracker/goals/{goal_id}/events":
            return httpx.Response(200, json={"goal_id": goal_id, "count": 1,
                                             "events": [{"eventId": "e", "type": "task.progress"}]})
        return httpx.Response(404, json={"detail": "nope"})

    from soorma import PlatformContext
    from soorma.settings import Settings

    ctx = PlatformContext.from_env(settings=Settings(api_url="http://t", api_key="k"),
                                   transport=httpx.MockTransport(platform))
    progress = asyncio.run(ctx.tracker.get_plan_progress(goal_id))
    assert (progress.task_count, progress.completed_tasks, progress.running_tasks) == (2, 1, 1)
    assert asyncio.run(ctx.tracker.get_plan_progress("not-a-goal")) is None
    [event] = asyncio.run(ctx.tracker.get_goal_events(goal_id))
    assert event["event_id"] == "e"


def test_a2a_helper_round_trip():
    from soorma.a2a import A2AAuthType, A2AGatewayHelper, A2ATaskStatus

    worker = Worker("research-worker", "Researches topics", "2.1.0")

    @worker.on_task("research.requested")
    async def research(task, context):
        pass

    card = A2AGatewayHelper.agent_to_card(worker.definition(), "https://gw.example/a2a", A2AAuthType.API_KEY)
    assert card.name == "research-worker" and card.version == "2.1.0"
    assert [s.id for s in card.skills] == ["research.requested"]
    task = {"id": "task-1", "sessionId": "s-1", "message": {"role": "user", "parts": [
        {"type": "text", "text": "quantum computing"}, {"type": "data", "data": {"depth": 2}}]}}
    event = A2AGatewayHelper.task_to_event(task, "research.requested", response_event="research.done")
    assert event.correlation_id == "task-1" and event.session_id == "s-1"
    assert event.data == {"input": "quantum computing", "depth": 2}
    ok = A2AGatewayHelper.event_to_response(
        EventEnvelope(type="research.done", topic="action-results", data={"status": "completed", "result": 1}),
        "task-1")
    assert ok.status == A2ATaskStatus.COMPLETED and ok.message.parts[0].data["result"] == 1
    failed = A2AGatewayHelper.event_to_response(
        EventEnvelope(type="research.done", topic="action-results", data={"success": False, "error": "boom"}),
        "task-1")
    assert failed.status == A2ATaskStatus.FAILED and failed.error == "boom"


def test_reference_import_paths():
    from soorma import (  # noqa: F401
        A2AGatewayHelper,
        BusClient,
        EventSelectionError,
        EventSelector,
        Goal,
        MemoryClient,
        Plan,
        PlanContext,
        RegistryClient,
        Task,
        TrackerClient,
        hello,
    )
    from soorma.agents.planner import GoalContext, Planner  # noqa: F401
    from soorma.agents.tool import InvocationContext  # noqa: F401
    from soorma.ai.choreography import ChoreographyPlanner  # noqa: F401
    from soorma.ai.event_toolkit import EventToolkit  # noqa: F401
    from soorma.context import PlatformContext  # noqa: F401
    from soorma.gateway import A2AGatewayHelper as Helper  # noqa: F401
    from soorma.plan_context import PlanContext as PC, StateAction, StateConfig, StateTransition  # noqa: F401
    from soorma.task_context import DelegationSpec, ResultContext, SubTaskInfo, TaskContext  # noqa: F401
    from soorma.workflow import WorkflowState as WS  # noqa: F401

    assert "Soorma" in hello()


def test_goal_dispatch_keeps_the_goal_correlation():
    from soorma import Planner

    platform = FakePlatform()
    planner = Planner("dispatcher", context=platform.context())

    @planner.on_goal("trip.plan")
    async def plan(goal, context):
        await goal.dispatch("flights.search", {"to": "LIS"}, response_event="flights.found")

    deliver(planner, request("trip.plan", {"to": "LIS"}, correlation_id="goal-corr", goal_id="goal-1",
                             response_event="soorma.goal.result"))
    [search] = platform.published_of("flights.search")
    assert search["correlation_id"] == "goal-corr" and search["goal_id"] == "goal-1"
    assert search["response_event"] == "flights.found" and search["tenant_id"] == TENANT


def test_plan_store_uses_the_memory_clients_plan_methods_when_it_has_them():
    from soorma.plan_context import PlanContext

    calls = []

    class Memory:
        async def store_plan_context(self, plan_id, session_id, goal_event, goal_data, tenant_id, user_id,
                                     response_event, state, current_state, correlation_ids, version=None):
            calls.append(("store", plan_id, version, correlation_ids))
            return {"planId": plan_id, "state": state, "version": (version or 0) + 1}

        async def get_plan_by_correlation(self, correlation_id, tenant_id=None, user_id=None):
            calls.append(("by_correlation", correlation_id, tenant_id))
            return stored

        async def create_plan(self, plan_id, goal_event, goal_data=None, tenant_id=None, user_id=None,
                              session_id=None, parent_plan_id=None):
            calls.append(("create", plan_id))

    class Ctx:
        memory = Memory()

    plan = PlanContext(plan_id="p1", goal_event="g", goal_data={}, response_event="r", status="running",
                       state_machine={}, current_state="x", results={}, correlation_id="c1", tenant_id=TENANT,
                       user_id=USER, _context=Ctx())
    asyncio.run(plan.save())
    stored = {"state": plan.to_dict(), "version": 1}
    restored = asyncio.run(PlanContext.restore_by_correlation("c1", Ctx(), TENANT, USER))
    asyncio.run(restored.save())
    assert calls == [("store", "p1", None, ["p1", "c1"]), ("by_correlation", "c1", TENANT),
                     ("store", "p1", 1, ["p1", "c1"])]
