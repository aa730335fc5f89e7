"""Settings, service clients, identity headers and propagation."""

from __future__ import annotations

import json

import httpx
import pytest

import soorma
from soorma import EventEnvelope, PlatformContext, PlatformError
from soorma._current import handling
from soorma.errors import PlatformConnectionError, TaskNotFoundError
from soorma.settings import Settings
from soorma.task_context import ResultContext, TaskContext

from .fakes import FakePlatform


def test_settings_from_env_with_per_service_overrides(tmp_path):
    env = {"SOORMA_API_URL": "https://api.example/", "SOORMA_API_KEY": "sk_a_b",
           "SOORMA_MEMORY_URL": "http://mem:9000", "SOORMA_HOME": str(tmp_path)}
    s = Settings.from_env(env)
    assert (s.base_url, s.api_key) == ("https://api.example", "sk_a_b")
    assert (s.registry_base, s.bus_base, s.memory_base, s.tracker_base) == (
        "https://api.example", "https://api.example", "http://mem:9000", "https://api.example")
    defaults = Settings.from_env({"SOORMA_HOME": str(tmp_path)})
    assert defaults.base_url == "http://127.0.0.1:8787" and defaults.api_key is None
    (tmp_path / "credentials.json").write_text(json.dumps({"api_key": "sk_local_x", "api_url": "http://127.0.0.1:9999"}))
    local = Settings.from_env({"SOORMA_HOME": str(tmp_path)})
    assert (local.api_key, local.base_url) == ("sk_local_x", "http://127.0.0.1:9999")
    ctx = PlatformContext.from_env(settings=s)
    assert ctx.memory.base_url == "http://mem:9000" and ctx.registry.base_url == "https://api.example"
    assert ctx.tracker is not None and ctx.bus.api_key == "sk_a_b"


def test_public_exports():
    for name in ["Agent", "Worker", "Tool", "Planner", "PlatformContext", "RegistryClient", "MemoryClient",
                 "BusClient", "EventTopic", "EventEnvelope", "EventDefinition", "TaskContext", "ResultContext",
                 "GoalContext", "InvocationContext", "DelegationSpec"]:
        assert hasattr(soorma, name), name
    assert soorma.__version__ == "0.1.0"


async def test_errors_become_platform_errors():
    ctx = FakePlatform().context()
    ctx.set_auth_token("sk_wrong_key")
    with pytest.raises(PlatformError) as info:
        await ctx.registry.query_agents()
    assert info.value.status == 401 and info.value.detail == "Missing or invalid API key"
    assert "GET http://platform.test/v1/agents" in str(info.value)


async def test_unreachable_platform_is_a_connection_error():
    def refuse(request):
        raise httpx.ConnectError("connection refused")

    ctx = PlatformContext(settings=Settings(api_url="http://nowhere.test"), transport=httpx.MockTransport(refuse))
    with pytest.raises(PlatformConnectionError) as info:
        await ctx.memory.retrieve("k")
    assert info.value.status == 0


async def test_publish_retries_transient_gateway_errors():
    platform = FakePlatform(fail_publish=1)
    ctx = platform.context()
    event_id = await ctx.bus.announce("order.placed", {"n": 1})
    assert [e["id"] for e in platform.published] == [event_id]


async def test_no_identity_headers_or_propagation_outside_handlers():
    platform = FakePlatform()
    ctx = platform.context()
    await ctx.bus.publish("business-facts", "fact.one", {"a": 1})
    await ctx.memory.store("k", {"v": 1})
    [event] = platform.published
    assert "trace_id" not in event and "parent_event_id" not in event and event["source"] == "soorma-sdk"
    for call in platform.calls:
        assert "x-soorma-service-tenant" not in call.headers
    assert await ctx.memory.retrieve("k") == {"v": 1}
    assert await ctx.memory.retrieve("missing") is None


async def test_calls_inside_a_handler_act_for_the_event():
    platform = FakePlatform()
    ctx = platform.context()
    cause = EventEnvelope(type="cause", topic="action-requests", tenant_id="t1", user_id="u1", session_id="s1",
                          goal_id="g1", plan_id="p1", trace_id="tr1")
    with handling(cause, "agent/0", source="my-agent"):
        await ctx.memory.store("k", 1)
        await ctx.bus.publish("business-facts", "effect", {})
        await ctx.bus.publish("business-facts", "explicit", {}, tenant_id="t2", trace_id="tr2")
        child = ctx.bus.create_child_request(cause, "child.do", {"x": 1}, "child.done")
        await ctx.bus.publish_envelope(child)
    effect, explicit, child_event = platform.published
    for key, value in {"tenant_id": "t1", "user_id": "u1", "session_id": "s1", "goal_id": "g1", "plan_id": "p1",
                       "trace_id": "tr1", "parent_event_id": cause.id, "source": "my-agent"}.items():
        assert effect[key] == value, key
        assert child_event[key] == value, key
    assert (explicit["tenant_id"], explicit["trace_id"], explicit["user_id"]) == ("t2", "tr2", "u1")
    assert child_event["response_event"] == "child.done" and child_event["correlation_id"]
    [store] = [c for c in platform.calls if c.path.startswith("/v1/memory")]
    assert (store.headers["x-soorma-service-tenant"], store.headers["x-soorma-service-user"]) == ("t1", "u1")
    # memory is scoped per tenant/user: outside the handler the key is not visible
    assert await ctx.memory.retrieve("k") is None
    assert await ctx.memory.retrieve("k", tenant_id="t1", user_id="u1") == 1


