"""Dead letters: a message that failed ``max_deliveries`` times is copied to stream ``SOORMA_DLQ`` and terminated.

Subject ``soorma-dlq.<platform_tenant_id>.<agent>`` (``soorma.subjects.dlq_subject``); body = the original message
data, unchanged; the reason travels in headers. ``Nats-Msg-Id`` is ``<consumer>:<stream seq>``, so if the bridge
publishes the dead letter but the following ``+TERM`` is lost and the message comes back within the DLQ stream's
duplicate window (120 s), the second copy is dropped by JetStream's de-duplication
(https://docs.nats.io/using-nats/developer/develop_jetstream/model_deep_dive#message-deduplication).
The original event id (the event's own ``Nats-Msg-Id``) is kept in ``Soorma-Event-Id``.
"""

from __future__ import annotations

from datetime import datetime, timezone

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import PubAck

from soorma.subjects import DLQ_STREAM, dlq_subject

from .payload import clip
from .types import Route

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
        H_TIME: datetime.now(timezone.utc).isoformat(),
    }
    event_id = (msg.headers or {}).get("Nats-Msg-Id")
    if event_id:
        headers[H_EVENT_ID] = clip(event_id, 200)
    return headers


async def dead_letter(js: JetStreamContext, msg: Msg, route: Route, error: str, *, timeout_s: float = 5.0) -> PubAck:
    """Store ``msg`` in ``SOORMA_DLQ`` and wait for the stream's acknowledgement (raises if it is not stored)."""
    return await js.publish(
        dlq_subject(route.platform_tenant_id, route.agent),
        msg.data,
        timeout=timeout_s,
        stream=DLQ_STREAM,
        headers=dlq_headers(msg, route, error),
    )
