"""Scheduled goals and waits for an event: the routes behind ``/v1/schedules…`` and ``/v1/waits`` (served by the
gateway function), and :func:`schedule_runner`, which turns a due run into a goal.

Routes (snake_case bodies; every query runs under the caller's identity, so row-level security confines it to the
caller's schedules — another tenant's schedule is a 404, never a 403 that would confirm it exists):

* ``POST /v1/schedules`` ``{expression, timezone?, goal_type, data?, session_id?}`` → 201 the schedule with its
  ``next_run_at``. ``expression`` is EventBridge Scheduler's ``cron(...)``/``rate(...)``
  (:mod:`soorma.functions.scheduler.expressions`); a bad expression or time zone is a 422 saying why.
* ``GET /v1/schedules`` → ``{schedules, count}``; ``GET /v1/schedules/{id}`` → one schedule with ``upcoming`` runs.
* ``POST /v1/schedules/{id}/pause`` / ``…/resume`` → the schedule; ``DELETE /v1/schedules/{id}`` → 204.
* ``POST /v1/waits`` ``{correlation_id, event_type, timeout_seconds, resume: {type, topic, data?, …}, wait_id?}`` →
  201 ``{wait_id, status, timer_id}``: the race-free wait of :func:`soorma.functions.shared.timers.register_wait`.

Each run is a normal goal (its own id) submitted with the schedule's identity, with ``schedule_id`` set and the
idempotency key ``schedule:<id>:<run time>``, so a run fired twice is one goal. A schedule's next run is a durable
timer (kind ``schedule_run``), written when the schedule is created or resumed and after each run; pausing or deleting
cancels it. In AWS that timer is an EventBridge Scheduler one-time schedule (like every timer), not a recurring one:
the schedule's state stays in PostgreSQL under row-level security, pausing is one row update, and nothing is left to
reconcile between two stores. A run missed while the stack was down is fired once when it comes back; the runs it
missed besides are skipped (the next run is computed after the present).
"""

from __future__ import annotations

import json
import logging
import uuid
from datetime import UTC, datetime
from typing import Any, Callable

import psycopg
from fastapi import APIRouter, Depends, HTTPException, Response
from psycopg.types.json import Jsonb
from pydantic import BaseModel, ConfigDict, Field, field_validator

from soorma.events import EventEnvelope
from soorma.functions.gateway.policy import PolicyViolation
from soorma.functions.scheduler import expressions
from soorma.functions.shared import settings, timers
from soorma.functions.shared.db import Database
from soorma.functions.shared.service import current_identity
from soorma.identity import Identity
from soorma.subjects import check_event_type

logger = logging.getLogger("soorma.functions.scheduler")

#: Upcoming runs shown by ``GET /v1/schedules/{id}``.
UPCOMING = 3


class ScheduleRequest(BaseModel):
    """``POST /v1/schedules``."""

    model_config = ConfigDict(extra="forbid")

    expression: str = Field(min_length=6, max_length=256, description="cron(...) or rate(...), EventBridge syntax")
    timezone: str = Field("UTC", min_length=1, max_length=64, description="IANA time zone of a cron expression")
    goal_type: str = Field(min_length=1, max_length=200)
    data: dict[str, Any] = Field(default_factory=dict)
    session_id: str | None = Field(None, min_length=1, max_length=255)

    @field_validator("goal_type")
    @classmethod
    def _type(cls, value: str) -> str:
        try:
            return check_event_type(value)
        except ValueError as exc:
            raise ValueError(str(exc)) from None


class Schedule(BaseModel):
    schedule_id: str
    expression: str
    timezone: str
    goal_type: str
    data: dict[str, Any]
    session_id: str | None = None
    state: str
    next_run_at: str | None = None
    last_run_at: str | None = None
    run_count: int
    created_at: str
    upcoming: list[str] | None = None


class ScheduleList(BaseModel):
    schedules: list[Schedule]
    count: int


class WaitRequest(BaseModel):
    """``POST /v1/waits``: wait for an event of ``event_type`` with ``correlation_id``; ``resume`` is the envelope
    published with the outcome (its ``data.wait``)."""

    model_config = ConfigDict(extra="forbid")

    correlation_id: str = Field(min_length=1, max_length=255)
    event_type: str = Field(min_length=1, max_length=200)
    timeout_seconds: float = Field(gt=0, le=366 * 86400)
    resume: dict[str, Any]
    wait_id: uuid.UUID | None = None


