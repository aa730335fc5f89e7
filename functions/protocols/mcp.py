"""MCP (Model Context Protocol) at ``/v1/mcp``: the caller's tenant's agents as MCP tools, on the official ``mcp``
Python SDK (https://github.com/modelcontextprotocol/python-sdk, 2.x).

Specification: https://modelcontextprotocol.io/specification (revision 2026-07-28, the stateless per-request
envelope; the SDK also answers the ``initialize`` handshake of 2025-11-25, 2025-06-18, 2025-03-26 and 2024-11-05 that
older clients still send, and negotiates the version as it does for any server). Transport: Streamable HTTP
(https://modelcontextprotocol.io/specification/2025-11-25/basic/transports#streamable-http) in the SDK's stateless
mode with JSON answers (``StreamableHTTPSessionManager(stateless=True, json_response=True)``): no MCP session, no
server-sent events, nothing kept in the process between requests, so any execution environment answers any request
(Lambda behind the HTTP API). Each request gets a fresh ``Server`` whose handlers hold the caller's identity.

* ``tools/list`` — one tool per action request that an agent registered for the caller's platform tenant consumes
  (a capability whose ``consumed_event`` is on ``action-requests``), read from the registry on every request, so an
  agent deployed a moment ago is listed at once. ``name`` is the event type (the goal type a call submits),
  ``description`` the event's or capability's description (else the agent's), ``inputSchema`` the event's registered
  ``payload_schema`` (else any JSON object). The registry stores no agent kind (Tool, Worker, Planner) nor a
  "callable" flag, so every agent's action requests are listed: each answers a goal of its type.
* ``tools/call`` — a goal, submitted as ``POST /v1/goals`` does (:meth:`Goals.submit`: the tenant's policy, the
  bus's size limit, row-level security), then awaited (:meth:`Goals.wait_until_final`, at most
  :data:`~soorma.functions.gateway.goals.MAX_WAIT_S` seconds). A completed goal's ``result`` is the tool result's
  ``structuredContent`` (a non-object result is wrapped as ``{"result": ...}``) and its JSON text the ``content``.
  Arguments that break the tool's ``inputSchema`` (checked with ``jsonschema``), a goal refused (policy, size), a
  failed or cancelled goal, and one still running at the deadline are tool errors (``isError: true`` with the reason;
  ``_meta["soorma/goal_id"]`` names the goal when there is one), not transport errors. A tool name the caller's
  registry does not list is the protocol's own error (JSON-RPC ``-32602``, invalid params), as the specification
  asks for an unknown tool.

Authorization is the gateway's: the route sits behind the authorizer (Bearer API key or JWT) and the identity
middleware (:class:`~soorma.functions.shared.service.RequireIdentity`), and every query runs under that identity, so
row-level security confines both lists and calls to the caller's tenant. The SDK's DNS-rebinding protection (meant
for unauthenticated servers on localhost) is left off: every request carries a credential.

The SDK is imported on the first MCP request, not when the gateway starts.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import anyio
from fastapi import APIRouter, Depends, HTTPException
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from soorma.events import EventTopic
from soorma.functions.gateway.goals import FINAL, MAX_WAIT_S, Goals
from soorma.functions.gateway.policy import PolicyViolation
from soorma.functions.shared.db import Database
from soorma.functions.shared.service import current_identity
from soorma.identity import Identity

if TYPE_CHECKING:
    import mcp_types
    from mcp.server.lowlevel import Server

logger = logging.getLogger("soorma.functions.gateway")

SERVER_NAME = "soorma"
#: Where a tool result names its goal (``_meta`` keys are namespaced by a prefix, MCP "General fields: _meta").
GOAL_ID_META = "soorma/goal_id"
#: MCP tool names (specification 2025-11-25, "Tool names"): 1-128 characters of ASCII letters, digits, ``_-.``.
TOOL_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
#: The input schema of a tool whose event registered none: any JSON object.
ANY_OBJECT: dict[str, Any] = {"type": "object"}

_ACTION_REQUESTS = EventTopic.ACTION_REQUESTS.value


# -- tools/list ------------------------------------------------------------------------------------------------------
def _field(obj: Mapping[str, Any] | None, snake: str) -> Any:
    """``obj[snake]`` or its camelCase spelling (capabilities are stored as their registrants wrote them)."""
    if not isinstance(obj, Mapping):
        return None
    head, *rest = snake.split("_")
    return obj.get(snake, obj.get(head + "".join(part.title() for part in rest)))


def tool_catalog(db: Database, identity: Identity) -> list[dict[str, Any]]:
    """The MCP tools of ``identity``'s platform tenant, from its registry (row-level security), sorted by name.

    Returns ``[{"name", "description", "inputSchema", "agents"}]``: ``name`` is an event type on ``action-requests``
    that at least one registered agent consumes through a capability (tool names outside the MCP name syntax are
    skipped), ``agents`` the names of those agents. The schema and description come from the event's definition in
    the registry, else from the capability's ``consumed_event``, else a generic one (see the module docstring)."""
    from soorma.functions.registry.app import query_agents

    with db.transaction(identity) as conn:
        agents = query_agents(conn)
        definitions = {
            row["event_name"]: row for row in conn.execute(
                "select event_name, topic, description, payload_schema from registry.events"
            ).fetchall()
        }
    tools: dict[str, dict[str, Any]] = {}
    for agent in agents:
        for capability in agent.get("capabilities") or []:
            consumed = _field(capability, "consumed_event")
            name = _field(consumed, "event_name")
            if not isinstance(name, str) or not TOOL_NAME.match(name):
                continue
            definition = definitions.get(name) or {}
            topic = definition.get("topic") or _field(consumed, "topic") or _ACTION_REQUESTS
            if topic != _ACTION_REQUESTS:
                continue
            tool = tools.setdefault(name, {"name": name, "description": "", "inputSchema": None, "agents": []})
            tool["agents"].append(agent["name"])
            schema = definition.get("payload_schema") or _field(consumed, "payload_schema")
            if tool["inputSchema"] is None and isinstance(schema, dict):
                tool["inputSchema"] = schema
            tool["description"] = tool["description"] or (
                definition.get("description") or _field(consumed, "description") or _field(capability, "description")
                or ""
            )
    for tool in tools.values():
        agents_text = ", ".join(tool["agents"])
        tool["description"] = tool["description"] or f"Answered by Soorma agent {agents_text}"
        if tool["inputSchema"] is None or tool["inputSchema"].get("type", "object") != "object":
            # MCP requires an object schema at the top: a registered non-object schema is not an MCP input.
            tool["inputSchema"] = dict(ANY_OBJECT)
    return [tools[name] for name in sorted(tools)]


