"""Plan context: a planner's saved state (``memory.plan_context``, with ``memory.plan_correlations`` to find a plan by
one of its correlation ids; 0005_memory_agents.sql).

``POST /plan-context`` (upsert), ``GET|PUT|DELETE /plan-context/{plan_id}``,
``GET /plan-context/by-correlation/{correlation_id}``. Versioned like task context (409 on a lost race).
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Iterable, Optional

import psycopg
from fastapi import APIRouter, Body as BodyParam, status
from fastapi.responses import Response
from pydantic import Field

from soorma.functions.memory.common import CALLER, PREFIX, RESOURCES, Resources, check_path, id_path
from soorma.functions.memory.owned import OWNED, OwnedTable, Row, deleted, found, owner_params
from soorma.functions.memory.wire import (
    MAX_CORRELATION_IDS,
    Body,
    Id,
    JsonObject,
    JsonObjectOrEmpty,
    OwnedReply,
    PartialUpdate,
    RowId,
    Timestamp,
    id_list,
    null_as,
)
from soorma.identity import Identity

# -- wire models -----------------------------------------------------------------------------------------------------


CorrelationIds = Annotated[list[str], id_list(MAX_CORRELATION_IDS)]


class PlanContextCreate(Body):
    plan_id: Id
    session_id: Optional[Id] = None
    goal_event: Id
    goal_data: JsonObjectOrEmpty = Field(default_factory=dict)
    response_event: Optional[Id] = None
    state: JsonObjectOrEmpty = Field(default_factory=dict)
    current_state: Optional[Id] = None
    correlation_ids: Annotated[CorrelationIds, null_as(list)] = Field(default_factory=list)
    # Optimistic concurrency: when given, an existing row is only overwritten if it still has this version.
    version: Optional[int] = Field(default=None, ge=0)


class PlanContextUpdate(PartialUpdate):
    """Fields left out are unchanged; ``version``: the version the caller read (409 when the row has moved on)."""

    NOT_NULLABLE: ClassVar[frozenset[str]] = frozenset({"goal_data", "state", "correlation_ids"})

    session_id: Optional[Id] = None
    goal_data: Optional[JsonObject] = None
    response_event: Optional[Id] = None
    state: Optional[JsonObject] = None
    current_state: Optional[Id] = None
    correlation_ids: Optional[CorrelationIds] = None


class PlanContext(OwnedReply):
    id: RowId
    plan_id: str
    session_id: Optional[str]
    goal_event: str
    goal_data: dict[str, Any]
    response_event: Optional[str]
    state: dict[str, Any]
    current_state: Optional[str]
    correlation_ids: list[str]
    version: int
    created_at: Timestamp
    updated_at: Timestamp


# -- SQL -------------------------------------------------------------------------------------------------------------

TABLE = OwnedTable(
    "plan_context", key=("plan_id",), json_columns=frozenset({"goal_data", "state", "correlation_ids"}),
    versioned=True,
)


def upsert_plan_context(
    conn: psycopg.Connection, identity: Identity, fields: dict[str, Any], expected_version: int | None
) -> Row | None:
    """Insert or overwrite a plan context; ``None`` when ``expected_version`` is given and the stored row has another
    version (the route answers 409). The correlation side table follows in the same transaction."""
    row = TABLE.upsert(conn, identity, fields, expected_version=expected_version)
    if row is not None:
        _sync_correlations(conn, identity, row["plan_id"], row["correlation_ids"])
    return row


def update_plan_context(
    conn: psycopg.Connection, identity: Identity, plan_id: str, changes: dict[str, Any], expected_version: int | None
) -> Row | None:
    """Apply ``changes`` and bump the version; ``None`` when no row matched (missing, or another version)."""
    row = TABLE.update(conn, identity, {"plan_id": plan_id}, changes, expected_version=expected_version)
    if row is not None and "correlation_ids" in changes:
        _sync_correlations(conn, identity, plan_id, row["correlation_ids"])
    return row


def by_correlation_sql() -> str:
    """A primary-key probe of memory.plan_correlations, then a unique-key probe of memory.plan_context (parameters
    ``pt, st, su, cid``)."""
    return (
        "select p.* from memory.plan_correlations c join memory.plan_context p"
        " on p.platform_tenant_id = c.platform_tenant_id and p.service_tenant_id = c.service_tenant_id"
        " and p.service_user_id = c.service_user_id and p.plan_id = c.plan_id"
        " where c.platform_tenant_id = %(pt)s and c.service_tenant_id = %(st)s and c.service_user_id = %(su)s"
        " and c.correlation_id = %(cid)s"
    )


def plan_by_correlation(conn: psycopg.Connection, identity: Identity, correlation_id: str) -> Row | None:
    """The plan context that lists ``correlation_id``, or ``None``."""
    return conn.execute(by_correlation_sql(), owner_params(identity, cid=correlation_id)).fetchone()


def _sync_correlations(conn: psycopg.Connection, identity: Identity, plan_id: str, ids: Iterable[str]) -> None:
    """Make memory.plan_correlations list exactly ``ids`` for this plan (an id claimed by another plan of the same
    identity moves to this one: the latest write wins)."""
    params = owner_params(identity, plan=plan_id, ids=list(ids))
    conn.execute(
        f"delete from memory.plan_correlations where {OWNED} and plan_id = %(plan)s"
        " and not (correlation_id = any(%(ids)s::text[]))",
        params,
    )
    if params["ids"]:
        conn.execute(
            "insert into memory.plan_correlations (platform_tenant_id, service_tenant_id, service_user_id,"
            " correlation_id, plan_id) select %(pt)s, %(st)s, %(su)s, c, %(plan)s from unnest(%(ids)s::text[]) as c"
            " on conflict (platform_tenant_id, service_tenant_id, service_user_id, correlation_id)"
            " do update set plan_id = excluded.plan_id where plan_correlations.plan_id <> excluded.plan_id",
            params,
        )


# -- routes ----------------------------------------------------------------------------------------------------------

router = APIRouter(prefix=PREFIX)
NOUN = "plan context"


@router.post("/plan-context")
def store_plan_context(body: PlanContextCreate, caller: Identity = CALLER, res: Resources = RESOURCES) -> PlanContext:
    with res.db.transaction(caller) as conn:
        row = upsert_plan_context(conn, caller, body.model_dump(exclude={"version"}), body.version)
        if row is None:
            raise TABLE.conflict(conn, caller, NOUN, body.version, plan_id=body.plan_id)
    return PlanContext.model_validate(row)


@router.get("/plan-context/by-correlation/{correlation_id}", name="plan_by_correlation")
def get_plan_by_correlation(
    correlation_id: str = id_path("correlation id"), caller: Identity = CALLER, res: Resources = RESOURCES
) -> PlanContext:
    check_path(correlation_id, "correlation_id")
    with res.db.transaction(caller) as conn:
        row = plan_by_correlation(conn, caller, correlation_id)
    return PlanContext.model_validate(found(row, f"no plan context lists correlation id {correlation_id}"))


@router.get("/plan-context/{plan_id}")
def get_plan_context(
    plan_id: str = id_path("plan id"), caller: Identity = CALLER, res: Resources = RESOURCES
) -> PlanContext:
    check_path(plan_id, "plan_id")
    with res.db.transaction(caller) as conn:
        row = TABLE.get(conn, caller, plan_id=plan_id)
    return PlanContext.model_validate(found(row, f"{NOUN} not found: {plan_id}"))


@router.put("/plan-context/{plan_id}", name="update_plan_context")
def update_plan_context_route(
    body: PlanContextUpdate = BodyParam(...),
    plan_id: str = id_path("plan id"),
    caller: Identity = CALLER,
    res: Resources = RESOURCES,
) -> PlanContext:
    check_path(plan_id, "plan_id")
    with res.db.transaction(caller) as conn:
        row = update_plan_context(conn, caller, plan_id, body.changes(), body.version)
        if row is None:
            raise TABLE.conflict(conn, caller, NOUN, body.version, plan_id=plan_id)
    return PlanContext.model_validate(row)


@router.delete("/plan-context/{plan_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
def delete_plan_context(plan_id: str = id_path("plan id"), caller: Identity = CALLER, res: Resources = RESOURCES) -> None:
    check_path(plan_id, "plan_id")
    with res.db.transaction(caller) as conn:
        count = TABLE.delete(conn, caller, plan_id=plan_id)  # memory.plan_correlations rows go with it (cascade)
    deleted(count, f"{NOUN} not found: {plan_id}")
