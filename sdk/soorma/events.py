"""The event model: topics, the event envelope and event definitions.

Wire-compatible with soorma-core's ``soorma_common.events`` (snake_case JSON). The envelope follows CloudEvents 1.0
attribute names (https://github.com/cloudevents/spec/blob/v1.0.2/cloudevents/spec.md) plus Soorma's routing and
identity extensions. Unknown fields are kept, so an envelope from a newer producer survives a round trip.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

#: A task's progress report (``TaskContext.report_progress``, on ``task-events``): published at once, never held
#: for the handler's commit, because it tells people about a handler that is still running.
PROGRESS_EVENT = "task.progress"


class EventTopic(str, Enum):
    """The eight fixed topics of the Soorma event system."""

    BUSINESS_FACTS = "business-facts"
    ACTION_REQUESTS = "action-requests"
    ACTION_RESULTS = "action-results"
    BILLING_EVENTS = "billing-events"
    NOTIFICATION_EVENTS = "notification-events"
    SYSTEM_EVENTS = "system-events"
    PLAN_EVENTS = "plan-events"
    TASK_EVENTS = "task-events"

    def __str__(self) -> str:
        return self.value


#: A W3C Trace Context ``traceparent``, version 00, lower-case hex, trace and span ids not all zeros.
TRACEPARENT = re.compile(r"00-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}")


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _new_id() -> str:
    return str(uuid.uuid4())


class EventEnvelope(BaseModel):
    """One event on the bus.

    Fields (all JSON, snake_case): ``id`` (UUID string, also the JetStream message id, so a retried publish is not
    stored twice), ``source``, ``specversion`` ("1.0"), ``type`` (the event type, dots allowed), ``time`` (ISO 8601,
    UTC), ``data`` (a JSON object), ``topic`` (an :class:`EventTopic` value), request/response routing
    (``correlation_id``, ``response_event``, ``response_topic``, ``response_schema_name``), tracing
    (``trace_id``, ``parent_event_id``, and ``traceparent``: the W3C Trace Context of the span that caused the event,
    :mod:`soorma.telemetry`), identity (``platform_tenant_id``, ``tenant_id`` = service tenant,
    ``user_id`` = service user, ``session_id``) and workflow (``goal_id``, ``plan_id``, ``subject``).

    ``delivery_grant``: the short-lived token the gateway stamps on every event it accepts, with which an agent
    handling the event may act for its ``tenant_id``/``user_id`` (:mod:`soorma.grants`). A publisher never sets it
    (the gateway replaces it), it is not inherited by caused events (:meth:`propagation`), and it is a credential:
    do not log it.
    """

    model_config = ConfigDict(extra="allow", populate_by_name=True, use_enum_values=True)

    id: str = Field(default_factory=_new_id)
    source: str = "soorma"
    specversion: str = "1.0"
    type: str
    time: str = Field(default_factory=_now)
    data: dict[str, Any] = Field(default_factory=dict)
    topic: EventTopic
    correlation_id: str | None = None
    response_event: str | None = None
    response_topic: str | None = None
    response_schema_name: str | None = None
    trace_id: str | None = None
    parent_event_id: str | None = None
    traceparent: str | None = None
    payload_schema_name: str | None = None
    tenant_id: str | None = None
    user_id: str | None = None
    platform_tenant_id: str | None = None
    session_id: str | None = None
    goal_id: str | None = None
    plan_id: str | None = None
    subject: str | None = None
    delivery_grant: str | None = Field(default=None, repr=False)

    @field_validator("traceparent")
    @classmethod
    def _w3c_traceparent(cls, value: str | None) -> str | None:
        if value is not None and not TRACEPARENT.fullmatch(value):
            raise ValueError("traceparent must be a W3C Trace Context traceparent, version 00: "
                             "'00-<32 hex trace id>-<16 hex span id>-<2 hex flags>', ids not all zero "
                             "(https://www.w3.org/TR/trace-context/#traceparent-header-field-values)")
        return value

    @field_validator("data", mode="before")
    @classmethod
    def _none_data_is_empty(cls, value: Any) -> Any:
        return {} if value is None else value

    def to_json(self) -> str:
        """Serialize to compact JSON, omitting unset optional fields (``None``)."""
        return self.model_dump_json(exclude_none=True)

    @classmethod
    def from_json(cls, raw: str | bytes) -> "EventEnvelope":
        """Parse an envelope from JSON. Raises ``pydantic.ValidationError`` on a malformed envelope."""
        return cls.model_validate_json(raw)

    def to_cloudevents_dict(self) -> dict[str, Any]:
        """The envelope as a CloudEvents 1.0 event in its JSON format (soorma-core's method).

        Follows https://github.com/cloudevents/spec/blob/v1.0.2/cloudevents/spec.md and its JSON event format
        (https://github.com/cloudevents/spec/blob/v1.0.2/cloudevents/formats/json-format.md): the context attributes
        ``specversion``, ``id``, ``source``, ``type``, ``time``, ``subject``, ``datacontenttype``
        (``application/json``) and ``data``; every other field set (``None`` ones are left out) becomes an extension
        attribute, named as the spec requires (lower-case letters and digits only: ``correlation_id`` →
        ``correlationid``, ``tenant_id`` → ``tenantid``). ``delivery_grant`` is never included: it is a credential.

        Returns
        -------
        dict
            A JSON-serializable dict.
        """
        core = {"specversion", "id", "source", "type", "time", "subject", "data"}
        fields = self.model_dump(mode="json", exclude_none=True, exclude={"delivery_grant"})
        event: dict[str, Any] = {name: fields[name] for name in ("specversion", "id", "source", "type", "time",
                                                                  "subject") if name in fields}
        event["datacontenttype"] = "application/json"
        event["data"] = fields.get("data", {})
        for name, value in fields.items():
            if name not in core:
                event["".join(ch for ch in name.lower() if ch.isascii() and ch.isalnum())] = value
        return event

    def propagation(self) -> dict[str, Any]:
        """The fields an event caused by this one inherits (trace, goal, plan, session, identity, parent)."""
        return {
            "trace_id": self.trace_id or self.id,
            "parent_event_id": self.id,
            "goal_id": self.goal_id,
            "plan_id": self.plan_id,
            "session_id": self.session_id,
            "tenant_id": self.tenant_id,
            "user_id": self.user_id,
        }


class EventDefinition(BaseModel):
    """A registered event type: its name, topic and optional JSON schemas (soorma-core ``EventDefinition``)."""

    model_config = ConfigDict(populate_by_name=True, extra="allow", use_enum_values=True)

    event_name: str
    topic: str = EventTopic.ACTION_REQUESTS.value
    description: str = ""
    payload_schema_name: str | None = None
    response_schema_name: str | None = None
    payload_schema: dict[str, Any] | None = None
    response_schema: dict[str, Any] | None = None


def __getattr__(name: str) -> Any:
    """soorma-core's ``from soorma.events import EventClient``: loaded on first access (PEP 562,
    https://peps.python.org/pep-0562/), because :mod:`soorma.event_client` sits in a layer above this module
    (``.importlinter``) and publishes through the clients; this is an import path, not a dependency of the model."""
    if name == "EventClient":
        from importlib import import_module

        value = import_module("soorma.event_client").EventClient
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
