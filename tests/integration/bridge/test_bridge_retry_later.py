"""Issue 16, "waking up": a delivery the function could not serve because the platform was unavailable
(``soormaRetryLater``) is redelivered without counting toward ``max_deliveries``, on the real nats-server."""

from __future__ import annotations

import asyncio

import pytest

from soorma.delivery.backoff import ExponentialBackoff
from soorma.payload import with_retry_later

pytestmark = pytest.mark.timeout(30)


async def test_retry_later_deliveries_do_not_dead_letter(js, publish, make_bridge, kit):
    tenant = kit.new_id()
    route = kit.make_route(tenant, "waker", "job", max_deliveries=2)
    unavailable_for = 5  # deliveries: more than max_deliveries

    def handler(name, event):
        record = event["Records"][0]
        if int(record["attributes"]["ApproximateReceiveCount"]) <= unavailable_for:
            return with_retry_later({"batchItemFailures": []}, {record["messageId"]: 0.0})
        return {"batchItemFailures": []}

    invoker = kit.HandlerInvoker(handler)
    bridge = await make_bridge([route], invoker, unavailable_backoff=ExponentialBackoff(0.01, 0.05))
    await publish(kit.envelope(tenant, "job"))
    await kit.wait_until(lambda: bridge.stats()[route.consumer_name]["succeeded"] == 1)
    stats = bridge.stats()[route.consumer_name]
    assert stats["dead_lettered"] == 0
    assert stats["retried_unavailable"] == unavailable_for
    assert [r["attributes"]["ApproximateReceiveCount"] for r in invoker.records()] == ["1", "2", "3", "4", "5", "6"]


async def test_an_ordinary_failure_after_excused_deliveries_still_has_its_deliveries(js, publish, make_bridge, kit):
    tenant = kit.new_id()
    route = kit.make_route(tenant, "waker2", "job", max_deliveries=2)

    def handler(name, event):
        record = event["Records"][0]
        count = int(record["attributes"]["ApproximateReceiveCount"])
        if count <= 3:
            return with_retry_later({"batchItemFailures": []}, {record["messageId"]: 0.0})
        if count == 4:
            raise RuntimeError("a real failure")  # counted: 1 of 2
        return None

    invoker = kit.HandlerInvoker(handler)
    bridge = await make_bridge([route], invoker, unavailable_backoff=ExponentialBackoff(0.01, 0.05))
    await publish(kit.envelope(tenant, "job"))
    await kit.wait_until(lambda: bridge.stats()[route.consumer_name]["succeeded"] == 1)
    stats = bridge.stats()[route.consumer_name]
    assert (stats["dead_lettered"], stats["retried"], stats["retried_unavailable"]) == (0, 1, 3)


async def test_retry_later_is_counted_once_the_message_is_too_old(js, publish, make_bridge, kit):
    tenant = kit.new_id()
    route = kit.make_route(tenant, "waker3", "job", max_deliveries=2)

    def handler(name, event):
        record = event["Records"][0]
        return with_retry_later({"batchItemFailures": []}, {record["messageId"]: 0.0})

    invoker = kit.HandlerInvoker(handler)
    bridge = await make_bridge([route], invoker, unavailable_backoff=ExponentialBackoff(0.01, 0.05),
                               unavailable_max_age_s=0.0)
    await publish(kit.envelope(tenant, "job"))
    await kit.wait_until(lambda: bridge.stats()[route.consumer_name]["dead_lettered"] == 1)
    await asyncio.sleep(0.2)
    assert len(invoker.records()) == 2
