"""Dead letters: a message that failed ``max_deliveries`` times is copied to stream ``SOORMA_DLQ`` and terminated.

Subject ``soorma-dlq.<platform_tenant_id>.<agent>`` (``soorma.subjects.dlq_subject``); body = the original message
data, unchanged; the reason travels in headers. ``Nats-Msg-Id`` is ``<consumer>:<stream seq>``, so if the bridge
publishes the dead letter but the following ``+TERM`` is lost and the message comes back within the DLQ stream's
duplicate window (120 s), the second copy is dropped by JetStream's de-duplication
(https://docs.nats.io/using-nats/developer/develop_jetstream/model_deep_dive#message-deduplication).
The original event id (the event's own ``Nats-Msg-Id`` = ``<platform tenant>:<event id>``, without the tenant) is kept
in ``Soorma-Event-Id``.

Goals: when the dead-lettered event belongs to a goal, :func:`dead_letter` also publishes a goal notice
(:mod:`soorma.goal_notices`) that the tracker records: the goal ends ``failed`` with the reason; :func:`replay`
publishes the matching replay notice, and the goal is ``running`` again once none of its dead letters is left.

Recovery (``soorma dlq list`` / ``soorma dlq replay``): :func:`list_dead_letters` reads the stream (optionally one
platform tenant and/or agent, through the subject) without consuming it; :func:`replay` publishes the original body
again to its original subject in ``SOORMA_EVENTS`` — with a **new** ``Nats-Msg-Id``
(``<platform tenant>:<event id>:replay:<uuid>``, scoped by the tenant like every message id of the stream), or
the stream's duplicate window could drop it as a repeat of the original — and the header
``Soorma-Replay-Consumer: <consumer>``, so only the consumer that dead-lettered it delivers it again (the bridge acks
it unseen on every other consumer whose filter matches); then it deletes the entry from ``SOORMA_DLQ``. The event body,
and so the envelope ``id`` that handlers use for idempotency, is unchanged. A replay whose publish is acknowledged
but whose delete fails leaves the entry listed: replaying it again delivers the event again (at-least-once).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime

from nats.js import JetStreamContext
from nats.js.api import PubAck
from nats.js.errors import NotFoundError

# The dead-letter headers and the storing of a dead letter are the delivery contract's (shared with agent.run());
# this module, which lists and replays dead letters, names them too.
from soorma.delivery.dead_letters import (
    H_AGENT,
    H_CONSUMER,
    H_DELIVERIES,
    H_ERROR,
    H_EVENT_ID,
    H_FUNCTION,
    H_PLATFORM_TENANT,
    H_REPLAY_CONSUMER,
    H_REPLAY_OF,
    H_STREAM,
    H_STREAM_SEQ,
    H_SUBJECT,
    H_TIME,
    dead_letter,
    dlq_headers,
)
from soorma.goal_notices import replay_notice
from soorma.jetstream import publish_envelope
from soorma.subjects import DLQ_STREAM, DLQ_SUBJECTS, STREAM, check_identifier, message_id

__all__ = [
    "DeadLetter", "dlq_filter", "list_dead_letters", "replay", "dead_letter", "dlq_headers",
    "H_AGENT", "H_CONSUMER", "H_DELIVERIES", "H_ERROR", "H_EVENT_ID", "H_FUNCTION", "H_PLATFORM_TENANT",
    "H_REPLAY_CONSUMER", "H_REPLAY_OF", "H_STREAM", "H_STREAM_SEQ", "H_SUBJECT", "H_TIME",
]


@dataclass(frozen=True)
class DeadLetter:
    """One entry of ``SOORMA_DLQ``: where it is (``seq``, ``subject``), what it was and why it failed."""

    seq: int
    subject: str
    data: bytes
    headers: dict[str, str] = field(default_factory=dict)
    stored_at: datetime | None = None

    @property
    def event_id(self) -> str | None:
        """The envelope id: the ``Soorma-Event-Id`` header, else the body's ``id``."""
        if self.headers.get(H_EVENT_ID):
            return self.headers[H_EVENT_ID]
        try:
            body = json.loads(self.data)
        except ValueError:
            return None
        return body.get("id") if isinstance(body, dict) and isinstance(body.get("id"), str) else None

    @property
    def agent(self) -> str | None:
        return self.headers.get(H_AGENT)

    @property
    def platform_tenant_id(self) -> str | None:
        return self.headers.get(H_PLATFORM_TENANT)

    @property
    def original_subject(self) -> str | None:
        return self.headers.get(H_SUBJECT)

    @property
    def consumer(self) -> str | None:
        return self.headers.get(H_CONSUMER)

    @property
    def error(self) -> str | None:
        return self.headers.get(H_ERROR)

    @property
    def deliveries(self) -> int | None:
        value = self.headers.get(H_DELIVERIES)
        return int(value) if value and value.isdigit() else None

    def summary(self) -> dict:
        """A JSON-friendly view (``soorma dlq list --json``)."""
        body_type = None
        try:
            body = json.loads(self.data)
            body_type = body.get("type") if isinstance(body, dict) else None
        except ValueError:
            pass
        return {
            "seq": self.seq,
            "event_id": self.event_id,
            "event_type": body_type,
            "platform_tenant_id": self.platform_tenant_id,
            "agent": self.agent,
            "function": self.headers.get(H_FUNCTION),
            "consumer": self.consumer,
            "subject": self.original_subject,
            "deliveries": self.deliveries,
            "error": self.error,
            "dead_lettered_at": self.headers.get(H_TIME),
            "size": len(self.data),
        }


