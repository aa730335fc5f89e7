"""``soorma local deploy`` registers an agent's event definitions before the agent (so discovery describes them at
once), and a definition the registry refuses does not stop the deploy."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from soorma import EventDefinition, Worker
from soorma.local.deploy import App, Deployer, FoundAgent


def test_event_definitions_are_registered_before_the_agent_and_refusals_are_skipped(tmp_path: Path):
    worker = Worker("ticket-worker", events_consumed=[
        EventDefinition(event_name="ticket.billing.requested", description="Billing",
                        payload_schema_name="billing_v1", payload_schema={"type": "object"}),
    ], events_produced=[EventDefinition(event_name="ticket.routed", topic="action-responses")])

    @worker.on_task("ticket.billing.requested")
    async def handle(task, context):
        await task.complete({})

    calls: list[tuple[str, str, dict]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content or b"{}")
        calls.append((request.method, request.url.path, body))
        if request.url.path == "/v1/events" and body["event"]["topic"] not in ("action-requests", "action-results"):
            return httpx.Response(422, json={"detail": "topic must be one of the 8 topics"})
        return httpx.Response(200, json={"ok": True})

    messages: list[str] = []
    deployer = Deployer("http://stack", "sk_dev", "control", "tenant", tmp_path, echo=messages.append)
    app = App(name="tickets", code_dir=tmp_path, modules=["agents"])
    with httpx.Client(base_url="http://stack", transport=httpx.MockTransport(handler)) as client:
        deployer._deploy_agent(client, app, FoundAgent("agents", "worker", worker))

    paths = [(method, path) for method, path, _ in calls]
    assert paths == [("PUT", "/_local/functions/tickets-ticket-worker"), ("POST", "/v1/events"),
                     ("POST", "/v1/events"), ("POST", "/v1/agents"),
                     ("PUT", "/_local/functions/tickets-ticket-worker/binding")]
    registered = calls[1][2]["event"]
    assert registered["event_name"] == "ticket.billing.requested" and registered["payload_schema_name"] == "billing_v1"
    assert any("ticket.routed" in m and "not registered" in m for m in messages)
    assert calls[3][2]["agent"]["name"] == "ticket-worker"
    assert "deployment" not in calls[3][2]["agent"]  # the registry API takes no binding (issue 12, finding 3)
    binding = calls[4][2]
    assert binding["agent_id"] == calls[3][2]["agent"]["agent_id"]
    assert "function_name" not in binding["deployment"]  # the control route binds the path's own function
    assert binding["deployment"]["subscriptions"] == [{"topic": "action-requests",
                                                       "event_type": "ticket.billing.requested"}]
