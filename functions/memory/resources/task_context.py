"""Task context: a worker's state across delegations (``memory.task_context``, with ``memory.task_subtasks`` to find
a task by one of its sub-tasks; 0004_memory.sql).

``POST /task-context`` (upsert), ``GET|PUT|DELETE /task-context/{task_id}``,
``GET /task-context/by-subtask/{sub_task_id}``. Every write bumps ``version``; a ``version`` in the body is the one
the caller expects to overwrite (409 when the stored row has another).
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from fastapi import APIRouter, Body as BodyParam, status
from fastapi.responses import Response
from pydantic import Field

from soorma.functions.memory.common import CALLER, PREFIX, RESOURCES, Resources, id_path
from soorma.functions.memory.owned import Lookup, OwnedTable
from soorma.functions.memory.wire import (
    MAX_SUB_TASKS,
    Body,
    Id,
    JsonObject,
    JsonObjectOrEmpty,
    OwnedReply,
    PartialUpdate,
    Timestamp,
    id_list,
    null_as,
)
from soorma.identity import Identity

# -- wire models -----------------------------------------------------------------------------------------------------


SubTasks = Annotated[list[str], id_list(MAX_SUB_TASKS)]
DEFAULT_RESPONSE_TOPIC = "action-results"


class TaskContextCreate(Body):
    task_id: Id
    plan_id: Id | None = None
    event_type: Id
    response_event: Id | None = None
    response_topic: Annotated[Id, null_as(lambda: DEFAULT_RESPONSE_TOPIC)] = DEFAULT_RESPONSE_TOPIC
    data: JsonObjectOrEmpty = Field(default_factory=dict)
    sub_tasks: Annotated[SubTasks, null_as(list)] = Field(default_factory=list)
    state: JsonObjectOrEmpty = Field(default_factory=dict)
    correlation_id: Id | None = None
    session_id: Id | None = None
    goal_id: Id | None = None
    trace_id: Id | None = None
    # Optimistic concurrency: when given, an existing row is only overwritten if it still has this version.
    version: int | None = Field(default=None, ge=0)


class TaskContextUpdate(PartialUpdate):
    """Fields left out are unchanged. ``version``: the version the caller read; 409 when the row has moved on."""

    NOT_NULLABLE: ClassVar[frozenset[str]] = frozenset({"event_type", "response_topic", "data", "sub_tasks", "state"})

    plan_id: Id | None = None
    event_type: Id | None = None
    response_event: Id | None = None
    response_topic: Id | None = None
    data: JsonObject | None = None
    sub_tasks: SubTasks | None = None
    state: JsonObject | None = None
    correlation_id: Id | None = None
    session_id: Id | None = None
    goal_id: Id | None = None
    trace_id: Id | None = None


class TaskContext(OwnedReply):
    task_id: str
    plan_id: str | None
    event_type: str
    response_event: str | None
    response_topic: str
    data: dict[str, Any]
    sub_tasks: list[str]
    state: dict[str, Any]
    correlation_id: str | None
    session_id: str | None
    goal_id: str | None
    trace_id: str | None
    version: int
    created_at: Timestamp
    updated_at: Timestamp


# -- SQL -------------------------------------------------------------------------------------------------------------

#: The task that lists a sub-task (soorma-core scanned every task of the user in Python).
BY_SUBTASK = Lookup("task_subtasks", "sub_task_id", list_column="sub_tasks", param="sub", what="sub-task")
TABLE = OwnedTable(
    "task_context", "task context", key=("task_id",), json_columns=frozenset({"data", "sub_tasks", "state"}),
    versioned=True, lookup=BY_SUBTASK,
)


# -- routes ----------------------------------------------------------------------------------------------------------

router = APIRouter(prefix=PREFIX)


@router.post("/task-context")
def store_task_context(body: TaskContextCreate, caller: Identity = CALLER, res: Resources = RESOURCES) -> TaskContext:
    return TaskContext.model_validate(TABLE.store(res.db, caller, body.model_dump(exclude={"version"}), body.version))


@router.get("/task-context/by-subtask/{sub_task_id}")
def get_task_by_subtask(
    sub_task_id: str = id_path("sub-task id"), caller: Identity = CALLER, res: Resources = RESOURCES
) -> TaskContext:
    return TaskContext.model_validate(TABLE.fetch_listed(res.db, caller, sub_task_id))


@router.get("/task-context/{task_id}")
def get_task_context(
    task_id: str = id_path("task id"), caller: Identity = CALLER, res: Resources = RESOURCES
) -> TaskContext:
    return TaskContext.model_validate(TABLE.fetch(res.db, caller, task_id=task_id))


@router.put("/task-context/{task_id}")
def update_task_context(
    body: TaskContextUpdate = BodyParam(...),
    task_id: str = id_path("task id"),
    caller: Identity = CALLER,
    res: Resources = RESOURCES,
) -> TaskContext:
    return TaskContext.model_validate(TABLE.change(res.db, caller, {"task_id": task_id}, body.changes(), body.version))


@router.delete("/task-context/{task_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
def delete_task_context(task_id: str = id_path("task id"), caller: Identity = CALLER, res: Resources = RESOURCES) -> None:
    TABLE.remove(res.db, caller, task_id=task_id)  # its memory.task_subtasks rows go with it (on delete cascade)
