"""Wire models of the registry (soorma-core's ``soorma_common`` DTOs, docs/architecture.md "Registry").

Request bodies accept camelCase or snake_case; responses are camelCase (``model_dump(by_alias=True)``).
The :class:`Deployment` is the bridge's routing binding of a deployed agent.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from soorma.events import EventTopic
from soorma.subjects import check_event_type


class Wire(BaseModel):
    """camelCase on output, camelCase or snake_case on input."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, use_enum_values=True)

    def wire(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, mode="json")


def _event_type(value: str) -> str:
    try:
        return check_event_type(value)
    except ValueError as exc:  # InvalidSubjectToken is a ValueError: pydantic reports it as a 422 with the reason
        raise ValueError(str(exc)) from None


class Subscription(Wire):
    model_config = ConfigDict(extra="forbid")  # merged with Wire's camelCase settings

    topic: EventTopic
    event_type: str = Field(max_length=200, description='an event type, or "*" for every type on the topic')

    @field_validator("event_type")
    @classmethod
    def _check_type(cls, value: str) -> str:
        return value if value == "*" else _event_type(value)


class Deployment(Wire):
    """Where and how the bridge delivers an agent's events (docs/architecture.md ``Deployment``)."""

    model_config = ConfigDict(extra="forbid")  # merged with Wire's camelCase settings

    function_name: str = Field(min_length=1, max_length=256, pattern=r"^[A-Za-z0-9_.:$/-]+$")
    transport: Literal["nats", "sqs"] = "nats"
    subscriptions: list[Subscription] = Field(default_factory=list, max_length=100)
    batch_size: int = Field(10, ge=1, le=100)
    max_concurrency: int = Field(2, ge=1, le=100)
    max_deliveries: int = Field(5, ge=1, le=100)
    timeout_seconds: int = Field(30, ge=1, le=900)

    @field_validator("subscriptions")
    @classmethod
    def _unique(cls, value: list[Subscription]) -> list[Subscription]:
        seen: dict[tuple[str, str], Subscription] = {}
        for sub in value:
            seen.setdefault((str(sub.topic), sub.event_type), sub)
        return list(seen.values())


class EventDefinition(Wire):
    """A registered event (soorma-core ``EventDefinition``)."""

    model_config = ConfigDict(extra="ignore")  # merged with Wire's camelCase settings

    event_name: str = Field(min_length=1, max_length=200)
    topic: EventTopic = EventTopic.ACTION_REQUESTS
    description: str = Field("", max_length=10_000)
    payload_schema: dict[str, Any] | None = None
    response_schema: dict[str, Any] | None = None
    payload_schema_name: str | None = Field(None, max_length=255)
    response_schema_name: str | None = Field(None, max_length=255)
    owner_agent_id: str | None = Field(None, max_length=255)

    @model_validator(mode="before")
    @classmethod
    def _name_alias(cls, value: Any) -> Any:
        # soorma-core's agent_to_dto wrote {"name": ...}; accept it as event_name.
        if isinstance(value, dict) and "event_name" not in value and "eventName" not in value and "name" in value:
            value = {**value, "event_name": value["name"]}
        return value

    @field_validator("event_name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        return _event_type(value)


def _event_name(value: Any) -> Any:
    """An event reference: a string, or an object with ``event_name``/``eventName``/``name``."""
    if isinstance(value, dict):
        for key in ("event_name", "eventName", "name"):
            if isinstance(value.get(key), str):
                return value[key]
    return value


class Capability(Wire):
    """soorma-core ``AgentCapability``; a bare string is accepted as ``task_name``. ``chat_model`` (Soorma's own) makes
    the capability a chat entry: ``GET /v1/models`` lists it and ``POST /v1/chat/completions`` answers it with a goal
    of ``consumed_event``."""

    model_config = ConfigDict(extra="ignore")  # merged with Wire's camelCase settings

    task_name: str = Field(min_length=1, max_length=255)
    description: str = Field("", max_length=10_000)
    consumed_event: EventDefinition | None = None
    produced_events: list[EventDefinition] = Field(default_factory=list, max_length=100)
    chat_model: str | None = Field(
        None, min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$",
        description="a chat entry: the OpenAI-compatible chat API (soorma.functions.protocols.chat) serves the model of "
        "this id with goals of consumed_event, which it then needs",
    )

    @model_validator(mode="after")
    def _chat_needs_event(self) -> "Capability":
        if self.chat_model is not None and self.consumed_event is None:
            raise ValueError(f"chat_model {self.chat_model!r} needs the consumed_event its goals have")
        return self

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"task_name": value}
        return value

    @field_validator("consumed_event", mode="before")
    @classmethod
    def _event_from_string(cls, value: Any) -> Any:
        return {"event_name": value} if isinstance(value, str) else value

    @field_validator("produced_events", mode="before")
    @classmethod
    def _events_from_strings(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"event_name": v} if isinstance(v, str) else v for v in value]
        return value