class WaitAnswer(BaseModel):
    wait_id: str
    status: str
    timer_id: str


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _out(row: dict[str, Any], upcoming: list[datetime] | None = None) -> dict[str, Any]:
    out = {k: row[k] for k in ("expression", "timezone", "goal_type", "data", "session_id", "state", "run_count")}
    out.update(schedule_id=str(row["schedule_id"]), next_run_at=_iso(row["next_run_at"]),
               last_run_at=_iso(row["last_run_at"]), created_at=_iso(row["created_at"]))
    if upcoming is not None:
        out["upcoming"] = [u.isoformat() for u in upcoming]
    return out


def _parse(expression: str, timezone: str) -> expressions.Rate | expressions.Cron:
    try:
        parsed = expressions.parse(expression, min_interval_s=settings.SCHEDULE_MIN_INTERVAL_S.get())
        expressions.zone(timezone)
    except expressions.InvalidExpression as exc:
        raise HTTPException(422, str(exc)) from None
    return parsed


def _schedule_uuid(schedule_id: str) -> str:
    try:
        return str(uuid.UUID(schedule_id))
    except ValueError:
        raise HTTPException(404, f"schedule {schedule_id[:64]!r} not found") from None


def _arm_next(conn: psycopg.Connection, identity: Identity, row: dict[str, Any], after: datetime) -> datetime | None:
    """Write the timer of the schedule's first run after ``after`` and record it as ``next_run_at``."""
    parsed = expressions.parse(row["expression"], min_interval_s=settings.SCHEDULE_MIN_INTERVAL_S.get())
    nxt = expressions.next_run(parsed, row["timezone"], after, anchor=row["created_at"])
    if nxt is not None:
        timers.schedule_run(conn, identity=identity, due_at=nxt, schedule_id=str(row["schedule_id"]))
    conn.execute("update scheduler.schedules set next_run_at = %s, updated_at = now() where schedule_id = %s",
                 (nxt, row["schedule_id"]))
    return nxt


def create_router(db: Database) -> APIRouter:
    """The ``/v1/schedules`` and ``/v1/waits`` routes over ``db``."""
    router = APIRouter(tags=["schedules"])

    @router.post("/v1/schedules", status_code=201, response_model=Schedule)
    def create_schedule(body: ScheduleRequest, identity: Identity = Depends(current_identity)):
        """Create a schedule that submits ``goal_type`` with ``data`` on every run of ``expression``."""
        _parse(body.expression, body.timezone)
        sid = str(uuid.uuid4())
        with db.transaction(identity) as conn:
            row = conn.execute(
                "insert into scheduler.schedules (platform_tenant_id, service_tenant_id, service_user_id,"
                " principal_id, schedule_id, expression, timezone, goal_type, data, session_id)"
                " values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) returning *",
                (identity.platform_tenant_id, identity.service_tenant_id, identity.service_user_id,
                 identity.principal_id, sid, body.expression.strip(), body.timezone, body.goal_type, Jsonb(body.data),
                 body.session_id),
            ).fetchone()
            nxt = _arm_next(conn, identity, row, row["created_at"])
            row["next_run_at"] = nxt
        return _out(row)

    @router.get("/v1/schedules", response_model=ScheduleList)
    def list_schedules(identity: Identity = Depends(current_identity)):
        """The caller's schedules, newest first."""
        with db.transaction(identity) as conn:
            rows = conn.execute("select * from scheduler.schedules order by created_at desc limit 1000").fetchall()
        return {"schedules": [_out(r) for r in rows], "count": len(rows)}

    @router.get("/v1/schedules/{schedule_id}", response_model=Schedule)
    def get_schedule(schedule_id: str, identity: Identity = Depends(current_identity)):
        """One schedule and its next runs."""
        sid = _schedule_uuid(schedule_id)
        with db.transaction(identity) as conn:
            row = conn.execute("select * from scheduler.schedules where schedule_id = %s", (sid,)).fetchone()
        if row is None:
            raise HTTPException(404, f"schedule {schedule_id!r} not found")
        upcoming = expressions.runs(row["expression"], row["timezone"], datetime.now(UTC), UPCOMING,
                                    min_interval_s=settings.SCHEDULE_MIN_INTERVAL_S.get(), anchor=row["created_at"])
        return _out(row, upcoming if row["state"] == "enabled" else [])

    def _set_state(schedule_id: str, identity: Identity, state: str) -> dict[str, Any]:
        sid = _schedule_uuid(schedule_id)
        with db.transaction(identity) as conn:
            row = conn.execute("select * from scheduler.schedules where schedule_id = %s for update",
                               (sid,)).fetchone()
            if row is None:
                raise HTTPException(404, f"schedule {schedule_id!r} not found")
            if row["state"] != state:
                timers.cancel_schedule_runs(conn, sid)
                conn.execute("update scheduler.schedules set state = %s, next_run_at = null, updated_at = now()"
                             " where schedule_id = %s", (state, sid))
                row.update(state=state, next_run_at=None)
                if state == "enabled":
                    row["next_run_at"] = _arm_next(conn, identity, row, datetime.now(UTC))
        return _out(row)

    @router.post("/v1/schedules/{schedule_id}/pause", response_model=Schedule)
    def pause(schedule_id: str, identity: Identity = Depends(current_identity)):
        """Stop the runs until resumed (the pending run is cancelled)."""
        return _set_state(schedule_id, identity, "paused")

    @router.post("/v1/schedules/{schedule_id}/resume", response_model=Schedule)
    def resume(schedule_id: str, identity: Identity = Depends(current_identity)):
        """Run again from the next time the expression gives."""
        return _set_state(schedule_id, identity, "enabled")

    @router.delete("/v1/schedules/{schedule_id}", status_code=204)
    def delete(schedule_id: str, identity: Identity = Depends(current_identity)):
        """Delete the schedule and cancel its pending run; its past goals stay."""
        sid = _schedule_uuid(schedule_id)
        with db.transaction(identity) as conn:
            gone = conn.execute("delete from scheduler.schedules where schedule_id = %s", (sid,)).rowcount
            if not gone:
                raise HTTPException(404, f"schedule {schedule_id!r} not found")
            timers.cancel_schedule_runs(conn, sid)
        return Response(status_code=204)

    @router.post("/v1/waits", status_code=201, response_model=WaitAnswer, tags=["events"])
    def wait_for_event(body: WaitRequest, identity: Identity = Depends(current_identity)):
        """Wait (without holding anything) for an event of ``event_type`` with ``correlation_id``: ``resume`` is
        published with ``data.wait`` = the outcome when it is recorded — already, later — or at the timeout."""
        try:
            check_event_type(body.event_type)
            resume = EventEnvelope.model_validate({k: v for k, v in body.resume.items() if k != "delivery_grant"})
            check_event_type(resume.type)
        except ValueError as exc:
            raise HTTPException(422, f"invalid wait: {exc}") from None
        try:
            with db.transaction(identity) as conn:
                wait = timers.register_wait(
                    conn, identity=identity, correlation_id=body.correlation_id, event_type=body.event_type,
                    timeout_s=body.timeout_seconds, resume=json.loads(resume.to_json()),
                    wait_id=str(body.wait_id) if body.wait_id else None)
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        return {"wait_id": wait.wait_id, "status": wait.status, "timer_id": wait.timer_id}

    return router


