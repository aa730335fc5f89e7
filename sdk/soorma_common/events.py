"""soorma-core's ``soorma_common.events``."""

from soorma.events import EventDefinition, EventEnvelope, EventTopic

__all__ = ["EventDefinition", "EventEnvelope", "EventTopic"]
