"""Durable timers: an event envelope stored in PostgreSQL (``scheduler.timers``, migration 0030) and published once
when it is due, and the race-free wait for an event built on them (issue 14, item 4).

Writing a timer (:func:`schedule_event`, :func:`cancel_timer`, :func:`register_wait`) happens in the caller's own
transaction (``Database.transaction(identity)``), so a timer exists exactly when the work that scheduled it
committed; row-level security confines every row to the caller's (platform tenant, service tenant, service user).

Firing (:func:`fire_due`) claims the due timers of every tenant with ``FOR UPDATE SKIP LOCKED`` (through the
``SECURITY DEFINER`` function ``scheduler.claim_due_timers``: two firers never take the same row), publishes each
stored envelope with a fresh delivery grant, and marks it fired in the same transaction. The envelope id was fixed
when the timer was written, so a publish repeated after a crash between publishing and committing is the same message:
JetStream keeps one (``Nats-Msg-Id`` de-duplication, 120 s window) and consumers are idempotent by event id (DESIGN.md
"Delivery semantics").

Who fires:

* locally and on the NATS transport, the local stack's scheduler (:mod:`soorma.local.scheduler`), which sleeps until
  the earliest due time and is woken by ``NOTIFY soorma_timer_due`` (sent by a trigger when a timer is added or moved);
* in AWS, EventBridge Scheduler: :func:`schedule_event` also creates a one-time schedule ``at(<due time>)``
  (``ActionAfterCompletion: DELETE``, https://docs.aws.amazon.com/scheduler/latest/UserGuide/schedule-types.html#one-time)
  that invokes the scheduler function (:mod:`soorma.functions.scheduler.handler`), which runs :func:`fire_due`. It is
  called over the dual-stack endpoint ``scheduler.<region>.api.aws`` (IPv6, reachable from the VPC through the
  egress-only internet gateway: https://docs.aws.amazon.com/eventbridge/latest/userguide/dual-stack.html). Nothing
  polls: the database is queried only when a timer is due. Enabled when ``SOORMA_SCHEDULER_TARGET_ARN`` and
  ``SOORMA_SCHEDULER_ROLE_ARN`` are set.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Callable

import psycopg
from psycopg.types.json import Jsonb

from soorma.events import EventEnvelope
from soorma.functions.shared import settings
from soorma.grants import stamp as stamp_grant
from soorma.identity import Identity

logger = logging.getLogger("soorma.functions.timers")

#: The channel a trigger notifies when a pending timer is added or moved (payload: its due time, epoch seconds).
TIMER_DUE_CHANNEL = "soorma_timer_due"
#: Timers claimed per transaction by :func:`fire_due`.
FIRE_BATCH = 200
#: The event type a wait's outcome is published as when the waiter names none.
WAIT_RESULT_EVENT = "soorma.wait.result"

_SET_IDENTITY = (
    "select set_config('soorma.platform_tenant_id', %s, true), set_config('soorma.service_tenant_id', %s, true),"
    " set_config('soorma.service_user_id', %s, true)"
)


def _aware(when: datetime) -> datetime:
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError("due_at must be timezone-aware (e.g. datetime.now(UTC) + timedelta(seconds=30))")
    return when.astimezone(UTC)


def _own_envelope(identity: Identity, envelope: dict[str, Any]) -> dict[str, Any]:
    """``envelope`` (a JSON object of :class:`~soorma.events.EventEnvelope`) with the identity filled in and checked:
    a timer publishes only as the identity that wrote it. Raises ``ValueError`` (another identity, not an
    envelope)."""
    own = {"platform_tenant_id": identity.platform_tenant_id, "tenant_id": identity.service_tenant_id,
           "user_id": identity.service_user_id}
    body = dict(envelope)
    for field, value in own.items():
        if body.get(field) not in (None, value):
            raise ValueError(f"the timer's envelope {field} {body[field]!r} is not the scheduling identity's {value!r}")
        body[field] = value
    body.pop("delivery_grant", None)  # a fresh grant is stamped when it fires (a stored one would have expired)
    parsed = EventEnvelope.model_validate(body)  # ValueError (pydantic's ValidationError) when it is no envelope
    return json.loads(parsed.to_json())


def schedule_event(conn: psycopg.Connection, *, identity: Identity, due_at: datetime, envelope: dict[str, Any],
                   key: str) -> str:
    """Insert a durable timer, in the caller's transaction, that publishes ``envelope`` once at ``due_at``.

    Parameters: ``conn`` — a connection inside ``Database.transaction(identity)`` (row-level security applies);
    ``identity`` — whose timer it is (the envelope's ``platform_tenant_id``/``tenant_id``/``user_id`` are filled in
    from it, and may not differ); ``due_at`` — timezone-aware; a time in the past fires at once; ``envelope`` — a JSON
    object of :class:`~soorma.events.EventEnvelope` (``type``, ``topic``, ``data``, …; its ``id`` is kept, or
    generated now, so every publish of this timer is the same event); ``key`` — 1–255 characters, unique per identity:
    scheduling an existing key again changes nothing and returns the existing timer's id.

    Returns the timer id (UUID text). Raises ``ValueError`` (naive ``due_at``, bad key, an envelope that is not one
    or names another identity) and ``psycopg.Error``. In AWS it also creates the EventBridge Scheduler one-time
    schedule (see the module docstring); when that call fails the exception propagates and the caller's transaction
    rolls back, so no timer is left without its trigger.
    """
    if not 1 <= len(key) <= 255:
        raise ValueError("a timer key is 1-255 characters")
    due = _aware(due_at)
    body = _own_envelope(identity, envelope)
    row = conn.execute(
        "insert into scheduler.timers (platform_tenant_id, service_tenant_id, service_user_id, timer_key, due_at,"
        " envelope) values (%s, %s, %s, %s, %s, %s)"
        " on conflict (platform_tenant_id, service_tenant_id, service_user_id, timer_key) do nothing"
        " returning timer_id::text as timer_id",
        (identity.platform_tenant_id, identity.service_tenant_id, identity.service_user_id, key, due, Jsonb(body)),
    ).fetchone()
    if row is None:
        existing = conn.execute("select timer_id::text as timer_id from scheduler.timers where timer_key = %s",
                                (key,)).fetchone()
        return str(_get(existing, "timer_id"))
    timer_id = str(_get(row, "timer_id"))
    arm(due, timer_id)
    return timer_id


def schedule_run(conn: psycopg.Connection, *, identity: Identity, due_at: datetime, schedule_id: str) -> str:
    """Insert the timer of a schedule's next run (kind ``schedule_run``, key ``schedule:<id>:<due time>``) in the
    caller's transaction; returns its id. Idempotent like :func:`schedule_event`."""
    due = _aware(due_at)
    key = f"schedule:{schedule_id}:{due.isoformat()}"
    row = conn.execute(
        "insert into scheduler.timers (platform_tenant_id, service_tenant_id, service_user_id, timer_key, kind,"
        " due_at, schedule_id) values (%s, %s, %s, %s, 'schedule_run', %s, %s)"
        " on conflict (platform_tenant_id, service_tenant_id, service_user_id, timer_key) do nothing"
        " returning timer_id::text as timer_id",
        (identity.platform_tenant_id, identity.service_tenant_id, identity.service_user_id, key, due, schedule_id),
    ).fetchone()
    if row is None:
        return str(_get(conn.execute("select timer_id::text as timer_id from scheduler.timers where timer_key = %s",
                                     (key,)).fetchone(), "timer_id"))
    timer_id = str(_get(row, "timer_id"))
    arm(due, timer_id)
    return timer_id


