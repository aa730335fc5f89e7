"""The examples that need an LLM, end to end on the local stack, against a local fake LLM.

One module-scoped stack: a :class:`~soorma.testing.llm.FakeLLMServer` is started first and named in the stack's
``SOORMA_LLM_*`` settings (``soorma local up`` passes them to every agent function), then
examples/events-structured, examples/choreography-basic, examples/discovery-llm and examples/event-selector are
deployed with ``soorma local deploy`` and driven through the gateway's goal API.

The fake decides from what the agents sent: it reads the events listed in each prompt (what the agent discovered
in the registry), the ticket or goal, and the results so far, and answers only with events it was shown (except
where a test asks it to hallucinate). Every request is checked for the agents' credentials: the platform keys of
the deployed functions and the developer's key never reach the LLM; only the LLM's own key does.
"""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pytest

from soorma.testing.llm import FakeLLMServer

from .conftest import EXAMPLES, local_stack, submit, wait as wait_for_goals

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]

GOAL_TIMEOUT_S = 150
LLM_KEY = "fake-llm-key-for-tests"
LLM_APPS = ("events-structured", "choreography-basic", "discovery-llm", "event-selector")


# --- the fake LLM's decisions ------------------------------------------------------------------------------------


def listed_events(text: str, start: str = "Available events:", end: str | None = None) -> list[str]:
    """Event names of a prompt's numbered list (``EventToolkit.format_as_prompt_text``)."""
    section = text.split(start, 1)[1]
    if end and end in section:
        section = section.split(end, 1)[0]
    return re.findall(r"^\d+\. ([A-Za-z0-9_.\-]+):", section, re.M)


def pick(available: list[str], word: str) -> str | None:
    return next((name for name in available if word in name), None)


def choreography_answer(prompt: str) -> dict[str, Any]:
    """ChoreographyPlanner: fetch → analyze → report → complete, using whatever the prompt offered."""
    available = listed_events(prompt, end="\n\nContext:")
    context = json.loads(prompt.split("Context:\n", 1)[1])
    product = context["goal"]["product"]
    results = context.get("results") or {}

    def publish(word: str, data: dict[str, Any]) -> dict[str, Any]:
        event = pick(available, word)
        if event is None:
            return {"next_action": {"action": "complete", "result": {"error": f"no {word} event offered"}}}
        return {"reasoning": f"next: {word}", "next_action": {"action": "publish", "event_type": event, "data": data}}

    if "hallucinate" in product:
        return {"next_action": {"action": "publish", "event_type": "feedback.delete.everything", "data": {}}}
    if "loop" in product:
        return publish("fetch", {"product": product})
    done = {word: next((v for k, v in results.items() if word in k), None) for word in ("fetch", "analyze", "report")}
    if done["fetch"] is None:
        return publish("fetch", {"product": product})
    if done["analyze"] is None:
        return publish("analyze", {"entries": done["fetch"]["entries"]})
    if done["report"] is None:
        return publish("report", {"product": product, "sentiment": done["analyze"]["sentiment"]})
    return {"reasoning": "the report is written",
            "next_action": {"action": "complete", "result": {"report": done["report"]["report"],
                                                             "sentiment": done["analyze"]["sentiment"]}}}


def payload_answer(prompt: str) -> dict[str, Any]:
    """ChoreographyPlanner.generate_payload: a request from the goal's text, or findings shaped to a schema."""
    header, rest = prompt.split("\n", 1)
    schema_text, context = rest.split("\n\nContext:\n", 1)
    schema = json.loads(schema_text)
    if "research_request_v1" in header:
        payload: dict[str, Any] = {"topic": context.strip()}
        if "in depth" in context:
            payload.update(depth="deep", max_results=5)
        return payload
    findings = json.loads(context)
    by_name = {
        "topic": findings["topic"],
        "summary": f"{findings['result_count']} findings about {findings['topic']}",
        "sources": [f["source"] for f in findings["findings"]],
        "links": [f["source"] for f in findings["findings"]],
        "headline": findings["findings"][0]["title"],
        "count": findings["result_count"],
    }
    return {name: by_name[name] for name in schema["properties"] if name in by_name}


def ticket_words(ticket: dict[str, Any]) -> str:
    return " ".join(str(v) for v in ticket.values()).lower()


def selector_answer(prompt: str) -> dict[str, Any]:
    """EventSelector in examples/event-selector."""
    available = listed_events(prompt, end="\n\nTicket:")
    ticket = json.loads(prompt.split("Ticket:\n", 1)[1].split("\n\nAnswer", 1)[0])
    words = ticket_words(ticket)
    if "hallucinate" in words:
        return {"event_type": "support.magic.requested", "payload": {}, "reasoning": "made up"}
    if "charged twice" in words:
        event, payload = pick(available, "billing"), {"issue": "double_charge", "amount": 49.0}
    elif "api" in words:
        event, payload = pick(available, "technical"), {"component": "api", "error_code": "500"}
    else:
        event, payload = pick(available, "escalation"), {"reason": "legal"}
    return {"event_type": event, "topic": "action-requests", "payload": payload, "confidence": 0.9,
            "reasoning": f"the ticket is about {event.split('.')[1]}"}


