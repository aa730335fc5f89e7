"""The SNS/SQS transport's resources, created with boto3 against any SNS/SQS endpoint (moto's server locally, the
real services in an account): the event topic, one queue per agent with its dead-letter queue (redrive policy), and
the agent's subscription with a filter policy on ``platform_tenant_id``, ``topic`` and ``event_type``.

The shapes match the CDK app's (``soorma.infra.platform.SoormaPlatform.subscribe``, ``soorma.infra.agent
.filter_policy``): raw message delivery (the SQS body is the envelope JSON, the routing keys are message attributes,
set by :class:`soorma.functions.gateway.publisher.SnsPublisher`), filter policy scope ``MessageAttributes``, and
``maxReceiveCount`` = the agent's maximum deliveries. Filter policy semantics:
https://docs.aws.amazon.com/sns/latest/dg/sns-subscription-filter-policies.html; redrive:
https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-dead-letter-queues.html.

Every function is idempotent (create calls return the existing resource), so the stack or a test can call them on
every start.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Iterable

from soorma.subjects import check_event_type, check_identifier

CATCH_ALL = "*"
DEFAULT_TOPIC = "soorma-events"
_QUEUE_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def filter_policy(platform_tenant_id: str, subscriptions: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """The subscription filter policy (message attributes) for an agent's ``(topic, event_type)`` subscriptions.

    Always scoped to the platform tenant, so one tenant's events never reach another tenant's queue. ``"*"`` takes
    every event type of its topic. One topic gives ``{"platform_tenant_id": [t], "topic": [topic], "event_type":
    [...]}``; several give an ``$or`` of such groups, so a type subscribed on one topic does not match on another.
    """
    check_identifier(platform_tenant_id, "platform tenant id")
    by_topic: dict[str, list[str]] = defaultdict(list)
    for topic, event_type in subscriptions:
        check_identifier(str(topic), "topic")
        if event_type != CATCH_ALL:
            check_event_type(event_type)
        types = by_topic[str(topic)]
        if event_type not in types:
            types.append(event_type)
    if not by_topic:
        raise ValueError("an agent with no subscriptions cannot be routed any event")
    groups = []
    for topic, types in by_topic.items():
        group: dict[str, Any] = {"topic": [topic]}
        if CATCH_ALL not in types:
            group["event_type"] = types
        groups.append(group)
    policy: dict[str, Any] = {"platform_tenant_id": [platform_tenant_id]}
    if len(groups) == 1:
        policy.update(groups[0])
    else:
        policy["$or"] = groups
    return policy


def queue_name_for(platform_tenant_id: str, agent: str, *, suffix: str = "") -> str:
    """``soorma-<tenant>-<agent>[suffix]`` within SQS's 80-character limit (a hash keeps long pairs unique)."""
    base = _QUEUE_UNSAFE.sub("_", f"soorma-{platform_tenant_id}-{agent}")
    room = 80 - len(suffix)
    if len(base) > room:
        digest = hashlib.sha256(f"{platform_tenant_id}\0{agent}".encode()).hexdigest()[:10]
        base = f"{base[:room - 11]}-{digest}"
    return base + suffix


@dataclass(frozen=True)
class AgentQueue:
    """One agent's queue, its dead-letter queue, and its subscription to the event topic."""

    platform_tenant_id: str
    agent: str
    queue_url: str
    queue_arn: str
    dlq_url: str
    dlq_arn: str
    subscription_arn: str | None
    visibility_timeout_s: int
    max_receive_count: int


def clients(endpoint_url: str | None = None, *, region: str = "us-east-1", max_pool_connections: int = 32):
    """``(sns, sqs)`` boto3 clients for ``endpoint_url`` (``None``: boto3's own resolution, ``AWS_ENDPOINT_URL``).
    Without credentials in the environment they use dummy ones (moto accepts anything)."""
    import os

    import boto3
    from botocore.config import Config

    config = Config(max_pool_connections=max_pool_connections, retries={"max_attempts": 3, "mode": "standard"})
    kw: dict[str, Any] = {"region_name": region, "config": config}
    if endpoint_url:
        kw["endpoint_url"] = endpoint_url
    if not os.environ.get("AWS_ACCESS_KEY_ID") and endpoint_url:
        kw.update(aws_access_key_id="local", aws_secret_access_key="local")
    return boto3.client("sns", **kw), boto3.client("sqs", **kw)


def ensure_topic(sns, name: str = DEFAULT_TOPIC) -> str:
    """The event topic's ARN (``CreateTopic`` is idempotent)."""
    return sns.create_topic(Name=name)["TopicArn"]


def _queue(sqs, name: str, attributes: dict[str, str]) -> tuple[str, str]:
    try:
        url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    except sqs.exceptions.QueueNameExists:  # exists with other settings (CreateQueue refuses): update it
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        sqs.set_queue_attributes(QueueUrl=url, Attributes=attributes)
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn


