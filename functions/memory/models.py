"""Request bodies of the memory routes (camelCase or snake_case accepted) and their limits.

Responses are built as plain dicts with camelCase keys by :mod:`soorma.functions.memory.store` (soorma-core's wire
format, docs/architecture.md "HTTP routes").
"""

from __future__ import annotations

import math
import re
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

MAX_CONTENT_BYTES = 32 * 1024  # one passage (UTF-8); a longer text should be chunked by the caller
MAX_BATCH_ITEMS = 256
MAX_ID_CHARS = 255  # task/plan/sub-task ids, working-memory keys, external ids
MAX_SUB_TASKS = 1000
MAX_JSON_DEPTH = 64
MAX_CORRELATION_IDS = 1000
MAX_EMBEDDING_DIMENSIONS = 16000  # pgvector's limit for a stored vector
PLAN_STATUSES = ("pending", "running", "completed", "failed", "paused", "cancelled")
_TYPE_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


def check_text(value: str, what: str) -> str:
    """PostgreSQL text cannot hold NUL; say so instead of failing in the driver."""
    if "\x00" in value:
        raise ValueError(f"{what} must not contain NUL characters")
    return value


def check_json(value: Any, what: str, depth: int = 0) -> Any:
    """Reject what ``jsonb`` cannot store (NUL in strings or keys, NaN/Infinity) and absurd nesting."""
    if depth > MAX_JSON_DEPTH:
        raise ValueError(f"{what} is nested deeper than {MAX_JSON_DEPTH} levels")
    if isinstance(value, str):
        check_text(value, what)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{what} must not contain NaN or Infinity")
    elif isinstance(value, dict):
        for key, item in value.items():
            check_text(str(key), what)
            check_json(item, what, depth + 1)
    elif isinstance(value, (list, tuple)):
        for item in value:
            check_json(item, what, depth + 1)
    return value


def check_id(value: Optional[str], what: str) -> Optional[str]:
    if value is None:
        return value
    if not value or len(value) > MAX_ID_CHARS:
        raise ValueError(f"{what} must be 1 to {MAX_ID_CHARS} characters")
    return check_text(value, what)


def check_embedding(value: Optional[list[float]]) -> Optional[list[float]]:
    """A caller-supplied vector: finite numbers, not all zero (cosine distance is undefined for the zero vector). Its
    width is checked against ``SOORMA_EMBEDDING_DIMENSIONS`` by the route, which knows the setting."""
    if value is None:
        return value
    if not value or len(value) > MAX_EMBEDDING_DIMENSIONS:
        raise ValueError(f"embedding must have 1 to {MAX_EMBEDDING_DIMENSIONS} numbers")
    if not all(math.isfinite(v) for v in value):
        raise ValueError("embedding must not contain NaN or Infinity")
    if not any(value):
        raise ValueError("embedding must not be the zero vector")
    return value


def check_content(value: str, what: str = "content") -> str:
    if not value.strip():
        raise ValueError(f"{what} must not be empty")
    if len(value.encode("utf-8")) > MAX_CONTENT_BYTES:
        raise ValueError(f"{what} is longer than {MAX_CONTENT_BYTES} bytes (UTF-8); split it into passages")
    return check_text(value, what)


