"""``PlanContext``: a planner's state machine, persisted in memory between events (reference §1.7).

A plan is created from a goal (:meth:`PlanContext.create_from_goal`), saved to ``/v1/memory/plan-context`` and
moved on by result events: ``Planner.on_transition`` finds the plan of an incoming result by its correlation id
(:meth:`restore_by_correlation`), computes the next state (:meth:`get_next_state`) and calls your handler, which
usually calls :meth:`execute_next` (enter the next state and send its action) or :meth:`finalize` (answer the
goal).

Differences from soorma-core, all for correctness under at-least-once delivery and concurrency:

* every action request gets its own correlation id (recorded in the plan's ``correlation_ids``, so its result still
  finds the plan) and carries ``plan_id`` and ``goal_id``: the tracker shows each step as its own task;
* the plan is saved *before* its action is requested (inside a handler the request goes out when the handler
  returns), so a fast worker can never answer a plan still stored in its previous state; the last action is kept
  in the plan and sent again, with the same event id, if the event that triggered it is redelivered;
* saves carry the version read (optimistic concurrency): a concurrent change raises
  :class:`~soorma.errors.ConflictError`, and the agent re-runs the handler on the fresh plan;
* :meth:`execute_next` runs the action of a state you already moved to (``plan.current_state = next_state``), so
  both styles of soorma-core's examples work, and passes through states that have no action but a
  ``default_next``.
"""

from __future__ import annotations

import inspect
import logging
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping
from urllib.parse import quote

from ._current import current_event, defer, derived_id
from .errors import ConflictError
from .events import EventEnvelope, EventTopic
from .state import StateAction, StateConfig, StateTransition
from .task_context import INPUT_REQUESTED_EVENT, NO_DEFAULT, _check_schema

if TYPE_CHECKING:
    from .context import PlatformContext

log = logging.getLogger("soorma.plans")

ACTION_RESULTS = EventTopic.ACTION_RESULTS.value
FINAL_STATUSES = ("completed", "failed")
#: Action correlation ids kept in ``correlation_ids`` besides the plan id and the goal's correlation id.
MAX_ACTION_CORRELATIONS = 32
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_.\-]+)\s*\}\}")
_PREFIX = "/v1/memory"


def _seg(value: str) -> str:
    return quote(str(value), safe="")


def _get(record: Any, *names: str) -> Any:
    """A field of a memory record, whether a model or a dict, by snake_case or camelCase name."""
    for name in names:
        if isinstance(record, Mapping):
            if name in record:
                return record[name]
        elif hasattr(record, name):
            return getattr(record, name)
    return None


