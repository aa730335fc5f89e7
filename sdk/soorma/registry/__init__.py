"""soorma-core's ``soorma.registry`` package path: ``from soorma.registry.client import RegistryClient``.

An import path only: the client is :class:`soorma.clients.registry.RegistryClient` (see :mod:`.client`)."""
