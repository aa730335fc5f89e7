"""The tracker's HTTP API (every read under the caller's identity: row-level security confines it to its rows):

* ``GET /v1/tracker/goals/{goal_id}/events`` → ``{goal_id, events: [...], count}`` in event time order (404 when the
  caller's identity has neither the goal nor any of its events);
* soorma-core's tracker reads (reference §2.4, response shapes of :mod:`soorma.tracker_models`; a plan is a goal,
  or a planner's plan record in memory): ``GET /v1/tracker/plans/{plan_id}`` → ``PlanProgress`` (404 unknown),
  ``GET /v1/tracker/plans/{plan_id}/actions`` → ``[TaskExecution]``, ``GET /v1/tracker/plans/{plan_id}/sub-plans``
  → ``[PlanExecution]``, ``GET /v1/tracker/sessions/{session_id}/plans`` → ``[PlanExecution]``,
  ``GET /v1/tracker/agents/{agent_id}/metrics?period=7d`` → ``AgentMetrics`` (400 for a bad period),
  ``GET /v1/tracker/delegation-groups/{group_id}`` → ``DelegationGroup`` (404 unknown).
* ``POST /v1/tracker/spans``, where agents send the spans of the events they handle (docs/observability.md).

Recording the event stream is :mod:`soorma.functions.tracker.recording` (re-exported here).
"""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Query
from pydantic import BaseModel

from soorma.functions.gateway.models import GoalEvent
from soorma.functions.shared.db import Database, database_from_env
from soorma.functions.shared.service import current_identity, function_app, lazy_mangum_handler
from soorma.functions.shared.traces import SpansIn, insert_spans
from soorma.functions.tracker.recording import (
    DUPLICATE,
    IGNORED,
    RECORDED,
    is_failure,
    process_batch,
    record_envelope,
    summarize,
)
from soorma.identity import Identity
from soorma.tracker_models import AgentMetrics, DelegationGroup, PlanExecution, PlanProgress, TaskExecution

__all__ = ["DUPLICATE", "IGNORED", "RECORDED", "create_app", "http_handler", "is_failure", "process_batch",
           "record_envelope", "summarize"]


class TrackedEvents(BaseModel):
    """``GET /v1/tracker/goals/{goal_id}/events``: every recorded event of the goal, in event time order (the
    events are those of the gateway's goal trace, ``GET /v1/goals/{goal_id}/events``, unpaged)."""

    goal_id: str
    events: list[GoalEvent]
    count: int


class SpansStored(BaseModel):
    """``POST /v1/tracker/spans``: how many spans the request had and how many were new."""

    accepted: int
    stored: int


