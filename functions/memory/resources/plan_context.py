"""Plan context: a planner's saved state (``memory.plan_context``, with ``memory.plan_correlations`` to find a plan by
one of its correlation ids; 0005_memory_agents.sql).

``POST /plan-context`` (upsert), ``GET|PUT|DELETE /plan-context/{plan_id}``,
``GET /plan-context/by-correlation/{correlation_id}``. Versioned like task context (409 on a lost race).
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from fastapi import APIRouter, Body as BodyParam, status
from fastapi.responses import Response
from pydantic import Field

from soorma.functions.memory.common import CALLER, PREFIX, RESOURCES, Resources, id_path
from soorma.functions.memory.owned import Lookup, OwnedTable
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
    session_id: Id | None = None
    goal_event: Id
    goal_data: JsonObjectOrEmpty = Field(default_factory=dict)
    response_event: Id | None = None
    state: JsonObjectOrEmpty = Field(default_factory=dict)
    current_state: Id | None = None
    correlation_ids: Annotated[CorrelationIds, null_as(list)] = Field(default_factory=list)
    # Optimistic concurrency: when given, an existing row is only overwritten if it still has this version.
    version: int | None = Field(default=None, ge=0)


class PlanContextUpdate(PartialUpdate):
    """Fields left out are unchanged; ``version``: the version the caller read (409 when the row has moved on)."""

    NOT_NULLABLE: ClassVar[frozenset[str]] = frozenset({"goal_data", "state", "correlation_ids"})

    session_id: Id | None = None
    goal_data: JsonObject | None = None
    response_event: Id | None = None
    state: JsonObject | None = None
    current_state: Id | None = None
    correlation_ids: CorrelationIds | None = None


class PlanContext(OwnedReply):
    id: RowId
    plan_id: str
    session_id: str | None
    goal_event: str
    goal_data: dict[str, Any]
    response_event: str | None
    state: dict[str, Any]
    current_state: str | None
    correlation_ids: list[str]
    version: int
    created_at: Timestamp
    updated_at: Timestamp


# -- SQL -------------------------------------------------------------------------------------------------------------

#: The plan that lists a correlation id.
BY_CORRELATION = Lookup(
    "plan_correlations", "correlation_id", list_column="correlation_ids", param="cid", what="correlation id"
)
TABLE = OwnedTable(
    "plan_context", "plan context", key=("plan_id",), json_columns=frozenset({"goal_data", "state", "correlation_ids"}),
    versioned=True, lookup=BY_CORRELATION,
)


# -- routes ----------------------------------------------------------------------------------------------------------

router = APIRouter(prefix=PREFIX)


@router.post("/plan-context")
def store_plan_context(body: PlanContextCreate, caller: Identity = CALLER, res: Resources = RESOURCES) -> PlanContext:
    return PlanContext.model_validate(TABLE.store(res.db, caller, body.model_dump(exclude={"version"}), body.version))


@router.get("/plan-context/by-correlation/{correlation_id}", name="plan_by_correlation")
def get_plan_by_correlation(
    correlation_id: str = id_path("correlation id"), caller: Identity = CALLER, res: Resources = RESOURCES
) -> PlanContext:
    return PlanContext.model_validate(TABLE.fetch_listed(res.db, caller, correlation_id))


@router.get("/plan-context/{plan_id}")
def get_plan_context(
    plan_id: str = id_path("plan id"), caller: Identity = CALLER, res: Resources = RESOURCES
) -> PlanContext:
    return PlanContext.model_validate(TABLE.fetch(res.db, caller, plan_id=plan_id))


@router.put("/plan-context/{plan_id}")
def update_plan_context(
    body: PlanContextUpdate = BodyParam(...), plan_id: str = id_path("plan id"), caller: Identity = CALLER,
    res: Resources = RESOURCES,
) -> PlanContext:
    return PlanContext.model_validate(TABLE.change(res.db, caller, {"plan_id": plan_id}, body.changes(), body.version))


@router.delete("/plan-context/{plan_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
def delete_plan_context(plan_id: str = id_path("plan id"), caller: Identity = CALLER, res: Resources = RESOURCES) -> None:
    TABLE.remove(res.db, caller, plan_id=plan_id)  # its memory.plan_correlations rows go with it (on delete cascade)
