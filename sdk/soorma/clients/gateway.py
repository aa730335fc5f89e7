"""Gateway client: submit goals and follow them (``POST /v1/goals``, ``GET /v1/goals/{goal_id}``)."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Mapping
from urllib.parse import quote

from ..models import GoalStatus
from ._http import HttpClient, snake_keys

FINAL_STATUSES = ("completed", "failed")


class GatewayClient(HttpClient):
    """``GatewayClient(base_url, api_key=None, *, timeout=30, transport=None, auth_token_provider=None)``.

    The gateway turns a goal into an action request (``type=goal_type``, ``correlation_id=goal_id``,
    ``response_event="soorma.goal.result"``); the tracker completes it when the response arrives.
    """

    async def submit_goal(
        self, goal_type: str, data: Mapping[str, Any] | None = None, session_id: str | None = None
    ) -> dict[str, Any]:
        """Start a goal; returns ``{"goal_id", "status": "running", "goal_type"}``."""
        body: dict[str, Any] = {"goal_type": goal_type, "data": dict(data or {})}
        if session_id:
            body["session_id"] = session_id
        return snake_keys(await self._request("POST", "/v1/goals", json=body) or {})

    async def get_goal(self, goal_id: str) -> GoalStatus | None:
        """The goal's status, result and tasks; ``None`` if unknown."""
        body = await self._request("GET", f"/v1/goals/{quote(goal_id, safe='')}", not_found=None)
        return GoalStatus.model_validate(body) if body else None

    async def wait_for_goal(self, goal_id: str, timeout: float = 60.0, interval: float = 0.25) -> GoalStatus:
        """Poll until the goal is ``completed`` or ``failed``. Raises ``TimeoutError`` after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            goal = await self.get_goal(goal_id)
            if goal is not None and goal.status in FINAL_STATUSES:
                return goal
            if time.monotonic() >= deadline:
                raise TimeoutError(f"goal {goal_id} still {goal.status if goal else 'unknown'} after {timeout}s")
            await asyncio.sleep(interval)
