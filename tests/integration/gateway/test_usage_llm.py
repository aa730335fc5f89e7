"""Usage and cost per goal and per tenant, budgets, and the LLM gateway (issue 18 items 3-4), through the local API
Gateway in process with the real authorizer, gateway, memory, tracker and protocols handlers on the session's
PostgreSQL (RLS applies):

* a goal's usage adds up to what was recorded: the tracker's events, the memory service's reads and writes, the LLM
  gateway's tokens (a real HTTP fake of an OpenAI-compatible provider, and Bedrock Converse stubbed at the boto
  boundary) and the local runtime's REPORT figures (:class:`soorma.local.usage.ReportUsage`), priced from the one
  price table;
* tenant B can neither read tenant A's usage nor meter into A's goal; roles without ``scope=tenant`` are refused;
* a tenant over its ``monthly_budget_usd`` gets a 403 naming the budget, for new goals and for LLM calls;
* the tenant's provider key goes to Secrets Manager (moto) and never comes back in an answer;
* the SDK's ``SOORMA_LLM_PROVIDER=platform`` provider works through the gateway, naming the handled event's goal
  (the ChoreographyPlanner and EventSelector over it, on a running stack: tests/e2e/test_usage_llm.py).
"""

from __future__ import annotations

import json

import boto3
import httpx
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from soorma.events import EventEnvelope
from soorma.testing import sqs_batch
from soorma.testing.llm import FakeLLMServer

GOAL_HEADER = "X-Soorma-Goal-Id"


def fake_provider(prompt_tokens: int = 11, completion_tokens: int = 7, text: str = "forty-two") -> FakeLLMServer:
    """The project's fake OpenAI-compatible server (a real HTTP server) answering ``text`` with fixed token counts."""

    def answer(body: dict) -> dict:
        return {"id": "chatcmpl-fake", "object": "chat.completion", "created": 1, "model": body["model"],
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                          "total_tokens": prompt_tokens + completion_tokens}}

    return FakeLLMServer(answer)


def _authorization(request: dict) -> str | None:
    return next((v for k, v in request["headers"].items() if k.lower() == "authorization"), None)


@pytest.fixture()
def loopback(monkeypatch):
    """The local stack's setting that lets the platform call a provider on 127.0.0.1 (the fake)."""
    monkeypatch.setenv("SOORMA_WEBHOOK_ALLOW_LOOPBACK", "on")


@pytest.fixture()
def secrets(apps):
    """Secrets Manager on moto, as the protocols function's secret store."""
    from soorma.functions.protocols.llm import SecretStore

    with mock_aws():
        client = boto3.client("secretsmanager", region_name="us-east-1")
        apps["protocols"].state.llm_secrets = SecretStore(client)
        yield client
        apps["protocols"].state.llm_secrets = None


def _submit(api, gx, key: str) -> str:
    reply = api.post("/v1/goals", headers=gx.bearer(key), json={"goal_type": "usage.goal", "data": {"q": 1}})
    assert reply.status_code == 202, reply.text
    return reply.json()["goal_id"]


def _events(gw_db, t, goal_id: str, count: int) -> None:
    from soorma.functions.tracker.app import process_batch

    envelopes = [EventEnvelope(source="worker", type="usage.step", topic="business-facts", data={"i": i},
                               goal_id=goal_id, platform_tenant_id=t.id, tenant_id=t.service_tenant,
                               user_id=f"su_user_{t.id}") for i in range(count)]
    assert process_batch(gw_db, sqs_batch(*envelopes)) == {"batchItemFailures": []}
    # a redelivery of the same events is not counted again
    assert process_batch(gw_db, sqs_batch(*envelopes)) == {"batchItemFailures": []}


def _openai_settings(api, gx, t, fake: FakeLLMServer, key: str = "sk-provider-secret") -> None:
    reply = api.put("/v1/llm/settings", headers=gx.bearer(t.keys["admin"]),
                    json={"provider": "openai", "model": "gpt-4o-mini", "base_url": fake.base_url, "api_key": key})
    assert reply.status_code == 200, reply.text


def _chat(api, gx, key: str, goal_id: str | None = None, **extra):
    headers = gx.bearer(key, **({GOAL_HEADER: goal_id} if goal_id else {}))
    return api.post("/v1/llm/chat", headers=headers,
                    json={"messages": [{"role": "user", "content": "6 x 7?"}], **extra})


