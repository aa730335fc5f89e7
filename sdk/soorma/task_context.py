"""Task contexts: a worker's state across delegations, and the contexts handlers receive.

A worker that delegates does not wait: it saves its :class:`TaskContext` to memory (``/v1/memory/task-context``),
publishes the sub-request with ``correlation_id = sub_task_id`` and returns. The result arrives later, possibly in
another execution environment, at an ``on_result`` handler; :meth:`ResultContext.restore_task` finds the saved
context by that sub-task id, and :meth:`TaskContext.complete` answers the original caller.

Unlike soorma-core, the caller's ``correlation_id`` (and ``session_id``, ``goal_id``, ``trace_id``, identity) are
saved with the context and restored, so the final response still carries the caller's correlation id after any
number of delegations.
"""

from __future__ import annotations

import inspect
import logging
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping, Self

from ._current import current_event, defer, derived_id
from .errors import PlatformError, TaskNotFoundError
from .events import PROGRESS_EVENT, EventEnvelope, EventTopic

if TYPE_CHECKING:
    from .context import PlatformContext
    from .models import TaskContextRecord

log = logging.getLogger("soorma.tasks")

ACTION_RESULTS = EventTopic.ACTION_RESULTS.value
#: Human input (docs/architecture.md "Human input"): an agent asks (``task-events``), the platform answers the task
#: (``action-results``, the task's correlation id) with the person's answer or, when the request timed out, with
#: the declared default (``data.has_default``) or nothing (the task is then failed).
INPUT_REQUESTED_EVENT = "soorma.input.requested"
INPUT_ANSWERED_EVENT = "soorma.input.answered"
INPUT_TIMEOUT_EVENT = "soorma.input.timeout"

# Keys inside the saved ``state`` for what the record has no column of its own for. They are stripped again on
# restore, so handlers only ever see their own state.
_SUB_TASKS_KEY = "_sub_tasks"
_INPUTS_KEY = "_input_requests"
_META_KEY = "_soorma"
_META_FIELDS = ("correlation_id", "session_id", "goal_id", "trace_id", "tenant_id", "user_id", "task_name",
                "timeout", "priority")

# The identity and workflow ids every context carries and every event it sends passes on.
_PROPAGATED_IDS = ("tenant_id", "user_id", "session_id", "goal_id", "plan_id", "trace_id")


def _propagated_ids(source: object, **overrides: Any) -> dict[str, Any]:
    """``{name: source.<name>}`` for each of :data:`_PROPAGATED_IDS` (``source`` an event or a context), with
    ``overrides`` replacing some of them."""
    return {**{name: getattr(source, name) for name in _PROPAGATED_IDS}, **overrides}


def _int(value: Any) -> int:
    # A sender's odd "priority" must not make an otherwise good request fail (and be retried until dead-lettered).
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


class _NoDefault:
    def __repr__(self) -> str:
        return "NO_DEFAULT"


#: ``request_input(default=...)`` left out: a timeout fails the task (``None`` is a default like any other).
NO_DEFAULT: Any = _NoDefault()


def _check_schema(schema: Mapping[str, Any]) -> None:
    """Raise ``ValueError`` when ``schema`` is no valid JSON Schema (checked with ``jsonschema`` when installed; the
    platform checks answers against it either way)."""
    if not isinstance(schema, Mapping):
        raise ValueError(f"schema must be a JSON Schema object, not {type(schema).__name__}")
    try:
        from jsonschema import exceptions, validators
    except ImportError:
        return
    try:
        validators.validator_for(dict(schema)).check_schema(dict(schema))
    except exceptions.SchemaError as exc:
        raise ValueError(f"not a valid JSON Schema: {exc.message}") from None


@dataclass
class InputAnswer:
    """The outcome of an input request at ``on_input``: ``request_id``, ``value`` (the answer; the declared default
    when the request timed out), ``status`` (``answered`` or ``timed-out``), ``prompt`` and ``schema`` as asked."""

    request_id: str
    value: Any
    status: str = "answered"
    prompt: str = ""
    schema: dict[str, Any] | None = None

    @property
    def timed_out(self) -> bool:
        return self.status == "timed-out"