class Body(BaseModel):
    """camelCase or snake_case input; unknown fields are ignored (soorma-core clients send a few extra)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


# -- semantic memory -------------------------------------------------------------------------------------------------


class SemanticCreate(Body):
    content: str
    external_id: Optional[str] = None
    is_public: bool = False
    metadata: dict[str, Any] = Field(default_factory=dict)
    tags: Optional[list[str]] = None  # soorma-core accepts these two; kept inside metadata
    source: Optional[str] = None
    # A vector computed by the caller (same model and width as this deployment's); else the provider computes it.
    embedding: Optional[list[float]] = None

    @field_validator("content")
    @classmethod
    def _content(cls, value: str) -> str:
        return check_content(value)

    @field_validator("embedding")
    @classmethod
    def _embedding(cls, value: Optional[list[float]]) -> Optional[list[float]]:
        return check_embedding(value)

    @field_validator("external_id")
    @classmethod
    def _external_id(cls, value: Optional[str]) -> Optional[str]:
        return check_id(value, "external_id")

    @field_validator("metadata")
    @classmethod
    def _metadata(cls, value: dict[str, Any]) -> dict[str, Any]:
        return check_json(value, "metadata")

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: Optional[list[str]]) -> Optional[list[str]]:
        return check_json(value, "tags")

    @field_validator("source")
    @classmethod
    def _source(cls, value: Optional[str]) -> Optional[str]:
        return None if value is None else check_text(value, "source")

    def full_metadata(self) -> dict[str, Any]:
        metadata = dict(self.metadata)
        if self.tags is not None:
            metadata.setdefault("tags", self.tags)
        if self.source is not None:
            metadata.setdefault("source", self.source)
        return metadata


class SemanticBatch(Body):
    items: list[SemanticCreate] = Field(min_length=1, max_length=MAX_BATCH_ITEMS)


# -- working memory --------------------------------------------------------------------------------------------------


class WorkingIncrement(Body):
    delta: float = Field(..., allow_inf_nan=False)


class WorkingAppend(Body):
    items: list[Any] = Field(..., max_length=1000)

    @field_validator("items")
    @classmethod
    def _items(cls, value: list[Any]) -> list[Any]:
        return check_json(value, "items")


class WorkingMerge(Body):
    updates: dict[str, Any]

    @field_validator("updates")
    @classmethod
    def _updates(cls, value: dict[str, Any]) -> dict[str, Any]:
        return check_json(value, "updates")


class WorkingSet(Body):
    value: Any = Field(...)

    @field_validator("value")
    @classmethod
    def _value(cls, value: Any) -> Any:
        return check_json(value, "value")


# -- task context ----------------------------------------------------------------------------------------------------


def _check_sub_tasks(value: Optional[list[str]]) -> Optional[list[str]]:
    if value is None:
        return value
    if len(value) > MAX_SUB_TASKS:
        raise ValueError(f"at most {MAX_SUB_TASKS} sub_tasks")
    for item in value:
        check_id(item, "sub_tasks item")
    return list(dict.fromkeys(value))  # keep order, drop repeats


class TaskContextCreate(Body):
    task_id: str
    plan_id: Optional[str] = None
    event_type: str
    response_event: Optional[str] = None
    response_topic: str = "action-results"
    data: dict[str, Any] = Field(default_factory=dict)
    sub_tasks: list[str] = Field(default_factory=list)
    state: dict[str, Any] = Field(default_factory=dict)
    correlation_id: Optional[str] = None
    session_id: Optional[str] = None
    goal_id: Optional[str] = None
    trace_id: Optional[str] = None
    # Optimistic concurrency: when given, an existing row is only overwritten if it still has this version.
    version: Optional[int] = Field(default=None, ge=0)

    @field_validator("response_topic", "data", "sub_tasks", "state", mode="before")
    @classmethod
    def _null_is_default(cls, value: Any, info) -> Any:
        """An explicit null means the default (clients that serialise every field send them)."""
        if value is None:
            return {"response_topic": "action-results", "sub_tasks": []}.get(info.field_name, {})
        return value

    @field_validator("task_id", "event_type", "response_topic")
    @classmethod
    def _required_id(cls, value: str, info) -> str:
        return check_id(value, info.field_name)

    @field_validator("plan_id", "response_event", "correlation_id", "session_id", "goal_id", "trace_id")
    @classmethod
    def _optional_id(cls, value: Optional[str], info) -> Optional[str]:
        return check_id(value, info.field_name)

    @field_validator("data", "state")
    @classmethod
    def _json(cls, value: dict[str, Any], info) -> dict[str, Any]:
        return check_json(value, info.field_name)

    @field_validator("sub_tasks")
    @classmethod
    def _sub_tasks(cls, value: list[str]) -> list[str]:
        return _check_sub_tasks(value)


class TaskContextUpdate(Body):
    """Fields left out are unchanged. ``version``: the version the caller read; 409 when the row has moved on."""

    plan_id: Optional[str] = None
    event_type: Optional[str] = None
    response_event: Optional[str] = None
    response_topic: Optional[str] = None
    data: Optional[dict[str, Any]] = None
    sub_tasks: Optional[list[str]] = None
    state: Optional[dict[str, Any]] = None
    correlation_id: Optional[str] = None
    session_id: Optional[str] = None
    goal_id: Optional[str] = None
    trace_id: Optional[str] = None
    version: Optional[int] = Field(default=None, ge=0)

    @field_validator(
        "plan_id", "event_type", "response_event", "response_topic", "correlation_id", "session_id", "goal_id",
        "trace_id",
    )
    @classmethod
    def _optional_id(cls, value: Optional[str], info) -> Optional[str]:
        return check_id(value, info.field_name)

    @field_validator("data", "state")
    @classmethod
    def _json(cls, value: Optional[dict[str, Any]], info) -> Optional[dict[str, Any]]:
        return check_json(value, info.field_name)

    @field_validator("sub_tasks")
    @classmethod
    def _sub_tasks(cls, value: Optional[list[str]]) -> Optional[list[str]]:
        return _check_sub_tasks(value)

    def changes(self) -> dict[str, Any]:
        """The columns to set: fields the caller sent, except ``version``; ``None`` clears only nullable ones."""
        not_nullable = {"event_type", "response_topic", "data", "sub_tasks", "state"}
        out: dict[str, Any] = {}
        for name in self.model_fields_set:
            if name == "version":
                continue
            value = getattr(self, name)
            if value is None and name in not_nullable:
                continue
            out[name] = value
        return out


# -- episodic memory -------------------------------------------------------------------------------------------------


class EpisodicCreate(Body):
    agent_id: str
    role: Literal["user", "assistant", "system", "tool"]
    content: str
    metadata: dict[str, Any] = Field(default_factory=dict)
    embedding: Optional[list[float]] = None

    @field_validator("agent_id")
    @classmethod
    def _agent(cls, value: str) -> str:
        return check_id(value, "agent_id")

    @field_validator("content")
    @classmethod
    def _content(cls, value: str) -> str:
        return check_content(value)

    @field_validator("metadata")
    @classmethod
    def _metadata(cls, value: dict[str, Any]) -> dict[str, Any]:
        return check_json(value, "metadata")

    @field_validator("embedding")
    @classmethod
    def _embedding(cls, value: Optional[list[float]]) -> Optional[list[float]]:
        return check_embedding(value)


# -- procedural memory -----------------------------------------------------------------------------------------------


class ProceduralCreate(Body):
    """A skill, prompt or rule of an agent. ``trigger_condition`` describes when it applies and is what searches
    match (``content`` when there is none); upsert by ``external_id``, else by (type, trigger, content)."""

    agent_id: str
    content: str
    trigger_condition: Optional[str] = None
    procedure_type: str = "system_prompt"
    external_id: Optional[str] = None
    is_public: bool = False
    metadata: dict[str, Any] = Field(default_factory=dict)
    embedding: Optional[list[float]] = None

    @field_validator("agent_id")
    @classmethod
    def _agent(cls, value: str) -> str:
        return check_id(value, "agent_id")

    @field_validator("content")
    @classmethod
    def _content(cls, value: str) -> str:
        return check_content(value)

    @field_validator("trigger_condition")
    @classmethod
    def _trigger(cls, value: Optional[str]) -> Optional[str]:
        if value is None or not value.strip():
            return None
        return check_content(value, "trigger_condition")

    @field_validator("procedure_type")
    @classmethod
    def _type(cls, value: str) -> str:
        if not _TYPE_NAME.match(value):
            raise ValueError("procedure_type must be 1 to 64 letters, digits or _.:- (e.g. system_prompt)")
        return value

    @field_validator("external_id")
    @classmethod
    def _external_id(cls, value: Optional[str]) -> Optional[str]:
        return check_id(value, "external_id")

    @field_validator("metadata")
    @classmethod
    def _metadata(cls, value: dict[str, Any]) -> dict[str, Any]:
        return check_json(value, "metadata")

    @field_validator("embedding")
    @classmethod
    def _embedding(cls, value: Optional[list[float]]) -> Optional[list[float]]:
        return check_embedding(value)

    @property
    def search_text(self) -> str:
        return self.trigger_condition or self.content


# -- plan context ----------------------------------------------------------------------------------------------------


def _check_ids(value: Optional[list[str]], what: str) -> Optional[list[str]]:
    if value is None:
        return value
    if len(value) > MAX_CORRELATION_IDS:
        raise ValueError(f"at most {MAX_CORRELATION_IDS} {what}")
    for item in value:
        check_id(item, f"{what} item")
    return list(dict.fromkeys(value))


class PlanContextCreate(Body):
    plan_id: str
    session_id: Optional[str] = None
    goal_event: str
    goal_data: dict[str, Any] = Field(default_factory=dict)
    response_event: Optional[str] = None
    state: dict[str, Any] = Field(default_factory=dict)
    current_state: Optional[str] = None
    correlation_ids: list[str] = Field(default_factory=list)
    # Optimistic concurrency: when given, an existing row is only overwritten if it still has this version.
    version: Optional[int] = Field(default=None, ge=0)

    @field_validator("goal_data", "state", "correlation_ids", mode="before")
    @classmethod
    def _null_is_default(cls, value: Any, info) -> Any:
        if value is None:
            return [] if info.field_name == "correlation_ids" else {}
        return value

    @field_validator("plan_id", "goal_event")
    @classmethod
    def _required_id(cls, value: str, info) -> str:
        return check_id(value, info.field_name)

    @field_validator("session_id", "response_event", "current_state")
    @classmethod
    def _optional_id(cls, value: Optional[str], info) -> Optional[str]:
        return check_id(value, info.field_name)

    @field_validator("goal_data", "state")
    @classmethod
    def _json(cls, value: dict[str, Any], info) -> dict[str, Any]:
        return check_json(value, info.field_name)

    @field_validator("correlation_ids")
    @classmethod
    def _correlations(cls, value: list[str]) -> list[str]:
        return _check_ids(value, "correlation_ids")


class PlanContextUpdate(Body):
    """Fields left out are unchanged; ``version``: the version the caller read (409 when the row has moved on)."""

    session_id: Optional[str] = None
    goal_data: Optional[dict[str, Any]] = None
    response_event: Optional[str] = None
    state: Optional[dict[str, Any]] = None
    current_state: Optional[str] = None
    correlation_ids: Optional[list[str]] = None
    version: Optional[int] = Field(default=None, ge=0)

    @field_validator("session_id", "response_event", "current_state")
    @classmethod
    def _optional_id(cls, value: Optional[str], info) -> Optional[str]:
        return check_id(value, info.field_name)

    @field_validator("goal_data", "state")
    @classmethod
    def _json(cls, value: Optional[dict[str, Any]], info) -> Optional[dict[str, Any]]:
        return check_json(value, info.field_name)

    @field_validator("correlation_ids")
    @classmethod
    def _correlations(cls, value: Optional[list[str]]) -> Optional[list[str]]:
        return _check_ids(value, "correlation_ids")

    def changes(self) -> dict[str, Any]:
        not_nullable = {"goal_data", "state", "correlation_ids"}
        out: dict[str, Any] = {}
        for name in self.model_fields_set:
            if name == "version":
                continue
            value = getattr(self, name)
            if value is None and name in not_nullable:
                continue
            out[name] = value
        return out


# -- plans and sessions ----------------------------------------------------------------------------------------------


class PlanCreate(Body):
    plan_id: str
    session_id: Optional[str] = None
    goal_event: str
    goal_data: dict[str, Any] = Field(default_factory=dict)
    response_event: Optional[str] = None
    parent_plan_id: Optional[str] = None
    status: Literal["pending", "running", "completed", "failed", "paused", "cancelled"] = "running"

    @field_validator("goal_data", mode="before")
    @classmethod
    def _null_is_default(cls, value: Any) -> Any:
        return {} if value is None else value

    @field_validator("plan_id", "goal_event")
    @classmethod
    def _required_id(cls, value: str, info) -> str:
        return check_id(value, info.field_name)

    @field_validator("session_id", "response_event", "parent_plan_id")
    @classmethod
    def _optional_id(cls, value: Optional[str], info) -> Optional[str]:
        return check_id(value, info.field_name)

    @field_validator("goal_data")
    @classmethod
    def _json(cls, value: dict[str, Any]) -> dict[str, Any]:
        return check_json(value, "goal_data")


class PlanUpdate(Body):
    """soorma-core's body is ``{status}``; ``goal_data`` and ``session_id`` may be changed too."""

    status: Optional[Literal["pending", "running", "completed", "failed", "paused", "cancelled"]] = None
    goal_data: Optional[dict[str, Any]] = None
    session_id: Optional[str] = None

    @field_validator("session_id")
    @classmethod
    def _optional_id(cls, value: Optional[str]) -> Optional[str]:
        return check_id(value, "session_id")

    @field_validator("goal_data")
    @classmethod
    def _json(cls, value: Optional[dict[str, Any]]) -> Optional[dict[str, Any]]:
        return check_json(value, "goal_data")

    @model_validator(mode="after")
    def _something(self) -> "PlanUpdate":
        if not self.changes():
            raise ValueError("nothing to update: give status, goal_data or session_id")
        return self

    def changes(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.model_fields_set if getattr(self, name) is not None}