def create_app(db: Database | None = None) -> FastAPI:
    """The tracker's HTTP app; ``db`` defaults to :func:`soorma.functions.shared.db.database_from_env`."""
    db = db if db is not None else database_from_env()
    app = function_app("Soorma tracker")
    app.state.db = db

    @app.get("/v1/tracker/goals/{goal_id}/events", response_model=TrackedEvents)
    def goal_events(goal_id: str, identity: Identity = Depends(current_identity)):
        if len(goal_id) > 255:
            raise HTTPException(404, "goal not found")
        with db.transaction(identity) as conn:
            rows = conn.execute(
                "select event_id, type, topic, correlation_id, parent_event_id, source, time,"
                " data_summary as data from gateway.goal_events where goal_id = %s order by time, recorded_at",
                (goal_id,),
            ).fetchall()
            if not rows:
                try:
                    known = conn.execute(
                        "select 1 from gateway.goals where goal_id = %s", (str(uuid.UUID(goal_id)),)
                    ).fetchone()
                except ValueError:
                    known = None
                if known is None:
                    raise HTTPException(404, f"goal {goal_id!r} not found")
        events = [{**r, "time": r["time"].isoformat()} for r in rows]
        return {"goal_id": goal_id, "events": events, "count": len(events)}

    @app.get("/v1/tracker/plans/{plan_id}", response_model=PlanProgress, response_model_by_alias=False)
    def plan_progress(plan_id: str, identity: Identity = Depends(current_identity)):
        with db.transaction(identity) as conn:
            goal = _goal(conn, plan_id)
            if goal is None:
                raise HTTPException(404, f"plan {plan_id[:100]!r} not found")
            tasks = _tasks(conn, str(goal["goal_id"]))
            events = conn.execute("select count(*) as n from gateway.goal_events where goal_id = %s",
                                  (str(goal["goal_id"]),)).fetchone()["n"]
        work = [t for t in tasks if t["task_id"] != str(goal["goal_id"])]  # the goal's own request is no work
        return PlanProgress(
            plan_id=plan_id, status=goal["status"], started_at=_iso(goal["created_at"]),
            completed_at=_iso(goal["completed_at"]), task_count=len(work),
            completed_tasks=sum(t["state"] == "completed" for t in work),
            failed_tasks=sum(t["state"] == "failed" for t in work),
            running_tasks=sum(t["state"] == "running" for t in work), current_state=goal["error"],
            events=events, tasks=[t.model_dump() for t in work], result=goal["result"], error=goal["error"])

    @app.get("/v1/tracker/plans/{plan_id}/actions", response_model=list[TaskExecution],
             response_model_by_alias=False)
    def plan_actions(plan_id: str, identity: Identity = Depends(current_identity)):
        with db.transaction(identity) as conn:
            goal = _goal(conn, plan_id)
            if goal is None:
                raise HTTPException(404, f"plan {plan_id[:100]!r} not found")
            return [t for t in _tasks(conn, str(goal["goal_id"])) if t.task_id != str(goal["goal_id"])]

    @app.get("/v1/tracker/plans/{plan_id}/sub-plans", response_model=list[PlanExecution],
             response_model_by_alias=False)
    def sub_plans(plan_id: str, identity: Identity = Depends(current_identity)):
        _check_id(plan_id, "plan")
        with db.transaction(identity) as conn:
            rows = conn.execute(
                f"select {_PLAN_COLUMNS} from memory.plans where parent_plan_id = %s order by created_at, plan_id",
                (plan_id,)).fetchall()
        return [_plan(r) for r in rows]

    @app.get("/v1/tracker/sessions/{session_id}/plans", response_model=list[PlanExecution],
             response_model_by_alias=False)
    def session_plans(session_id: str, identity: Identity = Depends(current_identity)):
        _check_id(session_id, "session")
        with db.transaction(identity) as conn:
            planned = conn.execute(f"select {_PLAN_COLUMNS} from memory.plans where session_id = %s",
                                   (session_id,)).fetchall()
            goals = conn.execute(
                "select goal_id::text as plan_id, null as parent_plan_id, session_id, goal_type as goal_event,"
                " status, created_at, coalesce(completed_at, created_at) as updated_at from gateway.goals"
                " where session_id = %s", (session_id,)).fetchall()
        by_id = {r["plan_id"]: r for r in goals}
        by_id.update({r["plan_id"]: r for r in planned})  # a planner's record of a goal says more (its parent)
        return [_plan(r) for r in sorted(by_id.values(), key=lambda r: (r["created_at"], r["plan_id"]))]

    @app.get("/v1/tracker/agents/{agent_id}/metrics", response_model=AgentMetrics, response_model_by_alias=False)
    def agent_metrics(agent_id: str, period: str = Query("7d", max_length=8),
                      identity: Identity = Depends(current_identity)):
        _check_id(agent_id, "agent")
        window = _period(period)
        with db.transaction(identity) as conn:
            row = conn.execute(
                "select count(*) as total, count(*) filter (where status = 'completed') as completed,"
                " count(*) filter (where status = 'failed') as failed,"
                " avg(extract(epoch from completed_at - started_at)) as avg_s"
                " from gateway.goal_tasks where agent = %s and completed_at >= now() - %s",
                (agent_id, window)).fetchone()
        total = int(row["total"])
        return AgentMetrics(agent_id=agent_id, period=period, total_tasks=total,
                            completed_tasks=int(row["completed"]), failed_tasks=int(row["failed"]),
                            success_rate=(int(row["completed"]) / total) if total else None,
                            avg_duration_seconds=float(row["avg_s"]) if row["avg_s"] is not None else None)

    @app.get("/v1/tracker/delegation-groups/{group_id}", response_model=DelegationGroup,
             response_model_by_alias=False)
    def delegation_group(group_id: str, identity: Identity = Depends(current_identity)):
        _check_id(group_id, "group")
        with db.transaction(identity) as conn:
            parent = conn.execute(
                "select task_id, plan_id, state->'_sub_tasks' as subs from memory.task_context t"
                " where jsonb_typeof(state->'_sub_tasks') = 'object' and exists (select 1 from"
                " jsonb_each(t.state->'_sub_tasks') e where e.value->>'parallel_group_id' = %s) limit 1",
                (group_id,)).fetchone()
            if parent is None:
                raise HTTPException(404, f"delegation group {group_id[:100]!r} not found")
            members = [sid for sid, info in parent["subs"].items()
                       if isinstance(info, dict) and info.get("parallel_group_id") == group_id]
            recorded = {t.task_id: t for t in _tasks(conn, None, task_ids=members)}
        tasks = [recorded.get(sid) or TaskExecution(task_id=sid, event_type=parent["subs"][sid].get("event_type"),
                                                    state="pending") for sid in members]
        done = sum(t.state == "completed" for t in tasks)
        failed = sum(t.state == "failed" for t in tasks)
        status = ("completed" if done == len(tasks) else
                  "failed" if failed and done + failed == len(tasks) else "running")
        return DelegationGroup(group_id=group_id, parent_task_id=parent["task_id"], plan_id=parent["plan_id"],
                               tasks=tasks, total=len(tasks), completed=done, failed=failed, status=status)

    @app.post("/v1/tracker/spans", status_code=202, response_model=SpansStored)
    def record_spans(body: SpansIn, identity: Identity = Depends(current_identity)):
        """Store finished OpenTelemetry spans (an agent's spans of one delivery, :mod:`soorma.telemetry`) under the
        caller's identity (an agent acting for an event's tenant and user with its delivery grant); read back with
        ``GET /v1/goals/{id}/trace``. Answers ``{"accepted": n, "stored": new}``; a span already stored is kept."""
        with db.transaction(identity) as conn:
            stored = insert_spans(conn, identity, body.spans)
        return {"accepted": len(body.spans), "stored": stored}

    return app


