"""The SNS/SQS transport on moto's server: the gateway's SnsPublisher → SNS topic → filtered SQS queue per agent
(with a redrive policy to its DLQ) → the local event source mapping → a function. The same delivery scenarios as
the NATS bridge: success, partial batch failure, poison → DLQ after maxReceiveCount while others flow, broadcast
and queue-group semantics, tenant isolation, a timed-out function, a throttled function, a poller that dies
mid-batch."""

from __future__ import annotations

import asyncio
import json
import textwrap
import time
from collections import Counter

import pytest
from aws_lambda_powertools.utilities.parser.models import SqsModel

from soorma.local import sqs as sqs_resources
from soorma.local.runtime import FunctionConfig, LocalLambda

pytestmark = pytest.mark.timeout(60)


async def publish(aws, *envelopes):
    def run():
        for env in envelopes:
            aws.publisher.publish(env)

    await asyncio.to_thread(run)
    return list(envelopes)


async def test_success_batches_and_lambda_record_shape(aws, make_esm, sq):
    tenant = sq.new_id("s")
    queue = aws.queue(tenant, "worker", [("action-requests", "order.placed")])
    fn = sq.RecordingFunction()
    esm = await make_esm(queue, fn, batch_size=10, max_concurrency=1)  # one poller: exact counts below
    sent = await publish(aws, *(sq.envelope(tenant, "order.placed", i=i) for i in range(25)))
    await sq.wait_until(lambda: len(fn.handled) == 25, what="25 handled")
    await sq.wait_until(lambda: esm.stats()["succeeded"] == 25)
    assert sorted(fn.handled_ids()) == sorted(e.id for e in sent)
    assert {n for _, n in fn.handled} == {1}
    assert all(1 <= len(b) <= 10 for b in fn.batches)
    SqsModel.model_validate({"Records": fn.batches[0]})  # Powertools' own model of Lambda's SQS event
    record = fn.batches[0][0]
    assert record["eventSource"] == "aws:sqs" and record["eventSourceARN"] == queue.queue_arn
    assert record["messageAttributes"]["platform_tenant_id"]["stringValue"] == tenant
    assert record["messageAttributes"]["event_type"] == {
        "stringValue": "order.placed", "binaryValue": None, "stringListValues": [], "binaryListValues": [],
        "dataType": "String"}
    assert json.loads(record["body"])["platform_tenant_id"] == tenant  # raw delivery: the envelope itself
    assert sq.queue_depth(aws.sqs, queue.queue_url) == (0, 0)
    stats = esm.stats()
    assert stats["failed"] == 0 and stats["delivery_latency_p50_ms"] is not None


async def test_batches_above_ten_are_gathered(aws, make_esm, sq):
    tenant = sq.new_id("b")
    queue = aws.queue(tenant, "bulk", [("action-requests", "*")])
    await publish(aws, *(sq.envelope(tenant, f"kind.{i % 3}", i=i) for i in range(60)))
    fn = sq.RecordingFunction()
    await make_esm(queue, fn, batch_size=30, max_concurrency=1, max_batching_window_s=1)
    await sq.wait_until(lambda: len(fn.handled) == 60, what="60 handled")
    assert [len(b) for b in fn.batches][:2] == [30, 30]


async def test_partial_failure_retries_only_the_failed_item(aws, make_esm, sq):
    tenant = sq.new_id("p")
    queue = aws.queue(tenant, "worker", [("action-requests", "job")], visibility_timeout_s=1)
    sent = await publish(aws, *(sq.envelope(tenant, "job", i=i) for i in range(5)))
    bad = sent[2].id
    failed_at: list[float] = []

    def handler(event_id, record):
        if event_id == bad and record["attributes"]["ApproximateReceiveCount"] == "1":
            failed_at.append(time.monotonic())
            raise ValueError("first try fails")

    fn = sq.RecordingFunction(handler)
    esm = await make_esm(queue, fn, batch_size=10, max_concurrency=1)
    await sq.wait_until(lambda: len(fn.handled) == 5, timeout_s=15, what="all handled")
    retried_at = time.monotonic()
    counts = Counter(e for e, _ in fn.seen)
    assert counts[bad] == 2 and all(counts[e.id] == 1 for e in sent if e.id != bad)
    assert (bad, 2) in fn.handled
    assert retried_at - failed_at[0] >= 0.9  # back only after the visibility timeout (1 s)
    assert esm.stats()["failed"] == 1 and esm.stats()["failed_invocations"] == 0
    await sq.wait_until(lambda: sq.queue_depth(aws.sqs, queue.queue_url) == (0, 0))