def schedule_runner(submit: Callable[..., Any]) -> timers.RunSchedule:
    """The ``run_schedule`` of :func:`soorma.functions.shared.timers.fire_due`: submits the run's goal with
    ``submit`` (:meth:`soorma.functions.gateway.goals.Goals.submit`) and writes the next run's timer.

    A paused or deleted schedule's run does nothing. A goal the bus did not acknowledge (503) leaves the run pending
    (retried; the idempotency key makes the retry the same goal); a goal refused for good (policy 403, 413, 422) is
    logged and the schedule moves on to its next run."""

    def run(conn: psycopg.Connection, timer: timers.DueTimer) -> bool:
        row = conn.execute("select * from scheduler.schedules where schedule_id = %s for update",
                           (timer.schedule_id,)).fetchone()
        if row is None or row["state"] != "enabled":
            return True
        identity = Identity(row["platform_tenant_id"], row["service_tenant_id"], row["service_user_id"],
                            row["principal_id"] or "soorma-scheduler", "user")
        run_key = f"schedule:{row['schedule_id']}:{timer.due_at.astimezone(UTC).isoformat()}"
        try:
            submitted = submit(identity, row["goal_type"], row["data"], row["session_id"], run_key,
                               schedule_id=str(row["schedule_id"]))
        except (HTTPException, PolicyViolation) as exc:
            logger.error("schedule %s: its run due %s was refused: %s", row["schedule_id"], timer.due_at, exc)
            submitted = None
        else:
            if submitted.error_status == 503:
                return False
        conn.execute("update scheduler.schedules set last_run_at = %s, run_count = run_count + 1 where schedule_id = %s",
                     (timer.due_at, row["schedule_id"]))
        _arm_next(conn, identity, row, max(timer.due_at, datetime.now(UTC)))
        return True

    return run


__all__ = ["Schedule", "ScheduleRequest", "WaitRequest", "create_router", "schedule_runner"]
