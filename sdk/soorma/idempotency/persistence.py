"""``PlatformPersistenceLayer``: Powertools' idempotency records kept by the platform's memory function (PostgreSQL),
over the memory client (HTTP, ``/v1/memory/idempotency/{key}``).

Powertools' persistence layers implement four storage operations of ``BasePersistenceLayer``
(https://docs.powertools.aws.dev/lambda/python/latest/utilities/idempotency/#bring-your-own-persistent-store;
source: ``aws_lambda_powertools/utilities/idempotency/persistence/base.py``); this one maps them to the memory routes
(:mod:`soorma.functions.memory.resources.idempotency`):

=================  ===========================================  ===================================================
Powertools         route                                        semantics
=================  ===========================================  ===================================================
``_put_record``    ``PUT /v1/memory/idempotency/{key}``         create unless a live record exists: 409 when one
                                                                does (none, expired, or INPROGRESS past its
                                                                in-progress expiry may be overwritten), with the
                                                                live record, as DynamoDB's
                                                                ``ReturnValuesOnConditionCheckFailure``
``_get_record``    ``GET``                                      the record, 404 → ``IdempotencyItemNotFoundError``
``_update_record`` ``PATCH``                                    status, expiry, response (and payload hash)
``_delete_record`` ``DELETE``                                   404 is fine
=================  ===========================================  ===================================================

Records are scoped by the identity the calls act for (row-level security on the three identity columns): the
agent's credentials, acting for the service tenant and user of the event being handled — set them for a block with
:meth:`PlatformPersistenceLayer.acting_for` (the agent runtime does), else the memory client's usual rules apply.

The four operations are synchronous, as Powertools calls them; the memory client is asynchronous, so each call is run
to completion on the execution environment's event loop (:func:`soorma.environment.run`; another ``runner`` may be given).
Calling them from inside a running event loop therefore raises ``RuntimeError`` (which Powertools reports as
``IdempotencyPersistenceLayerError``).
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Iterator, TypedDict, TypeVar, Union, cast

from soorma.idempotency._powertools import load as _load_powertools

_load_powertools()

from aws_lambda_powertools.utilities.idempotency.exceptions import (  # noqa: E402
    IdempotencyItemAlreadyExistsError,
    IdempotencyItemNotFoundError,
    IdempotencyValidationError,
)
from aws_lambda_powertools.utilities.idempotency.persistence.base import BasePersistenceLayer  # noqa: E402
from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import DataRecord  # noqa: E402

if TYPE_CHECKING:
    from soorma.clients.memory import IdempotencyRecord, MemoryClient
    from soorma.context import PlatformContext

T = TypeVar("T")

class _Identity(TypedDict):
    """The identity arguments of the memory client's calls."""

    tenant_id: str | None
    user_id: str | None


MemorySource = Union["MemoryClient", "PlatformContext", Callable[[], "MemoryClient"], None]

#: Powertools' documentation of the utility this layer serves.
DOCS_URL = "https://docs.powertools.aws.dev/lambda/python/latest/utilities/idempotency/"

#: Attempts of the ``DELETE`` that releases a record after a failed handler, and the first backoff (doubling).
DELETE_ATTEMPTS = 4
DELETE_BACKOFF_SECONDS = 0.2


def _default_runner(awaitable: Awaitable[T]) -> T:
    from soorma.environment import run

    return run(awaitable)


