"""``ChoreographyPlanner``: a planner whose next step an LLM decides among the events the registry offers
(reference §1.8).

```
planner = ChoreographyPlanner("feedback-orchestrator", reasoning_model="gpt-4o-mini", max_actions=10,
                              system_instructions="...")

@planner.on_goal("analyze.feedback")
async def goal(goal, context):
    plan = await PlanContext.create_from_goal(goal, context, state_machine={}, current_state="reasoning",
                                              status="running")
    decision = await planner.reason_next_action(f"New goal: {goal.data}", context, plan_id=plan.plan_id)
    await planner.execute_decision(decision, context, goal_event=goal, plan=plan)

@planner.on_transition()          # every result of the plan's requests; next_state is always None here
async def step(event, context, plan, next_state):
    plan.results[event.type] = event.data
    decision = await planner.reason_next_action(f"Event: {event.type}", context, plan_id=plan.plan_id,
                                                custom_context={"results": plan.results})
    await planner.execute_decision(decision, context, goal_event=event, plan=plan)
```

* **Discovery**: the events on ``action-requests`` that some registered agent consumes
  (:meth:`EventToolkit.discover_actionable_events`), except the planner's own goals.
* **Decision**: ``PUBLISH`` (request one of those events), ``COMPLETE`` (answer the goal), ``WAIT`` (pause the plan
  for a person's input: an input request of the goal, answered through the goal API, its timeout enforced) or ``DELEGATE`` (hand a goal to another planner), as JSON from the LLM. A ``PUBLISH`` of an event that
  was not discovered is rejected: the LLM is told so and asked once more, then :class:`UndiscoveredEventError` is
  raised (nothing is published).
* **Circuit breaker**: at most ``max_actions`` decisions per plan, counted in the plan's working memory with an
  atomic increment (so it holds across execution environments); past it, the decision is a ``COMPLETE`` that says
  the limit stopped the plan (no LLM call).
* **Credentials**: ``auth_token``/``auth_token_provider`` go to the agent (platform calls), never to the LLM; the
  LLM gets the prompt and its own key only (``SOORMA_LLM_API_KEY`` or ``api_key``). soorma-core passed them into
  the LLM call's keyword arguments.

* **MCP tools**: ``mcp_tools=[McpToolset(context.mcp(url, headers=...))]`` (:mod:`soorma.mcp`) adds an MCP server's
  tools to the available events (listed again at every decision). A ``PUBLISH`` of one calls the tool instead of
  publishing a request, and its outcome (``{"success", "result" | "error"}``) comes back to ``on_transition`` as the
  result event ``<tool>.completed`` on ``action-results`` with the action's correlation id, like any agent's answer.

* **Payloads**: :meth:`ChoreographyPlanner.generate_payload` asks the LLM for a payload conforming to a registered
  schema (checked with ``jsonschema``; one retry with the problems).

LLM: ``llm=`` (any :class:`~soorma.ai.llm.LLMProvider`), else ``reasoning_model``/``api_key``/``api_base`` over the
``SOORMA_LLM_*`` settings. ``**llm_kwargs`` (``max_tokens``, ``top_p``, ...) go to every completion.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .._current import current_event, defer, derived_id
from ..agents.planner import Planner
from ..events import EventEnvelope, EventTopic
from .decisions import (
    CompleteAction,
    DelegateAction,
    PlanAction,
    PlannerDecision,
    PublishAction,
    WaitAction,
    decision_from_llm,
)
from .llm import FORBIDDEN_OPTIONS, LLMProvider, provider_from_env

if TYPE_CHECKING:
    from ..context import PlatformContext
    from ..mcp import McpToolset
    from ..plan_context import PlanContext

log = logging.getLogger("soorma.ai")

ACTION_REQUESTS = EventTopic.ACTION_REQUESTS.value
ACTION_RESULTS = EventTopic.ACTION_RESULTS.value
PLAN_EVENTS = EventTopic.PLAN_EVENTS.value
ACTION_COUNT_KEY = "_soorma:action_count"

STRATEGIES = {
    "balanced": "Balance speed and thoroughness: take the steps the goal needs, no more.",
    "conservative": "Prefer caution: gather what you need before acting, and WAIT for a human when in doubt.",
    "aggressive": "Prefer speed: take the most direct route to a result, and COMPLETE as soon as the goal is met.",
}

DECISION_FORMAT = """Answer with ONE JSON object:
{"reasoning": "<why>", "confidence": <0..1>, "next_action": <action>}
where <action> is exactly one of:
  {"action": "publish", "event_type": "<one of the available events>", "data": {...payload...}, "reasoning": "..."}
  {"action": "complete", "result": {...the final answer for the goal...}, "reasoning": "..."}
  {"action": "wait", "reason": "<what input is needed>", "expected_event": "<event or null>", "reasoning": "..."}
  {"action": "delegate", "target_planner": "<planner>", "goal_event": "<goal event>", "goal_data": {...}}
