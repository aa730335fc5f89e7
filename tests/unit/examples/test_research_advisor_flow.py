"""The research-advisor's four agents, end to end in-process, against a fake platform.

The fake platform is an ``httpx.MockTransport`` behind a real :class:`soorma.PlatformContext`: semantic search
returns canned passages, task contexts are kept in a dict (upsert, get, by-subtask, delete), and published events
are queued and delivered to every agent that handles them, as the bridge would. What runs is the SDK's real
decorators, contexts and clients and the example's real handlers.
"""

from __future__ import annotations

import functools
import json
import uuid
from urllib.parse import unquote

import httpx
import pytest

from soorma import EventEnvelope, PlatformContext
from soorma.settings import Settings

PASSAGES = [
    ("gzip.open", "gzip", "function", "Open a gzip-compressed file in binary or text mode. The filename argument can be "
     "an actual filename (a str or bytes object), or an existing file object to read from or write to.", 0.829),
    ("gzip.decompress", "gzip", "function", "Decompress a gzip compressed string in one shot. Return the decompressed "
     "string.", 0.755),
    ("gzip", "gzip", "module", "Functions that read and write gzipped files. The user of the file doesn't have to worry "
     "about the compression, but random access is not allowed.", 0.708),
    ("bz2.open", "bz2", "function", "Open a bzip2-compressed file in binary or text mode.", 0.698),
]


class FakePlatform:
    def __init__(self, hits=PASSAGES):
        self.hits = hits
        self.tasks: dict[str, dict] = {}
        self.published: list[EventEnvelope] = []
        self.searches: list[dict] = []

    def take_published(self) -> list[EventEnvelope]:
        out, self.published = self.published, []
        return out

    def handle(self, request: httpx.Request) -> httpx.Response:
        path = unquote(request.url.path)
        method = request.method
        if path == "/v1/events/publish" and method == "POST":
            envelope = EventEnvelope.model_validate(json.loads(request.content)["event"])
            self.published.append(envelope)
            return httpx.Response(200, json={"success": True, "event_id": envelope.id})
        if path == "/v1/memory/semantic/query" and method == "POST":
            self.searches.append({
                "query": request.url.params["query"],
                "limit": int(request.url.params["limit"]),
                "tenant": request.headers.get("x-soorma-service-tenant"),
                "user": request.headers.get("x-soorma-service-user"),
            })
            rows = [
                {"id": str(uuid.uuid5(uuid.NAMESPACE_URL, n)), "content": f"{n}: {text}", "externalId": n,
                 "isPublic": True, "metadata": {"name": n, "module": m, "kind": k}, "score": s}
                for n, m, k, text, s in self.hits
            ]
            return httpx.Response(200, json=rows[: int(request.url.params["limit"])])
        if path == "/v1/memory/task-context" and method == "POST":
            body = json.loads(request.content)
            previous = self.tasks.get(body["task_id"])
            body["version"] = (previous["version"] + 1) if previous else 1
            self.tasks[body["task_id"]] = body
            return httpx.Response(200, json=body)
        if path.startswith("/v1/memory/task-context/by-subtask/") and method == "GET":
            sub = path.rsplit("/", 1)[1]
            found = next((t for t in self.tasks.values() if sub in t["sub_tasks"]), None)
            return httpx.Response(200, json=found) if found else httpx.Response(404, json={"detail": "not found"})
        if path.startswith("/v1/memory/task-context/"):
            task_id = path.rsplit("/", 1)[1]
            if method == "GET" and task_id in self.tasks:
                return httpx.Response(200, json=self.tasks[task_id])
            if method == "DELETE" and task_id in self.tasks:
                del self.tasks[task_id]
                return httpx.Response(204)
            return httpx.Response(404, json={"detail": "not found"})
        return httpx.Response(404, json={"detail": f"no fake route {method} {path}"})


@pytest.fixture
def platform(research_advisor):
    fake = FakePlatform()
    settings = Settings(api_url="http://platform.test", api_key="sk_test_secret")
    context = PlatformContext(settings=settings, transport=httpx.MockTransport(fake.handle))
    agents = research_advisor.agents
    for agent in (agents.planner, agents.researcher, agents.advisor, agents.validator):
        agent.context = context
    return fake


async def run_goal(research_advisor, platform, data):
    agents = research_advisor.agents
    everyone = (agents.planner, agents.researcher, agents.advisor, agents.validator)
    goal_id = str(uuid.uuid4())
    queue = [EventEnvelope(
        type="research.goal", topic="action-requests", data=data, correlation_id=goal_id, goal_id=goal_id,
        trace_id=goal_id, response_event="soorma.goal.result", response_topic="action-results",
        tenant_id="tenant-1", user_id="user-1", platform_tenant_id="pt-1",
    )]
    seen = []
    while queue:
        event = queue.pop(0)
        seen.append(event)
        if event.type == "soorma.goal.result":
            assert not queue, "nothing is published after the goal's answer"
            return goal_id, event, seen
        handled = 0
        for agent in everyone:
            if agent.handlers_for(event):
                handled += await agent.dispatch(event)
        assert handled, f"nobody handled {event.type}"
        queue.extend(platform.take_published())
    raise AssertionError(f"the goal was never answered; events: {[e.type for e in seen]}")


