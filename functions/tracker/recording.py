"""Recording goal progress from the event stream (:func:`record_envelope`, :func:`process_batch`).

The tracker function receives every event of every tenant in the function payload of docs/architecture.md (an
SQS-shaped batch; the bridge is trusted for the envelope identity). Per event, in one transaction whose identity is
the envelope's ``platform_tenant_id`` / ``tenant_id`` / ``user_id`` (so row-level security confines it to that
tenant's rows):

* events without ``goal_id`` are ignored (reported as processed);
* the event is inserted into ``gateway.goal_events`` once per event id (a redelivery changes nothing), and counted
  in the goal's usage (``events``, :mod:`soorma.functions.shared.usage`);
* an ``action-requests`` event with a ``correlation_id`` starts a task (``task_id`` = that correlation id);
* an ``action-results`` event completes (or fails) the task with its ``correlation_id``; a result that arrives
  before its request creates the finished task directly;
* an event whose ``correlation_id`` is a goal's id and whose ``type`` is that goal's ``response_event`` completes
  the goal: ``failed`` when ``data.status == "failed"`` or ``data.success is False``, ``result`` = the event's data,
  ``error`` = ``data.error``; a goal that is no longer running (or pending) is left as it is, except one the platform failed
  (``failed_by_platform``: a dead letter, or a publish never acknowledged) — its result still arrives, e.g. after a
  dead letter was redriven outside ``soorma dlq replay``;
* a goal's own action request (``event_id`` = the goal's recorded ``event_id``) proves its publish was stored: a
  goal still ``pending`` (its acknowledgement was lost, or the gateway could not save ``running``) becomes
  ``running``, so it does not wait for the client's retry, and so does one the gateway failed because that
  acknowledgement never came and the client sent no Idempotency-Key (``failed_by_platform``; issue 12, finding 4);
* a goal notice (:mod:`soorma.goal_notices`): :data:`~soorma.goal_notices.DEAD_LETTERED` ends a running goal
  ``failed`` with the dead letter's reason and remembers the dead letter; :data:`~soorma.goal_notices.REPLAYED`
  forgets it, and a goal that a dead letter failed is ``running`` again once none is left;
* each recorded event of a goal takes the next number of that goal's stream (``seq``), and after the batch the
  goal's live stream followers are sent what they have not seen (:func:`soorma.functions.gateway.streams.push`);
* every event with an identity, goal or not, is kept for event subscriptions (:func:`soorma.functions.gateway.
  event_streams.record`, in a transaction of its own before the above) and, when its identity has subscribers,
  pushed to them after the batch.

A malformed envelope, or one PostgreSQL cannot store, is logged and reported processed (retrying cannot help);
database outages raise, so the record is reported in ``batchItemFailures`` and redelivered; when the database is
unavailable (paused and resuming: :func:`soorma.functions.shared.db.is_unavailable`) the record and the rest of the
batch are reported "retry later" too (``soormaRetryLater``, :data:`soorma.payload.RETRY_LATER_FIELD`), so the bridge
redelivers them without counting toward dead-lettering, and the rest of the batch does not wait for the database
again.

This module does not import FastAPI: a cold start of the tracker for an event batch (its usual work) loads only
what recording needs; the HTTP app is :mod:`soorma.functions.tracker.app`.
"""

from __future__ import annotations

import json
import logging
import uuid
from datetime import UTC, datetime
from typing import Any

import psycopg
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from psycopg.types.json import Jsonb
from pydantic import ValidationError

from soorma import telemetry
from soorma.events import EventEnvelope, EventTopic
from soorma.functions.shared import inputs, sessions, timers, usage
from soorma.functions.shared.db import Database, DatabaseUnavailable, is_unavailable
from soorma.functions.shared.settings import DB_RETRY_AFTER_S
from soorma.goal_notices import DEAD_LETTERED, NOTICE_TYPES, SOURCE as NOTICE_SOURCE, describe as describe_dead_letter
from soorma.identity import Identity
from soorma.payload import with_retry_later
from soorma.task_context import PROGRESS_EVENT

