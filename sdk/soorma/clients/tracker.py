"""Tracker client: progress of plans and goals (``/v1/tracker/...`` and the gateway's goal view)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from ._http import snake_keys
from .gateway import GatewayClient


class TrackerClient(GatewayClient):
    """soorma-core's ``context.tracker`` read methods, plus the goal view of :class:`GatewayClient`.

    ``get_plan_progress`` / ``get_plan_tasks`` call soorma-core's tracker paths; they return ``None`` / ``[]`` when
    the route or plan is unknown (404).
    """

    async def get_plan_progress(
        self, plan_id: str, tenant_id: str | None = None, user_id: str | None = None
    ) -> dict[str, Any] | None:
        body = await self._request(
            "GET", f"/v1/tracker/plans/{quote(plan_id, safe='')}", tenant_id=tenant_id, user_id=user_id, not_found=None
        )
        return snake_keys(body) if body else None

    async def get_plan_tasks(
        self, plan_id: str, tenant_id: str | None = None, user_id: str | None = None
    ) -> list[dict[str, Any]]:
        body = await self._request(
            "GET",
            f"/v1/tracker/plans/{quote(plan_id, safe='')}/actions",
            tenant_id=tenant_id,
            user_id=user_id,
            not_found=[],
        )
        return [snake_keys(t) for t in body or []]