def test_goal_usage_adds_up_to_what_was_recorded(api, platform_admin, gx, gw_db, app_dsn, loopback, secrets):
    from soorma.functions.shared.prices import model_token_prices, price
    from soorma.local.usage import ReportUsage

    t = gx.onboard(api, platform_admin)
    user = t.keys["user"]
    goal = _submit(api, gx, user)
    _events(gw_db, t, goal, 3)

    # memory: one write and two reads that name the goal, one read that does not
    memory = gx.bearer(user, **{GOAL_HEADER: goal})
    assert api.put(f"/v1/memory/working/{goal}/k", headers=memory, json={"value": {"a": 1}}).status_code == 200
    assert api.get(f"/v1/memory/working/{goal}/k", headers=memory).status_code == 200
    assert api.get(f"/v1/memory/working/{goal}/k", headers=memory).status_code == 200
    assert api.get(f"/v1/memory/working/{goal}/k", headers=gx.bearer(user)).status_code == 200

    with fake_provider(prompt_tokens=11, completion_tokens=7) as fake:
        _openai_settings(api, gx, t, fake)
        first = _chat(api, gx, user, goal)
        second = _chat(api, gx, user, goal, stream=True)
    assert first.status_code == 200, first.text
    assert first.json()["choices"][0]["message"]["content"] == "forty-two"
    assert first.json()["usage"] == {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
    # streaming: OpenAI's chunks as one buffered Server-Sent Events body
    assert second.status_code == 200 and second.headers["content-type"].startswith("text/event-stream")
    chunks = [line[6:] for line in second.text.splitlines() if line.startswith("data: ")]
    assert chunks[-1] == "[DONE]"
    assert json.loads(chunks[0])["choices"][0]["delta"]["content"] == "forty-two"
    assert json.loads(chunks[1])["usage"]["prompt_tokens"] == 11
    # the provider got the tenant's key from Secrets Manager
    assert [_authorization(r) for r in fake.requests] == ["Bearer sk-provider-secret"] * 2

    # the runtime's REPORT figures of two invocations that delivered this goal's events (1 GB for 1500 + 500 ms)
    envelope = EventEnvelope(source="gw", type="usage.goal", topic="action-requests", goal_id=goal,
                             platform_tenant_id=t.id, tenant_id=t.service_tenant, user_id=f"su_user_{t.id}")
    recorder = ReportUsage(app_dsn)
    try:
        payload = json.dumps(sqs_batch(envelope)).encode()
        assert recorder.record(payload, billed_ms=1500, memory_mb=1024) == 1
        assert recorder.record(payload, billed_ms=500, memory_mb=1024) == 1
        assert recorder.record(b'{"version": "2.0", "rawPath": "/v1/goals"}', 900, 512) == 0  # no event: nothing
    finally:
        recorder.close()

    reply = api.get(f"/v1/goals/{goal}/usage", headers=gx.bearer(user))
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["goal_id"] == goal
    # events: the goal's own request (published by the gateway, recorded when the tracker sees it) is not in this
    # in-process test's stream; the three facts are, once each
    assert body["usage"] == {"gb_seconds": 2.0, "invocations": 2, "events": 3, "memory_reads": 2,
                             "memory_writes": 1, "input_tokens": 22, "output_tokens": 14}
    input_price, output_price = model_token_prices("gpt-4o-mini")
    expected = {
        "gb_seconds": 2.0 * price("lambda_arm_gb_second"),
        "invocations": 2 * price("lambda_request_million") / 1e6,
        "events": 3 * (price("sns_publish_million") + 3 * price("sqs_request_million")) / 1e6,
        "memory_reads": 2 * (price("http_api_million") + price("lambda_request_million")) / 1e6,
        "memory_writes": 1 * (price("http_api_million") + price("lambda_request_million")) / 1e6,
        "input_tokens": 22 * input_price,
        "output_tokens": 14 * output_price,
    }
    for item, usd in expected.items():
        assert body["cost_usd"][item] == pytest.approx(usd, abs=1e-9), item
    assert body["cost_usd"]["total"] == pytest.approx(sum(expected.values()), abs=1e-8)

    # the tenant's totals by day (admin: every service user of the tenant) hold the same figures
    days = api.get("/v1/usage", headers=gx.bearer(t.keys["admin"]))
    assert days.status_code == 200, days.text
    assert days.json()["scope"] == "tenant" and len(days.json()["days"]) == 1
    assert days.json()["total"]["usage"] == body["usage"]
    assert days.json()["days"][0]["goals"] == 1
    assert days.json()["month_cost_usd"] == pytest.approx(body["cost_usd"]["total"], abs=1e-8)
    # a user sees its own usage; asking for the tenant's is refused
    own = api.get("/v1/usage", headers=gx.bearer(user))
    assert own.status_code == 200 and own.json()["scope"] == "own" and own.json()["total"]["usage"] == body["usage"]
    assert api.get("/v1/usage?scope=tenant", headers=gx.bearer(user)).status_code == 403
    assert api.get("/v1/usage?from=2026-02-01&to=2026-01-01", headers=gx.bearer(user)).status_code == 422
    assert api.get("/v1/usage?from=2020-01-01&to=2026-01-01", headers=gx.bearer(user)).status_code == 422
    assert api.get("/v1/usage?from=yesterday", headers=gx.bearer(user)).status_code == 422


def test_tenant_b_cannot_read_or_meter_into_tenant_a_usage(api, platform_admin, gx, gw_db, loopback, secrets):
    a = gx.onboard(api, platform_admin)
    b = gx.onboard(api, platform_admin)
    goal = _submit(api, gx, a.keys["user"])
    _events(gw_db, a, goal, 2)
    before = api.get(f"/v1/goals/{goal}/usage", headers=gx.bearer(a.keys["user"])).json()

    for role in ("admin", "developer", "user", "agent"):
        stolen = api.get(f"/v1/goals/{goal}/usage", headers=gx.bearer(b.keys[role]))
        assert stolen.status_code == 404, (role, stolen.text)
    totals = api.get("/v1/usage", headers=gx.bearer(b.keys["admin"]))
    assert totals.status_code == 200 and totals.json()["days"] == [] and totals.json()["platform_tenant_id"] == b.id
    # B's LLM call naming A's goal is metered under B's identity only: A's figures do not move
    with fake_provider() as fake:
        _openai_settings(api, gx, b, fake)
        assert _chat(api, gx, b.keys["user"], goal).status_code == 200
    assert api.get(f"/v1/goals/{goal}/usage", headers=gx.bearer(a.keys["user"])).json() == before
    # and A has no provider: B's settings are not A's
    assert _chat(api, gx, a.keys["user"], goal).status_code == 409
    assert api.get("/v1/llm/settings", headers=gx.bearer(a.keys["admin"])).status_code == 404
    # another user of tenant A does not see the goal's usage either (identity-scoped like the goal)
    assert api.get(f"/v1/goals/{goal}/usage", headers=gx.bearer(a.keys["developer"])).status_code == 404


def test_a_tenant_over_budget_gets_a_4xx_naming_the_budget(api, platform_admin, gx, gw_db, loopback, secrets):
    t = gx.onboard(api, platform_admin)
    admin = gx.bearer(t.keys["admin"])
    policy = api.put("/v1/policy", headers=admin, json={"monthly_budget_usd": 0.0001})
    assert policy.status_code == 200 and policy.json()["monthly_budget_usd"] == 0.0001
    assert api.get("/v1/policy", headers=admin).json()["monthly_budget_usd"] == 0.0001
    assert api.put("/v1/policy", headers=admin, json={"monthly_budget_usd": -1}).status_code == 422
    goal = _submit(api, gx, t.keys["user"])  # under budget: accepted
    with fake_provider(prompt_tokens=1000, completion_tokens=1000) as fake:  # gpt-4o-mini: $0.00075
        _openai_settings(api, gx, t, fake)
        assert _chat(api, gx, t.keys["agent"], goal).status_code == 200
        refused_chat = _chat(api, gx, t.keys["user"], goal)
        assert len(fake.requests) == 1  # the refused call never reached the provider
    refused = api.post("/v1/goals", headers=gx.bearer(t.keys["user"]), json={"goal_type": "usage.goal", "data": {}})
    for reply in (refused, refused_chat):
        assert reply.status_code == 403, reply.text
        assert reply.json()["rule"] == "monthly_budget_usd"
        assert "monthly budget of $0.0001" in reply.json()["detail"]
    usage = api.get("/v1/usage", headers=admin).json()
    assert usage["monthly_budget_usd"] == 0.0001 and usage["month_cost_usd"] >= 0.0001
    # an agent's SDK (SOORMA_LLM_PROVIDER=platform) sees the refusal as an LLMError naming the budget
    import asyncio

    from soorma.ai.llm import LLMError, provider_from_env

    provider = provider_from_env({"SOORMA_LLM_PROVIDER": "platform", "SOORMA_API_URL": "http://api.local",
                                  "SOORMA_API_KEY": t.keys["agent"]}, transport=httpx.ASGITransport(app=api.asgi_app))
    with pytest.raises(LLMError, match="monthly_budget_usd"):
        asyncio.run(provider.complete([{"role": "user", "content": "hi"}]))
    # raising the budget lets goals in again
    assert api.put("/v1/policy", headers=admin, json={"monthly_budget_usd": 100}).status_code == 200
    assert api.get(f"/v1/tenants/{t.id}", headers=admin).json()["monthly_budget_usd"] == 100
    assert api.post("/v1/goals", headers=gx.bearer(t.keys["user"]),
                    json={"goal_type": "usage.goal", "data": {}}).status_code == 202


def test_bedrock_converse_at_the_boto_boundary(api, platform_admin, gx, apps):
    from soorma.ai.llm import BedrockConverseProvider

    t = gx.onboard(api, platform_admin)
    admin = gx.bearer(t.keys["admin"])
    assert api.put("/v1/llm/settings", headers=admin,
                   json={"provider": "bedrock", "model": "amazon.nova-lite-v1:0", "api_key": "x"}).status_code == 422
    reply = api.put("/v1/llm/settings", headers=admin, json={"provider": "bedrock", "model": "amazon.nova-lite-v1:0"})
    assert reply.status_code == 200 and reply.json()["has_api_key"] is False
    client = boto3.client("bedrock-runtime", region_name="us-east-1", aws_access_key_id="x",
                          aws_secret_access_key="x")
    stub = Stubber(client)
    stub.add_response("converse", {
        "output": {"message": {"role": "assistant", "content": [{"text": "{\"answer\": 42}"}]}},
        "stopReason": "end_turn", "usage": {"inputTokens": 30, "outputTokens": 5, "totalTokens": 35},
        "metrics": {"latencyMs": 10}},
        {"modelId": "amazon.nova-lite-v1:0", "messages": [{"role": "user", "content": [{"text": "6 x 7?"}]}],
         "system": [{"text": "be brief"}, {"text": "Answer with exactly one JSON object and nothing else."}],
         "inferenceConfig": {"temperature": 0.0, "maxTokens": 50}})
    apps["protocols"].state.llm_provider_factory = (
        lambda row, model, key: BedrockConverseProvider(model, client=client))
    goal = _submit(api, gx, t.keys["user"])
    try:
        with stub:
            reply = api.post("/v1/llm/chat", headers=gx.bearer(t.keys["user"], **{GOAL_HEADER: goal}),
                             json={"messages": [{"role": "system", "content": "be brief"},
                                                {"role": "user", "content": "6 x 7?"}],
                                   "temperature": 0, "max_tokens": 50, "response_format": {"type": "json_object"}})
            stub.assert_no_pending_responses()
    finally:
        apps["protocols"].state.llm_provider_factory = None
    assert reply.status_code == 200, reply.text
    assert reply.json()["choices"][0]["message"]["content"] == "{\"answer\": 42}"
    assert reply.json()["usage"] == {"prompt_tokens": 30, "completion_tokens": 5, "total_tokens": 35}
    figures = api.get(f"/v1/goals/{goal}/usage", headers=gx.bearer(t.keys["user"])).json()
    assert (figures["usage"]["input_tokens"], figures["usage"]["output_tokens"]) == (30, 5)
    assert figures["cost_usd"]["input_tokens"] == pytest.approx(30 * 0.00006 / 1000)
    assert figures["cost_usd"]["output_tokens"] == pytest.approx(5 * 0.00024 / 1000)


def test_the_provider_key_is_kept_in_secrets_manager_and_never_listed(api, platform_admin, gx, loopback, secrets):
    t = gx.onboard(api, platform_admin)
    admin = gx.bearer(t.keys["admin"])
    with fake_provider() as fake:
        _openai_settings(api, gx, t, fake, key="sk-very-secret-123")
        secret = secrets.get_secret_value(SecretId=f"soorma/llm/{t.id}")
        assert secret["SecretString"] == "sk-very-secret-123"
        shown = api.get("/v1/llm/settings", headers=admin)
        assert shown.status_code == 200 and shown.json()["has_api_key"] is True
        assert "sk-very-secret-123" not in shown.text
        # only the admin sets it; a developer may read (without the key); agents and users may do neither
        assert api.get("/v1/llm/settings", headers=gx.bearer(t.keys["developer"])).status_code == 200
        for role in ("developer", "agent", "user"):
            assert api.put("/v1/llm/settings", headers=gx.bearer(t.keys[role]),
                           json={"provider": "bedrock", "model": "m"}).status_code == 403
        for role in ("agent", "user"):
            assert api.get("/v1/llm/settings", headers=gx.bearer(t.keys[role])).status_code == 403
        # changing only the model keeps the key
        assert api.put("/v1/llm/settings", headers=admin,
                       json={"provider": "openai", "model": "other", "base_url": fake.base_url}).json()["has_api_key"]
        assert _chat(api, gx, t.keys["user"]).status_code == 200
        assert _authorization(fake.requests[-1]) == "Bearer sk-very-secret-123"
        assert fake.requests[-1]["body"]["model"] == "other"
    # the metadata service or the VPC is refused as a provider URL (SSRF), and so is a goal id that is no UUID
    for url in ("http://169.254.169.254/latest", "https://10.0.0.5/v1"):
        assert api.put("/v1/llm/settings", headers=admin,
                       json={"provider": "openai", "model": "m", "base_url": url}).status_code == 422
    assert _chat(api, gx, t.keys["user"], "not-a-goal").status_code == 422
    assert api.post("/v1/llm/chat", headers=gx.bearer(t.keys["user"]), json={"messages": []}).status_code == 422
    # forgetting the provider deletes the secret
    assert api.delete("/v1/llm/settings", headers=admin).status_code == 204
    with pytest.raises(secrets.exceptions.ResourceNotFoundException):
        secrets.get_secret_value(SecretId=f"soorma/llm/{t.id}")


def test_sdk_platform_provider_goes_through_the_gateway(api, platform_admin, gx, loopback, secrets):
    import asyncio

    from soorma._current import handling
    from soorma.ai.llm import PlatformProvider, provider_from_env
    from soorma.settings import Settings

    t = gx.onboard(api, platform_admin)
    goal = _submit(api, gx, t.keys["user"])
    transport = httpx.ASGITransport(app=api.asgi_app)
    event = EventEnvelope(source="gw", type="usage.goal", topic="action-requests", goal_id=goal,
                          platform_tenant_id=t.id, tenant_id=t.service_tenant, user_id=f"su_user_{t.id}")
    with fake_provider(prompt_tokens=5, completion_tokens=3, text='{"event_type": "a.b", "reasoning": "r"}') as fake:
        _openai_settings(api, gx, t, fake)
        env = {"SOORMA_LLM_PROVIDER": "platform", "SOORMA_API_URL": "http://api.local",
               "SOORMA_API_KEY": t.keys["user"]}
        provider = provider_from_env(env, transport=transport)
        assert isinstance(provider, PlatformProvider) and "sk-" not in repr(provider)

        async def ask():
            with handling(event):  # inside a handler: the call names the event's goal
                return await provider.complete([{"role": "user", "content": "hi"}], json_mode=True)

        answer = asyncio.run(ask())
        assert answer.json() == {"event_type": "a.b", "reasoning": "r"}
        assert fake.requests[-1]["body"]["response_format"] == {"type": "json_object"}
        assert "SOORMA_API_KEY" not in json.dumps(fake.requests[-1]) and t.keys["user"] not in json.dumps(
            fake.requests[-1])
    figures = api.get(f"/v1/goals/{goal}/usage", headers=gx.bearer(t.keys["user"])).json()["usage"]
    assert (figures["input_tokens"], figures["output_tokens"]) == (5, 3)
    assert Settings.from_env(env).api_key == t.keys["user"]


def test_llm_calls_are_rate_limited_per_tenant(api, platform_admin, gx, loopback, secrets):
    limited, other = gx.onboard(api, platform_admin), gx.onboard(api, platform_admin)
    with fake_provider() as fake:
        _openai_settings(api, gx, limited, fake)
        _openai_settings(api, gx, other, fake)
        reply = api.patch(f"/v1/tenants/{limited.id}", headers=gx.bearer(platform_admin),
                          json={"tenant_rps": 0.001, "tenant_burst": 1})
        assert reply.status_code == 200, reply.text
        answers = [_chat(api, gx, limited.keys[role]) for role in ("user", "agent", "developer", "user")]
        statuses = [a.status_code for a in answers]
        assert 429 in statuses and set(statuses) <= {200, 429}, statuses
        refused = next(a for a in answers if a.status_code == 429)
        assert int(refused.headers["retry-after"]) >= 1
        assert len(fake.requests) == statuses.count(200)  # a refused call never reached the provider
        assert _chat(api, gx, other.keys["user"]).status_code == 200  # another tenant's bucket is its own
