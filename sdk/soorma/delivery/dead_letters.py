"""Dead letters of the JetStream delivery contract: how a message that failed ``max_deliveries`` times is stored in
stream ``SOORMA_DLQ`` (subject ``soorma-dlq.<platform_tenant_id>.<agent>``, the original body, the reason in
``Soorma-Dlq-*`` headers) and its goal notice published.

Shared by the platform's bridge and an agent run as a local process (:mod:`soorma.process`); listing and replaying
dead letters is the bridge's (:mod:`soorma.functions.bridge.dlq`, which documents the whole protocol).
"""

from __future__ import annotations

from datetime import UTC, datetime

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import PubAck

from soorma.goal_notices import dead_letter_notice
from soorma.jetstream import publish_envelope
from soorma.subjects import DLQ_STREAM, dlq_subject, event_id_of

from .route import Route

MAX_ERROR_CHARS = 1000


def clip(text: str, limit: int = MAX_ERROR_CHARS) -> str:
    text = " ".join(str(text).split())  # header-safe: no CR/LF, collapsed whitespace
    return text if len(text) <= limit else text[: limit - 3] + "..."


H_ERROR = "Soorma-Dlq-Error"
H_DELIVERIES = "Soorma-Dlq-Deliveries"
H_AGENT = "Soorma-Dlq-Agent"
H_FUNCTION = "Soorma-Dlq-Function"
H_PLATFORM_TENANT = "Soorma-Dlq-Platform-Tenant"
H_SUBJECT = "Soorma-Dlq-Subject"
H_STREAM = "Soorma-Dlq-Stream"
H_STREAM_SEQ = "Soorma-Dlq-Stream-Seq"
H_CONSUMER = "Soorma-Dlq-Consumer"
H_TIME = "Soorma-Dlq-Time"
H_EVENT_ID = "Soorma-Event-Id"
H_REPLAY_CONSUMER = "Soorma-Replay-Consumer"
H_REPLAY_OF = "Soorma-Replay-Of"  # on a replayed event: "<DLQ stream>:<DLQ seq>" it came from


def dlq_headers(msg: Msg, route: Route, error: str) -> dict[str, str]:
    meta = msg.metadata
    headers = {
        "Nats-Msg-Id": f"{meta.consumer}:{meta.sequence.stream}",
        H_ERROR: clip(error) or "unknown error",
        H_DELIVERIES: str(meta.num_delivered),
        H_AGENT: route.agent,
        H_FUNCTION: clip(route.function_name, 200),
        H_PLATFORM_TENANT: route.platform_tenant_id,
        H_SUBJECT: msg.subject,
        H_STREAM: meta.stream,
        H_STREAM_SEQ: str(meta.sequence.stream),
        H_CONSUMER: meta.consumer,
        H_TIME: datetime.now(UTC).isoformat(),
    }
    event_id = event_id_of((msg.headers or {}).get("Nats-Msg-Id"), route.platform_tenant_id)
    if event_id:
        headers[H_EVENT_ID] = clip(event_id, 200)
    return headers


async def dead_letter(js: JetStreamContext, msg: Msg, route: Route, error: str, *, timeout_s: float = 5.0) -> PubAck:
    """Store ``msg`` in ``SOORMA_DLQ`` and wait for the stream's acknowledgement, then publish the goal notice
    (:func:`soorma.goal_notices.dead_letter_notice`) when the event belongs to a goal, so the tracker ends the goal
    ``failed`` with the reason instead of leaving it ``running`` with nothing left to run it (docs/architecture.md,
    "Delivery semantics"). Raises if either is not stored; the bridge then retries the whole step later (both are
    de-duplicated by their ``Nats-Msg-Id``, so a repeat stores nothing twice) and only terminates the message after
    both succeeded."""
    ack = await js.publish(
        dlq_subject(route.platform_tenant_id, route.agent),
        msg.data,
        timeout=timeout_s,
        stream=DLQ_STREAM,
        headers=dlq_headers(msg, route, error),
    )
    meta = msg.metadata
    notice = dead_letter_notice(msg.data, agent=route.agent, error=error, deliveries=meta.num_delivered,
                                dead_letter_id=f"{meta.consumer}:{meta.sequence.stream}",
                                platform_tenant_id=route.platform_tenant_id)
    if notice is not None:
        await publish_envelope(js, notice, timeout_s=timeout_s)
    return ack