async def test_calls_inside_a_handler_send_the_events_delivery_grant():
    """The event's delivery grant goes with calls acting for its tenant and user (soorma.grants), never with calls
    for anyone else, and a grant is not inherited by the events the handler publishes (the gateway mints theirs)."""
    platform = FakePlatform()
    ctx = platform.context()
    cause = EventEnvelope(type="cause", topic="action-requests", tenant_id="t1", user_id="u1",
                          delivery_grant="g.r.ant")
    with handling(cause, "agent/0", source="my-agent"):
        await ctx.memory.store("k", 1)
        await ctx.memory.store("k", 2, tenant_id="t1", user_id="someone-else")
        await ctx.bus.publish("business-facts", "effect", {})
    own, other = [c for c in platform.calls if c.path.startswith("/v1/memory")]
    assert own.headers["x-soorma-grant"] == "g.r.ant"
    assert "x-soorma-grant" not in other.headers
    [effect] = platform.published
    assert "delivery_grant" not in effect
    assert "g.r.ant" not in repr(cause)  # a credential: kept out of reprs (and so out of logs)


async def test_registry_reads_camel_case_and_snake_case():
    platform = FakePlatform()
    ctx = platform.context()
    answer = await ctx.registry.register_agent({"agent_id": "a1", "name": "alpha", "consumed_events": ["x.y"],
                                                "capabilities": [{"task_name": "x.y"}]})
    assert answer == {"agent_id": "a1", "success": True, "message": "ok"}
    [agent] = await ctx.registry.discover_agents("x.y")
    assert (agent.agent_id, agent["name"], agent.consumed_events) == ("a1", "alpha", ["x.y"])
    assert await ctx.registry.get_agent("a1") is not None
    assert [a.agent_id for a in await ctx.registry.discover(["X."])] == ["a1"]
    await ctx.registry.register_event(soorma.EventDefinition(event_name="x.y", topic="action-requests"))
    event = await ctx.registry.get_event("x.y")
    assert event is not None and event.topic == "action-requests"
    assert await ctx.registry.get_event("nope") is None
    assert await ctx.registry.deregister_agent("a1") is True
    assert await ctx.registry.deregister_agent("a1") is False


async def test_semantic_memory():
    platform = FakePlatform()
    ctx = platform.context()
    first = await ctx.memory.store_knowledge("Oslo is in Norway", metadata={"src": "atlas"})
    ids = await ctx.memory.store_knowledge_batch(["Paris is in France", {"content": "Rome is in Italy"}])
    assert len(ids) == 2 and first not in ids
    hits = await ctx.memory.search_knowledge("Oslo", limit=2)
    assert hits[0]["content"] == "Oslo is in Norway" and hits[0]["score"] == 1.0
    assert hits[0]["metadata"] == {"src": "atlas"} and "created_at" in hits[0]


async def test_restore_task_without_saved_context_raises_and_restore_returns_none():
    ctx = FakePlatform().context()
    result = ResultContext.from_event(
        EventEnvelope(type="x.done", topic="action-results", correlation_id="unknown"), ctx)
    with pytest.raises(TaskNotFoundError):
        await result.restore_task()
    assert await TaskContext.restore("unknown", ctx) is None


async def test_task_context_round_trip_keeps_workflow_fields():
    platform = FakePlatform()
    ctx = platform.context()
    request = EventEnvelope(type="job.run", topic="action-requests", data={"task_id": "t-1", "action_id": "a-1"},
                            correlation_id="corr-1", session_id="s", goal_id="g", plan_id="p", trace_id="tr",
                            response_event="job.done", tenant_id="t1", user_id="u1")
    task = TaskContext.from_event(request, ctx, agent_id="w")
    task.state["mine"] = {"camelCase": 1}
    await task.save()
    restored = await TaskContext.restore("t-1", ctx, tenant_id="t1", user_id="u1")
    assert restored is not None
    assert (restored.correlation_id, restored.session_id, restored.goal_id, restored.plan_id, restored.trace_id) == (
        "corr-1", "s", "g", "p", "tr")
    assert (restored.tenant_id, restored.user_id, restored.response_event) == ("t1", "u1", "job.done")
    assert restored.state == {"mine": {"camelCase": 1}}, "internal keys are stripped, user keys untouched"
    await restored.complete({"ok": True})
    [done] = platform.published
    assert done["data"] == {"task_id": "t-1", "action_id": "a-1", "status": "completed", "result": {"ok": True}}
    assert done["correlation_id"] == "corr-1"
    assert platform.tasks == {}


async def test_complete_without_response_event_is_an_error():
    ctx = FakePlatform().context()
    task = TaskContext.from_event(EventEnvelope(type="x", topic="action-requests"), ctx)
    with pytest.raises(ValueError, match="no response_event"):
        await task.complete({})
