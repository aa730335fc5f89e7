"""The MCP server's logic (:mod:`soorma.functions.protocols.mcp`) on the real database, bus and tracker: which registry
entries become tools (and whose), and what a ``tools/call`` answers for a completed goal, a goal still running at the
deadline, a refusal by the tenant's policy and arguments that break the tool's schema. The protocol itself, through
the ``mcp`` SDK's clients, is tests/e2e/test_mcp.py."""

from __future__ import annotations

import threading
import time

import pytest

from soorma.events import EventEnvelope
from soorma.functions.protocols.mcp import GOAL_ID_META, call_tool, schema_problems, tool_catalog
from soorma.identity import Identity
from soorma.testing import sqs_batch

LOOKUP_SCHEMA = {"type": "object", "properties": {"term": {"type": "string"}}, "required": ["term"]}


def caller(tenant) -> Identity:
    return Identity(tenant.id, tenant.service_tenant, f"su_user_{tenant.id}", "mcp-test", "user")


@pytest.fixture(scope="module")
def tenant(api, platform_admin, gx):
    t = gx.onboard(api, platform_admin)
    key = gx.bearer(t.keys["developer"])
    glossary = {"agent": {"agent_id": "glossary", "name": "glossary", "description": "Explains terms", "capabilities": [
        # camelCase, as soorma-core clients write it; the event's own definition (below) names the schema
        {"taskName": "lookup", "consumedEvent": {"eventName": "glossary.lookup", "description": "capability text"}},
        {"task_name": "scan", "consumed_event": {"event_name": "glossary.scan", "topic": "action-requests",
                                                 "payload_schema": {"type": "array"}}},
        {"task_name": "heard", "consumed_event": {"event_name": "glossary.heard", "topic": "business-facts"}},
        "planning",  # a bare name: no request to call
    ]}}
    second = {"agent": {"agent_id": "backup", "name": "backup-glossary", "capabilities": [
        {"task_name": "lookup", "consumed_event": {"event_name": "glossary.lookup"}}]}}
    event = {"event": {"event_name": "glossary.lookup", "topic": "action-requests",
                       "description": "Explain a term", "payload_schema": LOOKUP_SCHEMA}}
    for path, body in (("/v1/agents", glossary), ("/v1/agents", second), ("/v1/events", event)):
        reply = api.post(path, headers=key, json=body)
        assert reply.status_code == 200, reply.text
    return t


def test_the_catalog_lists_each_requested_event_of_the_tenants_agents(tenant, gw_db, api, platform_admin, gx):
    tools = {tool["name"]: tool for tool in tool_catalog(gw_db, caller(tenant))}
    assert set(tools) == {"glossary.lookup", "glossary.scan"}  # not a fact on business-facts, not a bare name
    lookup = tools["glossary.lookup"]
    assert lookup["description"] == "Explain a term" and lookup["inputSchema"] == LOOKUP_SCHEMA
    assert sorted(lookup["agents"]) == ["backup-glossary", "glossary"]  # one tool, answered by either
    assert tools["glossary.scan"]["inputSchema"] == {"type": "object"}  # MCP inputs are objects: not {"type": "array"}
    assert tools["glossary.scan"]["description"] == "Answered by Soorma agent glossary"

    other = gx.onboard(api, platform_admin)
    assert tool_catalog(gw_db, caller(other)) == []  # row-level security: another tenant sees none of these


def test_a_call_answers_with_the_goals_result(tenant, gw_db, apps):
    from soorma.functions.tracker.app import process_batch

    goals = apps["gateway"].state.goals
    identity = caller(tenant)
    answers: list[dict] = []
    thread = threading.Thread(target=lambda: answers.append(
        call_tool(goals, identity, "glossary.lookup", {"term": "JetStream"}, LOOKUP_SCHEMA, wait_s=20)))
    thread.start()
    deadline = time.monotonic() + 10
    while not (listed := goals.list(identity, goal_type="glossary.lookup", status="running")["goals"]):
        assert time.monotonic() < deadline, "the call submitted no goal"
        time.sleep(0.05)
    goal_id = listed[0]["goal_id"]
    assert goals.get(identity, goal_id)["data"] == {"term": "JetStream"}
    result = EventEnvelope(source="glossary", type="soorma.goal.result", topic="action-results",
                           data={"meaning": "a stream store"}, correlation_id=goal_id, goal_id=goal_id,
                           platform_tenant_id=tenant.id, tenant_id=identity.service_tenant_id,
                           user_id=identity.service_user_id)
    assert process_batch(gw_db, sqs_batch(result)) == {"batchItemFailures": []}
    thread.join(20)
    [answer] = answers
    assert answer["isError"] is False and answer["structuredContent"] == {"meaning": "a stream store"}
    assert answer["content"] == [{"type": "text", "text": '{"meaning": "a stream store"}'}]
    assert answer["_meta"] == {GOAL_ID_META: goal_id}


def test_a_goal_still_running_at_the_deadline_is_a_tool_error_naming_it(tenant, apps):
    goals = apps["gateway"].state.goals
    answer = call_tool(goals, caller(tenant), "glossary.lookup", {"term": "slow"}, LOOKUP_SCHEMA, wait_s=0.3)
    goal_id = answer["_meta"][GOAL_ID_META]
    assert answer["isError"] is True and "structuredContent" not in answer
    assert answer["content"][0]["text"].startswith(f"goal {goal_id} is still running after 0.3 s")
    assert goals.get(caller(tenant), goal_id)["status"] == "running"  # left to finish; GET /v1/goals/{id} has it


def test_bad_arguments_and_refused_goals_are_tool_errors_without_a_goal(tenant, apps, api, gx):
    goals = apps["gateway"].state.goals
    identity = caller(tenant)
    before = goals.list(identity, limit=100)["count"]
    bad = call_tool(goals, identity, "glossary.lookup", {"term": 7}, LOOKUP_SCHEMA)
    assert bad == {"content": [{"type": "text", "text": "invalid arguments for glossary.lookup: term: 7 is not of"
                                                        " type 'string'"}], "isError": True}
    reply = api.put("/v1/policy", headers=gx.bearer(tenant.keys["admin"]), json={"allowed_goal_types": ["other.*"]})
    assert reply.status_code == 200, reply.text
    try:
        refused = call_tool(goals, identity, "glossary.lookup", {"term": "x"}, LOOKUP_SCHEMA)
    finally:
        api.put("/v1/policy", headers=gx.bearer(tenant.keys["admin"]), json={"allowed_goal_types": None})
    assert refused["isError"] is True and "allowed_goal_types" in refused["content"][0]["text"]
    assert goals.list(identity, limit=100)["count"] == before


def test_schema_problems_name_each_path_and_an_invalid_schema():
    schema = {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "array", "items":
                                                                                 {"type": "string"}}}}
    assert schema_problems({"a": 1, "b": ["x"]}, schema) == []
    assert schema_problems({"a": "1", "b": ["x", 2]}, schema) == ["a: '1' is not of type 'integer'",
                                                                  "b/1: 2 is not of type 'string'"]
    assert schema_problems({}, {"type": "no-such-type"})[0].startswith("the tool's registered input schema is invalid")


def test_get_and_delete_answer_405_rather_than_holding_a_stream_open(tenant, api, gx):
    for method in ("GET", "DELETE"):
        reply = api.request(method, "/v1/mcp", headers={**gx.bearer(tenant.keys["user"]), "accept": "text/event-stream"})
        assert reply.status_code == 405 and reply.headers["allow"] == "POST", reply.text
    assert api.get("/v1/mcp").status_code == 401  # the authorizer first, as on every /v1 route
