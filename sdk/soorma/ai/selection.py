"""``EventSelector``: let an LLM route something to one of the events the registry knows (reference §1.10).

``EventSelector(context, topic="action-requests", prompt_template=None, model=None, api_key=None, api_base=None, *,
llm=None, temperature=0.0)``:

* ``await selector.select_event(state) -> EventDecision`` — discovers the actionable events on ``topic``, asks the
  LLM to pick one and build its payload, and checks the answer: an event that was not discovered raises
  :class:`EventSelectionError` (never published), as does an answer that is not a decision;
* ``await selector.publish_decision(decision, correlation_id, response_event=None, response_topic=None)`` —
  publishes it (an action request when ``response_event`` is given).

The LLM is ``llm`` if given, else built from ``model``/``api_key``/``api_base`` over the ``SOORMA_LLM_*`` settings
(:func:`soorma.ai.llm.provider_from_env`). ``prompt_template`` may use ``{events}`` and ``{state}``.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any, Mapping

from .decisions import EventDecision
from .llm import LLMProvider, provider_from_env

if TYPE_CHECKING:
    from ..context import PlatformContext

log = logging.getLogger("soorma.ai")

DEFAULT_PROMPT = """Choose the single best event to handle the situation below, among the available events only.

Available events:
{events}

Situation:
{state}

Answer with one JSON object: {{"event_type": "<one of the available event names>", "topic": "<its topic>",
"payload": {{...fields the event expects...}}, "reasoning": "<one sentence>", "confidence": <0..1>}}"""


class EventSelectionError(ValueError):
    """The LLM's choice was not usable (unknown event, or not a decision)."""


def _llm_from(model: str | None, api_key: str | None, api_base: str | None) -> LLMProvider:
    overrides: dict[str, Any] = {}
    if model:
        overrides["model"] = model
    if api_key:
        overrides["api_key"] = api_key
    if api_base:
        overrides["base_url"] = api_base
    return provider_from_env(**overrides)


class EventSelector:
    def __init__(
        self,
        context: PlatformContext,
        topic: str = "action-requests",
        prompt_template: str | None = None,
        model: str | None = None,
        api_key: str | None = None,
        api_base: str | None = None,
        *,
        llm: LLMProvider | None = None,
        temperature: float = 0.0,
    ) -> None:
        self.context = context
        self.topic = str(topic)
        self.prompt_template = prompt_template or DEFAULT_PROMPT
        self.temperature = temperature
        self._llm = llm
        self._llm_args = (model, api_key, api_base)

    @property
    def llm(self) -> LLMProvider:
        if self._llm is None:
            self._llm = _llm_from(*self._llm_args)
        return self._llm

    async def select_event(self, state: Mapping[str, Any] | str) -> EventDecision:
        from .event_toolkit import EventToolkit

        toolkit = self.context.toolkit or EventToolkit(registry_client=self.context.registry)
        events = await toolkit.discover_actionable_events(topic=self.topic)
        if not events:
            raise EventSelectionError(f"no agent consumes any event on {self.topic}: nothing to select")
        text = toolkit.format_as_prompt_text(events)
        situation = state if isinstance(state, str) else json.dumps(state, default=str, indent=1)
        prompt = self.prompt_template.format(events=text, state=situation)
        answer = await self.llm.complete([{"role": "user", "content": prompt}], temperature=self.temperature,
                                         json_mode=True)
        try:
            raw = answer.json()
            if isinstance(raw, dict) and "payload" not in raw and isinstance(raw.get("data"), dict):
                raw["payload"] = raw.pop("data")
            decision = EventDecision.model_validate(raw)
        except Exception as exc:
            raise EventSelectionError(f"the LLM's answer is not an event decision: {exc}") from exc
        known = {e["name"]: e for e in events}
        if decision.event_type not in known:
            raise EventSelectionError(
                f"the LLM chose {decision.event_type!r}, which no agent consumes on {self.topic} "
                f"(available: {', '.join(sorted(known))})"
            )
        decision.topic = known[decision.event_type]["topic"]
        return decision

    async def publish_decision(
        self,
        decision: EventDecision,
        correlation_id: str | None,
        response_event: str | None = None,
        response_topic: str | None = None,
    ) -> str:
        """Publish the chosen event; returns its id."""
        bus = self.context.bus
        if response_event:
            return await bus.request(decision.event_type, decision.payload, response_event,
                                     correlation_id=correlation_id,
                                     response_topic=response_topic or "action-results")
        return await bus.publish(decision.topic, decision.event_type, decision.payload, correlation_id=correlation_id)


__all__ = ["EventSelectionError", "EventSelector"]
