"""Idempotency records (0010_memory_idempotency.sql): the server side of the PostgreSQL persistence layer for
Powertools' idempotency utility (https://docs.powertools.aws.dev/lambda/python/latest/utilities/idempotency/; the
client is :class:`soorma.idempotency.PlatformPersistenceLayer`).

Routes (prefix ``/v1/memory``, every one scoped to the caller's identity by row-level security; the key is any text
of 1 to 255 characters without NUL, e.g. Powertools' ``"<prefix>#<md5>"``, URL-encoded in the path):

* ``PUT /idempotency/{key}`` body :class:`IdempotencyCreate` → 201 the record, when
  no record exists, or the stored one is expired (``expiryTimestamp`` < now, epoch seconds), or it is ``INPROGRESS``
  with an ``inProgressExpiryTimestamp`` < now (epoch milliseconds): exactly the condition of Powertools'
  ``DynamoDBPersistenceLayer._put_record``, evaluated on the database clock in ONE statement
  (``INSERT ... ON CONFLICT DO UPDATE ... WHERE``), so of concurrent creators exactly one wins. Otherwise → 409
  ``{"detail": {"message": ..., "record": <the live record>}}`` (what DynamoDB's
  ``ReturnValuesOnConditionCheckFailure=ALL_OLD`` gives Powertools, saving it a GET).
* ``GET /idempotency/{key}`` → 200 the record (expired ones included, as DynamoDB returns them until its TTL runs)
  or 404.
* ``PATCH /idempotency/{key}`` body :class:`IdempotencyUpdate` → 200 the record:
  sets status, expiry, response data and (when given) the payload hash, leaving the in-progress expiry as it is;
  like DynamoDB's ``UpdateItem`` (``_update_record``) it creates the record when there is none. One statement.
* ``DELETE /idempotency/{key}`` → 204, or 404 when there was no record (``_delete_record``; the client treats both
  as done).

The record, camelCase: ``{"key", "status": "INPROGRESS"|"COMPLETED", "expiryTimestamp": int (s),
"inProgressExpiryTimestamp": int (ms) | null, "responseData": str, "payloadHash": str, "createdAt", "updatedAt"}``.

Each create also deletes a few of the caller's expired records (at most :data:`PURGE_BATCH`), so the table does not
grow without bound (DynamoDB's TTL does this for Powertools' own layer); an expired record is, to Powertools, the same
as no record.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

import psycopg
from fastapi import APIRouter, Body as BodyParam, status
from fastapi.responses import JSONResponse, Response
from pydantic import Field

from soorma.functions.memory.common import CALLER, PREFIX, RESOURCES, Resources, check_path, id_path
from soorma.functions.memory.owned import OWNED, OwnedTable, Row, owner_params
from soorma.functions.memory.wire import Body, Reply, Timestamp, by_field, check_text
from soorma.identity import Identity

# -- wire models -----------------------------------------------------------------------------------------------------
# Powertools' DataRecord (https://docs.powertools.aws.dev/lambda/python/latest/utilities/idempotency/), units kept:
# expiry in epoch seconds, in-progress expiry in epoch milliseconds.

RecordStatus = Literal["INPROGRESS", "COMPLETED"]
IDEMPOTENCY_STATUSES: tuple[str, ...] = get_args(RecordStatus)
MAX_RESPONSE_DATA_BYTES = 256 * 1024
MAX_HASH_CHARS = 512
MAX_EPOCH_SECONDS = 10**12
MAX_EPOCH_MILLIS = 10**15


def _check_response_data(value: str, what: str) -> str:
    if len(value.encode("utf-8")) > MAX_RESPONSE_DATA_BYTES:
        raise ValueError(f"{what} is longer than {MAX_RESPONSE_DATA_BYTES} bytes (UTF-8)")
    return check_text(value, what)


def _check_hash(value: str, what: str) -> str:
    if len(value) > MAX_HASH_CHARS:
        raise ValueError(f"{what} must be at most {MAX_HASH_CHARS} characters")
    return check_text(value, what)


class _IdempotencyRecordBody(Body):
    """The fields both idempotency writes carry, with their checks."""

    status: RecordStatus
    expiry_timestamp: int = Field(..., ge=0, le=MAX_EPOCH_SECONDS, description="epoch seconds")
    response_data: Annotated[str, by_field(_check_response_data)] | None = None
    payload_hash: Annotated[str, by_field(_check_hash)] | None = None


class IdempotencyCreate(_IdempotencyRecordBody):
    """``PUT /idempotency/{key}``: create the record unless a live one exists (Powertools' ``_put_record``)."""

    status: RecordStatus = "INPROGRESS"
    in_progress_expiry_timestamp: int | None = Field(None, ge=0, le=MAX_EPOCH_MILLIS,
                                                        description="epoch milliseconds")


class IdempotencyUpdate(_IdempotencyRecordBody):
    """``PATCH /idempotency/{key}``: set status, expiry, response (and the payload hash when given), Powertools'
    ``_update_record``; the in-progress expiry is left as it is."""


class IdempotencyRecord(Reply):
    """The wire form of a record (timestamps in Powertools' units)."""

    key: str
    status: RecordStatus
    expiry_timestamp: int
    in_progress_expiry_timestamp: int | None
    response_data: str
    payload_hash: str
    created_at: Timestamp
    updated_at: Timestamp


class LiveRecord(Reply):
    message: str
    record: IdempotencyRecord | None = None


class RecordExists(Reply):
    """409 from ``PUT``: a live record holds the key; ``detail.record`` is that record."""

    detail: LiveRecord


# -- SQL -------------------------------------------------------------------------------------------------------------

TABLE = OwnedTable("idempotency_records", "idempotency record", key=("key",))

#: Expired records of the caller deleted by each create.
PURGE_BATCH = 16

_COLUMNS = (
    "key, status, expiry_timestamp, in_progress_expiry_timestamp, response_data, payload_hash, created_at, updated_at"
)
# The database clock in Powertools' units: int(now.timestamp()) and int(now.timestamp() * 1000).
_NOW_S = "floor(extract(epoch from now()))::bigint"
_NOW_MS = "floor(extract(epoch from now()) * 1000)::bigint"

_PURGE = (
    "delete from memory.idempotency_records where ctid in ("
    f" select ctid from memory.idempotency_records where {OWNED} and expiry_timestamp < {_NOW_S}"
    " and key <> %(key)s order by expiry_timestamp limit %(limit)s for update skip locked)"
)


def create_record(conn: psycopg.Connection, identity: Identity, key: str, body: IdempotencyCreate) -> Row | None:
    """The created (or taken-over) row, or ``None`` when a live record holds the key (it is locked by the statement
    until the transaction ends, so a read in the same transaction sees it)."""
    row = TABLE.upsert(
        conn, identity,
        {"key": key, "status": body.status, "expiry_timestamp": body.expiry_timestamp,
         "in_progress_expiry_timestamp": body.in_progress_expiry_timestamp,
         "response_data": body.response_data or "", "payload_hash": body.payload_hash or ""},
        update_sql={"created_at": "now()"},
        # Powertools: attribute_not_exists(#id) OR #expiry < :now OR (#status = :inprogress AND
        # attribute_exists(#in_progress_expiry) AND #in_progress_expiry < :now_in_millis)
        where=f"r.expiry_timestamp < {_NOW_S} or (r.status = 'INPROGRESS'"
        f" and r.in_progress_expiry_timestamp is not null and r.in_progress_expiry_timestamp < {_NOW_MS})",
        returning=_COLUMNS,
    )
    if row is not None:
        conn.execute(_PURGE, owner_params(identity, key=key, limit=PURGE_BATCH))
    return row


def update_record(conn: psycopg.Connection, identity: Identity, key: str, body: IdempotencyUpdate) -> Row | None:
    """Set status, expiry, response data and (when given) the payload hash, creating the record when absent."""
    return TABLE.upsert(
        conn, identity,
        {"key": key, "status": body.status, "expiry_timestamp": body.expiry_timestamp,
         "response_data": body.response_data or "", "payload_hash": body.payload_hash},
        insert_sql={"payload_hash": "coalesce(%(payload_hash)s, '')"},
        update_sql={"payload_hash": "coalesce(%(payload_hash)s, r.payload_hash)"},
        returning=_COLUMNS,
    )


# -- routes ----------------------------------------------------------------------------------------------------------

router = APIRouter(prefix=PREFIX)


@router.put(
    "/idempotency/{key}",
    status_code=status.HTTP_201_CREATED,
    response_model=IdempotencyRecord,
    responses={
        status.HTTP_409_CONFLICT: {"model": RecordExists, "description": "A live record holds the key"},
    },
)
def create_idempotency_record(
    body: IdempotencyCreate = BodyParam(...), key: str = id_path("idempotency key"), caller: Identity = CALLER,
    res: Resources = RESOURCES,
) -> IdempotencyRecord | JSONResponse:
    """Create the record if there is none, or the stored one is expired, or it is INPROGRESS past its
    in-progress expiry (Powertools' conditional put); 409 with the live record otherwise."""
    key = check_path(key, "key")
    with res.db.transaction(caller) as conn:
        row = create_record(conn, caller, key, body)
        if row is None:
            current = TABLE.get(conn, caller, key=key)
            detail: dict[str, Any] = {"message": f"a live idempotency record holds key {key}"}
            if current is not None:
                detail["record"] = IdempotencyRecord.model_validate(current).model_dump(mode="json", by_alias=True)
            return JSONResponse({"detail": detail}, status_code=status.HTTP_409_CONFLICT)
    return IdempotencyRecord.model_validate(row)


@router.get("/idempotency/{key}")
def get_idempotency_record(
    key: str = id_path("idempotency key"), caller: Identity = CALLER, res: Resources = RESOURCES
) -> IdempotencyRecord:
    """The record (expired ones too) or 404."""
    return IdempotencyRecord.model_validate(TABLE.fetch(res.db, caller, key=key))


@router.patch("/idempotency/{key}")
def update_idempotency_record(
    body: IdempotencyUpdate = BodyParam(...), key: str = id_path("idempotency key"), caller: Identity = CALLER,
    res: Resources = RESOURCES,
) -> IdempotencyRecord:
    """Set status, expiry, response data (and the payload hash when given); creates the record when absent,
    like DynamoDB's UpdateItem."""
    key = check_path(key, "key")
    with res.db.transaction(caller) as conn:
        row = update_record(conn, caller, key, body)
    return IdempotencyRecord.model_validate(row)


@router.delete("/idempotency/{key}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
def delete_idempotency_record(
    key: str = id_path("idempotency key"), caller: Identity = CALLER, res: Resources = RESOURCES
) -> None:
    """Delete the record; 404 when there was none."""
    TABLE.remove(res.db, caller, key=key)
