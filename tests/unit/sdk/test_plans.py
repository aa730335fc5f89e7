"""Planner + PlanContext (the state machine), against the in-memory fake platform."""

from __future__ import annotations

import pytest

from soorma import EventEnvelope, Planner, Worker
from soorma.agents.planner import GoalContext, get_goal_metadata
from soorma.plan_context import PlanContext
from soorma.state import StateAction, StateConfig, StateTransition

from .fakes import FakePlatform, deliver

TENANT, USER = "acme", "alice"
GOAL_ID = "9b8e3c4e-8a39-4a8f-9d3c-0d5d1b0b7f11"


def goal_event(goal_type="research.goal", data=None):
    """What the gateway publishes for ``POST /v1/goals``."""
    return EventEnvelope(
        type=goal_type, topic="action-requests", data=data or {"topic": "agents"}, correlation_id=GOAL_ID,
        goal_id=GOAL_ID, trace_id=GOAL_ID, response_event="soorma.goal.result", response_topic="action-results",
        tenant_id=TENANT, user_id=USER,
    ).model_dump(mode="json", exclude_none=True)


def three_states():
    return {
        "start": StateConfig(state_name="start", description="Initial state", default_next="research"),
        "research": StateConfig(
            state_name="research",
            action=StateAction(event_type="research.task", response_event="research.complete",
                               data={"query": "{{goal_data.topic}}", "max_results": 3, "label": "q={{goal_data.topic}}"}),
            transitions=[StateTransition(on_event="research.complete", to_state="complete")],
        ),
        "complete": StateConfig(state_name="complete", is_terminal=True),
    }


def build(platform: FakePlatform, *, plan_style: str = "create_from_goal"):
    planner = Planner("basic-planner", capabilities=["planning"], context=platform.context())
    worker = Worker("research-worker", events_consumed=["research.task"], context=platform.context())
    transitions = []

    @planner.on_goal("research.goal")
    async def handle_goal(goal: GoalContext, context):
        if plan_style == "create_from_goal":
            plan = await PlanContext.create_from_goal(goal, context, state_machine=three_states(),
                                                      current_state="start")
        else:  # soorma-core example 09: built by hand, plan record created, saved
            plan = PlanContext(plan_id="plan-fixed", goal_event=goal.event_type, goal_data=goal.data,
                               response_event=goal.response_event, correlation_id=goal.correlation_id,
                               state_machine=three_states(), current_state="start", status="pending", results={},
                               session_id=goal.session_id, user_id=goal.user_id, tenant_id=goal.tenant_id,
                               _context=context)
            await plan.save()
        await plan.execute_next()

    @planner.on_transition()
    async def handle_transition(event, context, plan, next_state):
        transitions.append((event.type, next_state))
        plan.current_state = next_state
        plan.results[event.type] = event.data
        if plan.is_complete():
            await plan.finalize(result={"summary": event.data["summary"]})
        else:
            await plan.execute_next(event)

    @worker.on_event("research.task", topic="action-requests")
    async def research(event, context):
        await context.bus.respond(event_type=event.response_event, data={"summary": f"found {event.data['query']}"},
                                  correlation_id=event.correlation_id, tenant_id=event.tenant_id,
                                  user_id=event.user_id)

    return planner, worker, transitions


@pytest.mark.parametrize("style", ["create_from_goal", "by_hand"])
def test_three_state_plan_answers_the_goal(style):
    platform = FakePlatform()
    planner, worker, transitions = build(platform, plan_style=style)
    assert deliver(planner, goal_event()) == {"batchItemFailures": []}
    [task] = platform.published_of("research.task")
    assert task["data"] == {"query": "agents", "max_results": 3, "label": "q=agents"}
    assert task["plan_id"] and task["goal_id"] == GOAL_ID and task["response_event"] == "research.complete"
    [saved] = platform.plan_contexts.values()
    assert saved["state"]["current_state"] == "research"
    assert task["correlation_id"] in saved["correlation_ids"]  # its result finds the plan
    assert deliver(worker, task) == {"batchItemFailures": []}
    [result] = platform.published_of("research.complete")
    assert deliver(planner, result) == {"batchItemFailures": []}
    assert transitions == [("research.complete", "complete")]
    [answer] = platform.published_of("soorma.goal.result")
    assert answer["correlation_id"] == GOAL_ID and answer["goal_id"] == GOAL_ID
    assert answer["data"] == {"plan_id": saved["plan_id"], "result": {"summary": "found agents"}}
    [saved] = platform.plan_contexts.values()
    assert saved["state"]["status"] == "completed"
    # the plan's own answer reaching the planner's catch-all is ignored
    assert deliver(planner, answer) == {"batchItemFailures": []}
    assert transitions == [("research.complete", "complete")]
    if style == "create_from_goal":
        [summary] = platform.plans.values()
        assert summary["status"] == "completed" and summary["plan_id"] == GOAL_ID


def test_goal_metadata_is_stored_like_soorma_core():
    platform = FakePlatform()
    planner, _, _ = build(platform)
    deliver(planner, goal_event())

    async def read():
        return await get_goal_metadata(platform.context(), GOAL_ID, tenant_id=TENANT, user_id=USER)

    import asyncio

    meta = asyncio.run(read())
    assert meta["response_event"] == "soorma.goal.result" and meta["goal_id"] == GOAL_ID