@dataclass
class SubTaskInfo:
    """One delegated sub-task: its id (= the request's ``correlation_id``), request and response event types,
    ``status`` (``pending | completed | failed``), optional parallel group, and its result once known."""

    sub_task_id: str
    event_type: str
    response_event: str
    status: str = "pending"
    parallel_group_id: str | None = None
    result: Any = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> "SubTaskInfo":
        return cls(
            sub_task_id=raw["sub_task_id"],
            event_type=raw.get("event_type", ""),
            response_event=raw.get("response_event", ""),
            status=raw.get("status", "pending"),
            parallel_group_id=raw.get("parallel_group_id"),
            result=raw.get("result"),
            error=raw.get("error"),
        )


@dataclass
class DelegationSpec:
    """One sub-task of :meth:`TaskContext.delegate_parallel`."""

    event_type: str
    data: dict[str, Any]
    response_event: str
    response_topic: str = ACTION_RESULTS


@dataclass
class TaskContext:
    """An action request being worked on (reference §1.4), plus ``trace_id``.

    Fields: ``task_id`` (``data["task_id"]`` or the request event's id), ``event_type``, ``plan_id``, ``data``,
    ``response_event``/``response_topic`` (where :meth:`complete` answers), ``sub_tasks`` (id → :class:`SubTaskInfo`),
    ``state`` (yours, persisted by :meth:`save`), identity ``tenant_id``/``user_id``, ``agent_id``, ``task_name``,
    ``correlation_id`` (the caller's), ``session_id``, ``goal_id``, ``trace_id``, ``timeout``, ``priority``.
    """

    task_id: str
    event_type: str
    plan_id: str | None
    data: dict[str, Any]
    response_event: str | None
    response_topic: str = ACTION_RESULTS
    sub_tasks: dict[str, SubTaskInfo] = field(default_factory=dict)
    state: dict[str, Any] = field(default_factory=dict)
    tenant_id: str | None = None
    user_id: str | None = None
    agent_id: str | None = None
    task_name: str | None = None
    correlation_id: str | None = None
    session_id: str | None = None
    goal_id: str | None = None
    timeout: float | None = None
    priority: int = 0
    trace_id: str | None = None
    input_requests: dict[str, dict[str, Any]] = field(default_factory=dict)

    _context: "PlatformContext | None" = field(default=None, repr=False, compare=False)
    _register_produced_event: Callable[[str], None] | None = field(default=None, repr=False, compare=False)
    _persisted: bool = field(default=False, repr=False, compare=False)
    _version: int | None = field(default=None, repr=False, compare=False)

    _kind = "task"  # saved in the record, so a planner's restored goal comes back as a GoalContext

    # --- construction ------------------------------------------------------------------------------------------
    @classmethod
    def from_event(
        cls,
        event: EventEnvelope,
        context: "PlatformContext",
        agent_id: str | None = None,
        register_produced_event: Callable[[str], None] | None = None,
    ) -> Self:
        """The context of an incoming action request. ``task_id`` defaults to the event id (not a random id), so a
        retried delivery saves over the same record instead of leaving an orphan."""
        data = dict(event.data or {})
        return cls(
            task_id=str(data.get("task_id") or cls._default_task_id(event)),
            event_type=event.type,
            plan_id=event.plan_id or data.get("plan_id"),
            data=data,
            response_event=event.response_event or data.get("response_event"),
            response_topic=event.response_topic or data.get("response_topic") or ACTION_RESULTS,
            tenant_id=event.tenant_id,
            user_id=event.user_id,
            agent_id=agent_id,
            task_name=data.get("task_name"),
            correlation_id=event.correlation_id,
            session_id=event.session_id,
            goal_id=event.goal_id or data.get("goal_id"),
            timeout=data.get("timeout"),
            priority=_int(data.get("priority")),
            trace_id=event.trace_id or event.id,
            _context=context,
            _register_produced_event=register_produced_event,
            **cls._own_fields_from_event(event),
        )

    @classmethod
    def _default_task_id(cls, event: EventEnvelope) -> str:
        return event.id

    @classmethod
    def _own_fields_from_event(cls, event: EventEnvelope) -> dict[str, Any]:
        """What a subclass adds to :meth:`from_event` from its own fields (none here)."""
        return {}

    @classmethod
    def from_record(
        cls,
        record: "TaskContextRecord",
        context: "PlatformContext",
        agent_id: str | None = None,
        register_produced_event: Callable[[str], None] | None = None,
    ) -> "TaskContext":
        """Rebuild a saved context (a :class:`~soorma.models.TaskContextRecord`). Returns a :class:`GoalContext`
        when the saved task was a goal. Columns win over the copies kept in ``state``."""
        state = dict(record.state or {})
        raw_subs = state.pop(_SUB_TASKS_KEY, None) or {}
        inputs = state.pop(_INPUTS_KEY, None) or {}
        meta = state.pop(_META_KEY, None) or {}
        target = GoalContext if meta.get("kind") == "goal" and cls is TaskContext else cls
        event = current_event()
        return target(
            task_id=record.task_id,
            event_type=record.event_type,
            plan_id=record.plan_id,
            data=dict(record.data or {}),
            response_event=record.response_event,
            response_topic=record.response_topic or ACTION_RESULTS,
            sub_tasks={k: SubTaskInfo.from_dict(v) for k, v in raw_subs.items()},
            state=state,
            tenant_id=meta.get("tenant_id") or (event.tenant_id if event else None),
            user_id=meta.get("user_id") or (event.user_id if event else None),
            agent_id=agent_id,
            task_name=meta.get("task_name"),
            correlation_id=record.correlation_id or meta.get("correlation_id"),
            session_id=record.session_id or meta.get("session_id"),
            goal_id=record.goal_id or meta.get("goal_id"),
            timeout=meta.get("timeout"),
            priority=_int(meta.get("priority")),
            trace_id=record.trace_id or meta.get("trace_id"),
            input_requests=dict(inputs),
            _context=context,
            _register_produced_event=register_produced_event,
            _persisted=True,
            _version=record.version,
        )

    from_memory = from_record  # soorma-core's name

    # --- persistence -------------------------------------------------------------------------------------------
    def _ctx(self) -> "PlatformContext":
        if self._context is None:
            raise RuntimeError(f"{type(self).__name__} {self.task_id} has no PlatformContext")
        return self._context

    async def save(self) -> None:
        """Upsert this context to memory (``POST /v1/memory/task-context``).

        Optimistic concurrency: a context that was read from memory (restored) or saved before is written only if
        the stored record still has the version this object last saw. If another writer got there first (two
        parallel results at once) this raises :class:`~soorma.errors.ConflictError`; inside a handler the agent
        then re-runs the handler, which restores the fresh record and re-applies its change, so neither result is
        lost. Raises ``PlatformError`` on other errors.
        """
        state = dict(self.state)
        state[_SUB_TASKS_KEY] = {k: v.to_dict() for k, v in self.sub_tasks.items()}
        if self.input_requests:
            state[_INPUTS_KEY] = self.input_requests
        meta = {name: getattr(self, name) for name in _META_FIELDS}
        meta["kind"] = self._kind
        state[_META_KEY] = meta
        record = await store_task_record(
            self._ctx().memory,
            version=self._version if self._persisted else None,
            task_id=self.task_id,
            plan_id=self.plan_id,
            event_type=self.event_type,
            response_event=self.response_event,
            response_topic=self.response_topic,
            data=self.data,
            sub_tasks=list(self.sub_tasks),
            state=state,
            tenant_id=self.tenant_id,
            user_id=self.user_id,
            correlation_id=self.correlation_id,
            session_id=self.session_id,
            goal_id=self.goal_id,
            trace_id=self.trace_id,
        )
        self._persisted = True
        self._version = record.version

    @classmethod
    async def restore(
        cls,
        task_id: str,
        context: "PlatformContext",
        tenant_id: str | None = None,
        user_id: str | None = None,
        agent_id: str | None = None,
        register_produced_event: Callable[[str], None] | None = None,
    ) -> "TaskContext | None":
        """The saved context of ``task_id``, or ``None``."""
        record = await context.memory.get_task_context(task_id, tenant_id=tenant_id, user_id=user_id)
        if record is None:
            return None
        return cls.from_record(record, context, agent_id=agent_id, register_produced_event=register_produced_event)

    # --- delegation --------------------------------------------------------------------------------------------
    async def delegate(
        self,
        event_type: str,
        data: Mapping[str, Any],
        response_event: str,
        response_topic: str = ACTION_RESULTS,
    ) -> str:
        """Save, then request ``event_type`` from whoever handles it; returns the sub-task id, which is both the
        request's ``correlation_id`` and its ``data["task_id"]``. The result arrives at ``on_result(response_event)``."""
        sub_task_id = derived_id(f"subtask:{event_type}")
        self.sub_tasks[sub_task_id] = SubTaskInfo(sub_task_id, event_type, response_event)
        await self.save()
        await self._request(sub_task_id, event_type, data, response_event, response_topic)
        return sub_task_id

    async def delegate_parallel(self, sub_tasks: list[DelegationSpec]) -> str:
        """Fan out: one save, then one request per spec (each with its own data, even when several specs share an
        event type). Returns the parallel group id for :meth:`aggregate_parallel_results`. ``sub_tasks`` is
        soorma-core's parameter name."""
        group_id = derived_id("group")
        sent: list[tuple[str, DelegationSpec]] = []
        for spec in sub_tasks:
            sub_task_id = derived_id(f"subtask:{spec.event_type}")
            self.sub_tasks[sub_task_id] = SubTaskInfo(
                sub_task_id, spec.event_type, spec.response_event, parallel_group_id=group_id
            )
            sent.append((sub_task_id, spec))
        await self.save()
        for sub_task_id, spec in sent:
            await self._request(sub_task_id, spec.event_type, spec.data, spec.response_event, spec.response_topic)
        return group_id

    async def _request(
        self, sub_task_id: str, event_type: str, data: Mapping[str, Any], response_event: str, response_topic: str
    ) -> None:
        payload = dict(data)
        payload["task_id"] = sub_task_id
        if self.plan_id:
            payload.setdefault("plan_id", self.plan_id)
        bus = self._ctx().bus
        propagation = self._propagation()

        async def send() -> None:
            await bus.request(
                event_type,
                payload,
                response_event,
                correlation_id=sub_task_id,
                response_topic=response_topic,
                **propagation,
            )

        # Inside a handler the request goes out when the handler has returned (after any later save of this
        # context), so a fast sub-task can never answer before the state it will be merged into is stored.
        if not defer(send):
            await send()

    def _propagation(self) -> dict[str, Any]:
        return _propagated_ids(self)

    def update_sub_task_result(
        self, sub_task_id: str, result: Any, *, success: bool = True, error: str | None = None
    ) -> None:
        """Record a sub-task's result in memory of this object (call :meth:`save` to persist it, unless you
        :meth:`complete` next). Unknown ids are ignored (a late or duplicate result)."""
        info = self.sub_tasks.get(sub_task_id)
        if info is None:
            log.warning("task %s: result for unknown sub-task %s ignored", self.task_id, sub_task_id)
            return
        info.status = "completed" if success else "failed"
        info.result = result
        info.error = error

    def aggregate_parallel_results(self, parallel_group_id: str) -> dict[str, Any] | None:
        """``{sub_task_id: result}`` once every sub-task of the group has a result (completed or failed), else
        ``None``."""
        group = [i for i in self.sub_tasks.values() if i.parallel_group_id == parallel_group_id]
        if group and all(i.status in ("completed", "failed") for i in group):
            return {i.sub_task_id: i.result for i in group}
        return None

    def is_complete(self) -> bool:
        """True when no sub-task is pending."""
        return all(i.status != "pending" for i in self.sub_tasks.values())

    # --- answering ---------------------------------------------------------------------------------------------
    async def complete(self, result: Any) -> str:
        """Answer the caller: publish ``{"task_id", "action_id", "status": "completed", "result"}`` as
        ``response_event`` on ``response_topic`` with the caller's ``correlation_id`` (or ``task_id``), then delete
        the saved context. Returns the event id. Raises ``ValueError`` when the request named no response event."""
        return await self._answer({"status": "completed", "result": result})

    async def fail(self, error: str | BaseException) -> str:
        """Answer the caller with a failure: ``{"task_id", "action_id", "status": "failed", "error"}``."""
        return await self._answer({"status": "failed", "error": str(error)})

    async def _answer(self, outcome: dict[str, Any]) -> str:
        if not self.response_event:
            raise ValueError(f"task {self.task_id} ({self.event_type}) has no response_event to answer with")
        if self._register_produced_event is not None:
            self._register_produced_event(self.response_event)
        data = {"task_id": self.task_id, "action_id": self.data.get("action_id"), **outcome}
        event_id = await self._ctx().bus.respond(
            self.response_event,
            data,
            self.correlation_id or self.task_id,
            topic=self.response_topic,
            **self._propagation(),
        )
        if self._persisted:
            try:
                await self._ctx().memory.delete_task_context(self.task_id, tenant_id=self.tenant_id, user_id=self.user_id)
            except PlatformError as exc:
                # The answer is out; failing the record now would re-run the handler and answer twice.
                log.warning("task %s answered but its saved context was not deleted: %s", self.task_id, exc)
            self._persisted = False
        return event_id

    async def report_progress(self, progress: float, message: str | None = None) -> str:
        """Publish ``task.progress`` on ``task-events`` (``{"task_id", "event_type", "status": "running",
        "progress", "message"}``) for the tracker and any listener. Returns the event id."""
        return await self._ctx().bus.publish(
            EventTopic.TASK_EVENTS.value,
            PROGRESS_EVENT,
            {
                "task_id": self.task_id,
                "event_type": self.event_type,
                "status": "running",
                "progress": progress,
                "message": message,
            },
            correlation_id=self.correlation_id or self.task_id,
            **self._propagation(),
        )

    # --- human input -------------------------------------------------------------------------------------------
    async def request_input(
        self,
        prompt: str,
        *,
        schema: Mapping[str, Any] | None = None,
        timeout: float | None = None,
        default: Any = NO_DEFAULT,
    ) -> str:
        """Ask a person for input and wait for it without holding the function: save this context with the request
        pending, then publish :data:`INPUT_REQUESTED_EVENT` on ``task-events`` (sent when the handler returns, after
        the save). Returns the request id. The goal shows the request (``GET /v1/goals/{id}``, ``input_requests``)
        and is ``input-required`` until every pending request is answered; the answer
        (``POST /v1/goals/{id}/input/{request_id}``, checked against ``schema``) arrives at the agent's ``on_input``
        handler with this context restored. Several requests may be pending at once; each is answered on its own.

        Parameters: ``prompt`` (what to ask, at most 4,000 characters shown), ``schema`` (a JSON Schema the answer
        must satisfy, https://json-schema.org/draft/2020-12; ``None``: any JSON value), ``timeout`` (seconds until
        the request times out; ``None``: never), ``default`` (the answer a timeout gives; without one a timeout fails
        the task with an error naming the request). Raises ``ValueError`` for a schema that is not a valid JSON
        Schema (when ``jsonschema`` is installed) or a timeout that is not positive."""
        if timeout is not None and not timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds, not {timeout!r}")
        if schema is not None:
            _check_schema(schema)
        request_id = derived_id(f"input:{self.task_id}")
        has_default = default is not NO_DEFAULT
        self.input_requests[request_id] = {"prompt": prompt, "schema": dict(schema) if schema is not None else None,
                                           "timeout_seconds": timeout, "has_default": has_default,
                                           "default": default if has_default else None}
        await self.save()
        data = {"request_id": request_id, "task_id": self.task_id, "agent": self.agent_id,
                "event_type": self.event_type, **self.input_requests[request_id]}
        bus = self._ctx().bus
        propagation = self._propagation()
        correlation_id = self.correlation_id or self.task_id

        async def send() -> None:
            await bus.publish(EventTopic.TASK_EVENTS.value, INPUT_REQUESTED_EVENT, data,
                              correlation_id=correlation_id, **propagation)

        if not defer(send):
            await send()
        return request_id

    @property
    def pending_inputs(self) -> list[str]:
        """The ids of this task's input requests that are not answered yet."""
        return list(self.input_requests)


