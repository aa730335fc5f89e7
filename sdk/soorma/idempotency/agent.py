"""``AgentIdempotency``: every event an agent function handles is handled at most once in effect, across execution
environments, by event id, with Powertools' ``idempotent_function`` on :class:`PlatformPersistenceLayer`.

The Lambda entry (:mod:`soorma.runtime`) calls :meth:`AgentIdempotency.handle` for each record of a batch with a
callable that dispatches the event to the agent's handlers. Powertools (source: :data:`DOCS_URL`) then:

1. writes an INPROGRESS record for key ``soorma.<agent name>#<md5 of [agent name, event id]>``, with
   ``in_progress_expiry`` = now + the invocation's remaining time (ms) and ``expiry`` = now +
   ``expires_after_seconds``; one round trip (``PUT``);
2. if a COMPLETED record exists (another environment, or an earlier delivery, handled the event), skips the
   handlers: :meth:`handle` returns ``(0, True)``; no extra round trip (the 409 carries the record), none at all when
   this environment handled it (Powertools' local cache);
3. if a live INPROGRESS record exists (another invocation is handling it right now, or one whose release failed):
   its in-progress expiry is bounded by its owner invocation's deadline, so :meth:`AgentIdempotency.handle` waits
   for it (polling the record) when that expiry falls within this invocation's own budget, then runs the event (the
   owner's record expired or was released) or skips it (the owner completed it). Only when the wait would not fit
   does it raise ``IdempotencyAlreadyInProgressError``: the record fails and the delivery layer redelivers it later.
   Waiting instead of failing keeps a delivery from being spent on an event nobody is working on any more (issue 12,
   finding 11: four deliveries refused this way dead-lettered an event whose release had been throttled);
4. runs the handlers; on success marks the record COMPLETED with the response ``{"handlers": n}`` (``PATCH``); when a
   handler raises, deletes the record (``DELETE``, retried by :class:`PlatformPersistenceLayer` on a transient error:
   a record left behind would hold the event until its in-progress expiry) and re-raises, so the delivery layer's
   retry runs the event again.

Payload validation: the record also holds a hash of the event's ``[topic, type]``; an event reusing a handled id with
another topic or type raises ``IdempotencyValidationError`` (a failed record, dead-lettered once its deliveries are
spent) instead of being silently skipped.

The records belong to the identity the agent acts for while handling the event: its credential, for the event's
service tenant and user.
"""

from __future__ import annotations

import copy
import threading
import time
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any, Callable, Mapping

from soorma.idempotency.persistence import DOCS_URL, PlatformPersistenceLayer
from soorma import settings

from aws_lambda_powertools.utilities.idempotency.config import IdempotencyConfig  # noqa: E402  (after the lazy load)
from aws_lambda_powertools.utilities.idempotency.idempotency import idempotent_function  # noqa: E402
from aws_lambda_powertools.utilities.idempotency.exceptions import (  # noqa: E402
    IdempotencyAlreadyInProgressError,
    IdempotencyItemNotFoundError,
)

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.idempotency.persistence.base import BasePersistenceLayer

    from soorma.agents.base import Agent
    from soorma.events import EventEnvelope

#: Seconds a COMPLETED record keeps an event from running again (Powertools' default, one hour);
#: ``SOORMA_IDEMPOTENCY_EXPIRES_SECONDS`` overrides it.
DEFAULT_EXPIRES_SECONDS = settings.IDEMPOTENCY_EXPIRES_SECONDS.default
EXPIRES_ENV = settings.IDEMPOTENCY_EXPIRES_SECONDS.name

#: Seconds :meth:`AgentIdempotency.handle` keeps in reserve when deciding how long it may wait for another
#: invocation's INPROGRESS record, and how often it polls that record meanwhile.
WAIT_MARGIN_SECONDS = 2.0
WAIT_POLL_SECONDS = 0.25

#: In-progress expiry (ms from now) when the invocation's remaining time is unknown (no Lambda context, e.g.
#: ``agent(batch)`` in a script): a crashed run's record becomes retryable after this long.
FALLBACK_IN_PROGRESS_MS = 300_000


