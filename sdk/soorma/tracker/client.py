"""soorma-core's ``soorma.tracker.client`` module path.

soorma-core's ``TrackerServiceClient`` (the HTTP client of its tracker service) and its ``context.tracker`` wrapper
are one class here, :class:`soorma.clients.tracker.TrackerClient`; :data:`TrackerServiceClient` is an alias of it,
not a second client. ``TrackerServiceClient()`` with no arguments reaches the platform of the environment
(``SOORMA_TRACKER_URL``, else ``SOORMA_API_URL``).
"""

from soorma.clients.tracker import PlanProgress, TrackerClient

#: soorma-core's tracker service client: the same class as :class:`~soorma.clients.tracker.TrackerClient`.
TrackerServiceClient = TrackerClient

__all__ = ["PlanProgress", "TrackerClient", "TrackerServiceClient"]
