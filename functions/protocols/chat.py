"""The OpenAI-compatible chat API on the gateway, mapped onto goals (OpenAI API reference,
https://platform.openai.com/docs/api-reference/chat and https://platform.openai.com/docs/api-reference/models; the
wire shapes are in :mod:`soorma.functions.protocols.chat_models`).

* ``GET /v1/models`` → ``{"object": "list", "data": [{"id", "object": "model", "created", "owned_by"}]}``: the chat
  entries of the caller's platform tenant. A chat entry is an agent capability with a ``chat_model`` (declared with
  ``@planner.on_goal(goal_type, chat=...)`` or ``@worker.on_task(event_type, chat=...)`` in the SDK and stored by the
  registry in the agent's ``capabilities``); the model id is that name and it answers with a goal of the
  capability's event type. Only the caller's tenant's registry is read (row-level security), so another tenant's
  models are neither listed nor usable. When two agents declare the same model, the one registered first wins.
* ``GET /v1/models/{model}`` → that model, or 404 ``model_not_found``.
* ``POST /v1/chat/completions`` ``{model, messages, stream?, stream_options?}`` → a goal of the model's goal type with
  ``data = {"messages": [{"role", "content"}, ...], "text": <the last user message>}`` (content parts joined into one
  string), waited for at most ``SOORMA_CHAT_WAIT_SECONDS`` (≤ 25 s: API Gateway's integration limit is 30 s). The
  goal's result gives the assistant message: the first string among ``text``, ``answer`` and ``content`` of the
  result (the completion's ``result`` object, else the result event's data), else the result as JSON. ``usage`` is
  all zeros (the platform does not count the agents' tokens) unless the result reports ``usage`` itself. The
  completion's ``id`` is ``chatcmpl-<goal id>``. An ``Idempotency-Key`` header submits one goal per key, as on
  ``POST /v1/goals``.

  With ``stream: true`` the answer is ``text/event-stream``: one ``chat.completion.chunk`` with the role and the
  whole content, one with ``finish_reason: "stop"``, a usage chunk when ``stream_options.include_usage``, then
  ``data: [DONE]``. Only one content chunk: a Lambda function behind the HTTP API answers with one buffered
  response, so the answer is sent once the goal has ended (the goal's progress is in ``GET /v1/goals/{id}``).

Errors are OpenAI's shape, ``{"error": {"message", "type", "param", "code"}}``, for every answer of these routes —
the gateway's own refusals included (401 no or revoked credential, 403 suspended tenant or policy rule, 429 rate
limit with ``Retry-After``, 503 database or event bus unavailable), rewritten by :class:`OpenAIErrorShape`. A request
FastAPI refuses (422) is answered 400 ``invalid_request_error`` with ``param`` naming the field. Unknown model: 404
``model_not_found``. A goal still running at the end of the wait: 504 ``goal_timeout``; a goal that failed or was
cancelled: 502 ``goal_failed`` / ``goal_cancelled`` — each with ``goal_id`` in the error object, so the client can
read the goal at ``GET /v1/goals/{goal_id}``, and with ``x-should-retry: false`` so the ``openai`` client does not
submit the same conversation again. A credential the authorizer refuses never reaches the function: API Gateway
answers it (401 ``{"message": "Unauthorized"}``, 403 ``{"message": "Forbidden"}``) and an HTTP API cannot reshape
that answer; the ``openai`` client still raises ``AuthenticationError`` / ``PermissionDeniedError`` for it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Header
from fastapi.responses import JSONResponse, Response
from psycopg.types.json import Jsonb
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from soorma.functions.gateway.goals import MAX_WAIT_S, Goals
from soorma.functions.protocols.chat_models import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatErrorAnswer,
    Choice,
    ChunkChoice,
    Delta,
    Model,
    ModelList,
    Usage,
    dump,
)
from soorma.functions.shared import settings
from soorma.functions.shared.db import Database
from soorma.functions.shared.service import current_identity
from soorma.identity import Identity

#: The key of a registry capability that makes it a chat entry (its value is the model id).
CHAT_MODEL_KEY = "chat_model"

#: Paths whose error answers :class:`OpenAIErrorShape` rewrites into OpenAI's shape.
CHAT_PATHS = ("/v1/chat/completions", "/v1/models")

_RESULT_TEXT_FIELDS = ("text", "answer", "content")

#: OpenAI's error ``type`` for each HTTP status (https://platform.openai.com/docs/guides/error-codes).
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    504: "timeout_error",
}

_RETRY_AFTER = {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds"}}
_ERROR_DOCS: dict[int | str, dict[str, Any]] = {
    status: {"model": ChatErrorAnswer, "description": text, **({"headers": _RETRY_AFTER} if retry else {})}
    for status, text, retry in (
        (400, "Invalid request (``invalid_request_error``, ``param`` names the field)", False),
        (401, "No valid credential", False),
        (403, "Refused (suspended tenant, policy rule: ``code`` names it)", False),
        (404, "Unknown model (``model_not_found``)", False),
        (409, "The Idempotency-Key was used with another request", False),
        (413, "The goal is too large for the event bus", False),
        (429, "Rate limit exceeded; ``Retry-After`` says when to retry", True),
        (502, "The goal failed or was cancelled (``goal_id`` in the error)", False),
        (503, "A platform dependency is unavailable; ``Retry-After`` says when to retry", True),
        (504, "The goal did not end within the wait (``goal_id`` in the error: poll ``GET /v1/goals/{goal_id}``)",
         False),
    )
}


class ChatError(Exception):
    """An error answer in OpenAI's shape: HTTP ``status``, ``message``, ``code`` (machine-readable reason or None),
    ``param`` (the request field at fault or None), ``extra`` fields of the error object (``goal_id``), response
    ``headers``."""

    def __init__(self, status: int, message: str, *, code: str | None = None, param: str | None = None,
                 extra: dict[str, Any] | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.extra = extra or {}
        self.headers = headers or {}

    def response(self) -> JSONResponse:
        """The answer: ``{"error": {...}}`` with this error's status and headers."""
        return JSONResponse(error_body(self.status, self.message, code=self.code, param=self.param, **self.extra),
                            status_code=self.status, headers=self.headers)


