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


class PlatformUnavailableError(PlatformError):
    """503: a platform dependency is unavailable now (e.g. the database resuming from a pause); ``retry_after_s``:
    the seconds the platform's ``Retry-After`` asked for (``None`` without one). Inside an agent's handler it is
    not a failure of the event: the runtime reports the record "retry later" (:func:`retry_later_seconds`), which
    the delivery layer redelivers without spending its deliveries."""

    def __init__(self, detail: Any, *, retry_after_s: float | None = None, method: str = "", url: str = "") -> None:
        super().__init__(503, detail, method=method, url=url)
        self.retry_after_s = retry_after_s


#: Seconds to wait before a retry when the platform was unreachable or named no ``Retry-After``.
DEFAULT_RETRY_LATER_S = 5.0


def retry_later_seconds(exc: BaseException) -> float | None:
    """Seconds to wait before retrying when ``exc`` (or an exception it was raised from) means "the platform is
    unavailable now, retry later" — :class:`PlatformUnavailableError`, :class:`PlatformConnectionError`, or any
    exception with a numeric ``retry_after_s`` attribute (the functions' ``DatabaseUnavailable``); ``None`` for any
    other failure."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (PlatformUnavailableError, PlatformConnectionError)):
            return float(getattr(current, "retry_after_s", None) or DEFAULT_RETRY_LATER_S)
        retry_after = getattr(current, "retry_after_s", None)
        if isinstance(retry_after, (int, float)) and not isinstance(retry_after, bool):
            return float(retry_after) or DEFAULT_RETRY_LATER_S
        current = current.__cause__ or current.__context__
    return None


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
