"""A2A 1.0 on the local stack with the a2a-sdk's own client (``ClientFactory`` / ``Client``): `soorma local up`,
`soorma local deploy examples/hello-tool`, then the card fetched from ``/.well-known/agent-card.json``; a message
answered by the calculator tool (a completed task with the result artifact) over JSON-RPC and HTTP+JSON; a task no
agent handles cancelled while it is still working; the protocol 0.3 client (``a2a.compat.v0_3``) still answered; a
second tenant that never gets, cancels or lists the first tenant's tasks; and the latency of a blocking
``SendMessage`` against the same goal through the goal API (printed; run with ``-s`` to see it)."""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from a2a.client import ClientConfig, ClientFactory
from a2a.types import a2a_pb2 as pb
from a2a.utils.errors import TaskNotCancelableError, TaskNotFoundError
from google.protobuf import struct_pb2
from google.protobuf.json_format import MessageToDict, ParseDict

from .conftest import EXAMPLES, local_stack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

#: No agent consumes this goal type: its goal stays running until it is cancelled.
UNHANDLED = "nobody.handles.this"


@pytest.fixture(scope="module")
def stack():
    with local_stack("soorma-e2e-a2a-", (EXAMPLES / "hello-tool",)) as stack_:
        yield stack_


@pytest.fixture(scope="module")
def second_tenant_key(stack) -> str:
    """A user key of a second platform tenant, onboarded through the API with the stack's platform admin key."""
    api = stack["client"]
    admin = {"Authorization": f"Bearer {stack['credentials']['admin_api_key']}"}
    tenant = f"pt_{uuid.uuid4().hex[:10]}"
    onboarded = api.post("/v1/tenants", headers=admin, json={"platform_tenant_id": tenant, "name": tenant})
    assert onboarded.status_code == 201, onboarded.text
    tenant_admin = {"Authorization": f"Bearer {onboarded.json()['admin_api_key']}"}
    created = api.post("/v1/api-keys", headers=tenant_admin,
                       json={"role": "user", "name": "mallory", "service_tenant_id": f"st_{tenant}",
                             "service_user_id": "mallory"})
    assert created.status_code == 201, created.text
    return created.json()["api_key"]


def with_client(stack, run: Callable[[Any], Awaitable[Any]], *, key: str | None = None, binding: str = "JSONRPC",
                polling: bool = False, card_filter: Callable[[pb.AgentCard], None] | None = None) -> Any:
    """``run(client)`` with an a2a-sdk client made from the stack's public agent card, authenticated with ``key``
    (default: the stack's developer key), preferring ``binding``; ``card_filter`` may edit the card first."""
    url = stack["credentials"]["api_url"]

    async def main() -> Any:
        token = key or stack["credentials"]["api_key"]
        async with httpx.AsyncClient(timeout=60, headers={"Authorization": f"Bearer {token}"}) as http:
            factory = ClientFactory(ClientConfig(httpx_client=http, streaming=False, polling=polling,
                                                 supported_protocol_bindings=[binding], use_client_preference=True))
            if card_filter is None:
                client = await factory.create_from_url(url)
            else:
                from a2a.client import A2ACardResolver

                card = await A2ACardResolver(http, url).get_agent_card()
                card_filter(card)
                client = factory.create(card)
            return await run(client)

    return asyncio.run(main())


def message(goal_type: str, data: dict[str, Any] | None = None, text: str | None = None) -> pb.Message:
    msg = pb.Message(message_id=str(uuid.uuid4()), role=pb.ROLE_USER)
    if data is not None:
        msg.parts.append(pb.Part(data=ParseDict(data, struct_pb2.Value())))
    if text is not None:
        msg.parts.append(pb.Part(text=text))
    msg.metadata.update({"goal_type": goal_type})
    return msg


async def send(client, msg: pb.Message) -> pb.Task:
    responses = [r async for r in client.send_message(pb.SendMessageRequest(message=msg))]
    assert len(responses) == 1 and responses[0].HasField("task"), responses
    return responses[0].task


def test_card_send_and_get_through_both_bindings(stack):
    public = httpx.get(f"{stack['credentials']['api_url']}/.well-known/agent-card.json")  # no credential: public
    assert public.status_code == 200
    assert {(i["protocolBinding"], i["protocolVersion"]) for i in public.json()["supportedInterfaces"]} == {
        ("JSONRPC", "1.0"), ("HTTP+JSON", "1.0"), ("JSONRPC", "0.3")}

    async def resolve() -> pb.AgentCard:
        from a2a.client import A2ACardResolver

        async with httpx.AsyncClient() as http:
            return await A2ACardResolver(http, stack["credentials"]["api_url"]).get_agent_card()

    card = asyncio.run(resolve())
    assert not card.capabilities.streaming and not card.capabilities.push_notifications
    assert card.capabilities.extended_agent_card and "bearer" in card.security_schemes
    # the local stack's card tenant is `local`: the deployed tool is a skill
    assert any(skill.name.startswith("calculator") for skill in card.skills), card.skills

    for binding in ("JSONRPC", "HTTP+JSON"):
        async def run(client):
            task = await send(client, message("calculate.add", {"numbers": [1, 2, 3.5]}))
            again = await client.get_task(pb.GetTaskRequest(id=task.id))
            return task, again

        task, again = with_client(stack, run, binding=binding)
        for answer in (task, again):
            assert answer.status.state == pb.TASK_STATE_COMPLETED, answer
            assert [a.name for a in answer.artifacts] == ["result"]
            result = MessageToDict(answer.artifacts[0].parts[0].data)
            assert result["success"] is True and result["result"] == {"operation": "add", "value": 6.5}
        # the task is the goal
        goal = stack["client"].get(f"/v1/goals/{task.id}").json()
        assert goal["status"] == "completed" and goal["goal_type"] == "calculate.add"


