"""soorma.mcp against a real MCP server: the official SDK's ``MCPServer`` over Streamable HTTP (uvicorn on a free port,
behind a bearer-token check), reached through ``PlatformContext.mcp`` — listing and calling tools, a tool error, a
missing credential — and its tools as actions of the ChoreographyPlanner (a scripted local LLM)."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import pytest
from mcp.shared.exceptions import MCPError

from soorma.ai.choreography import ChoreographyPlanner
from soorma.mcp import McpToolset, result_data
from soorma.plan_context import PlanContext
from soorma.testing import free_port
from soorma.testing.llm import FakeLLMServer

from .fakes import FakePlatform, deliver

TOKEN = "mcp-test-token"
GOAL_ID = "6b0b7a8e-33a1-4bd6-8a7e-0d5f3c1b2a10"


@pytest.fixture(scope="module")
def mcp_url():
    """A Streamable HTTP MCP server with tools ``lookup`` (structured answer) and ``explode`` (always fails),
    answering 401 without ``Authorization: Bearer mcp-test-token``."""
    import uvicorn
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError
    from starlette.responses import JSONResponse

    server = MCPServer("docs")

    @server.tool(description="Look a term up in the glossary")
    def lookup(term: str) -> dict:
        return {"term": term, "meaning": f"{term} is a stream store"}

    @server.tool(description="Always fails")
    def explode(reason: str = "boom") -> str:
        raise ToolError(reason)

    app = server.streamable_http_app(stateless_http=True, json_response=True)

    async def guarded(scope, receive, send):
        headers = dict(scope.get("headers") or [])
        if scope["type"] == "http" and headers.get(b"authorization") != f"Bearer {TOKEN}".encode():
            await JSONResponse({"detail": "unauthorized"}, status_code=401)(scope, receive, send)
            return
        await app(scope, receive, send)

    port = free_port()
    config = uvicorn.Config(guarded, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    runner = uvicorn.Server(config)
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not runner.started:
        assert time.monotonic() < deadline, "the MCP test server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/mcp"
    runner.should_exit = True
    thread.join(10)


def _headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}"}


def test_context_mcp_lists_and_calls_tools(mcp_url):
    context = FakePlatform().context()
    server = context.mcp(mcp_url, headers=_headers())
    assert TOKEN not in repr(server)

    async def scenario():
        tools = {t.name: t for t in await server.list_tools()}  # one connection per call
        async with server:  # one connection for both calls
            found = await server.call_tool("lookup", {"term": "JetStream"})
            failed = await server.call_tool("explode", {"reason": "no fuel"})
        return tools, found, failed

    tools, found, failed = asyncio.run(scenario())
    assert set(tools) == {"lookup", "explode"}
    assert tools["lookup"].description == "Look a term up in the glossary"
    assert tools["lookup"].input_schema["required"] == ["term"]
    assert found.is_error is False
    assert result_data(found) == {"success": True, "result": {"term": "JetStream",
                                                              "meaning": "JetStream is a stream store"}}
    assert failed.is_error is True
    assert result_data(failed)["success"] is False and "no fuel" in result_data(failed)["error"]


def test_without_the_servers_credential_the_call_fails(mcp_url):
    server = FakePlatform().context().mcp(mcp_url)  # the platform's key is never sent on its own
    with pytest.raises(MCPError, match="error response"):
        asyncio.run(server.list_tools())


def test_the_planner_calls_an_mcp_tool_and_moves_on_its_result(mcp_url):
    platform = FakePlatform()
    context = platform.context()
    script = [
        {"next_action": {"action": "publish", "event_type": "docs.lookup", "data": {"term": "JetStream"}}},
        {"next_action": {"action": "complete", "result": {"answer": "done"}}},
    ]

    def answer(body):
        return json.dumps(script.pop(0) if len(script) > 1 else script[0])

    with FakeLLMServer(answer) as llm:
        planner = ChoreographyPlanner("glossary-planner", reasoning_model="fake", api_base=llm.base_url,
                                      api_key="llm-key", context=context,
                                      mcp_tools=[McpToolset(context.mcp(mcp_url, headers=_headers()), "docs."),
                                                 # no credential: its tools are left out, the plan goes on
                                                 McpToolset(context.mcp(mcp_url), "locked.")])

        @planner.on_goal("explain.term")
        async def goal(goal, ctx):
            plan = await PlanContext.create_from_goal(goal, ctx, state_machine={}, current_state="reasoning",
                                                      status="running")
            decision = await planner.reason_next_action(f"Explain {goal.data['term']}", ctx, plan_id=plan.plan_id)
            await planner.execute_decision(decision, ctx, goal_event=goal, plan=plan)

        @planner.on_transition()
        async def step(event, ctx, plan, next_state):
            plan.results[event.type] = event.data
            decision = await planner.reason_next_action(f"Event: {event.type}", ctx, plan_id=plan.plan_id,
                                                        custom_context={"results": plan.results})
            await planner.execute_decision(decision, ctx, goal_event=event, plan=plan)

        from soorma import EventEnvelope

        request = EventEnvelope(type="explain.term", topic="action-requests", data={"term": "JetStream"},
                                correlation_id=GOAL_ID, goal_id=GOAL_ID, trace_id=GOAL_ID,
                                response_event="soorma.goal.result", response_topic="action-results",
                                tenant_id="acme", user_id="alice").model_dump(mode="json", exclude_none=True)
        assert deliver(planner, request) == {"batchItemFailures": []}
        [looked_up] = platform.published_of("docs.lookup.completed")  # the tool's outcome, as an action result
        assert looked_up["topic"] == "action-results" and looked_up["plan_id"] == GOAL_ID
        assert looked_up["data"] == {"success": True, "tool": "docs.lookup",
                                     "result": {"term": "JetStream", "meaning": "JetStream is a stream store"}}
        assert platform.published_of("docs.lookup") == []  # nothing was published as a request
        deliver(planner, looked_up)
        [answered] = platform.published_of("soorma.goal.result")
        assert answered["correlation_id"] == GOAL_ID and answered["data"]["result"] == {"answer": "done"}
        first_prompt = "\n".join(llm.prompts())
        assert "docs.lookup" in first_prompt and "Look a term up in the glossary" in first_prompt
        assert "locked." not in first_prompt
        assert TOKEN not in json.dumps(llm.requests)  # the MCP server's credential never reaches the LLM
