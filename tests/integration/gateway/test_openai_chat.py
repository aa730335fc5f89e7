"""The OpenAI-compatible chat API through the local API Gateway, in process, with the ``openai`` package's client:
the answers that depend on how a goal ends (a goal still running → 504 naming it, then the same request with its
``Idempotency-Key`` → the completion; a failed goal → 502), and the gateway's own refusals in OpenAI's shape (a
policy rule, the rate limit). The goal's result is recorded by the real tracker, as in test_a2a.py. The happy path on
a running example, streaming and tenant isolation: tests/e2e/test_openai_chat.py."""

from __future__ import annotations

import httpx2
import openai
import pytest
from openai import OpenAI

from soorma.events import EventEnvelope
from soorma.testing import sqs_batch

MODEL = "helper"


@pytest.fixture(scope="module")
def tenant(api, platform_admin, gx):
    t = gx.onboard(api, platform_admin)
    agent = {"agent": {"agent_id": "chat-1", "name": "chatter", "capabilities": [
        {"task_name": "chat.goal", "consumed_event": {"event_name": "chat.goal"}, "chat_model": MODEL}]}}
    assert api.post("/v1/agents", headers=gx.bearer(t.keys["developer"]), json=agent).status_code == 200
    return t


def chat_client(api, key: str) -> OpenAI:
    """OpenAI's client, its requests sent through the in-process API Gateway (``api``, a Starlette TestClient)."""

    def forward(request: httpx2.Request) -> httpx2.Response:
        reply = api.request(request.method, str(request.url), headers=dict(request.headers), content=request.read())
        return httpx2.Response(reply.status_code, headers=list(reply.headers.multi_items()), content=reply.content)

    return OpenAI(base_url="http://api.local/v1", api_key=key, max_retries=0,
                  http_client=httpx2.Client(transport=httpx2.MockTransport(forward)))


def complete(gw_db, t, goal_id: str, data: dict) -> None:
    from soorma.functions.tracker.app import process_batch

    result = EventEnvelope(source="chatter", type="soorma.goal.result", topic="action-results", data=data,
                           correlation_id=goal_id, goal_id=goal_id, platform_tenant_id=t.id,
                           tenant_id=t.service_tenant, user_id=f"su_user_{t.id}")
    assert process_batch(gw_db, sqs_batch(result)) == {"batchItemFailures": []}


def ask(client: OpenAI, text: str, **options):
    return client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": text}], **options)


def test_a_goal_still_running_names_itself_and_the_same_request_then_gets_its_answer(api, tenant, gx, gw_db,
                                                                                      monkeypatch):
    monkeypatch.setenv("SOORMA_CHAT_WAIT_SECONDS", "0.3")
    client = chat_client(api, tenant.keys["user"])
    key = {"Idempotency-Key": "chat-timeout-1"}
    with pytest.raises(openai.APIStatusError) as timed_out:
        ask(client, "what is 6 x 7?", extra_headers=key)
    error = timed_out.value
    assert error.status_code == 504 and error.code == "goal_timeout"
    assert error.response.headers["x-should-retry"] == "false"
    goal_id = error.body["goal_id"]
    assert goal_id in error.message and f"/v1/goals/{goal_id}" in error.message
    goal = api.get(f"/v1/goals/{goal_id}", headers=gx.bearer(tenant.keys["user"])).json()
    assert goal["goal_type"] == "chat.goal" and goal["status"] == "running"
    assert goal["data"] == {"messages": [{"role": "user", "content": "what is 6 x 7?"}], "text": "what is 6 x 7?"}

    usage = {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}
    complete(gw_db, tenant, goal_id, {"success": True, "result": {"answer": "42", "usage": usage}})
    answer = ask(client, "what is 6 x 7?", extra_headers=key)
    assert answer.id == f"chatcmpl-{goal_id}" and answer.choices[0].message.content == "42"
    assert answer.usage.total_tokens == 6 and answer.usage.prompt_tokens == 5
    # the key with another conversation is a conflict, in OpenAI's shape
    with pytest.raises(openai.ConflictError):
        ask(client, "something else", extra_headers=key)


def test_a_failed_goal_is_a_502_naming_it(api, tenant, gx, gw_db, monkeypatch):
    monkeypatch.setenv("SOORMA_CHAT_WAIT_SECONDS", "0.3")
    client = chat_client(api, tenant.keys["user"])
    key = {"Idempotency-Key": "chat-failure-1"}
    with pytest.raises(openai.APIStatusError) as timed_out:
        ask(client, "fail please", extra_headers=key)
    goal_id = timed_out.value.body["goal_id"]
    complete(gw_db, tenant, goal_id, {"success": False, "error": "the agent could not answer"})
    with pytest.raises(openai.InternalServerError) as failed:
        ask(client, "fail please", extra_headers=key)
    assert failed.value.status_code == 502 and failed.value.code == "goal_failed"
    assert failed.value.body["goal_id"] == goal_id and "the agent could not answer" in failed.value.message


def test_the_gateways_refusals_are_in_openais_shape(api, tenant, gx, platform_admin):
    admin = gx.bearer(tenant.keys["admin"])
    assert api.put("/v1/policy", headers=admin, json={"allowed_goal_types": ["other.*"]}).status_code == 200
    try:
        with pytest.raises(openai.PermissionDeniedError) as refused:
            ask(chat_client(api, tenant.keys["user"]), "hello")
        assert refused.value.code == "allowed_goal_types" and refused.value.type == "permission_error"
    finally:
        assert api.put("/v1/policy", headers=admin, json={"allowed_goal_types": None}).status_code == 200

    limited = gx.onboard(api, platform_admin, limits=False)
    reply = api.patch(f"/v1/tenants/{limited.id}", headers=gx.bearer(platform_admin),
                      json={"key_rps": 0.001, "key_burst": 1})
    assert reply.status_code == 200, reply.text
    client = chat_client(api, limited.keys["user"])
    assert client.models.list().data == []  # the tenant has no chat entry (and spent its one token)
    with pytest.raises(openai.RateLimitError) as slowed:
        client.models.list()
    assert slowed.value.type == "rate_limit_error" and int(slowed.value.response.headers["retry-after"]) >= 1