_PLAN_COLUMNS = "plan_id, parent_plan_id, session_id, goal_event, status, created_at, updated_at"
_TASK_COLUMNS = ("task_id, event_type, status, started_at, completed_at, progress, agent,"
                 " extract(epoch from completed_at - started_at) as duration_s")
#: Longest id accepted in a path (longer: 404, as no such row can exist).
MAX_ID = 255
#: Longest metrics period.
MAX_PERIOD = timedelta(days=90)


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def _check_id(value: str, kind: str) -> None:
    if len(value) > MAX_ID:
        raise HTTPException(404, f"{kind} not found")


def _period(text: str) -> timedelta:
    """``<n>h`` or ``<n>d`` as a timedelta (at most :data:`MAX_PERIOD`); 400 otherwise."""
    match = re.fullmatch(r"([1-9][0-9]{0,3})([hd])", text)
    window = (timedelta(hours=int(match[1])) if match[2] == "h" else timedelta(days=int(match[1]))) if match \
        else None
    if window is None or window > MAX_PERIOD:
        raise HTTPException(400, f"invalid period {text[:16]!r}: give <n>h or <n>d, at most 90d (e.g. 7d)")
    return window


def _goal(conn: Any, plan_id: str) -> Any:
    """The goal ``plan_id`` names (a plan created from a goal has its id), or ``None``."""
    try:
        goal_id = uuid.UUID(plan_id)
    except ValueError:
        return None
    return conn.execute("select goal_id, status, result, error, created_at, completed_at from gateway.goals"
                        " where goal_id = %s", (goal_id,)).fetchone()


def _tasks(conn: Any, goal_id: str | None, *, task_ids: list[str] | None = None) -> list[TaskExecution]:
    """The goal's tasks (or those of ``task_ids``) in start order."""
    where, params = ("task_id = any(%s)", [task_ids]) if task_ids is not None else ("goal_id = %s", [goal_id])
    rows = conn.execute(f"select {_TASK_COLUMNS} from gateway.goal_tasks where {where}"
                        " order by started_at nulls last, task_id", params).fetchall()
    return [TaskExecution(task_id=r["task_id"], event_type=r["event_type"], state=r["status"],
                          started_at=_iso(r["started_at"]), completed_at=_iso(r["completed_at"]),
                          duration_seconds=float(r["duration_s"]) if r["duration_s"] is not None else None,
                          progress=r["progress"], agent=r["agent"]) for r in rows]


def _plan(row: Any) -> PlanExecution:
    return PlanExecution(plan_id=row["plan_id"], parent_plan_id=row["parent_plan_id"], session_id=row["session_id"],
                         goal_event=row["goal_event"], status=row["status"], created_at=_iso(row["created_at"]),
                         updated_at=_iso(row["updated_at"]))


# The tracker function's HTTP entry (soorma.functions.tracker.handler imports it on the first HTTP request).
http_handler = lazy_mangum_handler(create_app)
