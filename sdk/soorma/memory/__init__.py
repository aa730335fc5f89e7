"""soorma-core's ``soorma.memory`` package path: ``from soorma.memory import MemoryServiceClient``.

An import path only: ``MemoryServiceClient`` is :class:`soorma.clients.memory.MemoryClient` (see :mod:`.client`)."""

from .client import MemoryServiceClient

__all__ = ["MemoryServiceClient"]
