"""Failure handling on the real nats-server: retries, partial batches, dead letters, throttling, slow functions."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

from soorma.functions.bridge import FunctionThrottled, InvokeResult, dlq
from soorma.subjects import DLQ_STREAM, STREAM, dlq_subject

pytestmark = pytest.mark.timeout(30)


async def settled(js, consumer: str) -> bool:
    info = await js.consumer_info(STREAM, consumer)
    return info.num_ack_pending == 0 and info.num_pending == 0


async def test_failure_is_redelivered_then_acked_after_success(js, publish, make_bridge, kit):
    tenant = kit.new_id()
    route = kit.make_route(tenant, "worker", "job")

    def handler(name, event):
        if event["Records"][0]["attributes"]["ApproximateReceiveCount"] == "1":
            raise ValueError("first try fails")

    invoker = kit.HandlerInvoker(handler)
    bridge = await make_bridge([route], invoker)
    (sent,) = await publish(kit.envelope(tenant, "job"))
    await kit.wait_until(lambda: bridge.stats()[route.consumer_name]["succeeded"] == 1)
    await asyncio.sleep(0.5)
    counts = [r["attributes"]["ApproximateReceiveCount"] for r in invoker.records()]
    assert counts == ["1", "2"]  # not acked after the failure, acked after the success: no third delivery
    assert invoker.event_ids() == [sent.id, sent.id]
    stats = bridge.stats()[route.consumer_name]
    assert (stats["retried"], stats["succeeded"], stats["dead_lettered"]) == (1, 1, 0)
    assert stats["failed_invocations"] == 1 and "first try fails" in stats["last_error"]
    assert await settled(js, route.consumer_name)


async def test_partial_batch_failure_retries_only_the_failed_item(js, publish, make_bridge, kit):
    """The function is a Powertools BatchProcessor handler, as the SDK's entry point is."""
    tenant = kit.new_id()
    route = kit.make_route(tenant, "worker", "job", batch_size=10, max_concurrency=1)
    sent = await publish(*(kit.envelope(tenant, "job", i=i) for i in range(3)))
    bad_id = sent[1].id
    handled: list[tuple[str, str]] = []

    def record_handler(record):
        envelope = json.loads(record.body)
        handled.append((envelope["id"], record.attributes.approximate_receive_count))
        if envelope["id"] == bad_id and record.attributes.approximate_receive_count == "1":
            raise RuntimeError("item 2 fails once")

    def handler(name, event):
        return process_partial_response(event, record_handler, BatchProcessor(event_type=EventType.SQS))

    invoker = kit.HandlerInvoker(handler)
    bridge = await make_bridge([route], invoker)  # started after publishing: the first fetch takes all three
    await kit.wait_until(lambda: bridge.stats()[route.consumer_name]["succeeded"] == 3)
    await asyncio.sleep(0.3)
    assert [len(event["Records"]) for _, event in invoker.calls] == [3, 1]
    assert invoker.event_ids()[3:] == [bad_id]
    assert handled[3:] == [(bad_id, "2")]
    stats = bridge.stats()[route.consumer_name]
    assert (stats["retried"], stats["failed_invocations"]) == (1, 0)
    assert await settled(js, route.consumer_name)


async def test_dead_letter_after_max_deliveries(js, publish, make_bridge, kit):
    tenant = kit.new_id()
    route = kit.make_route(tenant, "doomed", "job", max_deliveries=3)

    def handler(name, event):
        raise ValueError("boom")

    invoker = kit.HandlerInvoker(handler)
    bridge = await make_bridge([route], invoker)
    (sent,) = await publish(kit.envelope(tenant, "job"))
    await kit.wait_until(lambda: bridge.stats()[route.consumer_name]["dead_lettered"] == 1)
    await asyncio.sleep(0.5)
    assert [r["attributes"]["ApproximateReceiveCount"] for r in invoker.records()] == ["1", "2", "3"]

    dead = await js.get_last_msg(DLQ_STREAM, dlq_subject(tenant, "doomed"))
    assert json.loads(dead.data)["id"] == sent.id  # the original body, unchanged
    headers = dead.headers
    assert headers[dlq.H_ERROR] == "Unhandled: ValueError: boom"
    assert headers[dlq.H_DELIVERIES] == "3"
    assert headers[dlq.H_AGENT] == "doomed"
    assert headers[dlq.H_FUNCTION] == route.function_name
    assert headers[dlq.H_PLATFORM_TENANT] == tenant
    assert headers[dlq.H_SUBJECT] == f"soorma.{tenant}.action-requests.job"
    assert headers[dlq.H_STREAM] == STREAM
    assert headers[dlq.H_CONSUMER] == route.consumer_name
    assert headers[dlq.H_EVENT_ID] == sent.id
    seq = headers[dlq.H_STREAM_SEQ]
    assert headers["Nats-Msg-Id"] == f"{route.consumer_name}:{seq}"
    assert invoker.records()[0]["messageId"] == seq

    assert await settled(js, route.consumer_name)  # terminated: never redelivered
    stats = bridge.stats()[route.consumer_name]
    assert (stats["retried"], stats["dead_lettered"], stats["succeeded"]) == (2, 1, 0)


class FlakyInvoker:
    """Raises on its first ``failures`` calls (a failed invocation, not a function error), then returns null."""

    def __init__(self, failures: int, exc: Exception) -> None:
        self.failures, self.exc, self.calls = failures, exc, []

    async def invoke(self, function_name: str, payload: bytes) -> InvokeResult:
        self.calls.append((time.monotonic(), json.loads(payload)))
        if len(self.calls) <= self.failures:
            raise self.exc
        return InvokeResult(b"null")


