"""Wire models of registry and memory responses.

The services answer in camelCase (soorma-core's wire format) and accept camelCase or snake_case; these models read
either (``alias_generator=to_camel`` + ``populate_by_name``), keep unknown fields, and only map top-level names, so
user payloads inside (``data``, ``state``, ``metadata``, ``value``) are never renamed. They also allow dict-style
access (``agent["name"]``) for code that treated soorma-core's results as dicts.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class WireModel(BaseModel):
    """Base of response models: camelCase or snake_case in, attributes or ``[key]`` out."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")

    def __getitem__(self, key: str) -> Any:
        try:
            return getattr(self, key)
        except AttributeError:
            raise KeyError(key) from None

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key, default)

    def to_dict(self) -> dict[str, Any]:
        """snake_case dict (``None`` fields omitted)."""
        return self.model_dump(exclude_none=True)


class AgentDefinition(WireModel):
    """An agent as the registry stores it (``POST /v1/agents`` ``{"agent": ...}``, ``GET /v1/agents``)."""

    agent_id: str
    name: str
    description: str = ""
    version: str = "0.1.0"
    capabilities: list[Any] = Field(default_factory=list)
    consumed_events: list[Any] = Field(default_factory=list)
    produced_events: list[Any] = Field(default_factory=list)
    deployment: dict[str, Any] | None = None


#: soorma-core's discovery result type; the same shape here.
DiscoveredAgent = AgentDefinition


class TaskContextRecord(WireModel):
    """A saved task context (``/v1/memory/task-context``)."""

    task_id: str
    event_type: str = ""
    plan_id: str | None = None
    response_event: str | None = None
    response_topic: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)
    sub_tasks: list[str] = Field(default_factory=list)
    state: dict[str, Any] = Field(default_factory=dict)
    correlation_id: str | None = None
    session_id: str | None = None
    goal_id: str | None = None
    trace_id: str | None = None
    version: int | None = None


class KnowledgeItem(WireModel):
    """A semantic-memory entry; ``score`` (1 - cosine distance) is set on query results."""

    id: str
    content: str
    external_id: str | None = None
    is_public: bool = False
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: str | None = None
    updated_at: str | None = None
    score: float | None = None


class GoalStatus(WireModel):
    """``GET /v1/goals/{goal_id}``: ``status`` is ``queued | pending | running | input-required | completed | failed |
    cancelled``; ``input_requests`` the goal's input requests (``status`` ``pending`` for those awaiting an answer:
    ``POST /v1/goals/{goal_id}/input/{request_id}``)."""

    goal_id: str
    goal_type: str | None = None
    status: str
    data: dict[str, Any] | None = None
    result: Any = None
    error: Any = None
    created_at: str | None = None
    completed_at: str | None = None
    tasks: list[dict[str, Any]] = Field(default_factory=list)
    events: int | None = None
    input_requests: list[dict[str, Any]] = Field(default_factory=list)