def cancel_timer(conn: psycopg.Connection, *, identity: Identity, key: str) -> bool:
    """Cancel the caller's pending timer ``key`` in the caller's transaction.

    Returns True when a pending timer was cancelled, False when there is none with that key for this identity (never
    scheduled, another identity's — row-level security hides it — or already fired or cancelled). An EventBridge
    schedule left behind fires, finds nothing due, and deletes itself."""
    row = conn.execute(
        "update scheduler.timers set status = 'cancelled' where platform_tenant_id = %s and service_tenant_id = %s"
        " and service_user_id = %s and timer_key = %s and status = 'pending' returning timer_id",
        (identity.platform_tenant_id, identity.service_tenant_id, identity.service_user_id, key),
    ).fetchone()
    return row is not None


def cancel_schedule_runs(conn: psycopg.Connection, schedule_id: str) -> int:
    """Cancel the pending run timers of one schedule (caller's transaction and identity); returns how many."""
    return conn.execute(
        "update scheduler.timers set status = 'cancelled' where schedule_id = %s and kind = 'schedule_run'"
        " and status = 'pending'", (schedule_id,)).rowcount


@dataclass(frozen=True)
class Wait:
    """What :func:`register_wait` decided: ``wait_id``, ``status`` (``waiting``, or ``satisfied`` when the event had
    already been recorded) and ``timer_id`` (the timer that delivers the outcome)."""

    wait_id: str
    status: str
    timer_id: str