@dataclass
class GoalContext(TaskContext):
    """A goal being planned (``Planner.on_goal``). A :class:`TaskContext`, so a planner can ``save()``,
    ``delegate()`` and finally ``complete()`` the goal (answered to the goal event's ``response_event`` with the
    goal's ``correlation_id``); :meth:`dispatch` fires a request that keeps the goal's correlation id."""

    response_schema_name: str | None = None

    _kind = "goal"

    @property
    def goal_type(self) -> str:
        return self.event_type

    @classmethod
    def _default_task_id(cls, event: EventEnvelope) -> str:
        return event.goal_id or event.correlation_id or event.id

    @classmethod
    def _own_fields_from_event(cls, event: EventEnvelope) -> dict[str, Any]:
        return {"response_schema_name": event.response_schema_name}

    async def dispatch(
        self,
        event_type: str,
        data: Mapping[str, Any],
        response_event: str,
        response_topic: str = ACTION_RESULTS,
    ) -> str:
        """Request ``event_type`` with this goal's ``correlation_id`` (no saved state, no sub-task tracking).
        Returns the event id."""
        payload = dict(data)
        if self.plan_id:
            payload.setdefault("plan_id", self.plan_id)
        return await self._ctx().bus.request(
            event_type,
            payload,
            response_event,
            correlation_id=self.correlation_id or self.task_id,
            response_topic=response_topic,
            **self._propagation(),
        )