def router_answer(prompt: str) -> dict[str, Any]:
    """The ticket router of examples/events-structured."""
    available = listed_events(prompt, end="\n\nTicket:")
    ticket = json.loads(prompt.split("Ticket:\n", 1)[1].split("\n\nAnswer", 1)[0])
    words = ticket_words(ticket)
    summary = ticket.get("subject", "")
    if "hallucinate" in words:
        return {"event_type": "ticket.legal.requested", "payload": {"summary": summary}, "reasoning": "made up"}
    if "invoice" in words or "refund" in words:
        event, payload = pick(available, "billing"), {"summary": summary, "amount": 20}
    elif "password" in words:
        event, payload = pick(available, "account"), {"summary": summary, "action": "password_reset"}
    else:
        severity = "catastrophic" if "badpayload" in words else ("high" if "down" in words else "medium")
        event, payload = pick(available, "technical"), {"summary": summary, "severity": severity}
    return {"event_type": event, "payload": payload, "reasoning": f"matches {event}"}


def fake_llm(body: dict[str, Any]) -> str:
    """The fake's one entry point: which agent is asking is told by its prompt."""
    messages = body.get("messages") or []
    system = next((m["content"] for m in messages if m.get("role") == "system"), "")
    first_user = next(m["content"] for m in messages if m.get("role") == "user")
    if system.startswith("You write event payloads"):
        answer = payload_answer(first_user)
    elif "Only publish events from the list of available events" in system:
        answer = choreography_answer(first_user)
    elif first_user.startswith("You route customer support tickets"):
        answer = selector_answer(first_user)
    elif first_user.startswith("You are the ticket router"):
        answer = router_answer(first_user)
    else:
        answer = {"error": "unknown prompt"}
    return json.dumps(answer)


# --- the stack -----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stack():
    llm = FakeLLMServer(fake_llm).start()
    env = {"SOORMA_LLM_PROVIDER": "openai", "SOORMA_LLM_BASE_URL": llm.base_url, "SOORMA_LLM_API_KEY": LLM_KEY,
           "SOORMA_LLM_MODEL": "fake-model"}
    try:
        with local_stack("soorma-e2e-llm-", [EXAMPLES / app for app in LLM_APPS], env=env) as stack_:
            yield {**stack_, "llm": llm}
    finally:
        llm.stop()


def wait(client: httpx.Client, *goal_ids: str, timeout: float = GOAL_TIMEOUT_S) -> dict[str, dict]:
    """:func:`tests.e2e.conftest.wait` with this module's longer timeout (several LLM round trips per goal)."""
    return wait_for_goals(client, *goal_ids, timeout=timeout)


def prompts_about(llm: FakeLLMServer, marker: str) -> list[str]:
    """The first user message of every LLM request whose messages mention ``marker``."""
    found = []
    for request in list(llm.requests):
        messages = request["body"].get("messages") or []
        if any(marker in m.get("content", "") for m in messages):
            found.append(next(m["content"] for m in messages if m.get("role") == "user"))
    return found


def task_types(goal: dict) -> set[str]:
    return {t["event_type"] for t in goal.get("tasks") or []}


# --- the examples --------------------------------------------------------------------------------------------------


