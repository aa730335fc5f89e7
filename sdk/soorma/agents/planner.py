"""``Planner``: receives goals (``on_goal``), moves plans on result events (``on_transition``) and, being a
``Worker``, also handles tasks and the results of the work it hands out."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping

from ..clients.memory import goal_metadata_key  # the key format lives with the client that reads it
from ..errors import PlatformError
from ..events import EventEnvelope, EventTopic
from ..task_context import INPUT_ANSWERED_EVENT, INPUT_TIMEOUT_EVENT, GoalContext
from .base import CATCH_ALL, _maybe_await
from .worker import Worker

if TYPE_CHECKING:
    from ..context import PlatformContext
    from ..plan_context import PlanContext

log = logging.getLogger("soorma.agent")

GoalHandler = Callable[[GoalContext, "PlatformContext"], Any]
TransitionHandler = Callable[[EventEnvelope, "PlatformContext", "PlanContext", "str | None"], Any]

ACTION_REQUESTS = EventTopic.ACTION_REQUESTS.value
ACTION_RESULTS = EventTopic.ACTION_RESULTS.value


async def get_goal_metadata(
    context: "PlatformContext", correlation_id: str, tenant_id: str | None = None, user_id: str | None = None
) -> dict[str, Any] | None:
    """The routing metadata ``on_goal`` stored for the goal with ``correlation_id`` (``event_type``,
    ``response_event``, ``response_topic``, ``correlation_id``, ``goal_id``, ``session_id``, ``tenant_id``,
    ``user_id``, ``response_schema_name``), or ``None``. soorma-core's ``memory.get_goal_metadata``."""
    value = await context.memory.retrieve(goal_metadata_key(correlation_id), plan_id=correlation_id,
                                          tenant_id=tenant_id, user_id=user_id)
    return value if isinstance(value, dict) else None


