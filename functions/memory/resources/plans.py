"""Plans: summaries of a user's plans with their status (``memory.plans``, 0005_memory_agents.sql).

``POST /plans`` → 201 (409 when the caller already has the plan id), ``GET /plans?status=&session_id=&limit=``
(newest first), ``GET|PUT|DELETE /plans/{plan_id}``.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

from fastapi import APIRouter, Body as BodyParam, HTTPException, Query, status
from fastapi.responses import Response
from pydantic import Field, model_validator

from soorma.functions.memory.common import CALLER, PREFIX, RESOURCES, Resources, check_path, id_path
from soorma.functions.memory.owned import OwnedTable
from soorma.functions.memory.wire import (
    MAX_ID_CHARS,
    Body,
    Id,
    JsonObject,
    JsonObjectOrEmpty,
    OwnedReply,
    RowId,
    Timestamp,
)
from soorma.identity import Identity

PlanStatus = Literal["pending", "running", "completed", "failed", "paused", "cancelled"]
PLAN_STATUSES: tuple[str, ...] = get_args(PlanStatus)

# -- wire models -----------------------------------------------------------------------------------------------------


class PlanCreate(Body):
    plan_id: Id
    session_id: Id | None = None
    goal_event: Id
    goal_data: JsonObjectOrEmpty = Field(default_factory=dict)
    response_event: Id | None = None
    parent_plan_id: Id | None = None
    status: PlanStatus = "running"


class PlanUpdate(Body):
    """soorma-core's body is ``{status}``; ``goal_data`` and ``session_id`` may be changed too."""

    status: PlanStatus | None = None
    goal_data: JsonObject | None = None
    session_id: Id | None = None

    @model_validator(mode="after")
    def _something(self) -> PlanUpdate:
        if not self.changes():
            raise ValueError("nothing to update: give status, goal_data or session_id")
        return self

    def changes(self) -> dict[str, Any]:
        """The fields the caller sent with a value (``null`` changes nothing)."""
        return {name: getattr(self, name) for name in self.model_fields_set if getattr(self, name) is not None}


class Plan(OwnedReply):
    id: RowId
    plan_id: str
    session_id: str | None
    goal_event: str
    goal_data: dict[str, Any]
    response_event: str | None
    status: str
    parent_plan_id: str | None
    created_at: Timestamp
    updated_at: Timestamp


# -- SQL -------------------------------------------------------------------------------------------------------------

TABLE = OwnedTable(
    "plans", "plan", key=("plan_id",), json_columns=frozenset({"goal_data"}), touch="updated_at = clock_timestamp()"
)

# -- routes ----------------------------------------------------------------------------------------------------------

router = APIRouter(prefix=PREFIX)


@router.post("/plans", status_code=status.HTTP_201_CREATED)
def create_plan(body: PlanCreate, caller: Identity = CALLER, res: Resources = RESOURCES) -> Plan:
    with res.db.transaction(caller) as conn:
        row = TABLE.insert(conn, caller, body.model_dump(), if_absent=True)
    if row is None:
        raise HTTPException(status.HTTP_409_CONFLICT, f"plan {body.plan_id} already exists")
    return Plan.model_validate(row)


@router.get("/plans")
def list_plans(
    status_filter: str | None = Query(None, alias="status"),
    session_id: str | None = Query(None, min_length=1, max_length=MAX_ID_CHARS),
    limit: int = Query(20, ge=1, le=100),
    caller: Identity = CALLER,
    res: Resources = RESOURCES,
) -> list[Plan]:
    """The caller's plans, newest first (indexes ``plans_recent_idx`` / ``plans_status_idx``)."""
    if status_filter is not None and status_filter not in PLAN_STATUSES:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"status must be one of {', '.join(PLAN_STATUSES)}")
    if session_id is not None:
        check_path(session_id, "session_id")
    with res.db.transaction(caller) as conn:
        rows = TABLE.select(
            conn, caller, order_by="created_at desc, id desc", limit=limit, status=status_filter,
            session_id=session_id,
        )
    return [Plan.model_validate(row) for row in rows]


@router.get("/plans/{plan_id}")
def get_plan(plan_id: str = id_path("plan id"), caller: Identity = CALLER, res: Resources = RESOURCES) -> Plan:
    return Plan.model_validate(TABLE.fetch(res.db, caller, plan_id=plan_id))


@router.put("/plans/{plan_id}")
def update_plan(
    body: PlanUpdate = BodyParam(...), plan_id: str = id_path("plan id"), caller: Identity = CALLER,
    res: Resources = RESOURCES,
) -> Plan:
    return Plan.model_validate(TABLE.change(res.db, caller, {"plan_id": plan_id}, body.changes()))


@router.delete("/plans/{plan_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
def delete_plan(plan_id: str = id_path("plan id"), caller: Identity = CALLER, res: Resources = RESOURCES) -> None:
    TABLE.remove(res.db, caller, plan_id=plan_id)