async def test_poison_goes_to_the_dlq_after_max_receive_count_while_others_flow(aws, make_esm, sq):
    tenant = sq.new_id("x")
    queue = aws.queue(tenant, "worker", [("action-requests", "job")], visibility_timeout_s=1, max_receive_count=3)
    poison = sq.envelope(tenant, "job", poison=True)
    behind = [sq.envelope(tenant, "job", i=i) for i in range(40)]
    fixed = False

    def handler(event_id, record):
        if event_id == poison.id and not fixed:
            raise RuntimeError("cannot parse")

    fn = sq.RecordingFunction(handler)
    await publish(aws, poison, *behind)
    esm = await make_esm(queue, fn, batch_size=10, max_concurrency=2)
    await sq.wait_until(lambda: fn.handled_ids() >= {e.id for e in behind}, timeout_s=10, what="others handled")
    assert max(n for e, n in fn.seen if e == poison.id) == 1  # the others did not wait for the poison's retries

    def in_dlq() -> list[dict]:
        return aws.sqs.receive_message(QueueUrl=queue.dlq_url, MaxNumberOfMessages=10, WaitTimeSeconds=0,
                                       VisibilityTimeout=0, AttributeNames=["All"]).get("Messages", [])

    dead: list[dict] = []
    deadline = time.monotonic() + 15
    while not dead and time.monotonic() < deadline:
        await asyncio.sleep(0.3)
        dead = await asyncio.to_thread(in_dlq)
    assert dead, "the poison never reached the dead-letter queue"
    assert json.loads(dead[0]["Body"])["id"] == poison.id
    assert sorted({n for e, n in fn.seen if e == poison.id}) == [1, 2, 3]  # maxReceiveCount receives, then the DLQ
    assert poison.id not in fn.handled_ids()
    # Each other event handled (at-least-once: a standard queue may, rarely, hand a message to two receives).
    assert set(Counter(e for e, _ in fn.handled)) == {e.id for e in behind}
    assert len(fn.handled) - len(behind) <= 3

    # After a fix, redrive the DLQ into the queue: the event is delivered.
    fixed = True
    moved = await asyncio.to_thread(sqs_resources.redrive, aws.sqs, queue.dlq_url, queue.queue_url)
    assert moved == 1
    await sq.wait_until(lambda: poison.id in fn.handled_ids(), timeout_s=10, what="poison handled after redrive")
    assert esm.stats()["failed"] == 3