def test_events_structured_routes_tickets_to_the_discovered_team(stack):
    client, llm = stack["client"], stack["llm"]
    tickets = {
        "billing": {"subject": "Wrong invoice", "body": "Please refund the extra 20 on my invoice", "customer": "ada"},
        "technical": {"subject": "Site down", "body": "The dashboard is down since noon"},
        "account": {"subject": "Locked out", "body": "I forgot my password"},
        "hallucinate": {"subject": "hallucinate", "body": "route me somewhere new"},
        "badpayload": {"subject": "Export fails", "body": "badpayload: exports error out"},
    }
    ids = {name: submit(client, "support.ticket.submitted", t) for name, t in tickets.items()}
    goals = wait(client, *ids.values())

    billing = goals[ids["billing"]]
    assert billing["status"] == "completed", billing
    answer = billing["result"]["result"]
    assert answer["routed_to"] == "ticket.billing.requested" and answer["handled_by"] == "billing"
    assert answer["resolution"] == "refund of 20.00 issued"
    assert answer["payload"]["amount"] == 20 and answer["payload"]["ticket_id"] == answer["ticket_id"]
    technical = goals[ids["technical"]]["result"]["result"]
    assert technical["routed_to"] == "ticket.technical.requested"
    assert technical["resolution"] == "on-call engineer paged"
    account = goals[ids["account"]]["result"]["result"]
    assert account["routed_to"] == "ticket.account.requested" and account["resolution"] == "password_reset done"
    assert "ticket.billing.requested" in task_types(billing)

    # an event the registry did not offer is refused, and nothing is sent for it
    refused = goals[ids["hallucinate"]]
    assert refused["status"] == "failed" and "ticket.legal.requested" in refused["error"], refused
    assert "not a discovered event" in refused["error"]
    assert "ticket.legal.requested" not in task_types(refused)
    # a payload that does not match the registered schema is refused too
    invalid = goals[ids["badpayload"]]
    assert invalid["status"] == "failed" and "severity" in invalid["error"], invalid

    # the router's prompt listed the registered definitions: names, descriptions, fields
    prompts = prompts_about(llm, "You are the ticket router")
    assert len(prompts) == len(tickets)
    for prompt in prompts:
        assert set(listed_events(prompt, end="\n\nTicket:")) == {
            "ticket.billing.requested", "ticket.technical.requested", "ticket.account.requested"}
        assert "Billing team: invoices, charges, refunds" in prompt and "severity* (string)" in prompt
    # deploying registered the rich definitions
    registered = client.get("/v1/events", params={"event_name": "ticket.technical.requested"}).json()["events"]
    assert registered and registered[0]["payloadSchema"]["properties"]["severity"]["enum"] == ["low", "medium", "high"]


def test_choreography_planner_chains_discovered_workers(stack):
    client, llm = stack["client"], stack["llm"]
    goal_id = submit(client, "feedback.report.requested", {"product": "Acme Notes"})
    goal = wait(client, goal_id)[goal_id]
    assert goal["status"] == "completed", goal
    result = goal["result"]["result"]
    assert result["report"] == "Acme Notes: 2 positive, 2 negative, 1 neutral; feedback is mixed."
    assert result["sentiment"] == {"positive": 2, "negative": 2, "neutral": 1}
    assert {"feedback.fetch.requested", "feedback.analyze.requested", "report.generate.requested"} <= task_types(goal)

    prompts = prompts_about(llm, '"Acme Notes"')
    assert len(prompts) == 4  # fetch, analyze, report, complete
    for prompt in prompts:
        offered = listed_events(prompt, end="\n\nContext:")
        assert {"feedback.fetch.requested", "feedback.analyze.requested", "report.generate.requested"} <= set(offered)
        assert "feedback.report.requested" not in offered  # its own goal is not an action
        assert "Fetch the customer feedback entries recorded for a product" in prompt
    # the last decision saw every worker's result
    assert "feedback is mixed" in prompts[-1]


def test_choreography_planner_stops_at_max_actions(stack):
    client, llm = stack["client"], stack["llm"]
    goal_id = submit(client, "feedback.report.requested", {"product": "loop-forever"})
    goal = wait(client, goal_id)[goal_id]
    assert goal["status"] == "completed", goal
    assert goal["result"]["result"]["status"] == "stopped"
    assert goal["result"]["result"]["reason"] == "max_actions (6) reached"
    assert len(prompts_about(llm, '"loop-forever"')) == 6  # the seventh decision was the circuit breaker's
    fetches = [t for t in goal["tasks"] if t["event_type"] == "feedback.fetch.requested"]
    assert len(fetches) == 6


def test_choreography_planner_rejects_an_undiscovered_event(stack):
    client, llm = stack["client"], stack["llm"]
    goal_id = submit(client, "feedback.report.requested", {"product": "hallucinate-a-step"})
    goal = wait(client, goal_id)[goal_id]
    assert goal["status"] == "failed", goal
    assert "feedback.delete.everything" in goal["error"] and "rejected" in goal["error"]
    assert "feedback.delete.everything" not in task_types(goal)
    asked = [r for r in llm.requests if any('"hallucinate-a-step"' in m.get("content", "")
                                            for m in r["body"]["messages"])]
    assert len(asked) == 2  # asked again once, told the event is not available
    assert "is not available" in asked[-1]["body"]["messages"][-1]["content"]