def error_body(status: int, message: str, *, code: str | None = None, param: str | None = None,
               **extra: Any) -> dict[str, Any]:
    """OpenAI's error object for an answer of HTTP ``status``: ``{"error": {"message", "type", "param", "code",
    **extra}}``, ``type`` from the status (``server_error`` for 5xx other than 504)."""
    kind = _ERROR_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return {"error": {"message": message, "type": kind, "param": param, "code": code, **extra}}


def _validation_param(errors: list[Any]) -> tuple[str, str | None]:
    """A message and the ``param`` (dotted location without ``body``) of FastAPI's validation errors."""
    first = errors[0] if errors and isinstance(errors[0], dict) else {}
    location = [str(p) for p in first.get("loc") or [] if p != "body"]
    param = ".".join(location) or None
    message = str(first.get("msg") or "invalid request")
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return (f"{param}: {message}{more}" if param else f"{message}{more}"), param


def openai_error(status: int, body: Any) -> tuple[int, dict[str, Any]]:
    """The OpenAI-shaped ``(status, body)`` for an error answer the gateway gave in its own shape (``{"detail":
    ...}``, maybe with a policy ``rule``): a 422 becomes 400 ``invalid_request_error`` naming the field; other
    statuses keep theirs. A body already in OpenAI's shape is returned as it is."""
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return status, body
    detail = body.get("detail") if isinstance(body, dict) else body
    param = None
    if status == 422 and isinstance(detail, list):
        message, param = _validation_param(detail)
    else:
        message = str(detail) if detail is not None else f"HTTP {status}"
    code = body.get("rule") if isinstance(body, dict) and isinstance(body.get("rule"), str) else None
    if status == 422:
        status = 400
    return status, error_body(status, message, code=code, param=param)


