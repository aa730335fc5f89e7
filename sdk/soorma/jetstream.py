"""JetStream plumbing shared by the gateway (publishing), the bridge (consuming) and local processes.

Streams: ``SOORMA_EVENTS`` on ``soorma.>`` (file storage, 7 days) and ``SOORMA_DLQ`` on ``soorma-dlq.>`` (30 days).
Publishing sets ``Nats-Msg-Id`` to ``<platform_tenant_id>:<envelope id>`` (:func:`soorma.subjects.message_id`), so
JetStream's duplicate window drops a retried publish of the same event
(https://docs.nats.io/using-nats/developer/develop_jetstream/model_deep_dive#message-deduplication) but never one
tenant's event because another tenant used its id first (the window is per stream, not per subject).
Requires ``nats-py`` (the ``functions`` extra).
"""

from __future__ import annotations

from nats.js import JetStreamContext
from nats.js.api import PubAck, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import BadRequestError

from soorma.events import EventEnvelope
from soorma.subjects import DLQ_STREAM, DLQ_SUBJECTS, STREAM, STREAM_SUBJECTS, message_id, subject

DAY_S = 24 * 3600
DUPLICATE_WINDOW_S = 120


async def ensure_streams(js: JetStreamContext) -> None:
    """Create the two streams if they are missing (idempotent; an existing stream is left as it is)."""
    for name, subjects, max_age in (
        (STREAM, [STREAM_SUBJECTS], 7 * DAY_S),
        (DLQ_STREAM, [DLQ_SUBJECTS], 30 * DAY_S),
    ):
        config = StreamConfig(
            name=name,
            subjects=subjects,
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            max_age=max_age,
            duplicate_window=DUPLICATE_WINDOW_S,
        )
        try:
            await js.add_stream(config)
        except BadRequestError as exc:
            # 10058: a stream of that name exists with a different config; keep the operator's settings.
            if getattr(exc, "err_code", None) != 10058:
                raise


def envelope_message(envelope: EventEnvelope) -> tuple[str, bytes, dict[str, str]]:
    """``(subject, payload, headers)`` of ``envelope`` as it is published: its subject, its JSON, and ``Nats-Msg-Id``.
    Raises ``soorma.subjects.InvalidSubjectToken`` if the tenant, topic or type cannot form a subject, ``ValueError``
    without a platform tenant."""
    if not envelope.platform_tenant_id:
        raise ValueError("an envelope needs platform_tenant_id before it is published")
    topic = envelope.topic.value if hasattr(envelope.topic, "value") else str(envelope.topic)
    return (subject(envelope.platform_tenant_id, topic, envelope.type), envelope.to_json().encode(),
            {"Nats-Msg-Id": message_id(envelope.platform_tenant_id, envelope.id)})


async def publish_envelope(js: JetStreamContext, envelope: EventEnvelope, *, timeout_s: float = 5.0) -> PubAck:
    """Publish one envelope to its subject and wait for the stream's acknowledgement.

    Returns the ``PubAck``: ``ack.duplicate`` is true when the stream already held a message with this
    ``Nats-Msg-Id`` (the same tenant's event id) inside its duplicate window and did not store this one (the
    acknowledgement's ``"duplicate": true``, https://docs.nats.io/using-nats/developer/develop_jetstream/model_deep_dive#message-deduplication).
    Raises ``soorma.subjects.InvalidSubjectToken`` if the tenant, topic or type cannot form a subject, and
    ``nats.errors.TimeoutError`` / ``nats.js.errors.APIError`` when JetStream does not store it.
    """
    name, payload, headers = envelope_message(envelope)
    return await js.publish(name, payload, timeout=timeout_s, headers=headers)
