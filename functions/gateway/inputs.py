"""A goal's input requests at the gateway: ``GET /v1/goals/{goal_id}/input`` and
``POST /v1/goals/{goal_id}/input/{request_id}`` (human in the loop, issue 14 item 3; the protocol is described in
:mod:`soorma.functions.shared.inputs`).

Every query runs in a transaction carrying the caller's identity, so row-level security confines it to the caller's
goals: another tenant's (or user's) request is a 404, exactly like a request that does not exist.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import HTTPException
from psycopg.types.json import Jsonb

from soorma.functions.gateway.publisher import Publisher, PublishError
from soorma.functions.shared import inputs
from soorma.functions.shared.db import Database
from soorma.identity import Identity
from soorma.task_context import INPUT_ANSWERED_EVENT

_COLUMNS = ("request_id, goal_id::text as goal_id, task_id, agent, prompt, json_schema, has_default, default_answer,"
            " timeout_at, status, answer, answered_by, created_at, answered_at")


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def request_out(row: dict[str, Any]) -> dict[str, Any]:
    """An input request as the API shows it (``schema`` the JSON Schema the answer must satisfy, ``default`` what a
    timeout answers when ``has_default``)."""
    out = {
        "request_id": row["request_id"],
        "goal_id": row["goal_id"],
        "task_id": row["task_id"],
        "agent": row["agent"],
        "prompt": row["prompt"],
        "schema": row["json_schema"],
        "status": row["status"],
        "timeout_at": _iso(row["timeout_at"]),
        "created_at": _iso(row["created_at"]),
        "answer": row["answer"],
        "answered_by": row["answered_by"],
        "answered_at": _iso(row["answered_at"]),
        "has_default": row["has_default"],
        "default": row["default_answer"] if row["has_default"] else None,
    }
    return out


def list_requests(conn: Any, goal_id: str, status: str | None = None) -> list[dict[str, Any]]:
    """The input requests of goal ``goal_id`` (canonical UUID text), oldest first; ``status`` filters."""
    where, params = ["goal_id = %s"], [goal_id]
    if status is not None:
        where.append("status = %s")
        params.append(status)
    rows = conn.execute(
        f"select {_COLUMNS} from gateway.goal_input_requests where {' and '.join(where)}"
        " order by created_at, request_id",
        params,
    ).fetchall()
    return [request_out(r) for r in rows]


def goal_requests(db: Database, identity: Identity, goal_id: str, status: str | None = None) -> dict[str, Any]:
    """``GET /v1/goals/{goal_id}/input``: ``{goal_id, input_requests}``; 404 when the caller cannot see the goal."""
    with db.transaction(identity) as conn:
        if conn.execute("select 1 from gateway.goals where goal_id = %s", (goal_id,)).fetchone() is None:
            raise HTTPException(404, f"goal {goal_id!r} not found")
        return {"goal_id": goal_id, "input_requests": list_requests(conn, goal_id, status)}


def schema_error(schema: dict[str, Any] | None, answer: Any) -> str | None:
    """Why ``answer`` does not satisfy JSON Schema ``schema`` (the most relevant error, with the path where it
    occurred), or ``None`` when it does. The schema's own ``$schema`` picks the draft, else 2020-12
    (https://json-schema.org/draft/2020-12/json-schema-validation); ``jsonschema`` validates."""
    if schema is None:
        return None
    from jsonschema import exceptions, validators

    validator_class = validators.validator_for(schema)
    try:
        validator_class.check_schema(schema)
    except exceptions.SchemaError as exc:  # the agent's schema is broken: say so rather than accept anything
        return f"the request's schema is not a valid JSON Schema ({exc.message}); no answer can satisfy it"
    error = exceptions.best_match(validator_class(schema).iter_errors(answer))
    if error is None:
        return None
    where = "/".join(str(part) for part in error.absolute_path)
    return f"{error.message} (at {'/' + where if where else 'the answer itself'})"


def answer_request(db: Database, publisher: Publisher, identity: Identity, goal_id: str, request_id: str,
                   answer: Any) -> dict[str, Any]:
    """``POST /v1/goals/{goal_id}/input/{request_id}`` ``{answer}``: record the answer to one pending request and
    resume the agent's flow; returns the answered request.

    In one transaction (the goal's row lock serializes answers to the goal's several requests): 404 when the caller
    cannot see the goal or the request (another tenant's is indistinguishable from none); 409 when the request is no
    longer pending (answered already, timed out, cancelled), or the goal ended; 409 when its timeout timer already
    fired (the timeout won the race: the agent is taking the default or failing the task); 422 naming the error when
    the answer does not satisfy the request's JSON Schema; then the request is ``answered``, its timer cancelled,
    the goal ``running`` again if nothing else is pending, and ``soorma.input.answered`` is published to the agent
    (:func:`soorma.functions.shared.inputs.answer_envelope`) — a publish the event bus does not acknowledge is a 503
    and changes nothing (answer again)."""
    with db.transaction(identity) as conn:
        goal = conn.execute(
            "select status, session_id from gateway.goals where goal_id = %s for update", (goal_id,)
        ).fetchone()
        if goal is None:
            raise HTTPException(404, f"goal {goal_id!r} not found")
        request = conn.execute(
            f"select {_COLUMNS}, correlation_id from gateway.goal_input_requests"
            " where goal_id = %s and request_id = %s for update",
            (goal_id, request_id),
        ).fetchone()
        if request is None:
            raise HTTPException(404, f"goal {goal_id} has no input request {request_id[:200]!r}")
        if request["status"] != "pending":
            raise HTTPException(409, f"input request {request_id} is {request['status']}, not pending")
        if goal["status"] in ("completed", "failed", "cancelled"):
            raise HTTPException(409, f"goal {goal_id} is {goal['status']}; it takes no more input")
        problem = schema_error(request["json_schema"], answer)
        if problem is not None:
            raise HTTPException(422, f"the answer does not satisfy input request {request_id}'s schema: {problem}")
        if request["timeout_at"] is not None and not inputs.cancel_timeout(conn, identity, request_id):
            raise HTTPException(409, f"input request {request_id} timed out before this answer")
        updated = conn.execute(
            "update gateway.goal_input_requests set status = 'answered', answer = %s, answered_by = %s,"
            f" answered_at = now() where request_id = %s and goal_id = %s returning {_COLUMNS}",
            (Jsonb(answer), identity.principal_id, request_id, goal_id),
        ).fetchone()
        inputs.resume_if_answered(conn, goal_id)
        envelope = inputs.answer_envelope(identity, {**request, "goal_id": goal_id}, event_type=INPUT_ANSWERED_EVENT,
                                          status="answered", answer=answer, session_id=goal["session_id"])
        try:
            publisher.publish(envelope)
        except PublishError as exc:
            raise HTTPException(503, f"the answer could not be delivered to the agent ({exc}); answer again",
                                headers={"Retry-After": "1"}) from None
    return request_out(updated)
