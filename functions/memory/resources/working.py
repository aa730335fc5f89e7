"""Working memory: plan-scoped JSON values by key (``memory.working_memory``, 0004_memory.sql).

``PUT|GET|DELETE /working/{plan_id}/{key}``, ``POST /working/{plan_id}/{key}/increment|append|merge`` (atomic
changes), ``DELETE /working/{plan_id}`` (every key of a plan).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import psycopg
from fastapi import APIRouter, Depends
from psycopg.types.json import Jsonb
from pydantic import Field

from soorma.functions.memory.common import CALLER, PREFIX, RESOURCES, Resources, check_path, id_path
from soorma.functions.memory.owned import OwnedTable, Row
from soorma.functions.memory.wire import Body, Deleted, JsonObject, OwnedReply, RowId, Timestamp, by_field, check_json
from soorma.identity import Identity

# -- wire models -----------------------------------------------------------------------------------------------------


class WorkingSet(Body):
    value: Annotated[Any, by_field(check_json)] = Field(...)


class WorkingIncrement(Body):
    delta: float = Field(..., allow_inf_nan=False)


class WorkingAppend(Body):
    items: Annotated[list[Any], by_field(check_json)] = Field(..., max_length=1000)


class WorkingMerge(Body):
    updates: JsonObject


class WorkingValue(OwnedReply):
    id: RowId
    plan_id: str
    key: str
    value: Any
    created_at: Timestamp
    updated_at: Timestamp


class KeyDeleted(Deleted):
    deleted: bool


class PlanKeysDeleted(Deleted):
    count_deleted: int


# -- SQL -------------------------------------------------------------------------------------------------------------

TABLE = OwnedTable("working_memory", "working memory", key=("plan_id", "key"), json_columns=frozenset({"value"}))

Operation = Literal["increment", "append", "merge"]

# One statement per operation, so concurrent updates never lose each other's change (soorma-core's WorkflowState did
# a read-modify-write from the client). A missing key, or a value of the wrong JSON type, counts as the empty value.
# Each: (the value of a new key, the value of an existing one ``r``).
_OPERATIONS: dict[str, tuple[str, str]] = {
    "increment": (
        "to_jsonb(%(operand)s::numeric)",
        (
            "to_jsonb((case when jsonb_typeof(r.value) = 'number' then r.value::numeric else 0 end)"
            " + %(operand)s::numeric)"
        ),
    ),
    "append": (
        "%(operand)s::jsonb",
        "(case when jsonb_typeof(r.value) = 'array' then r.value else '[]'::jsonb end) || %(operand)s::jsonb",
    ),
    "merge": (
        "%(operand)s::jsonb",
        "(case when jsonb_typeof(r.value) = 'object' then r.value else '{}'::jsonb end) || %(operand)s::jsonb",
    ),
}


def update_working(
    conn: psycopg.Connection, identity: Identity, plan_id: str, key: str, op: str, operand: Any
) -> Row | None:
    """Apply ``op`` (``increment`` by a number, ``append`` a JSON array, ``merge`` a JSON object) to one working
    memory value atomically and return the row. Raises ``KeyError`` for an unknown op."""
    initial, updated = _OPERATIONS[op]
    return TABLE.upsert(
        conn, identity, {"plan_id": plan_id, "key": key, "value": None},
        insert_sql={"value": initial}, update_sql={"value": updated},
        params={"operand": operand if op == "increment" else Jsonb(operand)},
    )


# -- routes ----------------------------------------------------------------------------------------------------------

router = APIRouter(prefix=PREFIX)


def _checked_plan_key(plan_id: str = id_path("plan id"), key: str = id_path("state key")) -> dict[str, str]:
    """The ``{plan_id}/{key}`` of a route on one key, as ``{"plan_id", "key"}`` (422 when either holds NUL)."""
    return {"plan_id": check_path(plan_id, "plan_id"), "key": check_path(key, "key")}


#: The checked ``{plan_id}/{key}`` path of the routes on one key (:func:`_checked_plan_key`).
PLAN_KEY = Depends(_checked_plan_key)


@router.put("/working/{plan_id}/{key}")
def set_working(
    body: WorkingSet, plan_key: dict[str, str] = PLAN_KEY, caller: Identity = CALLER, res: Resources = RESOURCES
) -> WorkingValue:
    with res.db.transaction(caller) as conn:
        row = TABLE.upsert(conn, caller, {**plan_key, "value": body.value})
    return WorkingValue.model_validate(row)


def _update(
    res: Resources, caller: Identity, plan_key: dict[str, str], op: Operation, operand: Any
) -> WorkingValue:
    with res.db.transaction(caller) as conn:
        row = update_working(conn, caller, plan_key["plan_id"], plan_key["key"], op, operand)
    return WorkingValue.model_validate(row)


@router.post("/working/{plan_id}/{key}/increment")
def increment_working(
    body: WorkingIncrement, plan_key: dict[str, str] = PLAN_KEY, caller: Identity = CALLER, res: Resources = RESOURCES
) -> WorkingValue:
    """Add ``delta`` to the number at the key, atomically (a missing key or a non-number counts as 0)."""
    return _update(res, caller, plan_key, "increment", body.delta)


@router.post("/working/{plan_id}/{key}/append")
def append_working(
    body: WorkingAppend, plan_key: dict[str, str] = PLAN_KEY, caller: Identity = CALLER, res: Resources = RESOURCES
) -> WorkingValue:
    """Append ``items`` to the list at the key, atomically (a missing key or a non-list counts as [])."""
    return _update(res, caller, plan_key, "append", body.items)


@router.post("/working/{plan_id}/{key}/merge")
def merge_working(
    body: WorkingMerge, plan_key: dict[str, str] = PLAN_KEY, caller: Identity = CALLER, res: Resources = RESOURCES
) -> WorkingValue:
    """Shallow-merge ``updates`` into the object at the key, atomically (a missing key or a non-object counts
    as {})."""
    return _update(res, caller, plan_key, "merge", body.updates)


@router.get("/working/{plan_id}/{key}")
def get_working(plan_key: dict[str, str] = PLAN_KEY, caller: Identity = CALLER, res: Resources = RESOURCES) -> WorkingValue:
    return WorkingValue.model_validate(TABLE.fetch(res.db, caller, **plan_key))


@router.delete("/working/{plan_id}/{key}")
def delete_working(plan_key: dict[str, str] = PLAN_KEY, caller: Identity = CALLER, res: Resources = RESOURCES) -> KeyDeleted:
    with res.db.transaction(caller) as conn:
        gone = TABLE.delete(conn, caller, **plan_key) > 0
    return KeyDeleted(
        deleted=gone, message="working memory key deleted" if gone else "working memory key not found"
    )


@router.delete("/working/{plan_id}")
def delete_working_plan(
    plan_id: str = id_path("plan id"), caller: Identity = CALLER, res: Resources = RESOURCES
) -> PlanKeysDeleted:
    with res.db.transaction(caller) as conn:
        count = TABLE.delete(conn, caller, plan_id=check_path(plan_id, "plan_id"))
    return PlanKeysDeleted(count_deleted=count, message=f"deleted {count} working memory keys")