class PlatformPersistenceLayer(BasePersistenceLayer):
    """Powertools ``BasePersistenceLayer`` on the memory function's ``/v1/memory/idempotency/{key}`` routes.

    ``PlatformPersistenceLayer(memory=None, *, runner=None)``:

    * ``memory``: a :class:`~soorma.clients.memory.MemoryClient`, a :class:`~soorma.context.PlatformContext` (its
      ``memory`` is used), or a zero-argument callable returning a client (read on every call, so an agent's context
      set later is honoured). ``None``: the execution environment's context (:func:`soorma.environment.environment_context`).
    * ``runner``: runs one coroutine to completion from synchronous code (default :func:`soorma.environment.run`, the
      environment's event loop).

    Use it like any Powertools layer (source: :data:`DOCS_URL`)::

        from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig, idempotent_function
        from soorma.idempotency import PlatformPersistenceLayer

        layer = PlatformPersistenceLayer(context)

        @idempotent_function(data_keyword_argument="order", persistence_store=layer,
                             config=IdempotencyConfig(event_key_jmespath="order_id"))
        def process(order: dict) -> dict: ...

    Errors: ``_put_record`` raises ``IdempotencyItemAlreadyExistsError`` (with ``old_data_record``) when a live record
    holds the key, or ``IdempotencyValidationError`` when payload validation is on and that record's hash differs;
    ``_get_record`` raises ``IdempotencyItemNotFoundError``; any of them raises
    :class:`~soorma.errors.PlatformError` when the platform answers an error or cannot be reached (Powertools wraps it
    in ``IdempotencyPersistenceLayerError``).
    """

    def __init__(self, memory: MemorySource = None, *, runner: Callable[[Awaitable[Any]], Any] | None = None) -> None:
        # Powertools leaves BasePersistenceLayer.__init__ unannotated
        super().__init__()  # type: ignore[no-untyped-call]
        self._memory_source = memory
        self._run = runner or _default_runner
        self._scope: ContextVar[tuple[str | None, str | None]] = ContextVar(
            f"soorma_idempotency_scope_{id(self)}", default=(None, None)
        )

    # --- where and for whom ------------------------------------------------------------------------------------
    @property
    def memory(self) -> "MemoryClient":
        """The memory client the records go through."""
        source = self._memory_source
        if source is None:
            from soorma.environment import environment_context

            return environment_context().memory
        if callable(source) and not hasattr(source, "create_idempotency_record"):
            return source()
        return cast("MemoryClient", getattr(source, "memory", source))  # a PlatformContext, or the client itself

    @contextmanager
    def acting_for(self, tenant_id: str | None, user_id: str | None) -> Iterator[None]:
        """Within the block, records belong to service tenant ``tenant_id`` and user ``user_id`` (sent as the identity
        headers an ``agent`` principal may set; ``None`` = the credential's own identity)."""
        token = self._scope.set((tenant_id, user_id))
        try:
            yield
        finally:
            self._scope.reset(token)

    def _scoped(self) -> _Identity:
        tenant_id, user_id = self._scope.get()
        return {"tenant_id": tenant_id, "user_id": user_id}

    def clear_cache(self) -> None:
        """Forget the locally cached COMPLETED records (``IdempotencyConfig(use_local_cache=True)``)."""
        cache = getattr(self, "_cache", None)
        if cache is not None:
            cache.clear()

    # --- BasePersistenceLayer ----------------------------------------------------------------------------------
    @staticmethod
    def _to_data_record(record: "IdempotencyRecord") -> DataRecord:
        return DataRecord(
            idempotency_key=record.key,
            status=record.status,
            expiry_timestamp=record.expiry_timestamp,
            in_progress_expiry_timestamp=record.in_progress_expiry_timestamp,
            response_data=record.response_data or "",
            payload_hash=record.payload_hash or "",
        )

    def _get_record(self, idempotency_key: str) -> DataRecord:
        """``GET``; raises ``IdempotencyItemNotFoundError`` when there is no record."""
        record = self._run(self.memory.get_idempotency_record(idempotency_key, **self._scoped()))
        if record is None:
            raise IdempotencyItemNotFoundError
        return self._to_data_record(record)

    def _put_record(self, data_record: DataRecord) -> None:
        """``PUT`` (conditional create, Powertools' DynamoDB condition). Raises ``IdempotencyItemAlreadyExistsError``
        carrying the live record, after validating its payload hash like the DynamoDB layer does."""
        from soorma.clients.memory import IdempotencyRecordExists

        payload_hash = data_record.payload_hash if self.payload_validation_enabled and data_record.payload_hash else ""
        try:
            self._run(
                self.memory.create_idempotency_record(
                    data_record.idempotency_key,
                    status=data_record.status,
                    expiry_timestamp=int(data_record.expiry_timestamp or 0),
                    in_progress_expiry_timestamp=data_record.in_progress_expiry_timestamp,
                    payload_hash=payload_hash,
                    **self._scoped(),
                )
            )
        except IdempotencyRecordExists as exc:
            if exc.record is None:
                raise IdempotencyItemAlreadyExistsError() from exc
            old = self._to_data_record(exc.record)
            try:
                self._validate_payload(data_payload=data_record, stored_data_record=old)
                self._save_to_cache(data_record=old)
            except IdempotencyValidationError as invalid:
                raise invalid from exc
            raise IdempotencyItemAlreadyExistsError(old_data_record=old) from exc

    def _update_record(self, data_record: DataRecord) -> None:
        """``PATCH``: status, expiry and response data; the payload hash too when validation is on."""
        self._run(
            self.memory.update_idempotency_record(
                data_record.idempotency_key,
                status=data_record.status,
                expiry_timestamp=int(data_record.expiry_timestamp or 0),
                response_data=data_record.response_data or "",
                payload_hash=data_record.payload_hash if self.payload_validation_enabled else None,
                **self._scoped(),
            )
        )

    def _delete_record(self, data_record: DataRecord) -> None:
        """``DELETE`` (a record already gone is fine), tried up to :data:`DELETE_ATTEMPTS` times with backoff on a
        :class:`~soorma.errors.PlatformError` (the HTTP client itself already retries 429 after ``Retry-After`` and
        502/503/504). Why so insistent: this is the release after a failed handler, and a record left INPROGRESS holds
        the event until its in-progress expiry, refusing the redeliveries meant to retry it (issue 12, finding 11).
        Raises the last error when every attempt failed (Powertools wraps it in ``IdempotencyPersistenceLayerError``);
        the record then still expires at its owner invocation's deadline."""
        from soorma.errors import PlatformError

        for attempt in range(DELETE_ATTEMPTS):
            try:
                self._run(self.memory.delete_idempotency_record(data_record.idempotency_key, **self._scoped()))
                return
            except PlatformError:
                if attempt + 1 >= DELETE_ATTEMPTS:
                    raise
                time.sleep(DELETE_BACKOFF_SECONDS * 2**attempt)
