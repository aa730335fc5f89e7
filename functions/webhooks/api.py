"""``/v1/webhooks…``: subscriptions, their deliveries and replay, served by the gateway (:func:`create_router`), and
a goal's own webhook (:func:`attach_goal_webhook`, called by ``POST /v1/goals``).

Routes (every one under the caller's identity: row-level security confines it to the caller's (platform tenant,
service tenant, service user), so another identity's subscription or delivery is a 404, never a leak):

* ``POST /v1/webhooks`` ``{url, events?: ["terminal", "progress"], description?}`` → 201 the subscription with its
  ``secret`` (shown once); 422 for a URL the platform may not call (:mod:`~soorma.functions.webhooks.urls`).
* ``GET /v1/webhooks`` → ``{webhooks}``: the subscriptions (tenant-wide and goals' own), never a secret.
* ``DELETE /v1/webhooks/{id}`` → 204; 404 for an unknown id. Pending deliveries of a deleted subscription are still
  sent (they were due before the deletion); nothing new is queued.
* ``GET /v1/webhooks/deliveries?state=&goal_id=&limit=`` → ``{deliveries}``, newest first.
* ``GET /v1/webhooks/deliveries/{id}`` → one delivery.
* ``POST /v1/webhooks/deliveries/{id}/replay`` → 202 the delivery, ``pending`` again with a new attempt series
  (same ``webhook-id``); 409 while it is still pending.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Response
from psycopg import Connection

from soorma.functions.shared import settings
from soorma.functions.shared.db import Database
from soorma.functions.shared.service import current_identity
from soorma.functions.webhooks.aws import notify_sender
from soorma.functions.webhooks.models import (
    Delivery,
    DeliveryList,
    GoalWebhook,
    SubscriptionCreated,
    SubscriptionList,
    SubscriptionRequest,
    WebhookSpec,
)
from soorma.functions.webhooks.signing import subscription_secret
from soorma.functions.webhooks.urls import UrlRefused, check_url
from soorma.identity import Identity

_SUBSCRIPTION_COLUMNS = "subscription_id, url, events, description, goal_id, created_at"
_DELIVERY_COLUMNS = ("delivery_id, subscription_id, goal_id, event_type, url, state, attempts, next_attempt_at,"
                     " last_status, last_error, created_at, updated_at, delivered_at")


def checked_url(url: str) -> str:
    """``url`` when the platform may call it; ``HTTPException`` 422 naming the reason otherwise."""
    try:
        return check_url(url, allow_loopback=settings.WEBHOOK_ALLOW_LOOPBACK.get())
    except UrlRefused as exc:
        raise HTTPException(422, f"webhook {exc}") from None


def _uuid(value: str, what: str) -> str:
    try:
        return str(uuid.UUID(value))
    except (ValueError, AttributeError):
        raise HTTPException(404, f"{what} {value[:100]!r} not found") from None


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def _subscription(row: dict[str, Any]) -> dict[str, Any]:
    return {"id": str(row["subscription_id"]), "url": row["url"], "events": list(row["events"]),
            "description": row["description"], "goal_id": str(row["goal_id"]) if row["goal_id"] else None,
            "created_at": _iso(row["created_at"])}


def _delivery(row: dict[str, Any]) -> dict[str, Any]:
    return {"id": str(row["delivery_id"]), "subscription_id": str(row["subscription_id"]),
            "goal_id": str(row["goal_id"]), "event_type": row["event_type"], "url": row["url"],
            "state": row["state"], "attempts": row["attempts"], "next_attempt_at": _iso(row["next_attempt_at"]),
            "last_status": row["last_status"], "last_error": row["last_error"],
            "created_at": _iso(row["created_at"]), "updated_at": _iso(row["updated_at"]),
            "delivered_at": _iso(row["delivered_at"])}


def _insert_subscription(conn: Connection[Any], identity: Identity, spec: WebhookSpec, *, description: str = "",
                         goal_id: str | None = None) -> dict[str, Any]:
    row = conn.execute(
        "insert into webhooks.subscriptions (subscription_id, platform_tenant_id, service_tenant_id,"
        " service_user_id, goal_id, url, events, description) values (%s, %s, %s, %s, %s, %s, %s, %s)"
        f" returning {_SUBSCRIPTION_COLUMNS}",
        (str(uuid.uuid4()), identity.platform_tenant_id, identity.service_tenant_id, identity.service_user_id,
         goal_id, spec.url, sorted(set(spec.events)), description),
    ).fetchone()
    assert row is not None
    return row


def attach_goal_webhook(db: Database, identity: Identity, goal_id: str, spec: WebhookSpec) -> GoalWebhook:
    """Subscribe ``spec.url`` to goal ``goal_id`` (just created by ``identity``); returns the subscription's id and
    its secret (shown once).

    The goal may have ended already (a fast agent): the goal row is locked and, if it is final, its terminal delivery
    is queued here (``webhooks.catch_up``); if the tracker ends it concurrently, its update waits for this
    transaction, and its trigger then sees the subscription. Either way the terminal event is delivered once."""
    with db.transaction(identity) as conn:
        row = _insert_subscription(conn, identity, spec, goal_id=goal_id)
        caught_up = conn.execute("select webhooks.catch_up(%s) as n", (row["subscription_id"],)).fetchone()
    if caught_up and caught_up["n"]:
        notify_sender(db)
    subscription_id = str(row["subscription_id"])
    return GoalWebhook(id=subscription_id, secret=subscription_secret(subscription_id))


def create_router(db: Database) -> APIRouter:
    """The ``/v1/webhooks…`` routes over ``db``."""
    router = APIRouter(tags=["webhooks"])

    @router.post("/v1/webhooks", status_code=201, response_model=SubscriptionCreated)
    def create_subscription(body: SubscriptionRequest, identity: Identity = Depends(current_identity)):
        """Subscribe a URL to every goal of the caller's identity; the answer holds the signing secret, once."""
        checked_url(body.url)
        with db.transaction(identity) as conn:
            row = _insert_subscription(conn, identity, body, description=body.description)
        created = _subscription(row)
        return {**created, "secret": subscription_secret(created["id"])}

    @router.get("/v1/webhooks", response_model=SubscriptionList)
    def list_subscriptions(limit: int = Query(100, ge=1, le=500), identity: Identity = Depends(current_identity)):
        """The caller's subscriptions, newest first (never with their secrets)."""
        with db.transaction(identity) as conn:
            rows = conn.execute(
                f"select {_SUBSCRIPTION_COLUMNS} from webhooks.subscriptions where deleted_at is null"
                " order by created_at desc, subscription_id desc limit %s", (limit,)).fetchall()
        return {"webhooks": [_subscription(r) for r in rows]}

    @router.delete("/v1/webhooks/{subscription_id}", status_code=204)
    def delete_subscription(subscription_id: str, identity: Identity = Depends(current_identity)) -> Response:
        """Delete a subscription: nothing new is queued for it."""
        sid = _uuid(subscription_id, "webhook")
        with db.transaction(identity) as conn:
            row = conn.execute("update webhooks.subscriptions set deleted_at = now()"
                               " where subscription_id = %s and deleted_at is null returning subscription_id",
                               (sid,)).fetchone()
        if row is None:
            raise HTTPException(404, f"webhook {subscription_id!r} not found")
        return Response(status_code=204)

    @router.get("/v1/webhooks/deliveries", response_model=DeliveryList)
    def list_deliveries(
        state: str | None = Query(None, pattern="^(pending|delivered|dead)$"),
        goal_id: str | None = Query(None, max_length=100),
        limit: int = Query(50, ge=1, le=500),
        identity: Identity = Depends(current_identity),
    ):
        """The caller's deliveries, newest first; ``state=dead`` lists the dead-lettered ones."""
        where, params = ["true"], []
        if state:
            where.append("state = %s")
            params.append(state)
        if goal_id:
            where.append("goal_id = %s")
            params.append(_uuid(goal_id, "goal"))
        with db.transaction(identity) as conn:
            rows = conn.execute(
                f"select {_DELIVERY_COLUMNS} from webhooks.deliveries where {' and '.join(where)}"
                " order by created_at desc, delivery_id desc limit %s", (*params, limit)).fetchall()
        return {"deliveries": [_delivery(r) for r in rows]}

    @router.get("/v1/webhooks/deliveries/{delivery_id}", response_model=Delivery)
    def get_delivery(delivery_id: str, identity: Identity = Depends(current_identity)):
        """One delivery of the caller's."""
        did = _uuid(delivery_id, "delivery")
        with db.transaction(identity) as conn:
            row = conn.execute(f"select {_DELIVERY_COLUMNS} from webhooks.deliveries where delivery_id = %s",
                               (did,)).fetchone()
        if row is None:
            raise HTTPException(404, f"delivery {delivery_id!r} not found")
        return _delivery(row)

    @router.post("/v1/webhooks/deliveries/{delivery_id}/replay", status_code=202, response_model=Delivery)
    def replay_delivery(delivery_id: str, identity: Identity = Depends(current_identity)):
        """Send a delivery again (dead-lettered or delivered): a new attempt series, due now."""
        did = _uuid(delivery_id, "delivery")
        with db.transaction(identity) as conn:
            row = conn.execute(f"select {_DELIVERY_COLUMNS} from webhooks.deliveries where delivery_id = %s"
                               " for update", (did,)).fetchone()
            if row is None:
                raise HTTPException(404, f"delivery {delivery_id!r} not found")
            if row["state"] == "pending":
                raise HTTPException(409, f"delivery {delivery_id!r} is still pending (attempt {row['attempts']})")
            row = conn.execute(
                "update webhooks.deliveries set state = 'pending', attempts = 0, next_attempt_at = now(),"
                f" last_error = null, updated_at = now() where delivery_id = %s returning {_DELIVERY_COLUMNS}",
                (did,)).fetchone()
            conn.execute("select pg_notify('soorma_webhook_due', '')")
        notify_sender(db)
        assert row is not None
        return _delivery(row)

    return router
