"""Exceptions raised by the SDK."""

from __future__ import annotations

from typing import Any


class SoormaError(Exception):
    """Base class of the SDK's own errors."""


class PlatformError(SoormaError):
    """A platform route answered with an error status (4xx/5xx).

    ``status``: HTTP status (``0`` when the platform could not be reached at all); ``detail``: the ``detail`` of the
    ``{"detail": ...}`` error body, or the raw text; ``method`` and ``url`` of the failed request.
    """

    def __init__(self, status: int, detail: Any, *, method: str = "", url: str = "") -> None:
        self.status = status
        self.detail = detail
        self.method = method
        self.url = url
        where = f"{method} {url} " if method or url else ""
        super().__init__(f"{where}failed with {status}: {detail}")


class PlatformConnectionError(PlatformError):
    """The platform could not be reached (connection refused, DNS, timeout); ``status`` is 0."""

    def __init__(self, detail: Any, *, method: str = "", url: str = "") -> None:
        super().__init__(0, detail, method=method, url=url)


class ConflictError(PlatformError):
    """409: the record changed since it was read (optimistic concurrency on task and plan state).

    Inside a handler the agent re-runs the handler (it re-reads the record and re-applies its change); elsewhere,
    read the record again and retry.
    """


class TaskNotFoundError(SoormaError):
    """No saved task context matches (``ResultContext.restore_task()`` with an unknown sub-task id)."""


class MalformedEventError(SoormaError):
    """A delivered record's body is not a valid event envelope (a permanent failure: it ends in the DLQ)."""


class ForeignTenantEventError(SoormaError):
    """A delivered envelope names another platform tenant than the one the agent function was deployed for
    (``SOORMA_PLATFORM_TENANT_ID``): never handled, a permanent failure (it ends in the DLQ at once on the bridge)."""
