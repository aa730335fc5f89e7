"""Input requests (human in the loop, issue 14 item 3): the rows both the tracker and the gateway write.

The life of one request, whose id the agent chose (:meth:`soorma.task_context.TaskContext.request_input`):

1. the agent saves its task context with the request pending and publishes ``soorma.input.requested`` on
   ``task-events`` (``data = {request_id, task_id, agent, prompt, schema, timeout_seconds, has_default,
   default}``); the gateway records it in the publish's transaction, before it is on the bus, and the tracker again
   when it records the event (a no-op then; it covers an event that reached the bus another way)
   (:func:`record_request`): one ``gateway.goal_input_requests`` row, the goal ``running`` → ``input-required``,
   and — when it has a timeout — a durable timer (:mod:`soorma.functions.shared.timers`, key :func:`timeout_key`)
   that publishes ``soorma.input.timeout`` when it is due (armed in AWS by the gateway, which holds the scheduler's
   rights);
2. either a person answers (``POST /v1/goals/{id}/input/{request_id}``, :mod:`soorma.functions.gateway.inputs`):
   the answer is checked against the request's JSON Schema, the row becomes ``answered``, the timer is cancelled and
   ``soorma.input.answered`` goes to the agent — or the timer fires first: the tracker records ``soorma.input.timeout``
   (:func:`record_timeout`, the row becomes ``timed-out``) and the agent takes the declared default or fails the
   task. The answer and the timer settle the race in the database: the answer is accepted only while it can cancel
   the timer (a timer that already fired cannot be cancelled: the answer is then a 409), so the agent receives one of
   the two, never both;
3. once no request of the goal is pending, the goal is ``running`` again (:func:`resume_if_answered`).

This module does not import FastAPI (the tracker uses it).
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta
from typing import Any

from psycopg.types.json import Jsonb

from soorma.events import EventEnvelope, EventTopic
from soorma.functions.shared import timers
from soorma.grants import stamp as stamp_grant
from soorma.identity import Identity
from soorma.task_context import INPUT_ANSWERED_EVENT, INPUT_REQUESTED_EVENT, INPUT_TIMEOUT_EVENT

logger = logging.getLogger("soorma.functions.inputs")

#: The event types of the input protocol (the tracker keeps them out of its task bookkeeping).
INPUT_EVENTS = (INPUT_REQUESTED_EVENT, INPUT_ANSWERED_EVENT, INPUT_TIMEOUT_EVENT)
SOURCE = "soorma-platform"
MAX_PROMPT_CHARS = 4000
#: The longest timeout an agent may ask for (30 days, in seconds).
MAX_TIMEOUT_S = 30 * 86400


def timeout_key(request_id: str) -> str:
    """The durable timer key of request ``request_id``'s timeout (unique per identity, like the request)."""
    return f"input-timeout:{request_id}"


def _goal_uuid(value: Any) -> str | None:
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        return None


def answer_envelope(identity: Identity, request: dict[str, Any], *, event_type: str, status: str,
                    answer: Any, session_id: str | None) -> EventEnvelope:
    """The event that resumes the agent's flow: ``event_type`` (:data:`~soorma.task_context.INPUT_ANSWERED_EVENT`
    or :data:`~soorma.task_context.INPUT_TIMEOUT_EVENT`) on ``action-results`` with the requesting task's correlation
    id, ``data = {request_id, task_id, agent, status, answer, has_default}``. Its id is derived from the request and
    the event type, so publishing it twice stores it once."""
    request_id = request["request_id"]
    goal_id = str(request["goal_id"])
    event_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"soorma-input:{identity.platform_tenant_id}:{request_id}:"
                                                  f"{event_type}"))
    return stamp_grant(EventEnvelope(
        id=event_id,
        source=SOURCE,
        type=event_type,
        topic=EventTopic.ACTION_RESULTS,
        data={"request_id": request_id, "task_id": request["task_id"], "agent": request["agent"], "status": status,
              "answer": answer, "has_default": bool(request["has_default"])},
        correlation_id=request["correlation_id"] or request["task_id"],
        goal_id=goal_id,
        trace_id=goal_id,
        platform_tenant_id=identity.platform_tenant_id,
        tenant_id=identity.service_tenant_id,
        user_id=identity.service_user_id,
        session_id=session_id,
    ))


