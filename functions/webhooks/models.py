"""Request and response models of ``/v1/webhooks…`` and of a goal's ``webhook`` (snake_case JSON)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

#: What a subscription receives: ``terminal`` (goal.completed, goal.failed, goal.cancelled) and/or ``progress``
#: (goal.progress, one per task progress report).
EventKind = Literal["terminal", "progress"]
DeliveryState = Literal["pending", "delivered", "dead"]


class WebhookSpec(BaseModel):
    """A goal's own webhook (``POST /v1/goals`` ``webhook``): ``{url, events?}`` (``events`` default
    ``["terminal"]``)."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1, max_length=2048)
    events: list[EventKind] = Field(default_factory=lambda: ["terminal"], min_length=1, max_length=2)


class SubscriptionRequest(WebhookSpec):
    """``POST /v1/webhooks``: ``{url, events?, description?}``: every goal of the caller's identity."""

    # no NUL (PostgreSQL text cannot hold it): a 422, not a failed insert
    description: str = Field("", max_length=500, pattern=r"^[^\x00]*$")


class Subscription(BaseModel):
    """A subscription as listed (never with its secret). ``goal_id``: the one goal of a goal's own webhook, null for
    a tenant-wide subscription."""

    id: str
    url: str
    events: list[str]
    description: str
    goal_id: str | None = None
    created_at: str


class SubscriptionCreated(Subscription):
    """The answer that creates a subscription: its ``secret`` (``whsec_…``, for ``standardwebhooks.Webhook``) is
    shown here once and never again."""

    secret: str


class GoalWebhook(BaseModel):
    """The webhook a goal was submitted with (in the ``POST /v1/goals`` answer): the subscription's ``id`` and, the
    only time, its ``secret``."""

    id: str
    secret: str


class SubscriptionList(BaseModel):
    webhooks: list[Subscription]


class Delivery(BaseModel):
    """One delivery (one event to one subscription, all its attempts): ``state`` ``pending`` (``next_attempt_at``
    says when), ``delivered`` or ``dead`` (dead-lettered: ``last_status``/``last_error`` say why; replay it)."""

    id: str
    subscription_id: str
    goal_id: str
    event_type: str
    url: str
    state: DeliveryState
    attempts: int
    next_attempt_at: str | None = None
    last_status: int | None = None
    last_error: str | None = None
    created_at: str
    updated_at: str
    delivered_at: str | None = None


class DeliveryList(BaseModel):
    deliveries: list[Delivery]