class _Remaining:
    """The one method of a Lambda context Powertools reads (``register_lambda_context``)."""

    __slots__ = ("millis",)

    def __init__(self, millis: int) -> None:
        self.millis = millis

    def get_remaining_time_in_millis(self) -> int:
        return self.millis


def _remaining_millis(lambda_context: Any) -> int:
    getter = getattr(lambda_context, "get_remaining_time_in_millis", None)
    if getter is not None:
        try:
            return max(0, int(getter()))
        except Exception:  # a fake or partial context
            pass
    return FALLBACK_IN_PROGRESS_MS


def expiry_from_env(environ: Mapping[str, str] | None = None) -> int:
    """``SOORMA_IDEMPOTENCY_EXPIRES_SECONDS`` (default :data:`DEFAULT_EXPIRES_SECONDS`). Raises ``ValueError`` for
    anything but a positive integer."""
    return settings.IDEMPOTENCY_EXPIRES_SECONDS.get(environ)


class AgentIdempotency:
    """Powertools idempotency around one agent's event dispatch.

    ``AgentIdempotency(agent, persistence_store=None, *, expires_after_seconds=None, local_cache_max_items=None)``:
    ``persistence_store`` defaults to a :class:`PlatformPersistenceLayer` over ``agent.context.memory``;
    ``expires_after_seconds`` to :func:`expiry_from_env`; the local cache of COMPLETED records (Powertools'
    ``use_local_cache``) holds as many events as the agent's own per-environment cache.
    """

    def __init__(
        self,
        agent: "Agent",
        persistence_store: "BasePersistenceLayer | None" = None,
        *,
        expires_after_seconds: int | None = None,
        local_cache_max_items: int | None = None,
    ) -> None:
        self.agent = agent
        self.persistence_store = persistence_store or PlatformPersistenceLayer(lambda: agent.context.memory)
        self.config = IdempotencyConfig(
            event_key_jmespath="[agent, event_id]",
            payload_validation_jmespath="[topic, type]",
            raise_on_no_idempotency_key=True,
            expires_after_seconds=expires_after_seconds or expiry_from_env(),
            use_local_cache=True,
            local_cache_max_items=local_cache_max_items or max(1, getattr(agent, "_cache_size", 256)),
            response_hook=self._replayed,
        )
        self.key_prefix = f"soorma.{agent.name}"
        # Powertools reads the invocation's remaining time from config.lambda_context: shared by threads running
        # batches at once, one thread's deadline would become another's in-progress expiry. Each thread gets its own
        # config (a copy) and wrapped function.
        self._per_thread = threading.local()
        self._function = self._wrap(self.config)

    def _wrap(self, config: IdempotencyConfig) -> Callable[..., Any]:
        wrapped: Callable[..., Any] = idempotent_function(  # Powertools declares it as returning Any
            self._dispatch, data_keyword_argument="event", persistence_store=self.persistence_store,
            config=config, key_prefix=self.key_prefix,
        )
        return wrapped

    def _thread_function(self) -> tuple[IdempotencyConfig, Callable[..., Any]]:
        found = getattr(self._per_thread, "pair", None)
        if found is None:
            if threading.current_thread() is threading.main_thread():
                found = (self.config, self._function)
            else:
                config = copy.copy(self.config)
                found = (config, self._wrap(config))
            self._per_thread.pair = found
        return found

    @staticmethod
    def _dispatch(dispatch: Callable[[], int], *, event: dict[str, Any]) -> dict[str, Any]:
        return {"handlers": dispatch()}

    @staticmethod
    def _replayed(response: Any, idempotent_data: Any) -> dict[str, Any]:
        out = dict(response) if isinstance(response, Mapping) else {}
        out["replayed"] = True
        return out

    def payload(self, envelope: "EventEnvelope") -> dict[str, Any]:
        """What Powertools hashes: ``{"agent", "event_id", "topic", "type"}`` (key ``[agent, event_id]``,
        validation ``[topic, type]``)."""
        return {"agent": self.agent.name, "event_id": envelope.id, "topic": str(envelope.topic),
                "type": envelope.type}

    def handle(self, envelope: "EventEnvelope", dispatch: Callable[[], int], lambda_context: Any = None
               ) -> tuple[int, bool]:
        """Run ``dispatch()`` (which returns how many handlers ran) unless the event was already handled.

        Returns ``(handlers run now, replayed)``; ``replayed`` is true when a COMPLETED record made it skip.
        Raises what ``dispatch`` raised (after deleting the record), ``IdempotencyAlreadyInProgressError`` when
        another invocation holds a live INPROGRESS record, ``IdempotencyValidationError`` when the record's event had
        another topic or type, ``IdempotencyPersistenceLayerError`` when the store failed.
        """
        started = time.monotonic()
        remaining_ms = _remaining_millis(lambda_context)
        config, function = self._thread_function()
        config.register_lambda_context(_Remaining(remaining_ms))  # type: ignore[arg-type]
        store = self.persistence_store
        acting_for = getattr(store, "acting_for", None)
        scope = ExitStack()
        if acting_for is not None:
            from soorma._current import delivering

            # the records belong to the event's tenant and user: send its delivery grant (soorma.grants)
            scope.enter_context(acting_for(envelope.tenant_id, envelope.user_id))
            scope.enter_context(delivering(envelope))
        # Wait for another invocation's INPROGRESS record at most until half of this invocation's budget is gone:
        # the other half is left for running the handlers once the record is released or has expired.
        wait_until = started + max(0.0, remaining_ms / 1000.0 - WAIT_MARGIN_SECONDS) / 2
        with scope:
            while True:
                try:
                    result = function(dispatch, event=self.payload(envelope))
                    break
                except IdempotencyAlreadyInProgressError:
                    if not self._wait_for_owner(envelope, wait_until):
                        raise
                    # the owner's record is gone, expired or completed: try again (and skip it if completed)
                    config.register_lambda_context(_Remaining(max(0, remaining_ms - int(
                        (time.monotonic() - started) * 1000))))  # type: ignore[arg-type]
        if isinstance(result, Mapping) and result.get("replayed"):
            return 0, True
        return int((result or {}).get("handlers", 0)), False

    def _wait_for_owner(self, envelope: "EventEnvelope", wait_until: float) -> bool:
        """Poll the event's INPROGRESS record until it is gone, COMPLETED or past its in-progress expiry (``True``:
        try again), or until ``wait_until`` (``time.monotonic()``) would come first (``False``: give up now, without
        sleeping, when the record's expiry is beyond it)."""
        store = self.persistence_store
        key = store._get_hashed_idempotency_key(self.payload(envelope))  # noqa: SLF001 - Powertools' own key
        while True:
            try:
                record = store._get_record(key)  # noqa: SLF001 - the storage operation, bypassing the local cache
            except IdempotencyItemNotFoundError:
                return True
            except Exception:  # noqa: BLE001 - the store failed: let the delivery layer retry
                return False
            if record.status != "INPROGRESS":
                return True
            now_ms = time.time() * 1000
            expiry_ms = record.in_progress_expiry_timestamp
            if expiry_ms is not None and expiry_ms <= now_ms:
                return True
            if expiry_ms is not None and time.monotonic() + (expiry_ms - now_ms) / 1000.0 > wait_until:
                return False  # the owner's deadline is beyond what this invocation can wait
            if time.monotonic() >= wait_until:
                return False
            time.sleep(min(WAIT_POLL_SECONDS, max(0.0, wait_until - time.monotonic())))

    def clear_cache(self) -> None:
        """Forget the locally cached COMPLETED records (tests, benchmarks)."""
        clear = getattr(self.persistence_store, "clear_cache", None)
        if clear is not None:
            clear()


__all__ = ["AgentIdempotency", "DEFAULT_EXPIRES_SECONDS", "DOCS_URL", "EXPIRES_ENV", "expiry_from_env"]