def record_request(conn: Any, identity: Identity, envelope: EventEnvelope, data: dict[str, Any],
                   when: datetime) -> bool:
    """Record a ``soorma.input.requested`` event (see the module docstring); returns whether a new request was
    stored. A malformed request (no request id or task id, a goal id that is no UUID, a schema that is no object) is
    logged and skipped: redelivering it cannot help."""
    request_id, task_id = data.get("request_id"), data.get("task_id")
    goal_id = _goal_uuid(envelope.goal_id)
    schema = data.get("schema")
    if not (isinstance(request_id, str) and 0 < len(request_id) <= 200 and isinstance(task_id, str) and task_id
            and goal_id and (schema is None or isinstance(schema, dict))):
        logger.warning("input request event %s is malformed; not recorded", envelope.id)
        return False
    timeout = data.get("timeout_seconds")
    timeout_s = float(timeout) if isinstance(timeout, (int, float)) and not isinstance(timeout, bool) else None
    if timeout_s is not None and not 0 < timeout_s <= MAX_TIMEOUT_S:
        timeout_s = MAX_TIMEOUT_S if timeout_s > MAX_TIMEOUT_S else None
    due = when + timedelta(seconds=timeout_s) if timeout_s is not None else None
    has_default = bool(data.get("has_default"))
    row = conn.execute(
        "insert into gateway.goal_input_requests (platform_tenant_id, service_tenant_id, service_user_id,"
        " request_id, goal_id, task_id, correlation_id, agent, prompt, json_schema, has_default, default_answer,"
        " timeout_at, created_at) values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
        " on conflict do nothing returning request_id, goal_id, task_id, correlation_id, agent, has_default,"
        " default_answer",
        (identity.platform_tenant_id, identity.service_tenant_id, identity.service_user_id, request_id, goal_id,
         task_id, envelope.correlation_id, str(data.get("agent") or envelope.source or "")[:200],
         str(data.get("prompt") or "")[:MAX_PROMPT_CHARS], Jsonb(schema) if schema is not None else None,
         has_default, Jsonb(data.get("default")) if has_default else None, due, when),
    ).fetchone()
    if row is None:
        return False
    conn.execute(
        "update gateway.goals set status = 'input-required' where goal_id = %s and status in ('running', 'pending')",
        (goal_id,),
    )
    if due is not None:
        _schedule_timeout(conn, identity, dict(row), due, envelope.session_id)
    return True


def _schedule_timeout(conn: Any, identity: Identity, request: dict[str, Any], due: datetime,
                      session_id: str | None) -> None:
    """A durable timer that publishes the request's ``soorma.input.timeout`` at ``due`` (part C's
    :func:`soorma.functions.shared.timers.schedule_event`, in this transaction: the request and its timer are stored
    together or not at all)."""
    envelope = answer_envelope(identity, request, event_type=INPUT_TIMEOUT_EVENT, status="timed-out",
                               answer=request["default_answer"] if request["has_default"] else None,
                               session_id=session_id)
    # The stored envelope's grant is dropped; the timer stamps a fresh one when it fires.
    timers.schedule_event(conn, identity=identity, due_at=due, envelope=envelope.model_dump(mode="json"),
                          key=timeout_key(request["request_id"]))


def record_timeout(conn: Any, data: dict[str, Any], goal_id: str | None, when: datetime) -> bool:
    """Record a fired ``soorma.input.timeout``: a request still ``pending`` becomes ``timed-out`` (its answer the
    declared default, if any) and its goal ``running`` again when nothing else is pending. Returns whether the request
    was still pending."""
    gid = _goal_uuid(goal_id)
    request_id = data.get("request_id")
    if gid is None or not isinstance(request_id, str):
        return False
    row = conn.execute(
        "update gateway.goal_input_requests set status = 'timed-out', answered_at = %s,"
        " answer = case when has_default then default_answer end, answered_by = 'timeout'"
        " where request_id = %s and goal_id = %s and status = 'pending' returning request_id",
        (when, request_id, gid),
    ).fetchone()
    if row is None:
        return False
    resume_if_answered(conn, gid)
    return True


def resume_if_answered(conn: Any, goal_id: str) -> None:
    """Goal ``goal_id`` back to ``running`` from ``input-required`` when none of its input requests is pending."""
    conn.execute(
        "update gateway.goals g set status = 'running' where g.goal_id = %s and g.status = 'input-required'"
        " and not exists (select 1 from gateway.goal_input_requests r where r.goal_id = g.goal_id"
        " and r.status = 'pending')",
        (goal_id,),
    )


def cancel_pending(conn: Any, identity: Identity, goal_id: str) -> None:
    """A goal that ended leaves no request pending: its pending requests become ``cancelled`` (answering one is then a
    409) and their timers are cancelled."""
    rows = conn.execute(
        "update gateway.goal_input_requests set status = 'cancelled', answered_at = now()"
        " where goal_id = %s and status = 'pending' returning request_id, timeout_at",
        (goal_id,),
    ).fetchall()
    for row in rows:
        if row["timeout_at"] is not None:
            cancel_timeout(conn, identity, row["request_id"])


def cancel_timeout(conn: Any, identity: Identity, request_id: str) -> bool:
    """Cancel request ``request_id``'s timeout timer; ``False`` when it already fired (or never existed)."""
    return bool(timers.cancel_timer(conn, identity=identity, key=timeout_key(request_id)))

