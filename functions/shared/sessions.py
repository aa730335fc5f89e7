"""A goal's action request and the session rules both the gateway and the tracker apply: which goal of a session
runs, and starting the next queued one when the running one ends (double-texting, issue 14 item 6).

Double-texting policies, as LangGraph names them (https://langchain-ai.github.io/langgraph/cloud/concepts/
double_texting/), decide what happens when a goal arrives for a session that already has one *active*
(:data:`ACTIVE`: ``pending``, ``running`` or ``input-required``):

* ``reject`` — the new goal is refused (409 naming the active goal);
* ``enqueue`` — the new goal is stored ``queued`` and started (published) when the active one ends, oldest first;
* ``interrupt`` — the active goal is cancelled (``POST /v1/goals/{id}/cancel`` semantics), then the new one starts;
* ``rollback`` — as ``interrupt``, and the platform's records of the cancelled goal are deleted.

The default is :data:`DEFAULT_MULTITASK_STRATEGY` (``enqueue``), not LangGraph's ``reject``: a session is a
conversation, and a second message sent while the first is being answered is the normal case of a chat client; it
must neither be lost (``reject`` turns it into an error every client has to handle) nor destroy work already paid for
(``interrupt``/``rollback``), and queueing keeps the answers in the order the messages were sent.

Every path that decides which goal of a session runs holds the session's row lock (:func:`lock_session`) first and
only then reads or writes the session's goals, so two goals arriving at once for an idle session cannot both start,
and the lock order (session, then goal) is the same everywhere, so these paths never deadlock each other.

This module does not import FastAPI: the tracker (whose cold start loads only what recording needs) uses it.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Callable

from soorma.events import EventEnvelope, EventTopic
from soorma.functions.shared.traces import goal_traceparent
from soorma.grants import stamp as stamp_grant
from soorma.identity import Identity

GOAL_RESULT_EVENT = "soorma.goal.result"
GOAL_CANCEL_EVENT = "soorma.goal.cancel"
SOURCE = "soorma-gateway"
#: The double-texting policies (LangGraph's ``multitask_strategy`` values).
MULTITASK_STRATEGIES = ("reject", "enqueue", "interrupt", "rollback")
DEFAULT_MULTITASK_STRATEGY = "enqueue"
#: Goal states in which a goal occupies its session (a ``queued`` goal waits for it to end).
ACTIVE = ("pending", "running", "input-required")


def goal_envelope(identity: Identity, *, goal_id: str, goal_type: str, data: dict[str, Any],
                  session_id: str | None, event_id: str | None = None, time: str | None = None) -> EventEnvelope:
    """The action request a goal publishes (``type=goal_type`` on ``action-requests``, ``correlation_id = goal_id =
    trace_id``, answered by ``soorma.goal.result`` on ``action-results``), stamped with the caller's identity.

    ``event_id``/``time``: those of the first attempt when a pending (or queued) goal is published later, so the
    envelope has the same id — and the same ``Nats-Msg-Id`` — as one whose acknowledgement was lost. One place builds
    it for the first publish, the retry and a queued goal's start, so whatever is added to a goal's envelope is added
    to all of them."""
    fields: dict[str, Any] = {}
    if event_id:
        fields["id"] = event_id
    if time:
        fields["time"] = time
    # Stamped on the first publish and on every retry: a republished request carries a grant that is fresh then.
    return stamp_grant(EventEnvelope(
        source=SOURCE,
        type=goal_type,
        topic=EventTopic.ACTION_REQUESTS,
        data=data,
        correlation_id=goal_id,
        goal_id=goal_id,
        trace_id=goal_id,
        response_event=GOAL_RESULT_EVENT,
        response_topic=EventTopic.ACTION_RESULTS.value,
        platform_tenant_id=identity.platform_tenant_id,
        tenant_id=identity.service_tenant_id,
        user_id=identity.service_user_id,
        session_id=session_id,
        traceparent=goal_traceparent(goal_id),
        **fields,
    ))


def cancel_envelope(identity: Identity, *, goal_id: str, goal_type: str, session_id: str | None,
                    reason: str) -> EventEnvelope:
    """``soorma.goal.cancel`` on ``system-events`` for goal ``goal_id`` (``data = {goal_id, goal_type, reason}``),
    with a delivery grant (the agents' right to act for this user, :mod:`soorma.grants`). Its id is derived from the
    goal, so a cancel published twice is stored once."""
    return stamp_grant(EventEnvelope(
        id=f"cancel-{goal_id}",
        source=SOURCE,
        type=GOAL_CANCEL_EVENT,
        topic=EventTopic.SYSTEM_EVENTS,
        data={"goal_id": goal_id, "goal_type": goal_type, "reason": reason},
        correlation_id=goal_id,
        goal_id=goal_id,
        trace_id=goal_id,
        platform_tenant_id=identity.platform_tenant_id,
        tenant_id=identity.service_tenant_id,
        user_id=identity.service_user_id,
        session_id=session_id,
    ))


def lock_session(conn: Any, session_id: str) -> bool:
    """Take session ``session_id``'s row lock (``SELECT … FOR UPDATE``) in the caller's transaction; ``False`` when
    the caller has no such session (row-level security: only its own)."""
    return conn.execute(
        "select 1 from gateway.sessions where session_id = %s for update", (session_id,)
    ).fetchone() is not None


def session_of(conn: Any, goal_id: str) -> str | None:
    """The session of goal ``goal_id`` (``None``: no session, or no such goal)."""
    row = conn.execute("select session_id from gateway.goals where goal_id = %s", (goal_id,)).fetchone()
    return row["session_id"] if row else None


def start_next_queued(conn: Any, identity: Identity, session_id: str,
                      publish: Callable[[EventEnvelope], Any]) -> str | None:
    """Start the session's oldest ``queued`` goal when none of its goals is :data:`ACTIVE` any more: publish its
    action request (the envelope recorded when it was queued: same event id) and mark it ``running``. Returns the
    started goal's id, or ``None``.

    Call it in the transaction that ended the session's active goal, after :func:`lock_session`. The publish happens
    inside that transaction: when the event bus does not acknowledge it, ``publish(envelope)`` raises and the whole
    transaction — the end of the previous goal included — rolls back, so the caller's retry (the tracker's
    redelivery, the client's cancel) does both again; nothing is left half done."""
    busy = conn.execute(
        "select 1 from gateway.goals where session_id = %s and status = any(%s) limit 1", (session_id, list(ACTIVE))
    ).fetchone()
    if busy is not None:
        return None
    row = conn.execute(
        "select goal_id::text as goal_id, goal_type, data, event_id, created_at from gateway.goals"
        " where session_id = %s and status = 'queued' order by created_at, goal_id limit 1 for update",
        (session_id,),
    ).fetchone()
    if row is None:
        return None
    created: datetime = row["created_at"]
    publish(goal_envelope(identity, goal_id=row["goal_id"], goal_type=row["goal_type"], data=row["data"],
                                    session_id=session_id, event_id=row["event_id"], time=created.isoformat()))
    conn.execute("update gateway.goals set status = 'running' where goal_id = %s and status = 'queued'",
                 (row["goal_id"],))
    return str(row["goal_id"])


def delete_goal_records(conn: Any, goal_id: str) -> None:
    """Delete what the platform recorded of goal ``goal_id`` (double-texting ``rollback``): its goal row, recorded
    events, tasks, input requests and trace spans, and the agents' task and plan contexts saved for it in memory (the plan of a
    goal has the goal's id as its plan id). Row-level security confines every statement to the caller's rows."""
    gid = str(uuid.UUID(goal_id))
    conn.execute("delete from gateway.goal_events where goal_id = %s", (gid,))
    conn.execute("delete from gateway.goal_tasks where goal_id = %s", (gid,))
    conn.execute("delete from gateway.goal_input_requests where goal_id = %s", (gid,))
    conn.execute("delete from gateway.goal_spans where goal_id = %s", (gid,))  # its trace (migration 0060)
    conn.execute("delete from memory.task_context where goal_id = %s", (gid,))
    conn.execute("delete from memory.plan_context where plan_id = %s", (gid,))
    conn.execute("delete from memory.plans where plan_id = %s", (gid,))
    conn.execute("delete from gateway.goals where goal_id = %s", (gid,))
