"""LLM providers (OpenAI-compatible against a local fake server, Bedrock Converse with botocore's Stubber),
EventToolkit discovery, EventSelector and ChoreographyPlanner."""

from __future__ import annotations

import asyncio
import json

import pytest

from soorma import EventDefinition, EventEnvelope, Worker
from soorma.ai.choreography import ChoreographyPlanner, UndiscoveredEventError
from soorma.ai.decisions import CompleteAction, PlanAction, PublishAction, decision_from_llm
from soorma.ai.event_toolkit import EventToolkit
from soorma.ai.llm import (
    BedrockConverseProvider,
    LLMError,
    OpenAICompatibleProvider,
    parse_json,
    provider_from_env,
)
from soorma.ai.selection import EventSelectionError, EventSelector
from soorma.plan_context import PlanContext
from soorma.testing.llm import FakeLLMServer

from .fakes import API_KEY, FakePlatform, deliver

TENANT, USER = "acme", "alice"
GOAL_ID = "3f1f0f5e-4b44-4d6e-9a39-7c2b3a1d9e21"

FETCH = EventDefinition(event_name="feedback.fetch", topic="action-requests",
                        description="Fetch customer feedback entries from the datastore",
                        payload_schema={"type": "object", "properties": {"product": {"type": "string"}},
                                        "required": ["product"]})
ANALYZE = EventDefinition(event_name="feedback.analyze", topic="action-requests",
                          description="Analyze sentiment of feedback entries")


# --- providers -------------------------------------------------------------------------------------------------------


async def test_openai_compatible_provider_against_a_local_fake_server():
    with FakeLLMServer(['{"answer": 42}']) as llm:
        provider = OpenAICompatibleProvider("tiny-model", llm.base_url, "llm-key-1")
        answer = await provider.complete([{"role": "system", "content": "be brief"},
                                          {"role": "user", "content": "6*7?"}],
                                         temperature=0, max_tokens=20, json_mode=True, top_p=0.5,
                                         auth_token="sk_platform_secret")
    assert answer.json() == {"answer": 42} and answer.model == "tiny-model"
    [request] = llm.requests
    assert request["path"] == "/v1/chat/completions"
    assert request["headers"]["Authorization"] == "Bearer llm-key-1"
    body = request["body"]
    assert body["response_format"] == {"type": "json_object"} and body["top_p"] == 0.5
    assert body["temperature"] == 0 and body["max_tokens"] == 20
    assert "sk_platform_secret" not in json.dumps(request)  # credentials are never forwarded


async def test_openai_provider_errors_are_llm_errors():
    with FakeLLMServer(status=500) as llm:
        with pytest.raises(LLMError, match="500"):
            await OpenAICompatibleProvider("m", llm.base_url).complete([{"role": "user", "content": "x"}])
    with pytest.raises(LLMError):
        await OpenAICompatibleProvider("m", "http://127.0.0.1:9/v1", timeout=1).complete(
            [{"role": "user", "content": "x"}])


async def test_bedrock_converse_provider_with_stubber():
    import boto3
    from botocore.stub import Stubber

    client = boto3.client("bedrock-runtime", region_name="us-east-1", aws_access_key_id="x",
                          aws_secret_access_key="y")
    stubber = Stubber(client)
    expected = {
        "modelId": "anthropic.claude-3-haiku-20240307-v1:0",
        "messages": [{"role": "user", "content": [{"text": "hello"}, {"text": "again"}]}],
        "system": [{"text": "be brief"}, {"text": "Answer with exactly one JSON object and nothing else."}],
        "inferenceConfig": {"temperature": 0.2, "maxTokens": 50},
    }
    stubber.add_response("converse", {
        "output": {"message": {"role": "assistant", "content": [{"text": '```json\n{"ok": true}\n```'}]}},
        "stopReason": "end_turn",
        "usage": {"inputTokens": 5, "outputTokens": 3, "totalTokens": 8},
        "metrics": {"latencyMs": 10},
    }, expected)
    with stubber:
        provider = provider_from_env({"SOORMA_LLM_PROVIDER": "bedrock"}, client=client)
        assert isinstance(provider, BedrockConverseProvider)
        answer = await provider.complete(
            [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello"},
             {"role": "user", "content": "again"}], temperature=0.2, max_tokens=50, json_mode=True)
        stubber.assert_no_pending_responses()
    assert answer.json() == {"ok": True} and answer.usage["totalTokens"] == 8


