"""MCP for agents: an agent's client of any MCP server (Model Context Protocol,
https://modelcontextprotocol.io/specification, revision 2026-07-28 and the handshake revisions before it), over the
official ``mcp`` Python SDK's Streamable HTTP client, and that server's tools as actions of the LLM planners.

```
async with context.mcp("https://tools.example.com/mcp", headers={"Authorization": "Bearer ..."}) as server:
    tools = await server.list_tools()                      # [mcp_types.Tool]: name, description, input_schema
    answer = await server.call_tool("search", {"q": "JetStream"})   # mcp_types.CallToolResult
```

* :class:`McpClient` — ``list_tools()`` and ``call_tool(name, arguments)``. Inside ``async with`` one connection
  (one negotiated protocol version) serves every call; without it, each call connects, negotiates and closes, which
  suits the stateless servers (Soorma's own ``/v1/mcp`` among them) and a handler that makes one call.
* :class:`McpToolset` — an MCP server's tools in the shape of the events the LLM planners choose among
  (:meth:`soorma.ai.event_toolkit.EventToolkit.format_for_llm`: ``name``, ``description``, ``payload_fields``, ...),
  and a call's outcome as the data of an action result (``{"success", "result" | "error"}``), so
  ``ChoreographyPlanner(mcp_tools=[...])`` offers them next to the registry's events.

Headers (credentials) go only to the server they are given for: the agent's platform API key is never sent to an MCP
server unless passed in ``headers``. Requires the ``mcp`` extra (``pip install 'soorma[mcp]'``); the SDK is imported
on the first connection, so agents that never use MCP do not pay for it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mcp import Client
    from mcp_types import CallToolResult, Tool

#: Seconds a call may take by default: a Soorma ``tools/call`` waits up to 25 s for its goal.
DEFAULT_TIMEOUT_S = 60.0


class McpClient:
    """``McpClient(url, headers=None, *, timeout=60.0)``: a client of the MCP server at ``url`` (its Streamable HTTP
    endpoint), sending ``headers`` with every request; ``timeout`` in seconds for each request.

    Use it as ``async with`` to keep one connection for several calls, or call its methods directly (one connection
    each). Errors: ``mcp.shared.exceptions.MCPError`` for a protocol error the server answers (an unknown tool, bad
    params), ``httpx2.HTTPError`` for a transport failure (unreachable, 401 ...). A tool that fails is not an error:
    its result has ``is_error`` true."""

    def __init__(self, url: str, headers: Mapping[str, str] | None = None, *,
                 timeout: float = DEFAULT_TIMEOUT_S) -> None:
        self.url = url
        self.headers = dict(headers or {})
        self.timeout = timeout
        self._stack: AsyncExitStack | None = None
        self._client: Client | None = None

    def __repr__(self) -> str:  # never show the headers: they carry credentials
        return f"McpClient(url={self.url!r})"

    async def _connect(self, stack: AsyncExitStack) -> Client:
        import httpx2
        from mcp import Client
        from mcp.client.streamable_http import streamable_http_client

        http = await stack.enter_async_context(httpx2.AsyncClient(headers=self.headers, timeout=self.timeout))
        # mode "auto": server/discover (2026-07-28), else the initialize handshake of older servers
        client = Client(streamable_http_client(self.url, http_client=http), read_timeout_seconds=self.timeout)
        return await stack.enter_async_context(client)

    async def __aenter__(self) -> McpClient:
        if self._stack is not None:
            raise RuntimeError("McpClient is already connected")
        stack = AsyncExitStack()
        try:
            async with _single_errors():
                self._client = await self._connect(stack)
        except BaseException:
            await stack.aclose()
            raise
        self._stack = stack
        return self

    async def __aexit__(self, *exc: object) -> None:
        stack, self._stack, self._client = self._stack, None, None
        if stack is not None:
            await stack.aclose()

    async def list_tools(self) -> list[Tool]:
        """Every tool the server lists (all pages), as the SDK's ``mcp_types.Tool`` (``name``, ``description``,
        ``input_schema``: a JSON Schema object)."""
        async with _single_errors(), AsyncExitStack() as stack:
            client = self._client or await self._connect(stack)
            tools: list[Tool] = []
            cursor: str | None = None
            while True:
                page = await client.list_tools(cursor=cursor)
                tools += page.tools
                cursor = page.next_cursor
                if not cursor:
                    return tools

    async def call_tool(self, name: str, arguments: Mapping[str, Any] | None = None) -> CallToolResult:
        """Call tool ``name`` with ``arguments`` (a JSON object); returns the SDK's ``CallToolResult``
        (``content``, ``structured_content``, ``is_error``)."""
        async with _single_errors(), AsyncExitStack() as stack:
            client = self._client or await self._connect(stack)
            return await client.call_tool(name, dict(arguments or {}))


@asynccontextmanager
async def _single_errors() -> AsyncIterator[None]:
    """Raise the one error inside the task groups' exception groups the SDK's transport raises (an ``MCPError`` for
    a 401, say) rather than the groups, so callers can catch what went wrong."""
    try:
        yield
    except BaseExceptionGroup as group:
        leaves = list(_leaves(group))
        if len(leaves) == 1 and isinstance(leaves[0], Exception):
            raise leaves[0] from group
        raise


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    found: list[BaseException] = []
    for exc in group.exceptions:
        found += _leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc]
    return found


def result_text(result: CallToolResult) -> str:
    """The text blocks of a tool result, joined by newlines (non-text blocks are named by their type)."""
    parts = []
    for block in result.content:
        text = getattr(block, "text", None)
        parts.append(text if isinstance(text, str) else f"[{block.type}]")
    return "\n".join(parts)


def result_data(result: CallToolResult) -> dict[str, Any]:
    """A tool result as the data of an action result: ``{"success": True, "result": <structured content, else the
    text parsed as JSON, else the text>}`` or ``{"success": False, "error": <text>}``."""
    text = result_text(result)
    if result.is_error:
        return {"success": False, "error": text or "the tool failed"}
    if result.structured_content is not None:
        return {"success": True, "result": result.structured_content}
    try:
        return {"success": True, "result": json.loads(text)}
    except ValueError:
        return {"success": True, "result": text}


class McpToolset:
    """``McpToolset(client, prefix="")``: the tools of ``client``'s server as actions of an LLM planner.

    ``prefix`` is put before each tool's name in what the planner sees (two servers with a ``search`` tool each stay
    apart: ``prefix="docs."``). Tools are listed again on every :meth:`discover` (a server's tools may change)."""

    #: The ``topic`` of the action entries: not an event topic, so the planner calls the tool instead of publishing.
    TOPIC = "mcp"

    def __init__(self, client: McpClient, prefix: str = "") -> None:
        self.client = client
        self.prefix = prefix

    async def discover(self) -> list[dict[str, Any]]:
        """The server's tools as the planner's action entries: ``{"name": prefix + tool name, "description",
        "topic": "mcp", "required_fields", "payload_fields", "example_payload", "has_response": True,
        "consumers": [server url]}`` (the shape of :meth:`soorma.ai.event_toolkit.EventToolkit.format_for_llm`)."""
        found = []
        for tool in await self.client.list_tools():
            schema = tool.input_schema or {}
            properties = schema.get("properties") or {}
            found.append({
                "name": self.prefix + tool.name,
                "description": tool.description or tool.title or "",
                "topic": self.TOPIC,
                "required_fields": list(schema.get("required") or []),
                "payload_fields": {k: v for k, v in properties.items() if isinstance(v, dict)},
                "example_payload": {k: _example(v) for k, v in properties.items() if isinstance(v, dict)},
                "has_response": True,
                "consumers": [self.client.url],
            })
        return found

    def owns(self, name: str) -> bool:
        """Whether ``name`` (as :meth:`discover` names it) may be one of this toolset's tools."""
        return name.startswith(self.prefix)

    async def call(self, name: str, data: Mapping[str, Any] | None) -> dict[str, Any]:
        """Call the tool the planner named ``name`` (prefix included) with ``data``; returns :func:`result_data` of
        its result, or ``{"success": False, "error": ...}`` when the call itself failed (protocol or transport)."""
        tool = name[len(self.prefix):]
        try:
            return result_data(await self.client.call_tool(tool, data))
        except Exception as exc:  # noqa: BLE001 - the planner decides what a failed action means
            return {"success": False, "error": f"MCP call {tool!r} at {self.client.url} failed: "
                                               f"{type(exc).__name__}: {exc}"}


def _example(schema: Mapping[str, Any]) -> Any:
    kind = schema.get("type")
    return {"string": "", "number": 0, "integer": 0, "boolean": False, "array": [], "object": {}}.get(
        kind if isinstance(kind, str) else "", None)


__all__ = ["DEFAULT_TIMEOUT_S", "McpClient", "McpToolset", "result_data", "result_text"]
