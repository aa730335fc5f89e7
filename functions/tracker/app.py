"""The tracker's HTTP API: ``GET /v1/tracker/goals/{goal_id}/events`` → ``{goal_id, events: [...], count}`` in
event time order (404 when the caller's identity has neither the goal nor any of its events), and
``POST /v1/tracker/spans``, where agents send the spans of the events they handle (docs/observability.md).

Recording the event stream is :mod:`soorma.functions.tracker.recording` (re-exported here).
"""

from __future__ import annotations

import uuid

from fastapi import Depends, FastAPI, HTTPException
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

    @app.post("/v1/tracker/spans", status_code=202, response_model=SpansStored)
    def record_spans(body: SpansIn, identity: Identity = Depends(current_identity)):
        """Store finished OpenTelemetry spans (an agent's spans of one delivery, :mod:`soorma.telemetry`) under the
        caller's identity (an agent acting for an event's tenant and user with its delivery grant); read back with
        ``GET /v1/goals/{id}/trace``. Answers ``{"accepted": n, "stored": new}``; a span already stored is kept."""
        with db.transaction(identity) as conn:
            stored = insert_spans(conn, identity, body.spans)
        return {"accepted": len(body.spans), "stored": stored}

    return app


# The tracker function's HTTP entry (soorma.functions.tracker.handler imports it on the first HTTP request).
http_handler = lazy_mangum_handler(create_app)
