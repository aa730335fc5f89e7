"""Routing on the real nats-server: tenant isolation, broadcast, queue groups across replicas, live route changes."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import pytest
from aws_lambda_powertools.utilities.parser.models import SqsModel

from soorma.functions.bridge import EVENT_SOURCE
from soorma.subjects import STREAM, filter_subject

pytestmark = pytest.mark.timeout(30)


async def test_payload_is_an_sqs_event_and_acked(js, publish, make_bridge, kit):
    tenant = kit.new_id()
    route = kit.make_route(tenant, "worker", "order.placed")
    invoker = kit.HandlerInvoker()
    sent = await publish(kit.envelope(tenant, "order.placed", n=1), kit.envelope(tenant, "order.placed", n=2))
    bridge = await make_bridge([route], invoker)
    await kit.wait_until(lambda: len(invoker.records()) == 2)
    await kit.wait_until(lambda: bridge.stats()[route.consumer_name]["succeeded"] == 2)

    _, event = invoker.calls[0]
    # Every field Powertools' SqsModel requires is there; only its eventSource literal ("aws:sqs") differs, by
    # contract ("soorma:nats"), so the model is checked with that one field swapped.
    SqsModel.model_validate({"Records": [{**r, "eventSource": "aws:sqs"} for r in event["Records"]]})
    record = invoker.records()[0]
    assert record["eventSource"] == EVENT_SOURCE
    assert record["eventSourceARN"] == f"{STREAM}/{route.consumer_name}"
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    sent_ms = int(record["attributes"]["SentTimestamp"])
    assert abs(sent_ms - datetime.fromisoformat(sent[0].time).timestamp() * 1000) < 5000
    assert record["messageAttributes"] == {}
    assert sorted(invoker.event_ids()) == sorted(e.id for e in sent)
    ids = [r["messageId"] for r in invoker.records()]
    assert len(set(ids)) == len(ids) and all(i.isdigit() for i in ids)
    assert json.loads(record["body"])["platform_tenant_id"] == tenant

    info = await js.consumer_info(STREAM, route.consumer_name)
    assert info.num_ack_pending == 0 and info.num_pending == 0
    assert info.config.ack_wait == pytest.approx(route.timeout_s + 10.0)
    assert info.config.max_deliver == -1
    assert info.config.max_ack_pending >= route.batch_size * route.max_concurrency
    stats = bridge.stats()[route.consumer_name]
    assert stats["delivered"] == 2 and stats["dead_lettered"] == 0 and stats["in_flight"] == 0
    assert stats["workers"] == route.max_concurrency and stats["last_latency_ms"] is not None


async def test_tenant_isolation_by_subject(publish, make_bridge, kit):
    tenant_a, tenant_b = kit.new_id("a"), kit.new_id("b")
    route_a = kit.make_route(tenant_a, "worker", "order.placed")
    route_b = kit.make_route(tenant_b, "worker", "order.placed")
    invoker = kit.HandlerInvoker()
    await make_bridge([route_a, route_b], invoker)

    sent_a = await publish(*(kit.envelope(tenant_a, "order.placed", i=i) for i in range(5)))
    await kit.wait_until(lambda: len(invoker.records()) == 5)
    await asyncio.sleep(0.5)
    assert sorted(invoker.event_ids(route_a.function_name)) == sorted(e.id for e in sent_a)
    assert invoker.records(route_b.function_name) == []

    sent_b = await publish(kit.envelope(tenant_b, "order.placed", i=99))
    await kit.wait_until(lambda: len(invoker.records(route_b.function_name)) == 1)
    assert invoker.event_ids(route_b.function_name) == [sent_b[0].id]
    for record in invoker.records(route_b.function_name):
        assert json.loads(record["body"])["platform_tenant_id"] == tenant_b
    assert len(invoker.records(route_a.function_name)) == 5


async def test_broadcast_to_two_agents_and_multi_filter(publish, make_bridge, kit):
    tenant = kit.new_id()
    planner = kit.make_route(tenant, "planner", "goal.submitted", "task.done")  # two filters, one consumer
    auditor = kit.make_route(tenant, "auditor", "*")  # every event type on the topic
    invoker = kit.HandlerInvoker()
    await make_bridge([planner, auditor], invoker)

    goal, done, other = await publish(
        kit.envelope(tenant, "goal.submitted"),
        kit.envelope(tenant, "task.done"),
        kit.envelope(tenant, "unrelated.thing"),
    )
    await kit.wait_until(lambda: len(invoker.records(planner.function_name)) == 2
                     and len(invoker.records(auditor.function_name)) == 3)
    await asyncio.sleep(0.3)
    assert sorted(invoker.event_ids(planner.function_name)) == sorted([goal.id, done.id])
    assert sorted(invoker.event_ids(auditor.function_name)) == sorted([goal.id, done.id, other.id])


async def test_two_replicas_split_one_consumer(publish, make_bridge, kit):
    tenant = kit.new_id()
    route = kit.make_route(tenant, "worker", "job", batch_size=2, max_concurrency=2)

    async def slow(name, event):
        await asyncio.sleep(0.05)

    first, second = kit.HandlerInvoker(slow), kit.HandlerInvoker(slow)
    await make_bridge([route], first, name="replica-1")
    await make_bridge([route], second, name="replica-2")
    sent = await publish(*(kit.envelope(tenant, "job", i=i) for i in range(40)))
    await kit.wait_until(lambda: len(first.records()) + len(second.records()) >= 40)
    await asyncio.sleep(0.3)
    got = first.event_ids() + second.event_ids()
    assert sorted(got) == sorted(e.id for e in sent)  # each event once, no duplicates
    assert first.records() and second.records()  # both replicas took a share


async def test_route_added_changed_and_removed_without_restart(js, publish, make_bridge, kit):
    tenant = kit.new_id()
    routes = kit.Routes()
    invoker = kit.HandlerInvoker()
    bridge = await make_bridge(routes, invoker)
    assert bridge.stats() == {}

    route = kit.make_route(tenant, "late", "ping")
    routes.items.append(route)
    (ping,) = await publish(kit.envelope(tenant, "ping"))
    await kit.wait_until(lambda: invoker.event_ids() == [ping.id], timeout_s=5)

    # Changed: another subject, bigger batches, more workers; applied in place.
    changed = kit.make_route(tenant, "late", "ping", "pong", batch_size=25, max_concurrency=3)
    routes.items[:] = [changed]
    await kit.wait_until(lambda: bridge.stats()[route.consumer_name]["workers"] == 3, timeout_s=5)
    info = await js.consumer_info(STREAM, route.consumer_name)
    assert sorted(info.config.filter_subjects) == sorted(changed.filter_subjects)
    assert info.config.max_ack_pending >= 75
    (pong,) = await publish(kit.envelope(tenant, "pong"))
    await kit.wait_until(lambda: pong.id in invoker.event_ids(), timeout_s=5)

    # Removed: workers stop, the durable consumer stays, later events wait in it.
    routes.items.clear()
    await kit.wait_until(lambda: bridge.stats()[route.consumer_name]["workers"] == 0, timeout_s=5)
    await asyncio.sleep(1.0)  # let a worker's last fetch run out
    calls = len(invoker.calls)
    await publish(kit.envelope(tenant, "ping"))
    await asyncio.sleep(1.0)
    assert len(invoker.calls) == calls
    info = await js.consumer_info(STREAM, route.consumer_name)
    assert info.num_pending == 1
    assert bridge.stats()[route.consumer_name]["active"] is False


async def test_deliver_from_skips_older_events(publish, make_bridge, kit):
    tenant = kit.new_id()
    (old,) = await publish(kit.envelope(tenant, "goal.submitted", when="before"))
    await asyncio.sleep(0.1)
    deployed_at = datetime.now(UTC)
    await asyncio.sleep(0.05)
    (new,) = await publish(kit.envelope(tenant, "goal.submitted", when="after"))

    fresh = kit.make_route(tenant, "fresh", "goal.submitted", deliver_from=deployed_at)
    everything = kit.make_route(tenant, "everything", "goal.submitted")  # deliver_from None → all stored events
    invoker = kit.HandlerInvoker()
    await make_bridge([fresh, everything], invoker)
    await kit.wait_until(lambda: len(invoker.records(fresh.function_name)) == 1
                     and len(invoker.records(everything.function_name)) == 2)
    await asyncio.sleep(0.3)
    assert invoker.event_ids(fresh.function_name) == [new.id]
    assert sorted(invoker.event_ids(everything.function_name)) == sorted([old.id, new.id])


async def test_existing_consumer_keeps_its_start_position(publish, make_bridge, js, kit):
    """A later deliver_from cannot move an existing consumer (JetStream forbids it): nothing is skipped."""
    tenant = kit.new_id()
    first = kit.make_route(tenant, "agent", "evt")
    invoker = kit.HandlerInvoker()
    bridge = await make_bridge([first], invoker)
    await bridge.stop()
    (missed,) = await publish(kit.envelope(tenant, "evt"))  # stored while no bridge runs
    later = kit.make_route(tenant, "agent", "evt", deliver_from=datetime.now(UTC))
    await make_bridge([later], invoker)
    await kit.wait_until(lambda: invoker.event_ids() == [missed.id], timeout_s=5)
    info = await js.consumer_info(STREAM, later.consumer_name)
    assert info.config.deliver_policy == "all"  # unchanged
    assert filter_subject(tenant, "action-requests", "evt") in info.config.filter_subjects


async def test_consumer_deleted_behind_the_bridge_is_recreated(js, publish, make_bridge, kit):
    tenant = kit.new_id()
    route = kit.make_route(tenant, "worker", "job")
    invoker = kit.HandlerInvoker()
    bridge = await make_bridge([route], invoker, info_interval_s=0.5)
    await js.delete_consumer(STREAM, route.consumer_name)
    await asyncio.sleep(1.0)
    (sent,) = await publish(kit.envelope(tenant, "job"))
    await kit.wait_until(lambda: invoker.event_ids() == [sent.id], timeout_s=10)
    assert bridge.stats()[route.consumer_name]["consumer_error"] is None
