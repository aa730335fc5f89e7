"""soorma-core's ``soorma.memory.client`` module path.

soorma-core has two memory clients: the low-level ``MemoryServiceClient`` (one method per route) and the
``context.memory`` wrapper that fills ``tenant_id``/``user_id`` from the event being handled. Here one client does
both (:class:`soorma.clients.memory.MemoryClient`: every method takes optional ``tenant_id``/``user_id`` and
defaults them to the handled event's), so :data:`MemoryServiceClient` is an alias of it, not a second client.
``MemoryServiceClient()`` with no arguments reaches the platform of the environment (``SOORMA_MEMORY_URL``, else
``SOORMA_API_URL``), and soorma-core's ``(base_url, timeout, auth_token, auth_token_provider)`` is accepted.
"""

from soorma.clients.memory import MemoryClient

#: soorma-core's low-level memory client: the same class as :class:`~soorma.clients.memory.MemoryClient`.
MemoryServiceClient = MemoryClient

__all__ = ["MemoryClient", "MemoryServiceClient"]
