"""soorma-core's ``soorma_common`` package (its DTO library), so code written against it imports here.

Every module re-exports this platform's own models under soorma-core's names, or for a few DTOs that have no
counterpart here (plan-type definitions, task-state payloads, topic-fixed envelopes) defines them thinly; see each
module: :mod:`.models` (registry and memory DTOs), :mod:`.events`, :mod:`.state`, :mod:`.decisions`, :mod:`.a2a`,
:mod:`.tracker`, :mod:`.tracking`, :mod:`.tenancy`. The top level keeps the names code usually takes from it.
"""

from soorma import __version__
from soorma.events import EventDefinition, EventEnvelope, EventTopic
from soorma.models import AgentDefinition, DiscoveredAgent

from .models import AgentCapability, BaseDTO

__all__ = ["AgentCapability", "AgentDefinition", "BaseDTO", "DiscoveredAgent", "EventDefinition", "EventEnvelope",
           "EventTopic", "__version__"]