def test_results_of_no_plan_and_unknown_transitions_are_skipped():
    platform = FakePlatform()
    planner, worker, transitions = build(platform)
    stray = EventEnvelope(type="research.complete", topic="action-results", correlation_id="nobody",
                          tenant_id=TENANT, user_id=USER).model_dump(mode="json", exclude_none=True)
    assert deliver(planner, stray) == {"batchItemFailures": []}
    deliver(planner, goal_event())
    [task] = platform.published_of("research.task")
    other = EventEnvelope(type="something.else", topic="action-results", correlation_id=task["correlation_id"],
                          tenant_id=TENANT, user_id=USER).model_dump(mode="json", exclude_none=True)
    assert deliver(planner, other) == {"batchItemFailures": []}
    assert transitions == []


def test_redelivered_result_does_not_run_the_transition_twice():
    """A four-state plan: the second result is delivered twice (another environment, so no local cache)."""
    platform = FakePlatform()
    machine = three_states()
    machine["research"].transitions = [StateTransition(on_event="research.complete", to_state="summarize")]
    machine["summarize"] = StateConfig(
        state_name="summarize",
        action=StateAction(event_type="summarize.task", response_event="summarize.complete",
                           data={"text": "{{results.research.complete.summary}}"}),
        transitions=[StateTransition(on_event="summarize.complete", to_state="complete")],
    )
    runs = []

    def make_planner():
        planner = Planner("p4", context=platform.context())

        @planner.on_goal("research.goal")
        async def goal(goal, context):
            plan = await PlanContext.create_from_goal(goal, context, state_machine=machine, current_state="start")
            await plan.execute_next()

        @planner.on_transition()
        async def step(event, context, plan, next_state):
            runs.append(event.type)
            plan.results[event.type] = event.data
            if next_state == "complete":
                plan.current_state = next_state
                await plan.finalize({"text": event.data["text"]})
            else:
                await plan.execute_next(event)

        return planner

    first, second = make_planner(), make_planner()
    deliver(first, goal_event())
    [task] = platform.published_of("research.task")
    result = EventEnvelope(type="research.complete", topic="action-results", correlation_id=task["correlation_id"],
                           data={"summary": "S"}, tenant_id=TENANT, user_id=USER, goal_id=GOAL_ID
                           ).model_dump(mode="json", exclude_none=True)
    deliver(first, result)
    deliver(second, result)  # redelivered elsewhere: the plan already moved on
    assert runs == ["research.complete"]
    summarize = platform.published_of("summarize.task")
    assert len(summarize) == 2 and summarize[0]["id"] == summarize[1]["id"]  # re-sent with the same id (deduped)
    assert summarize[0]["data"] == {"text": "S"}
    done = EventEnvelope(type="summarize.complete", topic="action-results",
                         correlation_id=summarize[0]["correlation_id"], data={"text": "T"}, tenant_id=TENANT,
                         user_id=USER).model_dump(mode="json", exclude_none=True)
    deliver(second, done)
    [answer] = platform.published_of("soorma.goal.result")
    assert answer["data"]["result"] == {"text": "T"}


def test_pause_resume_and_fail():
    import asyncio

    platform = FakePlatform()
    ctx = platform.context()

    async def scenario():
        goal = GoalContext.from_event(EventEnvelope.model_validate(goal_event()), ctx)
        plan = await PlanContext.create_from_goal(goal, ctx, state_machine=three_states(), current_state="start")
        await plan.pause("approval needed")
        restored = await PlanContext.restore(plan.plan_id, ctx, tenant_id=TENANT, user_id=USER)
        assert restored.status == "paused" and restored.pause_reason == "approval needed"
        moved = await restored.resume({"approved": True})
        assert moved == "research" and restored.results["user_input"] == {"approved": True}
        again = await PlanContext.restore_by_correlation(GOAL_ID, ctx, tenant_id=TENANT, user_id=USER)
        assert again.status == "running" and again.current_state == "research"
        await again.fail("gave up")
        return again

    plan = asyncio.run(scenario())
    [answer] = platform.published_of("soorma.goal.result")
    assert answer["data"] == {"plan_id": plan.plan_id, "status": "failed", "error": "gave up"}


def test_stale_plan_save_conflicts():
    import asyncio

    from soorma.errors import ConflictError

    platform = FakePlatform()
    ctx = platform.context()

    async def scenario():
        goal = GoalContext.from_event(EventEnvelope.model_validate(goal_event()), ctx)
        await PlanContext.create_from_goal(goal, ctx, state_machine=three_states(), current_state="start")
        a = await PlanContext.restore(GOAL_ID, ctx, tenant_id=TENANT, user_id=USER)
        b = await PlanContext.restore(GOAL_ID, ctx, tenant_id=TENANT, user_id=USER)
        a.results["a"] = 1
        await a.save()
        b.results["b"] = 2
        with pytest.raises(ConflictError):
            await b.save()

    asyncio.run(scenario())
