"""Goals and sessions: the logic behind ``/v1/goals…`` and ``/v1/sessions…`` (and the A2A methods mapped onto them).

Every query runs in a transaction carrying the caller's identity, so row-level security confines it to the caller's
(platform tenant, service tenant, service user).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import time
import uuid
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from fastapi import HTTPException
from psycopg.types.json import Jsonb

from soorma.events import EventEnvelope, EventTopic
from soorma.functions.gateway import inputs as goal_inputs, policy as policies, sessions as double_texting
from soorma.functions.gateway.publisher import PayloadTooLarge, Publisher, PublishError
from soorma.functions.shared import inputs, traces
from soorma.functions.shared.db import Database
from soorma.functions.shared.sessions import (
    DEFAULT_MULTITASK_STRATEGY,
    GOAL_CANCEL_EVENT,
    GOAL_RESULT_EVENT,
    SOURCE,
    cancel_envelope,
    goal_envelope,
    lock_session,
    session_of,
    start_next_queued,
)
from soorma.identity import Identity
from soorma.subjects import subject

logger = logging.getLogger("soorma.functions.gateway")

__all__ = ["GOAL_CANCEL_EVENT", "GOAL_RESULT_EVENT", "SOURCE", "Goals", "goal_envelope"]

MAX_WAIT_S = 25.0
FINAL = ("completed", "failed", "cancelled")
#: The channel a goal's end is announced on: ``NOTIFY`` with the goal id as the only payload, sent by a trigger when
#: a goal reaches a state of :data:`FINAL` (migration ``0019_goal_done_notify.sql``).
GOAL_DONE_CHANNEL = "soorma_goal_done"
#: Seconds between re-reads of a waited-on goal when no notification came: only a safety net for a missed one.
RECHECK_S = 1.0

_GOAL_COLUMNS = (
    "goal_id::text as goal_id, goal_type, status, data, result, error, session_id, schedule_id::text as schedule_id,"
    " response_event, created_at, completed_at"
)


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def encode_cursor(*values: Any) -> str:
    raw = json.dumps([v.isoformat() if isinstance(v, datetime) else v for v in values], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, size: int) -> list[Any]:
    """The values of a cursor from :func:`encode_cursor`; 422 for anything else."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = json.loads(raw)
        if not isinstance(values, list) or len(values) != size or not all(isinstance(v, str) for v in values):
            raise ValueError("shape")
        return values
    except (ValueError, UnicodeDecodeError):
        raise HTTPException(422, "invalid cursor") from None


def goal_uuid(goal_id: str) -> str:
    """The canonical UUID text of ``goal_id``; 404 when it is not a UUID (no goal can have that id)."""
    try:
        return str(uuid.UUID(goal_id))
    except (ValueError, AttributeError):
        raise HTTPException(404, f"goal {goal_id[:100]!r} not found") from None


