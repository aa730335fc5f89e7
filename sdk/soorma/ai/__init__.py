"""LLM-driven planning and discovery: :class:`ChoreographyPlanner` (:mod:`.choreography`), :class:`EventToolkit`
(:mod:`.event_toolkit`), :class:`EventSelector` (:mod:`.selection`), the decision models (:mod:`.decisions`) and the
provider-neutral LLM interface (:mod:`.llm`: OpenAI-compatible HTTP and Amazon Bedrock Converse).

Attributes are imported on first use, so ``import soorma.ai`` costs nothing until one is needed.
"""

from __future__ import annotations

from soorma._lazy import lazy_exports

_EXPORTS = {
    "ChoreographyPlanner": ".choreography",
    "UndiscoveredEventError": ".choreography",
    "EventToolkit": ".event_toolkit",
    "EventSelector": ".selection",
    "EventSelectionError": ".selection",
    "CompleteAction": ".decisions",
    "DelegateAction": ".decisions",
    "EventDecision": ".decisions",
    "PlanAction": ".decisions",
    "PlannerDecision": ".decisions",
    "PublishAction": ".decisions",
    "WaitAction": ".decisions",
    "BedrockConverseProvider": ".llm",
    "LLMError": ".llm",
    "LLMProvider": ".llm",
    "LLMResponse": ".llm",
    "OpenAICompatibleProvider": ".llm",
    "PlatformProvider": ".llm",
    "provider_from_env": ".llm",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_exports(__name__, _EXPORTS)