def test_a_failed_goal_is_a_failed_task(stack):
    task = with_client(stack, lambda client: send(client, message("calculate.divide", {"dividend": 1, "divisor": 0})))
    assert task.status.state == pb.TASK_STATE_FAILED
    assert "divide by zero" in task.status.message.parts[0].text


def test_cancel_a_running_task(stack):
    async def run(client):
        task = await send(client, message(UNHANDLED, text="nobody answers"))
        canceled = await client.cancel_task(pb.CancelTaskRequest(id=task.id))
        with pytest.raises(TaskNotCancelableError):
            await client.cancel_task(pb.CancelTaskRequest(id=task.id))
        got = await client.get_task(pb.GetTaskRequest(id=task.id))
        return task, canceled, got

    for binding in ("JSONRPC", "HTTP+JSON"):
        task, canceled, got = with_client(stack, run, binding=binding, polling=True)
        assert task.status.state == pb.TASK_STATE_WORKING
        assert canceled.status.state == got.status.state == pb.TASK_STATE_CANCELED
        assert stack["client"].get(f"/v1/goals/{task.id}").json()["status"] == "cancelled"


def test_protocol_0_3_client_is_answered(stack):
    def only_0_3(card: pb.AgentCard) -> None:
        legacy = [i for i in card.supported_interfaces if i.protocol_version == "0.3"]
        del card.supported_interfaces[:]
        card.supported_interfaces.extend(legacy)

    async def run(client):
        task = await send(client, message("calculate.multiply", {"numbers": [2, 21]}))
        got = await client.get_task(pb.GetTaskRequest(id=task.id))
        pending = await send(client, message(UNHANDLED, text="old client"))
        canceled = await client.cancel_task(pb.CancelTaskRequest(id=pending.id))
        return type(client._transport).__name__, task, got, canceled

    transport, task, got, canceled = with_client(stack, run, card_filter=only_0_3)
    assert transport == "CompatJsonRpcTransport"  # the SDK's 0.3 client: 0.3 method names, no A2A-Version 1.0
    assert task.status.state == got.status.state == pb.TASK_STATE_COMPLETED
    assert MessageToDict(got.artifacts[0].parts[0].data)["result"] == {"operation": "multiply", "value": 42}
    assert canceled.status.state == pb.TASK_STATE_CANCELED


def test_another_tenant_never_sees_the_tasks(stack, second_tenant_key):
    context_id = f"ctx-{uuid.uuid4()}"

    async def mine(client):
        msg = message(UNHANDLED, text="private")
        msg.context_id = context_id
        return await send(client, msg)

    task = with_client(stack, mine, polling=True)

    async def theirs(client):
        refused = []
        for call in (lambda: client.get_task(pb.GetTaskRequest(id=task.id)),
                     lambda: client.cancel_task(pb.CancelTaskRequest(id=task.id))):
            with pytest.raises(TaskNotFoundError):
                await call()
            refused.append(True)
        by_context = await client.list_tasks(pb.ListTasksRequest(context_id=context_id))
        everything = await client.list_tasks(pb.ListTasksRequest(page_size=100))
        return refused, by_context, everything

    for binding in ("JSONRPC", "HTTP+JSON"):
        refused, by_context, everything = with_client(stack, theirs, key=second_tenant_key, binding=binding)
        assert refused == [True, True]
        assert list(by_context.tasks) == [] and by_context.total_size == 0
        assert task.id not in {t.id for t in everything.tasks}

    async def owner(client):
        return await client.list_tasks(pb.ListTasksRequest(context_id=context_id))

    listed = with_client(stack, owner)
    assert [t.id for t in listed.tasks] == [task.id]
    assert listed.tasks[0].status.state == pb.TASK_STATE_WORKING  # untouched by the other tenant's cancel


def test_latency_send_message_against_the_goal_api(stack):
    """p50/p99 of a blocking SendMessage answered by the calculator, and of the same goal through the goal API
    (``POST /v1/goals`` then ``GET /v1/goals/{id}?wait=``), sequentially, after one warm-up of each."""
    rounds = 30
    api = stack["client"]

    def goal_api() -> float:
        start = time.perf_counter()
        created = api.post("/v1/goals", json={"goal_type": "calculate.add", "data": {"numbers": [1, 2]}})
        assert created.status_code == 202, created.text
        goal = api.get(f"/v1/goals/{created.json()['goal_id']}", params={"wait": 20}).json()
        assert goal["status"] == "completed", goal
        return time.perf_counter() - start

    async def a2a(client) -> list[float]:
        times = []
        for i in range(rounds + 1):
            start = time.perf_counter()
            task = await send(client, message("calculate.add", {"numbers": [1, 2]}))
            assert task.status.state == pb.TASK_STATE_COMPLETED, task
            if i:
                times.append(time.perf_counter() - start)
        return times

    goal_api()
    direct = [goal_api() for _ in range(rounds)]
    through_a2a = with_client(stack, a2a)

    def summary(times: list[float]) -> str:
        ordered = sorted(times)
        p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
        return f"p50 {statistics.median(ordered) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms (n={len(ordered)})"

    print(f"\nA2A SendMessage (blocking, JSON-RPC): {summary(through_a2a)}")
    print(f"goal API (POST /v1/goals + GET ?wait=): {summary(direct)}")
    assert len(through_a2a) == len(direct) == rounds