def request_hash(goal_type: str, data: dict[str, Any], session_id: str | None) -> str:
    canonical = json.dumps({"goal_type": goal_type, "data": data, "session_id": session_id}, sort_keys=True,
                           separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass
class Submitted:
    """The outcome of :meth:`Goals.submit`: the goal and its status; ``error_status`` (413/503) and ``error`` when it
    was not accepted; ``retry_after_s`` for a 503 (the goal is ``pending``: retry with the same Idempotency-Key)."""

    goal_id: str
    status: str
    goal_type: str
    replayed: bool = False
    error_status: int | None = None
    error: str | None = None
    retry_after_s: int | None = None

    def body(self) -> dict[str, Any]:
        return {"goal_id": self.goal_id, "status": self.status, "goal_type": self.goal_type}


#: Seconds a client is told to wait (``Retry-After``) before retrying a goal whose publish was not acknowledged.
PUBLISH_RETRY_AFTER_S = 1


class Goals:
    """The goal API over one database and one publisher.

    ``recheck_s``: seconds between re-reads of a goal a long-poll waits on when no completion notification came
    (:meth:`wait_until_final`)."""

    def __init__(self, db: Database, publisher: Publisher, *, recheck_s: float = RECHECK_S) -> None:
        self.db = db
        self.publisher = publisher
        self.recheck_s = recheck_s

    # -- submit ----------------------------------------------------------------------------------------------------
    def submit(
        self,
        identity: Identity,
        goal_type: str,
        data: dict[str, Any],
        session_id: str | None = None,
        idempotency_key: str | None = None,
        multitask_strategy: str | None = None,
        schedule_id: str | None = None,
    ) -> Submitted:
        """Check the request, record the goal ``pending`` (once per idempotency key), publish its action request, and
        mark it ``running`` once the event bus acknowledged the publish.

        Why this order (commit, publish, commit) rather than publish-then-commit or a separate outbox relay: the goal
        row must exist before its request is on the bus, or the tracker could receive the result of a goal it cannot
        find. The ``pending`` row *is* the transactional outbox entry — it is written with the goal in one
        transaction and holds everything needed to publish the same envelope again (its event id, type, data,
        session, identity) — and there is no always-on relay to drain it (serverless: no idle cost); instead the
        relay is the client's retry with the same ``Idempotency-Key`` (the SDK sends one on every submit and retries
        a 503), and the tracker, which marks a ``pending`` goal ``running`` when it records the goal's own request
        from the stream. A republish reuses the event id, so JetStream's de-duplication by ``Nats-Msg-Id`` =
        ``<platform tenant>:<event id>`` (120 s window) stores it once even when the first publish was stored and
        only its acknowledgement was lost; past the window the event may be delivered twice, which handlers absorb
        (idempotent by event id, DESIGN.md "Delivery semantics"). On SNS there is no de-duplication at all: the same
        holds through handler idempotency.

        Outcomes: ``Submitted(status="running")`` (202) once acknowledged; a publish that was not acknowledged (bus
        unreachable, no ack in time) or a failed status update leaves the goal ``pending`` and returns
        ``error_status=503`` with ``retry_after_s``; a retry with the same key and request republishes and then
        answers ``running`` (or the goal's later status) with ``replayed=True``; a replay of a goal that is no longer
        pending answers its status without publishing. Without an ``Idempotency-Key`` nothing can retry the goal, so a
        publish that is not acknowledged marks it ``failed`` (``failed_by_platform``; the tracker revives it if its
        request reached the bus after all) and returns ``error_status=503`` with ``status="failed"``. Before anything is stored, raises ``HTTPException`` 413 when
        the envelope exceeds the bus's maximum payload, :class:`~soorma.functions.gateway.policy.PolicyViolation`
        (403) for the tenant's policy (goal types, ``max_payload_bytes``), ``HTTPException`` 422 for a goal type that
        cannot form a subject; 409 when the key was used with another request. ``schedule_id``: the schedule this goal is a
        run of (:mod:`soorma.functions.scheduler.schedules`), listed by ``GET /v1/goals?schedule_id=``.

        Sessions (double-texting, :mod:`soorma.functions.gateway.sessions`): a goal naming a session takes the
        session's row lock first; when the session already has an active goal, ``multitask_strategy`` (else the
        session's own, else ``enqueue``) decides: 409 (``reject``), stored ``queued`` and answered
        ``Submitted(status="queued")`` without publishing (``enqueue``: published when the active goal ends), or the
        active goal is cancelled (``interrupt``) and deleted (``rollback``) before this one is published. A retry
        with an Idempotency-Key already used is a replay and never meets the policy again."""
        goal_id = str(uuid.uuid4())
        subject(identity.platform_tenant_id, EventTopic.ACTION_REQUESTS.value, goal_type)  # 422 if unusable
        digest = request_hash(goal_type, data, session_id) if idempotency_key else None
        envelope = goal_envelope(identity, goal_id=goal_id, goal_type=goal_type, data=data, session_id=session_id)
        self._check_size(envelope)  # 413 before the goal (and its data) is stored
        replayed = False
        status = "pending"
        with self.db.transaction(identity) as conn:
            policy = policies.load(conn, identity.platform_tenant_id)
            policies.check_goal(policy, goal_type, envelope)
            policies.check_budget(conn, policy)
            if session_id:
                session_strategy = touch_session(conn, identity, session_id)  # the session's row lock, held
                replay = idempotency_key and conn.execute(
                    "select 1 from gateway.goals where idempotency_key = %s", (idempotency_key,)
                ).fetchone()
                if not replay:
                    status = double_texting.admit(conn, identity, session_id,
                                                  multitask_strategy or session_strategy, self.publisher)
            inserted = conn.execute(
                "insert into gateway.goals (goal_id, platform_tenant_id, service_tenant_id, service_user_id,"
                " principal_id, goal_type, data, session_id, status, response_event, event_id, idempotency_key,"
                " request_hash, schedule_id) values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                " on conflict (platform_tenant_id, service_tenant_id, service_user_id, idempotency_key)"
                " where idempotency_key is not null do nothing returning goal_id",
                (goal_id, identity.platform_tenant_id, identity.service_tenant_id, identity.service_user_id,
                 identity.principal_id, goal_type, Jsonb(data), session_id, status, GOAL_RESULT_EVENT, envelope.id,
                 idempotency_key, digest, schedule_id),
            ).fetchone()
            if inserted is None:
                existing = conn.execute(
                    "select goal_id::text as goal_id, goal_type, status, request_hash, event_id, data, session_id,"
                    " created_at from gateway.goals where idempotency_key = %s",
                    (idempotency_key,),
                ).fetchone()
                if existing is None:  # pragma: no cover - the conflicting row is always visible to its identity
                    raise HTTPException(409, "idempotency key conflict; retry")
                if existing["request_hash"] != digest:
                    raise HTTPException(
                        409, "Idempotency-Key was already used with a different request body"
                    )
                if existing["status"] != "pending" or not existing["event_id"]:
                    return Submitted(existing["goal_id"], existing["status"], existing["goal_type"], replayed=True)
                # Not acknowledged last time: publish the same envelope again (same event id and message id).
                goal_id, replayed = existing["goal_id"], True
                envelope = goal_envelope(identity, goal_id=goal_id, goal_type=existing["goal_type"],
                                         data=existing["data"], session_id=existing["session_id"],
                                         event_id=existing["event_id"], time=iso(existing["created_at"]))
                status = "pending"
        if status == "queued":
            return Submitted(goal_id, "queued", goal_type)
        return self._publish_pending(identity, envelope, replayed=replayed, retryable=idempotency_key is not None)

    def _check_size(self, envelope: EventEnvelope) -> None:
        """413 when the envelope cannot fit on the bus (the publisher's ``check_size``; publishers without one are
        trusted to refuse at publish time)."""
        check = getattr(self.publisher, "check_size", None)
        if check is None:
            return
        try:
            check(envelope)
        except PayloadTooLarge as exc:
            raise HTTPException(413, f"goal could not be submitted: {exc}") from None

    def _publish_pending(self, identity: Identity, envelope: EventEnvelope, *, replayed: bool,
                         retryable: bool = True) -> Submitted:
        """Publish a ``pending`` goal's request and mark it ``running`` (see :meth:`submit`).

        ``retryable``: the request carried an Idempotency-Key. Without one the client cannot retry this goal (a
        retry is a new goal), so a publish that is not acknowledged must not leave it ``pending`` for ever: it is
        marked ``failed`` (``failed_by_platform``, reason "not published: …") and answered 503. If the publish was
        in fact stored and only its acknowledgement was lost, the tracker revives it (``running``) when it records
        the goal's own request (:func:`soorma.functions.tracker.recording._mark_published`)."""
        goal_id, goal_type = str(envelope.goal_id), envelope.type
        started = datetime.now(UTC)
        try:
            self.publisher.publish(envelope)
        except PayloadTooLarge as exc:  # the server's limit is lower than we knew: retrying cannot help
            reason = str(exc)
            with self.db.transaction(identity) as conn:
                conn.execute(
                    "update gateway.goals set status = 'failed', error = %s, completed_at = now()"
                    " where goal_id = %s and status = 'pending'",
                    (f"publish failed: {reason}", goal_id),
                )
            if envelope.session_id:
                self._start_queued(identity, envelope.session_id)
            return Submitted(goal_id, "failed", goal_type, replayed=replayed, error_status=413,
                             error=f"goal {goal_id} could not be submitted: {reason}")
        except Exception as exc:  # noqa: BLE001 - not acknowledged: the goal stays pending for a retry
            reason = str(exc) if isinstance(exc, PublishError) else f"{type(exc).__name__}: {exc}"
            if not retryable:
                return self._not_published(identity, goal_id, goal_type, reason)
            logger.error("goal %s: publish not acknowledged, goal left pending: %s", goal_id, reason)
            return self._not_accepted(goal_id, goal_type, replayed, f"the event bus did not acknowledge it: {reason}")
        try:
            with self.db.transaction(identity) as conn:
                row = conn.execute(
                    "update gateway.goals set status = 'running' where goal_id = %s and status = 'pending'"
                    " returning status",
                    (goal_id,),
                ).fetchone() or conn.execute(
                    # already moved on: the tracker saw the request (or its result) first, or it was cancelled
                    "select status from gateway.goals where goal_id = %s", (goal_id,)
                ).fetchone()
                if envelope.traceparent and not replayed:  # the goal's trace starts here (soorma.functions.shared.traces)
                    traces.insert_spans(conn, identity, [traces.root_span(
                        goal_id, goal_type, started, datetime.now(UTC), ok=True,
                        attributes={"soorma.event_id": envelope.id, "soorma.agent": "gateway",
                                    "soorma.platform_tenant_id": identity.platform_tenant_id})])
        except psycopg.Error as exc:  # published, but not recorded as such: a retry republishes (de-duplicated)
            logger.error("goal %s: published but its status was not saved: %s", goal_id, exc)
            return self._not_accepted(goal_id, goal_type, replayed, "its status could not be saved")
        return Submitted(goal_id, row["status"] if row else "running", goal_type, replayed=replayed)

    def _not_published(self, identity: Identity, goal_id: str, goal_type: str, reason: str) -> Submitted:
        """A goal without an Idempotency-Key whose publish was not acknowledged: ``failed`` by the platform (the
        tracker revives it if its request turns up on the bus), answered 503 with ``Retry-After`` (a retry submits a
        new goal). If even this update fails the goal stays ``pending``; the answer says so."""
        error = (f"not published: the event bus did not acknowledge it ({reason}); send an Idempotency-Key to make "
                 "submissions retryable")
        logger.error("goal %s (no Idempotency-Key): publish not acknowledged, goal failed: %s", goal_id, reason)
        try:
            with self.db.transaction(identity) as conn:
                row = conn.execute(
                    "update gateway.goals set status = 'failed', error = %s, completed_at = now(),"
                    " failed_by_platform = true where goal_id = %s and status = 'pending' returning status",
                    (error, goal_id),
                ).fetchone() or conn.execute(
                    # already moved on: the tracker recorded its request (the ack was lost, not the publish)
                    "select status from gateway.goals where goal_id = %s", (goal_id,)
                ).fetchone()
        except psycopg.Error as exc:
            logger.error("goal %s: its failure could not be saved either: %s", goal_id, exc)
            return self._not_accepted(goal_id, goal_type, False, f"the event bus did not acknowledge it: {reason}")
        status = row["status"] if row else "failed"
        if status != "failed":  # the tracker saw its request first: it is running after all
            return Submitted(goal_id, status, goal_type)
        return Submitted(goal_id, "failed", goal_type, error_status=503, retry_after_s=PUBLISH_RETRY_AFTER_S,
                         error=f"goal {goal_id} failed: {error}")

    def _start_queued(self, identity: Identity, session_id: str) -> None:
        """After a goal of ``session_id`` failed at submit, start the session's next queued goal
        (:func:`~soorma.functions.shared.sessions.start_next_queued`). Best effort: when it cannot be published
        it stays queued, and the session's next submit starts it (:func:`soorma.functions.gateway.sessions.admit`)."""
        try:
            with self.db.transaction(identity) as conn:
                lock_session(conn, session_id)
                start_next_queued(conn, identity, session_id, self.publisher.publish)
        except (PublishError, psycopg.Error) as exc:
            logger.warning("session %s: its next queued goal was not started (%s); the next submit starts it",
                           session_id, exc)

    @staticmethod
    def _not_accepted(goal_id: str, goal_type: str, replayed: bool, why: str) -> Submitted:
        return Submitted(
            goal_id, "pending", goal_type, replayed=replayed, error_status=503, retry_after_s=PUBLISH_RETRY_AFTER_S,
            error=f"goal {goal_id} is pending: {why}; retry with the same Idempotency-Key and request to submit it",
        )

    # -- read ------------------------------------------------------------------------------------------------------
    def status(self, identity: Identity, goal_id: str) -> str | None:
        """The goal's status as the caller sees it (row-level security), ``None`` when it cannot see it."""
        with self.db.transaction(identity) as conn:
            row = conn.execute("select status from gateway.goals where goal_id = %s", (goal_id,)).fetchone()
        return row["status"] if row else None

    def _final(self, identity: Identity, goal_id: str, *, shown: str) -> bool:
        """Whether the goal (canonical id) has ended; 404 naming ``shown`` when the caller cannot see it."""
        state = self.status(identity, goal_id)
        if state is None:
            raise HTTPException(404, f"goal {shown!r} not found")
        return state in FINAL

    def wait_until_final(self, identity: Identity, goal_id: str, wait_s: float) -> None:
        """Return once goal ``goal_id`` has ended, or after ``wait_s`` seconds (at most :data:`MAX_WAIT_S`),
        whichever comes first; 404 when the caller cannot see it.

        Woken by the completion itself: a goal that reaches a final state sends ``NOTIFY`` on
        :data:`GOAL_DONE_CHANNEL` with its id when its transaction commits (migration 0019), and the waiter, which
        listens on a dedicated connection (:meth:`Database.listen`, closed on every path), returns at once: the
        caller (:meth:`get`) reads the goal under its identity, and the goal's notification says it has ended (the
        trigger sends it only when a final state is committed), so reading its status again first would only delay
        the answer. Notifications of other goals (any tenant's: the payload is a bare id, nothing
        is read from it) are skipped without a query. The subscription is made before the goal is read again, so a
        completion committed in between is seen either by that read or as a notification. A notification can still
        be missed (the listener connection lost, a final state written with triggers disabled), so the goal is also
        re-read every :attr:`recheck_s` seconds; without a listener (it could not connect) that re-check is all
        there is. A goal already final is answered without opening the listener."""
        deadline = time.monotonic() + min(wait_s, MAX_WAIT_S)
        gid = goal_uuid(goal_id)  # the notifications carry the canonical text
        if self._final(identity, gid, shown=goal_id):
            return
        with ExitStack() as stack:
            try:
                listener: psycopg.Connection | None = stack.enter_context(self.db.listen(GOAL_DONE_CHANNEL))
            except psycopg.Error as exc:
                logger.warning("goal %s: cannot listen for its completion (%s); re-checking every %s s", goal_id,
                               exc, self.recheck_s)
                listener = None
            while not self._final(identity, gid, shown=goal_id):
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                pause = min(self.recheck_s, left)
                if listener is None:
                    time.sleep(pause)
                    continue
                try:
                    for notice in listener.notifies(timeout=pause):
                        if notice.payload == gid:
                            return  # the trigger sends it for a final state only, once its transaction committed
                except psycopg.Error as exc:
                    logger.warning("goal %s: lost the completion listener (%s); re-checking every %s s", goal_id,
                                   exc, self.recheck_s)
                    listener = None

    def get(self, identity: Identity, goal_id: str, *, wait_s: float = 0.0) -> dict[str, Any]:
        """The goal with its tasks, event count and input requests; with ``wait_s`` > 0, first wait until it has ended (at most
        :data:`MAX_WAIT_S`, :meth:`wait_until_final`). 404 when the caller cannot see it."""
        gid = goal_uuid(goal_id)
        if wait_s > 0:
            self.wait_until_final(identity, goal_id, wait_s)
        # The four reads go to the server together (psycopg's pipeline mode, one round trip instead of four:
        # https://www.psycopg.org/psycopg3/docs/advanced/pipeline.html); it is the long-poll's answer, on the
        # critical path of every goal. Those of a goal the caller cannot see find nothing (row-level security).
        with self.db.transaction(identity) as conn, conn.pipeline():
            goal_row = conn.execute(f"select {_GOAL_COLUMNS} from gateway.goals where goal_id = %s", (gid,))
            task_rows = conn.execute(
                "select task_id, event_type, status, agent, started_at, completed_at, progress, progress_message"
                " from gateway.goal_tasks"
                " where goal_id = %s order by started_at nulls last, task_id",
                (gid,),
            )
            event_count = conn.execute("select count(*) as n from gateway.goal_events where goal_id = %s", (gid,))
            requests = goal_inputs.list_requests(conn, gid)
            goal = goal_row.fetchone()
            if goal is None:
                raise HTTPException(404, f"goal {goal_id!r} not found")
            tasks = task_rows.fetchall()
            events = event_count.fetchone()["n"]
        return {
            **goal,
            "created_at": iso(goal["created_at"]),
            "completed_at": iso(goal["completed_at"]),
            "tasks": [
                {**t, "started_at": iso(t["started_at"]), "completed_at": iso(t["completed_at"])} for t in tasks
            ],
            "events": events,
            "input_requests": requests,
        }

    def list(
        self,
        identity: Identity,
        *,
        status: str | None = None,
        session_id: str | None = None,
        goal_type: str | None = None,
        limit: int = 20,
        cursor: str | None = None,
        schedule_id: str | None = None,
    ) -> dict[str, Any]:
        """The caller's goals, newest first, ``limit`` per page; ``next_cursor`` continues. ``schedule_id``: only the
        runs of that schedule (422 when it is not a UUID)."""
        where, params = ["true"], []
        if status is not None:
            where.append("status = %s")
            params.append(status)
        if session_id is not None:
            where.append("session_id = %s")
            params.append(session_id)
        if goal_type is not None:
            where.append("goal_type = %s")
            params.append(goal_type)
        if schedule_id is not None:
            try:
                params.append(str(uuid.UUID(schedule_id)))
            except ValueError:
                raise HTTPException(422, "schedule_id must be a UUID") from None
            where.append("schedule_id = %s")
        if cursor:
            created, gid = decode_cursor(cursor, 2)
            try:
                created_at = datetime.fromisoformat(created)
                gid = str(uuid.UUID(gid))
            except ValueError:
                raise HTTPException(422, "invalid cursor") from None
            where.append("(created_at, goal_id) < (%s, %s)")
            params += [created_at, gid]
        params.append(limit + 1)
        with self.db.transaction(identity) as conn:
            rows = conn.execute(
                "select goal_id::text as goal_id, goal_type, status, session_id, schedule_id::text as schedule_id,"
                f" error, created_at, completed_at from gateway.goals where {' and '.join(where)} order by created_at desc, goal_id desc limit %s",
                params,
            ).fetchall()
        more = len(rows) > limit
        rows = rows[:limit]
        goals = [{**r, "created_at": iso(r["created_at"]), "completed_at": iso(r["completed_at"])} for r in rows]
        next_cursor = encode_cursor(rows[-1]["created_at"], rows[-1]["goal_id"]) if more else None
        return {"goals": goals, "count": len(goals), "next_cursor": next_cursor}

    def trace(self, identity: Identity, goal_id: str) -> traces.GoalTrace:
        """``GET /v1/goals/{id}/trace``: the goal's spans (:func:`soorma.functions.shared.traces.read_trace`); 404
        when the caller's identity cannot see the goal (row-level security), so no one reads another's trace."""
        goal_id = goal_uuid(goal_id)
        with self.db.transaction(identity) as conn:
            if conn.execute("select 1 from gateway.goals where goal_id = %s", (goal_id,)).fetchone() is None:
                raise HTTPException(404, f"goal {goal_id} not found")
            return traces.read_trace(conn, goal_id)

    def events(self, identity: Identity, goal_id: str, *, limit: int = 1000, cursor: str | None = None) -> dict:
        """Every recorded event of the goal's trace in order (event time, then arrival), ``limit`` per page."""
        gid = goal_uuid(goal_id)
        where, params = ["goal_id = %s"], [gid]
        if cursor:
            when, recorded, event_id = decode_cursor(cursor, 3)
            try:
                params += [datetime.fromisoformat(when), datetime.fromisoformat(recorded), event_id]
            except ValueError:
                raise HTTPException(422, "invalid cursor") from None
            where.append("(time, recorded_at, event_id) > (%s, %s, %s)")
        params.append(limit + 1)
        with self.db.transaction(identity) as conn:
            if conn.execute("select 1 from gateway.goals where goal_id = %s", (gid,)).fetchone() is None:
                raise HTTPException(404, f"goal {goal_id!r} not found")
            rows = conn.execute(
                "select event_id, type, topic, correlation_id, parent_event_id, source, time, recorded_at,"
                f" data_summary as data from gateway.goal_events where {' and '.join(where)}"
                " order by time, recorded_at, event_id limit %s",
                params,
            ).fetchall()
        more = len(rows) > limit
        rows = rows[:limit]
        last = rows[-1] if rows else None
        events = [
            {k: v for k, v in {**r, "time": iso(r["time"])}.items() if k != "recorded_at"} for r in rows
        ]
        next_cursor = encode_cursor(last["time"], last["recorded_at"], last["event_id"]) if more and last else None
        return {"goal_id": gid, "events": events, "count": len(events), "next_cursor": next_cursor}

    # -- cancel ----------------------------------------------------------------------------------------------------
    def cancel(self, identity: Identity, goal_id: str, reason: str | None = None) -> dict[str, Any]:
        """Mark a goal that has not ended (``queued``, ``pending``, ``running``, ``input-required``) cancelled and
        publish ``soorma.goal.cancel`` on ``system-events`` (in that order, inside one transaction: a failed publish
        leaves the goal as it was and answers 503). Its pending input requests are cancelled, and its session's next
        queued goal starts (:func:`~soorma.functions.shared.sessions.start_next_queued`, same transaction). 404
        unknown goal, 409 a goal that already ended. A cancelled pending goal is never published: a retry of its
        submit answers ``cancelled``; a cancelled queued goal was never published, so no cancel event is sent.
        Agents are not stopped: only those that subscribe to ``soorma.goal.cancel`` hear of it."""
        gid = goal_uuid(goal_id)
        text = reason or f"cancelled by {identity.principal_id}"
        with self.db.transaction(identity) as conn:
            session_id = session_of(conn, gid)
            if session_id:
                lock_session(conn, session_id)  # before the goal: the order every session path takes
            row = conn.execute(
                "update gateway.goals g set status = 'cancelled', error = %s, completed_at = now()"
                " from (select goal_id, status from gateway.goals where goal_id = %s for update) old"
                " where g.goal_id = old.goal_id and old.status in ('queued', 'pending', 'running', 'input-required')"
                " returning g.goal_type, g.session_id, old.status as was",
                (text, gid),
            ).fetchone()
            if row is None:
                current = conn.execute("select status from gateway.goals where goal_id = %s", (gid,)).fetchone()
                if current is None:
                    raise HTTPException(404, f"goal {goal_id!r} not found")
                raise HTTPException(409, f"goal {gid} is {current['status']}, not running or pending")
            inputs.cancel_pending(conn, identity, gid)
            try:
                if row["was"] != "queued":
                    self.publisher.publish(cancel_envelope(identity, goal_id=gid, goal_type=row["goal_type"],
                                                           session_id=row["session_id"], reason=text))
                if session_id:
                    start_next_queued(conn, identity, session_id, self.publisher.publish)
            except PublishError as exc:
                raise HTTPException(503, f"cancel event could not be published: {exc}") from None
        return self.get(identity, gid)


# -- sessions ----------------------------------------------------------------------------------------------------------
def touch_session(conn, identity: Identity, session_id: str) -> str:
    """Create session ``session_id`` if the caller has none of that id, else mark it used; returns its
    ``multitask_strategy``. The upsert holds the session's row lock until the transaction ends."""
    row = conn.execute(
        "insert into gateway.sessions as s (platform_tenant_id, service_tenant_id, service_user_id, session_id)"
        " values (%s, %s, %s, %s) on conflict (platform_tenant_id, service_tenant_id, service_user_id, session_id)"
        " do update set updated_at = now() returning s.multitask_strategy",
        (identity.platform_tenant_id, identity.service_tenant_id, identity.service_user_id, session_id),
    ).fetchone()
    return str(row["multitask_strategy"]) if row else DEFAULT_MULTITASK_STRATEGY


def _session_out(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "created_at": iso(row["created_at"]), "updated_at": iso(row["updated_at"])}


_SESSION_SELECT = (
    "select s.session_id, s.metadata, s.multitask_strategy, s.created_at, s.updated_at,"
    " (select count(*) from gateway.goals g where g.session_id = s.session_id) as goal_count"
    " from gateway.sessions s"
)


def create_session(db: Database, identity: Identity, session_id: str | None, metadata: dict[str, Any],
                   multitask_strategy: str | None = None) -> dict:
    """Create a session (``session_id`` or a generated UUID) with its double-texting policy ``multitask_strategy``
    (default ``enqueue``, :mod:`soorma.functions.shared.sessions`). An existing id is a unique violation: 409."""
    sid = session_id or str(uuid.uuid4())
    with db.transaction(identity) as conn:
        conn.execute(
            "insert into gateway.sessions (platform_tenant_id, service_tenant_id, service_user_id, session_id,"
            " metadata, multitask_strategy) values (%s, %s, %s, %s, %s, %s)",
            (identity.platform_tenant_id, identity.service_tenant_id, identity.service_user_id, sid,
             Jsonb(metadata), multitask_strategy or DEFAULT_MULTITASK_STRATEGY),
        )
        row = conn.execute(f"{_SESSION_SELECT} where s.session_id = %s", (sid,)).fetchone()
    return _session_out(row)


def get_session(db: Database, identity: Identity, session_id: str) -> dict:
    with db.transaction(identity) as conn:
        row = conn.execute(f"{_SESSION_SELECT} where s.session_id = %s", (session_id,)).fetchone()
    if row is None:
        raise HTTPException(404, f"session {session_id[:100]!r} not found")
    return _session_out(row)


def list_sessions(db: Database, identity: Identity, *, limit: int = 20, cursor: str | None = None) -> dict:
    where, params = ["true"], []
    if cursor:
        updated, sid = decode_cursor(cursor, 2)
        try:
            params += [datetime.fromisoformat(updated), sid]
        except ValueError:
            raise HTTPException(422, "invalid cursor") from None
        where.append("(s.updated_at, s.session_id) < (%s, %s)")
    params.append(limit + 1)
    with db.transaction(identity) as conn:
        rows = conn.execute(
            f"{_SESSION_SELECT} where {' and '.join(where)} order by s.updated_at desc, s.session_id desc limit %s",
            params,
        ).fetchall()
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(rows[-1]["updated_at"], rows[-1]["session_id"]) if more else None
    return {"sessions": [_session_out(r) for r in rows], "count": len(rows), "next_cursor": next_cursor}