async def test_broadcast_to_two_agents_and_tenant_isolation(aws, make_esm, sq):
    tenant_a, tenant_b = sq.new_id("a"), sq.new_id("b")
    planner = aws.queue(tenant_a, "planner", [("action-requests", "goal.submitted"), ("action-results", "task.done")])
    auditor = aws.queue(tenant_a, "auditor", [("action-requests", "*")])
    other = aws.queue(tenant_b, "planner", [("action-requests", "goal.submitted")])
    fns = {q.queue_url: sq.RecordingFunction() for q in (planner, auditor, other)}
    for q in (planner, auditor, other):
        await make_esm(q, fns[q.queue_url])

    goal, done, unrelated, wrong_topic = await publish(
        aws,
        sq.envelope(tenant_a, "goal.submitted"),
        sq.envelope(tenant_a, "task.done", topic="action-results"),
        sq.envelope(tenant_a, "unrelated.thing"),
        sq.envelope(tenant_a, "task.done"),  # right type, wrong topic for the planner
    )
    planner_fn, auditor_fn, other_fn = (fns[q.queue_url] for q in (planner, auditor, other))
    await sq.wait_until(lambda: len(planner_fn.handled) == 2 and len(auditor_fn.handled) == 3, what="routed")
    await asyncio.sleep(1.5)
    assert sorted(planner_fn.handled_ids()) == sorted([goal.id, done.id])
    assert sorted(auditor_fn.handled_ids()) == sorted([goal.id, unrelated.id, wrong_topic.id])
    assert other_fn.seen == []  # tenant B's queue never got tenant A's events
    # Each agent got each of its events (once; a standard queue may rarely hand one message to two receives).
    assert len(planner_fn.handled) - 2 <= 1 and len(auditor_fn.handled) - 3 <= 1

    (b_goal,) = await publish(aws, sq.envelope(tenant_b, "goal.submitted"))
    await sq.wait_until(lambda: other_fn.handled_ids() == {b_goal.id}, what="tenant B's own event")
    assert b_goal.id not in planner_fn.handled_ids()
    policy = json.loads(aws.sns.get_subscription_attributes(SubscriptionArn=planner.subscription_arn)
                        ["Attributes"]["FilterPolicy"])
    assert policy == {"platform_tenant_id": [tenant_a], "$or": [
        {"topic": ["action-requests"], "event_type": ["goal.submitted"]},
        {"topic": ["action-results"], "event_type": ["task.done"]}]}


async def test_two_pollers_of_one_queue_share_its_events(aws, make_esm, sq):
    tenant = sq.new_id("g")
    queue = aws.queue(tenant, "worker", [("action-requests", "job")], visibility_timeout_s=30)
    first, second = sq.RecordingFunction(seconds=0.02), sq.RecordingFunction(seconds=0.02)
    await make_esm(queue, first, batch_size=2, max_concurrency=2)
    await make_esm(queue, second, batch_size=2, max_concurrency=2)
    sent = await publish(aws, *(sq.envelope(tenant, "job", i=i) for i in range(40)))
    await sq.wait_until(lambda: len(first.handled) + len(second.handled) >= 40, what="40 handled")
    await asyncio.sleep(0.5)
    got = [e for e, _ in first.handled + second.handled]
    assert set(got) == {e.id for e in sent}  # shared between the two instances, every event handled ...
    assert len(got) - len(sent) <= 2  # ... once (SQS standard queues: at-least-once, a rare second copy)
    assert first.handled and second.handled


async def test_throttled_function_loses_nothing(aws, make_esm, sq):
    tenant = sq.new_id("t")
    queue = aws.queue(tenant, "busy", [("action-requests", "job")], visibility_timeout_s=5, max_receive_count=2)
    inner = sq.RecordingFunction()
    fn = sq.ThrottledFunction(inner, limit=1)
    sent = await publish(aws, *(sq.envelope(tenant, "job", i=i) for i in range(60)))
    esm = await make_esm(queue, fn, batch_size=5, max_concurrency=4)
    await sq.wait_until(lambda: inner.handled_ids() >= {e.id for e in sent}, timeout_s=30, what="all handled")
    stats = esm.stats()
    assert fn.throttles > 0 and stats["throttled"] > 0 and stats["failed"] == 0
    # Retried within the receive (Lambda's way): no batch went back to the queue, nothing reached the DLQ. (A standard
    # queue is at-least-once: moto, like SQS, can hand one message to two concurrent receives now and then.)
    assert stats["abandoned"] == 0, stats
    assert len(inner.handled) - len(sent) <= 3
    assert sq.drain_queue(aws.sqs, queue.dlq_url) == []