async def test_goal_is_answered_with_a_validated_cited_answer(research_advisor, platform, monkeypatch):
    monkeypatch.delenv("SOORMA_LLM_BASE_URL", raising=False)
    goal_id, answer, seen = await run_goal(research_advisor, platform, {"question": "How do I read a gzip-compressed file?"})

    assert [e.type for e in seen] == [
        "research.goal", "research.retrieve", "research.retrieved", "research.advise", "research.advised",
        "research.validate", "research.validated", "soorma.goal.result",
    ]
    assert answer.correlation_id == goal_id and answer.goal_id == goal_id
    assert answer.topic == "action-results"
    assert answer.data["status"] == "completed"
    result = answer.data["result"]
    assert result["question"] == "How do I read a gzip-compressed file?"
    assert result["validated"] is True and result["unsupported"] == []
    assert result["answer"].startswith("Use `gzip.open` to open a gzip-compressed file in binary or text mode.")
    # `gzip` (0.708) is more than SCORE_WINDOW below the best passage (0.829), so two sources
    assert result["sources"] == [{"name": "gzip.open", "module": "gzip", "score": 0.829},
                                 {"name": "gzip.decompress", "module": "gzip", "score": 0.755}]
    assert result["method"] == "extractive"
    # the researcher searched as the goal's tenant and user, for 8 passages
    assert platform.searches == [{"query": "How do I read a gzip-compressed file?", "limit": 8,
                                  "tenant": "tenant-1", "user": "user-1"}]
    # every step carried the goal's identity and trace; nothing is left in task-context memory
    assert all(e.tenant_id == "tenant-1" and e.user_id == "user-1" and e.trace_id == goal_id for e in seen)
    assert platform.tasks == {}
    # the validator (a Tool) answered in the tool shape
    validated = next(e for e in seen if e.type == "research.validated")
    assert validated.data["success"] is True and validated.data["result"]["valid"] is True


async def test_unsupported_llm_citations_are_dropped(research_advisor, platform, monkeypatch):
    """An LLM that cites something the researcher never retrieved: the validator flags it, the planner drops it."""
    def llm(request: httpx.Request) -> httpx.Response:
        text = ("Call `gzip.open` with mode 'rt' to read text. You can also use `shutil.unpack_archive` for archives. "
                "`gzip.decompress` handles bytes already in memory.")
        return httpx.Response(200, json={"choices": [{"message": {"content": text}}]})

    monkeypatch.setenv("SOORMA_LLM_BASE_URL", "http://llm.test/v1")
    monkeypatch.setenv("SOORMA_LLM_MODEL", "fake-model")
    agents = research_advisor.agents
    monkeypatch.setattr(agents, "reword_with_llm",
                        functools.partial(agents.reword_with_llm, transport=httpx.MockTransport(llm)))

    _, answer, _ = await run_goal(research_advisor, platform, {"question": "How do I read a gzip-compressed file?"})
    result = answer.data["result"]
    assert result["method"] == "llm"
    assert result["validated"] is False
    assert result["unsupported"] == ["shutil.unpack_archive"]
    assert "shutil.unpack_archive" in result["note"]
    assert result["answer"] == ("Call `gzip.open` with mode 'rt' to read text. "
                                "`gzip.decompress` handles bytes already in memory.")
    assert [s["name"] for s in result["sources"]] == ["gzip.open", "gzip.decompress"]


async def test_llm_failure_falls_back_to_the_extractive_answer(research_advisor, platform, monkeypatch):
    monkeypatch.setenv("SOORMA_LLM_BASE_URL", "http://llm.test/v1")
    agents = research_advisor.agents
    monkeypatch.setattr(agents, "reword_with_llm", functools.partial(
        agents.reword_with_llm, transport=httpx.MockTransport(lambda r: httpx.Response(503, text="busy"))))
    _, answer, _ = await run_goal(research_advisor, platform, {"question": "How do I read a gzip-compressed file?"})
    result = answer.data["result"]
    assert result["method"] == "extractive" and result["validated"] is True


async def test_goal_without_a_question_fails(research_advisor, platform):
    _, answer, seen = await run_goal(research_advisor, platform, {"topic": "gzip"})
    assert [e.type for e in seen] == ["research.goal", "soorma.goal.result"]
    assert answer.data["status"] == "failed" and "question" in answer.data["error"]


async def test_nothing_retrieved(research_advisor, platform):
    platform.hits = []
    _, answer, _ = await run_goal(research_advisor, platform, {"question": "What is the airspeed of a swallow?"})
    result = answer.data["result"]
    assert result["sources"] == [] and result["validated"] is False
    assert "nothing" in result["answer"]


async def test_a_late_duplicate_result_is_ignored(research_advisor, platform, monkeypatch):
    monkeypatch.delenv("SOORMA_LLM_BASE_URL", raising=False)
    _, _, seen = await run_goal(research_advisor, platform, {"question": "How do I read a gzip-compressed file?"})
    validated = next(e for e in seen if e.type == "research.validated")
    # the same result delivered again (another execution environment: a fresh copy with a new delivery)
    duplicate = validated.model_copy(update={"id": str(uuid.uuid4())})
    assert await research_advisor.agents.planner.dispatch(duplicate) == 1
    assert platform.take_published() == []
