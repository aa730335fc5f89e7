"""Usage and cost routes of the gateway (issue 18 item 3; docs/usage-and-llm.md; the figures:
:mod:`soorma.functions.shared.usage`).

* ``GET /v1/goals/{goal_id}/usage`` → ``{"goal_id", "usage": {"gb_seconds", "invocations", "events", "memory_reads",
  "memory_writes", "input_tokens", "output_tokens"}, "cost_usd": {<each item>, "total"}}``: 404 for an unknown goal
  and for another identity's goal (row-level security hides both the goal and its usage).
* ``GET /v1/usage?from=YYYY-MM-DD&to=YYYY-MM-DD&scope=tenant|own`` → ``{"platform_tenant_id", "scope", "from", "to",
  "days": [{"day", "goals", "usage", "cost_usd"}], "total": {"usage", "cost_usd"}, "monthly_budget_usd",
  "month_cost_usd"}``: UTC days, ``to`` defaults to today and ``from`` to the first day of ``to``'s month; at most 366
  days (422 otherwise). ``scope=tenant`` (the default for roles ``admin`` and ``developer``, and only for them: 403
  otherwise) sums every service tenant and user of the caller's platform tenant; ``scope=own`` (the default for
  ``agent`` and ``user``) only the caller's own service tenant and user.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel, Field

from soorma.functions.gateway import policy as policies
from soorma.functions.gateway.goals import goal_uuid
from soorma.functions.shared import usage
from soorma.functions.shared.db import Database
from soorma.functions.shared.service import current_identity
from soorma.identity import Identity

MAX_DAYS = 366
TENANT_ROLES = ("admin", "developer")


class UsageCounts(BaseModel):
    gb_seconds: float
    invocations: int
    events: int
    memory_reads: int
    memory_writes: int
    input_tokens: int
    output_tokens: int


class UsageCost(BaseModel):
    """US dollars at AWS list prices (:mod:`soorma.functions.shared.prices`)."""

    gb_seconds: float
    invocations: float
    events: float
    memory_reads: float
    memory_writes: float
    input_tokens: float
    output_tokens: float
    total: float


class GoalUsage(BaseModel):
    goal_id: str
    usage: UsageCounts
    cost_usd: UsageCost


class UsageDay(BaseModel):
    day: str
    goals: int
    usage: UsageCounts
    cost_usd: UsageCost


class UsageTotal(BaseModel):
    usage: UsageCounts
    cost_usd: UsageCost


class TenantUsage(BaseModel):
    platform_tenant_id: str
    scope: Literal["tenant", "own"]
    from_: str = Field(alias="from")
    to: str
    days: list[UsageDay]
    total: UsageTotal
    monthly_budget_usd: float | None = None
    month_cost_usd: float | None = None

    model_config = {"populate_by_name": True}


def _total(days: list[dict[str, Any]]) -> dict[str, Any]:
    counts = {item: sum(day["usage"][item] for day in days) for item in usage.ITEMS}
    cost = {item: round(sum(day["cost_usd"][item] for day in days), 9) for item in (*usage.ITEMS, "total")}
    return {"usage": counts, "cost_usd": cost}


def create_router(db: Database) -> APIRouter:
    """The usage routes (see the module docstring) on ``db``."""
    router = APIRouter()

    @router.get("/v1/goals/{goal_id}/usage", response_model=GoalUsage, tags=["usage"])
    def goal_usage(goal_id: str, identity: Identity = Depends(current_identity)):
        """The goal's usage (function GB-seconds and invocations, events, memory reads and writes, model tokens) and
        its cost at AWS list prices."""
        goal = goal_uuid(goal_id)
        with db.transaction(identity) as conn:
            if conn.execute("select 1 from gateway.goals where goal_id = %s", (goal,)).fetchone() is None:
                raise HTTPException(404, f"goal {goal_id[:100]!r} not found")
            figures = usage.goal_usage(conn, usage.goal_key(goal))  # type: ignore[arg-type]
        return {"goal_id": goal, **figures}

    @router.get("/v1/usage", response_model=TenantUsage, tags=["usage"])
    def tenant_usage(
        from_: date | None = Query(None, alias="from", description="first UTC day (default: the month's first)"),
        to: date | None = Query(None, description="last UTC day (default: today)"),
        scope: Literal["tenant", "own"] | None = Query(None, description="tenant: all service tenants and users"),
        identity: Identity = Depends(current_identity),
    ):
        """Usage and cost per UTC day, with the tenant's monthly budget and this month's cost."""
        last = to or usage.day_of(None)
        first = from_ or last.replace(day=1)
        if first > last:
            raise HTTPException(422, f"'from' ({first}) is after 'to' ({last})")
        if last - first > timedelta(days=MAX_DAYS - 1):
            raise HTTPException(422, f"at most {MAX_DAYS} days per request")
        scope = scope or ("tenant" if identity.role in TENANT_ROLES else "own")
        if scope == "tenant" and identity.role not in TENANT_ROLES:
            raise HTTPException(403, f"role {identity.role!r} may read only its own usage (scope=own)")
        with db.transaction(identity) as conn:
            days = usage.tenant_days(conn, first, last) if scope == "tenant" else usage.own_days(conn, first, last)
            budget = policies.load(conn, identity.platform_tenant_id).monthly_budget_usd
            month = usage.month_cost(conn) if scope == "tenant" else None
        return {"platform_tenant_id": identity.platform_tenant_id, "scope": scope, "from": first.isoformat(),
                "to": last.isoformat(), "days": days, "total": _total(days), "monthly_budget_usd": budget,
                "month_cost_usd": None if month is None else round(month, 9)}

    return router


__all__ = ["MAX_DAYS", "create_router"]
