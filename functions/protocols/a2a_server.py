"""A2A 1.0 on goals through the ``a2a-sdk`` 1.x server components: the agent card, a task store and a request handler
whose tasks are the caller's goals in PostgreSQL. Imported by :mod:`soorma.functions.protocols.a2a` on the first A2A
request only (the SDK brings protobuf; a cold start that serves no A2A request does not pay for it).

Specification: A2A 1.0 (https://a2a-protocol.org/v1.0.0/specification/; the normative source is its
``specification/a2a.proto``, which ``a2a.types`` is generated from). The SDK's own transports dispatch to
:class:`GoalRequestHandler`: ``JsonRpcDispatcher`` (JSON-RPC binding; with ``enable_v0_3_compat`` the protocol 0.3
method names such as ``message/send`` are answered by its 0.3 adapter on the same endpoint) and ``RestDispatcher``
(HTTP+JSON binding). Version negotiation is the SDK's (``A2A-Version`` header; none means 0.3, spec §3.6).

Why a :class:`~a2a.server.request_handlers.RequestHandler` of our own rather than the SDK's ``DefaultRequestHandler``
with an ``AgentExecutor``: that handler runs the executor in an in-process registry of active tasks (asyncio tasks
and queues), generates its own task ids and writes every state change through ``TaskStore.save``. Here the work is
done by agents elsewhere, the goal row is written by the goal API and the tracker, the task id must be the goal id
(so ``GET /v1/goals/{id}`` and ``GetTask`` name the same thing), the same ``messageId`` must answer the same task
(idempotency across Lambda instances), and nothing may live in the process between requests. Each handler method is
therefore one call of :class:`~soorma.functions.gateway.goals.Goals` under the caller's identity (row-level security
scopes every read and write to the caller), and reads go through :class:`GoalTaskStore`, the SDK's ``TaskStore``
interface over the goals table (read-only: tasks are never written through it).

Mapping: ``SendMessage`` → ``Goals.submit`` (``goal_type`` from the request's or the message's ``metadata.goal_type``,
else ``SOORMA_A2A_DEFAULT_GOAL_TYPE``; ``data`` = the message's data parts merged, plus ``text`` = its text parts
joined; ``contextId`` → the goal's session; ``messageId`` → its idempotency key), then, unless
``configuration.returnImmediately``, a wait for the goal to end (at most ``SOORMA_A2A_BLOCKING_SECONDS``, ≤ 25 s: the
HTTP API's 30 s limit; a goal still running then is answered ``TASK_STATE_WORKING``). Goal status → task state:
``pending`` SUBMITTED, ``running`` WORKING, ``completed`` COMPLETED (the result as one data artifact ``result``),
``failed`` FAILED and ``cancelled`` CANCELED (the error as the status message). ``GetTask``, ``ListTasks``
(``contextId``, ``status``, ``statusTimestampAfter`` filters, ``pageSize`` ≤ 100, ``pageToken``, newest first) and
``CancelTask`` (→ ``Goals.cancel``; ``TaskNotCancelableError`` once the goal ended). Streaming
(``SendStreamingMessage``, ``SubscribeToTask``) and push notifications answer the protocol's
``UnsupportedOperationError`` / ``PushNotificationNotSupportedError``, and the card says ``streaming: false``,
``pushNotifications: false``: there is no live goal stream or webhook yet to build them on honestly.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator
from datetime import UTC, datetime
from typing import Any, NoReturn

import psycopg
from a2a.auth.user import User
from a2a.server.context import ServerCallContext
from a2a.server.events import Event
from a2a.server.request_handlers import RequestHandler, validate_request_params
from a2a.server.request_handlers.response_helpers import agent_card_to_dict
from a2a.server.routes.common import DefaultServerCallContextBuilder
from a2a.server.routes.jsonrpc_dispatcher import JsonRpcDispatcher
from a2a.server.routes.rest_dispatcher import RestDispatcher
from a2a.server.tasks import TaskStore
from a2a.types import a2a_pb2 as pb
from a2a.utils import constants
from a2a.utils.errors import (
    ContentTypeNotSupportedError,
    InternalError,
    InvalidParamsError,
    PushNotificationNotSupportedError,
    TaskNotCancelableError,
    TaskNotFoundError,
    UnsupportedOperationError,
)
from fastapi import HTTPException
from google.protobuf import struct_pb2
from google.protobuf.json_format import MessageToDict, ParseDict
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from soorma.functions.gateway.goals import MAX_WAIT_S, Goals, decode_cursor, encode_cursor, iso
from soorma.functions.gateway.policy import PolicyViolation
from soorma.functions.shared import settings
from soorma.functions.shared.db import Database
from soorma.functions.shared.service import identity_of
from soorma.identity import Identity

#: The path of the A2A endpoint (JSON-RPC at this URL, HTTP+JSON below it), relative to the API's base URL.
A2A_PATH = "/v1/a2a"

#: Goal status → A2A 1.0 task state.
GOAL_TASK_STATES: dict[str, int] = {
    "queued": pb.TASK_STATE_SUBMITTED,  # waits for its session's active goal (double-texting 'enqueue')
    "pending": pb.TASK_STATE_SUBMITTED,
    "running": pb.TASK_STATE_WORKING,
    "input-required": pb.TASK_STATE_INPUT_REQUIRED,
    "completed": pb.TASK_STATE_COMPLETED,
    "failed": pb.TASK_STATE_FAILED,
    "cancelled": pb.TASK_STATE_CANCELED,
}
#: A2A task state → the goal statuses shown as it (SUBMITTED is both ``queued`` and ``pending``).
_GOAL_STATUSES_OF_STATE: dict[int, list[str]] = {}
for _status, _state in GOAL_TASK_STATES.items():
    _GOAL_STATUSES_OF_STATE.setdefault(_state, []).append(_status)

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 100


# -- the agent card ---------------------------------------------------------------------------------------------------
#: The skill every card has: any goal type can be sent, whether or not an agent of it is registered.
GOAL_SKILL = pb.AgentSkill(
    id="goal", name="goal",
    description="Submit a goal: metadata.goal_type names its type, the message's data parts (merged) and text parts "
                "(joined, as data.text) are its data; the task's artifact 'result' is the goal's result.",
    tags=["soorma", "goal"],
    examples=['{"metadata": {"goal_type": "research.goal"}, "parts": [{"text": "What is JetStream?"}]}'],
)


def _skills(db: Database, tenant: str | None) -> list[pb.AgentSkill]:
    """:data:`GOAL_SKILL`, then one skill per agent in ``tenant``'s registry (read as that tenant: row-level
    security), none without a tenant."""
    if not tenant:
        return [GOAL_SKILL]
    from soorma.functions.registry.app import query_agents

    reader = Identity(tenant, tenant, "a2a-card", "a2a-card", "user")
    with db.transaction(reader) as conn:
        rows = query_agents(conn)
    skills = []
    for row in rows:
        consumed = [event for event in row.get("consumed_events") or [] if event]
        skills.append(pb.AgentSkill(
            id=row["agent_id"],
            name=row["name"],
            description=row.get("description") or f"Soorma agent {row['name']}",
            tags=consumed or ["soorma"],
            examples=[f'{{"goal_type": "{event}"}}' for event in consumed[:3]],
        ))
    return [GOAL_SKILL, *skills]


def agent_card(db: Database, base_url: str, tenant: str | None) -> pb.AgentCard:
    """The platform's A2A 1.0 agent card (spec §8 "Agent Discovery", ``AgentCard`` in a2a.proto).

    Parameters: ``base_url`` — the API's base URL (``https://host[/stage]``, no trailing slash); ``tenant`` — the
    platform tenant whose registered agents become the skills (none: no skills).
    Returns: the card with three interfaces at ``{base_url}/v1/a2a`` — JSON-RPC 1.0, HTTP+JSON 1.0 and JSON-RPC 0.3
    (so :func:`card_json` adds the 0.3 card fields older clients read) — ``streaming``/``pushNotifications`` false,
    ``extendedAgentCard`` true, and one security scheme ``bearer`` (HTTP Bearer: an API key ``sk_...`` or a JWT)."""
    url = base_url + A2A_PATH
    return pb.AgentCard(
        name="Soorma",
        description="Soorma Serverless: goals handled by event-driven agents (Planners, Workers, Tools). Send a "
                    "message whose metadata names a goal_type; the task is the goal.",
        version="1",
        supported_interfaces=[
            pb.AgentInterface(url=url, protocol_binding=constants.TransportProtocol.JSONRPC.value,
                              protocol_version=constants.PROTOCOL_VERSION_1_0),
            pb.AgentInterface(url=url, protocol_binding=constants.TransportProtocol.HTTP_JSON.value,
                              protocol_version=constants.PROTOCOL_VERSION_1_0),
            pb.AgentInterface(url=url, protocol_binding=constants.TransportProtocol.JSONRPC.value,
                              protocol_version=constants.PROTOCOL_VERSION_0_3),
        ],
        capabilities=pb.AgentCapabilities(streaming=False, push_notifications=False, extended_agent_card=True),
        default_input_modes=["application/json", "text/plain"],
        default_output_modes=["application/json"],
        skills=_skills(db, tenant),
        security_schemes={"bearer": pb.SecurityScheme(http_auth_security_scheme=pb.HTTPAuthSecurityScheme(
            scheme="Bearer", description="A Soorma API key (sk_...) or a JWT"))},
        security_requirements=[pb.SecurityRequirement(schemes={"bearer": pb.StringList()})],
    )


def card_json(card: pb.AgentCard) -> dict[str, Any]:
    """``card`` as JSON (protobuf JSON, camelCase) with the SDK's 0.3 compatibility fields merged in (``url``,
    ``protocolVersion``, ``preferredTransport``, ...), derived from its 0.3 interface."""
    return agent_card_to_dict(card)


def base_url(request: Request) -> str:
    """The API's base URL as clients reach it: ``SOORMA_API_URL`` when set, else the request's own."""
    return settings.API_URL.get() or str(request.base_url).rstrip("/")


# -- goals as tasks ---------------------------------------------------------------------------------------------------
def _timestamp(value: str | datetime | None) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value)


def task_from_goal(goal: dict[str, Any]) -> pb.Task:
    """The A2A 1.0 ``Task`` of a goal row (``goal_id``, ``goal_type``, ``status``, ``result``, ``error``,
    ``session_id``, ``created_at``, ``completed_at``; ``events`` when present), states as in the module docstring;
    ``contextId`` is the goal's session, else its own id."""
    goal_id = goal["goal_id"]
    status = pb.TaskStatus(state=GOAL_TASK_STATES.get(goal["status"], pb.TASK_STATE_UNSPECIFIED))
    when = _timestamp(goal.get("completed_at") or goal.get("created_at"))
    if when is not None:
        status.timestamp.FromDatetime(when)
    if goal["status"] in ("failed", "cancelled") and goal.get("error"):
        status.message.CopyFrom(pb.Message(message_id=f"{goal_id}-status", role=pb.ROLE_AGENT, task_id=goal_id,
                                           parts=[pb.Part(text=str(goal["error"]))]))
    task = pb.Task(id=goal_id, context_id=goal.get("session_id") or goal_id, status=status)
    if goal["status"] == "completed" and goal.get("result") is not None:
        task.artifacts.append(pb.Artifact(artifact_id=f"{goal_id}-result", name="result",
                                          parts=[pb.Part(data=ParseDict(goal["result"], struct_pb2.Value()),
                                                         media_type="application/json")]))
    metadata: dict[str, Any] = {"goal_type": goal["goal_type"]}
    if "events" in goal:
        metadata["events"] = goal["events"]
    task.metadata.update(metadata)
    return task


