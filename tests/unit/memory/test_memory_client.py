"""The SDK's MemoryClient against httpx.MockTransport: the requests it sends for every memory route and how it reads
the answers (camelCase in, attributes and dict access out, 404 → None/False, 409 → ConflictError)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from soorma.clients.memory import (
    InteractionRecord,
    KnowledgePage,
    MemoryClient,
    PlanContextRecord,
    PlanSummary,
    ProcedureRecord,
    SessionSummary,
)
from soorma.errors import ConflictError, PlatformError


class Recorder:
    """Answers each request with the next canned (status, json) and records what was sent."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.replies: list[tuple[int, Any]] = []

    def reply(self, status: int, body: Any = None) -> "Recorder":
        self.replies.append((status, body))
        return self

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        status, body = self.replies.pop(0) if self.replies else (200, {})
        if status == 204 or body is None:
            return httpx.Response(status)
        return httpx.Response(status, json=body)

    @property
    def last(self) -> httpx.Request:
        return self.requests[-1]

    def body(self, index: int = -1) -> Any:
        return json.loads(self.requests[index].content)


@pytest.fixture
def mock():
    recorder = Recorder()
    client = MemoryClient("http://memory.test/", "sk_key_secret", transport=httpx.MockTransport(recorder))
    return client, recorder


INTERACTION = {"id": "e1", "tenantId": "t", "userId": "u", "agentId": "a", "role": "user", "content": "hi",
               "metadata": {"k": 1}, "createdAt": "2026-01-01T00:00:00+00:00", "score": None}
PROCEDURE = {"id": "p1", "agentId": "a", "procedureType": "system_prompt", "triggerCondition": "when x",
             "content": "do y", "externalId": "skill", "isPublic": False, "metadata": {}, "score": 0.8}
PLAN_CONTEXT = {"planId": "plan-1", "sessionId": "s", "goalEvent": "g", "goalData": {"a": 1}, "responseEvent": "r",
                "state": {"x": 1}, "currentState": "start", "correlationIds": ["plan-1", "c1"], "version": 2}
PLAN = {"planId": "plan-1", "goalEvent": "g", "goalData": {}, "status": "running", "parentPlanId": None}
SESSION = {"sessionId": "s-1", "name": "Trip", "metadata": {}, "createdAt": "x", "lastInteraction": "y"}


async def test_episodic_methods(mock):
    client, rec = mock
    rec.reply(201, INTERACTION)
    logged = await client.log_interaction("a", "user", "hi", metadata={"k": 1}, tenant_id="t", user_id="u")
    assert isinstance(logged, InteractionRecord) and logged.agent_id == "a" and logged["content"] == "hi"
    assert rec.last.method == "POST" and rec.last.url.path == "/v1/memory/episodic"
    assert rec.body() == {"agent_id": "a", "role": "user", "content": "hi", "metadata": {"k": 1}}
    assert rec.last.headers["authorization"] == "Bearer sk_key_secret"
    assert rec.last.headers["x-soorma-service-tenant"] == "t" and rec.last.headers["x-soorma-service-user"] == "u"

    rec.reply(200, [INTERACTION, {**INTERACTION, "id": "e0"}])
    history = await client.get_recent_history("a", limit=2)
    assert [h.id for h in history] == ["e1", "e0"]
    assert rec.last.url.path == "/v1/memory/episodic/recent"
    assert dict(rec.last.url.params) == {"agent_id": "a", "limit": "2"}

    rec.reply(200, [{**INTERACTION, "score": 0.9}])
    found = await client.search_interactions("a", "greeting", limit=3, ef_search=120)
    assert found[0].score == 0.9
    assert dict(rec.last.url.params) == {"agent_id": "a", "q": "greeting", "limit": "3", "ef_search": "120"}
    rec.reply(200, [])
    await client.search_interactions("a", "greeting")
    assert "ef_search" not in rec.last.url.params  # not sent unless given


