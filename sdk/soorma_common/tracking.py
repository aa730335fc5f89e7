"""soorma-core's ``soorma_common.tracking``: task states and progress payloads.

soorma-core defines these DTOs but publishes none of them. Here progress is real: ``TaskContext.report_progress``
publishes a ``task.progress`` event on ``task-events`` that the tracker records with the goal
(``TrackerClient.get_goal_events``); :class:`TaskProgressEvent` reads its data (``task_id``, ``progress``,
``message``, and ``status``, read as ``state``), and :class:`TaskState` names the states the tracker reports a goal's
tasks in (``running``, ``completed``, ``failed``, ``cancelled``) plus soorma-core's others.
"""

from __future__ import annotations

from enum import Enum

from pydantic import AliasChoices, BaseModel, ConfigDict, Field


class TaskState(str, Enum):
    """A task's state (soorma-core's values)."""

    PENDING = "pending"
    RUNNING = "running"
    DELEGATED = "delegated"
    WAITING = "waiting"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class TaskProgressEvent(BaseModel):
    """The data of a progress event. ``progress``: soorma-core's convention is a fraction in [0, 1]; not enforced,
    as ``report_progress`` publishes what it is given. ``state`` is also read from ``status`` (this platform's key)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    task_id: str
    plan_id: str | None = None
    state: TaskState = Field(TaskState.RUNNING, validation_alias=AliasChoices("state", "status"))
    progress: float | None = None
    message: str | None = None


class TaskStateChanged(BaseModel):
    """The data of a task's state change (soorma-core's DTO; nothing on this platform publishes it)."""

    model_config = ConfigDict(extra="allow")

    task_id: str
    plan_id: str | None = None
    previous_state: TaskState
    new_state: TaskState
    reason: str | None = None


__all__ = ["TaskProgressEvent", "TaskState", "TaskStateChanged"]