class OpenAIErrorShape:
    """ASGI middleware: an error answer (status ≥ 400, JSON) to a request under :data:`CHAT_PATHS` is rewritten into
    OpenAI's error shape (:func:`openai_error`), whatever produced it — the identity guard and admission (401, 403,
    429, 503), FastAPI's validation (422 → 400), an exception handler. Other paths and successful answers pass
    through untouched (a stream is not buffered)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not any(path == p or path.startswith(p + "/") for p in CHAT_PATHS):
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start" and message["status"] >= 400:
                start = message
                return
            if start is None:
                await send(message)
                return
            if message["type"] != "http.response.body":
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body"):
                return
            status, body = start["status"], b"".join(chunks)
            try:
                status, rewritten = openai_error(status, json.loads(body))
            except ValueError:
                status, rewritten = openai_error(status, {"detail": body.decode("utf-8", "replace")[:500]})
            payload = json.dumps(rewritten).encode()
            headers = [(k, v) for k, v in start.get("headers", []) if k.lower() not in (b"content-length",
                                                                                         b"content-type")]
            headers += [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": payload})

        await self.app(scope, receive, capture)


# -- chat entries in the registry ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChatEntry:
    """A model: ``model`` (its id), ``goal_type`` (the event type its goals have), ``agent_id`` (who declared it) and
    ``created`` (the agent's registration, Unix seconds)."""

    model: str
    goal_type: str
    agent_id: str
    created: int

    def as_model(self) -> Model:
        """The OpenAI ``model`` object."""
        return Model(id=self.model, created=self.created, owned_by=self.agent_id)


def _entries(rows: list[dict[str, Any]], model: str | None = None) -> list[ChatEntry]:
    """The chat entries of registry rows, in the rows' order, the first of each model id only."""
    found: dict[str, ChatEntry] = {}
    for row in rows:
        for capability in row["capabilities"] or []:
            name = capability.get(CHAT_MODEL_KEY) if isinstance(capability, dict) else None
            consumed = capability.get("consumed_event") if isinstance(capability, dict) else None
            goal_type = consumed.get("event_name") if isinstance(consumed, dict) else None
            if not isinstance(name, str) or not isinstance(goal_type, str) or (model is not None and name != model):
                continue
            found.setdefault(name, ChatEntry(name, goal_type, row["agent_id"], int(row["created_at"].timestamp())))
    return list(found.values())


def chat_entries(db: Database, identity: Identity, model: str | None = None) -> list[ChatEntry]:
    """The chat entries the caller's platform tenant registered (row-level security confines the query to it), or
    only those of ``model``; ordered by model id. When agents declare the same model id, the one registered first
    (then the smallest agent id) is the model."""
    where, params = f"capabilities @? '$[*].{CHAT_MODEL_KEY} ? (@.type() == \"string\")'", []
    if model is not None:
        where, params = "capabilities @> %s", [Jsonb([{CHAT_MODEL_KEY: model}])]
    with db.transaction(identity) as conn:
        rows = conn.execute(
            f"select agent_id, capabilities, created_at from registry.agents where {where}"
            " order by created_at, agent_id", params,
        ).fetchall()
    return sorted(_entries(rows, model), key=lambda entry: entry.model)


def _model_not_found(model: str) -> ChatError:
    return ChatError(404, f"The model {model[:200]!r} does not exist or you do not have access to it: "
                          "GET /v1/models lists the chat entries of your tenant", code="model_not_found",
                     param="model")


# -- goals as completions --------------------------------------------------------------------------------------------


def goal_data(request: ChatCompletionRequest) -> dict[str, Any]:
    """The goal's ``data`` for a chat request: ``{"messages": [{"role", "content"}], "text": <last user message>}``;
    a 400 when no message is from the user."""
    messages = [{"role": m.role, "content": m.text()} for m in request.messages]
    last_user = next((m["content"] for m in reversed(messages) if m["role"] == "user"), None)
    if last_user is None:
        raise ChatError(400, "messages must contain a message with role 'user'", param="messages")
    return {"messages": messages, "text": last_user}


def _answer(result: Any) -> Any:
    """The part of a goal's result that answers it: the completion's ``result`` when the result event has one."""
    if isinstance(result, dict) and "result" in result and not any(k in result for k in _RESULT_TEXT_FIELDS):
        return result["result"]
    return result


def result_text(result: Any) -> str:
    """The assistant message for a goal's result: the first string among ``text``, ``answer`` and ``content`` of the
    answer (:func:`_answer`), the answer itself when it is a string, else the answer as JSON."""
    answer = _answer(result)
    if isinstance(answer, str):
        return answer
    if isinstance(answer, dict):
        for field in _RESULT_TEXT_FIELDS:
            if isinstance(answer.get(field), str):
                return str(answer[field])
    return json.dumps(answer, ensure_ascii=False)


def result_usage(result: Any) -> Usage:
    """Token usage the goal's result reports (``usage`` of the answer or of the result event, with OpenAI's integer
    fields), else zeros: the platform does not count its agents' tokens."""
    for holder in (_answer(result), result):
        usage = holder.get("usage") if isinstance(holder, dict) else None
        if isinstance(usage, dict):
            try:
                return Usage.model_validate(usage)
            except ValueError:
                continue
    return Usage()


def _created(goal: dict[str, Any]) -> int:
    return int(datetime.fromisoformat(goal["created_at"]).timestamp())


def completion(goal: dict[str, Any], model: str) -> ChatCompletion:
    """The chat completion of an ended goal: raises the :class:`ChatError` of a goal that did not complete (504
    still running, 502 failed or cancelled), each naming the goal."""
    goal_id = goal["goal_id"]
    where = {"goal_id": goal_id}
    no_retry = {"x-should-retry": "false"}
    if goal["status"] in ("pending", "running"):
        raise ChatError(504, f"goal {goal_id} is still {goal['status']} after the wait; its answer will be at "
                             f"GET /v1/goals/{goal_id}", code="goal_timeout", extra=where, headers=no_retry)
    if goal["status"] != "completed":
        raise ChatError(502, f"goal {goal_id} {goal['status']}: {goal.get('error') or 'no reason given'}",
                        code="goal_failed" if goal["status"] == "failed" else "goal_cancelled", extra=where,
                        headers=no_retry)
    message = AssistantMessage(content=result_text(goal.get("result")))
    return ChatCompletion(id=f"chatcmpl-{goal_id}", created=_created(goal), model=model,
                          choices=[Choice(message=message)], usage=result_usage(goal.get("result")))


def event_stream(answer: ChatCompletion, include_usage: bool) -> str:
    """``answer`` as server-sent events (https://html.spec.whatwg.org/multipage/server-sent-events.html) of
    ``chat.completion.chunk`` objects: the role and whole content, the stop, the usage (``include_usage``), then
    ``data: [DONE]``."""
    def chunk(choices: list[ChunkChoice], usage: Usage | None = None) -> str:
        event = ChatCompletionChunk(id=answer.id, created=answer.created, model=answer.model, choices=choices,
                                    usage=usage)
        return f"data: {json.dumps(dump(event))}\n\n"

    content = answer.choices[0].message.content
    events = [chunk([ChunkChoice(delta=Delta(role="assistant", content=content))]),
              chunk([ChunkChoice(delta=Delta(), finish_reason="stop")])]
    if include_usage:
        events.append(chunk([], answer.usage))
    return "".join(events) + "data: [DONE]\n\n"


def create_router(db: Database, goals: Goals) -> APIRouter:
    """The chat routes (see the module docstring), over ``db`` (the registry's chat entries) and ``goals``."""
    router = APIRouter(tags=["chat"], responses=_ERROR_DOCS)

    @router.get("/v1/models", response_model=ModelList)
    def list_models(identity: Identity = Depends(current_identity)):
        """The models of the caller's tenant: its agents' chat entries."""
        return ModelList(data=[entry.as_model() for entry in chat_entries(db, identity)])

    @router.get("/v1/models/{model}", response_model=Model)
    def get_model(model: str, identity: Identity = Depends(current_identity)):
        """One model of the caller's tenant, or 404 ``model_not_found``."""
        found = chat_entries(db, identity, model)
        if not found:
            return _model_not_found(model).response()
        return found[0].as_model()

    @router.post("/v1/chat/completions", response_model=ChatCompletion,
                 responses={200: {"content": {"text/event-stream": {}},
                                  "description": "A completion, or with ``stream`` its chunks"}})
    def chat_completions(
        body: ChatCompletionRequest,
        identity: Identity = Depends(current_identity),
        idempotency_key: str | None = Header(None, alias="Idempotency-Key", min_length=1, max_length=255),
    ):
        """A chat completion answered by a goal of the model's goal type (see the module docstring)."""
        try:
            found = chat_entries(db, identity, body.model)
            if not found:
                raise _model_not_found(body.model)
            submitted = goals.submit(identity, found[0].goal_type, goal_data(body), None, idempotency_key)
            if submitted.error_status is not None:
                headers = {"Retry-After": str(submitted.retry_after_s)} if submitted.retry_after_s else {}
                raise ChatError(submitted.error_status, str(submitted.error), code="goal_not_submitted",
                                extra={"goal_id": submitted.goal_id}, headers=headers)
            wait_s = min(settings.CHAT_WAIT_SECONDS.get(), MAX_WAIT_S)
            answer = completion(goals.get(identity, submitted.goal_id, wait_s=wait_s), body.model)
        except ChatError as exc:
            return exc.response()
        if not body.stream:
            return JSONResponse(dump(answer))
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        return Response(event_stream(answer, include_usage), media_type="text/event-stream",
                        headers={"Cache-Control": "no-cache"})

    return router


def install(app: FastAPI, db: Database, goals: Goals) -> None:
    """Serve the chat routes on the gateway ``app`` and answer their errors in OpenAI's shape."""
    app.include_router(create_router(db, goals))
    app.add_middleware(OpenAIErrorShape)
