"""MCP at ``/v1/mcp`` on the local stack, through the ``mcp`` SDK's own clients: ``soorma local up`` (free ports, a
temporary SOORMA_HOME), ``soorma local deploy examples/hello-tool``, then

* ``ClientSession`` over ``streamable_http_client`` (the ``initialize`` handshake, 2025-11-25) and ``mcp.Client``
  (``server/discover``, 2026-07-28) list the calculator's requests as tools with their input schemas and call them:
  a result, a failed goal and arguments that break the schema are tool results (``isError``), an unknown tool is the
  protocol's error;
* a Tool deployed while a client session is open is in that session's next ``tools/list``;
* tenant isolation: a second platform tenant, onboarded through the admin API, deploys a Tool of its own; neither
  tenant lists or calls the other's tools;
* ``PlatformContext.mcp(...)`` (the SDK's client for agents) against the same ``/v1/mcp``.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import textwrap
from contextlib import asynccontextmanager
from pathlib import Path

import httpx2
import pytest
from mcp import Client, ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from .conftest import EXAMPLES, local_stack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

TOOL_APP = '''
    from soorma import EventDefinition, Tool

    tool = Tool("{agent}", description="test tool of {agent}", events_consumed=[EventDefinition(
        event_name="{event}", description="Greets someone ({agent})",
        payload_schema={{"type": "object", "properties": {{"name": {{"type": "string"}}}}, "required": ["name"]}})])


    @tool.on_invoke("{event}")
    async def greet(request, context):
        return {{"greeting": "hello " + request.data["name"], "by": "{agent}"}}
'''


def write_tool(root: Path, folder: str, agent: str, event: str) -> Path:
    """A one-Tool app in ``root/folder``: agent ``agent`` answers ``event`` with a greeting signed with its name."""
    app = root / folder
    app.mkdir(parents=True)
    (app / "greeter.py").write_text(textwrap.dedent(TOOL_APP.format(agent=agent, event=event)))
    return app


@pytest.fixture(scope="module")
def stack():
    with local_stack("soorma-e2e-mcp-", [EXAMPLES / "hello-tool"]) as stack_:
        stack_["apps"] = Path(tempfile.mkdtemp(prefix="soorma-mcp-apps-"))
        stack_["mcp_url"] = stack_["credentials"]["api_url"] + "/v1/mcp"
        yield stack_


@asynccontextmanager
async def session(stack, api_key: str, *, initialize: bool = True):
    """A ``ClientSession`` on ``/v1/mcp`` with ``api_key`` as its bearer credential, initialized unless told not to."""
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {api_key}"}, timeout=60) as http,
        streamable_http_client(stack["mcp_url"], http_client=http) as (read, write),
        ClientSession(read, write) as mcp_session,
    ):
        if initialize:
            await mcp_session.initialize()
        yield mcp_session


async def tool_names(mcp_session: ClientSession) -> set[str]:
    return {tool.name for tool in (await mcp_session.list_tools()).tools}


def text_of(result) -> str:
    return "\n".join(block.text for block in result.content if block.type == "text")


def test_the_hello_tool_is_listed_and_called_through_a_client_session(stack):
    async def scenario():
        async with session(stack, stack["credentials"]["api_key"]) as mcp_session:
            tools = {tool.name: tool for tool in (await mcp_session.list_tools()).tools}
            added = await mcp_session.call_tool("calculate.add", {"numbers": [1, 2, 3.5]})
            by_zero = await mcp_session.call_tool("calculate.divide", {"dividend": 1, "divisor": 0})
            bad = await mcp_session.call_tool("calculate.add", {"numbers": "three"})
            with pytest.raises(MCPError, match="Unknown tool"):
                await mcp_session.call_tool("calculate.nothing", {})
            return mcp_session.protocol_version, tools, added, by_zero, bad

    version, tools, added, by_zero, bad = asyncio.run(scenario())
    assert version == "2025-11-25"  # the newest version the initialize handshake offers
    assert {"calculate.add", "calculate.multiply", "calculate.divide", "calculate.sqrt"} <= set(tools)
    assert tools["calculate.add"].description == "Add numbers"
    assert tools["calculate.add"].input_schema["required"] == ["numbers"]
    assert tools["calculate.divide"].input_schema["properties"]["divisor"] == {"type": "number"}

    assert added.is_error is False
    assert added.structured_content["success"] is True
    assert added.structured_content["result"] == {"operation": "add", "value": 6.5}
    assert json.loads(text_of(added)) == added.structured_content
    goal = stack["client"].get(f"/v1/goals/{added.meta['soorma/goal_id']}").json()  # the call was a goal
    assert goal["goal_type"] == "calculate.add" and goal["status"] == "completed"

    assert by_zero.is_error is True and "divide by zero" in text_of(by_zero)  # the goal failed
    assert bad.is_error is True and "'three' is not of type 'array'" in text_of(bad)  # refused before any goal
    assert bad.meta is None or "soorma/goal_id" not in (bad.meta or {})


def test_the_current_protocol_version_is_negotiated_by_the_sdks_client(stack):
    async def scenario():
        headers = {"Authorization": f"Bearer {stack['credentials']['api_key']}"}
        async with (
            httpx2.AsyncClient(headers=headers, timeout=60) as http,
            Client(streamable_http_client(stack["mcp_url"], http_client=http)) as client,
        ):
            tools = await client.list_tools()
            result = await client.call_tool("calculate.multiply", {"numbers": [6, 7]})
            return client.protocol_version, tools, result

    version, tools, result = asyncio.run(scenario())
    assert version == "2026-07-28"
    assert "calculate.multiply" in {tool.name for tool in tools.tools}
    assert result.is_error is False and result.structured_content["result"]["value"] == 42


@pytest.mark.parametrize(("offered", "agreed"), [("2024-11-05", "2024-11-05"), ("2025-03-26", "2025-03-26"),
                                                 ("2025-06-18", "2025-06-18"), ("2099-01-01", "2025-11-25")])
def test_an_older_clients_handshake_version_is_kept_and_an_unknown_one_countered(stack, offered, agreed):
    """What an older client sends: ``initialize`` with its own version, then requests carrying that version."""
    import mcp_types as types

    async def scenario():
        async with session(stack, stack["credentials"]["api_key"], initialize=False) as mcp_session:
            answer = await mcp_session.send_request(types.InitializeRequest(params=types.InitializeRequestParams(
                protocol_version=offered, capabilities=types.ClientCapabilities(),
                client_info=types.Implementation(name="older-client", version="1"))), types.InitializeResult)
            mcp_session.adopt(answer)
            await mcp_session.send_notification(types.InitializedNotification())
            tools = await tool_names(mcp_session)
            result = await mcp_session.call_tool("calculate.add", {"numbers": [2, 2]})
            return answer.protocol_version, tools, result

    version, tools, result = asyncio.run(scenario())
    assert version == agreed
    assert "calculate.add" in tools
    assert result.is_error is False and json.loads(text_of(result))["result"]["value"] == 4


def test_without_a_credential_the_gateway_refuses(stack):
    statuses: list[int] = []

    async def record(response: httpx2.Response) -> None:
        statuses.append(response.status_code)

    async def scenario():
        async with (
            httpx2.AsyncClient(timeout=30, event_hooks={"response": [record]}) as http,
            streamable_http_client(stack["mcp_url"], http_client=http) as (read, write),
            ClientSession(read, write) as mcp_session,
        ):
            await mcp_session.initialize()

    with pytest.raises(ExceptionGroup) as refused:
        asyncio.run(scenario())
    assert refused.group_contains(MCPError, match="error response", depth=2)
    assert statuses == [401]  # the authorizer, before the gateway function


def test_a_tool_deployed_while_a_session_is_open_is_in_its_next_list(stack):
    app = write_tool(stack["apps"], "late", "late-greeter", "late.greet")

    async def scenario():
        async with session(stack, stack["credentials"]["api_key"]) as mcp_session:
            before = await tool_names(mcp_session)
            deployed = await asyncio.to_thread(stack["run"], "local", "deploy", str(app))
            assert deployed.returncode == 0, deployed.stdout + deployed.stderr
            after = await tool_names(mcp_session)
            greeted = await mcp_session.call_tool("late.greet", {"name": "Ada"})
            return before, after, greeted

    before, after, greeted = asyncio.run(scenario())
    assert "late.greet" not in before and "late.greet" in after
    assert greeted.is_error is False
    assert greeted.structured_content["result"] == {"greeting": "hello Ada", "by": "late-greeter"}


def test_a_tenant_never_lists_or_calls_another_tenants_tools(stack):
    from soorma.local.deploy import Deployer

    creds = stack["credentials"]
    onboarded = stack["client"].post("/v1/tenants", headers={"Authorization": f"Bearer {creds['admin_api_key']}"},
                                     json={"platform_tenant_id": "mcp-other", "name": "another tenant"})
    assert onboarded.status_code == 201, onboarded.text
    other_key = onboarded.json()["admin_api_key"]
    control = json.loads((stack["home"] / "secrets.json").read_text())["control_token"]
    Deployer(api_url=creds["api_url"], api_key=other_key, control_token=control, platform_tenant_id="mcp-other",
             setup_dir=stack["apps"] / "setup", echo=lambda _: None,
             ).deploy(write_tool(stack["apps"], "other", "secret-greeter", "secret.greet"))

    async def scenario():
        async with session(stack, creds["api_key"]) as mine, session(stack, other_key) as theirs:
            my_tools, their_tools = await tool_names(mine), await tool_names(theirs)
            errors = []
            for caller, name, arguments in ((mine, "secret.greet", {"name": "Eve"}),
                                            (theirs, "calculate.add", {"numbers": [1]})):
                try:
                    await caller.call_tool(name, arguments)
                except MCPError as exc:
                    errors.append(exc.error.message)
            own = await theirs.call_tool("secret.greet", {"name": "Bob"})
            return my_tools, their_tools, errors, own

    my_tools, their_tools, errors, own = asyncio.run(scenario())
    assert "secret.greet" in their_tools and "secret.greet" not in my_tools
    assert "calculate.add" in my_tools and not {t for t in their_tools if t.startswith("calculate.")}
    assert errors == ["Unknown tool: secret.greet", "Unknown tool: calculate.add"]
    assert own.is_error is False and own.structured_content["result"] == {"greeting": "hello Bob", "by": "secret-greeter"}
    # the refused call started no goal in the caller's tenant
    goals = stack["client"].get("/v1/goals", params={"goal_type": "secret.greet"}).json()
    assert goals["count"] == 0


def test_context_mcp_uses_the_platforms_own_mcp_server(stack):
    from soorma.context import PlatformContext
    from soorma.settings import Settings

    creds = stack["credentials"]
    context = PlatformContext(settings=Settings(api_url=creds["api_url"], api_key=creds["api_key"]))

    async def scenario():
        server = context.mcp(stack["mcp_url"], headers={"Authorization": f"Bearer {creds['api_key']}"})
        names = {tool.name for tool in await server.list_tools()}
        async with server:
            root = await server.call_tool("calculate.sqrt", {"value": 16})
            negative = await server.call_tool("calculate.sqrt", {"value": -1})
        await context.close()
        return names, root, negative

    names, root, negative = asyncio.run(scenario())
    assert "calculate.sqrt" in names
    assert root.is_error is False and root.structured_content["result"] == {"operation": "sqrt", "value": 4.0}
    assert negative.is_error is True and "sqrt needs a number >= 0" in text_of(negative)
