"""Tracker client: progress of goals and plans (the gateway's goal view and ``/v1/tracker/...``).

The tracker records every event that carries a ``goal_id``: requests start tasks, results finish them, and the
goal's answer completes the goal. A plan created from a goal (``PlanContext.create_from_goal``) has the goal's id as
its plan id, so plan progress is read from the goal view.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from ..models import WireModel
from ._http import snake_keys
from .gateway import GatewayClient


class PlanProgress(WireModel):
    """soorma-core's ``PlanProgress``: ``plan_id``, ``status``, ``task_count``, ``completed_tasks``,
    ``failed_tasks``, ``running_tasks``, ``events`` (events recorded), ``tasks`` (as the goal view lists them),
    ``result``/``error`` once finished."""

    plan_id: str
    status: str
    task_count: int = 0
    completed_tasks: int = 0
    failed_tasks: int = 0
    running_tasks: int = 0
    events: int | None = None
    tasks: list[dict[str, Any]] = []
    result: Any = None
    error: Any = None


class TrackerClient(GatewayClient):
    """Progress reads shaped like soorma-core's ``context.tracker``, plus the goal view of :class:`GatewayClient`
    (``get_goal``, ``wait_for_goal``).

    ``TrackerClient(base_url=None, api_key=None, auth_token=None, auth_token_provider=None, *, timeout=30,
    transport=None)``; with no base URL, ``SOORMA_TRACKER_URL`` or ``SOORMA_API_URL``. Here a plan is a goal (see
    the module docstring): :meth:`get_plan_progress` and :meth:`get_plan_tasks` read the goal view, and
    :meth:`get_plan_timeline` is :meth:`get_goal_events`; a plan id that is not a goal's id is unknown (``None``,
    ``[]``). The shapes follow this platform, not soorma-core's ``PlanProgress`` field for field (no
    ``started_at``/``current_state``; ``running_tasks``, ``tasks``, ``result`` and ``error`` besides). Like
    soorma-core's, it has no write methods: the tracker records events itself.
    """

    settings_base = "tracker_base"

    async def get_plan_progress(
        self, plan_id: str, tenant_id: str | None = None, user_id: str | None = None
    ) -> PlanProgress | None:
        """Progress of the plan (= goal) ``plan_id``, or ``None`` when the tracker knows no such goal."""
        body = await self._request(
            "GET", f"/v1/goals/{quote(plan_id, safe='')}", tenant_id=tenant_id, user_id=user_id, not_found=None
        ) if _looks_like_uuid(plan_id) else None
        if not body:
            return None
        tasks = [snake_keys(t) for t in body.get("tasks") or []]
        # the goal's own request is recorded as a task too (task id = goal id); count the work it caused
        work = [t for t in tasks if t.get("task_id") != plan_id]
        return PlanProgress(
            plan_id=plan_id,
            status=body.get("status", "unknown"),
            task_count=len(work),
            completed_tasks=sum(1 for t in work if t.get("status") == "completed"),
            failed_tasks=sum(1 for t in work if t.get("status") == "failed"),
            running_tasks=sum(1 for t in work if t.get("status") == "running"),
            events=body.get("events"),
            tasks=work,
            result=body.get("result"),
            error=body.get("error"),
        )

    async def get_plan_tasks(
        self, plan_id: str, tenant_id: str | None = None, user_id: str | None = None
    ) -> list[dict[str, Any]]:
        """The tasks of the plan (= goal) ``plan_id`` (``[]`` if unknown)."""
        progress = await self.get_plan_progress(plan_id, tenant_id=tenant_id, user_id=user_id)
        return progress.tasks if progress is not None else []

    async def get_goal_events(
        self, goal_id: str, tenant_id: str | None = None, user_id: str | None = None
    ) -> list[dict[str, Any]]:
        """Every event recorded for the goal, in time order (``GET /v1/tracker/goals/{goal_id}/events``): dicts
        ``{event_id, type, topic, correlation_id, parent_event_id, source, time, data}``; ``[]`` if unknown.
        Progress reports (``TaskContext.report_progress``) appear here as ``task.progress`` events."""
        body = await self._request(
            "GET", f"/v1/tracker/goals/{quote(goal_id, safe='')}/events", tenant_id=tenant_id, user_id=user_id,
            not_found=None,
        )
        return [snake_keys(e) for e in (body or {}).get("events", [])]

    get_plan_timeline = get_goal_events


def _looks_like_uuid(value: str) -> bool:
    import uuid

    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True