def test_provider_from_env_and_json_parsing():
    provider = provider_from_env({"SOORMA_LLM_BASE_URL": "http://llm.local/v1/", "SOORMA_LLM_MODEL": "m1",
                                  "SOORMA_LLM_API_KEY": "k"})
    assert isinstance(provider, OpenAICompatibleProvider)
    assert (provider.model, provider.base_url) == ("m1", "http://llm.local/v1")
    assert "k" not in repr(provider)
    with pytest.raises(ValueError):
        provider_from_env({"SOORMA_LLM_PROVIDER": "nope"})
    assert parse_json('Sure! {"a": {"b": 1}} hope that helps') == {"a": {"b": 1}}
    with pytest.raises(ValueError):
        parse_json("no json here")


def test_decisions_read_leniently():
    decision = decision_from_llm({"action": "PUBLISH", "event_type": "x.y", "payload": {"a": 1}}, "p1")
    assert isinstance(decision.next_action, PublishAction) and decision.next_action.data == {"a": 1}
    assert decision.next_action.action == PlanAction.PUBLISH and decision.plan_id == "p1"
    decision = decision_from_llm({"reasoning": "done", "next_action": {"action": "complete", "result": {"r": 1}}})
    assert isinstance(decision.next_action, CompleteAction) and decision.reasoning == "done"


# --- discovery ----------------------------------------------------------------------------------------------------


def register_workers(platform: FakePlatform) -> None:
    """What the deployer registers for a fetcher (EventDefinition) and an analyzer (plain on_event handler)."""
    fetcher = Worker("feedback-fetcher", events_consumed=[FETCH], context=platform.context())

    @fetcher.on_task("feedback.fetch")
    async def fetch(task, context):
        await task.complete({"entries": [{"rating": 5, "text": "great"}, {"rating": 1, "text": "bad"}]})

    analyzer = Worker("feedback-analyzer", events_consumed=[ANALYZE], context=platform.context())

    @analyzer.on_event("feedback.analyze", topic="action-requests")
    async def analyze(event, context):
        await context.bus.respond(event.response_event, {"positive": 1, "negative": 1}, event.correlation_id)

    @analyzer.on_result("something.done")
    async def ignored(result, context):
        pass

    for agent in (fetcher, analyzer):
        asyncio.run(agent.register())
    return fetcher, analyzer


def test_toolkit_discovers_consumed_events_with_their_definitions():
    platform = FakePlatform()
    register_workers(platform)
    toolkit = platform.context().toolkit
    assert isinstance(toolkit, EventToolkit)
    events = asyncio.run(toolkit.discover_actionable_events("action-requests"))
    by_name = {e["name"]: e for e in events}
    assert set(by_name) == {"feedback.fetch", "feedback.analyze"}  # not the awaited result something.done
    assert by_name["feedback.fetch"]["required_fields"] == ["product"]
    assert by_name["feedback.fetch"]["consumers"] == ["feedback-fetcher"]
    text = toolkit.format_as_prompt_text(events)
    assert "Fetch customer feedback" in text and "product*" in text
    all_events = asyncio.run(toolkit.discover_events(event_name_pattern="feedback.*"))
    assert {e["name"] for e in all_events} == {"feedback.fetch", "feedback.analyze"}
    with pytest.raises(ValueError, match="product"):
        asyncio.run(toolkit.create_payload("feedback.fetch", {"nope": 1}))
    assert asyncio.run(toolkit.create_payload("feedback.fetch", {"product": "x"})) == {"product": "x"}


def test_event_selector_picks_a_discovered_event_and_rejects_others():
    platform = FakePlatform()
    register_workers(platform)
    ctx = platform.context()
    with FakeLLMServer(['{"event_type": "feedback.analyze", "payload": {"entries": []}, "reasoning": "r"}',
                        '{"event_type": "feedback.delete_everything", "payload": {}}']) as llm:
        selector = EventSelector(ctx, llm=OpenAICompatibleProvider("m", llm.base_url))
        decision = asyncio.run(selector.select_event({"ticket": "customers are unhappy"}))
        assert decision.event_type == "feedback.analyze" and decision.topic == "action-requests"
        event_id = asyncio.run(selector.publish_decision(decision, "corr-1", response_event="analysis.done"))
        [published] = platform.published_of("feedback.analyze")
        assert published["id"] == event_id and published["response_event"] == "analysis.done"
        with pytest.raises(EventSelectionError, match="feedback.delete_everything"):
            asyncio.run(selector.select_event("anything"))
        assert "customers are unhappy" in llm.prompts()[0]


# --- choreography -------------------------------------------------------------------------------------------------


def goal_event():
    return EventEnvelope(
        type="analyze.feedback", topic="action-requests", data={"objective": "feedback report", "product": "x"},
        correlation_id=GOAL_ID, goal_id=GOAL_ID, trace_id=GOAL_ID, response_event="soorma.goal.result",
        response_topic="action-results", tenant_id=TENANT, user_id=USER,
    ).model_dump(mode="json", exclude_none=True)


