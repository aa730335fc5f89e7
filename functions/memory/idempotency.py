"""Idempotency records (0010_memory_idempotency.sql): the server side of the PostgreSQL persistence layer for
Powertools' idempotency utility (https://docs.powertools.aws.dev/lambda/python/latest/utilities/idempotency/; the
client is :class:`soorma.idempotency.PlatformPersistenceLayer`).

Routes (prefix ``/v1/memory``, every one scoped to the caller's identity by row-level security; the key is any text
of 1 to 255 characters without NUL, e.g. Powertools' ``"<prefix>#<md5>"``, URL-encoded in the path):

* ``PUT /idempotency/{key}`` body :class:`~soorma.functions.memory.models.IdempotencyCreate` → 201 the record, when
  no record exists, or the stored one is expired (``expiryTimestamp`` < now, epoch seconds), or it is ``INPROGRESS``
  with an ``inProgressExpiryTimestamp`` < now (epoch milliseconds): exactly the condition of Powertools'
  ``DynamoDBPersistenceLayer._put_record``, evaluated on the database clock in ONE statement
  (``INSERT ... ON CONFLICT DO UPDATE ... WHERE``), so of concurrent creators exactly one wins. Otherwise → 409
  ``{"detail": {"message": ..., "record": <the live record>}}`` (what DynamoDB's
  ``ReturnValuesOnConditionCheckFailure=ALL_OLD`` gives Powertools, saving it a GET).
* ``GET /idempotency/{key}`` → 200 the record (expired ones included, as DynamoDB returns them until its TTL runs)
  or 404.
* ``PATCH /idempotency/{key}`` body :class:`~soorma.functions.memory.models.IdempotencyUpdate` → 200 the record:
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

from typing import Any

import psycopg
from fastapi import APIRouter, Body, HTTPException, status
from fastapi.responses import JSONResponse, Response

from soorma.functions.memory.common import CALLER, Resources, check_path, id_path
from soorma.functions.memory.models import IdempotencyCreate, IdempotencyUpdate
from soorma.functions.memory.store import _OWNED, _ids, _ts
from soorma.identity import Identity

#: Expired records of the caller deleted by each create.
PURGE_BATCH = 16

_COLUMNS = (
    "key, status, expiry_timestamp, in_progress_expiry_timestamp, response_data, payload_hash, created_at, updated_at"
)
# The database clock in Powertools' units: int(now.timestamp()) and int(now.timestamp() * 1000).
_NOW_S = "floor(extract(epoch from now()))::bigint"
_NOW_MS = "floor(extract(epoch from now()) * 1000)::bigint"

_CREATE = (
    "insert into memory.idempotency_records as r (platform_tenant_id, service_tenant_id, service_user_id, key,"
    " status, expiry_timestamp, in_progress_expiry_timestamp, response_data, payload_hash)"
    " values (%(pt)s, %(st)s, %(su)s, %(key)s, %(status)s, %(expiry)s, %(in_progress_expiry)s, %(response)s,"
    " %(hash)s)"
    " on conflict (platform_tenant_id, service_tenant_id, service_user_id, key) do update set"
    " status = excluded.status, expiry_timestamp = excluded.expiry_timestamp,"
    " in_progress_expiry_timestamp = excluded.in_progress_expiry_timestamp,"
    " response_data = excluded.response_data, payload_hash = excluded.payload_hash,"
    " created_at = now(), updated_at = now()"
    # Powertools: attribute_not_exists(#id) OR #expiry < :now OR (#status = :inprogress AND
    # attribute_exists(#in_progress_expiry) AND #in_progress_expiry < :now_in_millis)
    f" where r.expiry_timestamp < {_NOW_S}"
    "  or (r.status = 'INPROGRESS' and r.in_progress_expiry_timestamp is not null"
    f"      and r.in_progress_expiry_timestamp < {_NOW_MS})"
    " returning " + _COLUMNS
)

_PURGE = (
    "delete from memory.idempotency_records where ctid in ("
    f" select ctid from memory.idempotency_records where {_OWNED} and expiry_timestamp < {_NOW_S}"
    " and key <> %(key)s order by expiry_timestamp limit %(limit)s for update skip locked)"
)

_UPDATE = (
    "insert into memory.idempotency_records as r (platform_tenant_id, service_tenant_id, service_user_id, key,"
    " status, expiry_timestamp, response_data, payload_hash)"
    " values (%(pt)s, %(st)s, %(su)s, %(key)s, %(status)s, %(expiry)s, %(response)s, coalesce(%(hash)s, ''))"
    " on conflict (platform_tenant_id, service_tenant_id, service_user_id, key) do update set"
    " status = excluded.status, expiry_timestamp = excluded.expiry_timestamp,"
    " response_data = excluded.response_data,"
    " payload_hash = coalesce(%(hash)s, r.payload_hash), updated_at = now()"
    " returning " + _COLUMNS
)


def record_response(row: dict[str, Any]) -> dict[str, Any]:
    """The wire form of a record (camelCase; timestamps in Powertools' units)."""
    return {
        "key": row["key"],
        "status": row["status"],
        "expiryTimestamp": row["expiry_timestamp"],
        "inProgressExpiryTimestamp": row["in_progress_expiry_timestamp"],
        "responseData": row["response_data"],
        "payloadHash": row["payload_hash"],
        "createdAt": _ts(row["created_at"]),
        "updatedAt": _ts(row["updated_at"]),
    }


def create_record(conn: psycopg.Connection, identity: Identity, key: str, body: IdempotencyCreate) -> dict | None:
    """The created (or taken-over) row, or ``None`` when a live record holds the key (it is locked by the statement
    until the transaction ends, so a read in the same transaction sees it)."""
    row = conn.execute(
        _CREATE,
        _ids(identity, key=key, status=body.status, expiry=body.expiry_timestamp,
             in_progress_expiry=body.in_progress_expiry_timestamp, response=body.response_data or "",
             hash=body.payload_hash or ""),
    ).fetchone()
    if row is not None:
        conn.execute(_PURGE, _ids(identity, key=key, limit=PURGE_BATCH))
    return row


def get_record(conn: psycopg.Connection, identity: Identity, key: str) -> dict | None:
    return conn.execute(
        f"select {_COLUMNS} from memory.idempotency_records where {_OWNED} and key = %(key)s", _ids(identity, key=key)
    ).fetchone()


def update_record(conn: psycopg.Connection, identity: Identity, key: str, body: IdempotencyUpdate) -> dict:
    return conn.execute(
        _UPDATE,
        _ids(identity, key=key, status=body.status, expiry=body.expiry_timestamp, response=body.response_data or "",
             hash=body.payload_hash),
    ).fetchone()


def delete_record(conn: psycopg.Connection, identity: Identity, key: str) -> bool:
    cur = conn.execute(
        f"delete from memory.idempotency_records where {_OWNED} and key = %(key)s", _ids(identity, key=key)
    )
    return cur.rowcount > 0


def add_idempotency_routes(router: APIRouter, resources: Resources) -> None:
    """Add the ``/idempotency/{key}`` routes (module docstring) to the memory router."""

    def key_of(key: str) -> str:
        return check_path(key, "key")

    @router.put(
        "/idempotency/{key}",
        status_code=status.HTTP_201_CREATED,
        responses={409: {"description": "A live record holds the key; ``detail.record`` is that record"}},
    )
    def create_idempotency_record(
        body: IdempotencyCreate = Body(...), key: str = id_path("idempotency key"), caller: Identity = CALLER
    ) -> Any:
        """Create the record if there is none, or the stored one is expired, or it is INPROGRESS past its
        in-progress expiry (Powertools' conditional put); 409 with the live record otherwise."""
        key = key_of(key)
        with resources.db.transaction(caller) as conn:
            row = create_record(conn, caller, key, body)
            if row is None:
                current = get_record(conn, caller, key)
                detail: dict[str, Any] = {"message": f"a live idempotency record holds key {key}"}
                if current is not None:
                    detail["record"] = record_response(current)
                return JSONResponse({"detail": detail}, status_code=status.HTTP_409_CONFLICT)
        return record_response(row)

    @router.get("/idempotency/{key}")
    def get_idempotency_record(key: str = id_path("idempotency key"), caller: Identity = CALLER) -> dict[str, Any]:
        """The record (expired ones too) or 404."""
        key = key_of(key)
        with resources.db.transaction(caller) as conn:
            row = get_record(conn, caller, key)
        if row is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"idempotency record not found: {key}")
        return record_response(row)

    @router.patch("/idempotency/{key}")
    def update_idempotency_record(
        body: IdempotencyUpdate = Body(...), key: str = id_path("idempotency key"), caller: Identity = CALLER
    ) -> dict[str, Any]:
        """Set status, expiry, response data (and the payload hash when given); creates the record when absent,
        like DynamoDB's UpdateItem."""
        key = key_of(key)
        with resources.db.transaction(caller) as conn:
            row = update_record(conn, caller, key, body)
        return record_response(row)

    @router.delete("/idempotency/{key}", status_code=status.HTTP_204_NO_CONTENT)
    def delete_idempotency_record(key: str = id_path("idempotency key"), caller: Identity = CALLER) -> Response:
        """Delete the record; 404 when there was none."""
        key = key_of(key)
        with resources.db.transaction(caller) as conn:
            deleted = delete_record(conn, caller, key)
        if not deleted:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"idempotency record not found: {key}")
        return Response(status_code=status.HTTP_204_NO_CONTENT)