def _identity(context: ServerCallContext) -> Identity:
    identity = context.state.get("identity")
    if not isinstance(identity, Identity):  # every A2A route has the authorizer's identity: a bug otherwise
        raise InternalError(message="no caller identity")
    if context.tenant and context.tenant != identity.platform_tenant_id:
        # A request may name a tenant (a2a.proto's `tenant`); the caller's own is the only one it can act in.
        raise InvalidParamsError(message=f"tenant {context.tenant[:100]!r} is not the caller's tenant")
    return identity


def _refused(exc: Exception, *, cancelling: bool = False) -> NoReturn:
    """Raise the A2A error for an exception of the goal API (its 4xx answers and policy refusals)."""
    if isinstance(exc, PolicyViolation):
        raise InvalidParamsError(message=f"refused by policy rule {exc.rule!r}: {exc.message}",
                                 data={"rule": exc.rule}) from None
    if isinstance(exc, HTTPException):
        if exc.status_code == 404:
            raise TaskNotFoundError(message=str(exc.detail)) from None
        if exc.status_code == 409 and cancelling:
            raise TaskNotCancelableError(message=str(exc.detail)) from None
        if exc.status_code in (409, 413, 422):
            raise InvalidParamsError(message=str(exc.detail)) from None
        raise InternalError(message=str(exc.detail)) from None
    raise exc


