"""A2A (Agent2Agent protocol 0.3, JSON-RPC transport) mapped onto goals, with the ``a2a-sdk`` package's types
(``a2a.compat.v0_3.types``, the protocol 0.3 models the SDK ships next to its 1.0 protobuf types).

* ``GET /.well-known/agent-card.json`` (public) — the platform's agent card. Its skills are the agents in the registry
  of the tenant named by ``SOORMA_A2A_CARD_TENANT`` (the local stack: ``local``); without it the public card has no
  skills. ``supportsAuthenticatedExtendedCard`` is true: ``GET /v1/a2a/agent-card`` and the JSON-RPC method
  ``agent/getAuthenticatedExtendedCard`` answer the caller's own tenant's card.
* ``POST /v1/a2a`` — JSON-RPC 2.0:

  - ``message/send`` → a goal. ``goal_type`` comes from ``params.metadata.goal_type`` or
    ``params.message.metadata.goal_type`` (else ``SOORMA_A2A_DEFAULT_GOAL_TYPE``); the goal's ``data`` is the
    message's data parts merged, plus ``text`` (the text parts joined). ``contextId`` is the goal's session (without one, the task's ``contextId`` is its own id);
    ``messageId`` its idempotency key (the same message sent twice is one task). With
    ``configuration.blocking`` the answer waits (at most ``SOORMA_A2A_BLOCKING_SECONDS``, default 20, ≤ 25 s)
    for the goal to end. The answer is the ``Task``: ``id`` = goal id, state ``working`` | ``completed`` |
    ``failed`` | ``canceled``, the result as a data artifact.
  - ``tasks/get`` ``{id}`` → the Task; ``tasks/cancel`` ``{id}`` → cancels the goal (``TaskNotCancelableError``
    once it ended); an unknown id is ``TaskNotFoundError``.

Policy and rate limits apply as to ``POST /v1/goals`` (a policy refusal is JSON-RPC error -32003 with the rule).

The answers' schemas in the gateway's OpenAPI document are the a2a SDK's own models (``AgentCard``,
``JSONRPCResponse``), added by :func:`document_answers` when the document is built: the SDK's types are imported
only when needed (about 0.2 s), never on a cold start that serves no A2A request.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from soorma.functions.gateway.goals import Goals
from soorma.functions.gateway.policy import PolicyViolation
from soorma.functions.shared import settings
from soorma.functions.shared.db import Database
from soorma.functions.shared.service import current_identity
from soorma.identity import Identity

PROTOCOL_VERSION = "0.3.0"
POLICY_ERROR = -32003


def _types():
    from a2a.compat.v0_3 import types

    return types


#: Where the gateway's OpenAPI document keeps the a2a SDK's schemas (a prefix keeps them apart from the gateway's own).
A2A_SCHEMA_PREFIX = "a2a."


def document_answers(document: dict[str, Any]) -> dict[str, Any]:
    """Set the 200 answers' schemas of the A2A operations in the gateway's OpenAPI ``document`` (modified in place
    and returned) to the a2a SDK's models they are serialised from: the agent card for both card routes,
    ``JSONRPCResponse`` (a result or an error object) for ``POST /v1/a2a``. Idempotent."""
    from pydantic.json_schema import models_json_schema

    t = _types()
    models = [(t.AgentCard, "serialization"), (t.JSONRPCResponse, "serialization")]
    refs, definitions = models_json_schema(models, ref_template=f"#/components/schemas/{A2A_SCHEMA_PREFIX}{{model}}")
    components = document.setdefault("components", {}).setdefault("schemas", {})
    components.update({A2A_SCHEMA_PREFIX + name: schema for name, schema in definitions["$defs"].items()})
    card, rpc = (refs[model] for model in models)
    for path, method, schema in (("/.well-known/agent-card.json", "get", card), ("/v1/a2a/agent-card", "get", card),
                                 ("/v1/a2a", "post", rpc)):
        answer = document["paths"][path][method]["responses"]["200"]
        answer.setdefault("content", {}).setdefault("application/json", {})["schema"] = schema
    return document


def _base_url(request: Request) -> str:
    configured = settings.API_URL.get()
    if configured:
        return configured
    return str(request.base_url).rstrip("/")


def _skills(db: Database, tenant: str | None) -> list[Any]:
    if not tenant:
        return []
    from soorma.functions.registry.app import query_agents

    t = _types()
    reader = Identity(tenant, tenant, "a2a-card", "a2a-card", "user")
    with db.transaction(reader) as conn:
        rows = query_agents(conn)
    skills = []
    for row in rows:
        consumed = [e for e in row.get("consumed_events") or [] if e]
        skills.append(
            t.AgentSkill(
                id=row["agent_id"],
                name=row["name"],
                description=row.get("description") or f"Soorma agent {row['name']}",
                tags=consumed or ["soorma"],
                examples=[f'{{"goal_type": "{e}"}}' for e in consumed[:3]] or None,
            )
        )
    return skills


def agent_card(db: Database, request: Request, tenant: str | None) -> dict[str, Any]:
    t = _types()
    base = _base_url(request)
    card = t.AgentCard(
        name="Soorma",
        description="Soorma Serverless: goals handled by event-driven agents (Planners, Workers, Tools). "
        "Send a message whose metadata names a goal_type; the task is the goal.",
        url=f"{base}/v1/a2a",
        preferred_transport="JSONRPC",
        protocol_version=PROTOCOL_VERSION,
        version="1",
        capabilities=t.AgentCapabilities(streaming=False, push_notifications=False, state_transition_history=False),
        default_input_modes=["application/json", "text/plain"],
        default_output_modes=["application/json"],
        skills=_skills(db, tenant),
        supports_authenticated_extended_card=True,
        security_schemes={
            "bearer": t.SecurityScheme(root=t.HTTPAuthSecurityScheme(
                type="http", scheme="bearer", description="An API key (sk_...) or a JWT")),
            "apiKey": t.SecurityScheme(root=t.APIKeySecurityScheme(type="apiKey", in_=t.In.header, name="X-API-Key")),
        },
        security=[{"bearer": []}, {"apiKey": []}],
    )
    return card.model_dump(mode="json", by_alias=True, exclude_none=True)


_STATES = {"pending": "submitted", "running": "working", "completed": "completed", "failed": "failed", "cancelled": "canceled"}


def task_from_goal(goal: dict[str, Any]) -> dict[str, Any]:
    t = _types()
    state = t.TaskState(_STATES.get(goal["status"], "unknown"))
    message = None
    if goal["status"] in ("failed", "cancelled") and goal.get("error"):
        message = t.Message(
            role=t.Role.agent,
            message_id=f"{goal['goal_id']}-status",
            parts=[t.Part(root=t.TextPart(text=str(goal["error"])))],
            task_id=goal["goal_id"],
        )
    artifacts = None
    if goal["status"] == "completed" and goal.get("result") is not None:
        result = goal["result"] if isinstance(goal["result"], dict) else {"result": goal["result"]}
        artifacts = [t.Artifact(artifact_id=f"{goal['goal_id']}-result", name="result",
                                parts=[t.Part(root=t.DataPart(data=result))])]
    timestamp = goal.get("completed_at") or goal.get("created_at") or datetime.now(UTC).isoformat()
    task = t.Task(
        id=goal["goal_id"],
        context_id=goal.get("session_id") or goal["goal_id"],
        status=t.TaskStatus(state=state, timestamp=timestamp, message=message),
        artifacts=artifacts,
        metadata={"goal_type": goal["goal_type"], "events": goal.get("events", 0)},
    )
    return task.model_dump(mode="json", by_alias=True, exclude_none=True)


class _RpcError(Exception):
    def __init__(self, error: Any) -> None:
        self.error = error


def _error(request_id: Any, error: Any) -> dict[str, Any]:
    t = _types()
    return t.JSONRPCErrorResponse(id=request_id, error=error).model_dump(mode="json", by_alias=True,
                                                                          exclude_none=True)


def _goal_input(params: Any) -> tuple[str, dict[str, Any]]:
    t = _types()
    message = params.message
    if message.task_id:
        raise _RpcError(t.UnsupportedOperationError(data="continuing a task is not supported: send a new message"))
    meta = {**(message.metadata or {}), **(params.metadata or {})}
    goal_type = meta.get("goal_type") or settings.A2A_DEFAULT_GOAL_TYPE.get()
    if not isinstance(goal_type, str) or not goal_type:
        raise _RpcError(t.InvalidParamsError(data="metadata.goal_type is required"))
    data: dict[str, Any] = {}
    texts: list[str] = []
    for part in message.parts:
        root = part.root
        if isinstance(root, t.DataPart):
            data.update(root.data)
        elif isinstance(root, t.TextPart):
            texts.append(root.text)
        else:
            raise _RpcError(t.ContentTypeNotSupportedError(data="file parts are not supported"))
    if texts:
        data.setdefault("text", "\n".join(texts))
    return goal_type, data


def create_router(db: Database, goals: Goals) -> APIRouter:
    router = APIRouter()

    @router.get("/.well-known/agent-card.json", tags=["a2a"])
    def public_agent_card(request: Request):
        """The platform's public A2A agent card (skills from the registry of ``SOORMA_A2A_CARD_TENANT``)."""
        return JSONResponse(agent_card(db, request, settings.A2A_CARD_TENANT.get()))

    @router.get("/v1/a2a/agent-card", tags=["a2a"])
    def extended_agent_card(request: Request, identity: Identity = Depends(current_identity)):
        """The authenticated extended card: skills from the caller's own tenant's registry."""
        return agent_card(db, request, identity.platform_tenant_id)

    def dispatch(request: Request, identity: Identity, method: str, raw_params: Any) -> Any:
        t = _types()
        if method == "agent/getAuthenticatedExtendedCard":
            return agent_card(db, request, identity.platform_tenant_id)
        try:
            if method == "message/send":
                params = t.MessageSendParams.model_validate(raw_params)
            elif method == "tasks/get":
                params = t.TaskQueryParams.model_validate(raw_params)
            elif method == "tasks/cancel":
                params = t.TaskIdParams.model_validate(raw_params)
            else:
                raise _RpcError(t.MethodNotFoundError(data=f"method {method[:100]!r} is not supported"))
        except ValidationError as exc:
            raise _RpcError(t.InvalidParamsError(data=exc.errors(include_url=False, include_context=False,
                                                                 include_input=False))) from None
        try:
            if method == "message/send":
                goal_type, data = _goal_input(params)
                session = params.message.context_id[:255] if params.message.context_id else None
                submitted = goals.submit(identity, goal_type, data, session_id=session,
                                         idempotency_key=f"a2a:{params.message.message_id}"[:255])
                if submitted.error_status is not None:
                    raise _RpcError(t.InternalError(data=submitted.error))
                wait = 0.0
                if params.configuration and params.configuration.blocking:
                    wait = min(settings.A2A_BLOCKING_SECONDS.get(), 25.0)
                return task_from_goal(goals.get(identity, submitted.goal_id, wait_s=wait))
            if method == "tasks/get":
                return task_from_goal(goals.get(identity, params.id))
            return task_from_goal(goals.cancel(identity, params.id, "cancelled through A2A"))
        except PolicyViolation as exc:
            raise _RpcError(t.JSONRPCError(code=POLICY_ERROR, message="Refused by policy", data=exc.body())) from None
        except HTTPException as exc:
            if exc.status_code == 404:
                raise _RpcError(t.TaskNotFoundError(data=str(exc.detail))) from None
            if exc.status_code == 409 and method == "tasks/cancel":
                raise _RpcError(t.TaskNotCancelableError(data=str(exc.detail))) from None
            if exc.status_code in (409, 422):
                raise _RpcError(t.InvalidParamsError(data=str(exc.detail))) from None
            raise

    @router.post("/v1/a2a", tags=["a2a"])
    async def json_rpc(request: Request, identity: Identity = Depends(current_identity)):
        """A2A JSON-RPC 2.0: ``message/send``, ``tasks/get``, ``tasks/cancel``, ``agent/getAuthenticatedExtendedCard``.
        Protocol errors are JSON-RPC error objects in a 200 answer."""
        from starlette.concurrency import run_in_threadpool

        t = _types()
        try:
            body = json.loads(await request.body())
        except (ValueError, UnicodeDecodeError):
            return JSONResponse(_error(None, t.JSONParseError()))
        request_id = body.get("id") if isinstance(body, dict) else None
        if not isinstance(request_id, (str, int)) or isinstance(request_id, bool):
            request_id = None
        if (
            not isinstance(body, dict)
            or body.get("jsonrpc") != "2.0"
            or not isinstance(body.get("method"), str)
            or ("params" in body and not isinstance(body["params"], (dict, list)))
        ):
            return JSONResponse(_error(request_id, t.InvalidRequestError()))
        try:
            result = await run_in_threadpool(dispatch, request, identity, body["method"], body.get("params"))
        except _RpcError as exc:
            return JSONResponse(_error(request_id, exc.error))
        return JSONResponse({"jsonrpc": "2.0", "id": request_id, "result": result})

    return router
