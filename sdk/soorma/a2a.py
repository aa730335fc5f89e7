"""A2A (Agent-to-Agent protocol) models and :class:`A2AGatewayHelper` (reference §1.10).

Pure conversions, no service calls: an agent definition (from the registry) → an A2A agent card; an incoming A2A
task → an event envelope to publish; the result event → an A2A task response. The wire names follow the A2A
specification (camelCase such as ``inputSchema``, ``sessionId``), as soorma-core's DTOs do.

Better than soorma-core: a result is ``failed`` when it says so (``data.status == "failed"`` or
``data.success is false``), not merely when its data is empty; the task's ``sessionId`` travels as the event's
``session_id``; a task's data parts are kept; and the identity defaults to none (the gateway sets the caller's)
instead of an all-zeros UUID.
"""

from __future__ import annotations

from enum import Enum
from typing import Any, Literal, Mapping, Optional

from pydantic import BaseModel, ConfigDict, Field

from .events import EventEnvelope, EventTopic


class _A2A(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="allow")


class A2AAuthType(str, Enum):
    API_KEY = "apiKey"
    OAUTH2 = "oauth2"
    BEARER = "bearer"
    NONE = "none"


class A2AAuthentication(_A2A):
    schemes: list[A2AAuthType]
    credentials: Optional[str] = None


class A2ASkill(_A2A):
    id: str
    name: str
    description: str = ""
    tags: list[str] = Field(default_factory=list)
    inputSchema: Optional[dict[str, Any]] = None
    outputSchema: Optional[dict[str, Any]] = None


class A2AAgentCard(_A2A):
    name: str
    description: str = ""
    url: str
    version: str = "1.0.0"
    provider: dict[str, str] = Field(default_factory=dict)
    capabilities: dict[str, Any] = Field(default_factory=dict)
    skills: list[A2ASkill] = Field(default_factory=list)
    authentication: A2AAuthentication


class A2APart(_A2A):
    type: Literal["text", "data", "file"]
    text: Optional[str] = None
    data: Optional[dict[str, Any]] = None
    mimeType: Optional[str] = None


class A2AMessage(_A2A):
    role: Literal["user", "agent"]
    parts: list[A2APart]


class A2ATask(_A2A):
    id: str
    sessionId: Optional[str] = None
    message: A2AMessage
    metadata: Optional[dict[str, Any]] = None


class A2ATaskStatus(str, Enum):
    SUBMITTED = "submitted"
    WORKING = "working"
    INPUT_REQUIRED = "input-required"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELED = "canceled"


class A2ATaskResponse(_A2A):
    id: str
    sessionId: Optional[str] = None
    status: A2ATaskStatus
    message: Optional[A2AMessage] = None
    error: Optional[str] = None


def _get(obj: Any, *names: str, default: Any = None) -> Any:
    for name in names:
        if isinstance(obj, Mapping):
            if name in obj and obj[name] is not None:
                return obj[name]
        elif getattr(obj, name, None) is not None:
            return getattr(obj, name)
    return default


class A2AGatewayHelper:
    """Static conversions between Soorma and A2A (see the module docstring)."""

    @staticmethod
    def agent_to_card(agent: Any, gateway_url: str, auth_type: A2AAuthType = A2AAuthType.NONE) -> A2AAgentCard:
        """An agent definition (a registry ``AgentDefinition``, an :meth:`Agent.definition` dict, or an
        :class:`~soorma.agents.base.Agent`) as an agent card: one skill per capability, with the consumed event's
        payload schema as ``inputSchema`` and its response schema as ``outputSchema`` when known. A ``name:version``
        name (soorma-core's convention) gives the card's version."""
        if hasattr(agent, "definition") and callable(agent.definition):
            agent = agent.definition()
        raw_name = str(_get(agent, "name", default=""))
        name, _, suffix = raw_name.partition(":")
        version = suffix or str(_get(agent, "version", default="1.0.0"))
        skills = []
        for capability in _get(agent, "capabilities", default=[]) or []:
            if isinstance(capability, str):
                skills.append(A2ASkill(id=capability, name=capability))
                continue
            task = str(_get(capability, "task_name", "taskName", default=""))
            if not task:
                continue
            consumed = _get(capability, "consumed_event", "consumedEvent")
            input_schema = _get(consumed, "payload_schema", "payloadSchema") if consumed else None
            if input_schema is None and consumed and _get(consumed, "payload_schema_name", "payloadSchemaName"):
                input_schema = {"$ref": _get(consumed, "payload_schema_name", "payloadSchemaName")}
            output_schema = _get(consumed, "response_schema", "responseSchema") if consumed else None
            description = _get(capability, "description", default="") or (
                _get(consumed, "description", default="") if consumed else "")
            skills.append(A2ASkill(id=task, name=task, description=description, inputSchema=input_schema,
                                   outputSchema=output_schema))
        return A2AAgentCard(
            name=name,
            description=str(_get(agent, "description", default="")),
            url=gateway_url,
            version=version,
            skills=skills,
            authentication=A2AAuthentication(schemes=[auth_type]),
        )

    @staticmethod
    def task_to_event(
        task: A2ATask | Mapping[str, Any],
        event_type: str,
        topic: str = EventTopic.ACTION_REQUESTS.value,
        tenant_id: str | None = None,
        user_id: str | None = None,
        response_event: str | None = None,
    ) -> EventEnvelope:
        """The event for an incoming task: ``data = {"input": <first text part>, **<data parts>}``,
        ``correlation_id`` = the task id (responses are traced back to it), ``session_id`` = its ``sessionId``."""
        task = task if isinstance(task, A2ATask) else A2ATask.model_validate(task)
        data: dict[str, Any] = {"input": ""}
        text_found = False
        for part in task.message.parts:
            if part.type == "text" and part.text is not None and not text_found:
                data["input"] = part.text
                text_found = True
            elif part.type == "data" and part.data:
                data.update(part.data)
        if task.metadata:
            data.setdefault("metadata", task.metadata)
        return EventEnvelope(
            source="a2a-gateway",
            type=event_type,
            topic=EventTopic(topic),
            data=data,
            correlation_id=task.id,
            response_event=response_event,
            response_topic=EventTopic.ACTION_RESULTS.value if response_event else None,
            tenant_id=tenant_id,
            user_id=user_id,
            session_id=task.sessionId,
        )

    @staticmethod
    def event_to_response(event: EventEnvelope, task_id: str) -> A2ATaskResponse:
        """The task response for a result event: ``failed`` (with ``error``) when the result says it failed or is
        empty, else ``completed`` with the result data as one ``data`` part."""
        data = dict(event.data or {})
        failed = not data or data.get("status") == "failed" or data.get("success") is False
        error = data.get("error")
        message = A2AMessage(role="agent", parts=[A2APart(type="data", data=data)]) if data else None
        return A2ATaskResponse(
            id=task_id,
            sessionId=event.session_id,
            status=A2ATaskStatus.FAILED if failed else A2ATaskStatus.COMPLETED,
            message=message,
            error=(str(error) if error is not None else ("empty result" if not data else None)) if failed else None,
        )


__all__ = [
    "A2AAgentCard",
    "A2AAuthType",
    "A2AAuthentication",
    "A2AGatewayHelper",
    "A2AMessage",
    "A2APart",
    "A2ASkill",
    "A2ATask",
    "A2ATaskResponse",
    "A2ATaskStatus",
]