class SessionCreate(Body):
    session_id: str
    name: Optional[str] = None
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("metadata", mode="before")
    @classmethod
    def _null_is_default(cls, value: Any) -> Any:
        return {} if value is None else value

    @field_validator("session_id")
    @classmethod
    def _id(cls, value: str) -> str:
        return check_id(value, "session_id")

    @field_validator("name")
    @classmethod
    def _name(cls, value: Optional[str]) -> Optional[str]:
        if value is None:
            return value
        if len(value) > 1000:
            raise ValueError("name is longer than 1000 characters")
        return check_text(value, "name")

    @field_validator("metadata")
    @classmethod
    def _metadata(cls, value: dict[str, Any]) -> dict[str, Any]:
        return check_json(value, "metadata")


# -- idempotency records ---------------------------------------------------------------------------------------------
# Powertools' DataRecord (https://docs.powertools.aws.dev/lambda/python/latest/utilities/idempotency/), units kept:
# expiry in epoch seconds, in-progress expiry in epoch milliseconds.

IDEMPOTENCY_STATUSES = ("INPROGRESS", "COMPLETED")
MAX_RESPONSE_DATA_BYTES = 256 * 1024
MAX_HASH_CHARS = 512
MAX_EPOCH_SECONDS = 10**12
MAX_EPOCH_MILLIS = 10**15


