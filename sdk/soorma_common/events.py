"""soorma-core's ``soorma_common.events``: the envelope, topics and definitions are this SDK's own
(:mod:`soorma.events`); the topic-fixed envelopes below are soorma-core's subclasses of it; ``PublishRequest`` /
``PublishResponse`` are the gateway's models of ``POST /v1/events/publish`` (:mod:`soorma.functions.gateway.models`,
pydantic only), the route soorma-core's event service also had.

Each topic-fixed class is an :class:`~soorma.events.EventEnvelope` whose ``topic`` is always its own (whatever is
passed, as in soorma-core) with its extra fields at the top level of the envelope (the envelope keeps fields it does
not know, so they travel). The SDK's publish path does not need them: ``bus.request`` / ``bus.respond`` /
``bus.announce`` set the topic.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import Field, model_validator

from soorma.events import EventDefinition, EventEnvelope, EventTopic
from soorma.functions.gateway.models import Published as PublishResponse, PublishRequest


class ActionRequestEvent(EventEnvelope):
    """An action request (topic ``action-requests``): ``plan_id``, ``caused_by`` (the event that led to it),
    ``callback_url``."""

    topic: EventTopic = EventTopic.ACTION_REQUESTS
    caused_by: str | None = None
    callback_url: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _fixed_topic(cls, data: Any) -> Any:
        return {**data, "topic": EventTopic.ACTION_REQUESTS} if isinstance(data, dict) else data


class ActionResultEvent(EventEnvelope):
    """An action's result (topic ``action-results``): ``action_event_id`` (the request's id), ``success``,
    ``result``, ``error``, ``completed_at``."""

    topic: EventTopic = EventTopic.ACTION_RESULTS
    action_event_id: str
    success: bool
    result: dict[str, Any] | None = None
    error: str | None = None
    completed_at: datetime = Field(default_factory=lambda: datetime.now(UTC))

    @model_validator(mode="before")
    @classmethod
    def _fixed_topic(cls, data: Any) -> Any:
        return {**data, "topic": EventTopic.ACTION_RESULTS} if isinstance(data, dict) else data


class BusinessFactEvent(EventEnvelope):
    """A business fact (topic ``business-facts``)."""

    topic: EventTopic = EventTopic.BUSINESS_FACTS

    @model_validator(mode="before")
    @classmethod
    def _fixed_topic(cls, data: Any) -> Any:
        return {**data, "topic": EventTopic.BUSINESS_FACTS} if isinstance(data, dict) else data


class BillingEvent(EventEnvelope):
    """A unit of billable work (topic ``billing-events``): ``unit_of_work``, ``cost``, ``currency`` (ISO 4217)."""

    topic: EventTopic = EventTopic.BILLING_EVENTS
    unit_of_work: str
    cost: float
    currency: str = "USD"

    @model_validator(mode="before")
    @classmethod
    def _fixed_topic(cls, data: Any) -> Any:
        return {**data, "topic": EventTopic.BILLING_EVENTS} if isinstance(data, dict) else data


class NotificationEvent(EventEnvelope):
    """A notification for a person (topic ``notification-events``): ``message``, ``priority`` (low, normal, high,
    urgent), ``channel`` (email, sms, push)."""

    topic: EventTopic = EventTopic.NOTIFICATION_EVENTS
    message: str
    priority: str = "normal"
    channel: str = "email"

    @model_validator(mode="before")
    @classmethod
    def _fixed_topic(cls, data: Any) -> Any:
        return {**data, "topic": EventTopic.NOTIFICATION_EVENTS} if isinstance(data, dict) else data


__all__ = ["ActionRequestEvent", "ActionResultEvent", "BillingEvent", "BusinessFactEvent", "EventDefinition",
           "EventEnvelope", "EventTopic", "NotificationEvent", "PublishRequest", "PublishResponse"]