async def test_function_timeout_is_retried_after_the_visibility_timeout(aws, make_esm, sq, tmp_path):
    tenant = sq.new_id("o")
    queue = aws.queue(tenant, "slowpoke", [("action-requests", "job")], visibility_timeout_s=2, max_receive_count=5)
    code = tmp_path / "code"
    code.mkdir()
    (code / "fn.py").write_text(textwrap.dedent("""
        import json, os, time

        def handler(event, context):
            for record in event["Records"]:
                body = json.loads(record["body"])
                if body["data"].get("slow") and record["attributes"]["ApproximateReceiveCount"] == "1":
                    time.sleep(5)
            with open(os.environ["OUT"], "a") as out:
                for record in event["Records"]:
                    out.write(json.loads(record["body"])["id"] + " " + record["attributes"]["ApproximateReceiveCount"] + "\\n")
            return {"batchItemFailures": []}
    """))
    out = tmp_path / "handled.txt"
    runtime = LocalLambda(logs_dir=tmp_path / "logs")
    try:
        runtime.register(FunctionConfig("slowpoke", "fn.handler", str(code), {"OUT": str(out)}, timeout_s=1.0))
        sent = await publish(aws, *(sq.envelope(tenant, "job", i=i, slow=(i == 4)) for i in range(12)))
        esm = await make_esm(queue, runtime, name="slowpoke", batch_size=5, max_concurrency=2)

        def handled() -> list[tuple[str, str]]:
            return [tuple(line.split()) for line in out.read_text().splitlines()] if out.exists() else []

        await sq.wait_until(lambda: {e for e, _ in handled()} >= {e.id for e in sent}, timeout_s=30,
                            what="all handled")
        slow = sent[4].id
        assert [n for e, n in handled() if e == slow] == ["2"]
        assert esm.stats()["failed_invocations"] >= 1
        assert "Task timed out" in (tmp_path / "logs" / "slowpoke.log").read_text()
    finally:
        await runtime.close()


async def test_poller_killed_mid_batch_loses_nothing(aws, make_esm, sq):
    tenant = sq.new_id("k")
    queue = aws.queue(tenant, "worker", [("action-requests", "job")], visibility_timeout_s=1)
    slow = sq.RecordingFunction(seconds=0.5)
    sent = await publish(aws, *(sq.envelope(tenant, "job", i=i) for i in range(30)))
    first = await make_esm(queue, slow, batch_size=10, max_concurrency=2)
    await sq.wait_until(lambda: first.stats()["in_flight"] > 0, what="a batch in flight")
    first.kill()  # like a crash: nothing in flight gets deleted
    await asyncio.sleep(0.1)
    fn = sq.RecordingFunction()
    await make_esm(queue, fn, batch_size=10)
    await sq.wait_until(lambda: fn.handled_ids() >= {e.id for e in sent}, timeout_s=15, what="all handled")
    assert any(n >= 2 for _, n in fn.handled)  # what the dead poller held came back after the visibility timeout


async def test_publisher_errors_and_transport_setting(aws, monkeypatch):
    from soorma.functions.gateway.publisher import (
        NatsPublisher,
        PayloadTooLarge,
        PublishError,
        SnsPublisher,
        publisher_from_env,
    )
    from soorma.subjects import InvalidSubjectToken

    with pytest.raises(InvalidSubjectToken):
        aws.publisher.publish(sq_envelope("t1", "bad type!"))
    with pytest.raises(PayloadTooLarge):
        aws.publisher.publish(sq_envelope("t1", "big", blob="x" * 300_000))
    missing = SnsPublisher(aws.topic_arn.rsplit(":", 1)[0] + ":no-such-topic", client=aws.sns)
    with pytest.raises(PublishError):
        missing.publish(sq_envelope("t1", "ok"))

    monkeypatch.delenv("SOORMA_EVENT_TRANSPORT", raising=False)
    assert isinstance(publisher_from_env(), NatsPublisher)  # the default
    monkeypatch.setenv("SOORMA_EVENT_TRANSPORT", "sns")
    monkeypatch.setenv("SOORMA_SNS_TOPIC_ARN", aws.topic_arn)
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws.url)
    publisher = publisher_from_env()
    assert isinstance(publisher, SnsPublisher) and publisher.topic_arn == aws.topic_arn
    publisher.publish(sq_envelope("t1", "ok"))  # through boto3's own endpoint resolution (AWS_ENDPOINT_URL)
    monkeypatch.setenv("SOORMA_EVENT_TRANSPORT", "kafka")
    with pytest.raises(RuntimeError):
        publisher_from_env()


def sq_envelope(tenant, event_type, **data):
    from soorma.events import EventEnvelope

    return EventEnvelope(type=event_type, topic="action-requests", platform_tenant_id=tenant, data=data)