# -- tools/call ------------------------------------------------------------------------------------------------------
def schema_problems(arguments: Mapping[str, Any], schema: Mapping[str, Any]) -> list[str]:
    """What makes ``arguments`` break the JSON Schema ``schema`` (its own ``$schema`` dialect, else draft 2020-12,
    MCP's default), as ``"<path>: <message>"`` lines; empty when they conform. A schema that is itself invalid
    yields one problem naming it."""
    import jsonschema

    validator_class = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    try:
        validator_class.check_schema(schema)
    except jsonschema.SchemaError as exc:
        return [f"the tool's registered input schema is invalid: {exc.message}"]
    validator = validator_class(schema)
    return [f"{'/'.join(map(str, error.absolute_path)) or '(root)'}: {error.message}"
            for error in sorted(validator.iter_errors(arguments), key=lambda e: list(map(str, e.absolute_path)))]


def call_tool(goals: Goals, identity: Identity, name: str, arguments: dict[str, Any],
              input_schema: Mapping[str, Any], *, wait_s: float = MAX_WAIT_S) -> dict[str, Any]:
    """Run tool ``name`` as a goal of that type with ``arguments`` as its data and wait for its end (at most
    ``wait_s`` seconds, capped at :data:`MAX_WAIT_S`).

    Returns the MCP ``CallToolResult`` fields ``{"content": [{"type": "text", "text"}], "structuredContent"?,
    "isError", "_meta"?}`` (see the module docstring); never raises for bad input or a failed goal."""
    problems = schema_problems(arguments, input_schema)
    if problems:
        return _tool_error(f"invalid arguments for {name}: " + "; ".join(problems))
    try:
        submitted = goals.submit(identity, name, arguments)
    except PolicyViolation as exc:
        return _tool_error(f"refused by the tenant's policy: {json.dumps(exc.body(), default=str)}")
    except HTTPException as exc:
        if exc.status_code >= 500:
            raise
        return _tool_error(f"goal not submitted ({exc.status_code}): {exc.detail}")
    goal_id = submitted.goal_id
    if submitted.error_status is not None:
        return _tool_error(submitted.error or f"goal {goal_id} was not submitted", goal_id)
    goals.wait_until_final(identity, goal_id, min(wait_s, MAX_WAIT_S))
    goal = goals.get(identity, goal_id)
    status = goal["status"]
    if status not in FINAL:
        return _tool_error(f"goal {goal_id} is still {status} after {min(wait_s, MAX_WAIT_S):g} s; its result will be"
                           f" at GET /v1/goals/{goal_id}", goal_id)
    if status != "completed":
        return _tool_error(f"goal {goal_id} {status}: {goal.get('error') or 'no reason given'}", goal_id)
    result = goal.get("result")
    structured = result if isinstance(result, dict) else {"result": result}
    return {"content": [{"type": "text", "text": json.dumps(structured, default=str)}],
            "structuredContent": structured, "isError": False, "_meta": {GOAL_ID_META: goal_id}}


def _tool_error(text: str, goal_id: str | None = None) -> dict[str, Any]:
    answer: dict[str, Any] = {"content": [{"type": "text", "text": text}], "isError": True}
    if goal_id:
        answer["_meta"] = {GOAL_ID_META: goal_id}
    return answer


