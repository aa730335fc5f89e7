"""soorma-core's ``soorma.tracker`` package path: ``from soorma.tracker import TrackerServiceClient``.

An import path only: ``TrackerServiceClient`` is :class:`soorma.clients.tracker.TrackerClient` (see
:mod:`.client`)."""

from .client import TrackerServiceClient

__all__ = ["TrackerServiceClient"]
