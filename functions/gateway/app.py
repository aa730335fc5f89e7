"""The gateway function: goals and event publishing over HTTP.

Routes (docs/architecture.md "Gateway"; snake_case bodies):

* ``POST /v1/goals`` ``{goal_type, data, session_id?}`` → 202 ``{goal_id, status: "running", goal_type}``. The goal
  row is committed first (so the tracker can always find it when the result arrives), then the request envelope is
  published to JetStream: ``type=goal_type``, ``topic=action-requests``, ``correlation_id = goal_id = trace_id =
  <goal id>``, ``response_event="soorma.goal.result"``, ``response_topic="action-results"``, identity from the
  caller. When the publish fails the goal is marked ``failed`` (error "publish failed: ...") and the answer is 503
  (413 when the envelope exceeds the bus's maximum payload, 1 MiB by default).
* ``GET /v1/goals/{goal_id}`` → the goal with its ``tasks`` (recorded by the tracker) and ``events`` (count); 404
  for an unknown goal and for another identity's goal (row-level security hides it).
* ``POST /v1/events/publish`` ``{"event": envelope}`` → ``{success, event_id, message}``. ``platform_tenant_id`` is
  always the caller's. Roles ``user``/``developer``: ``tenant_id``/``user_id`` are forced to the caller's own.
  Roles ``agent``/``admin`` (whose service tenant/user may come from the authorizer-validated override headers):
  ``tenant_id``/``user_id`` must equal the identity's when present (else 403) and are filled in when absent.
  A bad topic, type or id is a 422 with the reason; an oversized event a 413; an unavailable event bus a 503.
"""

from __future__ import annotations

import logging
import re
import uuid
from typing import Any

from fastapi import Depends, FastAPI, HTTPException
from fastapi.responses import JSONResponse
from psycopg.types.json import Jsonb
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from soorma.db import Database, database_from_env
from soorma.events import EventEnvelope, EventTopic
from soorma.identity import OVERRIDE_ROLES, Identity
from soorma.service import current_identity, function_app
from soorma.subjects import check_event_type, check_identifier, subject
from soorma.functions.gateway.publisher import NatsPublisher, PayloadTooLarge, PublishError, Publisher

logger = logging.getLogger("soorma.functions.gateway")

GOAL_RESULT_EVENT = "soorma.goal.result"
SOURCE = "soorma-gateway"
# The envelope id becomes the Nats-Msg-Id header: no whitespace or control characters.
_EVENT_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")