def ensure_agent_queue(
    sqs,
    sns,
    topic_arn: str,
    *,
    platform_tenant_id: str,
    agent: str,
    subscriptions: Iterable[tuple[str, str]] | None,
    visibility_timeout_s: int = 30,
    max_receive_count: int = 5,
    dlq_retention_s: int = 14 * 24 * 3600,
) -> AgentQueue:
    """Create (or update) the agent's queue and dead-letter queue and subscribe the queue to ``topic_arn``.

    ``subscriptions`` ``None`` subscribes without a filter policy (every event of every tenant: the tracker).
    ``visibility_timeout_s`` should be at least 6 × the function's timeout (Lambda's guidance);
    ``max_receive_count`` is how many receives a message gets before SQS moves it to the dead-letter queue.
    """
    check_identifier(platform_tenant_id, "platform tenant id")
    check_identifier(agent, "agent name")
    if max_receive_count < 1:
        raise ValueError("max_receive_count must be >= 1")
    dlq_url, dlq_arn = _queue(sqs, queue_name_for(platform_tenant_id, agent, suffix="-dlq"),
                              {"MessageRetentionPeriod": str(dlq_retention_s)})
    queue_url, queue_arn = _queue(sqs, queue_name_for(platform_tenant_id, agent), {
        "VisibilityTimeout": str(int(visibility_timeout_s)),
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(max_receive_count)}),
        "Policy": json.dumps({
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Allow", "Principal": {"Service": "sns.amazonaws.com"}, "Action": "sqs:SendMessage",
                "Resource": "*", "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}},
            }],
        }),
    })
    attributes = {"RawMessageDelivery": "true"}
    if subscriptions is not None:
        attributes["FilterPolicyScope"] = "MessageAttributes"  # before the policy: it is validated per scope
        attributes["FilterPolicy"] = json.dumps(filter_policy(platform_tenant_id, subscriptions))
    subscription_arn = _subscribe(sns, topic_arn, queue_arn, attributes)
    return AgentQueue(platform_tenant_id, agent, queue_url, queue_arn, dlq_url, dlq_arn, subscription_arn,
                      int(visibility_timeout_s), max_receive_count)


def ensure_parked_queue(sqs, *, platform_tenant_id: str, agent: str,
                        retention_s: int = 14 * 24 * 3600) -> tuple[str, str]:
    """``(url, arn)`` of the agent's parked queue ``soorma-<tenant>-<agent>-parked``: where the dead-letter function
    (:mod:`soorma.functions.tracker.dead_letters`) moves each dead letter after noticing its goal, and where ``soorma
    dlq list|replay`` read them. No redrive policy and nothing consumes it: messages rest there until replayed or
    until the retention (14 days, SQS's maximum) runs out."""
    check_identifier(platform_tenant_id, "platform tenant id")
    check_identifier(agent, "agent name")
    return _queue(sqs, queue_name_for(platform_tenant_id, agent, suffix="-parked"),
                  {"MessageRetentionPeriod": str(retention_s)})


def _subscribe(sns, topic_arn: str, queue_arn: str, attributes: dict[str, str]) -> str | None:
    existing = None
    paginator = sns.get_paginator("list_subscriptions_by_topic")
    for page in paginator.paginate(TopicArn=topic_arn):
        for sub in page.get("Subscriptions", []):
            if sub.get("Protocol") == "sqs" and sub.get("Endpoint") == queue_arn:
                existing = sub["SubscriptionArn"]
    if existing is None:
        return sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn, Attributes=attributes,
                             ReturnSubscriptionArn=True)["SubscriptionArn"]
    for name, value in attributes.items():  # an existing subscription takes the new filter
        sns.set_subscription_attributes(SubscriptionArn=existing, AttributeName=name, AttributeValue=value)
    if "FilterPolicy" not in attributes:
        current = sns.get_subscription_attributes(SubscriptionArn=existing)["Attributes"]
        if current.get("FilterPolicy"):
            sns.set_subscription_attributes(SubscriptionArn=existing, AttributeName="FilterPolicy",
                                            AttributeValue="")
    return existing


def redrive(sqs, dlq_url: str, queue_url: str, *, limit: int | None = None) -> int:
    """Move messages from a dead-letter queue back to its queue (body and message attributes kept); returns how
    many moved. The SQS counterpart of ``soorma dlq replay`` (in AWS, ``StartMessageMoveTask`` does the same)."""
    moved = 0
    while limit is None or moved < limit:
        batch = min(10, limit - moved) if limit is not None else 10
        got = sqs.receive_message(QueueUrl=dlq_url, MaxNumberOfMessages=batch, MessageAttributeNames=["All"],
                                  WaitTimeSeconds=0).get("Messages", [])
        if not got:
            break
        for message in got:
            kw: dict[str, Any] = {"QueueUrl": queue_url, "MessageBody": message["Body"]}
            if message.get("MessageAttributes"):
                kw["MessageAttributes"] = message["MessageAttributes"]
            sqs.send_message(**kw)
            sqs.delete_message(QueueUrl=dlq_url, ReceiptHandle=message["ReceiptHandle"])
            moved += 1
    return moved
