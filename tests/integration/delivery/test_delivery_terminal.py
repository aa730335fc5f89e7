"""A malformed envelope is a terminal failure: the SDK's Lambda entry reports it in the partial batch response's
``soormaTerminalFailures`` extension and the bridge dead-letters it after exactly one delivery (real nats-server,
the real SDK entry point invoked in-process), while a good event in the same batch is handled and acknowledged."""

from __future__ import annotations

import asyncio
import json

import pytest

from soorma import Agent
from soorma.functions.bridge import InvokeResult, list_dead_letters
from soorma.payload import TERMINAL_FAILURES_FIELD
from soorma.subjects import subject

pytestmark = pytest.mark.timeout(60)


class SdkEntry:
    """Invokes an agent through its real Lambda entry (``agent(event, context)``), in a worker thread as a Lambda
    environment would run it; keeps every response and how often each message sequence was delivered."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.responses: list[dict] = []
        self.deliveries: dict[str, list[int]] = {}

    async def invoke(self, function_name: str, payload: bytes) -> InvokeResult:
        event = json.loads(payload)
        for record in event["Records"]:
            self.deliveries.setdefault(record["messageId"], []).append(
                int(record["attributes"]["ApproximateReceiveCount"]))
        response = await asyncio.to_thread(self.agent, event, None)
        self.responses.append(response)
        return InvokeResult(json.dumps(response).encode())


async def test_malformed_envelope_is_dead_lettered_after_one_delivery(js, make_bridge, dk):
    tenant = dk.new_id("term")
    handled: list[str] = []
    agent = Agent("parser", description="terminal failure probe")

    @agent.on_event("order.placed", topic="action-requests")
    async def placed(event, context):
        handled.append(event.id)

    route = dk.make_route(tenant, "parser", "order.placed", batch_size=10, max_deliveries=5)
    fn = SdkEntry(agent)
    bridge = await make_bridge([route], fn)
    subj = subject(tenant, "action-requests", "order.placed")
    bad = await js.publish(subj, b'{"type": "order.placed", "topic": "no-such-topic", "id": "not-an-envelope"}')
    worse = await js.publish(subj, b"{not json at all")
    good = dk.envelope(tenant, "order.placed", n=1)
    await dk.publish_all(js, [good])

    stats = lambda: bridge.stats()[route.consumer_name]  # noqa: E731
    await dk.wait_until(lambda: stats()["dead_lettered"] == 2 and stats()["succeeded"] == 1, timeout_s=20,
                        what="both malformed messages dead-lettered and the good event acknowledged")
    assert handled == [good.id]
    # the response stayed a valid SQS partial batch response, with the extension beside it
    reported = [r for r in fn.responses if r.get(TERMINAL_FAILURES_FIELD)]
    assert reported, fn.responses
    for response in reported:
        failed = {f["itemIdentifier"] for f in response["batchItemFailures"]}
        assert {t["itemIdentifier"] for t in response[TERMINAL_FAILURES_FIELD]} <= failed
        assert all("MalformedEventError" in t["reason"] for t in response[TERMINAL_FAILURES_FIELD])

    await asyncio.sleep(1.0)  # a retry (fast test backoff: <= 0.1 s) would have come by now
    assert fn.deliveries[str(bad.seq)] == [1] and fn.deliveries[str(worse.seq)] == [1]
    assert stats()["retried"] == 0 and stats()["terminal_failures"] == 2

    entries = await list_dead_letters(js, platform_tenant_id=tenant, agent="parser")
    assert len(entries) == 2
    assert {e.deliveries for e in entries} == {1}
    assert all("MalformedEventError" in (e.error or "") for e in entries)
    assert await dk.consumer_settled(js, route.consumer_name)
