"""Tracker client: progress of goals and plans (``/v1/tracker/...`` and the gateway's goal view), soorma-core's
``context.tracker`` (reference §1.9, §2.4) with its response models (``PlanProgress``, ``TaskExecution``,
``AgentMetrics``, ``PlanExecution``, ``DelegationGroup``; ``soorma_common.tracker`` re-exports them).

The tracker records every event that carries a ``goal_id``: requests start tasks, results finish them, and the
goal's answer completes the goal. A plan created from a goal (``PlanContext.create_from_goal``) has the goal's id as
its plan id, so a plan's progress is its goal's; sub-plans and session plans also come from the planners' plan
records (``MemoryClient.create_plan``), delegation groups from the worker's task context (``delegate_parallel``).
Every read sees only the caller's identity's rows.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from ..tracker_models import (
    AgentMetrics as AgentMetrics,
    DelegationGroup as DelegationGroup,
    EventTimeline as EventTimeline,
    EventTimelineEntry as EventTimelineEntry,
    PlanExecution as PlanExecution,
    PlanProgress as PlanProgress,
    TaskExecution as TaskExecution,
)
from ._http import snake_keys
from .gateway import GatewayClient


class TrackerClient(GatewayClient):
    """soorma-core's ``context.tracker`` read methods (``get_plan_progress``, ``get_plan_tasks``,
    ``get_plan_timeline``, ``query_agent_metrics``, ``get_sub_plans``, ``get_session_plans``,
    ``get_delegation_group``), plus the goal view of :class:`GatewayClient` (``get_goal``, ``wait_for_goal``).

    ``TrackerClient(base_url=None, api_key=None, auth_token=None, auth_token_provider=None, *, timeout=30,
    transport=None)``; with no base URL, ``SOORMA_TRACKER_URL`` or ``SOORMA_API_URL``. Here a plan is a goal (see
    the module docstring); a plan id that is not a goal's id is unknown (``None``, ``[]``). Like soorma-core's, it
    has no write methods: the tracker records events itself.
    """

    settings_base = "tracker_base"

    async def get_plan_progress(
        self, plan_id: str, tenant_id: str | None = None, user_id: str | None = None
    ) -> PlanProgress | None:
        """Progress of the plan (= goal) ``plan_id`` (``GET /v1/tracker/plans/{plan_id}``), or ``None`` when the
        caller has no such goal."""
        body = await self._request(
            "GET", f"/v1/tracker/plans/{quote(plan_id, safe='')}", tenant_id=tenant_id, user_id=user_id,
            not_found=None,
        )
        return PlanProgress.model_validate(body) if body else None

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

    async def get_event_timeline(self, plan_id: str) -> EventTimeline | None:
        """The plan's (= goal's) events as soorma-core's :class:`EventTimeline`, ``None`` when none are recorded
        for the caller."""
        events = await self.get_goal_events(plan_id)
        if not events:
            return None
        return EventTimeline(plan_id=plan_id, events=[EventTimelineEntry.from_recorded(e) for e in events])

    async def get_plan_actions(self, plan_id: str) -> list[TaskExecution]:
        """soorma-core's plan actions (``GET /v1/tracker/plans/{plan_id}/actions``): the plan's tasks in start
        order; ``[]`` for a plan the caller cannot see."""
        body = await self._request("GET", f"/v1/tracker/plans/{quote(plan_id, safe='')}/actions", not_found=None)
        return [TaskExecution.model_validate(t) for t in body or []]

    async def query_agent_metrics(self, agent_id: str, period: str = "7d") -> AgentMetrics:
        """The agent's task counts over ``period`` (``<n>h`` or ``<n>d``, at most 90 days;
        ``GET /v1/tracker/agents/{agent_id}/metrics``). Raises :class:`~soorma.errors.PlatformError` 400 for a bad
        period."""
        body = await self._request("GET", f"/v1/tracker/agents/{quote(agent_id, safe='')}/metrics",
                                   params={"period": period})
        return AgentMetrics.model_validate(body)

    async def get_sub_plans(self, plan_id: str) -> list[PlanExecution]:
        """The plans whose parent is ``plan_id`` (``GET /v1/tracker/plans/{plan_id}/sub-plans``), oldest first."""
        body = await self._request("GET", f"/v1/tracker/plans/{quote(plan_id, safe='')}/sub-plans")
        return [PlanExecution.model_validate(p) for p in body or []]

    async def get_session_plans(self, session_id: str) -> list[PlanExecution]:
        """The plans and goals of the session (``GET /v1/tracker/sessions/{session_id}/plans``), oldest first."""
        body = await self._request("GET", f"/v1/tracker/sessions/{quote(session_id, safe='')}/plans")
        return [PlanExecution.model_validate(p) for p in body or []]

    async def get_delegation_group(self, group_id: str) -> DelegationGroup | None:
        """The sub-tasks of one ``delegate_parallel`` (``GET /v1/tracker/delegation-groups/{group_id}``), or
        ``None`` when the caller has no such group."""
        body = await self._request("GET", f"/v1/tracker/delegation-groups/{quote(group_id, safe='')}",
                                   not_found=None)
        return DelegationGroup.model_validate(body) if body else None

