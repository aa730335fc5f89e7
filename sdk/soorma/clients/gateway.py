"""Gateway client: goals (submit, list, follow, cancel, trace), sessions, and API keys.

``POST /v1/goals``, ``GET /v1/goals``, ``GET /v1/goals/{goal_id}[?wait=]``, ``POST /v1/goals/{goal_id}/cancel``,
``GET /v1/goals/{goal_id}/events``, ``GET /v1/goals/{goal_id}/input``, ``POST /v1/goals/{goal_id}/input/{request_id}``, the live goal stream (WebSocket, :mod:`soorma.clients.streams`), ``/v1/sessions…``, ``/v1/api-keys…`` (docs/architecture.md "Gateway").
"""

from __future__ import annotations

import time
import uuid
from typing import Any, AsyncIterator, Mapping
from urllib.parse import quote

from ..models import GoalStatus
from . import streams
from ._http import HttpClient, json_object, snake_keys
from .streams import GoalStreamEnd, GoalStreamEvent

FINAL_STATUSES = ("completed", "failed", "cancelled")
#: The gateway long-polls at most this long per request (``GET /v1/goals/{id}?wait=``).
MAX_WAIT_S = 25.0


def _id(value: str) -> str:
    return quote(value, safe="")


class GatewayClient(HttpClient):
    """``GatewayClient(base_url=None, api_key=None, auth_token=None, auth_token_provider=None, *, timeout=30, transport=None)``.

    The gateway turns a goal into an action request (``type=goal_type``, ``correlation_id=goal_id``,
    ``response_event="soorma.goal.result"``); the tracker completes it when the response arrives.
    """

    async def submit_goal(
        self,
        goal_type: str,
        data: Mapping[str, Any] | None = None,
        session_id: str | None = None,
        *,
        idempotency_key: str | None = None,
        webhook: Mapping[str, Any] | None = None,
        multitask_strategy: str | None = None,
    ) -> dict[str, Any]:
        """Start a goal; returns ``{"goal_id", "status": "running", "goal_type"}`` (``"queued"`` when its session
        has an active goal and queues new ones). ``multitask_strategy`` (``reject | enqueue | interrupt |
        rollback``) overrides the session's double-texting policy for this goal.

        ``webhook``: ``{"url", "events"?: ["terminal", "progress"]}``, the goal's own webhook; the answer then has
        ``webhook: {"id", "secret"}`` (the secret shown this once; :mod:`soorma.clients.webhooks`).

        Every submit carries an ``Idempotency-Key`` (a fresh one unless given), so the client's own retries after a
        timeout or a 503 never start the goal twice; pass your own key to make a repeated submit (e.g. after a
        crash) return the same goal."""
        body: dict[str, Any] = {"goal_type": goal_type, "data": dict(data or {})}
        if session_id:
            body["session_id"] = session_id
        if webhook:
            body["webhook"] = dict(webhook)
        if multitask_strategy:
            body["multitask_strategy"] = multitask_strategy
        headers = {"Idempotency-Key": idempotency_key or f"sdk-{uuid.uuid4()}"}
        return snake_keys(await self._request("POST", "/v1/goals", json=body, headers=headers) or {})

    async def get_goal(self, goal_id: str, *, wait: float = 0.0) -> GoalStatus | None:
        """The goal's status, result and tasks; ``None`` if unknown. ``wait`` (≤ 25 s) long-polls until it ends."""
        params = {"wait": min(wait, MAX_WAIT_S)} if wait > 0 else None
        body = await self._request("GET", f"/v1/goals/{_id(goal_id)}", params=params, not_found=None)
        return GoalStatus.model_validate(body) if body else None

    async def wait_for_goal(self, goal_id: str, timeout: float = 60.0, interval: float = 0.25) -> GoalStatus:
        """Wait (long-polling the gateway) until the goal is ``completed``, ``failed`` or ``cancelled``. Raises
        ``TimeoutError`` after ``timeout`` seconds. ``interval`` paces the requests when the server answers at once
        (a goal not visible yet, or a server that does not long-poll)."""
        import asyncio

        deadline = time.monotonic() + timeout
        while True:
            started = time.monotonic()
            goal = await self.get_goal(goal_id, wait=max(0.0, min(deadline - started, MAX_WAIT_S)))
            if goal is not None and goal.status in FINAL_STATUSES:
                return goal
            now = time.monotonic()
            if now >= deadline:
                raise TimeoutError(f"goal {goal_id} still {goal.status if goal else 'unknown'} after {timeout}s")
            if now - started < interval:  # the server did not hold the request (unknown goal, or no long-poll)
                await asyncio.sleep(min(interval, deadline - now))

    async def list_goals(
        self,
        *,
        status: str | None = None,
        session_id: str | None = None,
        goal_type: str | None = None,
        limit: int = 20,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        """One page of the caller's goals, newest first: ``{"goals", "count", "next_cursor"}``."""
        params = {"status": status, "session_id": session_id, "goal_type": goal_type, "limit": limit,
                  "cursor": cursor}
        return json_object(await self._request("GET", "/v1/goals", params=params))

    async def iter_goals(self, **filters: Any) -> AsyncIterator[dict[str, Any]]:
        """Every goal matching ``filters`` (those of :meth:`list_goals`), following the cursors."""
        cursor = None
        while True:
            page = await self.list_goals(**filters, cursor=cursor)
            for goal in page["goals"]:
                yield goal
            cursor = page.get("next_cursor")
            if not cursor:
                return

    async def cancel_goal(self, goal_id: str, reason: str | None = None) -> GoalStatus:
        """Cancel a goal that has not ended: the platform marks it cancelled and publishes ``soorma.goal.cancel``
        on ``system-events``, which reaches only agents that subscribe to it (the others finish their work, and
        its results leave the goal cancelled). Raises :class:`~soorma.errors.ConflictError` when it already ended."""
        body = await self._request("POST", f"/v1/goals/{_id(goal_id)}/cancel", json={"reason": reason})
        return GoalStatus.model_validate(body)

    async def goal_events(self, goal_id: str) -> list[dict[str, Any]]:
        """Every recorded event of the goal's trace, in order (all pages)."""
        events: list[dict[str, Any]] = []
        cursor = None
        while True:
            page = await self._request("GET", f"/v1/goals/{_id(goal_id)}/events", params={"cursor": cursor})
            events += page["events"]
            cursor = page.get("next_cursor")
            if not cursor:
                return events

    async def follow_goal(
        self, goal_id: str, *, after: int = 0, stream_url: str | None = None, max_reconnects: int | None = None,
    ) -> AsyncIterator[GoalStreamEvent | GoalStreamEnd]:
        """Follow the goal live: ``async for item in client.follow_goal(goal_id)`` yields each recorded event
        (:class:`~soorma.clients.streams.GoalStreamEvent`, in order, once) as the tracker records it, then a
        :class:`~soorma.clients.streams.GoalStreamEnd` with the goal's status and result. Reconnects and resumes
        from the last event by itself (:func:`soorma.clients.streams.follow_goal`); ``after``: start after that
        ``seq``; ``stream_url``: the WebSocket URL (default ``SOORMA_STREAM_URL``, else this client's URL as
        ``ws(s)://…/v1/stream``). Raises :class:`~soorma.errors.PlatformError` 404 for a goal the caller cannot
        see, 400 for a bad cursor, 401/403 for a refused credential. Needs ``soorma[stream]``."""
        url = streams.stream_url(self.base_url, stream_url)
        async for item in streams.follow_goal(url, await self._auth_headers(), goal_id, after=after,
                                              max_reconnects=max_reconnects):
            yield item
    # -- human input ---------------------------------------------------------------------------------------------------
    async def input_requests(self, goal_id: str, *, status: str | None = None) -> list[dict[str, Any]]:
        """The goal's input requests, oldest first (``GET /v1/goals/{goal_id}/input``); ``status="pending"`` for
        those awaiting an answer. Raises :class:`~soorma.errors.PlatformError` (status 404) for a goal the caller
        cannot see."""
        body = await self._request("GET", f"/v1/goals/{_id(goal_id)}/input", params={"status": status})
        requests: list[dict[str, Any]] = json_object(body)["input_requests"]
        return requests

    async def answer_input(self, goal_id: str, request_id: str, answer: Any) -> dict[str, Any]:
        """Answer one input request (``POST /v1/goals/{goal_id}/input/{request_id}``); returns the answered request.
        The platform checks ``answer`` against the request's JSON Schema (:class:`~soorma.errors.PlatformError`
        with status 422, naming the error) and refuses a request that is no longer pending
        (:class:`~soorma.errors.ConflictError`, status 409)."""
        body = await self._request("POST", f"/v1/goals/{_id(goal_id)}/input/{_id(request_id)}",
                                   json={"answer": answer})
        return json_object(body)

    # -- sessions ------------------------------------------------------------------------------------------------------
    async def create_session(
        self, session_id: str | None = None, metadata: Mapping[str, Any] | None = None, *,
        multitask_strategy: str | None = None,
    ) -> dict[str, Any]:
        """Create a session (``session_id`` of your own or generated); returns it. ``multitask_strategy``: what a
        goal arriving while another of the session is active does (``reject | enqueue | interrupt | rollback``;
        default ``enqueue``)."""
        body: dict[str, Any] = {"session_id": session_id, "metadata": dict(metadata or {})}
        if multitask_strategy:
            body["multitask_strategy"] = multitask_strategy
        return json_object(await self._request("POST", "/v1/sessions", json=body))

    async def get_session(self, session_id: str) -> dict[str, Any] | None:
        session = await self._request("GET", f"/v1/sessions/{_id(session_id)}", not_found=None)
        return None if session is None else json_object(session)

    async def list_sessions(self, *, limit: int = 20, cursor: str | None = None) -> dict[str, Any]:
        return json_object(await self._request("GET", "/v1/sessions", params={"limit": limit, "cursor": cursor}))

    # -- API keys ------------------------------------------------------------------------------------------------------
    async def create_api_key(self, role: str, name: str = "", **fields: Any) -> dict[str, Any]:
        """Create an API key (``service_tenant_id``, ``service_user_id``, ``principal_id``, ``expires_in_seconds``
        optional); the answer's ``api_key`` is the only time the key is visible."""
        return json_object(await self._request("POST", "/v1/api-keys", json={"role": role, "name": name, **fields}))

    async def list_api_keys(self, *, include_revoked: bool = False) -> list[dict[str, Any]]:
        keys: list[dict[str, Any]] = []
        cursor = None
        while True:
            page = await self._request("GET", "/v1/api-keys",
                                       params={"include_revoked": str(include_revoked).lower(), "cursor": cursor})
            keys += page["keys"]
            cursor = page.get("next_cursor")
            if not cursor:
                return keys

    async def rotate_api_key(self, key_id: str) -> dict[str, Any]:
        """A new key with the same identity and role (its ``api_key`` shown once); the old one is revoked."""
        return json_object(await self._request("POST", f"/v1/api-keys/{_id(key_id)}/rotate"))

    async def revoke_api_key(self, key_id: str) -> dict[str, Any]:
        return json_object(await self._request("POST", f"/v1/api-keys/{_id(key_id)}/revoke"))