def build_planner(platform: FakePlatform, base_url: str, max_actions: int = 5) -> ChoreographyPlanner:
    planner = ChoreographyPlanner(
        "feedback-orchestrator", reasoning_model="fake-model", api_base=base_url, api_key="llm-key",
        max_actions=max_actions, system_instructions="Produce a feedback report.",
        auth_token=API_KEY, auth_token_provider=lambda: API_KEY, context=platform.context(), max_tokens=300,
    )

    @planner.on_goal("analyze.feedback")
    async def goal(goal, context):
        plan = await PlanContext.create_from_goal(goal, context, state_machine={}, current_state="reasoning",
                                                  status="running")
        decision = await planner.reason_next_action(f"New goal: {goal.data['objective']}", context,
                                                    plan_id=plan.plan_id, custom_context={"goal": goal.data})
        await planner.execute_decision(decision, context, goal_event=goal, plan=plan)

    @planner.on_transition()
    async def step(event, context, plan, next_state):
        assert next_state is None
        plan.results[event.type] = event.data
        decision = await planner.reason_next_action(f"Event: {event.type}", context, plan_id=plan.plan_id,
                                                    custom_context={"results": plan.results})
        await planner.execute_decision(decision, context, goal_event=event, plan=plan)

    return planner


def scripted(answers: list[dict]):
    """A fake LLM answering each request with the next decision."""
    answers = list(answers)

    def answer(body):
        return json.dumps(answers.pop(0) if len(answers) > 1 else answers[0])

    return answer


def test_choreography_publishes_discovered_events_then_completes():
    platform = FakePlatform()
    fetcher, analyzer = register_workers(platform)
    script = scripted([
        {"next_action": {"action": "publish", "event_type": "feedback.fetch", "data": {"product": "x"}}},
        {"next_action": {"action": "publish", "event_type": "feedback.analyze", "data": {"entries": "..."}}},
        {"next_action": {"action": "complete", "result": {"report": "1 positive, 1 negative"}}},
    ])
    with FakeLLMServer(script) as llm:
        planner = build_planner(platform, llm.base_url)
        asyncio.run(planner.register())  # its own goal is registered too, and must not be offered to the LLM
        assert "analyze.feedback" in platform.agents["feedback-orchestrator"]["consumed_events"]
        assert deliver(planner, goal_event()) == {"batchItemFailures": []}
        [fetch] = platform.published_of("feedback.fetch")
        assert fetch["plan_id"] == GOAL_ID and fetch["goal_id"] == GOAL_ID
        assert fetch["response_event"] == "feedback.fetch.completed"
        deliver(fetcher, fetch)
        [fetched] = platform.published_of("feedback.fetch.completed")
        deliver(planner, fetched)
        [analyze] = platform.published_of("feedback.analyze")
        deliver(analyzer, analyze)
        [analyzed] = platform.published_of("feedback.analyze.completed")
        deliver(planner, analyzed)
        [answer] = platform.published_of("soorma.goal.result")
        assert answer["correlation_id"] == GOAL_ID
        assert answer["data"]["result"] == {"report": "1 positive, 1 negative"}
        assert platform.published_of("plan.completed")
        # the LLM saw the discovered events, never the goal event itself, and never the platform's credentials
        prompts = "\n".join(llm.prompts())
        assert "feedback.fetch" in prompts and "Fetch customer feedback" in prompts
        assert "analyze.feedback" not in prompts.split("Available events:")[1]
        for request in llm.requests:
            assert API_KEY not in json.dumps(request)
            assert request["headers"]["Authorization"] == "Bearer llm-key"
            assert request["body"]["max_tokens"] == 300
        assert len(llm.requests) == 3


def test_choreography_rejects_undiscovered_events():
    platform = FakePlatform()
    register_workers(platform)
    bad = {"next_action": {"action": "publish", "event_type": "bank.transfer", "data": {"amount": 1e6}}}
    with FakeLLMServer(scripted([bad, bad])) as llm:
        planner = build_planner(platform, llm.base_url)
        ctx = platform.context()
        with pytest.raises(UndiscoveredEventError, match="bank.transfer"):
            asyncio.run(planner.reason_next_action("goal", ctx, plan_id="p-1"))
        assert len(llm.requests) == 2 and "not available" in llm.prompts()[-1]
    assert platform.published_of("bank.transfer") == []
    # inside the Lambda entry the goal fails (and is retried by the delivery layer), nothing is published
    with FakeLLMServer(scripted([bad])) as llm:
        planner = build_planner(platform, llm.base_url)
        assert deliver(planner, goal_event()) == {"batchItemFailures": [{"itemIdentifier": "m0"}]}
    assert platform.published_of("bank.transfer") == []


