"""soorma-core's SDK surface against the real local stack (issue 17): the call forms of
``tests/unit/test_soorma_core_compat.py`` reach the platform's real registry, memory, gateway and tracker, the way a
soorma-core script configured by environment uses them (``SOORMA_API_URL`` + ``SOORMA_AUTH_TOKEN``, clients built
with no base URL)."""

from __future__ import annotations

import asyncio

import pytest

from .conftest import ROOT, local_stack, submit, wait_until

pytestmark = pytest.mark.e2e

ANSWER_SCHEMA = {"type": "object", "properties": {"verdict": {"type": "string"}}, "required": ["verdict"]}
CHECK_SCHEMA = {"type": "object", "properties": {"item": {"type": "string"}, "count": {"type": "integer"}},
                "required": ["item", "count"]}


@pytest.fixture(scope="module")
def stack():
    with local_stack("soorma-e2e-core-compat-", deploy=[ROOT / "examples" / "hello-world"]) as stack_:
        yield stack_


@pytest.fixture
def soorma_core_env(stack, monkeypatch):
    """The environment a soorma-core script runs with: the platform's URL and a token in soorma-core's variable."""
    monkeypatch.setenv("SOORMA_HOME", str(stack["home"]))
    monkeypatch.setenv("SOORMA_API_URL", stack["credentials"]["api_url"])
    monkeypatch.setenv("SOORMA_AUTH_TOKEN", stack["credentials"]["api_key"])
    for name in ("SOORMA_API_KEY", "SOORMA_REGISTRY_URL", "SOORMA_EVENT_SERVICE_URL", "SOORMA_MEMORY_URL",
                 "SOORMA_MEMORY_SERVICE_URL", "SOORMA_TRACKER_URL", "SOORMA_TRACKER_SERVICE_URL"):
        monkeypatch.delenv(name, raising=False)
    return stack["credentials"]


def test_clients_without_a_base_url_and_async_with_use_the_real_memory(soorma_core_env):
    from soorma.memory import MemoryServiceClient

    async def round_trip():
        async with MemoryServiceClient() as memory:
            await memory.store("compat-key", {"from": "soorma-core code"}, plan_id="compat-plan")
            value = await memory.retrieve("compat-key", plan_id="compat-plan")
            await memory.cleanup_plan("compat-plan")
            return value, await memory.retrieve("compat-key", plan_id="compat-plan")

    assert asyncio.run(round_trip()) == ({"from": "soorma-core code"}, None)


def test_registry_positional_timeout_ai_tools_and_event_client_registration(soorma_core_env):
    from soorma.ai.tools import execute_ai_tool
    from soorma.clients.bus import BusClient
    from soorma.events import EventClient, EventDefinition
    from soorma.registry.client import RegistryClient

    api_url, api_key = soorma_core_env["api_url"], soorma_core_env["api_key"]

    async def scenario():
        async with RegistryClient(api_url, 20.0, api_key) as registry:
            await registry.register_event(event_definition=EventDefinition(
                event_name="compat.check", topic="action-requests", description="check an item",
                payload_schema=CHECK_SCHEMA))
            valid = await execute_ai_tool("create_event_payload", {
                "event_name": "compat.check", "payload_data": {"item": "bolt", "count": 3}})
            invalid = await execute_ai_tool("create_event_payload", {
                "event_name": "compat.check", "payload_data": {"item": "bolt"}})

            client = EventClient(agent_id="compat-script", source="compat-script", events_consumed=[EventDefinition(
                event_name="compat.answered", topic="action-results", description="the verdict",
                payload_schema_name="CompatAnswered", payload_schema=ANSWER_SCHEMA)])
            async with client:
                await client.connect(topics=[])  # publish-only: registers events_consumed, subscribes to nothing
                published = await BusClient(client).publish("business-facts", "compat.noticed", {"ok": True})
            registered = await registry.get_event("compat.answered")
            schema = await registry.get_schema(schema_name="CompatAnswered")
        return valid, invalid, published, registered, schema

    valid, invalid, published, registered, schema = asyncio.run(scenario())
    assert valid == {"success": True, "payload": {"item": "bolt", "count": 3}}
    assert invalid["success"] is False and "count" in invalid["error"]
    assert isinstance(published, str) and published
    assert registered is not None and registered.description == "the verdict"
    assert schema is not None and schema["json_schema"] == ANSWER_SCHEMA and schema["version"] == "1.0.0"


def test_tracker_without_a_base_url_reads_a_real_goal(stack, soorma_core_env):
    from soorma.tracker import TrackerServiceClient

    goal_id = submit(stack["client"], "greeting.requested", {"name": "Ada"})
    wait_until(lambda: stack["client"].get(f"/v1/goals/{goal_id}").json()["status"] == "completed",
               "the greeting goal completes")

    async def read():
        async with TrackerServiceClient() as tracker:
            return await tracker.get_plan_progress(goal_id)

    progress = asyncio.run(read())
    assert progress is not None and progress.status == "completed"
    assert progress.result["message"] == "Hello, Ada!"
