"""The OpenAI-compatible chat API end to end, with OpenAI's own client (the ``openai`` package) against a local stack
running examples/research-advisor (its planner declares the chat entry ``research-advisor``), whose advisor rewords
its answers with a local fake LLM (:class:`~soorma.testing.llm.FakeLLMServer`, as in test_llm_examples.py).

Covers issue 15 item 4: ``models.list()``, a completion with and without ``stream``, an unknown model
(``NotFoundError``), bad input (``BadRequestError``), and tenant isolation: a second tenant onboarded through the API
registers a chat entry of its own, and neither tenant's client lists or uses the other's model.
"""

from __future__ import annotations

import secrets

import httpx
import openai
import pytest
from openai import OpenAI

from soorma.testing.llm import FakeLLMServer

from .conftest import EXAMPLES, local_stack, submit, wait

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]

MODEL = "research-advisor"
QUESTION = "How do I read a gzip-compressed file?"
REWORDED = "In short: "


def reword(body: dict) -> str:
    """The fake LLM: the advisor's draft (which cites the passages in backticks) behind a marker, so a test can tell
    the LLM's wording reached the chat answer."""
    prompt = next(m["content"] for m in body["messages"] if m["role"] == "user")
    return REWORDED + prompt.split("Draft answer to reword:\n", 1)[1].strip()


@pytest.fixture(scope="module")
def stack():
    llm = FakeLLMServer(reword).start()
    env = {"SOORMA_LLM_PROVIDER": "openai", "SOORMA_LLM_BASE_URL": llm.base_url, "SOORMA_LLM_API_KEY": "fake",
           "SOORMA_LLM_MODEL": "fake-model"}
    try:
        with local_stack("soorma-e2e-chat-", [EXAMPLES / "research-advisor"], env=env) as stack_:
            yield {**stack_, "llm": llm}
    finally:
        llm.stop()


def chat_client(stack, api_key: str) -> OpenAI:
    return OpenAI(base_url=f"{stack['credentials']['api_url']}/v1", api_key=api_key, timeout=60, max_retries=0)


@pytest.fixture(scope="module")
def client(stack) -> OpenAI:
    return chat_client(stack, stack["credentials"]["api_key"])


@pytest.fixture(scope="module")
def other_tenant(stack):
    """A second platform tenant onboarded by the stack's platform admin, with a chat entry of its own registered
    through the registry API (a developer key of that tenant)."""
    api_url = stack["credentials"]["api_url"]
    admin = {"Authorization": f"Bearer {stack['credentials']['admin_api_key']}"}
    tenant = f"pt_{secrets.token_hex(4)}"
    with httpx.Client(base_url=api_url, timeout=30) as http:
        created = http.post("/v1/tenants", headers=admin, json={"platform_tenant_id": tenant, "name": tenant})
        assert created.status_code == 201, created.text
        tenant_admin = {"Authorization": f"Bearer {created.json()['admin_api_key']}"}
        key = http.post("/v1/api-keys", headers=tenant_admin,
                        json={"role": "developer", "name": "dev", "service_tenant_id": f"st_{tenant}",
                              "service_user_id": f"su_{tenant}"})
        assert key.status_code == 201, key.text
        agent = {"agent_id": "b-helper", "name": "b-helper",
                 "capabilities": [{"task_name": "b.chat", "consumed_event": {"event_name": "b.chat"},
                                   "chat_model": "tenant-b-model"}]}
        registered = http.post("/v1/agents", headers={"Authorization": f"Bearer {key.json()['api_key']}"},
                               json={"agent": agent})
        assert registered.status_code == 200, registered.text
    return chat_client(stack, key.json()["api_key"])


def test_models_list_the_declared_chat_entry(client):
    models = client.models.list()
    assert [m.id for m in models.data] == [MODEL]
    assert models.data[0].owned_by == "research-planner" and models.data[0].object == "model"
    assert client.models.retrieve(MODEL).id == MODEL


def test_chat_completion_answers_with_the_goals_result(stack, client):
    answer = client.chat.completions.create(
        model=MODEL, messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": QUESTION}])
    content = answer.choices[0].message.content
    assert answer.object == "chat.completion" and answer.model == MODEL
    assert answer.choices[0].message.role == "assistant" and answer.choices[0].finish_reason == "stop"
    assert content.startswith(REWORDED) and "`gzip." in content, content
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens, answer.usage.total_tokens) == (0, 0, 0)
    # the completion is a goal of the model's goal type, readable through the goal API
    goal_id = answer.id.removeprefix("chatcmpl-")
    goal = stack["client"].get(f"/v1/goals/{goal_id}").json()
    assert goal["goal_type"] == "research.goal" and goal["status"] == "completed"
    assert goal["data"]["text"] == QUESTION
    assert goal["data"]["messages"] == [{"role": "system", "content": "Be brief."},
                                        {"role": "user", "content": QUESTION}]
    assert goal["result"]["result"]["answer"] == content
    # and the same question through the goal API gets the same answer
    same = submit(stack["client"], "research.goal", {"question": QUESTION})
    assert wait(stack["client"], same)[same]["result"]["result"]["answer"] == content


def test_streamed_chat_completion(client):
    chunks = list(client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": [{"type": "text", "text": QUESTION}]}], stream=True,
        stream_options={"include_usage": True}))
    assert all(c.object == "chat.completion.chunk" for c in chunks) and len({c.id for c in chunks}) == 1
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.startswith(REWORDED) and "`gzip." in text, text
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == 0


def test_unknown_model_and_bad_input_are_openai_errors(client):
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "hi"}])
    assert missing.value.code == "model_not_found" and missing.value.param == "model"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("no-such-model")
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model=MODEL, messages=[])
    assert bad.value.type == "invalid_request_error" and bad.value.param == "messages"
    with pytest.raises(openai.BadRequestError) as no_user:
        client.chat.completions.create(model=MODEL, messages=[{"role": "system", "content": "only a system"}])
    assert no_user.value.param == "messages"
    with pytest.raises(openai.BadRequestError) as image:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]}])
    assert image.value.param and image.value.param.startswith("messages.0.content")


def test_a_refused_key_is_an_openai_client_error(stack):
    # API Gateway answers for the authorizer (403 {"message": "Forbidden"}): the client still raises its own error
    with pytest.raises(openai.PermissionDeniedError):
        chat_client(stack, "sk_not_a_key_0123456789").models.list()


def test_tenants_never_see_or_use_each_others_models(client, other_tenant):
    assert [m.id for m in other_tenant.models.list().data] == ["tenant-b-model"]
    assert "tenant-b-model" not in [m.id for m in client.models.list().data]
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="tenant-b-model", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("tenant-b-model")
    with pytest.raises(openai.NotFoundError):
        other_tenant.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": QUESTION}])
    with pytest.raises(openai.NotFoundError):
        other_tenant.models.retrieve(MODEL)
