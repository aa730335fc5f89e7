"""Request and response models of the gateway's routes (snake_case JSON; request bodies accept camelCase too)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from soorma.events import EventEnvelope
from soorma.functions.webhooks.models import GoalWebhook, WebhookSpec
from soorma.subjects import check_event_type

IDENTIFIER = r"^[A-Za-z0-9_-]{1,64}$"
KEY_ID = r"^[A-Za-z0-9]{8,64}$"
#: A goal's states: ``queued`` (waits for its session's active goal to end: double-texting ``enqueue``), ``pending``
#: (recorded, its request not yet acknowledged by the event bus), ``running``, ``input-required`` (an agent waits for
#: answers to its input requests), and the final ``completed``, ``failed``, ``cancelled``.
GoalState = Literal["queued", "pending", "running", "input-required", "completed", "failed", "cancelled"]
#: Double-texting policies (LangGraph's names; soorma.functions.shared.sessions explains them and the default).
MultitaskStrategy = Literal["reject", "enqueue", "interrupt", "rollback"]
Role = Literal["admin", "developer", "agent", "user"]


class _Body(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


def _event_type(value: str) -> str:
    try:
        return check_event_type(value)
    except ValueError as exc:
        raise ValueError(str(exc)) from None


# -- goals -----------------------------------------------------------------------------------------------------------
class GoalRequest(_Body):
    """``{goal_type, data, session_id?, multitask_strategy?, webhook?}`` (``multitask_strategy`` overrides the
    session's double-texting policy for this goal; ``webhook``: :mod:`soorma.functions.webhooks`)."""

    goal_type: str = Field(min_length=1, max_length=200)
    data: dict[str, Any] = Field(default_factory=dict)
    session_id: str | None = Field(None, min_length=1, max_length=255)
    webhook: WebhookSpec | None = None
    multitask_strategy: MultitaskStrategy | None = None

    @field_validator("goal_type")
    @classmethod
    def _type(cls, value: str) -> str:
        return _event_type(value)

    @field_validator("data", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return {} if value is None else value


class GoalAccepted(BaseModel):
    goal_id: str
    status: GoalState
    goal_type: str
    webhook: GoalWebhook | None = None


class GoalTask(BaseModel):
    task_id: str
    event_type: str | None = None
    status: str
    agent: str | None = None
    started_at: str | None = None
    completed_at: str | None = None
    progress: float | None = None
    progress_message: str | None = None


class InputRequest(BaseModel):
    """One input request of a goal: ``status`` ``pending | answered | timed-out | cancelled``; ``schema`` the JSON
    Schema an answer must satisfy (``null``: any JSON value); ``default`` what a timeout answers when the agent
    declared one (``has_default``); ``timeout_at`` when it times out (``null``: never)."""

    model_config = ConfigDict(populate_by_name=True)

    request_id: str
    goal_id: str
    task_id: str
    agent: str | None = None
    prompt: str = ""
    json_schema: dict[str, Any] | None = Field(None, alias="schema")
    has_default: bool = False
    default: Any = None
    status: Literal["pending", "answered", "timed-out", "cancelled"]
    timeout_at: str | None = None
    created_at: str
    answer: Any = None
    answered_by: str | None = None
    answered_at: str | None = None


class InputRequests(BaseModel):
    goal_id: str
    input_requests: list[InputRequest]


class InputAnswerBody(BaseModel):
    """``{answer}``: any JSON value (``null`` included), checked against the request's schema."""

    model_config = ConfigDict(extra="forbid")

    answer: Any = Field(..., description="the answer, checked against the request's JSON Schema")


class Goal(BaseModel):
    goal_id: str
    goal_type: str
    status: GoalState
    data: dict[str, Any] = Field(default_factory=dict)
    result: Any = None
    error: str | None = None
    session_id: str | None = None
    schedule_id: str | None = None
    response_event: str
    created_at: str
    completed_at: str | None = None
    tasks: list[GoalTask] = Field(default_factory=list)
    events: int = 0
    input_requests: list[InputRequest] = Field(default_factory=list)


class GoalSummary(BaseModel):
    goal_id: str
    goal_type: str
    status: GoalState
    session_id: str | None = None
    schedule_id: str | None = None
    error: str | None = None
    created_at: str
    completed_at: str | None = None


class GoalList(BaseModel):
    goals: list[GoalSummary]
    count: int
    next_cursor: str | None = None


class CancelRequest(_Body):
    reason: str | None = Field(None, max_length=1000)


class GoalEvent(BaseModel):
    event_id: str
    type: str
    topic: str
    correlation_id: str | None = None
    parent_event_id: str | None = None
    source: str | None = None
    time: str
    data: dict[str, Any] = Field(default_factory=dict)


class GoalEvents(BaseModel):
    goal_id: str
    events: list[GoalEvent]
    count: int
    next_cursor: str | None = None


# -- sessions --------------------------------------------------------------------------------------------------------
class SessionRequest(_Body):
    """``{session_id?, metadata?, multitask_strategy?}``: what a goal arriving while another of the session is active
    does (default ``enqueue``)."""

    session_id: str | None = Field(None, min_length=1, max_length=255)
    metadata: dict[str, Any] = Field(default_factory=dict)
    multitask_strategy: MultitaskStrategy | None = None


class Session(BaseModel):
    session_id: str
    metadata: dict[str, Any] = Field(default_factory=dict)
    multitask_strategy: MultitaskStrategy = "enqueue"
    created_at: str
    updated_at: str
    goal_count: int = 0


class SessionList(BaseModel):
    sessions: list[Session]
    count: int
    next_cursor: str | None = None


# -- events ----------------------------------------------------------------------------------------------------------
class PublishRequest(BaseModel):
    """``{event, deliver_at?, delay_seconds?}``: without either the event is published now; with one it is stored as
    a durable timer and published once at that time (:mod:`soorma.functions.shared.timers`). ``deliver_at``: an
    ISO 8601 time with its offset; ``delay_seconds``: > 0, at most a year. Not both."""

    model_config = ConfigDict(extra="ignore")

    event: EventEnvelope
    deliver_at: AwareDatetime | None = None
    delay_seconds: float | None = Field(None, gt=0, le=366 * 86400)

    @model_validator(mode="after")
    def _one_time(self) -> "PublishRequest":
        if self.deliver_at is not None and self.delay_seconds is not None:
            raise ValueError("give deliver_at or delay_seconds, not both")
        return self


class Published(BaseModel):
    """``POST /v1/events/publish``'s answer. ``duplicate``: the bus already held this tenant's event id within its
    de-duplication window (120 s on JetStream) and stored nothing new — a retried publish of the same event, or a
    reused id; always false on SNS, which does not de-duplicate."""

    success: bool
    event_id: str
    message: str
    duplicate: bool = False
    #: a delayed publish: the durable timer's id and when it publishes the event (ISO 8601)
    timer_id: str | None = None
    deliver_at: str | None = None


# -- tenants, keys, policy -------------------------------------------------------------------------------------------
class PolicyBody(_Body):
    """Null (or absent) means no restriction."""

    allowed_goal_types: list[str] | None = Field(None, max_length=200)
    allowed_event_types: list[str] | None = Field(None, max_length=200)
    max_payload_bytes: int | None = Field(None, gt=0, le=64 * 1024 * 1024)
    max_actions_per_plan: int | None = Field(None, gt=0, le=1_000_000)
    #: US dollars per UTC calendar month; new goals and LLM calls are refused (403) once the month's cost reaches it
    monthly_budget_usd: float | None = Field(None, gt=0, le=1e9)

    @field_validator("allowed_goal_types", "allowed_event_types")
    @classmethod
    def _patterns(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return value
        for pattern in value:
            if not 1 <= len(pattern) <= 200 or not pattern.isprintable():
                raise ValueError("each pattern must be 1-200 printable characters")
        return value


class PolicyOut(BaseModel):
    platform_tenant_id: str
    allowed_goal_types: list[str] | None = None
    allowed_event_types: list[str] | None = None
    max_payload_bytes: int | None = None
    max_actions_per_plan: int | None = None
    monthly_budget_usd: float | None = None


class TenantCreate(_Body):
    platform_tenant_id: str | None = Field(None, pattern=IDENTIFIER)
    name: str = Field("", max_length=200)
    admin_user_id: str = Field("admin", pattern=IDENTIFIER)


class TenantPatch(PolicyBody):
    name: str | None = Field(None, max_length=200)
    status: Literal["active", "suspended"] | None = None
    key_rps: float | None = Field(None, gt=0, le=1e6)
    key_burst: float | None = Field(None, ge=1, le=1e7)
    tenant_rps: float | None = Field(None, gt=0, le=1e6)
    tenant_burst: float | None = Field(None, ge=1, le=1e7)


class Tenant(BaseModel):
    platform_tenant_id: str
    name: str
    status: Literal["active", "suspended"]
    key_rps: float | None = None
    key_burst: float | None = None
    tenant_rps: float | None = None
    tenant_burst: float | None = None
    allowed_goal_types: list[str] | None = None
    allowed_event_types: list[str] | None = None
    max_payload_bytes: int | None = None
    max_actions_per_plan: int | None = None
    monthly_budget_usd: float | None = None
    created_at: str
    updated_at: str


class TenantList(BaseModel):
    tenants: list[Tenant]
    count: int
    next_cursor: str | None = None


class ApiKeyCreate(_Body):
    role: Role
    name: str = Field("", max_length=200)
    service_tenant_id: str | None = Field(None, pattern=IDENTIFIER)
    service_user_id: str | None = Field(None, pattern=IDENTIFIER)
    principal_id: str | None = Field(None, pattern=IDENTIFIER)
    expires_in_seconds: int | None = Field(None, gt=0, le=10 * 365 * 86400)


class ApiKey(BaseModel):
    key_id: str
    platform_tenant_id: str
    service_tenant_id: str
    service_user_id: str
    principal_id: str
    role: Role
    name: str
    created_at: str
    revoked_at: str | None = None
    expires_at: str | None = None
    created_by: str | None = None
    rotated_from: str | None = None


class ApiKeyList(BaseModel):
    keys: list[ApiKey]
    count: int
    next_cursor: str | None = None


class ApiKeyCreated(ApiKey):
    api_key: str = Field(description="The key itself: shown only in this answer")


class TenantCreated(BaseModel):
    tenant: Tenant
    admin_key_id: str
    admin_api_key: str = Field(description="The tenant admin's API key: shown only in this answer")
