"""Fixtures of the SNS/SQS transport tests: moto's server (``ThreadedMotoServer`` on a free port, once per module),
boto3 clients on it, a fresh event topic per test, and in-process functions behind the local event source mapping.

Every test uses fresh tenant ids and its own topic, so tests sharing the server never see each other's messages.
Helpers reach the tests through the ``sq`` fixture (``--import-mode=importlib``), the shared ones from
``tests/integration/conftest.py``.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from soorma.functions.bridge import ExponentialBackoff
from soorma.functions.gateway.publisher import SnsPublisher
from soorma.local import sqs as sqs_resources
from soorma.local.esm import EventSourceMapping, Mapping
from soorma.testing import free_port

FAST_PAUSE = ExponentialBackoff(base_s=0.02, cap_s=0.1)


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
def aws(moto_url, monkeypatch, bus_kit):
    """``aws.sns``, ``aws.sqs`` clients on moto, ``aws.topic_arn`` (a fresh topic), ``aws.publisher`` (the gateway's
    SnsPublisher on it), ``aws.queue(...)`` (an agent queue + DLQ + filtered subscription)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    sns, sqs = sqs_resources.clients(moto_url)
    topic_arn = sqs_resources.ensure_topic(sns, bus_kit.new_id("events-"))

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
def sq(bus_kit) -> SimpleNamespace:
    """The shared helpers (``tests/integration/conftest.py``) and the ones above."""
    return SimpleNamespace(**vars(bus_kit), drain_queue=drain_queue, queue_depth=queue_depth)