async def test_invoker_exception_fails_the_whole_batch(js, publish, make_bridge, kit):
    tenant = kit.new_id()
    route = kit.make_route(tenant, "worker", "job", max_concurrency=1)
    await publish(kit.envelope(tenant, "job", i=1), kit.envelope(tenant, "job", i=2))
    invoker = FlakyInvoker(1, ConnectionError("runtime unreachable"))
    bridge = await make_bridge([route], invoker)
    await kit.wait_until(lambda: bridge.stats()[route.consumer_name]["succeeded"] == 2)
    first = invoker.calls[0][1]["Records"]
    assert len(first) == 2
    later = [r for _, e in invoker.calls[1:] for r in e["Records"]]
    assert sorted(r["messageId"] for r in later) == sorted(r["messageId"] for r in first)
    assert {r["attributes"]["ApproximateReceiveCount"] for r in later} == {"2"}
    stats = bridge.stats()[route.consumer_name]
    assert stats["retried"] == 2 and "ConnectionError: runtime unreachable" in stats["last_error"]
    assert await settled(js, route.consumer_name)


async def test_unparsable_response_fails_the_batch_but_null_and_empty_succeed(js, publish, make_bridge, kit):
    tenant = kit.new_id()
    route = kit.make_route(tenant, "worker", "job", max_concurrency=1)
    responses = [b"not json", b'{"statusCode": 200}', b"{}"]

    def handler(name, event):
        return responses[len(invoker.calls) - 1]

    invoker = kit.HandlerInvoker(handler)
    bridge = await make_bridge([route], invoker)
    await publish(kit.envelope(tenant, "job"))
    await kit.wait_until(lambda: bridge.stats()[route.consumer_name]["succeeded"] == 1)
    assert [r["attributes"]["ApproximateReceiveCount"] for r in invoker.records()] == ["1", "2", "3"]
    assert "no batchItemFailures" in bridge.stats()[route.consumer_name]["last_error"]
    assert await settled(js, route.consumer_name)


async def test_throttling_naks_pauses_and_never_dead_letters(js, publish, make_bridge, kit):
    from soorma.functions.bridge import ExponentialBackoff

    tenant = kit.new_id()
    route = kit.make_route(tenant, "worker", "job", max_deliveries=1, max_concurrency=2)
    invoker = FlakyInvoker(2, FunctionThrottled("429 TooManyRequestsException"))
    bridge = await make_bridge([route], invoker, backoff=ExponentialBackoff(base_s=0.3, cap_s=1.0))
    await publish(kit.envelope(tenant, "job"))
    await kit.wait_until(lambda: bridge.stats()[route.consumer_name]["succeeded"] == 1)
    times = [t for t, _ in invoker.calls]
    assert len(times) == 3
    assert times[1] - times[0] >= 0.15 * 0.9  # pause after the 1st throttle: [0.15, 0.3] s
    assert times[2] - times[1] >= 0.30 * 0.9  # after the 2nd: [0.3, 0.6] s
    stats = bridge.stats()[route.consumer_name]
    assert (stats["throttled"], stats["dead_lettered"], stats["retried"]) == (2, 0, 0)
    assert await settled(js, route.consumer_name)


async def test_slow_invocation_is_kept_alive_with_in_progress(js, publish, make_bridge, kit):
    """Ack wait 1.2 s, function takes 2.5 s: +WPI keeps the message from going to the second idle worker."""
    tenant = kit.new_id()
    route = kit.make_route(tenant, "slow", "job", timeout_s=1.0, max_concurrency=2)

    async def handler(name, event):
        await asyncio.sleep(2.5)

    invoker = kit.HandlerInvoker(handler)
    bridge = await make_bridge([route], invoker, ack_margin_s=0.2, invoke_grace_s=5.0)
    await publish(kit.envelope(tenant, "job"))
    await kit.wait_until(lambda: bridge.stats()[route.consumer_name]["succeeded"] == 1, timeout_s=10)
    await asyncio.sleep(1.5)
    assert len(invoker.calls) == 1
    assert await settled(js, route.consumer_name)


async def test_invocation_over_the_time_limit_counts_as_failed(js, publish, make_bridge, kit):
    tenant = kit.new_id()
    route = kit.make_route(tenant, "worker", "job", timeout_s=0.3, max_concurrency=1)

    async def handler(name, event):
        if len(invoker.calls) == 1:
            await asyncio.sleep(2)

    invoker = kit.HandlerInvoker(handler)
    bridge = await make_bridge([route], invoker, invoke_grace_s=0.1, ack_margin_s=5.0)
    await publish(kit.envelope(tenant, "job"))
    await kit.wait_until(lambda: bridge.stats()[route.consumer_name]["succeeded"] == 1)
    assert [r["attributes"]["ApproximateReceiveCount"] for r in invoker.records()] == ["1", "2"]
    assert "timed out" in bridge.stats()[route.consumer_name]["last_error"]


async def test_non_utf8_message_is_dead_lettered_without_invoking(js, make_bridge, kit):
    tenant = kit.new_id()
    route = kit.make_route(tenant, "worker", "job")
    invoker = kit.HandlerInvoker()
    bridge = await make_bridge([route], invoker)
    await js.publish(f"soorma.{tenant}.action-requests.job", b"\xff\xfe not text")
    await kit.wait_until(lambda: bridge.stats()[route.consumer_name]["dead_lettered"] == 1)
    dead = await js.get_last_msg(DLQ_STREAM, dlq_subject(tenant, "worker"))
    assert dead.data == b"\xff\xfe not text"
    assert "UTF-8" in dead.headers[dlq.H_ERROR]
    assert invoker.calls == []
    assert await settled(js, route.consumer_name)
