"""Stopping a bridge: in-flight work is finished and acked; what cannot finish in time comes back later."""

from __future__ import annotations

import asyncio
import time

import pytest

from soorma.subjects import STREAM

pytestmark = pytest.mark.timeout(30)


async def test_stop_drains_in_flight_invocations(js, publish, make_bridge, kit):
    tenant = kit.new_id()
    route = kit.make_route(tenant, "worker", "job")
    finished: list[str] = []

    async def handler(name, event):
        await asyncio.sleep(1.0)
        finished.extend(r["messageId"] for r in event["Records"])

    invoker = kit.HandlerInvoker(handler)
    bridge = await make_bridge([route], invoker)
    await publish(kit.envelope(tenant, "job"))
    await kit.wait_until(lambda: bridge.stats()[route.consumer_name]["in_flight"] == 1)
    started = time.monotonic()
    await bridge.stop(drain_timeout_s=10)
    assert time.monotonic() - started < 5
    assert len(finished) == 1  # the invocation ran to its end ...
    info = await js.consumer_info(STREAM, route.consumer_name)
    assert info.num_ack_pending == 0 and info.num_pending == 0  # ... and its ack was flushed before closing
    stats = bridge.stats()[route.consumer_name]
    assert stats["succeeded"] == 1 and stats["in_flight"] == 0 and stats["workers"] == 0

    await publish(kit.envelope(tenant, "job"))  # nothing fetches after stop
    await asyncio.sleep(0.5)
    assert len(invoker.calls) == 1
    assert (await js.consumer_info(STREAM, route.consumer_name)).num_pending == 1


async def test_stop_timeout_leaves_unfinished_messages_for_redelivery(js, publish, make_bridge, kit):
    tenant = kit.new_id()
    route = kit.make_route(tenant, "worker", "job", timeout_s=0.5)

    async def stuck(name, event):
        await asyncio.sleep(20)

    bridge = await make_bridge([route], kit.HandlerInvoker(stuck), ack_margin_s=0.3)
    (sent,) = await publish(kit.envelope(tenant, "job"))
    await kit.wait_until(lambda: bridge.stats()[route.consumer_name]["in_flight"] == 1)
    started = time.monotonic()
    await bridge.stop(drain_timeout_s=0.3)
    assert time.monotonic() - started < 3

    # Not acked, not NAKed: after the ack wait (0.8 s) a new bridge gets it again.
    invoker = kit.HandlerInvoker()
    await make_bridge([route], invoker, ack_margin_s=0.3)  # same route, same consumer settings
    await kit.wait_until(lambda: invoker.event_ids() == [sent.id], timeout_s=10)
    assert invoker.records()[0]["attributes"]["ApproximateReceiveCount"] == "2"
