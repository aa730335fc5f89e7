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

from ..models import WireModel
from ._http import snake_keys
from .gateway import GatewayClient


class PlanProgress(WireModel):
    """soorma-core's ``PlanProgress`` (``soorma_common.tracker``; ``GET /v1/tracker/plans/{plan_id}``):
    ``plan_id``, ``status`` (the goal's: ``pending``, ``running``, ``input-required``, ``completed``, ``failed``,
    ``cancelled``), ``started_at``/``completed_at`` (ISO 8601), ``task_count``, ``completed_tasks``,
    ``failed_tasks``, ``running_tasks``, ``current_state`` (soorma-core fills it with the error; here too), plus
    this platform's ``events`` (events recorded), ``tasks`` (as the goal view lists them), ``result``/``error``."""

    plan_id: str
    status: str
    started_at: str | None = None
    completed_at: str | None = None
    task_count: int = 0
    completed_tasks: int = 0
    failed_tasks: int = 0
    running_tasks: int = 0
    current_state: str | None = None
    events: int | None = None
    tasks: list[dict[str, Any]] = []
    result: Any = None
    error: Any = None


class TaskExecution(WireModel):
    """soorma-core's ``TaskExecution`` (``GET /v1/tracker/plans/{plan_id}/actions``): one request/response pair of
    the plan: ``task_id`` (the request's correlation id), ``event_type`` (the request's), ``state`` (``running``,
    ``completed``, ``failed``), ``started_at``/``completed_at`` (ISO 8601), ``duration_seconds``, ``progress``
    (0..1 or the agent's number, the latest ``task.progress`` report), ``agent`` (who answered)."""

    task_id: str
    event_type: str | None = None
    state: str
    started_at: str | None = None
    completed_at: str | None = None
    duration_seconds: float | None = None
    progress: float | None = None
    agent: str | None = None


class AgentMetrics(WireModel):
    """soorma-core's ``AgentMetrics`` (``GET /v1/tracker/agents/{agent_id}/metrics?period=7d``): the tasks the
    agent answered (``goal_tasks.agent``, the result's ``source``) in the period, of the caller's identity:
    ``total_tasks``, ``completed_tasks``, ``failed_tasks``, ``success_rate`` (0..1, ``None`` without tasks),
    ``avg_duration_seconds``."""

    agent_id: str
    period: str
    total_tasks: int = 0
    completed_tasks: int = 0
    failed_tasks: int = 0
    success_rate: float | None = None
    avg_duration_seconds: float | None = None


class PlanExecution(WireModel):
    """soorma-core's ``PlanExecution`` (sub-plans, session plans): ``plan_id``, ``parent_plan_id``, ``session_id``,
    ``goal_event`` (the goal's type), ``status``, ``created_at``/``updated_at`` (ISO 8601); from the planners'
    plan records (memory) and the goals (gateway)."""

    plan_id: str
    parent_plan_id: str | None = None
    session_id: str | None = None
    goal_event: str | None = None
    status: str
    created_at: str | None = None
    updated_at: str | None = None


class DelegationGroup(WireModel):
    """soorma-core's ``DelegationGroup`` (``GET /v1/tracker/delegation-groups/{group_id}``): the sub-tasks of one
    ``delegate_parallel`` call: ``group_id``, ``parent_task_id``, ``plan_id``, ``tasks`` (:class:`TaskExecution`,
    ``state`` ``pending`` until the sub-request was recorded), ``total``, ``completed``, ``failed``, ``status``
    (``completed`` when every sub-task finished, ``failed`` when one failed and none runs, else ``running``)."""

    group_id: str
    parent_task_id: str
    plan_id: str | None = None
    tasks: list[TaskExecution] = []
    total: int = 0
    completed: int = 0
    failed: int = 0
    status: str


class EventTimelineEntry(WireModel):
    """soorma-core's ``EventTimelineEntry``: one recorded event of a plan's timeline (``GET
    /v1/tracker/goals/{goal_id}/events``): ``event_id``, ``event_type`` (the envelope's ``type``), ``topic``,
    ``timestamp`` (ISO 8601, the envelope's ``time``), ``source``, ``correlation_id``, ``parent_event_id``, ``data``."""

    event_id: str
    event_type: str
    topic: str | None = None
    timestamp: str | None = None
    source: str | None = None
    correlation_id: str | None = None
    parent_event_id: str | None = None
    data: Any = None

    @classmethod
    def from_recorded(cls, event: dict[str, Any]) -> "EventTimelineEntry":
        """Build one from a recorded event as :meth:`TrackerClient.get_goal_events` returns it (snake_case keys
        ``event_id``, ``type``, ``topic``, ``time``, ...)."""
        return cls(event_id=str(event.get("event_id")), event_type=str(event.get("type")), topic=event.get("topic"),
                   timestamp=event.get("time"), source=event.get("source"),
                   correlation_id=event.get("correlation_id"), parent_event_id=event.get("parent_event_id"),
                   data=event.get("data"))


class EventTimeline(WireModel):
    """soorma-core's ``EventTimeline``: ``plan_id`` and its ``events`` (:class:`EventTimelineEntry`) in time order
    (:meth:`TrackerClient.get_event_timeline`)."""

    plan_id: str
    events: list[EventTimelineEntry] = []


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

