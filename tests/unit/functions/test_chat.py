"""The OpenAI-compatible chat API's pure parts (soorma.functions.protocols.chat): the goal data of a request, the answer
of a goal, the event stream, the error shape and its middleware, the chat entries of registry rows; and the chat
declaration of the SDK and the registry. The routes on a real stack: tests/e2e/test_openai_chat.py."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from fastapi import FastAPI, HTTPException
from fastapi.testclient import TestClient
from openai.types.chat import ChatCompletion as OpenAIChatCompletion, ChatCompletionChunk as OpenAIChunk
from pydantic import ValidationError

from soorma import Planner, Worker
from soorma.functions.protocols import chat
from soorma.functions.protocols.chat_models import ChatCompletionRequest, dump
from soorma.functions.registry.models import AgentDefinition, Capability

CREATED = "2026-12-04T10:00:00+00:00"


def goal(status="completed", result=None, error=None) -> dict:
    return {"goal_id": "0b7e6f6a-1c52-4a53-9d0e-1f4f1b1c2d3e", "status": status, "result": result, "error": error,
            "created_at": CREATED}


def request(**body) -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate({"model": "m", **body})


def test_goal_data_is_the_messages_and_the_last_user_text():
    body = request(messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "first"},
                             {"role": "assistant", "content": None},
                             {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}])
    assert chat.goal_data(body) == {
        "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "first"},
                     {"role": "assistant", "content": ""}, {"role": "user", "content": "a\nb"}],
        "text": "a\nb",
    }
    with pytest.raises(chat.ChatError) as no_user:
        chat.goal_data(request(messages=[{"role": "system", "content": "x"}]))
    assert no_user.value.status == 400 and no_user.value.param == "messages"


@pytest.mark.parametrize("body", [
    {"messages": []},
    {"messages": [{"role": "narrator", "content": "x"}]},
    {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]},
    {"messages": [{"role": "user", "content": "x"}], "n": 2},
    {"model": "", "messages": [{"role": "user", "content": "x"}]},
])
def test_requests_the_gateway_cannot_answer_are_refused(body):
    with pytest.raises(ValidationError):
        request(**body)


def test_sampling_options_are_accepted_and_ignored():
    body = request(messages=[{"role": "user", "content": "x"}], temperature=0.2, max_tokens=5, tools=[])
    assert body.model == "m" and not body.stream
    assert not request(messages=[{"role": "user", "content": "x"}], stream=None, n=None).stream  # null: the default


@pytest.mark.parametrize("result, text", [
    ({"success": True, "result": {"question": "q", "answer": "use gzip.open"}}, "use gzip.open"),
    ({"result": {"text": "t", "answer": "a"}}, "t"),
    ({"result": "plain"}, "plain"),
    ({"content": "at the top"}, "at the top"),
    ({"result": {"sum": 4}}, '{"sum": 4}'),
    (None, "null"),
])
def test_the_assistant_message_is_the_results_text(result, text):
    assert chat.result_text(result) == text


def test_usage_is_zero_unless_the_result_reports_it():
    assert dump(chat.result_usage({"result": {"answer": "a"}})) == {"prompt_tokens": 0, "completion_tokens": 0,
                                                                      "total_tokens": 0}
    reported = {"result": {"answer": "a", "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}}}
    assert chat.result_usage(reported).total_tokens == 7
    assert chat.result_usage({"result": {"usage": {"prompt_tokens": -1}}}).prompt_tokens == 0


def test_a_completed_goal_is_a_completion_openai_can_read():
    answer = chat.completion(goal(result={"result": {"answer": "hello"}}), "m")
    parsed = OpenAIChatCompletion.model_validate(dump(answer))
    assert parsed.id == "chatcmpl-0b7e6f6a-1c52-4a53-9d0e-1f4f1b1c2d3e" and parsed.model == "m"
    assert parsed.choices[0].message.content == "hello" and parsed.choices[0].finish_reason == "stop"
    assert parsed.created == int(datetime(2026, 12, 4, 10, tzinfo=UTC).timestamp())


@pytest.mark.parametrize("status, error, http, code", [
    ("running", None, 504, "goal_timeout"),
    ("pending", None, 504, "goal_timeout"),
    ("failed", "no question", 502, "goal_failed"),
    ("cancelled", "by user", 502, "goal_cancelled"),
])
def test_a_goal_that_did_not_complete_is_an_error_naming_it(status, error, http, code):
    with pytest.raises(chat.ChatError) as raised:
        chat.completion(goal(status, error=error), "m")
    body = json.loads(raised.value.response().body)
    assert raised.value.status == http and body["error"]["code"] == code
    assert body["error"]["goal_id"] == goal()["goal_id"] and goal()["goal_id"] in body["error"]["message"]
    assert raised.value.response().headers["x-should-retry"] == "false"
    if error:
        assert error in body["error"]["message"]


def test_the_stream_is_chunks_then_done():
    answer = chat.completion(goal(result={"result": {"answer": "hello"}}), "m")
    text = chat.event_stream(answer, include_usage=True)
    events = [line.removeprefix("data: ") for line in text.split("\n\n") if line]
    assert events[-1] == "[DONE]"
    chunks = [OpenAIChunk.model_validate(json.loads(e)) for e in events[:-1]]
    assert [c.choices[0].delta.content if c.choices else None for c in chunks] == ["hello", None, None]
    assert chunks[0].choices[0].delta.role == "assistant" and chunks[1].choices[0].finish_reason == "stop"
    assert chunks[2].choices == [] and chunks[2].usage.total_tokens == 0
    assert len(chat.event_stream(answer, include_usage=False).split("\n\n")) == 4  # two chunks, [DONE], ""


@pytest.mark.parametrize("status, body, expected_status, kind, param, code", [
    (422, {"detail": [{"loc": ["body", "messages", 0, "role"], "msg": "bad role"}]}, 400, "invalid_request_error",
     "messages.0.role", None),
    (401, {"detail": "Unauthorized"}, 401, "authentication_error", None, None),
    (403, {"detail": "policy rule 'allowed_goal_types': no", "rule": "allowed_goal_types"}, 403, "permission_error",
     None, "allowed_goal_types"),
    (429, {"detail": "rate limit exceeded"}, 429, "rate_limit_error", None, None),
    (503, {"detail": "database unavailable"}, 503, "server_error", None, None),
    (404, {"message": "Not Found"}, 404, "not_found_error", None, None),
])
def test_gateway_errors_take_openais_shape(status, body, expected_status, kind, param, code):
    new_status, new_body = chat.openai_error(status, body)
    assert new_status == expected_status
    error = new_body["error"]
    assert (error["type"], error["param"], error["code"]) == (kind, param, code) and error["message"]
    assert chat.openai_error(404, new_body) == (404, new_body)  # already OpenAI's: unchanged


def test_the_middleware_rewrites_errors_of_the_chat_paths_only():
    app = FastAPI()

    @app.get("/v1/models")
    def refused():
        raise HTTPException(429, "rate limit exceeded", headers={"Retry-After": "3"})

    @app.get("/v1/goals")
    def other():
        raise HTTPException(429, "rate limit exceeded")

    @app.post("/v1/chat/completions")
    def ok(body: ChatCompletionRequest):
        return {"fine": True}

    app.add_middleware(chat.OpenAIErrorShape)
    client = TestClient(app)
    limited = client.get("/v1/models")
    assert limited.status_code == 429 and limited.headers["retry-after"] == "3"
    assert limited.json()["error"]["type"] == "rate_limit_error"
    assert client.get("/v1/goals").json() == {"detail": "rate limit exceeded"}
    invalid = client.post("/v1/chat/completions", json={"model": "m", "messages": []})
    assert invalid.status_code == 400 and invalid.json()["error"]["param"] == "messages"
    assert client.post("/v1/chat/completions", json={"model": "m", "messages": [
        {"role": "user", "content": "x"}]}).json() == {"fine": True}


def test_chat_entries_of_registry_rows():
    when = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [
        {"agent_id": "a", "created_at": when, "capabilities": [
            {"task_name": "planning", "chat_model": None},
            {"task_name": "g", "consumed_event": {"event_name": "g.goal"}, "chat_model": "helper"}]},
        {"agent_id": "b", "created_at": when, "capabilities": [
            {"task_name": "h", "consumed_event": {"event_name": "h.goal"}, "chat_model": "helper"},
            {"task_name": "i", "consumed_event": {"event_name": "i.goal"}, "chat_model": "other"}]},
    ]
    entries = chat._entries(rows)
    assert [(e.model, e.goal_type, e.agent_id) for e in entries] == [("helper", "g.goal", "a"),
                                                                       ("other", "i.goal", "b")]
    assert [e.goal_type for e in chat._entries(rows, "other")] == ["i.goal"]
    assert entries[0].as_model().created == int(when.timestamp())


def test_the_sdk_declares_chat_entries_in_the_agents_capabilities():
    planner = Planner("p")

    @planner.on_goal("research.goal", chat="research-advisor")
    async def plan(goal, context):
        pass

    worker = Worker("w")

    @worker.on_task("echo.request", chat=True)
    async def echo(task, context):
        pass

    @worker.on_task("quiet.request")
    async def quiet(task, context):
        pass

    def chat_models(agent):
        return {c["consumed_event"]["event_name"]: c.get("chat_model")
                for c in agent.definition()["capabilities"] if isinstance(c.get("consumed_event"), dict)}

    assert chat_models(planner) == {"research.goal": "research-advisor"}
    assert chat_models(worker) == {"echo.request": "echo.request", "quiet.request": None}
    # what the registry stores
    stored = AgentDefinition.model_validate(planner.definition()).capabilities
    assert [c.chat_model for c in stored] == [None, "research-advisor"]
    with pytest.raises(ValueError, match="chat model id"):
        worker.on_task("x.request", chat="no spaces")


def test_the_registry_refuses_a_chat_model_without_a_goal_type_or_with_a_bad_id():
    with pytest.raises(ValidationError, match="consumed_event"):
        Capability.model_validate({"task_name": "t", "chat_model": "m"})
    with pytest.raises(ValidationError):
        Capability.model_validate({"task_name": "t", "consumed_event": "t", "chat_model": "a/b"})
    assert Capability.model_validate({"taskName": "t", "consumedEvent": "t", "chatModel": "m"}).chat_model == "m"
