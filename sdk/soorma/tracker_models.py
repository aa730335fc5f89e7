"""The tracker's read shapes, soorma-core's ``soorma_common.tracker`` models (reference §2.4): ``PlanProgress``,
``TaskExecution``, ``AgentMetrics``, ``PlanExecution``, ``DelegationGroup``, ``EventTimelineEntry``,
``EventTimeline``. A wire contract: the tracker function answers with them and :class:`soorma.clients.tracker.TrackerClient`
reads them, so the function need not import the clients (and their optional dependencies) to name its answers.
"""

from __future__ import annotations

from typing import Any

from .models import WireModel


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