class GoalRequest(BaseModel):
    """``{goal_type, data, session_id?}`` (camelCase accepted too)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    goal_type: str = Field(min_length=1, max_length=200)
    data: dict[str, Any] = Field(default_factory=dict)
    session_id: str | None = Field(None, min_length=1, max_length=255)

    @field_validator("goal_type")
    @classmethod
    def _type(cls, value: str) -> str:
        try:
            return check_event_type(value)
        except ValueError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("data", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return {} if value is None else value


class PublishRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    event: EventEnvelope


def _iso(value) -> str | None:
    return value.isoformat() if value is not None else None


def create_app(db: Database | None = None, publisher: Publisher | None = None) -> FastAPI:
    """The gateway's FastAPI app.

    ``db`` defaults to :func:`soorma.db.database_from_env`; ``publisher`` to a :class:`NatsPublisher` on
    ``SOORMA_NATS_URL`` (one per app, i.e. per execution environment).
    """
    db = db if db is not None else database_from_env()
    publisher = publisher if publisher is not None else NatsPublisher.from_env()
    app = function_app("Soorma gateway")
    app.state.db = db
    app.state.publisher = publisher

    @app.post("/v1/goals", status_code=202)
    def submit_goal(body: GoalRequest, identity: Identity = Depends(current_identity)):
        goal_id = str(uuid.uuid4())
        envelope = EventEnvelope(
            source=SOURCE,
            type=body.goal_type,
            topic=EventTopic.ACTION_REQUESTS,
            data=body.data,
            correlation_id=goal_id,
            goal_id=goal_id,
            trace_id=goal_id,
            response_event=GOAL_RESULT_EVENT,
            response_topic=EventTopic.ACTION_RESULTS.value,
            platform_tenant_id=identity.platform_tenant_id,
            tenant_id=identity.service_tenant_id,
            user_id=identity.service_user_id,
            session_id=body.session_id,
        )
        subject(identity.platform_tenant_id, EventTopic.ACTION_REQUESTS.value, body.goal_type)  # 422 if unusable
        with db.transaction(identity) as conn:
            conn.execute(
                "insert into gateway.goals (goal_id, platform_tenant_id, service_tenant_id, service_user_id,"
                " principal_id, goal_type, data, session_id, status, response_event, event_id)"
                " values (%s, %s, %s, %s, %s, %s, %s, %s, 'running', %s, %s)",
                (goal_id, identity.platform_tenant_id, identity.service_tenant_id, identity.service_user_id,
                 identity.principal_id, body.goal_type, Jsonb(body.data), body.session_id, GOAL_RESULT_EVENT,
                 envelope.id),
            )
        try:
            publisher.publish(envelope)
        except Exception as exc:
            reason = str(exc) if isinstance(exc, PublishError) else f"{type(exc).__name__}: {exc}"
            logger.error("goal %s: publish failed: %s", goal_id, reason)
            with db.transaction(identity) as conn:
                conn.execute(
                    "update gateway.goals set status = 'failed', error = %s, completed_at = now()"
                    " where goal_id = %s and status = 'running'",
                    (f"publish failed: {reason}", goal_id),
                )
            return JSONResponse(
                {"detail": f"goal {goal_id} could not be submitted: {reason}", "goal_id": goal_id},
                status_code=413 if isinstance(exc, PayloadTooLarge) else 503,
            )
        return {"goal_id": goal_id, "status": "running", "goal_type": body.goal_type}

    @app.get("/v1/goals/{goal_id}")
    def get_goal(goal_id: str, identity: Identity = Depends(current_identity)):
        try:
            goal_uuid = str(uuid.UUID(goal_id))
        except ValueError:
            raise HTTPException(404, f"goal {goal_id!r} not found") from None
        with db.transaction(identity) as conn:
            goal = conn.execute(
                "select goal_id::text as goal_id, goal_type, status, data, result, error, session_id,"
                " response_event, created_at, completed_at from gateway.goals where goal_id = %s",
                (goal_uuid,),
            ).fetchone()
            if goal is None:
                raise HTTPException(404, f"goal {goal_id!r} not found")
            tasks = conn.execute(
                "select task_id, event_type, status, agent, started_at, completed_at from gateway.goal_tasks"
                " where goal_id = %s order by started_at nulls last, task_id",
                (goal_uuid,),
            ).fetchall()
            events = conn.execute(
                "select count(*) as n from gateway.goal_events where goal_id = %s", (goal_uuid,)
            ).fetchone()["n"]
        return {
            **goal,
            "created_at": _iso(goal["created_at"]),
            "completed_at": _iso(goal["completed_at"]),
            "tasks": [
                {**t, "started_at": _iso(t["started_at"]), "completed_at": _iso(t["completed_at"])} for t in tasks
            ],
            "events": events,
        }

    @app.post("/v1/events/publish")
    def publish_event(body: PublishRequest, identity: Identity = Depends(current_identity)):
        envelope = body.event
        check_event_type(envelope.type)
        if not _EVENT_ID.match(envelope.id):
            raise HTTPException(422, "event id must be 1-128 characters of [A-Za-z0-9_.:-] (a UUID)")
        updates: dict[str, Any] = {"platform_tenant_id": identity.platform_tenant_id}
        if identity.role in OVERRIDE_ROLES:
            for field, own in (("tenant_id", identity.service_tenant_id), ("user_id", identity.service_user_id)):
                value = getattr(envelope, field)
                if value is not None and value != own:
                    raise HTTPException(
                        403,
                        f"event {field} {value!r} differs from the service {field.split('_')[0]} this request "
                        f"acts for ({own!r}); send X-Soorma-Service-Tenant / X-Soorma-Service-User",
                    )
                updates[field] = own
        else:
            updates["tenant_id"] = identity.service_tenant_id
            updates["user_id"] = identity.service_user_id
        envelope = envelope.model_copy(update=updates)
        topic = envelope.topic.value if hasattr(envelope.topic, "value") else str(envelope.topic)
        subject(envelope.platform_tenant_id, topic, envelope.type)
        check_identifier(envelope.tenant_id, "tenant_id")
        check_identifier(envelope.user_id, "user_id")
        try:
            publisher.publish(envelope)
        except PayloadTooLarge as exc:
            raise HTTPException(413, str(exc)) from None
        except PublishError as exc:
            logger.error("event %s: publish failed: %s", envelope.id, exc)
            raise HTTPException(503, str(exc)) from None
        return {"success": True, "event_id": envelope.id, "message": "Event published"}

    return app