logger = logging.getLogger("soorma.functions.tracker")

SUMMARY_MAX_BYTES = 4096

RECORDED, DUPLICATE, IGNORED = "recorded", "duplicate", "ignored"


def _clean(value: Any) -> Any:
    """Strip NUL characters, which PostgreSQL text and jsonb cannot hold, from strings inside ``value``."""
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {_clean(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def summarize(data: dict[str, Any]) -> dict[str, Any]:
    """The event data if its JSON is at most 4 KiB, else its top-level keys and size."""
    text = json.dumps(data, default=str)
    if len(text.encode()) <= SUMMARY_MAX_BYTES:
        return data
    return {"_truncated": True, "bytes": len(text.encode()), "keys": [str(k) for k in list(data)[:50]]}


def _time(value: str | None) -> datetime:
    try:
        parsed = datetime.fromisoformat(value) if value else None
    except ValueError:
        parsed = None
    if parsed is None:
        return datetime.now(UTC)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def is_failure(data: dict[str, Any]) -> bool:
    """A result reports failure when ``data.status == "failed"`` or ``data.success is False``."""
    return data.get("status") == "failed" or data.get("success") is False


def _error_text(data: dict[str, Any]) -> str | None:
    error = data.get("error")
    if error is None or error == "":
        return None
    return error if isinstance(error, str) else json.dumps(error, default=str)


def _identity(envelope: EventEnvelope) -> Identity:
    """The identity the tracker records an event under: the envelope's own."""
    return Identity(
        platform_tenant_id=str(envelope.platform_tenant_id),
        service_tenant_id=str(envelope.tenant_id),
        service_user_id=str(envelope.user_id),
        principal_id="soorma-tracker",
        role="agent",
    )


def _goal_uuid(goal_id: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(goal_id)
    except ValueError:
        return None


_publisher: Any = None


def default_publisher() -> Any:
    """The event publisher the tracker starts a session's queued goals with (the transport
    ``SOORMA_EVENT_TRANSPORT`` names, as the gateway's), made on first use: most batches never need it."""
    global _publisher
    if _publisher is None:
        from soorma.functions.gateway.publisher import publisher_from_env

        _publisher = publisher_from_env()
    return _publisher


def record_envelope(db: Database, envelope: EventEnvelope, publisher: Any = None) -> str:
    """Record one event; returns ``"recorded"``, ``"duplicate"`` or ``"ignored"`` (see the module docstring).
    ``publisher``: what publishes a session's next queued goal when this event ends the running one (default
    :func:`default_publisher`)."""
    if not envelope.goal_id:
        return IGNORED
    if not (envelope.platform_tenant_id and envelope.tenant_id and envelope.user_id):
        logger.warning("event %s of goal %s lacks tenant identity; not recorded", envelope.id, envelope.goal_id)
        return IGNORED
    identity = _identity(envelope)
    data = _clean(envelope.data or {})
    topic = envelope.topic.value if hasattr(envelope.topic, "value") else str(envelope.topic)
    when = _time(envelope.time)
    event_id, goal_id, etype = _clean(envelope.id), _clean(envelope.goal_id), _clean(envelope.type)
    correlation_id = _clean(envelope.correlation_id)
    source = _clean(envelope.source)

    def publish_queued(queued: EventEnvelope) -> Any:
        return (publisher or default_publisher()).publish(queued)

    try:
        # Pipeline mode (https://www.psycopg.org/psycopg3/docs/advanced/pipeline.html): statements whose results
        # are not read (the usage count, the task's row, a progress report) travel with the next one that is, so an
        # event costs fewer round trips; the server runs them in order, in this transaction. A goal's answer waits
        # for it (the goal's end commits here, and its NOTIFY wakes the long-poll).
        with db.transaction(identity) as conn, conn.pipeline():
            # The event's number in its goal's stream (migration 0020): taking it locks the goal's row until this
            # transaction commits, so one goal's events commit in the order of their numbers.
            inserted = conn.execute(
                "with numbered as (update gateway.goals set event_seq = event_seq + 1 where goal_id = %s"
                " returning event_seq)"
                " insert into gateway.goal_events (platform_tenant_id, service_tenant_id, service_user_id, event_id,"
                " goal_id, type, topic, correlation_id, parent_event_id, source, time, data_summary, seq)"
                " values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, (select event_seq from numbered))"
                " on conflict do nothing returning event_id",
                (_goal_uuid(goal_id), identity.platform_tenant_id, identity.service_tenant_id,
                 identity.service_user_id, event_id, goal_id, etype, topic, correlation_id,
                 _clean(envelope.parent_event_id), source, when, Jsonb(summarize(data))),
            ).fetchone()
            if inserted is None:
                return DUPLICATE
            usage.add(conn, identity, goal_id, events=1)  # once per event: a redelivery is a DUPLICATE above
            if correlation_id:
                # the waits this event satisfied (migration 0030's trigger): in AWS their timers are armed now
                timers.arm_satisfied_waits(conn, event_id)
            if etype in inputs.INPUT_EVENTS:
                # The input protocol's events are no tasks of their own (they share the asking task's correlation id).
                if etype == inputs.INPUT_REQUESTED_EVENT and topic == EventTopic.TASK_EVENTS.value:
                    inputs.record_request(conn, identity, envelope, data, when)
                elif etype == inputs.INPUT_TIMEOUT_EVENT:
                    inputs.record_timeout(conn, data, goal_id, when)
                return RECORDED
            if correlation_id and topic == EventTopic.ACTION_REQUESTS.value:
                if correlation_id == goal_id:
                    _mark_published(conn, goal_id, event_id)
                conn.execute(
                    "insert into gateway.goal_tasks (platform_tenant_id, service_tenant_id, service_user_id,"
                    " task_id, goal_id, event_type, status, request_event_id, started_at)"
                    " values (%s, %s, %s, %s, %s, %s, 'running', %s, %s)"
                    " on conflict (platform_tenant_id, service_tenant_id, service_user_id, task_id) do update"
                    " set event_type = coalesce(gateway.goal_tasks.event_type, excluded.event_type),"
                    "     request_event_id = coalesce(gateway.goal_tasks.request_event_id, excluded.request_event_id),"
                    "     started_at = least(gateway.goal_tasks.started_at, excluded.started_at)",
                    (identity.platform_tenant_id, identity.service_tenant_id, identity.service_user_id,
                     correlation_id, goal_id, etype, event_id, when),
                )
            elif correlation_id and topic == EventTopic.ACTION_RESULTS.value:
                status = "failed" if is_failure(data) else "completed"
                conn.execute(
                    "insert into gateway.goal_tasks (platform_tenant_id, service_tenant_id, service_user_id,"
                    " task_id, goal_id, status, agent, result_event_id, started_at, completed_at)"
                    " values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                    " on conflict (platform_tenant_id, service_tenant_id, service_user_id, task_id) do update"
                    " set status = excluded.status, agent = excluded.agent,"
                    "     result_event_id = excluded.result_event_id, completed_at = excluded.completed_at"
                    " where gateway.goal_tasks.status = 'running'",
                    (identity.platform_tenant_id, identity.service_tenant_id, identity.service_user_id,
                     correlation_id, goal_id, status, source, event_id, when, when),
                )
            elif correlation_id and topic == EventTopic.TASK_EVENTS.value and etype == PROGRESS_EVENT:
                _record_progress(conn, identity, correlation_id, data, when)
            if topic == EventTopic.SYSTEM_EVENTS.value and etype in NOTICE_TYPES and source == NOTICE_SOURCE:
                _apply_notice(conn, identity, goal_id, etype, data, when, publish_queued)
                return RECORDED
            if correlation_id:
                _maybe_complete_goal(conn, identity, correlation_id, etype, data, when, publish_queued)
    except psycopg.DataError as exc:
        logger.error("event %s cannot be stored, skipped: %s", envelope.id, exc)
        return IGNORED
    return RECORDED


def _record_progress(conn, identity: Identity, task_id: str, data: dict[str, Any], when: datetime) -> None:
    """Keep the latest ``task.progress`` report (``data.progress`` a number, ``data.message`` text) on a running
    task; an older report arriving late does not replace a newer one."""
    progress = data.get("progress")
    if isinstance(progress, bool) or not isinstance(progress, (int, float)):
        return
    message = data.get("message")
    conn.execute(
        "update gateway.goal_tasks set progress = %s, progress_message = %s, progress_at = %s"
        " where platform_tenant_id = %s and service_tenant_id = %s and service_user_id = %s and task_id = %s"
        "   and status = 'running' and (progress_at is null or progress_at <= %s)",
        (float(progress), str(message)[:1000] if message is not None else None, when,
         identity.platform_tenant_id, identity.service_tenant_id, identity.service_user_id, task_id, when),
    )


def _mark_published(conn, goal_id: str, event_id: str) -> None:
    """A goal whose request event (the id the gateway recorded) is on the stream is ``running``: one still
    ``pending``, and one the platform failed (``failed_by_platform``: the gateway gave up on a publish it saw no
    acknowledgement for, sent without an Idempotency-Key) while no dead letter of it is outstanding — the publish
    was stored after all, so agents are running it."""
    try:
        goal_uuid = uuid.UUID(goal_id)
    except ValueError:
        return
    conn.execute(
        "update gateway.goals set status = 'running', error = null, completed_at = null, failed_by_platform = false"
        " where goal_id = %s and event_id = %s"
        "   and (status = 'pending' or (status = 'failed' and failed_by_platform and cardinality(dead_letters) = 0))",
        (goal_uuid, event_id),
    )


def _maybe_complete_goal(conn, identity: Identity, correlation_id: str, etype: str, data: dict[str, Any],
                         when: datetime, publish: Any) -> None:
    """End the goal ``correlation_id`` names when ``etype`` is its response event (see the module docstring); then
    its pending input requests are cancelled and its session's next queued goal is started
    (:func:`soorma.functions.shared.sessions.start_next_queued`, which calls ``publish(envelope)``).
    The session is locked before the goal, the order every session path takes."""
    try:
        goal_uuid = uuid.UUID(correlation_id)
    except ValueError:
        return
    found = conn.execute(
        "select session_id from gateway.goals where goal_id = %s and response_event = %s", (goal_uuid, etype)
    ).fetchone()
    if found is None:
        return
    session_id = found["session_id"]
    if session_id:
        sessions.lock_session(conn, session_id)
    failed = is_failure(data)
    ended = conn.execute(
        "update gateway.goals set status = %s, result = %s, error = %s, completed_at = %s,"
        " failed_by_platform = false"
        " where goal_id = %s and response_event = %s"
        "   and (status in ('running', 'pending', 'input-required') or (status = 'failed' and failed_by_platform))"
        " returning goal_id",
        ("failed" if failed else "completed", Jsonb(data), _error_text(data) if failed else None,
         when, goal_uuid, etype),
    ).fetchone()
    if ended is None:
        return
    inputs.cancel_pending(conn, identity, str(goal_uuid))
    if session_id:
        sessions.start_next_queued(conn, identity, session_id, publish)


def _apply_notice(conn, identity: Identity, goal_id: str, etype: str, data: dict[str, Any], when: datetime,
                  publish: Any) -> None:
    """Apply a goal notice (see the module docstring) to goal ``goal_id`` (a goal of another identity, or no goal
    at all, is not visible under row-level security and is left alone). A goal a dead letter ends leaves its
    session to the next queued goal (``publish(envelope)`` publishes it), as a goal's result does."""
    try:
        goal_uuid = uuid.UUID(goal_id)
    except ValueError:
        return
    key = str(data.get("dead_letter_id") or data.get("event_id") or "")[:500]
    if etype == DEAD_LETTERED:
        session_id = sessions.session_of(conn, str(goal_uuid))
        if session_id:
            sessions.lock_session(conn, session_id)  # before the goal: the order every session path takes
        ended = conn.execute(
            "update gateway.goals g set"
            " dead_letters = case when %s = any(g.dead_letters) then g.dead_letters else g.dead_letters || %s end,"
            " error = case when old.status in ('running', 'input-required') then %s else g.error end,"
            " failed_by_platform = g.failed_by_platform or old.status in ('running', 'input-required'),"
            " completed_at = case when old.status in ('running', 'input-required') then %s else g.completed_at end,"
            " status = case when old.status in ('running', 'input-required') then 'failed' else g.status end"
            " from (select goal_id, status from gateway.goals where goal_id = %s for update) old"
            " where g.goal_id = old.goal_id returning old.status in ('running', 'input-required') as ended",
            (key, [key], describe_dead_letter(data)[:4000], when, goal_uuid),
        ).fetchone()
        if ended is not None and ended["ended"]:
            inputs.cancel_pending(conn, identity, str(goal_uuid))
            if session_id:
                sessions.start_next_queued(conn, identity, session_id, publish)
    else:
        conn.execute(
            "update gateway.goals set dead_letters = array_remove(dead_letters, %s) where goal_id = %s",
            (key, goal_uuid),
        )
        conn.execute(
            "update gateway.goals set status = 'running', error = null, completed_at = null,"
            " failed_by_platform = false"
            " where goal_id = %s and status = 'failed' and failed_by_platform and cardinality(dead_letters) = 0",
            (goal_uuid,),
        )


def process_batch(db: Database, event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """Record every event of a function payload; returns ``{"batchItemFailures": [...]}`` (Powertools), plus
    ``soormaRetryLater`` for the records the database was unavailable for (see the module docstring)."""
    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    retry_later: dict[str, float] = {}

    def record_handler(record: SQSRecord) -> str:
        if retry_later:
            retry_later[record.message_id] = max(retry_later.values())
            raise DatabaseUnavailable("not started: the database was unavailable for an earlier record of the batch")
        try:
            return _record(record)
        except Exception as exc:
            if is_unavailable(exc):
                retry_later[record.message_id] = float(getattr(exc, "retry_after_s", 0) or DB_RETRY_AFTER_S.get())
            raise

    def _record(record: SQSRecord) -> str:
        body = record.raw_event.get("body")
        try:
            if isinstance(body, dict):
                envelope = EventEnvelope.model_validate(body)
            else:
                envelope = EventEnvelope.from_json(body or "")
        except ValidationError as exc:
            logger.warning("message %s is not an event envelope, skipped: %s", record.message_id,
                           str(exc).splitlines()[0])
            return IGNORED
        # The goal's record first: a goal's answer ends the goal in that transaction, and the long-poll waiting for it
        # answers on its commit; the event subscriptions are pushed only after the whole batch anyway. A failure of
        # the second store redelivers the record, and the first then finds it recorded (each store is idempotent).
        with telemetry.event_log_keys("tracker", envelope):
            outcome = record_envelope(db, envelope)
        if outcome == RECORDED:
            recorded.append((_identity(envelope), str(envelope.goal_id)))
        if envelope.platform_tenant_id and envelope.tenant_id and envelope.user_id:
            # every event, with or without a goal: what event subscriptions stream (the EventClient's listening)
            from soorma.functions.gateway import event_streams

            if event_streams.record(db, _identity(envelope), envelope):
                streamed.append(_identity(envelope))
        return outcome

    recorded: list[tuple[Identity, str]] = []
    streamed: list[Identity] = []
    response = process_partial_response(event=event, record_handler=record_handler, processor=processor,
                                        context=context)
    if recorded:
        # The live goal streams: imported only when a batch recorded something (boto3 is loaded on first push).
        from soorma.functions.gateway.streams import push_recorded

        push_recorded(db, recorded)
    if streamed:
        from soorma.functions.gateway.event_streams import push_recorded as push_streamed

        push_streamed(db, streamed)
    return with_retry_later(dict(response), retry_later)