def register_wait(conn: psycopg.Connection, *, identity: Identity, correlation_id: str, event_type: str,
                  timeout_s: float, resume: dict[str, Any], wait_id: str | None = None) -> Wait:
    """Wait for an event of ``event_type`` with ``correlation_id`` (in the caller's transaction), race-free.

    The outcome is published as the envelope ``resume`` (a JSON object of an envelope; its ``data`` gains ``wait``:
    ``{wait_id, status: "satisfied" | "timed_out", event_id?, event_type?, event_data?}``, ``event_data`` being the
    recorded summary of the matching event's data): at once when such an event has already been recorded by the
    tracker, when it is recorded later, or after ``timeout_s`` seconds. Race-free: both this registration and the
    recording of an event take the advisory lock of (identity, correlation id, event type) first
    (``scheduler.wait_lock``), so whichever commits second sees the other. The awaited event must belong to a goal
    (carry ``goal_id``): the tracker records only those. ``wait_id`` (a UUID) makes the registration idempotent.

    Returns :class:`Wait`. Raises ``ValueError`` (bad timeout, resume envelope) and ``psycopg.Error``."""
    if not 0 < timeout_s <= 366 * 86400:
        raise ValueError("timeout_s must be > 0 and at most a year")
    wid = str(uuid.UUID(wait_id)) if wait_id else str(uuid.uuid4())
    ident = (identity.platform_tenant_id, identity.service_tenant_id, identity.service_user_id)
    conn.execute("select scheduler.wait_lock(%s, %s, %s, %s, %s)", (*ident, correlation_id, event_type))
    existing = conn.execute(
        "select w.wait_id::text as wait_id, w.status, w.timer_id::text as timer_id from scheduler.waits w"
        " where w.wait_id = %s", (wid,)).fetchone()
    if existing is not None:
        return Wait(str(_get(existing, "wait_id")), str(_get(existing, "status")), str(_get(existing, "timer_id")))
    seen = conn.execute(
        "select event_id, type, data_summary from gateway.goal_events where correlation_id = %s and type = %s"
        " order by time, recorded_at limit 1", (correlation_id, event_type)).fetchone()
    body = dict(resume)
    outcome: dict[str, Any] = {"wait_id": wid, "status": "timed_out", "correlation_id": correlation_id,
                               "awaited_event_type": event_type}
    now = datetime.now(UTC)
    due = now + _seconds(timeout_s)
    status = "waiting"
    if seen is not None:
        outcome.update(status="satisfied", event_id=_get(seen, "event_id"), event_type=_get(seen, "type"),
                       event_data=_get(seen, "data_summary"))
        due, status = now, "satisfied"
    body["data"] = {**dict(body.get("data") or {}), "wait": outcome}
    body.setdefault("id", str(uuid.uuid5(uuid.NAMESPACE_URL, f"soorma:wait:{wid}")))
    timer_id = schedule_event(conn, identity=identity, due_at=due, envelope=body, key=f"wait:{wid}")
    conn.execute(
        "insert into scheduler.waits (platform_tenant_id, service_tenant_id, service_user_id, wait_id,"
        " correlation_id, event_type, timer_id, status, matched_event_id, resolved_at)"
        " values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (*ident, wid, correlation_id, event_type, timer_id, status,
         outcome.get("event_id"), now if status == "satisfied" else None),
    )
    return Wait(wid, status, timer_id)


def _seconds(value: float):
    from datetime import timedelta

    return timedelta(seconds=value)


def _get(row: Any, name: str) -> Any:
    return row[name] if isinstance(row, dict) else getattr(row, name)


# ------------------------------------------------------------------------------------------------------ firing


@dataclass(frozen=True)
class DueTimer:
    """One claimed timer (a row of ``scheduler.claim_due_timers``)."""

    timer_id: str
    identity: Identity
    key: str
    kind: str
    due_at: datetime
    envelope: dict[str, Any]
    schedule_id: str | None


#: Runs a due ``schedule_run`` timer (submits the goal, schedules the next run) inside the firing transaction, whose
#: identity is already the schedule's; returns False to leave the timer pending (retry later).
RunSchedule = Callable[[psycopg.Connection, DueTimer], bool]


@dataclass
class FireReport:
    """What one :func:`fire_due` call did: ``fired`` (timer id, due time, when it was published), ``failed`` (timer
    ids left pending for a retry), ``more`` (the batch was full: more may be due)."""

    fired: list[tuple[str, datetime, datetime]]
    failed: list[str]
    more: bool


