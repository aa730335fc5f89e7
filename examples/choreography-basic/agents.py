"""A ``ChoreographyPlanner`` that chains three workers it finds in the registry: fetcher → analyzer → reporter.

``feedback.report.requested {"product"}`` ─▶ feedback-planner, which asks the LLM, at every step, which of the
discovered events to request next (or to complete the goal):

    feedback-planner ─ feedback.fetch.requested   ─▶ feedback-fetcher   (customer feedback entries)
    feedback-planner ─ feedback.analyze.requested ─▶ sentiment-analyzer (positive / negative / neutral counts)
    feedback-planner ─ report.generate.requested  ─▶ report-writer      (a short report)
    feedback-planner ─ COMPLETE ─▶ the goal's answer {"plan_id", "result": {...}}

Nothing in the planner names a worker or an event: the workers' registered definitions are what the LLM reads.
The planner stops a plan after ``max_actions`` decisions (the circuit breaker answers the goal with
``{"status": "stopped"}``) and refuses an event no deployed agent consumes (the goal fails; nothing is published).
"""

from __future__ import annotations

import logging
import os

from soorma import EventDefinition, PlanContext, Worker
from soorma.ai.choreography import ChoreographyPlanner, UndiscoveredEventError
from soorma.ai.llm import llm_configured

log = logging.getLogger("choreography-basic")

#: Decisions per plan before the circuit breaker stops it (a normal report takes four).
MAX_ACTIONS = 6


def platform_token() -> str | None:
    """The function's own platform key (``soorma local deploy`` / ``cdk deploy`` put it in ``SOORMA_API_KEY``).
    Passed as ``auth_token_provider`` (as soorma-core's examples do): it authenticates the planner's platform calls
    and is never sent to the LLM."""
    return os.environ.get("SOORMA_API_KEY")


planner = ChoreographyPlanner(
    "feedback-planner",
    max_actions=MAX_ACTIONS,
    temperature=0.0,
    system_instructions=(
        "You orchestrate a customer-feedback report. Work out from the available events which one to request "
        "next: first gather the product's feedback, then analyse its sentiment, then have a report written, "
        "then COMPLETE with the report. Pass each step the data it needs from the results so far."
    ),
    description="Builds customer-feedback reports by chaining whichever workers the registry offers.",
    auth_token_provider=platform_token,
)


async def decide(trigger: str, context, plan: PlanContext, event=None) -> None:
    """One step of the plan: ask the LLM, carry out its decision; an undiscovered event fails the goal."""
    try:
        decision = await planner.reason_next_action(
            trigger, context, plan_id=plan.plan_id,
            custom_context={"goal": plan.goal_data, "results": plan.results},
        )
    except UndiscoveredEventError as exc:
        log.warning("plan %s: %s", plan.plan_id, exc)
        await plan.fail(f"rejected: {exc}")
        return
    await planner.execute_decision(decision, context, goal_event=event, plan=plan)


@planner.on_goal("feedback.report.requested")
async def start(goal, context):
    """A new goal: create its plan, then take the first step."""
    plan = await PlanContext.create_from_goal(goal, context, state_machine={}, current_state="reasoning",
                                              status="running")
    if not llm_configured():
        await plan.fail("no LLM configured: set SOORMA_LLM_BASE_URL (and SOORMA_LLM_API_KEY, SOORMA_LLM_MODEL)")
        return
    await decide(f"New goal feedback.report.requested: {goal.data}", context, plan, goal)


@planner.on_transition()
async def step(event, context, plan, next_state):
    """A worker answered one of the plan's requests: keep its result, take the next step."""
    plan.results[event.type] = (event.data or {}).get("result", event.data)
    await decide(f"Result {event.type} arrived", context, plan, event)


# --- the workers (each registers a described event with a payload schema) ---------------------------------------

FETCH = EventDefinition(
    event_name="feedback.fetch.requested",
    description="Fetch the customer feedback entries recorded for a product",
    payload_schema={"type": "object", "properties": {"product": {"type": "string"}}, "required": ["product"]},
)
ANALYZE = EventDefinition(
    event_name="feedback.analyze.requested",
    description="Count positive, negative and neutral feedback entries",
    payload_schema={"type": "object", "properties": {"entries": {"type": "array", "items": {"type": "string"}}},
                    "required": ["entries"]},
)
REPORT = EventDefinition(
    event_name="report.generate.requested",
    description="Write a short report from a product's sentiment counts",
    payload_schema={"type": "object", "properties": {"product": {"type": "string"},
                                                     "sentiment": {"type": "object"}},
                    "required": ["product", "sentiment"]},
)

fetcher = Worker("feedback-fetcher", description="Reads customer feedback.", events_consumed=[FETCH])
analyzer = Worker("sentiment-analyzer", description="Scores feedback sentiment.", events_consumed=[ANALYZE])
reporter = Worker("report-writer", description="Writes feedback reports.", events_consumed=[REPORT])

FEEDBACK = [
    "Love the new dashboard, it is fast",
    "The export is broken and support was slow",
    "Great value for the price",
    "It works",
    "Terrible onboarding, I nearly gave up",
]
POSITIVE = ("love", "great", "fast", "excellent")
NEGATIVE = ("broken", "slow", "terrible", "bad")


@fetcher.on_task("feedback.fetch.requested")
async def fetch(task, context):
    """The product's feedback entries (a fixed sample here; a datastore in real life)."""
    product = task.data["product"]
    await task.complete({"product": product, "entries": [f"{product}: {text}" for text in FEEDBACK]})


@analyzer.on_task("feedback.analyze.requested")
async def analyze(task, context):
    """Keyword sentiment counts."""
    counts = {"positive": 0, "negative": 0, "neutral": 0}
    for entry in task.data.get("entries") or []:
        text = str(entry).lower()
        if any(word in text for word in NEGATIVE):
            counts["negative"] += 1
        elif any(word in text for word in POSITIVE):
            counts["positive"] += 1
        else:
            counts["neutral"] += 1
    await task.complete({"sentiment": counts, "total": sum(counts.values())})


@reporter.on_task("report.generate.requested")
async def report(task, context):
    """A one-paragraph report."""
    product, sentiment = task.data["product"], task.data["sentiment"]
    verdict = "mostly positive" if sentiment.get("positive", 0) > sentiment.get("negative", 0) else "mixed"
    await task.complete({
        "product": product,
        "report": f"{product}: {sentiment.get('positive', 0)} positive, {sentiment.get('negative', 0)} negative, "
                  f"{sentiment.get('neutral', 0)} neutral; feedback is {verdict}.",
    })
