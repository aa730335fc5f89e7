"""``Planner``: receives goals (``on_goal``) and, being a ``Worker``, the results of the work it hands out."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from ..events import EventEnvelope, EventTopic
from ..task_context import GoalContext
from .base import _maybe_await
from .worker import Worker

if TYPE_CHECKING:
    from ..context import PlatformContext

GoalHandler = Callable[[GoalContext, "PlatformContext"], Any]

ACTION_REQUESTS = EventTopic.ACTION_REQUESTS.value


class Planner(Worker):
    """A planner (reference §1.6): ``Planner(name, description="", version="0.1.0", capabilities=None
    (default ["planning"]), **agent_kwargs)``.

    ``@planner.on_goal(goal_type)`` → ``async handler(goal: GoalContext, context)``. A :class:`GoalContext` is a
    :class:`TaskContext`: ``await goal.save()``, ``await goal.delegate(...)`` (results come back to
    ``@planner.on_result``, where ``await result.restore_task()`` returns the goal) and finally
    ``await goal.complete(result)``, which answers the goal's ``response_event`` (``soorma.goal.result`` for goals
    from ``POST /v1/goals``) with the goal's correlation id.
    """

    agent_type = "planner"

    def __init__(self, name: str, description: str = "", version: str = "0.1.0",
                 capabilities: list[Any] | None = None, **agent_kwargs: Any) -> None:
        super().__init__(name, description, version, capabilities=capabilities or ["planning"], **agent_kwargs)

    def on_goal(self, goal_type: str) -> Callable[[GoalHandler], GoalHandler]:
        """Handle goals of ``goal_type`` (action requests of that type)."""
        self._checked(ACTION_REQUESTS, goal_type)

        def decorate(func: GoalHandler) -> GoalHandler:
            async def call(event: EventEnvelope, context: "PlatformContext") -> None:
                goal = GoalContext.from_event(
                    event, context, agent_id=self.agent_id, register_produced_event=self._register_produced_event
                )
                await _maybe_await(func(goal, context))

            self._add_handler(ACTION_REQUESTS, goal_type, call, func)
            self._add_capability(goal_type)
            return func

        return decorate