def fire_due(db: Any, publisher: Any, *, run_schedule: RunSchedule | None = None, limit: int = FIRE_BATCH) -> FireReport:
    """Fire the due timers of every tenant, at most ``limit``, in one transaction (see the module docstring).

    ``db``: a :class:`~soorma.functions.shared.db.Database`; ``publisher``: anything with ``publish(EventEnvelope)``
    (:mod:`soorma.functions.gateway.publisher`); ``run_schedule``: runs ``schedule_run`` timers (without it they are
    left pending). A timer whose publish fails stays pending and is reported in ``failed``; one whose envelope can no
    longer be parsed is marked fired and logged (retrying cannot help). Raises ``psycopg.Error`` when the database
    fails (nothing is marked fired then; the envelopes published are published again by the next call, as the same
    events)."""
    fired: list[tuple[str, datetime, datetime]] = []
    failed: list[str] = []
    with db.transaction() as conn:
        rows = conn.execute("select * from scheduler.claim_due_timers(%s)", (limit,)).fetchall()
        done: list[str] = []
        for row in rows:
            timer = DueTimer(
                timer_id=str(row["timer_id"]),
                identity=Identity(row["platform_tenant_id"], row["service_tenant_id"], row["service_user_id"],
                                  "soorma-scheduler", "agent"),
                key=row["timer_key"], kind=row["kind"], due_at=row["due_at"], envelope=row["envelope"],
                schedule_id=str(row["schedule_id"]) if row["schedule_id"] else None,
            )
            ok = _fire_one(conn, publisher, timer, run_schedule)
            if ok:
                done.append(timer.timer_id)
                fired.append((timer.timer_id, timer.due_at, datetime.now(UTC)))
            else:
                failed.append(timer.timer_id)
        if done:
            conn.execute("select scheduler.mark_fired(%s::uuid[])", (done,))
    return FireReport(fired, failed, more=len(rows) >= limit)


def _fire_one(conn: psycopg.Connection, publisher: Any, timer: DueTimer, run_schedule: RunSchedule | None) -> bool:
    if timer.kind == "schedule_run":
        if run_schedule is None:
            return False
        conn.execute(_SET_IDENTITY, (timer.identity.platform_tenant_id, timer.identity.service_tenant_id,
                                     timer.identity.service_user_id))
        try:
            with conn.transaction():  # a savepoint: a failed run leaves the other timers' work intact
                return run_schedule(conn, timer)
        except Exception:  # noqa: BLE001 - one schedule's failure must not stop the others; it is retried
            logger.exception("schedule %s: run due %s failed; left pending", timer.schedule_id, timer.due_at)
            return False
    try:
        envelope = stamp_grant(EventEnvelope.model_validate(timer.envelope))
    except Exception:  # noqa: BLE001 - a stored envelope that no longer parses can never be published
        logger.exception("timer %s: its envelope cannot be published; dropped", timer.timer_id)
        return True
    try:
        publisher.publish(envelope)
    except Exception as exc:  # noqa: BLE001 - the bus refused or is down: retried on the next firing
        logger.warning("timer %s: publish failed (%s); left pending", timer.timer_id, exc)
        return False
    return True


def next_due(db: Any) -> datetime | None:
    """When the earliest pending timer of any tenant is due (``None``: there is none)."""
    with db.transaction() as conn:
        row = conn.execute("select scheduler.next_due() as due").fetchone()
    return row["due"] if row else None


# ------------------------------------------------------------------------------------- EventBridge Scheduler (AWS)


def arm(due_at: datetime, timer_id: str, *, client: Any = None) -> bool:
    """In AWS, create the one-time EventBridge Scheduler schedule that invokes the scheduler function at ``due_at``
    (https://docs.aws.amazon.com/scheduler/latest/APIReference/API_CreateSchedule.html: ``ScheduleExpression
    at(yyyy-mm-ddThh:mm:ss)`` in UTC, ``FlexibleTimeWindow OFF``, ``ActionAfterCompletion DELETE``). Returns False
    (nothing to do) unless ``SOORMA_SCHEDULER_TARGET_ARN`` and ``SOORMA_SCHEDULER_ROLE_ARN`` are set, i.e. locally,
    where the stack's scheduler is woken by NOTIFY instead. Raises botocore's errors."""
    target, role = settings.SCHEDULER_TARGET_ARN.get(), settings.SCHEDULER_ROLE_ARN.get()
    if not target or not role:
        return False
    if client is None:
        client = _scheduler_client()
    when = due_at.astimezone(UTC).replace(tzinfo=None, microsecond=0)
    client.create_schedule(
        Name=f"soorma-timer-{timer_id}",
        GroupName=settings.SCHEDULER_GROUP.get(),
        ScheduleExpression=f"at({when.isoformat()})",
        ScheduleExpressionTimezone="UTC",
        FlexibleTimeWindow={"Mode": "OFF"},
        ActionAfterCompletion="DELETE",
        Target={"Arn": target, "RoleArn": role, "Input": json.dumps({"soorma_fire_timers": True})},
    )
    return True


def _scheduler_client() -> Any:
    import boto3
    from botocore.config import Config

    # the dual-stack endpoint (scheduler.<region>.api.aws): the VPC reaches AWS over IPv6 only
    return boto3.client("scheduler", config=Config(use_dualstack_endpoint=True))


__all__ = ["FIRE_BATCH", "TIMER_DUE_CHANNEL", "WAIT_RESULT_EVENT", "DueTimer", "FireReport", "RunSchedule", "Wait",
           "arm", "cancel_schedule_runs", "cancel_timer", "fire_due", "next_due", "register_wait", "schedule_event",
           "schedule_run"]
