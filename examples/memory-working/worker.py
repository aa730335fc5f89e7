"""The two workers of the trip plan. Each request carries only the plan id: the workers read their input from the
plan's ``WorkflowState`` and write their output into it (``set``, the atomic ``update_dict`` and ``increment``),
then answer with ``context.bus.respond``."""

from __future__ import annotations

from soorma import Worker, WorkflowState
from soorma.context import PlatformContext
from soorma.events import EventEnvelope, EventTopic

SIGHTS = ["old town walk", "museum day", "market and food tour", "day trip", "harbour and parks", "free day"]
DAILY_COST = {"lodging": 90, "food": 40, "activities": 25}

itinerary_writer = Worker(name="itinerary-writer", description="Drafts a day-by-day itinerary")
budget_estimator = Worker(name="budget-estimator", description="Estimates the budget of an itinerary")


@itinerary_writer.on_event("itinerary.draft", topic=EventTopic.ACTION_REQUESTS)
async def draft(event: EventEnvelope, context: PlatformContext) -> None:
    """Read the request from the plan's state, write the itinerary into it."""
    plan_id = event.plan_id or event.data["plan_id"]
    state = WorkflowState(context.memory, plan_id)
    request = await state.get("request", {})
    destination, days = request.get("destination", "somewhere"), int(request.get("days", 1))
    itinerary = [f"day {d + 1}: {SIGHTS[d % len(SIGHTS)]} in {destination}" for d in range(days)]
    await state.set("itinerary", itinerary)
    await state.increment("steps_done")
    await context.bus.respond(event.response_event or "itinerary.drafted", {"plan_id": plan_id},
                              correlation_id=event.correlation_id)


@budget_estimator.on_event("budget.estimate", topic=EventTopic.ACTION_REQUESTS)
async def estimate(event: EventEnvelope, context: PlatformContext) -> None:
    """Read the itinerary from the plan's state, merge the budget into it."""
    plan_id = event.plan_id or event.data["plan_id"]
    state = WorkflowState(context.memory, plan_id)
    days = len(await state.get("itinerary", []))
    budget = {item: cost * days for item, cost in DAILY_COST.items()}
    await state.update_dict("budget", {**budget, "total": sum(budget.values()), "currency": "EUR"})
    await state.increment("steps_done")
    await context.bus.respond(event.response_event or "budget.estimated", {"plan_id": plan_id},
                              correlation_id=event.correlation_id)


if __name__ == "__main__":  # run one as a local process: python worker.py [itinerary|budget]
    import sys

    {"itinerary": itinerary_writer, "budget": budget_estimator}[(sys.argv[1:] or ["itinerary"])[0]].run()