# -- the server ------------------------------------------------------------------------------------------------------
def _server(db: Database, goals: Goals, identity: Identity) -> Server[Any]:
    """A ``Server`` for one request of ``identity``: its handlers close over the identity, nothing outlives it."""
    import mcp_types as types
    from mcp.server.caching import CacheHint
    from mcp.server.lowlevel import Server
    from mcp.shared.exceptions import MCPError

    async def list_tools(ctx: Any, params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        catalog = await anyio.to_thread.run_sync(tool_catalog, db, identity)
        return types.ListToolsResult(tools=[_tool(types, t) for t in catalog])

    async def call(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        catalog = await anyio.to_thread.run_sync(tool_catalog, db, identity)
        tool = next((t for t in catalog if t["name"] == params.name), None)
        if tool is None:
            raise MCPError(types.INVALID_PARAMS, f"Unknown tool: {params.name[:200]}")
        answer = await anyio.to_thread.run_sync(
            lambda: call_tool(goals, identity, params.name, dict(params.arguments or {}), tool["inputSchema"]))
        return types.CallToolResult.model_validate(answer)

    from soorma import __version__

    return Server(
        SERVER_NAME,
        version=__version__,
        description="Soorma Serverless: the agents registered for your tenant, as tools; a call is a goal.",
        instructions="Each tool is a Soorma goal type: calling it submits a goal with the arguments as its data and"
                     " answers with the goal's result.",
        # A deploy or an undeploy must show in the next tools/list, and the list is the caller's tenant's alone.
        cache_hints={"tools/list": CacheHint(ttl_ms=0, scope="private")},
        on_list_tools=list_tools,
        on_call_tool=call,
    )


def _tool(types: Any, entry: Mapping[str, Any]) -> mcp_types.Tool:
    return types.Tool(name=entry["name"], description=entry["description"], input_schema=entry["inputSchema"],
                      meta={"soorma/agents": entry["agents"]})


class _McpExchange(Response):
    """The answer to an MCP request: the SDK's Streamable HTTP transport writes it (status, headers, body) itself.

    A session manager per request (its ``run()`` may be entered once), stateless: the manager's task group lives only
    as long as this request."""

    def __init__(self, server: Server[Any]) -> None:
        super().__init__()
        self.server = server

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

        manager = StreamableHTTPSessionManager(self.server, stateless=True, json_response=True)
        async with manager.run():
            await manager.handle_request(scope, receive, send)


_JSON_RPC = {"application/json": {"schema": {"type": "object", "description": "a JSON-RPC 2.0 message"}}}
_ANSWERS: dict[int | str, dict[str, Any]] = {
    200: {"description": "The JSON-RPC response", "content": _JSON_RPC},
    400: {"description": "Not a valid MCP message, or an unsupported protocol version", "content": _JSON_RPC},
    406: {"description": "Not acceptable: the Accept header must allow application/json", "content": _JSON_RPC},
    413: {"description": "Request body too large", "content": _JSON_RPC},
    415: {"description": "Unsupported media type: send application/json", "content": _JSON_RPC},
}


def create_router(db: Database, goals: Goals) -> APIRouter:
    """The ``/v1/mcp`` routes: ``POST`` carries every MCP message; ``GET`` and ``DELETE`` answer 405, as the
    transport lets a server that offers no server-sent event stream and no session to end (Streamable HTTP,
    "Listening for Messages from the Server" and "Session Management"): a GET stream would hold a Lambda invocation
    open until its timeout."""
    router = APIRouter()

    def exchange(identity: Identity = Depends(current_identity)) -> Response:
        return _McpExchange(_server(db, goals, identity))

    def not_offered(identity: Identity = Depends(current_identity)) -> Response:
        return JSONResponse({"detail": "this MCP server is stateless: send every message with POST"},
                            status_code=405, headers={"Allow": "POST"})

    router.add_api_route("/v1/mcp", exchange, methods=["POST"], operation_id="mcp_post", tags=["mcp"],
                         responses=_ANSWERS, openapi_extra={"requestBody": {"required": True, "content": _JSON_RPC}},
                         response_class=Response, summary="MCP Streamable HTTP (stateless): tools/list, tools/call",
                         description="One JSON-RPC message of the Model Context Protocol (Streamable HTTP, stateless,"
                                     " JSON answers). A notification is answered 202 with no body.")
    for method in ("GET", "DELETE"):
        router.add_api_route("/v1/mcp", not_offered, methods=[method], operation_id=f"mcp_{method.lower()}",
                             tags=["mcp"], status_code=405, response_class=JSONResponse,
                             responses={405: {"description": "No server-sent event stream, no session: use POST"}},
                             summary="Not offered by a stateless MCP server (405)")
    return router


__all__ = ["GOAL_ID_META", "call_tool", "create_router", "schema_problems", "tool_catalog"]