class Planner(Worker):
    """A planner (reference §1.6): ``Planner(name, description="", version="0.1.0", capabilities=None
    (default ["planning"]), **agent_kwargs)``; ``store_goal_metadata=True`` (keyword) keeps soorma-core's habit of
    storing each goal's routing metadata in working memory (read it with :func:`get_goal_metadata`).

    ``@planner.on_goal(goal_type)`` → ``async handler(goal: GoalContext, context)``. A :class:`GoalContext` is a
    :class:`TaskContext`: ``save()``, ``delegate(...)`` (results come back to ``@planner.on_result``, where
    ``await result.restore_task()`` returns the goal), ``dispatch(...)`` (fire a request with the goal's correlation
    id) and finally ``complete(result)``, which answers the goal's ``response_event`` (``soorma.goal.result`` for
    goals from ``POST /v1/goals``) with the goal's correlation id.

    ``@planner.on_transition()`` → ``async handler(event, context, plan: PlanContext, next_state: str | None)`` for
    result events (``action-results``) that belong to a saved :class:`~soorma.plan_context.PlanContext` (found by
    the event's correlation id), called when the plan's current state has a transition for the event. Events of no
    plan, of finished (``completed``/``failed``) plans, and the plan's own answer are skipped. A result event
    delivered again after it already moved its plan re-sends the action it triggered (same event id) instead of
    running the handler twice.
    """

    agent_type = "planner"
    #: ``on_transition`` skips events for which the plan's state machine has no transition.
    transitions_need_state = True

    def __init__(self, name: str, description: str = "", version: str = "0.1.0",
                 capabilities: list[Any] | None = None, *, store_goal_metadata: bool = True,
                 **agent_kwargs: Any) -> None:
        super().__init__(name, description, version, capabilities=capabilities or ["planning"], **agent_kwargs)
        self.store_goal_metadata = store_goal_metadata

    def on_goal(self, goal_type: str, *, chat: bool | str = False) -> Callable[[GoalHandler], GoalHandler]:
        """Handle goals of ``goal_type`` (action requests of that type).

        ``chat``: make the goal type a chat entry of the OpenAI-compatible chat API (``POST /v1/chat/completions`` on
        the gateway): ``True`` for the model id ``goal_type``, a string for another id (1-200 characters of
        ``[A-Za-z0-9._:-]``). A chat request becomes a goal with data ``{"messages": [{"role", "content"}, ...],
        "text": <the last user message>}``, and the goal's result's ``text``, ``answer`` or ``content`` (else its
        JSON) the assistant's message. Raises ``ValueError`` for a model id the registry would refuse."""
        self._checked(ACTION_REQUESTS, goal_type)
        self._declare_chat(goal_type, chat)

        def decorate(func: GoalHandler) -> GoalHandler:
            async def call(event: EventEnvelope, context: "PlatformContext") -> None:
                goal = GoalContext.from_event(
                    event, context, agent_id=self.agent_id, register_produced_event=self._register_produced_event
                )
                if self.store_goal_metadata and goal.correlation_id:
                    await self._store_goal_metadata(goal, goal.correlation_id, context)
                await _maybe_await(func(goal, context))

            self._add_handler(ACTION_REQUESTS, goal_type, call, func)
            self._add_capability(goal_type)
            return func

        return decorate

    async def create_plan(
        self, goal_type: str, goal_data: Mapping[str, Any], correlation_id: str | None = None
    ) -> "Plan":
        """soorma-core's way to start a goal without the bus: run this planner's ``on_goal(goal_type)`` handler
        in-process on a synthetic goal request (as :meth:`Worker.execute_task` does for tasks), with the platform
        context of the agent. What the handler does (save a plan, delegate, publish) goes to the platform as in any
        handler; an answer goes to the request's ``response_event``, which a synthetic goal does not have, so the
        handler's ``goal.complete`` raises unless it dispatches work instead.

        Parameters
        ----------
        goal_type:
            The goal's event type.
        goal_data:
            Its data.
        correlation_id:
            The goal's correlation id (default: a new UUID); also the returned plan's id.

        Returns
        -------
        Plan
            soorma-core's record of the goal (``plan.goal``: the :class:`Goal` with ``goal_id`` = the request's
            event id), ``status="running"`` and ``metadata["handlers_run"]``.

        Raises
        ------
        ValueError
            No ``on_goal`` handler for ``goal_type`` (soorma-core's error).
        """
        correlation = correlation_id or str(uuid.uuid4())
        event = EventEnvelope(type=goal_type, topic=EventTopic.ACTION_REQUESTS, data=dict(goal_data),
                              correlation_id=correlation)
        if not self.handlers_for(event):
            raise ValueError(f"No handler for goal type: {goal_type}")
        handlers_run = await self.dispatch(event)
        goal = Goal(goal_type=goal_type, data=dict(goal_data), goal_id=event.id, correlation_id=correlation)
        return Plan(goal=goal, plan_id=correlation, status="running", metadata={"handlers_run": handlers_run})

    async def _store_goal_metadata(self, goal: GoalContext, correlation_id: str, context: "PlatformContext") -> None:
        metadata = {
            "event_type": goal.event_type,
            "response_event": goal.response_event,
            "response_topic": goal.response_topic,
            "correlation_id": goal.correlation_id,
            "goal_id": goal.goal_id,
            "session_id": goal.session_id,
            "tenant_id": goal.tenant_id,
            "user_id": goal.user_id,
            "response_schema_name": goal.response_schema_name,
        }
        try:
            await context.memory.store(goal_metadata_key(correlation_id), metadata, plan_id=correlation_id,
                                       tenant_id=goal.tenant_id, user_id=goal.user_id)
        except PlatformError as exc:  # routing metadata is a convenience; the goal itself must not fail on it
            log.warning("goal %s: routing metadata not stored: %s", goal.correlation_id, exc)

    def on_transition(self) -> Callable[[TransitionHandler], TransitionHandler]:
        """Handle result events that move a saved plan (see the class docstring). Subscribes to every event type on
        ``action-results``."""

        def decorate(func: TransitionHandler) -> TransitionHandler:
            async def call(event: EventEnvelope, context: "PlatformContext") -> None:
                from ..plan_context import FINAL_STATUSES, PlanContext

                if not event.correlation_id:
                    return
                plan = await PlanContext.restore_by_correlation(
                    event.correlation_id, context, tenant_id=event.tenant_id, user_id=event.user_id
                )
                if plan is None:
                    return
                if plan.status in FINAL_STATUSES:
                    log.debug("plan %s is %s; %s ignored", plan.plan_id, plan.status, event.type)
                    return
                if event.type == plan.response_event and event.correlation_id == plan.correlation_id:
                    return  # the plan's own answer to its goal
                if plan.last_trigger_id == event.id:
                    # Delivered again after it already moved the plan: make sure its action went out, once.
                    await plan.resend_last_action()
                    return
                if event.type in (INPUT_ANSWERED_EVENT, INPUT_TIMEOUT_EVENT):
                    if not await self._take_input(plan, event):
                        return
                next_state = self._next_state(plan, event)
                if next_state is None and self.transitions_need_state and event.type in (INPUT_ANSWERED_EVENT,
                                                                                         INPUT_TIMEOUT_EVENT):
                    await plan.save()  # the answer is taken (results["user_input"]) even when nothing moves
                    return
                if next_state is None and self.transitions_need_state:
                    log.debug("plan %s in %s has no transition on %s", plan.plan_id, plan.current_state, event.type)
                    return
                await _maybe_await(func(event, context, plan, next_state))

            self._add_handler(ACTION_RESULTS, CATCH_ALL, call, func)
            return func

        return decorate

    def _next_state(self, plan: "PlanContext", event: EventEnvelope) -> str | None:
        return plan.get_next_state(event)

    @staticmethod
    async def _take_input(plan: "PlanContext", event: EventEnvelope) -> bool:
        """Apply an answer (or timeout) of one of the plan's own input requests (``PlanContext.request_input``):
        the request is no longer pending, ``results["user_input"]`` holds the answer (the default after a timeout
        that declared one) and the plan runs again once nothing is pending. A timeout without a default fails the
        plan (and answers its goal ``failed``). Returns whether the plan's transition handler should run; answers to
        other tasks' requests (a worker's task sharing the correlation id) and redeliveries are skipped."""
        data = event.data or {}
        request_id = str(data.get("request_id") or "")
        if data.get("task_id") != plan.plan_id or request_id not in plan.input_requests:
            return False
        asked = plan.input_requests.pop(request_id)
        if event.type == INPUT_TIMEOUT_EVENT and not data.get("has_default"):
            await plan.fail(f"input request {request_id} timed out after {asked.get('timeout_seconds')} s without "
                            "an answer")
            return False
        plan.results["user_input"] = data.get("answer")
        if not plan.input_requests and plan.status == "paused":
            plan.status, plan.pause_reason = "running", None
        return True


# --- soorma-core's legacy planning data classes (Planner.create_plan returns a Plan; no other platform behaviour) ---


@dataclass
class Goal:
    goal_type: str
    data: dict[str, Any] = field(default_factory=dict)
    goal_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    correlation_id: str | None = None
    session_id: str | None = None
    tenant_id: str | None = None


@dataclass
class Task:
    name: str
    assigned_to: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    depends_on: list[str] = field(default_factory=list)
    timeout: float | None = None
    priority: int = 0
    task_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    status: str = "pending"
    result: Any = None
    error: str | None = None


@dataclass
class Plan:
    goal: Goal
    tasks: list[Task] = field(default_factory=list)
    plan_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    metadata: dict[str, Any] = field(default_factory=dict)
    status: str = "pending"


__all__ = ["Goal", "GoalContext", "Plan", "Planner", "Task", "get_goal_metadata", "goal_metadata_key"]