@dataclass
class ResultContext:
    """A result arriving at ``on_result``: ``event_type``, ``correlation_id`` (= the sub-task id for delegated
    work), ``data``, ``success`` (``data["success"]`` when present, else ``data["status"] != "failed"``), ``error``,
    identity and workflow ids of the result event."""

    event_type: str
    correlation_id: str | None
    data: dict[str, Any]
    success: bool
    error: str | None
    tenant_id: str | None = None
    user_id: str | None = None
    session_id: str | None = None
    goal_id: str | None = None
    plan_id: str | None = None
    trace_id: str | None = None
    event_id: str | None = None

    _context: "PlatformContext | None" = field(default=None, repr=False, compare=False)
    _agent_id: str | None = field(default=None, repr=False, compare=False)
    _register_produced_event: Callable[[str], None] | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_event(
        cls,
        event: EventEnvelope,
        context: "PlatformContext",
        register_produced_event: Callable[[str], None] | None = None,
        agent_id: str | None = None,
    ) -> "ResultContext":
        data = dict(event.data or {})
        if "success" in data:
            success = bool(data["success"])
        else:
            success = data.get("status") != "failed"
        error = data.get("error")
        return cls(
            event_type=event.type,
            correlation_id=event.correlation_id,
            data=data,
            success=success,
            error=str(error) if error is not None else None,
            event_id=event.id,
            **_propagated_ids(event),
            _context=context,
            _agent_id=agent_id,
            _register_produced_event=register_produced_event,
        )

    @property
    def result(self) -> Any:
        """``data["result"]`` when the responder used the task/tool shape, else the whole ``data``."""
        return self.data["result"] if "result" in self.data else self.data

    async def restore_task(self) -> TaskContext:
        """The saved context that delegated this sub-task (``GET /v1/memory/task-context/by-subtask/{correlation_id}``),
        with the original caller's correlation id. Raises :class:`~soorma.errors.TaskNotFoundError` if none."""
        if self._context is None:
            raise RuntimeError("ResultContext has no PlatformContext")
        if not self.correlation_id:
            raise TaskNotFoundError(f"result {self.event_type} carries no correlation_id to find its task")
        record = await self._context.memory.get_task_by_subtask(
            self.correlation_id, tenant_id=self.tenant_id, user_id=self.user_id
        )
        if record is None:
            raise TaskNotFoundError(
                f"no saved task delegated sub-task {self.correlation_id} (result {self.event_type}); "
                "it was never saved, already completed, or belongs to another tenant/user"
            )
        return TaskContext.from_record(
            record, self._context, agent_id=self._agent_id, register_produced_event=self._register_produced_event
        )


