"""The SNS/SQS resources: filter policies, queue names, idempotent creation with a redrive policy (on moto)."""

from __future__ import annotations

import json

import pytest

from soorma.local.sqs import ensure_agent_queue, filter_policy, queue_name_for
from soorma.subjects import InvalidSubjectToken


def test_filter_policy_shapes():
    assert filter_policy("acme", [("action-requests", "a.b"), ("action-requests", "c")]) == {
        "platform_tenant_id": ["acme"], "topic": ["action-requests"], "event_type": ["a.b", "c"]}
    assert filter_policy("acme", [("action-requests", "*"), ("action-requests", "x")]) == {
        "platform_tenant_id": ["acme"], "topic": ["action-requests"]}
    assert filter_policy("acme", [("action-requests", "x"), ("business-facts", "*")]) == {
        "platform_tenant_id": ["acme"],
        "$or": [{"topic": ["action-requests"], "event_type": ["x"]}, {"topic": ["business-facts"]}]}
    with pytest.raises(ValueError):
        filter_policy("acme", [])
    with pytest.raises(InvalidSubjectToken):
        filter_policy("a.b", [("action-requests", "x")])
    with pytest.raises(InvalidSubjectToken):
        filter_policy("acme", [("action-requests", "bad type")])


def test_queue_names_fit_sqs_limits():
    assert queue_name_for("acme", "planner") == "soorma-acme-planner"
    assert queue_name_for("acme", "planner", suffix="-dlq") == "soorma-acme-planner-dlq"
    long_a = queue_name_for("t" * 64, "a" * 64, suffix="-dlq")
    long_b = queue_name_for("t" * 64, "a" * 63 + "b", suffix="-dlq")
    assert len(long_a) <= 80 and long_a.endswith("-dlq") and long_a != long_b


def test_agent_queue_is_idempotent_and_redrives(aws):
    first = aws.queue("idem", "worker", [("action-requests", "x")], visibility_timeout_s=7, max_receive_count=4)
    again = ensure_agent_queue(aws.sqs, aws.sns, aws.topic_arn, platform_tenant_id="idem", agent="worker",
                               subscriptions=[("action-requests", "y")], visibility_timeout_s=9, max_receive_count=6)
    assert (again.queue_url, again.subscription_arn) == (first.queue_url, first.subscription_arn)
    attrs = aws.sqs.get_queue_attributes(QueueUrl=again.queue_url, AttributeNames=["All"])["Attributes"]
    assert attrs["VisibilityTimeout"] == "9"
    assert json.loads(attrs["RedrivePolicy"]) == {"deadLetterTargetArn": again.dlq_arn, "maxReceiveCount": 6}
    sub = aws.sns.get_subscription_attributes(SubscriptionArn=again.subscription_arn)["Attributes"]
    assert json.loads(sub["FilterPolicy"])["event_type"] == ["y"]
    assert sub["RawMessageDelivery"] == "true" and sub["FilterPolicyScope"] == "MessageAttributes"
    subs = aws.sns.list_subscriptions_by_topic(TopicArn=aws.topic_arn)["Subscriptions"]
    assert len([s for s in subs if s["Endpoint"] == again.queue_arn]) == 1

    tracker = ensure_agent_queue(aws.sqs, aws.sns, aws.topic_arn, platform_tenant_id="platform", agent="tracker",
                                 subscriptions=None)
    sub = aws.sns.get_subscription_attributes(SubscriptionArn=tracker.subscription_arn)["Attributes"]
    assert not sub.get("FilterPolicy")  # every event of every tenant
