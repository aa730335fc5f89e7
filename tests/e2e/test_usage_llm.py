"""Usage per goal and the LLM gateway end to end on the local stack (issue 18 items 3-4).

The agents get ``SOORMA_LLM_PROVIDER=platform`` and no model key at all: examples/choreography-basic (the
ChoreographyPlanner) and examples/event-selector (the EventSelector) reach the model through ``POST /v1/llm/chat``,
and the tenant's admin points the tenant's provider at a local fake OpenAI-compatible server (the decisions of
test_llm_examples.py, with token counts of its own). Then:

* the goals complete through the gateway, and every model request came from the platform (no agent key, no platform
  key reaches the model);
* ``GET /v1/goals/{id}/usage`` holds exactly the tokens the fake reported for that goal's prompts, the events the
  tracker recorded, and the GB-seconds and invocations of the local Lambda's REPORT lines of the invocations that
  delivered the goal's events (read back from the functions' log files);
* no deployed agent function's environment holds a provider key.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from soorma.testing.llm import FakeLLMServer

from .conftest import EXAMPLES, local_stack, submit, wait
from .test_llm_examples import fake_llm

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]

APPS = ("choreography-basic", "event-selector")
KEY_NAMES = re.compile(r"(LLM_API_KEY|OPENAI_API_KEY|ANTHROPIC_API_KEY|LLM_BASE_URL)$")


def metered(body: dict[str, Any]) -> dict[str, Any]:
    """The fake's answer with token counts: one per 4 characters of the prompt, one per 4 of the answer."""
    text = fake_llm(body)
    prompt = sum(len(m.get("content") or "") for m in body.get("messages") or [])
    usage = {"prompt_tokens": prompt // 4 + 1, "completion_tokens": len(text) // 4 + 1}
    return {"id": "chatcmpl-fake", "object": "chat.completion", "created": 1, "model": body.get("model", "fake"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {**usage, "total_tokens": usage["prompt_tokens"] + usage["completion_tokens"]}}


@pytest.fixture(scope="module")
def stack():
    llm = FakeLLMServer(metered).start()
    # the local tenant's admin is the stack's admin key: the platform-operator tenant is the local one
    env = {"SOORMA_LLM_PROVIDER": "platform", "SOORMA_PLATFORM_ADMIN_TENANT": "local"}
    try:
        with local_stack("soorma-e2e-usage-", [EXAMPLES / app for app in APPS], env=env,
                         unset=("SOORMA_LLM_BASE_URL", "SOORMA_LLM_API_KEY", "SOORMA_LLM_MODEL")) as stack_:
            admin = {"Authorization": f"Bearer {stack_['credentials']['admin_api_key']}"}
            reply = stack_["client"].put("/v1/llm/settings", headers=admin,
                                         json={"provider": "openai", "model": "fake-model", "base_url": llm.base_url})
            assert reply.status_code == 200, reply.text
            yield {**stack_, "llm": llm}
    finally:
        llm.stop()


def _agent_reports(home) -> tuple[float, int]:
    """GB-seconds and invocations of every REPORT line in the agent functions' logs (the platform's own functions,
    ``soorma-*``, are not attributed to goals): what all goals together can have recorded at most."""
    total_gbs, count = 0.0, 0
    report = re.compile(r"^REPORT RequestId: \S+\tDuration: [\d.]+ ms\tBilled Duration: (\d+) ms\tMemory Size: (\d+) MB",
                        re.MULTILINE)
    for path in (home / "logs").glob("*.log"):
        if path.stem.startswith("soorma-"):
            continue  # the platform's own functions
        for billed, memory in report.findall(path.read_text(errors="replace")):
            total_gbs += int(billed) / 1000 * int(memory) / 1024
            count += 1
    return total_gbs, count


def test_goals_through_the_llm_gateway_are_metered(stack):
    client, llm = stack["client"], stack["llm"]
    report_goal = submit(client, "feedback.report.requested", {"product": "Acme Usage"})
    ticket_goal = submit(client, "support.ticket.created", {"ticket_id": "U-1", "customer": "ada",
                                                            "subject": "Charged twice",
                                                            "description": "I was charged twice for March"})
    goals = wait(client, report_goal, ticket_goal, timeout=150)
    for goal in goals.values():
        assert goal["status"] == "completed", goal
    assert goals[report_goal]["result"]["result"]["report"].startswith("Acme Usage: ")
    assert goals[ticket_goal]["result"]["result"]["routed_to"] == "support.billing.requested"

    # the model saw requests from the platform only: no key of any kind (the provider has none set)
    assert llm.requests and all("Authorization" not in r["headers"] for r in llm.requests)
    secrets = {stack["credentials"]["api_key"], stack["credentials"]["admin_api_key"]}
    for path in (stack["home"] / "functions").glob("*.json"):
        env = json.loads(path.read_text()).get("env", {})
        assert not [name for name in env if KEY_NAMES.search(name)], (path.name, sorted(env))
        assert env.get("SOORMA_LLM_PROVIDER") == "platform", path.name
        if env.get("SOORMA_API_KEY"):
            secrets.add(env["SOORMA_API_KEY"])
    for request in llm.requests:
        assert not any(secret in json.dumps(request) for secret in secrets)

    all_gbs, all_invocations = _agent_reports(stack["home"])
    seen_tokens = {"input_tokens": 0, "output_tokens": 0}
    for goal_id, marker in ((report_goal, "Acme Usage"), (ticket_goal, "U-1")):
        usage = client.get(f"/v1/goals/{goal_id}/usage")
        assert usage.status_code == 200, usage.text
        body = usage.json()
        # tokens: exactly what the fake reported for this goal's prompts
        answers = [metered(r["body"])["usage"] for r in llm.requests
                   if any(marker in (m.get("content") or "") for m in r["body"].get("messages") or [])]
        assert answers, marker
        assert body["usage"]["input_tokens"] == sum(a["prompt_tokens"] for a in answers)
        assert body["usage"]["output_tokens"] == sum(a["completion_tokens"] for a in answers)
        # events: what the tracker recorded for the goal
        events = client.get(f"/v1/goals/{goal_id}/events").json()["events"]
        assert body["usage"]["events"] == len(events) > 0
        # the runtime's REPORT figures: every invocation that delivered the goal's events, no more than all agents'
        assert 0 < body["usage"]["invocations"] <= all_invocations
        assert 0 < body["usage"]["gb_seconds"] <= all_gbs + 1e-9
        assert body["cost_usd"]["total"] == pytest.approx(
            sum(v for k, v in body["cost_usd"].items() if k != "total"), abs=1e-9)
        for item in ("input_tokens", "output_tokens"):
            seen_tokens[item] += body["usage"][item]

    day = client.get("/v1/usage").json()  # the developer: the whole local tenant
    assert day["scope"] == "tenant"
    assert day["total"]["usage"]["input_tokens"] >= seen_tokens["input_tokens"]
    assert day["total"]["usage"]["gb_seconds"] <= all_gbs + 1e-9
