"""Compatibility names for code written against soorma-core, whose models live in the ``soorma-common`` package:
``from soorma_common import EventDefinition, EventTopic, AgentDefinition`` and the submodules ``soorma_common.events``,
``soorma_common.state``, ``soorma_common.decisions``, ``soorma_common.a2a`` re-export this SDK's own classes."""

from soorma.events import EventDefinition, EventEnvelope, EventTopic
from soorma.models import AgentDefinition, DiscoveredAgent

AgentCapability = dict  # soorma-core's capability model; a dict with task_name/consumed_event/... is accepted

__all__ = ["AgentCapability", "AgentDefinition", "DiscoveredAgent", "EventDefinition", "EventEnvelope", "EventTopic"]