def _check_response_data(value: Optional[str]) -> Optional[str]:
    if value is None:
        return value
    if len(value.encode("utf-8")) > MAX_RESPONSE_DATA_BYTES:
        raise ValueError(f"response_data is longer than {MAX_RESPONSE_DATA_BYTES} bytes (UTF-8)")
    return check_text(value, "response_data")


def _check_hash(value: Optional[str]) -> Optional[str]:
    if value is None:
        return value
    if len(value) > MAX_HASH_CHARS:
        raise ValueError(f"payload_hash must be at most {MAX_HASH_CHARS} characters")
    return check_text(value, "payload_hash")


class _IdempotencyRecordBody(Body):
    """The fields both idempotency writes carry, with their checks."""

    status: Literal["INPROGRESS", "COMPLETED"]
    expiry_timestamp: int = Field(..., ge=0, le=MAX_EPOCH_SECONDS, description="epoch seconds")
    response_data: Optional[str] = None
    payload_hash: Optional[str] = None

    @field_validator("response_data")
    @classmethod
    def _response_data(cls, value: Optional[str]) -> Optional[str]:
        return _check_response_data(value)

    @field_validator("payload_hash")
    @classmethod
    def _payload_hash(cls, value: Optional[str]) -> Optional[str]:
        return _check_hash(value)


class IdempotencyCreate(_IdempotencyRecordBody):
    """``PUT /idempotency/{key}``: create the record unless a live one exists (Powertools' ``_put_record``)."""

    status: Literal["INPROGRESS", "COMPLETED"] = "INPROGRESS"
    in_progress_expiry_timestamp: Optional[int] = Field(None, ge=0, le=MAX_EPOCH_MILLIS,
                                                        description="epoch milliseconds")


class IdempotencyUpdate(_IdempotencyRecordBody):
    """``PATCH /idempotency/{key}``: set status, expiry, response (and the payload hash when given), Powertools'
    ``_update_record``; the in-progress expiry is left as it is."""
