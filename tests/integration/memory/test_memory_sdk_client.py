"""The SDK's MemoryClient against the real memory function (its Lambda handler behind an httpx transport, the
session's PostgreSQL): what the client sends is what the routes accept, and what they answer the client reads."""

from __future__ import annotations

import uuid

import pytest

from soorma.clients.memory import MemoryClient
from soorma.errors import ConflictError

from .conftest import memory_transport


@pytest.fixture
def client(api, make_identity):
    who = make_identity()
    return MemoryClient("http://memory.test", "sk_unused", transport=memory_transport(api, who))


async def test_agent_memory_round_trip(client):
    await client.log_interaction("bot", "user", "My favourite colour is green.")
    await client.log_interaction("bot", "assistant", "Noted, green it is.")
    history = await client.get_recent_history("bot", limit=5)
    assert [h.role for h in history] == ["assistant", "user"]
    hits = await client.search_interactions("bot", "which colour do I like?", limit=1)
    assert "green" in hits[0].content and hits[0].score > 0

    skill = await client.store_procedure("bot", "Offer a voucher.", "customer complains about a late delivery",
                                         external_id="late")
    skills = await client.get_relevant_skills("bot", "my parcel is two weeks late!")
    assert skills[0].id == skill.id
    assert await client.delete_procedure(skill.id) is True

    fact = await client.store_knowledge("The depot closes at 18:00.")
    page = await client.list_knowledge(limit=10)
    assert [i.id for i in page.items] == [fact] and page.next_cursor is None
    assert await client.delete_knowledge(fact) is True


async def test_planner_state_round_trip(client):
    plan_id = f"plan-{uuid.uuid4().hex[:8]}"
    await client.create_session("s-1", "chat")
    summary = await client.create_plan(plan_id, "research.goal", {"q": "x"}, session_id="s-1")
    assert summary.status == "running"
    with pytest.raises(ConflictError):
        await client.create_plan(plan_id, "research.goal")
    saved = await client.store_plan_context(plan_id, "s-1", "research.goal", {"q": "x"}, "research.done",
                                            {"step": 1}, "start", [plan_id, "corr-9"])
    assert saved.version == 1
    found = await client.get_plan_by_correlation("corr-9")
    assert found.plan_id == plan_id and found.state == {"step": 1}
    again = await client.store_plan_context(plan_id, goal_event="research.goal", state={"step": 2},
                                            correlation_ids=[plan_id, "corr-9"], version=1)
    assert again.version == 2
    with pytest.raises(ConflictError):
        await client.update_plan_context(plan_id, current_state="late", version=1)
    assert (await client.update_plan(plan_id, "completed")).status == "completed"
    assert [p.plan_id for p in await client.list_plans("completed")] == [plan_id]
    assert [s.session_id for s in await client.list_sessions()] == ["s-1"]
    assert await client.delete_plan_context(plan_id) is True
    assert await client.get_plan_by_correlation("corr-9") is None


async def test_soorma_core_query_knowledge_plan_state_and_health(client, api, make_identity):
    """issue 17: MemoryServiceClient's query_knowledge (models, not dicts), plan state get/set/delete over the plan
    context, and health through the /v1/ prefix."""
    fact = await client.store_knowledge("The ferry leaves at 07:15.")
    found = await client.query_knowledge("when does the ferry leave?", limit=3)
    assert found[0].id == fact and "07:15" in found[0].content and found[0].score > 0

    plan_id = f"plan-{uuid.uuid4()}"
    assert await client.get_plan_state(plan_id) is None
    assert await client.set_plan_state(plan_id, {"step": 1}) is None  # no context yet: nothing to set
    saved = await client.store_plan_context(plan_id, goal_event="trip.plan", state={"step": 0})
    updated = await client.set_plan_state(plan_id, {"step": 1, "stops": ["A"]}, version=saved.version)
    assert updated is not None and updated.state == {"step": 1, "stops": ["A"]}
    with pytest.raises(ConflictError):
        await client.set_plan_state(plan_id, {"step": 9}, version=saved.version)  # stale version
    assert await client.get_plan_state(plan_id) == {"step": 1, "stops": ["A"]}
    # another identity sees no state and cannot delete it
    other = MemoryClient("http://memory.test", "sk_unused", transport=memory_transport(api, make_identity()))
    assert await other.get_plan_state(plan_id) is None and await other.delete_plan_state(plan_id) is False
    assert await client.delete_plan_state(plan_id) is True
    assert await client.get_plan_state(plan_id) is None

    assert await client.health() == {"status": "ok", "service": "memory"}
