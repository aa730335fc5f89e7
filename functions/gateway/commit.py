"""Handler commits: everything one agent handler run did, applied in ONE request and ONE database transaction, its
events published through a transactional outbox (issue 19, "the fast path").

``POST /v1/events/commit`` body :class:`HandlerCommit` ``{key, expiry_timestamp, events: [envelope],
task_contexts: [TaskContextCreate with version?], deleted_task_contexts: [task_id], spans: [span]}`` →
:class:`CommitResult` ``{replayed, event_ids, task_versions: {task_id: version}}``.

``spans``: the agent's finished spans of the delivery it handled (the shape and limits of ``POST /v1/tracker/spans``,
:class:`soorma.functions.shared.traces.SpanIn`), stored in the commit's transaction under the caller's identity (with
the tracker's :func:`~soorma.functions.shared.traces.insert_spans`: never the body's identity), also when the key was
committed before (they are this run's spans). A commit carrying spans and a W3C ``traceparent`` header gets a server
span of its own, ``POST /v1/events/commit`` below that parent (id derived from the key, so a repeated request records
it once): from the request's arrival to the end of its outbox relay, stored with the relay's delete (or, with no
events, in the commit's transaction), so the trace shows the commit's time without a client span or a request more.

In one transaction, under the caller's identity (row-level security; an agent acts for the handled event's tenant
and user with its delivery grant, :func:`soorma.identity.act_for`):

1. the idempotency record ``key`` is created ``COMPLETED`` (``memory.idempotency_records``, the table and the
   conditional create of Powertools' persistence layer, :mod:`soorma.functions.memory.resources.idempotency`). When a
   live record already holds the key, this run's work was committed before (a redelivered event, a retried request):
   nothing else is applied, the answer is ``replayed: true``, and the events of that earlier commit still waiting in
   the outbox are published now (see below);
2. each event is checked and stamped exactly as ``POST /v1/events/publish`` does (:func:`owned_envelope`, the tenant's
   policy, the action count per plan, input requests recorded) and written to ``gateway.event_outbox``
   (0050_event_outbox.sql) with its fixed id;
3. each task context is upserted with its optimistic version check (409 when another writer changed it since it was
   read, or deleted it: the whole commit rolls back and the SDK re-runs the handler), each deleted one deleted.

After the commit the outbox rows are published in order, with a fresh delivery grant each, and deleted: all sent at
once on one NATS connection (which keeps their order) with one wait for the acks
(:func:`~soorma.functions.gateway.publisher.publish_all`), and the delete in one database round trip on the
commit's own connection, so a commit costs about five round trips to the database and one wait for the bus
(``bench/commit.py`` counts them). Should the bus refuse one event of a batch and store a later one, the repeat
stores the refused one after it: a retry can reorder events the bus refused, never events it stored. The tracker
records them from the bus like any event, so a goal's record keeps the order its events reached the bus in (an
earlier design recorded a goal's answer here at once, which ended goals one delivery sooner but let the tracker's
later recording of the goal's earlier events, such as its progress reports, land after the answer). A publish that
fails leaves them (503 with ``Retry-After``): the SDK's retry of the same commit, or the redelivery of the handled
event, finds the key committed and publishes them. Publishing the same row twice is the same event (``Nats-Msg-Id`` =
``<platform tenant>:<event id>`` de-duplication on JetStream; consumers idempotent by event id on both transports), so
the relay is safe to repeat. What a failed handler did is never visible: nothing is written until its commit.

The pattern: https://microservices.io/patterns/data/transactional-outbox.html.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from datetime import UTC, datetime
from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, Depends, HTTPException, Request
from psycopg.types.json import Jsonb
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from soorma._current import MAX_COMMIT_EVENTS, MAX_COMMIT_TASK_CONTEXTS
from soorma.events import EventEnvelope, EventTopic
from soorma.functions.gateway import policy as policies
from soorma.functions.gateway.publisher import PayloadTooLarge, Publisher, PublishError, publish_all
from soorma.functions.memory.resources import idempotency as idempotency_records, task_context as task_context_resource
from soorma.functions.shared import inputs as shared_inputs
from soorma.functions.shared.db import Database
from soorma.functions.shared.service import current_identity, run_blocking
from soorma.functions.shared.traces import MAX_SPANS_PER_REQUEST, SpanIn, send_spans
from soorma.goal_notices import NOTICE_TYPES
from soorma.grants import stamp as stamp_grant
from soorma.identity import OVERRIDE_ROLES, Identity
from soorma.subjects import check_event_type, check_identifier, subject
from soorma.task_context import INPUT_REQUESTED_EVENT

logger = logging.getLogger("soorma.functions.gateway.commit")

#: What the idempotency record of a handler commit answers to a replay (Powertools' ``response_data`` column).
COMMITTED_RESPONSE = json.dumps({"handlers": 1})

# The envelope id becomes the Nats-Msg-Id header: no whitespace or control characters.
EVENT_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")

CommitKey = Annotated[str, StringConstraints(min_length=1, max_length=255, pattern=r"^[^\x00]+$")]
TaskId = Annotated[str, StringConstraints(min_length=1, max_length=255)]


class HandlerCommit(BaseModel):
    """What one handler run did (see the module docstring). ``key``: its idempotency key (1-255 characters, no NUL;
    the SDK's is ``soorma.<agent>#<md5 of event id and handler>``); ``expiry_timestamp``: epoch seconds until which the
    key refuses a second commit (Powertools' ``expiry``)."""

    model_config = ConfigDict(extra="forbid")

    key: CommitKey
    expiry_timestamp: int = Field(..., ge=0, le=idempotency_records.MAX_EPOCH_SECONDS, description="epoch seconds")
    events: list[EventEnvelope] = Field(default_factory=list, max_length=MAX_COMMIT_EVENTS)
    task_contexts: list[task_context_resource.TaskContextCreate] = Field(default_factory=list,
                                                                  max_length=MAX_COMMIT_TASK_CONTEXTS)
    deleted_task_contexts: list[TaskId] = Field(default_factory=list, max_length=MAX_COMMIT_TASK_CONTEXTS)
    spans: list[SpanIn] = Field(default_factory=list, max_length=MAX_SPANS_PER_REQUEST)
    #: the W3C ``traceparent`` of the run's delivery when the commit is one of a batch (``POST /v1/events/commits``,
    #: whose one header cannot name each run's); a single commit sends it as its request's header
    traceparent: str | None = Field(None, max_length=55)


class CommitResult(BaseModel):
    """``replayed``: the key was committed before and nothing of this request was applied (its earlier events still
    in the outbox were published); ``event_ids``: the events published, in order; ``task_versions``: the stored
    version of each task context written."""

    replayed: bool
    event_ids: list[str]
    task_versions: dict[str, int]


def owned_envelope(envelope: EventEnvelope, identity: Identity) -> EventEnvelope:
    """``envelope`` as ``identity`` may publish it: its platform tenant set to the caller's; ``tenant_id``/``user_id``
    forced to the caller's own (roles ``user``/``developer``) or checked against and filled from the identity the
    request acts for (``agent``/``admin``). Raises ``HTTPException`` 403 (a platform-reserved type, another
    tenant/user) or 422 (a bad id, type, topic or identifier). No delivery grant is stamped (see :func:`stamp_grant`).
    """
    check_event_type(envelope.type)
    if envelope.type in NOTICE_TYPES:  # only the delivery layer says a goal's event was dead-lettered or replayed
        raise HTTPException(403, f"event type {envelope.type!r} is reserved for the platform")
    if not EVENT_ID.match(envelope.id):
        raise HTTPException(422, "event id must be 1-128 characters of [A-Za-z0-9_.:-] (a UUID)")
    updates: dict[str, Any] = {"platform_tenant_id": identity.platform_tenant_id}
    if identity.role in OVERRIDE_ROLES:
        for field, own in (("tenant_id", identity.service_tenant_id), ("user_id", identity.service_user_id)):
            value = getattr(envelope, field)
            if value is not None and value != own:
                raise HTTPException(
                    403,
                    f"event {field} {value!r} differs from the service {field.split('_')[0]} this request "
                    f"acts for ({own!r}); send X-Soorma-Service-Tenant / X-Soorma-Service-User (an agent also the "
                    "X-Soorma-Grant of the event it handles)",
                )
            updates[field] = own
    else:
        updates["tenant_id"] = identity.service_tenant_id
        updates["user_id"] = identity.service_user_id
    envelope = envelope.model_copy(update=updates)
    subject(envelope.platform_tenant_id, topic_of(envelope), envelope.type)
    check_identifier(envelope.tenant_id, "tenant_id")
    check_identifier(envelope.user_id, "user_id")
    return envelope


def topic_of(envelope: EventEnvelope) -> str:
    """The envelope's topic as text."""
    return envelope.topic.value if hasattr(envelope.topic, "value") else str(envelope.topic)


def check_policy(conn: psycopg.Connection, policy: Any, identity: Identity, envelope: EventEnvelope) -> None:
    """The tenant's policy for one event about to be published now (allowed types, size, actions per plan; 403
    naming the rule), and an input request recorded before it is on the bus (as ``POST /v1/events/publish`` does)."""
    topic = topic_of(envelope)
    policies.check_event(policy, envelope.type, envelope)
    if topic == EventTopic.ACTION_REQUESTS.value:
        policies.count_action(conn, policy, identity.platform_tenant_id, envelope.plan_id or envelope.goal_id)
    if envelope.type == INPUT_REQUESTED_EVENT and topic == EventTopic.TASK_EVENTS.value:
        shared_inputs.record_request(conn, identity, envelope, dict(envelope.data or {}), datetime.now(UTC))


_PENDING = "select position, envelope from gateway.event_outbox where commit_key = %s order by position"
_INSERT = ("insert into gateway.event_outbox (platform_tenant_id, service_tenant_id, service_user_id, commit_key,"
           " position, event_id, envelope) values (%s, %s, %s, %s, %s, %s, %s)")
# By event id, not by position: a replay relays the rows left by a relay that failed midway, whose positions do not
# start at 0.
_DONE = "delete from gateway.event_outbox where commit_key = %s and event_id = any(%s)"


def apply(conn: psycopg.Connection, identity: Identity, body: HandlerCommit, publisher: Publisher
          ) -> tuple[bool, list[EventEnvelope], dict[str, int]]:
    """Steps 1-3 of the module docstring in the caller's transaction. Returns ``(replayed, the envelopes waiting in
    the outbox for this key, {task_id: stored version})``. Raises ``HTTPException`` (403 policy or identity, 404 a
    versioned write of a task context that does not exist, 409 a version conflict, 413 an oversized event, 422)."""
    # Sent now, read later: both travel in the round trip of the record's create (a replay leaves the policy unread)
    send_spans(conn, identity, body.spans)
    policy_read = policies.request(conn, identity.platform_tenant_id) if body.events else None
    record = idempotency_records.create_record(conn, identity, body.key, idempotency_records.IdempotencyCreate(
        status="COMPLETED", expiry_timestamp=body.expiry_timestamp, response_data=COMMITTED_RESPONSE))
    if record is None:
        rows = conn.execute(_PENDING, (body.key,)).fetchall()
        return True, [EventEnvelope.model_validate(row["envelope"]) for row in rows], {}
    envelopes = [owned_envelope(event, identity) for event in body.events]
    if len({e.id for e in envelopes}) != len(envelopes):
        raise HTTPException(422, "a commit names each event id once")
    check_size = getattr(publisher, "check_size", None)
    policy = policies.Policy.from_row(policy_read.fetchone()) if policy_read is not None else None
    for position, envelope in enumerate(envelopes):
        if check_size is not None:
            try:
                check_size(envelope)
            except PayloadTooLarge as exc:
                raise HTTPException(413, str(exc)) from None
        check_policy(conn, policy, identity, envelope)
        conn.execute(_INSERT, (identity.platform_tenant_id, identity.service_tenant_id, identity.service_user_id,
                               body.key, position, envelope.id, Jsonb(json.loads(envelope.to_json()))))
    versions: dict[str, int] = {}
    table = task_context_resource.TABLE
    for write in body.task_contexts:
        values = write.model_dump(exclude={"version"})
        # xmax = 0: the row was inserted by this statement, not updated (PostgreSQL's system column of the new row)
        row = table.upsert(conn, identity, values, expected_version=write.version,
                           returning="*, (xmax = 0) as inserted")
        if row is None:
            raise table.conflict(conn, identity, write.version, task_id=write.task_id)
        if write.version is not None and row["inserted"]:
            # read at a version, and gone since (answered and deleted by another run): a conflict, not a new task
            raise HTTPException(409, f"task context {write.task_id} no longer exists (it was at version "
                                     f"{write.version} when read): read it again and retry")
        versions[write.task_id] = int(row["version"])
    for task_id in body.deleted_task_contexts:
        table.delete(conn, identity, task_id=task_id)  # its memory.task_subtasks rows go with it (on delete cascade)
    return False, envelopes, versions


_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$")


class ServerSpan:
    """The commit's own server span (see the module docstring): started when the request arrived, stored by
    :meth:`store` with the end time of that moment. Only for a commit carrying spans under a valid ``traceparent``
    (W3C, https://www.w3.org/TR/trace-context/#traceparent-header); :meth:`start` returns ``None`` otherwise."""

    def __init__(self, trace_id: str, parent_span_id: str, key: str, goal_id: str | None, started: datetime) -> None:
        self.trace_id, self.parent_span_id, self.goal_id, self.started = trace_id, parent_span_id, goal_id, started
        self.span_id = hashlib.sha256(f"commit:{key}".encode()).hexdigest()[:16]
        self.attributes: dict[str, Any] = {"http.request.method": "POST", "http.route": "/v1/events/commit"}

    @classmethod
    def start(cls, traceparent: str | None, body: HandlerCommit, started: datetime) -> "ServerSpan | None":
        match = _TRACEPARENT.match(traceparent or "")
        if not body.spans or match is None or not match[1].strip("0") or not match[2].strip("0"):
            return None
        return cls(match[1], match[2], body.key, body.spans[0].goal_id, started)

    def store(self, conn: psycopg.Connection, identity: Identity, *, ok: bool = True) -> None:
        """Insert the span, ended now, in the caller's transaction under ``identity`` (without reading the result:
        in a pipelined transaction it goes with the ``COMMIT``)."""
        send_spans(conn, identity, [SpanIn(
            trace_id=self.trace_id, span_id=self.span_id, parent_span_id=self.parent_span_id,
            name="POST /v1/events/commit", kind="server", start_time=self.started, end_time=datetime.now(UTC),
            status="ok" if ok else "error", attributes=self.attributes, goal_id=self.goal_id)])


def relay(db: Database, identity: Identity, key: str, envelopes: list[EventEnvelope], publisher: Publisher,
          server_span: ServerSpan | None = None, connection: psycopg.Connection | None = None) -> list[str]:
    """Publish the outbox rows of ``key`` (``envelopes``, in order), each with a fresh delivery grant, then delete
    them; returns their ids. Raises ``HTTPException`` 503 when the bus fails (the rows not yet published stay for the
    next relay), 413 when one can never be published (it is dropped, logged: retrying cannot help). ``server_span``:
    stored with the delete, ended then (status ``error`` when the bus failed). ``connection``: the database
    connection to delete on (one of ``db``'s, outside a transaction; default: one from ``db``'s pool)."""
    published: list[str] = []  # ids of the events stored on the bus (or dropped as too large): their rows go
    failed = False
    pending = list(envelopes)
    try:
        while pending:
            try:
                publish_all(publisher, [stamp_grant(envelope) for envelope in pending])
            except PayloadTooLarge as exc:
                logger.error("commit %s: event %s exceeds the bus's payload limit; dropped", key,
                             pending[exc.published].id)
                published += [envelope.id for envelope in pending[:exc.published + 1]]
                pending = pending[exc.published + 1:]
                continue
            except PublishError as exc:
                published += [envelope.id for envelope in pending[:exc.published]]
                raise
            published += [envelope.id for envelope in pending]
            pending = []
    except PublishError as exc:
        failed = True
        logger.error("commit %s: publish failed after %d of %d events: %s", key, len(published), len(envelopes), exc)
        raise HTTPException(503, f"committed; event bus unavailable ({exc}): the same request publishes the rest",
                            headers={"Retry-After": "1"}) from None
    finally:
        if published:
            # one round trip: nothing is read
            with db.transaction(identity, pipeline=True, connection=connection) as conn:
                conn.execute(_DONE, (key, published))
                if server_span is not None:
                    server_span.store(conn, identity, ok=not failed)
    return [envelope.id for envelope in envelopes]


def commit_runs(db: Database, publisher: Publisher, identity: Identity, commits: list[HandlerCommit],
                traceparent: str | None, *, in_batch: bool = False) -> list[dict[str, Any]]:
    """Apply ``commits`` (one handler run's, or a batch's in the order they ran,
    :mod:`soorma.functions.gateway.commit_batch`) in ONE transaction, then relay each one's outbox rows; returns one
    :class:`CommitResult` dict per commit, in order. One pool checkout serves the transaction and the relays. Each
    commit carrying spans gets its server span below its own ``traceparent`` field, else ``traceparent`` (the
    request's header). ``in_batch``: errors name the failing commit (``commits[i]: ...``) and the spans say
    ``http.route`` ``/v1/events/commits`` and how many commits the request carried. Raises ``HTTPException`` as
    :func:`apply` and :func:`relay` do; nothing is applied when one commit fails."""
    started = datetime.now(UTC)
    applied: list[tuple[HandlerCommit, bool, list[EventEnvelope], dict[str, int], ServerSpan | None]] = []
    with db.connection() as connection:  # one checkout (and liveness check) for the commit and the relay
        with db.transaction(identity, pipeline=True, connection=connection) as conn:
            for index, commit in enumerate(commits):
                try:
                    replayed, envelopes, versions = apply(conn, identity, commit, publisher)
                except HTTPException as exc:
                    if not in_batch:
                        raise
                    raise HTTPException(exc.status_code, f"commits[{index}]: {exc.detail}",
                                        headers=exc.headers) from None
                span = ServerSpan.start(commit.traceparent or traceparent, commit, started)
                if span is not None:
                    if in_batch:
                        span.attributes.update({"http.route": "/v1/events/commits", "soorma.commits": len(commits)})
                    span.attributes.update({"soorma.events": len(envelopes), "soorma.replayed": replayed})
                    if not envelopes:
                        span.store(conn, identity)
                applied.append((commit, replayed, envelopes, versions, span))
        results = []
        for commit, replayed, envelopes, versions, span in applied:
            relayed = relay(db, identity, commit.key, envelopes, publisher, span, connection) if envelopes else []
            results.append({"replayed": replayed, "event_ids": relayed, "task_versions": versions})
    return results


def create_router(db: Database, publisher: Publisher) -> APIRouter:
    """The ``POST /v1/events/commit`` route (see the module docstring)."""
    router = APIRouter()

    @router.post("/v1/events/commit", response_model=CommitResult, tags=["events"],
                 responses={409: {"description": "a task context changed since it was read; nothing was applied"},
                            503: {"description": "committed, but the event bus failed: repeat the same request"}})
    async def commit_handler_run(body: HandlerCommit, request: Request,
                                 identity: Identity = Depends(current_identity)) -> dict[str, Any]:
        """Apply one handler run's events, task-context writes, spans and idempotency record in one transaction, then
        publish its events (a transactional outbox); a key committed before publishes what is still pending."""
        [result] = await run_blocking(request.scope, commit_runs, db, publisher, identity, [body],
                                      request.headers.get("traceparent"))
        return result

    return router


__all__ = ["COMMITTED_RESPONSE", "CommitResult", "HandlerCommit", "MAX_COMMIT_EVENTS", "MAX_COMMIT_TASK_CONTEXTS",
           "ServerSpan", "apply", "commit_runs", "create_router", "owned_envelope", "relay"]