async def test_procedural_methods(mock):
    client, rec = mock
    rec.reply(201, PROCEDURE)
    stored = await client.store_procedure("a", "do y", "when x", external_id="skill", is_public=True)
    assert isinstance(stored, ProcedureRecord) and stored.trigger_condition == "when x"
    assert rec.body() == {"agent_id": "a", "content": "do y", "trigger_condition": "when x",
                          "procedure_type": "system_prompt", "is_public": True, "metadata": {},
                          "external_id": "skill"}
    assert MemoryClient.store_skill is MemoryClient.store_procedure

    rec.reply(200, [PROCEDURE])
    skills = await client.get_relevant_skills("a", "user wants a refund")
    assert skills[0].score == 0.8 and rec.last.url.path == "/v1/memory/procedural/context"
    assert dict(rec.last.url.params) == {"agent_id": "a", "q": "user wants a refund", "limit": "3"}

    rec.reply(204).reply(404, {"detail": "procedure not found"})
    assert await client.delete_procedure("p1") is True
    assert rec.last.method == "DELETE" and rec.last.url.path == "/v1/memory/procedural/p1"
    assert await client.delete_procedure("p1") is False


async def test_plan_context_methods(mock):
    client, rec = mock
    rec.reply(200, PLAN_CONTEXT)
    saved = await client.store_plan_context(
        "plan-1", "s", "g", {"a": 1}, "r", {"x": 1}, "start", ["plan-1", "c1"], tenant_id="t", user_id="u",
        version=1)
    assert isinstance(saved, PlanContextRecord) and saved.version == 2 and saved["state"] == {"x": 1}
    assert rec.last.url.path == "/v1/memory/plan-context"
    assert rec.body() == {"plan_id": "plan-1", "session_id": "s", "goal_event": "g", "goal_data": {"a": 1},
                          "response_event": "r", "state": {"x": 1}, "current_state": "start",
                          "correlation_ids": ["plan-1", "c1"], "version": 1}

    rec.reply(409, {"detail": "plan context plan-1 is at version 3, not 1"})
    with pytest.raises(ConflictError) as info:
        await client.store_plan_context("plan-1", goal_event="g", version=1)
    assert info.value.status == 409 and "version 3" in str(info.value.detail)

    rec.reply(200, PLAN_CONTEXT).reply(404, {"detail": "plan context not found: nope"})
    assert (await client.get_plan_context("plan-1")).current_state == "start"
    assert rec.last.url.path == "/v1/memory/plan-context/plan-1"
    assert await client.get_plan_context("nope") is None

    rec.reply(200, PLAN_CONTEXT).reply(404, {"detail": "none"})
    assert (await client.get_plan_by_correlation("c 1/x")).plan_id == "plan-1"
    assert rec.last.url.raw_path == b"/v1/memory/plan-context/by-correlation/c%201%2Fx"  # path-safe
    assert await client.get_plan_by_correlation("missing") is None

    rec.reply(200, {**PLAN_CONTEXT, "version": 3})
    updated = await client.update_plan_context("plan-1", current_state="done", version=2)
    assert updated.version == 3 and rec.last.method == "PUT"
    assert rec.body() == {"current_state": "done", "version": 2}
    rec.reply(404, {"detail": "plan context not found"})
    assert await client.update_plan_context("nope", state={}) is None

    rec.reply(204).reply(404, {"detail": "x"})
    assert await client.delete_plan_context("plan-1") is True
    assert await client.delete_plan_context("plan-1") is False