def test_choreography_stops_at_max_actions():
    platform = FakePlatform()
    fetcher, _ = register_workers(platform)
    again = {"next_action": {"action": "publish", "event_type": "feedback.fetch", "data": {"product": "x"}}}
    with FakeLLMServer(scripted([again])) as llm:
        planner = build_planner(platform, llm.base_url, max_actions=2)
        deliver(planner, goal_event())
        for _ in range(3):
            fetches = platform.published_of("feedback.fetch")
            deliver(fetcher, fetches[-1])
            deliver(planner, platform.published_of("feedback.fetch.completed")[-1])
            if platform.published_of("soorma.goal.result"):
                break
        assert len(llm.requests) == 2  # the third decision was the circuit breaker's, without the LLM
    [answer] = platform.published_of("soorma.goal.result")
    assert answer["data"]["result"]["status"] == "stopped"
    assert "max_actions (2)" in answer["data"]["result"]["reason"]


def test_choreography_wait_pauses_the_plan():
    platform = FakePlatform()
    register_workers(platform)
    wait = {"next_action": {"action": "wait", "reason": "need approval", "expected_event": "approval.given"}}
    with FakeLLMServer(scripted([wait])) as llm:
        planner = build_planner(platform, llm.base_url)
        deliver(planner, goal_event())
    [plan] = platform.plan_contexts.values()
    assert plan["state"]["status"] == "paused" and plan["state"]["pause_reason"] == "need approval"
    [waiting] = platform.published_of("plan.waiting_for_input")
    assert waiting["data"]["expected_event"] == "approval.given"
    # WAIT is an input request of the goal, with the stored timeout (the platform's durable timer enforces it)
    [request] = platform.published_of("soorma.input.requested")
    assert request["topic"] == "task-events" and request["goal_id"] == GOAL_ID
    assert request["data"]["request_id"] == waiting["data"]["request_id"]
    assert request["data"]["task_id"] == plan["state"]["plan_id"] and request["data"]["timeout_seconds"] == 3600
    assert request["data"]["prompt"] == "need approval" and request["data"]["has_default"] is False


def input_event(kind: str, request: dict, **data) -> dict:
    """What the platform sends back for an input request: its answer, or its timeout."""
    return EventEnvelope(
        type=kind, topic="action-results", correlation_id=request["correlation_id"], goal_id=GOAL_ID,
        tenant_id=TENANT, user_id=USER,
        data={"request_id": request["data"]["request_id"], "task_id": request["data"]["task_id"],
              "agent": request["data"]["agent"], **data},
    ).model_dump(mode="json", exclude_none=True)


def test_choreography_wait_resumes_with_the_answer():
    platform = FakePlatform()
    register_workers(platform)
    wait = {"next_action": {"action": "wait", "reason": "approve?", "timeout_seconds": 60}}
    done = {"next_action": {"action": "complete", "result": {"report": "approved"}}}
    with FakeLLMServer(scripted([wait, done])) as llm:
        planner = build_planner(platform, llm.base_url)
        deliver(planner, goal_event())
        [request] = platform.published_of("soorma.input.requested")
        answered = input_event("soorma.input.answered", request, status="answered", answer={"ok": True},
                               has_default=False)
        deliver(planner, answered)
        deliver(planner, answered)  # redelivered: the request is no longer pending, nothing happens twice
        assert "soorma.input.answered" in llm.requests[1]["body"]["messages"][1]["content"]
        assert len(llm.requests) == 2
    [result] = platform.published_of("soorma.goal.result")
    assert result["data"]["result"] == {"report": "approved"}
    [plan] = platform.plan_contexts.values()
    assert plan["state"]["results"]["user_input"] == {"ok": True} and plan["state"]["input_requests"] == {}


def test_choreography_wait_times_out_and_fails_the_goal():
    platform = FakePlatform()
    register_workers(platform)
    wait = {"next_action": {"action": "wait", "reason": "approve?", "timeout_seconds": 5}}
    with FakeLLMServer(scripted([wait])) as llm:
        planner = build_planner(platform, llm.base_url)
        deliver(planner, goal_event())
        [request] = platform.published_of("soorma.input.requested")
        deliver(planner, input_event("soorma.input.timeout", request, status="timed-out", answer=None,
                                     has_default=False))
        assert len(llm.requests) == 1  # no decision after the timeout: the plan failed
    [result] = platform.published_of("soorma.goal.result")
    assert result["data"]["status"] == "failed" and "timed out after 5 s" in result["data"]["error"]


def test_credentials_passed_as_llm_kwargs_are_dropped():
    planner = ChoreographyPlanner("p", llm=object(), api_key="llm", soorma_api_key="sk_x", top_p=0.9)
    assert planner.llm_kwargs == {"top_p": 0.9}
