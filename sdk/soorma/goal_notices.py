"""Goal notices: the platform's events that tell the tracker a goal's event was dead-lettered, or replayed.

docs/architecture.md ("Delivery semantics"): after the maximum number of deliveries a message goes to the dead-letter
queue and *the goal it belongs to ends ``failed`` with that error* (revived if the dead letter is replayed), so no
goal stays ``running`` with nothing left to run it. The delivery layer (the NATS bridge, :mod:`soorma.functions.bridge.dlq`;
on the SQS transport the tracker reading the agents' dead-letter queues) publishes a notice next to the dead letter,
and the tracker (:mod:`soorma.functions.tracker.recording`) applies it:

* :data:`DEAD_LETTERED` (topic ``system-events``): data ``{"event_id", "event_type", "agent", "error",
  "deliveries", "dead_letter_id"}`` → the goal ends ``failed`` with ``error`` (when it was running) and remembers the
  dead letter (``gateway.goals.dead_letters``);
* :data:`REPLAYED`: data ``{"event_id", "event_type", "agent", "dead_letter_id"}`` → the dead letter is forgotten;
  a goal that a dead letter failed is ``running`` again once none of its dead letters is left.

The notice carries the original event's identity (platform tenant, service tenant and user, goal, session), so the
tracker records it under that identity, as every event of the goal. Its id is derived from the dead letter
(:func:`uuid.uuid5`): publishing it twice (a bridge retry) stores one copy, and the tracker records it once.
A notice is never made about a notice, nor about an event without a goal.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from .events import EventEnvelope, EventTopic

DEAD_LETTERED = "soorma.event.dead-lettered"
REPLAYED = "soorma.event.replayed"
NOTICE_TYPES = frozenset({DEAD_LETTERED, REPLAYED})
SOURCE = "soorma-delivery"

_NAMESPACE = uuid.UUID("6f0d3f52-7a51-4c1e-9d6a-2c5b1f0e9a11")


def _original(body: bytes | str) -> dict[str, Any] | None:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict) or not data.get("goal_id") or data.get("type") in NOTICE_TYPES:
        return None
    return data


def _notice(kind: str, original: dict[str, Any], platform_tenant_id: str | None, notice_id: str,
            data: dict[str, Any]) -> EventEnvelope | None:
    tenant = original.get("platform_tenant_id") or platform_tenant_id
    if not tenant or (platform_tenant_id and tenant != platform_tenant_id):
        return None  # an envelope claiming another tenant than the consumer's: nothing to say about its goal
    return EventEnvelope(
        id=str(uuid.uuid5(_NAMESPACE, f"{kind}:{notice_id}")),
        source=SOURCE,
        type=kind,
        topic=EventTopic.SYSTEM_EVENTS,
        data=data,
        platform_tenant_id=tenant,
        tenant_id=original.get("tenant_id"),
        user_id=original.get("user_id"),
        goal_id=str(original["goal_id"]),
        session_id=original.get("session_id"),
        trace_id=original.get("trace_id"),
        parent_event_id=original.get("id") if isinstance(original.get("id"), str) else None,
    )


def dead_letter_notice(body: bytes | str, *, agent: str, error: str, deliveries: int | None, dead_letter_id: str,
                       platform_tenant_id: str | None = None) -> EventEnvelope | None:
    """The :data:`DEAD_LETTERED` notice for a dead-lettered message ``body`` (the event envelope JSON), or ``None``
    when it is not an envelope of a goal (or is itself a notice). ``dead_letter_id`` names the dead letter uniquely
    (NATS: ``<consumer>:<stream seq>``; SQS: the queue and message id); ``platform_tenant_id``: the consumer's tenant
    (a body naming another is not noticed)."""
    original = _original(body)
    if original is None:
        return None
    return _notice(DEAD_LETTERED, original, platform_tenant_id, dead_letter_id, {
        "event_id": original.get("id"), "event_type": original.get("type"), "agent": agent,
        "error": error, "deliveries": deliveries, "dead_letter_id": dead_letter_id,
    })


def replay_notice(body: bytes | str, *, agent: str, dead_letter_id: str, platform_tenant_id: str | None = None,
                  replay_id: str | None = None) -> EventEnvelope | None:
    """The :data:`REPLAYED` notice for a dead letter being replayed (``None`` as for :func:`dead_letter_notice`).
    ``replay_id`` makes each replay's notice distinct (default: a new uuid)."""
    original = _original(body)
    if original is None:
        return None
    return _notice(REPLAYED, original, platform_tenant_id, f"{dead_letter_id}:{replay_id or uuid.uuid4().hex}", {
        "event_id": original.get("id"), "event_type": original.get("type"), "agent": agent,
        "dead_letter_id": dead_letter_id,
    })


def describe(data: dict[str, Any]) -> str:
    """The goal's error text for a :data:`DEAD_LETTERED` notice's data."""
    deliveries = data.get("deliveries")
    after = f" after {deliveries} deliveries" if deliveries else ""
    return (f"event {data.get('event_type')} ({data.get('event_id')}) was dead-lettered by agent "
            f"{data.get('agent')}{after}: {data.get('error') or 'unknown error'}")


__all__ = ["DEAD_LETTERED", "NOTICE_TYPES", "REPLAYED", "dead_letter_notice", "describe", "replay_notice"]
