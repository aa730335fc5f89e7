"""Double-texting at the gateway: what ``POST /v1/goals`` does with a goal for a session that already has an active
one (issue 14 item 6; the policies and their default are explained in :mod:`soorma.functions.shared.sessions`).

:func:`admit` runs inside the submit's transaction, after the session's row lock was taken (the upsert of
:func:`soorma.functions.gateway.goals.touch_session`), so of two goals arriving at once for an idle session one sees
the other: both cannot start.
"""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException

from soorma.functions.gateway.publisher import Publisher, PublishError
from soorma.functions.shared import inputs
from soorma.functions.shared.sessions import ACTIVE, cancel_envelope, delete_goal_records, start_next_queued
from soorma.identity import Identity


def admit(conn: Any, identity: Identity, session_id: str, strategy: str, publisher: Publisher) -> str:
    """Apply double-texting policy ``strategy`` to a new goal of session ``session_id`` (locked by the caller);
    returns the status the new goal is stored with: ``pending`` (it starts now) or ``queued`` (``enqueue``: it starts
    when the active goal ends).

    * no active or queued goal in the session: ``pending``, whatever the policy (queued goals but no active one —
      left by a goal that ended while the event bus was down — the oldest is started first);
    * ``reject``: ``HTTPException`` 409 naming the active (or oldest queued) goal;
    * ``enqueue``: ``queued``;
    * ``interrupt``: every active goal is cancelled as ``POST /v1/goals/{id}/cancel`` does (status ``cancelled``,
      its pending input requests cancelled, ``soorma.goal.cancel`` published), then ``pending``;
    * ``rollback``: as ``interrupt``, then the cancelled goals' records are deleted
      (:func:`~soorma.functions.shared.sessions.delete_goal_records`).

    The cancel events are published inside the transaction: one the event bus does not acknowledge raises
    ``HTTPException`` 503 and nothing of the submit is kept."""
    active = _active(conn, session_id)
    queued = conn.execute(
        "select goal_id::text as goal_id from gateway.goals where session_id = %s and status = 'queued'"
        " order by created_at, goal_id limit 1",
        (session_id,),
    ).fetchone()
    if not active and queued is not None:
        # Queued goals but none active: the goal that should have started them ended on a path that could not
        # publish (the event bus was down). Start the oldest now, so a session never stays blocked.
        try:
            start_next_queued(conn, identity, session_id, publisher.publish)
        except PublishError as exc:
            raise HTTPException(503, f"session {session_id!r} has a queued goal that could not be started ({exc})",
                                headers={"Retry-After": "1"}) from None
        active = _active(conn, session_id)
    if not active and queued is None:
        return "pending"
    if strategy == "reject":
        busy = active[0] if active else {"goal_id": queued["goal_id"], "status": "queued"}
        raise HTTPException(409, f"session {session_id!r} already has goal {busy['goal_id']} {busy['status']} "
                                 "(multitask_strategy 'reject'); wait for it to end, cancel it, or submit with "
                                 "multitask_strategy 'enqueue', 'interrupt' or 'rollback'")
    if strategy == "enqueue":
        return "queued"
    reason = f"interrupted by a new goal of session {session_id} (multitask_strategy {strategy!r})"
    for goal in active:
        conn.execute(
            "update gateway.goals set status = 'cancelled', error = %s, completed_at = now() where goal_id = %s",
            (reason, goal["goal_id"]),
        )
        inputs.cancel_pending(conn, identity, goal["goal_id"])
        try:
            publisher.publish(cancel_envelope(identity, goal_id=goal["goal_id"], goal_type=goal["goal_type"],
                                              session_id=session_id, reason=reason))
        except PublishError as exc:
            raise HTTPException(503, f"goal {goal['goal_id']} could not be interrupted: its cancel event was not "
                                     f"published ({exc})", headers={"Retry-After": "1"}) from None
        if strategy == "rollback":
            delete_goal_records(conn, goal["goal_id"])
    return "pending"


def _active(conn: Any, session_id: str) -> list[dict[str, Any]]:
    """The session's :data:`~soorma.functions.shared.sessions.ACTIVE` goals, oldest first, row-locked."""
    rows: list[dict[str, Any]] = conn.execute(
        "select goal_id::text as goal_id, goal_type, status from gateway.goals where session_id = %s"
        " and status = any(%s) order by created_at, goal_id for update",
        (session_id, list(ACTIVE)),
    ).fetchall()
    return rows