class GoalTaskStore(TaskStore):
    """The SDK's ``TaskStore`` over ``gateway.goals``: every read is made under the identity of the call
    (``context.state["identity"]``), so row-level security shows a caller its own goals only. Read-only: a goal is
    written by the goal API and the tracker, never through this store (``save``/``delete`` raise
    ``UnsupportedOperationError``)."""

    def __init__(self, db: Database, goals: Goals) -> None:
        self.db = db
        self.goals = goals

    async def get(self, task_id: str, context: ServerCallContext) -> pb.Task | None:
        """The task of goal ``task_id``, or None when the caller cannot see it (or it is not a goal id)."""
        try:
            goal = await run_in_threadpool(self.goals.get, _identity(context), task_id)
        except HTTPException as exc:
            if exc.status_code == 404:
                return None
            raise
        return task_from_goal(goal)

    async def list(self, params: pb.ListTasksRequest, context: ServerCallContext) -> pb.ListTasksResponse:
        """The caller's tasks, newest first, filtered by ``context_id``, ``status`` and ``status_timestamp_after``
        (the goal's completion time, else its creation time), ``page_size`` (1-100, default 50) per page from
        ``page_token``; ``total_size`` counts every match. Raises ``InvalidParamsError`` for a bad page size or
        token."""
        identity = _identity(context)
        size = params.page_size if params.HasField("page_size") else DEFAULT_PAGE_SIZE
        if not 1 <= size <= MAX_PAGE_SIZE:
            raise InvalidParamsError(message=f"pageSize must be 1-{MAX_PAGE_SIZE}")
        where: list[str] = []
        values: list[Any] = []
        if params.context_id:
            where.append("session_id = %s")
            values.append(params.context_id)
        if params.status != pb.TASK_STATE_UNSPECIFIED:
            where.append("status = any(%s)")
            values.append(_GOAL_STATUSES_OF_STATE.get(params.status, ["(no goal has this state)"]))
        if params.HasField("status_timestamp_after"):
            where.append("coalesce(completed_at, created_at) > %s")
            values.append(params.status_timestamp_after.ToDatetime(tzinfo=UTC))
        page, page_values = list(where), list(values)
        if params.page_token:
            try:
                created, gid = decode_cursor(params.page_token, 2)
                page_values += [datetime.fromisoformat(created), str(uuid.UUID(gid))]
            except (HTTPException, ValueError):
                raise InvalidParamsError(message="invalid pageToken") from None
            page.append("(created_at, goal_id) < (%s, %s)")
        try:
            rows, total = await run_in_threadpool(self._query, identity, where, values, page, page_values, size)
        except psycopg.DataError as exc:  # e.g. a NUL character in contextId
            raise InvalidParamsError(message=f"invalid value: {str(exc).splitlines()[0][:300]}") from None
        more = len(rows) > size
        rows = rows[:size]
        token = encode_cursor(rows[-1]["created_at"], rows[-1]["goal_id"]) if more else ""
        return pb.ListTasksResponse(tasks=[task_from_goal(row) for row in rows], next_page_token=token,
                                    page_size=size, total_size=total)

    def _query(self, identity: Identity, where: list[str], values: list[Any], page: list[str],
               page_values: list[Any], size: int) -> tuple[list[dict[str, Any]], int]:
        def condition(parts: list[str]) -> str:
            return " and ".join(parts) if parts else "true"

        with self.db.transaction(identity) as conn:
            total = conn.execute(f"select count(*) as n from gateway.goals where {condition(where)}",
                                 values).fetchone()["n"]
            rows = conn.execute(
                "select goal_id::text as goal_id, goal_type, status, result, error, session_id, created_at,"
                f" completed_at from gateway.goals where {condition(page)}"
                " order by created_at desc, goal_id desc limit %s",
                [*page_values, size + 1],
            ).fetchall()
        return [{**row, "created_at": iso(row["created_at"]), "completed_at": iso(row["completed_at"])}
                for row in rows], total

    async def save(self, task: pb.Task, context: ServerCallContext) -> None:
        """Not supported: tasks are goals, written by the goal API and the tracker."""
        raise UnsupportedOperationError(message="tasks are goals: they are not written through the task store")

    async def delete(self, task_id: str, context: ServerCallContext) -> None:
        """Not supported (goals are kept; see :meth:`save`)."""
        raise UnsupportedOperationError(message="tasks are goals: they are not deleted through the task store")