@dataclass
class InvocationContext:
    """A tool invocation (``Tool.on_invoke``): ``request_id`` (the request event's id), ``event_type``,
    ``correlation_id``, ``data``, where to answer (``response_event``, ``response_topic``) and identity."""

    request_id: str
    event_type: str
    correlation_id: str | None
    data: dict[str, Any]
    response_event: str | None
    response_topic: str | None
    tenant_id: str | None = None
    user_id: str | None = None
    session_id: str | None = None
    goal_id: str | None = None
    plan_id: str | None = None
    trace_id: str | None = None

    @classmethod
    def from_event(cls, event: EventEnvelope, context: "PlatformContext | None" = None) -> "InvocationContext":
        """The invocation carried by the request ``event``. ``context``: soorma-core's second argument, accepted
        for its call form and not kept (an invocation holds no clients; the tool's handler receives the context as
        its own second argument)."""
        return cls(
            request_id=event.id,
            event_type=event.type,
            correlation_id=event.correlation_id,
            data=dict(event.data or {}),
            response_event=event.response_event,
            response_topic=event.response_topic,
            **_propagated_ids(event, trace_id=event.trace_id or event.id),
        )


_VERSIONED_STORE: dict[type, bool] = {}


async def store_task_record(memory: Any, *, version: int | None, **fields: Any) -> "TaskContextRecord":
    """Upsert a task context, sending ``version`` (the one the caller last saw) so the memory function answers 409
    instead of overwriting a newer record. Uses ``memory.store_task_context(..., version=...)`` when the client
    takes it, else the route itself (``POST /v1/memory/task-context`` with ``version`` in the body)."""
    from .models import TaskContextRecord

    kind = type(memory)
    if kind not in _VERSIONED_STORE:
        try:
            _VERSIONED_STORE[kind] = "version" in inspect.signature(memory.store_task_context).parameters
        except (TypeError, ValueError, AttributeError):
            _VERSIONED_STORE[kind] = False
    if _VERSIONED_STORE[kind] or version is None or not hasattr(memory, "_request"):
        extra = {"version": version} if _VERSIONED_STORE[kind] else {}
        record: TaskContextRecord = await memory.store_task_context(
            fields.pop("task_id"), fields.pop("plan_id"), fields.pop("event_type"), **fields, **extra
        )
        return record
    tenant_id, user_id = fields.pop("tenant_id", None), fields.pop("user_id", None)
    body = {**fields, "version": version}
    result = await memory._request("POST", "/v1/memory/task-context", json=body, tenant_id=tenant_id, user_id=user_id)
    return TaskContextRecord.model_validate(result or body)
