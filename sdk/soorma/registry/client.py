"""soorma-core's ``soorma.registry.client`` module path.

:class:`RegistryClient` *is* :class:`soorma.clients.registry.RegistryClient` (an alias, not a second client): the
same registry routes (``/v1/events``, ``/v1/agents``, ``/v1/schemas``; docs/architecture.md), and soorma-core's
constructor ``RegistryClient(base_url=None, timeout=30.0, auth_token=None, auth_token_provider=None)`` is accepted
by it (:class:`soorma.clients._http.HttpClient`).
"""

from soorma.clients.registry import RegistryClient
from soorma.events import EventDefinition
from soorma.models import AgentDefinition, DiscoveredAgent

__all__ = ["AgentDefinition", "DiscoveredAgent", "EventDefinition", "RegistryClient"]
