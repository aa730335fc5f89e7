"""Webhooks client: subscriptions, deliveries and replay (``/v1/webhooks…``, served by the gateway;
docs/architecture.md "Webhooks").

Deliveries are signed per the Standard Webhooks specification (https://www.standardwebhooks.com/); a receiver checks
them with the ``secret`` returned once by :meth:`WebhooksClient.create_webhook` (``standardwebhooks.Webhook(secret)
.verify(body, headers)``).
"""

from __future__ import annotations

from typing import Any, Sequence
from urllib.parse import quote

from ._http import HttpClient, json_object


def _id(value: str) -> str:
    return quote(value, safe="")


class WebhooksClient(HttpClient):
    """``WebhooksClient(base_url=None, api_key=None, auth_token=None, auth_token_provider=None, *, timeout=30, transport=None)``."""

    async def create_webhook(self, url: str, events: Sequence[str] = ("terminal",),
                             description: str = "") -> dict[str, Any]:
        """Subscribe ``url`` to every goal of the caller's identity; ``events``: ``terminal`` and/or ``progress``.
        Returns ``{"id", "url", "events", "description", "goal_id": None, "created_at", "secret"}`` — the only
        time the secret is shown. Raises :class:`~soorma.errors.ValidationError` (422) for a URL the platform may
        not call."""
        body = {"url": url, "events": list(events), "description": description}
        return json_object(await self._request("POST", "/v1/webhooks", json=body))

    async def list_webhooks(self) -> list[dict[str, Any]]:
        """The caller's subscriptions (tenant-wide and goals' own), newest first, without secrets."""
        return list(json_object(await self._request("GET", "/v1/webhooks"))["webhooks"])

    async def delete_webhook(self, webhook_id: str) -> None:
        """Delete a subscription. Raises :class:`~soorma.errors.NotFoundError` for an unknown id."""
        await self._request("DELETE", f"/v1/webhooks/{_id(webhook_id)}")

    async def list_deliveries(self, *, state: str | None = None, goal_id: str | None = None,
                              limit: int = 50) -> list[dict[str, Any]]:
        """The caller's deliveries, newest first; ``state``: ``pending``, ``delivered`` or ``dead``."""
        params = {"state": state, "goal_id": goal_id, "limit": limit}
        return list(json_object(await self._request("GET", "/v1/webhooks/deliveries", params=params))["deliveries"])

    async def get_delivery(self, delivery_id: str) -> dict[str, Any] | None:
        """One delivery, or None when unknown."""
        body = await self._request("GET", f"/v1/webhooks/deliveries/{_id(delivery_id)}", not_found=None)
        return None if body is None else json_object(body)

    async def replay_delivery(self, delivery_id: str) -> dict[str, Any]:
        """Send a dead-lettered (or delivered) delivery again: a new attempt series, due now. Raises
        :class:`~soorma.errors.NotFoundError` for an unknown id, :class:`~soorma.errors.ConflictError` while it is
        still pending."""
        return json_object(await self._request("POST", f"/v1/webhooks/deliveries/{_id(delivery_id)}/replay"))