def test_discovery_llm_dispatches_a_generated_payload_and_answers_in_the_clients_schema(stack):
    client, llm = stack["client"], stack["llm"]
    client_schema = {
        "type": "object",
        "properties": {"headline": {"type": "string"}, "count": {"type": "integer"},
                       "links": {"type": "array", "items": {"type": "string"}}},
        "required": ["headline", "count", "links"],
        "additionalProperties": False,
    }
    own = submit(client, "discovery.research.goal",
                 {"description": "Event-driven agents", "response_schema": client_schema})
    default = submit(client, "discovery.research.goal", {"description": "Serverless NATS in depth"})
    goals = wait(client, own, default)

    goal = goals[own]
    assert goal["status"] == "completed", goal
    answer = goal["result"]
    assert answer["response_schema"] == "client"
    assert answer["result"] == {"headline": "Overview of Event-driven agents", "count": 3,
                                "links": [f"https://example.com/research/{i}" for i in (1, 2, 3)]}
    # the worker got the LLM's payload with the registered schema's defaults filled in
    assert {k: answer["request"][k] for k in ("topic", "max_results", "depth")} == {
        "topic": "Event-driven agents", "max_results": 3, "depth": "standard"}
    # dispatch() keeps the goal's correlation id (no sub-task of its own): the request is one of the goal's events
    events = client.get(f"/v1/goals/{own}/events").json()["events"]
    request = next(e for e in events if e["type"] == "research.requested")
    assert request["correlation_id"] == own and request["data"]["topic"] == "Event-driven agents"

    other = goals[default]
    assert other["status"] == "completed", other
    assert other["result"]["response_schema"] == "research_result_v1"
    assert other["result"]["result"]["summary"] == "5 findings about Serverless NATS in depth"
    assert other["result"]["request"]["depth"] == "deep"

    # the payload prompt carried the schema registered from the worker's capability
    prompts = prompts_about(llm, "research_request_v1")
    assert len(prompts) == 2
    assert all('"max_results"' in p and '"enum"' in p for p in prompts)
    registered = client.get("/v1/events", params={"event_name": "research.requested"}).json()["events"]
    assert registered and registered[0]["payloadSchemaName"] == "research_request_v1"


def test_event_selector_routes_tickets_to_specialists(stack):
    client, llm = stack["client"], stack["llm"]
    tickets = {
        "billing": {"ticket_id": "T-1", "customer": "ada", "subject": "Charged twice",
                    "description": "I was charged twice for March"},
        "technical": {"ticket_id": "T-2", "subject": "API 500", "description": "The API returns 500 on upload"},
        "escalation": {"ticket_id": "T-3", "subject": "Contract", "description": "Our lawyer will contact you"},
        "fallback": {"ticket_id": "T-4", "subject": "hallucinate", "description": "anything"},
    }
    ids = {name: submit(client, "support.ticket.created", t) for name, t in tickets.items()}
    goals = wait(client, *ids.values())
    for goal in goals.values():
        assert goal["status"] == "completed", goal
    billing = goals[ids["billing"]]["result"]["result"]
    assert billing["routed_to"] == "support.billing.requested" and billing["handled_by"] == "billing-worker"
    assert billing["resolution"] == "duplicate charge refunded" and billing["fallback"] is False
    assert billing["payload"]["ticket_id"] == "T-1" and "billing" in billing["reasoning"]
    technical = goals[ids["technical"]]["result"]["result"]
    assert technical["routed_to"] == "support.technical.requested"
    assert technical["resolution"] == "incident opened for api (500)"
    escalation = goals[ids["escalation"]]["result"]["result"]
    assert escalation["routed_to"] == "support.escalation.requested" and escalation["reason"] == "legal"
    fallback = goals[ids["fallback"]]["result"]["result"]
    assert fallback["fallback"] is True and fallback["routed_to"] == "support.escalation.requested"
    assert "support.magic.requested" in fallback["reasoning"]

    prompts = prompts_about(llm, "You route customer support tickets")
    assert len(prompts) == len(tickets)
    for prompt in prompts:
        offered = set(listed_events(prompt, end="\n\nTicket:"))
        assert {"support.billing.requested", "support.technical.requested", "support.escalation.requested"} <= offered
        assert "issue* (string)" in prompt  # a field of the inline schema the billing worker registered
    registered = client.get("/v1/events", params={"event_name": "support.billing.requested"}).json()["events"]
    assert registered and registered[0]["payloadSchemaName"] == "billing_ticket_v1"


def test_no_credentials_reach_the_llm(stack):
    """Runs last: every request the fake received (all examples) is checked."""
    llm = stack["llm"]
    assert len(llm.requests) >= 20
    secrets = {stack["credentials"]["api_key"]}
    for path in (stack["home"] / "functions").glob("*.json"):
        key = json.loads(path.read_text()).get("env", {}).get("SOORMA_API_KEY")
        if key:
            secrets.add(key)
    deployed = [p.stem for p in (stack["home"] / "functions").glob("*.json")]
    assert any(name.endswith("feedback-planner") for name in deployed) and len(secrets) > 10, deployed
    for request in llm.requests:
        text = json.dumps(request)
        for secret in secrets:
            assert secret not in text
        assert request["headers"].get("Authorization") == f"Bearer {LLM_KEY}"
        assert request["path"] == "/v1/chat/completions"
