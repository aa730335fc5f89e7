"""A2A through the local API Gateway: the agent card built from the registry, and JSON-RPC message/send, tasks/get,
tasks/cancel mapped onto goals; answers validated with the a2a-sdk's protocol 0.3 types."""

from __future__ import annotations

import threading
import uuid

import pytest
from a2a.compat.v0_3 import types as a2a

from soorma.events import EventEnvelope
from soorma.testing import sqs_batch


@pytest.fixture(scope="module")
def tenant(api, platform_admin, gx):
    t = gx.onboard(api, platform_admin)
    agent = {"agent": {"agent_id": "advisor-1", "name": "advisor", "description": "Answers research questions",
                       "consumed_events": ["research.goal"], "produced_events": ["soorma.goal.result"]}}
    assert api.post("/v1/agents", headers=gx.bearer(t.keys["developer"]), json=agent).status_code == 200
    return t


def rpc(api, key, method, params, request_id=1):
    reply = api.post("/v1/a2a", headers={"authorization": f"Bearer {key}"},
                     json={"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
    assert reply.status_code == 200, reply.text
    return reply.json()


def message(text="What is JetStream?", goal_type="research.goal", **extra):
    return {"message": {"role": "user", "messageId": str(uuid.uuid4()), "kind": "message",
                        "parts": [{"kind": "text", "text": text}, {"kind": "data", "data": {"lang": "en"}}],
                        "metadata": {"goal_type": goal_type}, **extra}}


def complete(gw_db, t, goal_id, data):
    from soorma.functions.tracker.app import process_batch

    result = EventEnvelope(source="advisor", type="soorma.goal.result", topic="action-results", data=data,
                           correlation_id=goal_id, goal_id=goal_id, platform_tenant_id=t.id,
                           tenant_id=t.service_tenant, user_id=f"su_user_{t.id}")
    assert process_batch(gw_db, sqs_batch(result)) == {"batchItemFailures": []}


def test_agent_cards_are_built_from_the_registry(api, tenant, gx, monkeypatch):
    extended = api.get("/v1/a2a/agent-card", headers=gx.bearer(tenant.keys["user"]))
    assert extended.status_code == 200
    card = a2a.AgentCard.model_validate(extended.json())
    assert [s.id for s in card.skills] == ["advisor-1"] and card.skills[0].tags == ["research.goal"]
    assert card.url.endswith("/v1/a2a") and card.supports_authenticated_extended_card
    same = rpc(api, tenant.keys["user"], "agent/getAuthenticatedExtendedCard", {})
    assert same["result"]["skills"][0]["id"] == "advisor-1"
    # public card: no credential needed; skills of the configured tenant only
    public = api.get("/.well-known/agent-card.json")
    assert public.status_code == 200 and a2a.AgentCard.model_validate(public.json()).skills == []
    monkeypatch.setenv("SOORMA_A2A_CARD_TENANT", tenant.id)
    public = a2a.AgentCard.model_validate(api.get("/.well-known/agent-card.json").json())
    assert [s.name for s in public.skills] == ["advisor"]
    assert set(public.security_schemes) == {"bearer", "apiKey"}


def test_message_send_get_cancel(api, tenant, gx, gw_db):
    key = tenant.keys["user"]
    sent = rpc(api, key, "message/send", message(contextId="conv-1"))
    task = a2a.SendMessageSuccessResponse.model_validate(sent).result
    assert isinstance(task, a2a.Task) and task.status.state == a2a.TaskState.working
    assert task.context_id == "conv-1"
    goal = api.get(f"/v1/goals/{task.id}", headers=gx.bearer(key)).json()
    assert goal["goal_type"] == "research.goal" and goal["session_id"] == "conv-1"
    assert goal["data"] == {"lang": "en", "text": "What is JetStream?"}
    complete(gw_db, tenant, task.id, {"answer": "a stream store"})
    got = a2a.GetTaskSuccessResponse.model_validate(rpc(api, key, "tasks/get", {"id": task.id})).result
    assert got.status.state == a2a.TaskState.completed
    assert got.artifacts[0].parts[0].root.data == {"answer": "a stream store"}
    # the same message twice is one task
    params = message()
    first = rpc(api, key, "message/send", params)["result"]["id"]
    assert rpc(api, key, "message/send", params)["result"]["id"] == first
    canceled = a2a.CancelTaskSuccessResponse.model_validate(rpc(api, key, "tasks/cancel", {"id": first})).result
    assert canceled.status.state == a2a.TaskState.canceled
    again = rpc(api, key, "tasks/cancel", {"id": first})
    assert again["error"]["code"] == -32002
    assert rpc(api, key, "tasks/get", {"id": str(uuid.uuid4())})["error"]["code"] == -32001
    # another identity cannot see the task
    assert rpc(api, tenant.keys["developer"], "tasks/get", {"id": first})["error"]["code"] == -32001


def test_blocking_send_waits_for_the_result(api, tenant, gx, gw_db, monkeypatch):
    monkeypatch.setenv("SOORMA_A2A_BLOCKING_SECONDS", "10")
    params = message("blocking?")
    params["configuration"] = {"blocking": True}

    def finish():
        goals = api.get("/v1/goals", headers=gx.bearer(tenant.keys["user"]),
                        params={"status": "running", "limit": 100}).json()["goals"]
        for g in goals:
            complete(gw_db, tenant, g["goal_id"], {"answer": "done"})

    timer = threading.Timer(0.7, finish)
    timer.start()
    result = rpc(api, tenant.keys["user"], "message/send", params)["result"]
    timer.join()
    assert result["status"]["state"] == "completed"


def test_protocol_errors(api, tenant, gx):
    key = tenant.keys["user"]
    raw = api.post("/v1/a2a", headers=gx.bearer(key), content=b"{not json")
    assert raw.json()["error"]["code"] == -32700
    assert api.post("/v1/a2a", headers=gx.bearer(key), json={"id": 1, "method": "x"}).json()["error"]["code"] == -32600
    assert rpc(api, key, "tasks/resubscribe", {"id": "x"})["error"]["code"] == -32601
    assert rpc(api, key, "message/send", {"message": {"role": "user"}})["error"]["code"] == -32602
    no_type = message(goal_type=None)
    no_type["message"]["metadata"] = {}
    assert rpc(api, key, "message/send", no_type)["error"]["code"] == -32602
    file_part = message()
    file_part["message"]["parts"] = [{"kind": "file", "file": {"uri": "https://example.invalid/x"}}]
    assert rpc(api, key, "message/send", file_part)["error"]["code"] == -32005
    # policy applies to A2A too
    assert api.put("/v1/policy", headers=gx.bearer(tenant.keys["admin"]),
                   json={"allowed_goal_types": ["other.*"]}).status_code == 200
    try:
        refused = rpc(api, key, "message/send", message())
        assert refused["error"]["code"] == -32003 and refused["error"]["data"]["rule"] == "allowed_goal_types"
    finally:
        api.put("/v1/policy", headers=gx.bearer(tenant.keys["admin"]), json={})
    # no credential: the gateway refuses before any JSON-RPC
    assert api.post("/v1/a2a", json={"jsonrpc": "2.0", "id": 1, "method": "tasks/get",
                                     "params": {"id": "x"}}).status_code == 401
