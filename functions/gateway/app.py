"""The gateway function: the platform's front door behind the authorizer — goals, sessions, event publishing,
and identity administration (tenants, API keys, policy; :mod:`soorma.functions.gateway.admin`).

Routes (docs/architecture.md "Gateway"; snake_case bodies; every ``/v1`` route is in the OpenAPI document served at
``/openapi/gateway.json``):

* ``POST /v1/goals`` ``{goal_type, data, session_id?}`` → 202 ``{goal_id, status: "running", goal_type}``. The goal
  row is committed first as ``pending`` (so the tracker can always find it when the result arrives), then the request
  envelope is published to JetStream: ``type=goal_type``, ``topic=action-requests``, ``correlation_id = goal_id =
  trace_id = <goal id>``, ``response_event="soorma.goal.result"``, ``response_topic="action-results"``, identity from
  the caller; the goal becomes ``running`` only once the bus acknowledged the publish. When the publish is not
  acknowledged the goal stays ``pending`` and the answer is 503 with ``Retry-After`` and the ``goal_id``; a retry with
  the same ``Idempotency-Key`` and body publishes the same envelope again (same event id, so JetStream stores it once
  even if the first publish was stored and only its ack was lost) and answers 202 ``running``
  (:meth:`~soorma.functions.gateway.goals.Goals.submit` explains the choice). 413, before anything is stored, when the
  envelope exceeds the bus's maximum payload (1 MiB on NATS by default, 256 KiB on SNS).
  With an ``Idempotency-Key`` header the same key and body answer the same goal (header ``Idempotent-Replayed:
  true``), the same key with another body 409. The tenant's policy is checked first (403 naming the rule).
* ``GET /v1/goals?status=&session_id=&goal_type=&limit=&cursor=`` → ``{goals, count, next_cursor}``, newest first.
* ``GET /v1/goals/{goal_id}?wait=SECONDS`` → the goal with its ``tasks`` (recorded by the tracker) and ``events``
  (count); ``wait`` (≤ 25) long-polls until the goal is no longer running. 404 for an unknown goal and for another
  identity's goal (row-level security hides it).
* ``POST /v1/goals/{goal_id}/cancel`` ``{reason?}`` → the cancelled goal; publishes ``soorma.goal.cancel`` on
  ``system-events``. 409 when the goal already ended.
* ``GET /v1/goals/{goal_id}/events?limit=&cursor=`` → every recorded event of the goal's trace, in order.
* ``GET /v1/goals/{goal_id}/input?status=`` → ``{goal_id, input_requests}``; ``POST
  /v1/goals/{goal_id}/input/{request_id}`` ``{answer}`` → the answered request: 422 naming the schema error, 409 when
  no longer pending (:mod:`soorma.functions.gateway.inputs`). A goal whose agents wait for answers is
  ``input-required``.
* ``POST /v1/sessions`` ``{session_id?, metadata?, multitask_strategy?}``, ``GET /v1/sessions``, ``GET
  /v1/sessions/{session_id}`` — sessions group goals; a goal for a session with an active goal meets the session's
  double-texting policy (``reject`` 409, ``enqueue`` → ``queued``, ``interrupt``, ``rollback``;
  ``POST /v1/goals`` ``multitask_strategy`` overrides it; :mod:`soorma.functions.gateway.sessions`).
* ``POST /v1/events/publish`` ``{"event": envelope, "deliver_at"?: time, "delay_seconds"?: s}`` → ``{success,
  event_id, message, duplicate}``; with ``deliver_at``/``delay_seconds`` the checked, stamped event is stored as a
  durable timer (:mod:`soorma.functions.shared.timers`, key = its event id) and published once when due: answer
  ``{..., timer_id, deliver_at}``; ``duplicate:
  true`` (message "Duplicate event: ...") when JetStream already held this platform tenant's event id inside its
  duplicate window and stored nothing new (the message id is ``<platform tenant>:<event id>``, so another tenant's
  id never makes an event a duplicate). ``platform_tenant_id`` is always the caller's, and ``delivery_grant`` is
  always a fresh grant minted for the stamped identity (:mod:`soorma.grants`; goal requests and cancellations get
  one the same way). Roles ``user``/``developer``: ``tenant_id``/``user_id`` are forced to the caller's own.
  Roles ``agent``/``admin`` (whose service tenant/user may come from the override headers, for an agent only with
  the delivery grant of the event it handles, :func:`soorma.identity.act_for`):
  ``tenant_id``/``user_id`` must equal the identity's when present (else 403) and are filled in when absent.
  A bad topic, type or id is a 422 with the reason; an oversized event a 413; an unavailable event bus a 503.
  The tenant's policy (allowed event types, payload size, actions per plan) is checked first (403 naming the rule).
* ``GET /v1/goals/{goal_id}/usage`` and ``GET /v1/usage?from=&to=&scope=``: usage and cost per goal and per tenant
  and day (:mod:`soorma.functions.gateway.usage_api`); a tenant over its ``monthly_budget_usd`` gets 403 naming it.
* Identity administration (:mod:`soorma.functions.gateway.admin`). The identity service ``/v1/identity/*``
  (soorma-core's onboarding, principals, token issuance, JWKS, delegated issuers) is a function of its own,
  :mod:`soorma.functions.identity`, so the gateway does not carry PyJWT and ``cryptography``; the agent protocols
  (A2A, the OpenAI-compatible chat API, MCP) are served by their own function over the same goals,
  :mod:`soorma.functions.protocols`.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import Body, Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi.responses import JSONResponse

from soorma.events import EventTopic
from soorma.functions.gateway import admin, commit, commit_batch, inputs, policy as policies, usage_api
from soorma.functions.gateway.commit import owned_envelope, topic_of
from soorma.functions.gateway.goals import (
    GOAL_RESULT_EVENT,
    MAX_WAIT_S,
    SOURCE,
    Goals,
    create_session,
    get_session,
    goal_uuid,
    list_sessions,
)
from soorma.functions.gateway.models import (
    CancelRequest,
    Goal,
    GoalAccepted,
    GoalEvents,
    GoalList,
    GoalRequest,
    InputAnswerBody,
    InputRequest,
    InputRequests,
    Published,
    PublishRequest,
    Session,
    SessionList,
    SessionRequest,
)
from soorma.functions.gateway.policy import PolicyViolation
from soorma.functions.gateway.publisher import (
    PayloadTooLarge,
    Publisher,
    PublishError,
    is_duplicate,
    publisher_from_env,
)
from soorma.functions.scheduler import schedules
from soorma.functions.shared import inputs as shared_inputs, timers
from soorma.functions.shared.db import Database, database_from_env
from soorma.functions.shared.service import current_identity, function_app
from soorma.functions.shared.traces import GoalTrace
from soorma.functions.webhooks import api as webhooks
from soorma.functions.webhooks.aws import notify_sender
from soorma.grants import stamp as stamp_grant
from soorma.identity import Identity
from soorma.task_context import INPUT_REQUESTED_EVENT

logger = logging.getLogger("soorma.functions.gateway")

__all__ = ["GOAL_RESULT_EVENT", "SOURCE", "GoalRequest", "create_app"]

# The envelope id becomes the Nats-Msg-Id header: no whitespace or control characters.
_EVENT_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")


def _due_time(body: PublishRequest) -> datetime | None:
    """When a delayed publish is due (UTC), or None for a publish now."""
    if body.deliver_at is not None:
        return body.deliver_at.astimezone(UTC)
    if body.delay_seconds is not None:
        return datetime.now(UTC) + timedelta(seconds=body.delay_seconds)
    return None


def _check_size(publisher: Publisher, envelope: Any) -> None:
    """413 before a delayed event is stored when it could never be published (the publisher's ``check_size``)."""
    check = getattr(publisher, "check_size", None)
    if check is not None:
        try:
            check(envelope)
        except PayloadTooLarge as exc:
            raise HTTPException(413, str(exc)) from None


def create_app(db: Database | None = None, publisher: Publisher | None = None) -> FastAPI:
    """The gateway's FastAPI app.

    ``db`` defaults to :func:`soorma.functions.shared.db.database_from_env`; ``publisher`` to the transport chosen by
    ``SOORMA_EVENT_TRANSPORT`` (:func:`~soorma.functions.gateway.publisher.publisher_from_env`: NATS JetStream by
    default, or SNS), one per app, i.e. per execution environment.
    """
    db = db if db is not None else database_from_env()
    publisher = publisher if publisher is not None else publisher_from_env()
    app = function_app("Soorma gateway", version="1")
    app.state.db = db
    app.state.publisher = publisher
    goals = Goals(db, publisher)
    app.state.goals = goals

    @app.exception_handler(PolicyViolation)
    async def _policy(request: Request, exc: PolicyViolation) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=403)

    @app.post("/v1/goals", status_code=202, response_model=GoalAccepted, tags=["goals"])
    def submit_goal(
        body: GoalRequest,
        identity: Identity = Depends(current_identity),
        idempotency_key: str | None = Header(None, alias="Idempotency-Key", min_length=1, max_length=255),
    ):
        """Submit a goal: it is recorded ``pending``, its action request is published, and it is ``running`` once the
        event bus acknowledged it; otherwise 503 with ``Retry-After`` (retry with the same Idempotency-Key).
        ``multitask_strategy`` overrides the session's double-texting policy for this goal. ``webhook``: the goal's own webhook, attached when the goal is first created (the answer holds its secret)."""
        if body.webhook is not None:
            webhooks.checked_url(body.webhook.url)  # 422 before the goal exists
        submitted = goals.submit(identity, body.goal_type, body.data, body.session_id, idempotency_key,
                                 multitask_strategy=body.multitask_strategy)
        hook = (webhooks.attach_goal_webhook(db, identity, submitted.goal_id, body.webhook)
                if body.webhook is not None and not submitted.replayed else None)
        if submitted.error_status is not None:
            headers = {"Retry-After": str(submitted.retry_after_s)} if submitted.retry_after_s else {}
            return JSONResponse({"detail": submitted.error, "goal_id": submitted.goal_id, "status": submitted.status}
                                | ({"webhook": hook.model_dump()} if hook else {}),
                                status_code=submitted.error_status, headers=headers)
        headers = {"Idempotent-Replayed": "true"} if submitted.replayed else {}
        answer = submitted.body() | ({"webhook": hook.model_dump()} if hook else {})
        return JSONResponse(answer, status_code=202, headers=headers)

    @app.get("/v1/goals", response_model=GoalList, tags=["goals"])
    def list_goals(
        status: str | None = Query(None, pattern="^(queued|pending|running|input-required|completed|failed|cancelled)$"),
        session_id: str | None = Query(None, min_length=1, max_length=255),
        goal_type: str | None = Query(None, min_length=1, max_length=200),
        limit: int = Query(20, ge=1, le=100),
        cursor: str | None = Query(None, max_length=500),
        schedule_id: str | None = Query(None, max_length=64, description="only the runs of this schedule"),
        identity: Identity = Depends(current_identity),
    ):
        """The caller's goals, newest first; ``next_cursor`` fetches the next page."""
        return goals.list(identity, status=status, session_id=session_id, goal_type=goal_type, limit=limit,
                          cursor=cursor, schedule_id=schedule_id)

    @app.get("/v1/goals/{goal_id}", response_model=Goal, tags=["goals"])
    def get_goal(
        goal_id: str,
        wait: float = Query(0, ge=0, le=MAX_WAIT_S, description="long-poll up to this many seconds"),
        identity: Identity = Depends(current_identity),
    ):
        """One goal with its tasks; ``wait`` long-polls until it is no longer running."""
        return goals.get(identity, goal_id, wait_s=wait)

    @app.post("/v1/goals/{goal_id}/cancel", response_model=Goal, tags=["goals"])
    def cancel_goal(goal_id: str, body: CancelRequest | None = Body(None),
                    identity: Identity = Depends(current_identity)):
        """Cancel a goal that has not ended and publish ``soorma.goal.cancel`` on ``system-events``. Only agents
        that subscribe to that event (``on_event("soorma.goal.cancel", topic="system-events")``) hear it; the others
        keep working, and their later results leave the goal cancelled."""
        cancelled = goals.cancel(identity, goal_id, body.reason if body else None)
        notify_sender(db)  # AWS: the cancelled goal's webhook deliveries
        return cancelled

    @app.get("/v1/goals/{goal_id}/input", response_model=InputRequests, tags=["goals"])
    def goal_input_requests(
        goal_id: str,
        status: str | None = Query(None, pattern="^(pending|answered|timed-out|cancelled)$"),
        identity: Identity = Depends(current_identity),
    ):
        """The goal's input requests (human in the loop), oldest first; ``status=pending`` for those awaiting an
        answer."""
        return inputs.goal_requests(db, identity, goal_uuid(goal_id), status)

    @app.post("/v1/goals/{goal_id}/input/{request_id}", response_model=InputRequest, tags=["goals"])
    def answer_input_request(goal_id: str, request_id: str, body: InputAnswerBody,
                             identity: Identity = Depends(current_identity)):
        """Answer one input request: the answer is checked against the request's JSON Schema (422 naming the
        error), recorded, and delivered to the agent that asked, which resumes; 409 when it is no longer pending."""
        return inputs.answer_request(db, publisher, identity, goal_uuid(goal_id), request_id, body.answer)

    @app.get("/v1/goals/{goal_id}/events", response_model=GoalEvents, tags=["goals"])
    def goal_events(
        goal_id: str,
        limit: int = Query(1000, ge=1, le=1000),
        cursor: str | None = Query(None, max_length=1000),
        identity: Identity = Depends(current_identity),
    ):
        """Every recorded event of the goal's trace, in order."""
        return goals.events(identity, goal_id, limit=limit, cursor=cursor)

    @app.get("/v1/goals/{goal_id}/trace", response_model=GoalTrace, tags=["goals"])
    def goal_trace(goal_id: str, identity: Identity = Depends(current_identity)):
        """The goal's OpenTelemetry trace: ``{goal_id, trace_id, spans: [...]}``, spans in start order, each with
        ``trace_id``, ``span_id``, ``parent_span_id``, ``name``, ``kind``, ``start_time``/``end_time`` (ISO 8601
        UTC), ``duration_ms``, ``status`` and ``attributes`` (docs/observability.md)."""
        return goals.trace(identity, goal_id)

    @app.post("/v1/sessions", status_code=201, response_model=Session, tags=["sessions"])
    def new_session(body: SessionRequest | None = Body(None), identity: Identity = Depends(current_identity)):
        """Create a session (an id of your own, or a generated one); 409 when the id exists."""
        body = body or SessionRequest()
        return create_session(db, identity, body.session_id, body.metadata, body.multitask_strategy)

    @app.get("/v1/sessions", response_model=SessionList, tags=["sessions"])
    def sessions(
        limit: int = Query(20, ge=1, le=100),
        cursor: str | None = Query(None, max_length=500),
        identity: Identity = Depends(current_identity),
    ):
        """The caller's sessions, most recently used first."""
        return list_sessions(db, identity, limit=limit, cursor=cursor)

    @app.get("/v1/sessions/{session_id}", response_model=Session, tags=["sessions"])
    def session(session_id: str, identity: Identity = Depends(current_identity)):
        """One session and how many goals it has (list them with ``GET /v1/goals?session_id=``)."""
        return get_session(db, identity, session_id)

    @app.post("/v1/events/publish", response_model=Published, tags=["events"])
    def publish_event(body: PublishRequest, identity: Identity = Depends(current_identity)):
        """Publish one event envelope to the event bus, under the caller's identity."""
        envelope = owned_envelope(body.event, identity)
        topic = topic_of(envelope)
        # A fresh delivery grant for the identity just stamped (soorma.grants): any grant the publisher sent is
        # replaced, and an agent publishing under a grant gives the receivers one of their own.
        envelope = stamp_grant(envelope)
        due = _due_time(body)
        if due is not None:
            _check_size(publisher, envelope)
        with db.transaction(identity) as conn:
            policy = policies.load(conn, identity.platform_tenant_id)
            policies.check_event(policy, envelope.type, envelope)  # the whole envelope, as it will be published
            if topic == EventTopic.ACTION_REQUESTS.value:
                policies.count_action(conn, policy, identity.platform_tenant_id, envelope.plan_id or envelope.goal_id)
            if envelope.type == INPUT_REQUESTED_EVENT and topic == EventTopic.TASK_EVENTS.value and due is None:
                # Recorded here, before the request is on the bus (the tracker records it again: a no-op), so the
                # request and its timeout timer exist once the agent's handler has returned, and the timer is armed
                # by the function that holds the scheduler's rights in AWS.
                shared_inputs.record_request(conn, identity, envelope, dict(envelope.data or {}), datetime.now(UTC))
            if due is not None:
                # A durable timer in this same transaction, keyed by the event id: a retried request is one timer.
                timer_id = timers.schedule_event(conn, identity=identity, due_at=due,
                                                 envelope=json.loads(envelope.to_json()), key=f"event:{envelope.id}")
        if due is not None:
            return {"success": True, "event_id": envelope.id, "duplicate": False, "timer_id": timer_id,
                    "deliver_at": due.isoformat(), "message": "Event scheduled"}
        try:
            result = publisher.publish(envelope)
        except PayloadTooLarge as exc:
            raise HTTPException(413, str(exc)) from None
        except PublishError as exc:
            logger.error("event %s: publish failed: %s", envelope.id, exc)
            raise HTTPException(503, str(exc), headers={"Retry-After": "1"}) from None
        if is_duplicate(result):
            # JetStream kept the earlier message with this (tenant-scoped) id and stored nothing: say so.
            return {"success": True, "event_id": envelope.id, "duplicate": True,
                    "message": "Duplicate event: this event id was already published within the de-duplication"
                               " window; it was not published again"}
        return {"success": True, "event_id": envelope.id, "duplicate": False, "message": "Event published"}

    app.include_router(commit.create_router(db, publisher))
    app.include_router(commit_batch.create_router(db, publisher))
    app.include_router(admin.create_router(db))
    app.include_router(webhooks.create_router(db))
    app.include_router(schedules.create_router(db))
    app.include_router(usage_api.create_router(db))
    return app