async def test_plans_and_sessions(mock):
    client, rec = mock
    rec.reply(201, PLAN)
    plan = await client.create_plan("plan-1", "g", {"k": "v"}, session_id="s", parent_plan_id="parent")
    assert isinstance(plan, PlanSummary) and plan.status == "running"
    assert rec.body() == {"plan_id": "plan-1", "goal_event": "g", "goal_data": {"k": "v"}, "session_id": "s",
                          "parent_plan_id": "parent", "response_event": None}
    rec.reply(409, {"detail": "plan plan-1 already exists"})
    with pytest.raises(ConflictError):
        await client.create_plan("plan-1", "g")

    rec.reply(200, [PLAN])
    plans = await client.list_plans("running", limit=5)
    assert [p.plan_id for p in plans] == ["plan-1"]
    assert dict(rec.last.url.params) == {"status": "running", "limit": "5"}

    rec.reply(200, {**PLAN, "status": "completed"}).reply(404, {"detail": "plan not found: nope"})
    assert (await client.update_plan("plan-1", "completed")).status == "completed"
    assert rec.body() == {"status": "completed"}
    assert await client.update_plan("nope", "failed") is None
    rec.reply(200, PLAN).reply(404, {"detail": "x"}).reply(204).reply(404, {"detail": "x"})
    assert (await client.get_plan("plan-1")).goal_event == "g"
    assert await client.get_plan("nope") is None
    assert await client.delete_plan("plan-1") is True
    assert await client.delete_plan("plan-1") is False

    rec.reply(201, SESSION)
    session = await client.create_session("s-1", "Trip", {"lang": "en"})
    assert isinstance(session, SessionSummary) and session.last_interaction == "y"
    assert rec.body() == {"session_id": "s-1", "name": "Trip", "metadata": {"lang": "en"}}
    rec.reply(200, [SESSION]).reply(200, SESSION).reply(404, {"detail": "x"}).reply(204)
    assert [s.session_id for s in await client.list_sessions(limit=3)] == ["s-1"]
    assert dict(rec.last.url.params) == {"limit": "3"}
    assert (await client.get_session("s-1")).name == "Trip"
    assert await client.get_session("nope") is None
    assert await client.delete_session("s-1") is True


async def test_knowledge_listing_and_deletion(mock):
    client, rec = mock
    item = {"id": "k1", "content": "fact", "externalId": None, "isPublic": False, "metadata": {}}
    rec.reply(200, {"items": [item], "count": 1, "nextCursor": "abc"})
    page = await client.list_knowledge(limit=1)
    assert isinstance(page, KnowledgePage) and page.items[0].id == "k1" and page.next_cursor == "abc"
    assert dict(rec.last.url.params) == {"limit": "1"}
    rec.reply(200, {"items": [], "count": 0, "nextCursor": None})
    assert (await client.list_knowledge(limit=1, cursor="abc")).next_cursor is None
    assert dict(rec.last.url.params) == {"limit": "1", "cursor": "abc"}
    rec.reply(204).reply(404, {"detail": "knowledge not found"})
    assert await client.delete_knowledge("k1") is True
    assert await client.delete_knowledge("k1") is False


async def test_versioned_task_context_and_existing_signatures(mock):
    client, rec = mock
    record = {"taskId": "t1", "eventType": "e", "version": 4}
    rec.reply(200, record)
    # soorma-core's positional order still works, version is keyword-only
    saved = await client.store_task_context("t1", "plan", "e", "resp", "action-results", {"d": 1}, ["s1"], {"st": 1},
                                            "tenant", "user", version=3)
    assert saved.version == 4 and rec.body()["version"] == 3 and rec.body()["sub_tasks"] == ["s1"]
    rec.reply(200, record)
    await client.store_task_context("t1", None, "e")
    assert "version" not in rec.body()
    rec.reply(409, {"detail": "task context t1 is at version 5, not 3"})
    with pytest.raises(ConflictError):
        await client.update_task_context("t1", state={"x": 1}, version=3)
    assert rec.body() == {"version": 3, "state": {"x": 1}}


async def test_goal_metadata_reads_the_planners_working_memory_key(mock):
    client, rec = mock
    rec.reply(200, {"planId": "corr-1", "key": "_soorma:goal:corr-1", "value": {"event_type": "g"}})
    assert await client.get_goal_metadata("corr-1") == {"event_type": "g"}
    assert rec.last.url.path == "/v1/memory/working/corr-1/_soorma%3Agoal%3Acorr-1" or \
        rec.last.url.raw_path == b"/v1/memory/working/corr-1/_soorma%3Agoal%3Acorr-1"
    rec.reply(404, {"detail": "not found"})
    assert await client.get_goal_metadata("corr-2") is None


async def test_other_errors_raise_platform_errors(mock):
    client, rec = mock
    rec.reply(422, {"detail": [{"loc": ["body", "role"], "msg": "bad role"}]})
    with pytest.raises(PlatformError) as info:
        await client.log_interaction("a", "narrator", "x")
    assert info.value.status == 422