class AgentDefinition(Wire):
    model_config = ConfigDict(extra="ignore")  # merged with Wire's camelCase settings

    agent_id: str = Field(min_length=1, max_length=255)
    name: str = Field(min_length=1, max_length=255)
    description: str = Field("", max_length=10_000)
    version: str = Field("0.1.0", min_length=1, max_length=64)
    capabilities: list[Capability] = Field(default_factory=list, max_length=200)
    consumed_events: list[str] = Field(default_factory=list, max_length=500)
    produced_events: list[str] = Field(default_factory=list, max_length=500)
    deployment: Deployment | None = None

    @field_validator("consumed_events", "produced_events", mode="before")
    @classmethod
    def _names(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [_event_name(v) for v in value]
        return value

    @field_validator("consumed_events", "produced_events")
    @classmethod
    def _check_names(cls, value: list[str]) -> list[str]:
        for name in value:
            if len(name) > 200:
                raise ValueError(f"event name {name[:40]!r}... is longer than 200 characters")
        return list(dict.fromkeys(value))


class AgentRegistrationRequest(Wire):
    agent: AgentDefinition


class EventRegistrationRequest(Wire):
    event: EventDefinition


class AgentOut(Wire):
    agent_id: str
    name: str
    description: str
    version: str
    capabilities: list[Capability]
    consumed_events: list[str]
    produced_events: list[str]
    deployment: Deployment | None = None
    created_at: datetime
    updated_at: datetime
    last_heartbeat: datetime


class EventOut(EventDefinition):
    created_at: datetime
    updated_at: datetime


class PayloadSchema(Wire):
    """A named, versioned JSON Schema for event payloads (soorma-core's ``PayloadSchema``). A version is immutable."""

    schema_name: str = Field(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9_.:-]+$")
    version: str = Field("1.0.0", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.+-]+$")
    json_schema: dict[str, Any] = Field(description="the JSON Schema document (a JSON object)")
    description: str = Field("", max_length=10_000)
    owner_agent_id: str | None = Field(None, max_length=255)


class PayloadSchemaRegistrationRequest(Wire):
    schema_: PayloadSchema = Field(alias="schema")

    model_config = ConfigDict(populate_by_name=True)


class PayloadSchemaOut(PayloadSchema):
    created_at: datetime
    updated_at: datetime


# -- answers ---------------------------------------------------------------------------------------------------------
class AgentList(Wire):
    """``GET /v1/agents`` and ``GET /v1/agents/discover``."""

    agents: list[AgentOut]
    count: int


class AgentWriteResult(Wire):
    """``POST /v1/agents`` (``message``: "Agent registered" or "Agent unchanged") and the heartbeat."""

    agent_id: str
    success: bool
    message: str


class EventList(Wire):
    """``GET /v1/events``."""

    events: list[EventOut]
    count: int


class EventWriteResult(Wire):
    """``POST /v1/events``."""

    event_name: str
    success: bool
    message: str


class PayloadSchemaList(Wire):
    """``GET /v1/schemas``."""

    schemas: list[PayloadSchemaOut]
    count: int


class PayloadSchemaWriteResult(Wire):
    """``POST /v1/schemas``."""

    schema_name: str
    version: str
    success: bool
    message: str
