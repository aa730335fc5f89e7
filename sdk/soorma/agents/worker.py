"""``Worker``: handles action requests as tasks (``on_task``) and the results of what it delegated (``on_result``)."""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING, Any, Callable, Mapping

from ..events import EventEnvelope, EventTopic
from ..task_context import (
    INPUT_ANSWERED_EVENT,
    INPUT_TIMEOUT_EVENT,
    InputAnswer,
    ResultContext,
    TaskContext,
)
from .base import CATCH_ALL, Agent, _maybe_await, chat_model_id

if TYPE_CHECKING:
    from ..context import PlatformContext

log = logging.getLogger("soorma.agent")

TaskHandler = Callable[[TaskContext, "PlatformContext"], Any]
ResultHandler = Callable[[ResultContext, "PlatformContext"], Any]
InputHandler = Callable[[TaskContext, InputAnswer, "PlatformContext"], Any]

ACTION_REQUESTS = EventTopic.ACTION_REQUESTS.value
ACTION_RESULTS = EventTopic.ACTION_RESULTS.value


class Worker(Agent):
    """A worker (reference §1.3): ``Worker(name, description="", version="0.1.0", capabilities=None,
    events_consumed=None, events_produced=None, **agent_kwargs)``.

    ``@worker.on_task(event_type)`` → ``async handler(task: TaskContext, context: PlatformContext)`` for action
    requests; ``@worker.on_result(event_type)`` → ``async handler(result: ResultContext, context)`` for action
    results. A request whose ``data["assigned_to"]`` names another agent is skipped (not an error).
    """

    agent_type = "worker"

    def __init__(
        self,
        name: str,
        description: str = "",
        version: str = "0.1.0",
        capabilities: list[Any] | None = None,
        events_consumed: list[Any] | None = None,
        events_produced: list[Any] | None = None,
        **agent_kwargs: Any,
    ) -> None:
        # soorma-core's positional order (capabilities 4th), which differs from Agent's (agent_type 4th).
        super().__init__(
            name,
            description,
            version,
            capabilities=capabilities,
            events_consumed=events_consumed,
            events_produced=events_produced,
            **agent_kwargs,
        )
        #: ``on_input`` handlers by the event type of the tasks whose requests they answer (``"*"``: any).
        self._input_handlers: dict[str, InputHandler] = {}

    def on_task(self, event_type: str, *, chat: bool | str = False) -> Callable[[TaskHandler], TaskHandler]:
        """Handle ``event_type`` on ``action-requests`` as a task; ``event_type`` also becomes a capability.

        ``chat``: make the task a chat entry of the OpenAI-compatible chat API (``POST /v1/chat/completions`` on the
        gateway): ``True`` for the model id ``event_type``, a string for another id (1-200 characters of
        ``[A-Za-z0-9._:-]``). A chat request becomes a task with data ``{"messages": [{"role", "content"}, ...],
        "text": <the last user message>}``, and the task's result's ``text``, ``answer`` or ``content`` (else its
        JSON) the assistant's message. Raises ``ValueError`` for a model id the registry would refuse."""
        self._checked(ACTION_REQUESTS, event_type)
        self._declare_chat(event_type, chat)

        def decorate(func: TaskHandler) -> TaskHandler:
            async def call(event: EventEnvelope, context: "PlatformContext") -> None:
                if not self._assigned_here(event):
                    return
                task = self._task_context(event, context)
                await _maybe_await(func(task, context))

            self._add_handler(ACTION_REQUESTS, event_type, call, func)
            self._add_capability(event_type)
            return func

        return decorate

    def on_result(self, event_type: str) -> Callable[[ResultHandler], ResultHandler]:
        """Handle ``event_type`` on ``action-results`` (typically the response to a delegated sub-task)."""
        self._checked(ACTION_RESULTS, event_type)

        def decorate(func: ResultHandler) -> ResultHandler:
            async def call(event: EventEnvelope, context: "PlatformContext") -> None:
                result = ResultContext.from_event(
                    event, context, register_produced_event=self._register_produced_event, agent_id=self.agent_id
                )
                await _maybe_await(func(result, context))

            self._add_handler(ACTION_RESULTS, event_type, call, func)
            return func

        return decorate

    def on_input(self, event_type: str = CATCH_ALL) -> Callable[[InputHandler], InputHandler]:
        """Handle the answers to input requests (:meth:`TaskContext.request_input`) made by this agent's tasks of
        ``event_type`` (default: of any type): ``async handler(task: TaskContext, answer: InputAnswer, context)``,
        with the requesting task restored from memory (a planner's goal comes back as a ``GoalContext``) and the
        request no longer in ``task.pending_inputs``; the handler goes on as after a delegation (``complete``,
        ``request_input`` again, ``delegate``, or ``save`` to wait for the other pending requests).

        A request that timed out arrives here too when it declared a default (``answer.timed_out``, ``answer.value``
        the default); without one the task is failed (its caller gets ``status: failed`` naming the request) and no
        handler runs. The platform delivers either the answer or the timeout of a request, never both; a redelivered
        answer finds the request no longer pending and is skipped."""
        if not self._input_handlers:
            for kind in (INPUT_ANSWERED_EVENT, INPUT_TIMEOUT_EVENT):
                self._add_handler(ACTION_RESULTS, kind, self._dispatch_input, self._dispatch_input)

        def decorate(func: InputHandler) -> InputHandler:
            self._input_handlers[event_type] = func
            return func

        return decorate

    async def _dispatch_input(self, event: EventEnvelope, context: "PlatformContext") -> None:
        """Route an answer (or a timeout) to the task that asked, if this agent asked (see :meth:`on_input`)."""
        data = event.data or {}
        request_id, task_id = data.get("request_id"), data.get("task_id")
        if data.get("agent") not in (None, self.agent_id, self.name) or not request_id or not task_id:
            return
        task = await TaskContext.restore(str(task_id), context, tenant_id=event.tenant_id, user_id=event.user_id,
                                         agent_id=self.agent_id, register_produced_event=self._register_produced_event)
        if task is None or request_id not in task.input_requests:
            log.debug("worker %s: input %s for task %s is no longer pending; skipped", self.name, request_id, task_id)
            return
        asked = task.input_requests.pop(str(request_id))
        timed_out = event.type == INPUT_TIMEOUT_EVENT
        if timed_out and not data.get("has_default"):
            await task.fail(f"input request {request_id} timed out after {asked.get('timeout_seconds')} s without "
                            "an answer")
            return
        handler = self._input_handlers.get(task.event_type) or self._input_handlers.get(CATCH_ALL)
        if handler is None:
            log.warning("worker %s: no on_input handler for tasks of %s; input %s not handled", self.name,
                        task.event_type, request_id)
            return
        answer = InputAnswer(request_id=str(request_id), value=data.get("answer"),
                             status="timed-out" if timed_out else "answered", prompt=asked.get("prompt") or "",
                             schema=asked.get("schema"))
        await _maybe_await(handler(task, answer, context))

    def _task_context(self, event: EventEnvelope, context: "PlatformContext") -> TaskContext:
        return TaskContext.from_event(
            event, context, agent_id=self.agent_id, register_produced_event=self._register_produced_event
        )

    def _declare_chat(self, event_type: str, chat: bool | str) -> None:
        model = chat_model_id(event_type, chat)
        if model is not None:
            self._chat_models[event_type] = model

    def _add_capability(self, name: str) -> None:
        # An AgentCapability whose consumed_event is this event already covers it (soorma-core does the same).
        if name not in self._capability_names() and name not in self._consumed_by_capabilities():
            self.capabilities.append(name)

    def _consumed_by_capabilities(self) -> set[str]:
        names = set()
        for cap in self.capabilities:
            if isinstance(cap, Mapping):
                consumed = cap.get("consumed_event") or cap.get("consumedEvent")
            else:
                consumed = getattr(cap, "consumed_event", None)
            if isinstance(consumed, str):
                names.add(consumed)
            elif isinstance(consumed, Mapping):
                names.add(str(consumed.get("event_name") or consumed.get("eventName") or ""))
            elif consumed is not None:
                names.add(str(getattr(consumed, "event_name", "") or ""))
        return names - {""}

    def _assigned_here(self, event: EventEnvelope) -> bool:
        assigned = (event.data or {}).get("assigned_to")
        if not assigned:
            return True
        if assigned in {self.name, self.agent_id, *self._capability_names()}:
            return True
        log.debug("worker %s: %s %s is assigned to %s, skipped", self.name, event.type, event.id, assigned)
        return False

    async def execute_task(
        self,
        task_name: str,
        data: Mapping[str, Any],
        plan_id: str | None = None,
        goal_id: str | None = None,
    ) -> int:
        """Run this worker's ``on_task(task_name)`` handlers in-process on a synthetic request (no bus).
        Returns how many handlers ran; raises ``KeyError`` if none handles ``task_name``."""
        event = EventEnvelope(
            type=task_name,
            topic=EventTopic.ACTION_REQUESTS,
            data=dict(data),
            correlation_id=str(uuid.uuid4()),
            plan_id=plan_id,
            goal_id=goal_id,
        )
        if not self.handlers_for(event):
            raise KeyError(f"worker {self.name!r} has no on_task handler for {task_name!r}")
        return await self.dispatch(event)