Only publish events from the list of available events."""


PAYLOAD_INSTRUCTIONS = ("You write event payloads. Answer with exactly one JSON object that conforms to the given "
                        "JSON Schema, filled in from the context; use only the schema's properties; no prose.")


def _schema_of(schema: Any) -> tuple[dict[str, Any], str | None]:
    """The JSON Schema and its name from a payload schema, an event definition or a bare JSON Schema."""
    def get(key: str) -> Any:
        for name in (key, "".join(p if i == 0 else p.title() for i, p in enumerate(key.split("_")))):
            if isinstance(schema, dict):
                if schema.get(name) is not None:
                    return schema[name]
            elif getattr(schema, name, None) is not None:
                return getattr(schema, name)
        return None

    for body_key, name_key in (("json_schema", "schema_name"), ("payload_schema", "payload_schema_name")):
        body = get(body_key)
        if isinstance(body, dict):
            return body, get(name_key) or get("event_name")
    if isinstance(schema, dict) and ("properties" in schema or "type" in schema):
        return schema, schema.get("title")
    raise ValueError(f"no JSON Schema in {type(schema).__name__} {schema!r:.200}")


def _with_defaults(payload: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    out = dict(payload)
    for key, prop in (schema.get("properties") or {}).items():
        if key not in out and isinstance(prop, dict) and "default" in prop:
            out[key] = prop["default"]
    return out


class UndiscoveredEventError(ValueError):
    """The LLM chose to publish an event that no registered agent consumes."""


class ChoreographyPlanner(Planner):
    """``ChoreographyPlanner(name, reasoning_model=None, api_key=None, api_base=None, temperature=0.7,
    max_actions=20, system_instructions=None, planning_strategy="balanced", *, llm=None, description=None,
    auth_token=None, auth_token_provider=None, mcp_tools=(), **llm_kwargs)``; see the module docstring.
    ``mcp_tools``: :class:`~soorma.mcp.McpToolset` objects whose tools the LLM may choose as actions."""

    transitions_need_state = False

    def __init__(
        self,
        name: str,
        reasoning_model: str | None = None,
        api_key: str | None = None,
        api_base: str | None = None,
        temperature: float = 0.7,
        max_actions: int = 20,
        system_instructions: str | None = None,
        planning_strategy: str = "balanced",
        *,
        llm: LLMProvider | None = None,
        description: str | None = None,
        version: str = "0.1.0",
        capabilities: list[Any] | None = None,
        auth_token: str | None = None,
        auth_token_provider: Any = None,
        events_consumed: list[Any] | None = None,
        events_produced: list[Any] | None = None,
        context: Any = None,
        mcp_tools: Sequence[McpToolset] = (),
        **llm_kwargs: Any,
    ) -> None:
        super().__init__(
            name,
            description or f"Autonomous planner ({reasoning_model or 'SOORMA_LLM_MODEL'})",
            version,
            capabilities=capabilities,
            auth_token=auth_token,
            auth_token_provider=auth_token_provider,
            events_consumed=events_consumed,
            events_produced=events_produced,
            context=context,
        )
        if planning_strategy not in STRATEGIES:
            raise ValueError(f"planning_strategy must be one of {', '.join(STRATEGIES)}")
        self.reasoning_model = reasoning_model
        self.temperature = temperature
        self.max_actions = max_actions
        self.system_instructions = system_instructions
        self.planning_strategy = planning_strategy
        dropped = sorted(k for k in llm_kwargs if k in FORBIDDEN_OPTIONS)
        if dropped:
            log.warning("ChoreographyPlanner %s: %s not passed to the LLM (credentials/identity stay with the "
                        "platform)", name, ", ".join(dropped))
        self.llm_kwargs = {k: v for k, v in llm_kwargs.items() if k not in FORBIDDEN_OPTIONS}
        self._llm = llm
        self._llm_args = (reasoning_model, api_key, api_base)
        self._local_counts: dict[str, int] = {}
        self.mcp_tools = list(mcp_tools)
        self._mcp_owner: dict[str, McpToolset] = {}  # tool name as offered -> its toolset (from the last listing)

    @property
    def llm(self) -> LLMProvider:
        if self._llm is None:
            model, key, base = self._llm_args
            overrides: dict[str, Any] = {}
            if model:
                overrides["model"] = model
            if key:
                overrides["api_key"] = key
            if base:
                overrides["base_url"] = base
            self._llm = provider_from_env(**overrides)
        return self._llm

    @llm.setter
    def llm(self, value: LLMProvider) -> None:
        self._llm = value

    # --- reasoning ---------------------------------------------------------------------------------------------
    async def _count_action(self, context: "PlatformContext", plan_id: str | None) -> int:
        if not plan_id:
            return 0
        from ..workflow import WorkflowState

        try:
            return int(await WorkflowState(context.memory, plan_id).increment(ACTION_COUNT_KEY))
        except Exception as exc:  # noqa: BLE001 - without memory, count in this environment only
            log.warning("plan %s: action count not stored (%s); counting in this process", plan_id, exc)
            self._local_counts[plan_id] = self._local_counts.get(plan_id, 0) + 1
            return self._local_counts[plan_id]

    def _system_prompt(self) -> str:
        base = self.system_instructions or "You are a planning agent that decides the next step of a workflow."
        return f"{base}\n\nStrategy: {STRATEGIES[self.planning_strategy]}\n\n{DECISION_FORMAT}"

    def _user_prompt(self, trigger: str, events_text: str, custom_context: dict[str, Any] | None,
                     count: int) -> str:
        parts = [f"Trigger: {trigger}", f"Actions taken so far in this plan: {max(count - 1, 0)} "
                 f"(limit {self.max_actions})", "Available events:", events_text or "(none)"]
        if custom_context:
            parts += ["Context:", json.dumps(custom_context, default=str, indent=1)]
        return "\n\n".join(parts)

    async def reason_next_action(
        self,
        trigger: str,
        context: "PlatformContext",
        plan_id: str | None = None,
        custom_context: dict[str, Any] | None = None,
    ) -> PlannerDecision:
        """Ask the LLM for the next action; returns a validated :class:`PlannerDecision` (see the module
        docstring). Raises :class:`UndiscoveredEventError`, ``ValueError`` for an answer that is no decision, and
        :class:`~soorma.ai.llm.LLMError` when the LLM cannot be reached."""
        count = await self._count_action(context, plan_id)
        if plan_id and count > self.max_actions:
            log.warning("plan %s: circuit breaker after %d actions (max_actions=%d): completing", plan_id,
                        count - 1, self.max_actions)
            return PlannerDecision(
                plan_id=plan_id,
                current_state="stopped",
                next_action=CompleteAction(
                    result={"status": "stopped", "reason": f"max_actions ({self.max_actions}) reached",
                            "context": custom_context or {}},
                    reasoning="circuit breaker: too many actions for one plan",
                ),
                reasoning="circuit breaker",
            )
        from .event_toolkit import EventToolkit

        toolkit = getattr(context, "toolkit", None) or EventToolkit(registry_client=context.registry)
        events = await toolkit.discover_actionable_events(topic=ACTION_REQUESTS, exclude_agents={self.name})
        events += await self._discover_mcp_tools({e["name"] for e in events})
        available = {e["name"] for e in events}
        messages = [
            {"role": "system", "content": self._system_prompt()},
            {"role": "user", "content": self._user_prompt(trigger, toolkit.format_as_prompt_text(events),
                                                          custom_context, count)},
        ]
        for attempt in range(2):
            answer = await self.llm.complete(messages, temperature=self.temperature, json_mode=True,
                                             **self.llm_kwargs)
            try:
                decision = decision_from_llm(answer.json(), plan_id or "")
            except Exception as exc:
                if attempt == 0:
                    messages += [{"role": "assistant", "content": answer.text},
                                 {"role": "user", "content": f"That is not a valid decision ({exc}). "
                                                             "Answer again with one JSON object as specified."}]
                    continue
                raise ValueError(f"the LLM returned no valid decision: {exc}") from exc
            unknown = [a.event_type for a in [decision.next_action] if isinstance(a, PublishAction)
                       and a.event_type not in available]
            if not unknown:
                log.info("plan %s: %s (confidence %.2f)", plan_id, decision.next_action.action, decision.confidence)
                return decision
            log.warning("plan %s: the LLM chose undiscovered event %s; rejected", plan_id, unknown[0])
            if attempt == 0:
                messages += [{"role": "assistant", "content": answer.text},
                             {"role": "user", "content": f"Event {unknown[0]!r} is not available. Choose only among: "
                                                         f"{', '.join(sorted(available)) or '(none: complete or wait)'}."}]
                continue
            raise UndiscoveredEventError(
                f"the LLM chose to publish {unknown[0]!r}, which no registered agent consumes "
                f"(available: {', '.join(sorted(available)) or 'none'})"
            )
        raise AssertionError("unreachable")

    # --- payloads ----------------------------------------------------------------------------------------------
    async def generate_payload(self, schema: Any, context: str) -> dict[str, Any]:
        """Ask the LLM for a payload that conforms to ``schema``, built from ``context`` (text: the goal, the
        findings so far, ...); returns it as a dict, with the schema's top-level defaults filled in.

        ``schema``: a registered payload schema (an object or dict with ``json_schema`` and ``schema_name``, as
        ``registry.get_schema`` returns), an event definition (its ``payload_schema``), or a JSON Schema itself.
        The answer is checked against the schema (``jsonschema``): an answer that does not conform is sent back
        once with the problems; a second one raises ``ValueError`` naming them. The prompt holds the schema and
        ``context`` only, never the agent's credentials."""
        json_schema, name = _schema_of(schema)
        from .event_toolkit import _validate

        messages = [
            {"role": "system", "content": PAYLOAD_INSTRUCTIONS},
            {"role": "user", "content": f"JSON Schema{f' ({name})' if name else ''}:\n"
                                        f"{json.dumps(json_schema, indent=1, sort_keys=True)}\n\nContext:\n{context}"},
        ]
        problems: list[str] = []
        for attempt in range(2):
            answer = await self.llm.complete(messages, temperature=0.0, json_mode=True, **self.llm_kwargs)
            try:
                payload = answer.json()
            except ValueError as exc:
                payload, problems = None, [str(exc)]
            else:
                problems = ["(root): not a JSON object"] if not isinstance(payload, dict) else \
                    _validate(payload, json_schema)
            if not problems:
                return _with_defaults(payload, json_schema)
            if attempt == 0:
                messages += [{"role": "assistant", "content": answer.text},
                             {"role": "user", "content": "That payload does not conform to the schema: "
                                                         f"{'; '.join(problems)}. Answer again with one JSON object."}]
        raise ValueError(f"the LLM generated no payload conforming to {name or 'the schema'}: {'; '.join(problems)}")

    # --- execution ---------------------------------------------------------------------------------------------
    async def execute_decision(
        self,
        decision: PlannerDecision,
        context: "PlatformContext",
        goal_event: Any = None,
        plan: "PlanContext | None" = None,
    ) -> str | None:
        """Carry out a decision; returns the id of the event it published (``None`` for WAIT).

        * PUBLISH: an action request on ``action-requests`` with a fresh correlation id that is added to the plan's
          ``correlation_ids`` (so its result comes back to ``on_transition``), ``plan_id``/``goal_id`` on the
          envelope, ``response_event`` = the action's or ``<event_type>.completed``; the plan is saved first.
        * COMPLETE: ``plan.finalize(result)`` (answers the goal with the goal's correlation id), or, without a plan,
          a response to ``goal_event``; then ``plan.completed`` on ``plan-events``.
        * WAIT: ``plan.request_input(reason, timeout=timeout_seconds)`` (the plan pauses; its goal is
          ``input-required`` until answered with ``POST /v1/goals/{id}/input/{request_id}``, and fails when the
          timeout fires first) and ``plan.waiting_for_input`` (with the ``request_id``) on ``plan-events``.
        * DELEGATE: a request of ``goal_event`` to whichever planner handles it, answered back to this plan.
        """
        action = decision.next_action
        if isinstance(action, PublishAction):
            return await self._publish(action, context, plan)
        if isinstance(action, CompleteAction):
            return await self._complete(action, context, goal_event, plan)
        if isinstance(action, WaitAction):
            if plan is None:
                raise ValueError("a WAIT decision needs the plan (execute_decision(..., plan=plan))")
            plan.results["_waiting_for"] = {"expected_event": action.expected_event,
                                            "timeout_seconds": action.timeout_seconds, "reason": action.reason}
            # An input request of the plan: the goal is input-required until a person answers through the goal API
            # (the answer comes back to on_transition), and its timeout is enforced by a durable timer (the plan
            # and its goal fail when it fires unanswered).
            request_id = await plan.request_input(action.reason, timeout=action.timeout_seconds or None)
            await context.bus.publish(PLAN_EVENTS, "plan.waiting_for_input", {
                "plan_id": plan.plan_id, "reason": action.reason, "expected_event": action.expected_event,
                "timeout_seconds": action.timeout_seconds, "request_id": request_id,
            }, correlation_id=plan.correlation_id or plan.plan_id, plan_id=plan.plan_id, goal_id=plan.goal_id)
            return None
        if isinstance(action, DelegateAction):
            return await self._request(context, plan, action.goal_event, action.goal_data,
                                       f"{action.goal_event}.result", ACTION_RESULTS)
        raise ValueError(f"unknown action {getattr(action, 'action', action)!r}")

    async def _discover_mcp_tools(self, taken: set[str]) -> list[dict[str, Any]]:
        """The MCP toolsets' tools as action entries (a name an event already has is left out: the event wins)."""
        found: list[dict[str, Any]] = []
        owners: dict[str, McpToolset] = {}
        for toolset in self.mcp_tools:
            try:
                entries = await toolset.discover()
            except Exception as exc:  # noqa: BLE001 - an unreachable MCP server takes its tools away, not the plan
                log.warning("MCP server %s: tools not listed (%s: %s)", toolset.client.url, type(exc).__name__, exc)
                continue
            for entry in entries:
                if entry["name"] not in taken and entry["name"] not in owners:
                    owners[entry["name"]] = toolset
                    found.append(entry)
        self._mcp_owner = owners
        return found

    async def _mcp_toolset(self, name: str) -> McpToolset | None:
        """The toolset serving tool ``name``, listing the toolsets again when this process has not seen it."""
        if self.mcp_tools and name not in self._mcp_owner:
            await self._discover_mcp_tools(set())
        return self._mcp_owner.get(name)

    async def _call_mcp(self, toolset: McpToolset, action: PublishAction, context: "PlatformContext",
                        plan: "PlanContext | None") -> str:
        """Call an MCP tool for a PUBLISH decision and publish its outcome as the action's result event."""
        correlation_id = action.correlation_id or derived_id(f"mcp:{action.event_type}")
        outcome = await toolset.call(action.event_type, action.data)
        envelope = EventEnvelope(
            id=derived_id(f"mcp-result:{action.event_type}"),
            type=action.response_event or f"{action.event_type}.completed",
            topic=EventTopic.ACTION_RESULTS,
            data={**outcome, "tool": action.event_type},
            correlation_id=correlation_id,
        )
        return await self._send(context, plan, envelope, correlation_id)

    async def _publish(self, action: PublishAction, context: "PlatformContext", plan: "PlanContext | None") -> str:
        toolset = await self._mcp_toolset(action.event_type) if action.topic == ACTION_REQUESTS else None
        if toolset is not None:
            return await self._call_mcp(toolset, action, context, plan)
        if action.topic != ACTION_REQUESTS:
            return await context.bus.publish(action.topic, action.event_type, action.data,
                                             correlation_id=action.correlation_id,
                                             plan_id=plan.plan_id if plan else None)
        return await self._request(context, plan, action.event_type, action.data,
                                   action.response_event or f"{action.event_type}.completed", action.response_topic)

    async def _request(self, context: "PlatformContext", plan: "PlanContext | None", event_type: str,
                       data: dict[str, Any], response_event: str, response_topic: str) -> str:
        correlation_id = derived_id(f"choreography:{event_type}")
        payload = dict(data or {})
        payload.setdefault("task_id", correlation_id)
        payload.setdefault("action_id", derived_id("action"))
        envelope = EventEnvelope(
            id=derived_id(f"event:{event_type}"),
            type=event_type,
            topic=EventTopic.ACTION_REQUESTS,
            data=payload,
            correlation_id=correlation_id,
            response_event=response_event,
            response_topic=response_topic or ACTION_RESULTS,
        )
        self._register_produced_event(event_type)
        return await self._send(context, plan, envelope, correlation_id)

    async def _send(self, context: "PlatformContext", plan: "PlanContext | None", envelope: EventEnvelope,
                    correlation_id: str) -> str:
        """Publish ``envelope`` (an action's request, or an MCP tool's result) for ``plan``: the plan, which then
        waits for ``correlation_id``, is saved first."""
        if plan is not None:
            envelope = envelope.model_copy(update={
                "plan_id": plan.plan_id, "goal_id": plan.goal_id, "session_id": plan.session_id,
                "tenant_id": plan.tenant_id or None, "user_id": plan.user_id or None,
                "trace_id": plan.trace_id,
            })
            plan.correlation_ids = [*plan.correlation_ids, correlation_id]
            event = current_event()
            plan.last_trigger_id = event.id if event is not None else None
            plan.last_action = envelope.model_dump(mode="json", exclude_none=True)
            if plan.status not in ("completed", "failed"):
                plan.status = "running"
            await plan.save()  # before the request, so its result finds the plan with this correlation id
        bus = context.bus

        async def send() -> None:
            await bus.publish_envelope(envelope)

        if not defer(send):
            await send()
        return envelope.id

    async def _complete(self, action: CompleteAction, context: "PlatformContext", goal_event: Any,
                        plan: "PlanContext | None") -> str | None:
        if plan is not None:
            event_id = await plan.finalize(action.result)
            await context.bus.publish(PLAN_EVENTS, "plan.completed", {
                "plan_id": plan.plan_id, "reasoning": action.reasoning,
            }, correlation_id=plan.correlation_id or plan.plan_id, plan_id=plan.plan_id, goal_id=plan.goal_id)
            return event_id
        response_event = getattr(goal_event, "response_event", None)
        if not response_event:
            log.warning("COMPLETE without a plan or a goal event naming a response_event: nothing answered")
            return None
        return await context.bus.respond(response_event, {"result": action.result},
                                         getattr(goal_event, "correlation_id", None),
                                         topic=getattr(goal_event, "response_topic", None) or ACTION_RESULTS)

    def _next_state(self, plan: "PlanContext", event: EventEnvelope) -> str | None:
        return None  # the LLM decides; the state machine is not consulted


__all__ = ["ChoreographyPlanner", "PlanAction", "UndiscoveredEventError"]
