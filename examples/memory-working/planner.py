"""A planner that runs a two-step workflow and keeps everything it knows in working memory (``WorkflowState``).

``on_goal`` stores the goal's request and whom to answer in the plan's state, records the action, and asks the
itinerary writer. The writer and the budget estimator (``worker.py``) read what they need from the **same** state
(the plan id travels on the request envelope) and write their results back into it; their answers carry no payload
but the plan id. When the budget is in, the planner reads the whole state and answers the goal.

Plan id = the goal's correlation id (the goal id for goals from ``POST /v1/goals``); each request has its own
correlation id, so the tracker lists both steps as tasks of the goal.
"""

from __future__ import annotations

from soorma import WorkflowState
from soorma.agents.planner import GoalContext, Planner
from soorma.context import PlatformContext
from soorma.events import EventEnvelope, EventTopic

planner = Planner(
    name="trip-planner",
    description="Plans a trip: an itinerary first, then its budget, sharing state through working memory",
    capabilities=["planning", "trip_planning"],
)


@planner.on_goal("trip.plan")
async def plan_trip(goal: GoalContext, context: PlatformContext) -> None:
    """Save the request in the plan's state and ask for an itinerary."""
    destination, days = goal.data.get("destination"), goal.data.get("days", 3)
    if not destination or not isinstance(days, int) or not 1 <= days <= 14:
        await goal.fail('trip.plan needs {"destination": "...", "days": 1..14}')
        return
    plan_id = goal.correlation_id
    state = WorkflowState(context.memory, plan_id)
    await state.set("request", {"destination": destination, "days": days})
    await state.set("reply_to", {"event": goal.response_event, "topic": goal.response_topic,
                                 "correlation_id": goal.correlation_id})
    await state.record_action("trip.plan")
    await state.record_action("itinerary.draft")  # before the request: its answer may come back at once
    await context.bus.request("itinerary.draft", {"plan_id": plan_id}, response_event="itinerary.drafted",
                              correlation_id=f"{plan_id}:itinerary", plan_id=plan_id)


@planner.on_event("itinerary.drafted", topic=EventTopic.ACTION_RESULTS)
async def itinerary_ready(event: EventEnvelope, context: PlatformContext) -> None:
    """The itinerary is in the state: ask for its budget."""
    plan_id = event.plan_id or event.data.get("plan_id")
    state = WorkflowState(context.memory, plan_id)
    await state.record_action("itinerary.drafted")
    await state.record_action("budget.estimate")
    await context.bus.request("budget.estimate", {"plan_id": plan_id}, response_event="budget.estimated",
                              correlation_id=f"{plan_id}:budget", plan_id=plan_id)


@planner.on_event("budget.estimated", topic=EventTopic.ACTION_RESULTS)
async def budget_ready(event: EventEnvelope, context: PlatformContext) -> None:
    """Everything is in the state: answer the goal from it."""
    plan_id = event.plan_id or event.data.get("plan_id")
    state = WorkflowState(context.memory, plan_id)
    await state.record_action("budget.estimated")
    reply_to = await state.get("reply_to")
    if not reply_to:
        return  # not a plan of ours (or its state was cleaned up)
    request = await state.get("request", {})
    await context.bus.respond(
        reply_to["event"],
        {
            "status": "completed",
            "plan_id": plan_id,
            "destination": request.get("destination"),
            "days": request.get("days"),
            "itinerary": await state.get("itinerary", []),
            "budget": await state.get("budget", {}),
            "steps_done": await state.get("steps_done", 0),
            "actions": await state.get_action_history(),
        },
        correlation_id=reply_to["correlation_id"],
        topic=reply_to.get("topic") or EventTopic.ACTION_RESULTS,
    )


if __name__ == "__main__":
    planner.run()
