"""Schedules client: scheduled goals through the gateway (``/v1/schedules``; docs/architecture.md "Timers and
schedules").

A schedule submits ``goal_type`` with ``data`` on every run of an EventBridge Scheduler expression (``cron(0 9 ? *
MON *)``, ``rate(5 minutes)``; https://docs.aws.amazon.com/scheduler/latest/UserGuide/schedule-types.html) in an
IANA time zone. Each run is a normal goal with its own id and ``schedule_id`` set (list them with
``GatewayClient``'s goal listing, ``GET /v1/goals?schedule_id=``).
"""

from __future__ import annotations

from typing import Any, Mapping

from ._http import HttpClient


class ScheduleClient(HttpClient):
    """``ScheduleClient(base_url, api_key=None, **kwargs)``: create, list, read, pause, resume and delete the caller's
    schedules. Every method returns the gateway's JSON answer (a schedule: ``{schedule_id, expression, timezone,
    goal_type, data, session_id, state, next_run_at, last_run_at, run_count, created_at}``) and raises
    :class:`soorma.errors.PlatformError` for an error answer (422: a bad expression or time zone; 404: no such
    schedule of the caller's)."""

    async def create(self, expression: str, goal_type: str, data: Mapping[str, Any] | None = None, *,
                     timezone: str = "UTC", session_id: str | None = None) -> dict[str, Any]:
        """``POST /v1/schedules``: a new enabled schedule."""
        body: dict[str, Any] = {"expression": expression, "goal_type": goal_type, "data": dict(data or {}),
                                "timezone": timezone}
        if session_id is not None:
            body["session_id"] = session_id
        return dict(await self._request("POST", "/v1/schedules", json=body))

    async def list(self) -> list[dict[str, Any]]:
        """``GET /v1/schedules``: the caller's schedules, newest first."""
        body = await self._request("GET", "/v1/schedules")
        return [dict(s) for s in (body or {}).get("schedules", [])]

    async def get(self, schedule_id: str) -> dict[str, Any]:
        """``GET /v1/schedules/{id}``: one schedule with its ``upcoming`` runs."""
        return dict(await self._request("GET", f"/v1/schedules/{schedule_id}"))

    async def pause(self, schedule_id: str) -> dict[str, Any]:
        """``POST /v1/schedules/{id}/pause``."""
        return dict(await self._request("POST", f"/v1/schedules/{schedule_id}/pause"))

    async def resume(self, schedule_id: str) -> dict[str, Any]:
        """``POST /v1/schedules/{id}/resume``."""
        return dict(await self._request("POST", f"/v1/schedules/{schedule_id}/resume"))

    async def delete(self, schedule_id: str) -> None:
        """``DELETE /v1/schedules/{id}`` (its past goals stay)."""
        await self._request("DELETE", f"/v1/schedules/{schedule_id}")


__all__ = ["ScheduleClient"]