def goal_input(params: pb.SendMessageRequest) -> tuple[str, dict[str, Any]]:
    """``(goal_type, data)`` of a ``SendMessage`` (see the module docstring). Raises ``UnsupportedOperationError``
    for a message that continues a task, ``InvalidParamsError`` without a goal type or for a data part that is not
    an object, ``ContentTypeNotSupportedError`` for file parts (``raw``/``url``)."""
    message = params.message
    if not message.message_id:  # it is the goal's idempotency key: without one, unrelated messages would collide
        raise InvalidParamsError(message="message.messageId is required")
    if message.task_id:
        raise UnsupportedOperationError(message="continuing a task is not supported: send a new message")
    metadata = {**MessageToDict(message.metadata), **MessageToDict(params.metadata)}
    goal_type = metadata.get("goal_type") or settings.A2A_DEFAULT_GOAL_TYPE.get()
    if not isinstance(goal_type, str) or not goal_type:
        raise InvalidParamsError(message="metadata.goal_type is required (no default goal type is configured)")
    data: dict[str, Any] = {}
    texts: list[str] = []
    for part in message.parts:
        content = part.WhichOneof("content")
        if content == "text":
            texts.append(part.text)
        elif content == "data":
            value = MessageToDict(part.data)
            if not isinstance(value, dict):
                raise InvalidParamsError(message="a data part must hold a JSON object")
            data.update(value)
        else:
            raise ContentTypeNotSupportedError(message="only text and data parts are supported, not files")
    if texts:
        data.setdefault("text", "\n".join(texts))
    return goal_type, data