def _dead_letter_id(entry: "DeadLetter") -> str:
    """The id :func:`dead_letter` gave the entry's goal notice: ``<consumer>:<stream seq>`` of the original message."""
    return f"{entry.consumer}:{entry.headers.get(H_STREAM_SEQ, entry.seq)}"


def dlq_filter(platform_tenant_id: str | None = None, agent: str | None = None) -> str:
    """The ``SOORMA_DLQ`` subject filter for a tenant and/or agent (``None`` = any)."""
    if platform_tenant_id is None and agent is None:
        return DLQ_SUBJECTS
    tenant = check_identifier(platform_tenant_id, "platform tenant id") if platform_tenant_id is not None else "*"
    name = check_identifier(agent, "agent name") if agent is not None else "*"
    return f"soorma-dlq.{tenant}.{name}"


async def list_dead_letters(js: JetStreamContext, *, platform_tenant_id: str | None = None, agent: str | None = None,
                            event_id: str | None = None, limit: int | None = 100) -> list[DeadLetter]:
    """The entries of ``SOORMA_DLQ`` in stream order, oldest first, without consuming them.

    Filters: ``platform_tenant_id`` and ``agent`` (through the subject), ``event_id`` (the envelope id); at most
    ``limit`` entries (``None``: all). Reads one message per request (``next_by_subj``), so no consumer is created.
    """
    subject = dlq_filter(platform_tenant_id, agent)
    found: list[DeadLetter] = []
    seq = 1
    while limit is None or len(found) < limit:
        try:
            raw = await js.get_msg(DLQ_STREAM, seq=seq, subject=subject, next=True)
        except NotFoundError:
            break
        entry = DeadLetter(seq=raw.seq, subject=raw.subject, data=raw.data or b"",
                           headers=dict(raw.headers or {}), stored_at=raw.time)
        seq = raw.seq + 1
        if event_id is not None and entry.event_id != event_id:
            continue
        found.append(entry)
    return found


async def replay(js: JetStreamContext, entry: DeadLetter, *, timeout_s: float = 5.0,
                 grant_key: bytes | None = None) -> PubAck:
    """Publish a dead letter's event again for the consumer that failed it, then delete the entry (see the module
    docstring). Raises ``ValueError`` when the entry lacks the headers a replay needs (not written by the bridge).

    ``grant_key`` (:func:`soorma.grants.grant_key_from_env`): when given, the event gets a fresh delivery grant, so a
    dead letter replayed after its grant expired can act for its user again (:func:`soorma.grants.regrant_body`);
    without it the event is republished as it was."""
    subject, consumer = entry.original_subject, entry.consumer
    if not subject or not subject.startswith("soorma.") or not consumer:
        raise ValueError(f"dead letter {entry.seq} has no original subject/consumer headers; cannot replay it")
    tenant = subject.split(".")[1] if subject.count(".") >= 3 else ""  # soorma.<tenant>.<topic>.<type>
    headers = {
        "Nats-Msg-Id": message_id(tenant, f"{entry.event_id or entry.seq}:replay:{uuid.uuid4().hex}"),
        H_REPLAY_CONSUMER: consumer,
        H_REPLAY_OF: f"{DLQ_STREAM}:{entry.seq}",
    }
    body = entry.data
    if grant_key is not None:
        from soorma.grants import regrant_body

        body = regrant_body(body, grant_key)
    ack = await js.publish(subject, body, timeout=timeout_s, stream=STREAM, headers=headers)
    # The goal the event belongs to is running again (the tracker revives it once no dead letter of it is left).
    notice = replay_notice(entry.data, agent=entry.agent or "", dead_letter_id=_dead_letter_id(entry),
                           platform_tenant_id=entry.platform_tenant_id)
    if notice is not None:
        await publish_envelope(js, notice, timeout_s=timeout_s)
    try:
        await js.delete_msg(DLQ_STREAM, entry.seq)
    except NotFoundError:  # already gone (a concurrent replay): the event was still published once more
        pass
    return ack
