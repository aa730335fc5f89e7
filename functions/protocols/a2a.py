"""A2A (Agent2Agent protocol 1.0, https://a2a-protocol.org/v1.0.0/specification/) on goals: the gateway's routes.

The protocol itself — the agent card, the request handler on goals, the task store — is
:mod:`soorma.functions.protocols.a2a_server`, served through the ``a2a-sdk`` 1.x transports; this module only routes
to them, behind the authorizer, and imports them on the first A2A request (the SDK brings protobuf, about 0.3 s,
which a cold start that serves no A2A request should not pay).

* ``GET /.well-known/agent-card.json`` (public) — the platform's 1.0 agent card (with the 0.3 card fields merged in
  for older clients). Its skills are the agents in the registry of the tenant named by ``SOORMA_A2A_CARD_TENANT``
  (the local stack: ``local``); without it the public card has no skills. ``capabilities.extendedAgentCard`` is
  true: the extended card (``GetExtendedAgentCard``) has the caller's own tenant's agents.
* ``POST /v1/a2a`` — the JSON-RPC 2.0 binding: ``SendMessage``, ``GetTask``, ``ListTasks``, ``CancelTask``,
  ``GetExtendedAgentCard`` with ``A2A-Version: 1.0``; the protocol 0.3 methods (``message/send``, ``tasks/get``,
  ``tasks/cancel``, ``agent/getAuthenticatedExtendedCard``) without the header, as 0.3 clients send them.
* ``/v1/a2a/...`` — the HTTP+JSON binding (spec §11): ``POST message:send``, ``GET tasks``, ``GET tasks/{id}``,
  ``POST tasks/{id}:cancel``, ``GET extendedAgentCard``; ``message:stream``, ``tasks/{id}:subscribe`` and the push
  notification configurations answer the protocol's "not supported" errors (no live goal stream or webhooks yet).

Protocol errors are the binding's own: JSON-RPC error objects in a 200 answer, or HTTP 4xx with a
``google.rpc.Status`` body on HTTP+JSON. A request without a credential is refused (401) before any of them.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from soorma.functions.gateway.goals import Goals
from soorma.functions.shared import settings
from soorma.functions.shared.db import Database
from soorma.functions.shared.service import current_identity
from soorma.identity import Identity

#: The HTTP+JSON binding's operations: ``(method, path below /v1/a2a, RestDispatcher method, supported)``. A
#: ``:subscribe`` route comes before ``tasks/{id}``, which would otherwise take ``GET tasks/x:subscribe``. The
#: unsupported ones (streaming, push notifications) are served, to answer the protocol's own error, but left out of
#: the OpenAPI document: they have no successful answer to describe.
REST_OPERATIONS: tuple[tuple[str, str, str, bool], ...] = (
    ("POST", "/message:send", "on_message_send", True),
    ("POST", "/message:stream", "on_message_send_stream", False),
    ("POST", "/tasks/{id}:cancel", "on_cancel_task", True),
    ("GET", "/tasks/{id}:subscribe", "on_subscribe_to_task", False),
    ("POST", "/tasks/{id}:subscribe", "on_subscribe_to_task", False),
    ("GET", "/tasks/{id}/pushNotificationConfigs/{push_id}", "get_push_notification", False),
    ("DELETE", "/tasks/{id}/pushNotificationConfigs/{push_id}", "delete_push_notification", False),
    ("POST", "/tasks/{id}/pushNotificationConfigs", "set_push_notification", False),
    ("GET", "/tasks/{id}/pushNotificationConfigs", "list_push_notifications", False),
    ("GET", "/tasks/{id}", "on_get_task", True),
    ("GET", "/tasks", "list_tasks", True),
    ("GET", "/extendedAgentCard", "handle_authenticated_agent_card", True),
)

#: A JSON-RPC 2.0 response (https://www.jsonrpc.org/specification#response_object): the method's result (the A2A
#: 1.0 or 0.3 answer of the method called) or an error object.
JSONRPC_RESPONSE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["jsonrpc", "id"],
    "properties": {
        "jsonrpc": {"type": "string", "enum": ["2.0"]},
        "id": {"oneOf": [{"type": "string"}, {"type": "integer"}, {"type": "null"}]},
        "result": {"description": "the method's result"},
        "error": {"type": "object", "required": ["code", "message"],
                  "properties": {"code": {"type": "integer"}, "message": {"type": "string"}, "data": {}}},
    },
}

#: Where the gateway's OpenAPI document keeps the A2A schemas (a prefix keeps them apart from the gateway's own).
A2A_SCHEMA_PREFIX = "a2a."


def document_answers(document: dict[str, Any]) -> dict[str, Any]:
    """Set the request and answer schemas of the A2A operations in the gateway's OpenAPI ``document`` (modified in
    place and returned) from the A2A 1.0 protobuf messages they are (the SDK's proto → JSON Schema conversion):
    the agent card, the JSON-RPC request envelope and ``SendMessageRequest`` bodies, ``Task``/``ListTasksResponse``
    answers. Idempotent."""
    from a2a.server.routes._jsonrpc_schema import envelope_schema
    from a2a.server.routes._proto_schema import message_schema
    from a2a.types import a2a_pb2 as pb

    definitions: dict[str, Any] = {}

    def ref(message: Any) -> dict[str, Any]:
        return message_schema(message.DESCRIPTOR, definitions)

    answers = {
        ("/.well-known/agent-card.json", "get"): ref(pb.AgentCard),
        ("/v1/a2a/extendedAgentCard", "get"): ref(pb.AgentCard),
        ("/v1/a2a/message:send", "post"): ref(pb.SendMessageResponse),
        ("/v1/a2a/tasks/{id}", "get"): ref(pb.Task),
        ("/v1/a2a/tasks/{id}:cancel", "post"): ref(pb.Task),
        ("/v1/a2a/tasks", "get"): ref(pb.ListTasksResponse),
    }
    bodies = {("/v1/a2a/message:send", "post"): ref(pb.SendMessageRequest),
              ("/v1/a2a", "post"): envelope_schema(definitions)}
    prefix = "#/components/schemas/"

    def prefixed(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: (prefix + A2A_SCHEMA_PREFIX + v[len(prefix):] if k == "$ref" and isinstance(v, str)
                        and v.startswith(prefix) else prefixed(v)) for k, v in value.items()}
        if isinstance(value, list):
            return [prefixed(item) for item in value]
        return value

    components = document.setdefault("components", {}).setdefault("schemas", {})
    components.update({A2A_SCHEMA_PREFIX + name: prefixed(schema) for name, schema in definitions.items()})
    paths = document["paths"]
    answers[("/v1/a2a", "post")] = JSONRPC_RESPONSE_SCHEMA
    for (path, method), schema in answers.items():
        answer = paths[path][method]["responses"]["200"]
        answer.setdefault("content", {}).setdefault("application/json", {})["schema"] = prefixed(schema)
    for (path, method), schema in bodies.items():
        paths[path][method]["requestBody"] = {"required": True,
                                              "content": {"application/json": {"schema": prefixed(schema)}}}
    return document


@functools.cache
def _server(db: Database, goals: Goals) -> Any:
    from soorma.functions.protocols.a2a_server import A2AServer

    return A2AServer(db, goals)


def create_router(db: Database, goals: Goals) -> APIRouter:
    """The A2A routes of the gateway (module docstring) over ``db`` and ``goals``."""
    router = APIRouter()

    @router.get("/.well-known/agent-card.json", tags=["a2a"])
    async def public_agent_card(request: Request) -> JSONResponse:
        """The platform's public A2A 1.0 agent card (skills from the registry of ``SOORMA_A2A_CARD_TENANT``)."""
        from soorma.functions.protocols.a2a_server import agent_card, base_url, card_json

        card = await run_in_threadpool(agent_card, db, base_url(request), settings.A2A_CARD_TENANT.get())
        return JSONResponse(card_json(card))

    @router.post("/v1/a2a", tags=["a2a"])
    async def json_rpc(request: Request, identity: Identity = Depends(current_identity)) -> Response:
        """A2A JSON-RPC 2.0 binding (1.0 methods with ``A2A-Version: 1.0``, 0.3 method names without). Protocol
        errors are JSON-RPC error objects in a 200 answer."""
        return await _server(db, goals).jsonrpc.handle_requests(request)

    def rest_endpoint(operation: str, path: str, summary: str) -> Callable[..., Awaitable[Response]]:
        async def dispatch(request: Request) -> Response:
            response: Response = await getattr(_server(db, goals).rest, operation)(request)
            return response

        # The path parameters are declared (the dispatcher reads them from the request) so the OpenAPI document
        # names them.
        endpoint: Callable[..., Awaitable[Response]]
        if "{push_id}" in path:
            async def endpoint(request: Request, id: str, push_id: str,
                               identity: Identity = Depends(current_identity)) -> Response:
                return await dispatch(request)
        elif "{id}" in path:
            async def endpoint(request: Request, id: str, identity: Identity = Depends(current_identity)) -> Response:
                return await dispatch(request)
        else:
            async def endpoint(request: Request, identity: Identity = Depends(current_identity)) -> Response:
                return await dispatch(request)

        endpoint.__name__ = f"a2a_rest_{operation}"
        endpoint.__doc__ = summary
        return endpoint

    # `tasks/{id}:cancel` with an empty id is `tasks/:cancel`, which only `GET tasks/{id}` matches: 405.
    custom_method = {405: {"description": "Method Not Allowed: the task id is empty"}}
    for method, path, operation, supported in REST_OPERATIONS:
        router.add_api_route(f"/v1/a2a{path}", rest_endpoint(operation, path, f"A2A HTTP+JSON: {method} {path}"),
                             methods=[method], tags=["a2a"], name=f"a2a {method} {path}",
                             responses=custom_method if "}:" in path else None, include_in_schema=supported)
    return router