class GoalRequestHandler(RequestHandler):
    """The A2A 1.0 operations on goals (module docstring), for every transport of the SDK."""

    def __init__(self, db: Database, goals: Goals) -> None:
        self.db = db
        self.goals = goals
        self.store = GoalTaskStore(db, goals)

    @validate_request_params  # the fields a2a.proto marks REQUIRED: InvalidParamsError when missing
    async def on_get_task(self, params: pb.GetTaskRequest, context: ServerCallContext) -> pb.Task | None:
        """``GetTask``: the task of the caller's goal ``params.id``; ``TaskNotFoundError`` for any other id."""
        task = await self.store.get(params.id, context)
        if task is None:
            raise TaskNotFoundError(message=f"task {params.id[:100]!r} not found")
        return task

    @validate_request_params
    async def on_list_tasks(self, params: pb.ListTasksRequest, context: ServerCallContext) -> pb.ListTasksResponse:
        """``ListTasks``: :meth:`GoalTaskStore.list`, artifacts only with ``includeArtifacts``."""
        page = await self.store.list(params, context)
        if not params.include_artifacts:
            for task in page.tasks:
                task.ClearField("artifacts")
        return page

    @validate_request_params
    async def on_cancel_task(self, params: pb.CancelTaskRequest, context: ServerCallContext) -> pb.Task | None:
        """``CancelTask``: cancels the caller's goal (``soorma.goal.cancel`` is published to its agents) and answers
        the canceled task; ``TaskNotCancelableError`` once it ended, ``TaskNotFoundError`` for any other id."""
        identity = _identity(context)
        try:
            goal = await run_in_threadpool(self.goals.cancel, identity, params.id, "cancelled through A2A")
        except HTTPException as exc:
            _refused(exc, cancelling=True)
        return task_from_goal(goal)

    @validate_request_params
    async def on_message_send(self, params: pb.SendMessageRequest, context: ServerCallContext) -> pb.Task:
        """``SendMessage``: submits the goal (:func:`goal_input`) and, unless ``returnImmediately``, waits for it to
        end (≤ ``SOORMA_A2A_BLOCKING_SECONDS``, ≤ 25 s). Policy and rate limits apply as to ``POST /v1/goals``: a
        refusal is ``InvalidParamsError`` naming the rule; a bus that did not acknowledge is ``InternalError`` (the
        goal stays pending: resend the same ``messageId``)."""
        identity = _identity(context)
        goal_type, data = goal_input(params)
        session = params.message.context_id[:255] or None
        wait = 0.0 if params.configuration.return_immediately else min(settings.A2A_BLOCKING_SECONDS.get(),
                                                                        MAX_WAIT_S)

        def submit_and_wait() -> dict[str, Any]:
            submitted = self.goals.submit(identity, goal_type, data, session_id=session,
                                          idempotency_key=f"a2a:{params.message.message_id}"[:255])
            if submitted.error_status is not None:
                if submitted.error_status == 413:
                    raise InvalidParamsError(message=submitted.error or "message too large")
                raise InternalError(message=f"{submitted.error}; send the same messageId again")
            return self.goals.get(identity, submitted.goal_id, wait_s=wait)

        try:
            goal = await run_in_threadpool(submit_and_wait)
        except (HTTPException, PolicyViolation) as exc:
            _refused(exc)
        except (psycopg.DataError, psycopg.errors.ProgramLimitExceeded) as exc:
            # what PostgreSQL cannot store (a NUL character, an oversized value): the request's fault, as for
            # POST /v1/goals (422 there)
            raise InvalidParamsError(message=f"invalid value: {str(exc).splitlines()[0][:300]}") from None
        return task_from_goal(goal)

    async def on_message_send_stream(self, params: pb.SendMessageRequest,
                                     context: ServerCallContext) -> AsyncGenerator[Event]:
        """Not supported (``streaming: false``): there is no live goal stream yet."""
        raise UnsupportedOperationError(message="streaming is not supported: use SendMessage and GetTask")
        yield  # an async generator, as the interface declares

    async def on_subscribe_to_task(self, params: pb.SubscribeToTaskRequest,
                                   context: ServerCallContext) -> AsyncGenerator[Event]:
        """Not supported (``streaming: false``)."""
        raise UnsupportedOperationError(message="streaming is not supported: poll with GetTask")
        yield

    async def on_create_task_push_notification_config(self, params: pb.TaskPushNotificationConfig,
                                                      context: ServerCallContext) -> pb.TaskPushNotificationConfig:
        """Not supported (``pushNotifications: false``)."""
        raise PushNotificationNotSupportedError

    async def on_get_task_push_notification_config(self, params: pb.GetTaskPushNotificationConfigRequest,
                                                   context: ServerCallContext) -> pb.TaskPushNotificationConfig:
        """Not supported (``pushNotifications: false``)."""
        raise PushNotificationNotSupportedError

    async def on_list_task_push_notification_configs(
        self, params: pb.ListTaskPushNotificationConfigsRequest, context: ServerCallContext,
    ) -> pb.ListTaskPushNotificationConfigsResponse:
        """Not supported (``pushNotifications: false``)."""
        raise PushNotificationNotSupportedError

    async def on_delete_task_push_notification_config(self, params: pb.DeleteTaskPushNotificationConfigRequest,
                                                      context: ServerCallContext) -> None:
        """Not supported (``pushNotifications: false``)."""
        raise PushNotificationNotSupportedError

    async def on_get_extended_agent_card(self, params: pb.GetExtendedAgentCardRequest,
                                         context: ServerCallContext) -> pb.AgentCard:
        """``GetExtendedAgentCard``: the card whose skills are the caller's own tenant's agents."""
        identity = _identity(context)
        request = context.state.get("request")
        base = base_url(request) if isinstance(request, Request) else settings.API_URL.get() or ""
        return await run_in_threadpool(agent_card, self.db, base, identity.platform_tenant_id)


