"""The gateway's publisher for ``transport=sqs``: one SNS topic, one filtered SQS queue per agent.

Each envelope is published as the raw message body with three String message attributes that the agents'
subscription filter policies match: ``platform_tenant_id``, ``topic`` and ``event_type`` (DESIGN.md "Subjects": the
platform tenant is part of the route, so one tenant's events never reach another tenant's queue). The same identifier
checks as NATS subjects apply, so both transports accept and refuse the same events.

``soorma.infra.runtime.sns.handler`` is the gateway's entry under ``transport=sqs``: the gateway's own FastAPI app
(:func:`soorma.functions.gateway.app.create_app`) with this publisher instead of the NATS one.
"""

from __future__ import annotations

import os
from typing import Any

from soorma.events import EventEnvelope
from soorma.subjects import subject

TOPIC_ARN_ENV = "SOORMA_EVENTS_TOPIC_ARN"
# SNS's maximum message size (message body plus attributes).
MAX_MESSAGE_BYTES = 256 * 1024


def message_attributes(envelope: EventEnvelope) -> dict[str, dict[str, str]]:
    topic = envelope.topic.value if hasattr(envelope.topic, "value") else str(envelope.topic)
    return {
        "platform_tenant_id": {"DataType": "String", "StringValue": str(envelope.platform_tenant_id)},
        "topic": {"DataType": "String", "StringValue": topic},
        "event_type": {"DataType": "String", "StringValue": envelope.type},
    }


class SnsPublisher:
    """A synchronous publisher with the gateway's ``Publisher`` protocol (``publish(envelope)``)."""

    def __init__(self, topic_arn: str, client: Any = None) -> None:
        self.topic_arn = topic_arn
        self._client = client

    @classmethod
    def from_env(cls) -> "SnsPublisher":
        arn = os.environ.get(TOPIC_ARN_ENV)
        if not arn:
            raise RuntimeError(f"{TOPIC_ARN_ENV} is not set: the gateway has no event topic")
        return cls(arn)

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3

            self._client = boto3.client("sns")
        return self._client

    def publish(self, envelope: EventEnvelope) -> None:
        from soorma.functions.gateway.publisher import PayloadTooLarge, PublishError

        if not envelope.platform_tenant_id:
            raise ValueError("an envelope needs platform_tenant_id before it is published")
        attributes = message_attributes(envelope)
        subject(envelope.platform_tenant_id, attributes["topic"]["StringValue"], envelope.type)  # same checks as NATS
        body = envelope.to_json()
        size = len(body.encode()) + sum(len(k) + len(v["StringValue"]) + 6 for k, v in attributes.items())
        if size > MAX_MESSAGE_BYTES:
            raise PayloadTooLarge(f"event of {size} bytes exceeds the event bus's maximum payload")
        try:
            self.client.publish(TopicArn=self.topic_arn, Message=body, MessageAttributes=attributes)
        except Exception as exc:  # noqa: BLE001 - any SNS/botocore failure is the bus being unavailable
            raise PublishError(f"event bus unavailable: {type(exc).__name__}: {exc}") from exc


def _create_app():
    from soorma.functions.gateway.app import create_app

    return create_app(publisher=SnsPublisher.from_env())


def _make_handler():
    from soorma.service import lazy_mangum_handler

    return lazy_mangum_handler(_create_app)


handler = _make_handler()
