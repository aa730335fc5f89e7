"""A2A 1.0 through the local API Gateway, with the a2a-sdk's own client (``ClientFactory`` on an httpx client whose
transport is the in-process API Gateway): the agent card built from the registry; SendMessage, GetTask, ListTasks,
CancelTask on goals over JSON-RPC and HTTP+JSON; streaming and push notifications answered "not supported"; protocol
0.3 JSON-RPC methods still answered; tenant isolation; protocol errors as the bindings' own error shapes."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from a2a.client import ClientConfig, ClientFactory
from a2a.compat.v0_3 import types as v03
from a2a.types import a2a_pb2 as pb
from a2a.utils.errors import (
    InvalidParamsError,
    PushNotificationNotSupportedError,
    TaskNotCancelableError,
    TaskNotFoundError,
    UnsupportedOperationError,
)
from google.protobuf import struct_pb2
from google.protobuf.json_format import MessageToDict, ParseDict

from soorma.events import EventEnvelope
from soorma.testing import sqs_batch

BASE = "http://api.local"


@pytest.fixture(scope="module")
def tenant(api, platform_admin, gx):
    t = gx.onboard(api, platform_admin)
    agent = {"agent": {"agent_id": "advisor-1", "name": "advisor", "description": "Answers research questions",
                       "consumed_events": ["research.goal"], "produced_events": ["soorma.goal.result"]}}
    assert api.post("/v1/agents", headers=gx.bearer(t.keys["developer"]), json=agent).status_code == 200
    return t


@pytest.fixture(scope="module")
def other(api, platform_admin, gx):
    return gx.onboard(api, platform_admin)


def with_client(api, key: str, run: Callable[[Any], Awaitable[Any]], *, binding: str = "JSONRPC",
                polling: bool = True) -> Any:
    """Run ``run(client)`` with an a2a-sdk client made from the public card, sending ``key`` as Bearer credential
    through the in-process API Gateway; ``binding`` is the protocol binding it prefers."""

    async def main() -> Any:
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=api.app), base_url=BASE, timeout=30,
                                 headers={"authorization": f"Bearer {key}"})
        async with http:
            config = ClientConfig(httpx_client=http, streaming=False, polling=polling,
                                  supported_protocol_bindings=[binding], use_client_preference=True)
            client = await ClientFactory(config).create_from_url(BASE)
            return await run(client)

    return asyncio.run(main())


def message(text: str = "What is JetStream?", goal_type: str | None = "research.goal", **fields: Any) -> pb.Message:
    msg = pb.Message(message_id=str(uuid.uuid4()), role=pb.ROLE_USER,
                     parts=[pb.Part(text=text), pb.Part(data=ParseDict({"lang": "en"}, struct_pb2.Value()))], **fields)
    if goal_type:
        msg.metadata.update({"goal_type": goal_type})
    return msg


async def send(client, msg: pb.Message) -> pb.Task:
    responses = [r async for r in client.send_message(pb.SendMessageRequest(message=msg))]
    assert len(responses) == 1 and responses[0].HasField("task")
    return responses[0].task


def complete(gw_db, t, goal_id, data):
    from soorma.functions.tracker.app import process_batch

    result = EventEnvelope(source="advisor", type="soorma.goal.result", topic="action-results", data=data,
                           correlation_id=goal_id, goal_id=goal_id, platform_tenant_id=t.id,
                           tenant_id=t.service_tenant, user_id=f"su_user_{t.id}")
    assert process_batch(gw_db, sqs_batch(result)) == {"batchItemFailures": []}


def test_agent_cards(api, tenant, gx, monkeypatch):
    public = api.get("/.well-known/agent-card.json")
    assert public.status_code == 200
    card = public.json()
    assert [(i["protocolBinding"], i["protocolVersion"]) for i in card["supportedInterfaces"]] == [
        ("JSONRPC", "1.0"), ("HTTP+JSON", "1.0"), ("JSONRPC", "0.3")]
    assert card["capabilities"] == {"streaming": False, "pushNotifications": False, "extendedAgentCard": True}
    assert card["securitySchemes"]["bearer"]["httpAuthSecurityScheme"]["scheme"] == "Bearer"
    assert [s["id"] for s in card["skills"]] == ["goal"]  # no card tenant configured: no registry skills
    # the 0.3 fields are merged in, so a 0.3 client reads the same document
    legacy = v03.AgentCard.model_validate(card)
    assert legacy.protocol_version == "0.3" and legacy.url.endswith("api.local/v1/a2a")

    monkeypatch.setenv("SOORMA_A2A_CARD_TENANT", tenant.id)
    assert [s["id"] for s in api.get("/.well-known/agent-card.json").json()["skills"]] == ["goal", "advisor-1"]
    monkeypatch.delenv("SOORMA_A2A_CARD_TENANT")

    async def extended(client):
        return await client.get_extended_agent_card(pb.GetExtendedAgentCardRequest())

    for binding in ("JSONRPC", "HTTP+JSON"):
        own = with_client(api, tenant.keys["user"], extended, binding=binding)
        assert [s.id for s in own.skills] == ["goal", "advisor-1"]
        assert own.skills[1].tags == ["research.goal"]


@pytest.mark.parametrize("binding", ["JSONRPC", "HTTP+JSON"])
def test_send_get_list_cancel(api, tenant, gx, gw_db, binding):
    key = tenant.keys["user"]
    context_id = f"conv-{uuid.uuid4()}"

    async def first(client):
        return await send(client, message(context_id=context_id))

    task = with_client(api, key, first, binding=binding)
    assert task.status.state == pb.TASK_STATE_WORKING and task.context_id == context_id
    goal = api.get(f"/v1/goals/{task.id}", headers=gx.bearer(key)).json()
    assert goal["goal_type"] == "research.goal" and goal["session_id"] == context_id
    assert goal["data"] == {"lang": "en", "text": "What is JetStream?"}
    complete(gw_db, tenant, task.id, {"answer": "a stream store"})

    repeated = message()

    async def rest(client):
        got = await client.get_task(pb.GetTaskRequest(id=task.id))
        listed = await client.list_tasks(pb.ListTasksRequest(context_id=context_id, include_artifacts=True))
        again = await send(client, repeated)
        same = await send(client, repeated)  # the same messageId is the same task
        canceled = await client.cancel_task(pb.CancelTaskRequest(id=again.id))
        errors = []
        for call in (lambda: client.cancel_task(pb.CancelTaskRequest(id=again.id)),
                     lambda: client.get_task(pb.GetTaskRequest(id=str(uuid.uuid4()))),
                     lambda: client.get_task(pb.GetTaskRequest(id="not-a-goal-id"))):
            with pytest.raises(Exception) as caught:
                await call()
            errors.append(type(caught.value))
        return got, listed, again, same, canceled, errors

    got, listed, again, same, canceled, errors = with_client(api, key, rest, binding=binding)
    assert got.status.state == pb.TASK_STATE_COMPLETED
    assert MessageToDict(got.artifacts[0].parts[0].data) == {"answer": "a stream store"}
    assert [t.id for t in listed.tasks] == [task.id] and listed.total_size == 1
    assert MessageToDict(listed.tasks[0].artifacts[0].parts[0].data) == {"answer": "a stream store"}
    assert same.id == again.id
    assert canceled.status.state == pb.TASK_STATE_CANCELED
    assert errors == [TaskNotCancelableError, TaskNotFoundError, TaskNotFoundError]


def test_list_filters_and_pages(api, platform_admin, gx):
    t = gx.onboard(api, platform_admin)

    async def run(client):
        sent = [await send(client, message(f"q{i}")) for i in range(3)]
        await client.cancel_task(pb.CancelTaskRequest(id=sent[0].id))
        page1 = await client.list_tasks(pb.ListTasksRequest(page_size=2))
        page2 = await client.list_tasks(pb.ListTasksRequest(page_size=2, page_token=page1.next_page_token))
        canceled = await client.list_tasks(pb.ListTasksRequest(status=pb.TASK_STATE_CANCELED))
        with pytest.raises(InvalidParamsError):
            await client.list_tasks(pb.ListTasksRequest(page_size=101))
        with pytest.raises(InvalidParamsError):
            await client.list_tasks(pb.ListTasksRequest(page_token="not-a-token"))
        later = pb.ListTasksRequest()
        later.status_timestamp_after.FromDatetime(datetime.now(UTC) + timedelta(minutes=1))
        earlier = pb.ListTasksRequest()
        earlier.status_timestamp_after.FromDatetime(datetime.now(UTC) - timedelta(minutes=5))
        changed = [len((await client.list_tasks(r)).tasks) for r in (later, earlier)]
        return sent, page1, page2, canceled, changed

    sent, page1, page2, canceled, changed = with_client(api, t.keys["user"], run)
    assert changed == [0, 3]  # statusTimestampAfter: none changed after now, all three in the last minutes
    newest_first = [s.id for s in reversed(sent)]
    assert [x.id for x in page1.tasks] + [x.id for x in page2.tasks] == newest_first
    assert page1.total_size == 3 and page1.next_page_token and not page2.next_page_token
    assert [x.id for x in canceled.tasks] == [sent[0].id]


def test_blocking_send_waits_for_the_result(api, tenant, gx, gw_db, monkeypatch):
    monkeypatch.setenv("SOORMA_A2A_BLOCKING_SECONDS", "10")
    msg = message("blocking?", context_id=f"block-{uuid.uuid4()}")

    def finish():
        goals = api.get("/v1/goals", headers=gx.bearer(tenant.keys["user"]),
                        params={"session_id": msg.context_id}).json()["goals"]
        for g in goals:
            complete(gw_db, tenant, g["goal_id"], {"answer": "done"})

    timer = threading.Timer(1.0, finish)
    timer.start()
    task = with_client(api, tenant.keys["user"], lambda client: send(client, msg), polling=False)
    timer.join()
    assert task.status.state == pb.TASK_STATE_COMPLETED


def test_tenant_isolation(api, tenant, other, gx):
    async def mine(client):
        return await send(client, message(context_id="shared-context-name"))

    task = with_client(api, tenant.keys["user"], mine)

    async def theirs(client):
        outcomes = []
        for call in (lambda: client.get_task(pb.GetTaskRequest(id=task.id)),
                     lambda: client.cancel_task(pb.CancelTaskRequest(id=task.id))):
            with pytest.raises(TaskNotFoundError):
                await call()
            outcomes.append("not found")
        listed = await client.list_tasks(pb.ListTasksRequest(context_id="shared-context-name"))
        everything = await client.list_tasks(pb.ListTasksRequest())
        return outcomes, listed, everything

    for binding in ("JSONRPC", "HTTP+JSON"):
        outcomes, listed, everything = with_client(api, other.keys["user"], theirs, binding=binding)
        assert outcomes == ["not found", "not found"] and list(listed.tasks) == []
        assert task.id not in {t.id for t in everything.tasks}
    # naming the other tenant (a2a.proto's optional `tenant`) does not reach it
    with pytest.raises(InvalidParamsError):
        with_client(api, other.keys["user"], lambda client: client.list_tasks(pb.ListTasksRequest(tenant=tenant.id)))
    # another identity of the same tenant does not see it either (row-level security per user)
    with pytest.raises(TaskNotFoundError):
        with_client(api, tenant.keys["developer"], lambda client: client.get_task(pb.GetTaskRequest(id=task.id)))
    # and the owner still does
    got = with_client(api, tenant.keys["user"], lambda client: client.get_task(pb.GetTaskRequest(id=task.id)))
    assert got.status.state == pb.TASK_STATE_WORKING


def test_unsupported_operations(api, tenant):
    key = tenant.keys["user"]

    async def run(client):
        task = await send(client, message())
        raised = []
        for call in (
            lambda: client.subscribe(pb.SubscribeToTaskRequest(id=task.id)).__anext__(),
            lambda: client.create_task_push_notification_config(
                pb.TaskPushNotificationConfig(task_id=task.id, url="https://example.invalid/hook")),
            lambda: client.list_task_push_notification_configs(
                pb.ListTaskPushNotificationConfigsRequest(task_id=task.id)),
            lambda: send(client, message(task_id=task.id)),
            lambda: send(client, message(goal_type=None)),
        ):
            with pytest.raises(Exception) as caught:
                await call()
            raised.append(type(caught.value))
        return raised

    for binding in ("JSONRPC", "HTTP+JSON"):
        # the client itself declines to subscribe: the card says streaming is false
        assert with_client(api, key, run, binding=binding) == [
            NotImplementedError, PushNotificationNotSupportedError, PushNotificationNotSupportedError,
            UnsupportedOperationError, InvalidParamsError]


def test_protocol_0_3_and_errors(api, tenant, gx):
    key = tenant.keys["user"]

    def rpc(method, params, headers=None):
        reply = api.post("/v1/a2a", headers={**gx.bearer(key), **(headers or {})},
                         json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
        assert reply.status_code == 200, reply.text
        return reply.json()

    legacy = {"message": {"role": "user", "messageId": str(uuid.uuid4()), "kind": "message",
                          "parts": [{"kind": "text", "text": "old client"}], "metadata": {"goal_type": "research.goal"}},
              "configuration": {"blocking": False}}
    sent = v03.SendMessageSuccessResponse.model_validate(rpc("message/send", legacy)).result
    assert isinstance(sent, v03.Task) and sent.status.state == v03.TaskState.working
    got = v03.GetTaskSuccessResponse.model_validate(rpc("tasks/get", {"id": sent.id})).result
    assert got.id == sent.id and got.metadata["goal_type"] == "research.goal"
    canceled = v03.CancelTaskSuccessResponse.model_validate(rpc("tasks/cancel", {"id": sent.id})).result
    assert canceled.status.state == v03.TaskState.canceled
    assert rpc("tasks/get", {"id": str(uuid.uuid4())})["error"]["code"] == -32001
    # a 1.0 method without A2A-Version is a 0.3 request: VersionNotSupportedError
    assert rpc("GetTask", {"id": sent.id})["error"]["code"] == -32009
    assert rpc("GetTask", {"id": sent.id}, {"A2A-Version": "1.0"})["result"]["id"] == sent.id
    # a message without its REQUIRED messageId (the goal's idempotency key) is invalid params
    no_id = {"message": {"role": "ROLE_USER", "parts": [{"text": "x"}], "metadata": {"goal_type": "research.goal"}}}
    assert rpc("SendMessage", no_id, {"A2A-Version": "1.0"})["error"]["code"] == -32602
    # what PostgreSQL cannot store is the request's fault too
    nul = {"message": {"messageId": str(uuid.uuid4()), "role": "ROLE_USER", "parts": [{"text": "a\u0000b"}],
                       "metadata": {"goal_type": "research.goal"}}, "configuration": {"returnImmediately": True}}
    refused = rpc("SendMessage", nul, {"A2A-Version": "1.0"})["error"]
    assert refused["code"] == -32602 and "invalid value" in refused["message"], refused
    assert rpc("ListTasks", {"contextId": "a\u0000b"}, {"A2A-Version": "1.0"})["error"]["code"] == -32602
    # the server's own answer to streaming, which the SDK's client does not even send (the card says no streaming)
    for method, params in (("SubscribeToTask", {"id": sent.id}),
                           ("SendStreamingMessage", {"message": {"messageId": str(uuid.uuid4()), "role": "ROLE_USER",
                                                                 "parts": [{"text": "x"}]}})):
        assert rpc(method, params, {"A2A-Version": "1.0"})["error"]["code"] == -32004
    # JSON-RPC errors
    raw = api.post("/v1/a2a", headers=gx.bearer(key), content=b"{not json")
    assert raw.status_code == 200 and raw.json()["error"]["code"] == -32700
    assert rpc("NoSuchMethod", {}, {"A2A-Version": "1.0"})["error"]["code"] == -32601
    # HTTP+JSON errors: 4xx with a google.rpc.Status body
    missing = api.get(f"/v1/a2a/tasks/{uuid.uuid4()}", headers={**gx.bearer(key), "A2A-Version": "1.0"})
    assert missing.status_code == 404 and missing.json()["error"]["status"] == "NOT_FOUND"
    bad = api.post("/v1/a2a/message:send", headers={**gx.bearer(key), "A2A-Version": "1.0"}, content=b"[1, 2")
    assert 400 <= bad.status_code < 500
    # policy applies to A2A as to POST /v1/goals
    assert api.put("/v1/policy", headers=gx.bearer(tenant.keys["admin"]),
                   json={"allowed_goal_types": ["other.*"]}).status_code == 200
    try:
        with pytest.raises(InvalidParamsError, match="allowed_goal_types"):
            with_client(api, key, lambda client: send(client, message()))
    finally:
        api.put("/v1/policy", headers=gx.bearer(tenant.keys["admin"]), json={})
    # no credential: the gateway refuses before any A2A processing
    assert api.post("/v1/a2a", json={"jsonrpc": "2.0", "id": 1, "method": "tasks/get",
                                     "params": {"id": "x"}}).status_code == 401
    assert api.get("/v1/a2a/tasks").status_code == 401