class _Caller(User):
    """The authorizer's identity as the SDK's ``User``."""

    def __init__(self, identity: Identity) -> None:
        self.identity = identity

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def user_name(self) -> str:
        return self.identity.principal_id


class IdentityContextBuilder(DefaultServerCallContextBuilder):
    """The SDK's call context with the authorizer's identity (``state["identity"]``, and as ``user``) and the
    request (``state["request"]``, for the card's base URL)."""

    def build(self, request: Request) -> ServerCallContext:
        context = super().build(request)
        identity = identity_of(request)
        context.user = _Caller(identity)
        context.state["identity"] = identity
        context.state["request"] = request
        return context


class A2AServer:
    """The SDK's transports over one :class:`GoalRequestHandler`: ``jsonrpc`` (with the 0.3 method names) and
    ``rest`` (HTTP+JSON 1.0)."""

    def __init__(self, db: Database, goals: Goals) -> None:
        self.handler = GoalRequestHandler(db, goals)
        builder = IdentityContextBuilder()
        self.jsonrpc = JsonRpcDispatcher(self.handler, builder, enable_v0_3_compat=True)
        self.rest = RestDispatcher(self.handler, builder)


__all__ = ["A2AServer", "GoalRequestHandler", "GoalTaskStore", "agent_card", "card_json", "goal_input",
           "task_from_goal"]