def _accepted(method: Callable[..., Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` limited to what ``method`` accepts (all of them when it takes ``**kwargs``)."""
    try:
        params = inspect.signature(method).parameters
    except (TypeError, ValueError):
        return kwargs
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return kwargs
    return {k: v for k, v in kwargs.items() if k in params}


class PlanStore:
    """Plan persistence over the memory client: its ``store_plan_context`` / ``get_plan_context`` /
    ``get_plan_by_correlation`` / ``create_plan`` / ``update_plan`` methods when it has them, else soorma-core's
    routes directly (``POST /v1/memory/plan-context``, ``GET /v1/memory/plan-context/{plan_id}``,
    ``GET /v1/memory/plan-context/by-correlation/{correlation_id}``, ``POST /v1/memory/plans``,
    ``PUT /v1/memory/plans/{plan_id}``)."""

    def __init__(self, memory: Any) -> None:
        self.memory = memory

    async def save(self, body: dict[str, Any], *, version: int | None, tenant_id: str | None,
                   user_id: str | None) -> Any:
        method = getattr(self.memory, "store_plan_context", None)
        if method is not None:
            kwargs = {**body, "tenant_id": tenant_id, "user_id": user_id}
            if version is not None:
                kwargs["version"] = version
            accepted = _accepted(method, kwargs)
            if version is not None and "version" not in accepted:
                log.debug("memory client's store_plan_context takes no version: saving without concurrency check")
            return await method(**accepted)
        payload = dict(body)
        if version is not None:
            payload["version"] = version
        return await self.memory._request("POST", f"{_PREFIX}/plan-context", json=payload, tenant_id=tenant_id,
                                          user_id=user_id)

    async def get(self, plan_id: str, tenant_id: str | None, user_id: str | None) -> Any:
        method = getattr(self.memory, "get_plan_context", None)
        if method is not None:
            return await method(**_accepted(method, {"plan_id": plan_id, "tenant_id": tenant_id, "user_id": user_id}))
        return await self.memory._request("GET", f"{_PREFIX}/plan-context/{_seg(plan_id)}", tenant_id=tenant_id,
                                          user_id=user_id, not_found=None)

    async def by_correlation(self, correlation_id: str, tenant_id: str | None, user_id: str | None) -> Any:
        method = getattr(self.memory, "get_plan_by_correlation", None)
        if method is not None:
            return await method(**_accepted(
                method, {"correlation_id": correlation_id, "tenant_id": tenant_id, "user_id": user_id}
            ))
        return await self.memory._request("GET", f"{_PREFIX}/plan-context/by-correlation/{_seg(correlation_id)}",
                                          tenant_id=tenant_id, user_id=user_id, not_found=None)

    async def create_plan(self, body: dict[str, Any], tenant_id: str | None, user_id: str | None) -> None:
        method = getattr(self.memory, "create_plan", None)
        try:
            if method is not None:
                await method(**_accepted(method, {**body, "tenant_id": tenant_id, "user_id": user_id}))
            else:
                await self.memory._request("POST", f"{_PREFIX}/plans", json=body, tenant_id=tenant_id,
                                           user_id=user_id)
        except ConflictError:  # already created (a redelivered goal): the summary exists, which is what we want
            log.debug("plan %s already exists", body.get("plan_id"))

    async def set_status(self, plan_id: str, status: str, tenant_id: str | None, user_id: str | None) -> None:
        method = getattr(self.memory, "update_plan", None) or getattr(self.memory, "update_plan_status", None)
        try:
            if method is not None:
                await method(**_accepted(method, {"plan_id": plan_id, "status": status, "tenant_id": tenant_id,
                                                  "user_id": user_id}))
            else:
                await self.memory._request("PUT", f"{_PREFIX}/plans/{_seg(plan_id)}", json={"status": status},
                                           tenant_id=tenant_id, user_id=user_id, not_found=None)
        except Exception as exc:  # noqa: BLE001 - the summary is informational; the plan context is the truth
            log.warning("plan %s: status %s not recorded in the plan summary: %s", plan_id, status, exc)


def _state_config(raw: Any) -> StateConfig:
    return raw if isinstance(raw, StateConfig) else StateConfig.model_validate(raw)


@dataclass
class PlanContext:
    """A plan: ``PlanContext(plan_id, goal_event, goal_data, response_event, status, state_machine, current_state,
    results, correlation_id="", parent_plan_id=None, session_id=None, user_id="", tenant_id="", _context=None)``
    (soorma-core's fields and order), plus ``response_topic``, ``goal_id`` and ``trace_id``.

    ``status``: ``pending | running | paused | completed | failed``. ``state_machine``: state name →
    :class:`~soorma.state.StateConfig` (dicts are accepted). ``results``: yours, e.g. result data by event type.
    """

    plan_id: str
    goal_event: str
    goal_data: dict[str, Any]
    response_event: str | None
    status: str
    state_machine: dict[str, StateConfig]
    current_state: str
    results: dict[str, Any]
    correlation_id: str = ""
    parent_plan_id: str | None = None
    session_id: str | None = None
    user_id: str = ""
    tenant_id: str = ""
    _context: "PlatformContext | None" = field(default=None, repr=False, compare=False)
    response_topic: str = ACTION_RESULTS
    goal_id: str | None = None
    trace_id: str | None = None
    correlation_ids: list[str] = field(default_factory=list)
    last_trigger_id: str | None = None
    last_action: dict[str, Any] | None = None
    dispatched_state: str | None = None
    pause_reason: str | None = None
    input_requests: dict[str, dict[str, Any]] = field(default_factory=dict)
    _version: int | None = field(default=None, repr=False, compare=False)
    _persisted: bool = field(default=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.state_machine = {name: _state_config(cfg) for name, cfg in (self.state_machine or {}).items()}
        self.goal_data = dict(self.goal_data or {})
        self.results = dict(self.results or {})
        self.user_id = self.user_id or ""
        self.tenant_id = self.tenant_id or ""
        self.correlation_id = self.correlation_id or ""

    # --- creation and persistence ------------------------------------------------------------------------------
    @classmethod
    async def create_from_goal(
        cls,
        goal: Any,
        context: "PlatformContext",
        state_machine: Mapping[str, StateConfig | Mapping[str, Any]],
        current_state: str,
        status: str = "pending",
        results: dict[str, Any] | None = None,
        plan_id: str | None = None,
        parent_plan_id: str | None = None,
    ) -> "PlanContext":
        """A plan for ``goal`` (a :class:`~soorma.task_context.GoalContext`): records the plan summary
        (``POST /v1/memory/plans``) and saves the plan context. ``plan_id`` defaults to the goal's correlation id."""
        correlation = getattr(goal, "correlation_id", None) or ""
        plan = cls(
            plan_id=plan_id or correlation or getattr(goal, "task_id", None) or derived_id("plan"),
            goal_event=getattr(goal, "event_type", "") or "",
            goal_data=dict(getattr(goal, "data", None) or {}),
            response_event=getattr(goal, "response_event", None),
            status=status,
            state_machine={name: _state_config(config) for name, config in state_machine.items()},
            current_state=current_state,
            results=dict(results or {}),
            correlation_id=correlation,
            parent_plan_id=parent_plan_id,
            session_id=getattr(goal, "session_id", None),
            user_id=getattr(goal, "user_id", None) or "",
            tenant_id=getattr(goal, "tenant_id", None) or "",
            _context=context,
            response_topic=getattr(goal, "response_topic", None) or ACTION_RESULTS,
            goal_id=getattr(goal, "goal_id", None),
            trace_id=getattr(goal, "trace_id", None),
        )
        await plan._store().create_plan(
            {
                "plan_id": plan.plan_id,
                "goal_event": plan.goal_event,
                "goal_data": plan.goal_data,
                "response_event": plan.response_event,
                "session_id": plan.session_id,
                "parent_plan_id": parent_plan_id,
                "status": "running" if status in ("pending", "running") else status,
            },
            plan._tenant(),
            plan._user(),
        )
        await plan.save()
        return plan

    def _ctx(self) -> "PlatformContext":
        if self._context is None:
            raise ValueError(f"PlanContext {self.plan_id} has no PlatformContext (_context)")
        return self._context

    def _store(self) -> PlanStore:
        return PlanStore(self._ctx().memory)

    def _tenant(self) -> str | None:
        return self.tenant_id or None

    def _user(self) -> str | None:
        return self.user_id or None

    def _correlations(self) -> list[str]:
        ids = [self.plan_id, self.correlation_id, *self.correlation_ids[-MAX_ACTION_CORRELATIONS:]]
        return list(dict.fromkeys(i for i in ids if i))

    async def save(self) -> None:
        """Upsert the plan context (``POST /v1/memory/plan-context``), with ``correlation_ids`` = the plan id, the
        goal's correlation id and the correlation ids of its recent actions. A plan that was restored or saved
        before is written only if unchanged since (else :class:`~soorma.errors.ConflictError`)."""
        body = {
            "plan_id": self.plan_id,
            "session_id": self.session_id,
            "goal_event": self.goal_event,
            "goal_data": self.goal_data,
            "response_event": self.response_event,
            "state": self.to_dict(),
            "current_state": self.current_state,
            "correlation_ids": self._correlations(),
        }
        record = await self._store().save(
            body, version=self._version if self._persisted else None, tenant_id=self._tenant(), user_id=self._user()
        )
        self._persisted = True
        version = _get(record, "version") if record is not None else None
        self._version = int(version) if version is not None else None

    @classmethod
    def _from_record(cls, record: Any, context: "PlatformContext") -> "PlanContext | None":
        if not record:
            return None
        state = _get(record, "state") or {}
        if not state:
            return None
        plan = cls.from_dict(state, context)
        version = _get(record, "version")
        plan._version = int(version) if version is not None else None
        plan._persisted = True
        return plan

    @classmethod
    async def restore(
        cls,
        plan_id: str,
        context: "PlatformContext",
        tenant_id: str | None = None,
        user_id: str | None = None,
    ) -> "PlanContext | None":
        """The saved plan ``plan_id``, or ``None``."""
        record = await PlanStore(context.memory).get(plan_id, tenant_id, user_id)
        return cls._from_record(record, context)

    @classmethod
    async def restore_by_correlation(
        cls,
        correlation_id: str,
        context: "PlatformContext",
        tenant_id: str | None = None,
        user_id: str | None = None,
    ) -> "PlanContext | None":
        """The saved plan one of whose correlation ids is ``correlation_id`` (its id, its goal's correlation id,
        or one of its actions'), or ``None``."""
        record = await PlanStore(context.memory).by_correlation(correlation_id, tenant_id, user_id)
        return cls._from_record(record, context)

    def to_dict(self) -> dict[str, Any]:
        """Everything but the context, JSON-ready (the ``state`` of the stored plan context)."""
        return {
            "plan_id": self.plan_id,
            "goal_event": self.goal_event,
            "goal_data": self.goal_data,
            "response_event": self.response_event,
            "response_topic": self.response_topic,
            "correlation_id": self.correlation_id,
            "status": self.status,
            "state_machine": {k: v.model_dump(mode="json") for k, v in self.state_machine.items()},
            "current_state": self.current_state,
            "results": self.results,
            "parent_plan_id": self.parent_plan_id,
            "session_id": self.session_id,
            "user_id": self.user_id,
            "tenant_id": self.tenant_id,
            "goal_id": self.goal_id,
            "trace_id": self.trace_id,
            "correlation_ids": self.correlation_ids[-MAX_ACTION_CORRELATIONS:],
            "last_trigger_id": self.last_trigger_id,
            "last_action": self.last_action,
            "dispatched_state": self.dispatched_state,
            "pause_reason": self.pause_reason,
            "input_requests": self.input_requests,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], context: "PlatformContext | None" = None) -> "PlanContext":
        return cls(
            plan_id=data["plan_id"],
            goal_event=data.get("goal_event", ""),
            goal_data=data.get("goal_data") or {},
            response_event=data.get("response_event"),
            status=data.get("status", "pending"),
            state_machine=data.get("state_machine") or {},
            current_state=data.get("current_state", ""),
            results=data.get("results") or {},
            correlation_id=data.get("correlation_id") or "",
            parent_plan_id=data.get("parent_plan_id"),
            session_id=data.get("session_id"),
            user_id=data.get("user_id") or "",
            tenant_id=data.get("tenant_id") or "",
            _context=context,
            response_topic=data.get("response_topic") or ACTION_RESULTS,
            goal_id=data.get("goal_id"),
            trace_id=data.get("trace_id"),
            correlation_ids=list(data.get("correlation_ids") or []),
            last_trigger_id=data.get("last_trigger_id"),
            last_action=data.get("last_action"),
            dispatched_state=data.get("dispatched_state"),
            pause_reason=data.get("pause_reason"),
            input_requests=dict(data.get("input_requests") or {}),
        )

    # --- the state machine -------------------------------------------------------------------------------------
    def get_next_state(self, event: Any) -> str | None:
        """The state a transition of the current state leads to on ``event`` (an envelope or an event type), or
        ``None``."""
        config = self.state_machine.get(self.current_state)
        if config is None:
            return None
        event_type = getattr(event, "type", None) or str(event)
        for transition in config.transitions:
            if transition.on_event == event_type:
                return transition.to_state
        return None

    def is_complete(self) -> bool:
        """True when the current state is terminal."""
        config = self.state_machine.get(self.current_state)
        return bool(config and config.is_terminal)

    def _action_pending(self, state: str) -> bool:
        config = self.state_machine.get(state)
        return bool(config and config.action and self.dispatched_state != state)

    async def execute_next(self, trigger_event: Any = None) -> str | None:
        """Move on and send the next action; returns the state the plan is in afterwards (``None`` if it did not
        move and sent nothing).

        With ``trigger_event``: follow the current state's transition for it; if none matches but the current state
        has an action not sent yet (you set ``plan.current_state = next_state`` yourself), send that. Without: send
        the current state's pending action, else follow ``default_next``. States without an action but with a
        ``default_next`` are passed through. The plan is saved before its request goes out."""
        target: str | None
        if trigger_event is not None:
            target = self.get_next_state(trigger_event)
            if target is None and self._action_pending(self.current_state):
                target = self.current_state
        else:
            config = self.state_machine.get(self.current_state)
            if self._action_pending(self.current_state):
                target = self.current_state
            else:
                target = config.default_next if config else None
        if target is None or target not in self.state_machine:
            if target is not None:
                log.warning("plan %s: no state %r in its state machine", self.plan_id, target)
            return None
        for _ in range(len(self.state_machine) + 1):  # pass through action-less states (bounded: no cycles forever)
            config = self.state_machine[target]
            if config.action is not None or config.is_terminal or not config.default_next:
                break
            if config.default_next not in self.state_machine:
                break
            target = config.default_next
        self.current_state = target
        if self.status not in FINAL_STATUSES:
            self.status = "running"
        config = self.state_machine[target]
        trigger = trigger_event if isinstance(trigger_event, EventEnvelope) else current_event()
        self.last_trigger_id = trigger.id if trigger is not None else None
        request: EventEnvelope | None = None
        if config.action is not None and self.dispatched_state != target:
            request = self._action_request(config.action, target)
            self.dispatched_state = target
            self.last_action = request.model_dump(mode="json", exclude_none=True)
            assert request.correlation_id is not None  # _action_request always derives one
            self.correlation_ids = [*self.correlation_ids, request.correlation_id][-MAX_ACTION_CORRELATIONS:]
        await self.save()
        if request is not None:
            await self._send(request)
        return target

    def _action_request(self, action: StateAction, state: str) -> EventEnvelope:
        event = current_event()
        propagated = event.propagation() if event is not None else {}
        return EventEnvelope(
            id=derived_id(f"plan:{self.plan_id}:{state}"),
            type=action.event_type,
            topic=EventTopic.ACTION_REQUESTS,
            data=self._interpolate(action.data or {}),
            correlation_id=derived_id(f"plan-action:{self.plan_id}:{state}"),
            response_event=action.response_event,
            response_topic=ACTION_RESULTS,
            trace_id=self.trace_id or propagated.get("trace_id"),
            parent_event_id=propagated.get("parent_event_id"),
            tenant_id=self._tenant() or propagated.get("tenant_id"),
            user_id=self._user() or propagated.get("user_id"),
            session_id=self.session_id or propagated.get("session_id"),
            goal_id=self.goal_id or propagated.get("goal_id"),
            plan_id=self.plan_id,
        )

    async def _send(self, request: EventEnvelope) -> None:
        bus = self._ctx().bus

        async def send() -> None:
            await bus.publish_envelope(request)

        if not defer(send):
            await send()

    async def resend_last_action(self) -> bool:
        """Publish the last action request again with its original event id (JetStream drops it if the first copy
        was stored). Used when the event that triggered it is delivered again. Returns ``False`` if there is none."""
        if not self.last_action:
            return False
        await self._send(EventEnvelope.model_validate(self.last_action))
        return True

    def _interpolate(self, template: Any) -> Any:
        if isinstance(template, dict):
            return {k: self._interpolate(v) for k, v in template.items()}
        if isinstance(template, list):
            return [self._interpolate(v) for v in template]
        if not isinstance(template, str) or "{{" not in template:
            return template
        whole = _PLACEHOLDER.fullmatch(template.strip())
        if whole:
            return self._lookup(whole.group(1), template)
        return _PLACEHOLDER.sub(lambda m: str(self._lookup(m.group(1), m.group(0))), template)

    def _lookup(self, path: str, default: Any) -> Any:
        root, _, rest = path.partition(".")
        sources = {"goal_data": self.goal_data, "results": self.results, "plan": self.to_dict()}
        if root not in sources:
            return default
        value: Any = sources[root]
        parts = rest.split(".") if rest else []
        i = 0
        while i < len(parts):
            if isinstance(value, Mapping):
                # keys may hold dots (results are keyed by event type): take the longest key that matches
                for j in range(len(parts), i, -1):
                    key = ".".join(parts[i:j])
                    if key in value:
                        value, i = value[key], j
                        break
                else:
                    return default
            elif isinstance(value, list) and parts[i].isdigit() and int(parts[i]) < len(value):
                value, i = value[int(parts[i])], i + 1
            else:
                return default
        return value

    # --- ending, pausing ---------------------------------------------------------------------------------------
    async def finalize(self, result: Any = None) -> str | None:
        """Answer the goal: publish ``{"plan_id", "result"}`` as ``response_event`` with the goal's correlation id
        (for a goal from ``POST /v1/goals``, the gateway's ``soorma.goal.result``), then save the plan as
        ``completed``. Returns the answer's event id (``None`` when the goal named no response event)."""
        return await self._finish("completed", {"plan_id": self.plan_id, "result": result})

    async def fail(self, error: str | BaseException) -> str | None:
        """Answer the goal with ``{"plan_id", "status": "failed", "error"}`` and save the plan as ``failed``."""
        return await self._finish("failed", {"plan_id": self.plan_id, "status": "failed", "error": str(error)})

    async def _finish(self, status: str, data: dict[str, Any]) -> str | None:
        self.status = status
        event_id = None
        if self.response_event:
            # Answer first, then save: if the save fails the handler runs again and the answer (same event id) is
            # de-duplicated; the other order could leave a completed plan whose goal was never answered.
            event_id = await self._ctx().bus.respond(
                self.response_event,
                data,
                self.correlation_id or self.plan_id,
                topic=self.response_topic,
                tenant_id=self._tenant(),
                user_id=self._user(),
                session_id=self.session_id,
                goal_id=self.goal_id,
                plan_id=self.plan_id,
                trace_id=self.trace_id,
            )
        else:
            log.warning("plan %s %s but its goal named no response_event: nothing to answer", self.plan_id, status)
        await self.save()
        await self._store().set_status(self.plan_id, status, self._tenant(), self._user())
        return event_id

    async def pause(self, reason: str = "user_input_required") -> None:
        """Mark the plan ``paused`` (human in the loop) and save it."""
        self.status = "paused"
        self.pause_reason = reason
        await self.save()

    async def request_input(self, prompt: str, *, schema: Mapping[str, Any] | None = None,
                            timeout: float | None = None, default: Any = NO_DEFAULT) -> str:
        """The planner's :meth:`~soorma.task_context.TaskContext.request_input`: pause the plan (``paused``, reason
        ``prompt``), save it with the request pending, and publish ``soorma.input.requested`` for the plan (its
        ``task_id`` is the plan id). The answer comes back to ``Planner.on_transition`` as ``soorma.input.answered``
        (``results["user_input"]`` holds it; the plan is ``running`` again once nothing is pending); a timeout
        without ``default`` fails the plan and its goal. Returns the request id. Same parameters and errors as
        :meth:`TaskContext.request_input <soorma.task_context.TaskContext.request_input>`."""
        if timeout is not None and not timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds, not {timeout!r}")
        if schema is not None:
            _check_schema(schema)
        request_id = derived_id(f"input:{self.plan_id}")
        has_default = default is not NO_DEFAULT
        self.input_requests[request_id] = {"prompt": prompt, "schema": dict(schema) if schema is not None else None,
                                           "timeout_seconds": timeout, "has_default": has_default,
                                           "default": default if has_default else None}
        await self.pause(prompt)
        event = current_event()
        propagated = event.propagation() if event is not None else {}
        request = EventEnvelope(
            id=derived_id(f"input-request:{self.plan_id}"),
            type=INPUT_REQUESTED_EVENT,
            topic=EventTopic.TASK_EVENTS,
            data={"request_id": request_id, "task_id": self.plan_id, "agent": f"plan:{self.plan_id}",
                  "event_type": self.goal_event, **self.input_requests[request_id]},
            correlation_id=self.correlation_id or self.plan_id,
            trace_id=self.trace_id or propagated.get("trace_id"),
            parent_event_id=propagated.get("parent_event_id"),
            tenant_id=self._tenant() or propagated.get("tenant_id"),
            user_id=self._user() or propagated.get("user_id"),
            session_id=self.session_id or propagated.get("session_id"),
            goal_id=self.goal_id or propagated.get("goal_id"),
            plan_id=self.plan_id,
        )
        await self._send(request)
        return request_id

    async def resume(self, input_data: dict[str, Any]) -> str | None:
        """Store ``input_data`` as ``results["user_input"]``, mark the plan ``running`` and :meth:`execute_next`."""
        self.status = "running"
        self.pause_reason = None
        self.results["user_input"] = input_data
        moved = await self.execute_next()
        if moved is None:
            await self.save()
        return moved


__all__ = ["PlanContext", "PlanStore", "StateAction", "StateConfig", "StateTransition"]
