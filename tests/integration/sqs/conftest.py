"""Fixtures of the SNS/SQS transport tests: moto's server (``ThreadedMotoServer`` on a free port, once per module),
boto3 clients on it, a fresh event topic per test, and in-process functions behind the local event source mapping.

Every test uses fresh tenant ids and its own topic, so tests sharing the server never see each other's messages.
Helpers reach the tests through the ``sq`` fixture (``--import-mode=importlib``).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from types import SimpleNamespace
from typing import Any, Callable

import pytest

from soorma.events import EventEnvelope
from soorma.functions.bridge import ExponentialBackoff, FunctionThrottled, InvokeResult
from soorma.functions.gateway.publisher import SnsPublisher
from soorma.local import sqs as sqs_resources
from soorma.local.esm import EventSourceMapping, Mapping
from soorma.testing import free_port

FAST_PAUSE = ExponentialBackoff(base_s=0.02, cap_s=0.1)


def new_id(prefix: str = "q") -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def envelope(tenant: str, event_type: str, topic: str = "action-requests", **data) -> EventEnvelope:
    return EventEnvelope(type=event_type, topic=topic, platform_tenant_id=tenant, data=data)


async def wait_until(predicate: Callable[[], bool], timeout_s: float = 10.0, interval_s: float = 0.02,
                     what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout_s}s")
        await asyncio.sleep(interval_s)


class RecordingFunction:
    """An in-process function: ``handler(event_id, record)`` per record; raising fails that item (partial batch
    response). Keeps every record it saw (``seen``: (event id, receive count)), the handled ones and the batches."""

    def __init__(self, handler: Callable[[str, dict], Any] | None = None, *, seconds: float = 0.0) -> None:
        self.handler = handler
        self.seconds = seconds
        self.seen: list[tuple[str, int]] = []
        self.handled: list[tuple[str, int]] = []
        self.batches: list[list[dict]] = []

    async def invoke(self, function_name: str, payload: bytes) -> InvokeResult:
        records = json.loads(payload)["Records"]
        self.batches.append(records)
        if self.seconds:
            await asyncio.sleep(self.seconds)
        failures = []
        for record in records:
            event_id = json.loads(record["body"])["id"]
            count = int(record["attributes"]["ApproximateReceiveCount"])
            self.seen.append((event_id, count))
            try:
                if self.handler is not None:
                    self.handler(event_id, record)
            except Exception:  # noqa: BLE001
                failures.append({"itemIdentifier": record["messageId"]})
            else:
                self.handled.append((event_id, count))
        return InvokeResult(json.dumps({"batchItemFailures": failures}).encode())

    def handled_ids(self) -> set[str]:
        return {e for e, _ in self.handled}


class ThrottledFunction:
    """Reserved concurrency ``limit``: a call beyond it raises FunctionThrottled (Lambda's 429)."""

    def __init__(self, inner, limit: int = 1) -> None:
        self.inner, self.limit = inner, limit
        self.running = 0
        self.throttles = 0

    async def invoke(self, function_name: str, payload: bytes):
        if self.running >= self.limit:
            self.throttles += 1
            raise FunctionThrottled("Rate Exceeded.")
        self.running += 1
        try:
            await asyncio.sleep(0.02)
            return await self.inner.invoke(function_name, payload)
        finally:
            self.running -= 1


def drain_queue(sqs, url: str) -> list[dict]:
    """Every message currently visible in ``url`` (received and deleted)."""
    out = []
    while True:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0,
                                  MessageAttributeNames=["All"], AttributeNames=["All"]).get("Messages", [])
        if not got:
            return out
        for message in got:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        out.extend(got)


def queue_depth(sqs, url: str) -> tuple[int, int]:
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]), int(attrs["ApproximateNumberOfMessagesNotVisible"])


@pytest.fixture(scope="module")
def moto_url():
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def aws(moto_url, monkeypatch):
    """``aws.sns``, ``aws.sqs`` clients on moto, ``aws.topic_arn`` (a fresh topic), ``aws.publisher`` (the gateway's
    SnsPublisher on it), ``aws.queue(...)`` (an agent queue + DLQ + filtered subscription)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    sns, sqs = sqs_resources.clients(moto_url)
    topic_arn = sqs_resources.ensure_topic(sns, new_id("events-"))

    def queue(tenant: str, agent: str, subscriptions, *, visibility_timeout_s: int = 1, max_receive_count: int = 3):
        return sqs_resources.ensure_agent_queue(
            sqs, sns, topic_arn, platform_tenant_id=tenant, agent=agent, subscriptions=subscriptions,
            visibility_timeout_s=visibility_timeout_s, max_receive_count=max_receive_count)

    return SimpleNamespace(sns=sns, sqs=sqs, topic_arn=topic_arn, url=moto_url,
                           publisher=SnsPublisher(topic_arn, client=sns), queue=queue)


@pytest.fixture
async def make_esm(aws):
    """``await make_esm(queue, function, **mapping_kw)``: a started local event source mapping (stopped after)."""
    started: list[EventSourceMapping] = []

    async def make(queue, function, *, name: str | None = None, **kw) -> EventSourceMapping:
        mapping = Mapping(function_name=name or f"fn-{queue.agent}", queue_url=queue.queue_url, **kw)
        esm = EventSourceMapping(aws.sqs, mapping, function, backoff=FAST_PAUSE, wait_time_s=1)
        await esm.start()
        started.append(esm)
        return esm

    yield make
    for esm in started:
        await esm.stop(drain_timeout_s=5)


@pytest.fixture
def sq() -> SimpleNamespace:
    return SimpleNamespace(new_id=new_id, envelope=envelope, wait_until=wait_until, RecordingFunction=RecordingFunction,
                           ThrottledFunction=ThrottledFunction, drain_queue=drain_queue, queue_depth=queue_depth,
                           free_port=free_port)
