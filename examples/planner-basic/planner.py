"""A planner that runs a three-state plan: ``start`` → ``search`` → ``complete``.

``on_goal`` creates a :class:`PlanContext` from the goal (saved in memory, plan id = the goal's correlation id)
and moves it on: ``start`` has no action, so the plan passes on to ``search``, whose action requests
``papers.search`` with the goal's topic. ``on_transition`` receives the ``papers.found`` result (found by its
correlation id, which the plan recorded), moves to ``complete`` (terminal) and finalizes: the goal is answered with
``{"plan_id", "result"}``.
"""

from __future__ import annotations

from soorma.agents.planner import GoalContext, Planner
from soorma.context import PlatformContext
from soorma.events import EventEnvelope
from soorma.plan_context import PlanContext
from soorma.state import StateAction, StateConfig, StateTransition

planner = Planner(
    name="review-planner",
    description="Plans a literature review: search papers on a topic, then summarize",
    capabilities=["planning", "literature_review"],
)


def review_states() -> dict[str, StateConfig]:
    return {
        "start": StateConfig(state_name="start", description="Initial state", default_next="search"),
        "search": StateConfig(
            state_name="search",
            description="Search papers on the goal's topic and wait for them",
            action=StateAction(
                event_type="papers.search",
                response_event="papers.found",
                data={"query": "{{goal_data.topic}}", "max_results": "{{goal_data.max_results}}"},
            ),
            transitions=[StateTransition(on_event="papers.found", to_state="complete")],
        ),
        "complete": StateConfig(state_name="complete", description="Terminal state", is_terminal=True),
    }


@planner.on_goal("review.goal")
async def handle_review_goal(goal: GoalContext, context: PlatformContext) -> None:
    if not goal.data.get("topic"):
        await goal.fail('review.goal needs {"topic": "..."}')
        return
    goal.data.setdefault("max_results", 3)
    plan = await PlanContext.create_from_goal(goal, context, state_machine=review_states(), current_state="start")
    await plan.execute_next()  # start → search: requests papers.search


@planner.on_transition()
async def handle_transition(event: EventEnvelope, context: PlatformContext, plan: PlanContext,
                            next_state: str | None) -> None:
    plan.current_state = next_state
    plan.results[event.type] = event.data
    if plan.is_complete():
        found = event.data or {}
        await plan.finalize(result={
            "topic": plan.goal_data.get("topic"),
            "summary": found.get("summary", ""),
            "papers_found": found.get("papers_found", 0),
            "papers": found.get("papers", []),
            "states": ["start", "search", "complete"],
        })
    else:
        await plan.execute_next(event)


if __name__ == "__main__":
    planner.run()
