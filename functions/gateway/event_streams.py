"""Event subscriptions on the live stream: a process outside the platform (soorma-core's ``EventClient``, a script
on a laptop holding an API key or a platform-issued token) receives its identity's events by topic and type over
the WebSocket API of :mod:`soorma.functions.gateway.streams`, never through NATS (issue 17; docs/event-client.md).

* Recording (:func:`record`, called by the tracker for every event it receives): the event, without its delivery
  grant, is stored in ``gateway.stream_events`` under the envelope's own identity (row-level security: a tenant's
  rows are invisible to every other identity) with the next number of that identity's stream (``seq``; migration
  0055 explains why the numbers commit in order). Rows older than ``SOORMA_EVENT_STREAM_RETENTION_S`` are pruned
  as the stream grows.
* ``subscribe`` ``{"action": "subscribe", "topics": [...], "event_types": [...], "after": <seq>}`` (both lists
  optional: absent or empty is "all"; ``after`` absent: only events recorded from now on, 0: everything still
  kept) is answered with a ``subscribed`` frame ``{topics, event_types, after, last_seq}``, then an ``event`` frame
  ``{seq, recorded_at, envelope}`` per matching event after the cursor, as they are recorded. Sending
  ``subscribe`` again with the last ``seq`` seen resumes (after a reconnect) or changes the filter.
* Pushing (:func:`push`): like the goal streams, the identity's subscribed connection rows are locked
  (``for update``, connection id order), sent the matching events after their cursors through the ``@connections``
  API, and their cursors moved past every event read (matching or not), so nothing is sent twice or out of order.

The identity is the connection's (stored at ``$connect``), so a subscriber only ever receives events published
for its own platform tenant, service tenant and user: the events it published, and the events agents published
in answer (they carry the request's identity).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from soorma.events import EventEnvelope
from soorma.functions.shared import settings
from soorma.functions.shared.db import Database
from soorma.grants import GRANT_FIELD
from soorma.identity import Identity

logger = logging.getLogger("soorma.functions.gateway.event_streams")

#: Events read per query while pushing.
PAGE = 200
#: Largest envelope (JSON bytes) streamed whole; a larger one is streamed with its data summarized, so a frame stays
#: inside API Gateway's 128 KiB WebSocket frame limit (https://docs.aws.amazon.com/apigateway/latest/developerguide/
#: limits.html).
MAX_ENVELOPE_BYTES = 96 * 1024
#: The stream is pruned when its number is a multiple of this (one indexed delete every so many events).
PRUNE_EVERY = 100
#: Most topics, or event types, one subscription may name; longest name.
MAX_FILTERS, MAX_NAME = 50, 255


class SubscribeRefused(Exception):
    """A ``subscribe`` that cannot be served: ``status`` (400 bad request) and the message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _without_nul(value: Any) -> Any:
    """``value`` with NUL characters, which PostgreSQL text and jsonb cannot hold, removed from its strings."""
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_nul(v) for v in value]
    return value


def stored_envelope(envelope: EventEnvelope) -> dict[str, Any]:
    """The envelope as streamed: its JSON object without the delivery grant, its ``data`` summarized
    (``{"_truncated": true, "bytes", "keys"}``) when the whole is over :data:`MAX_ENVELOPE_BYTES`."""
    body = _without_nul(json.loads(envelope.to_json()))
    body.pop(GRANT_FIELD, None)
    if len(json.dumps(body, default=str).encode()) > MAX_ENVELOPE_BYTES:
        text = json.dumps(body.get("data") or {}, default=str)
        body["data"] = {"_truncated": True, "bytes": len(text.encode()),
                        "keys": [str(k) for k in list(body.get("data") or {})[:50]]}
    return body


def record(db: Database, identity: Identity, envelope: EventEnvelope) -> bool:
    """Store ``envelope`` in ``identity``'s event stream; returns whether a push is due: True when it was stored
    and a connection of the identity subscribes (False for a redelivery, or when nobody listens, the usual case:
    the tracker then skips :func:`push`).

    An event PostgreSQL cannot store is logged and skipped (False); other database errors raise (the tracker
    reports the record failed and it is redelivered)."""
    try:
        return _record(db, identity, envelope)
    except psycopg.DataError as exc:
        logger.error("event %s cannot be stored for subscriptions, skipped: %s", envelope.id, exc)
        return False


def _record(db: Database, identity: Identity, envelope: EventEnvelope) -> bool:
    body = stored_envelope(envelope)
    topic = _without_nul(envelope.topic.value if hasattr(envelope.topic, "value") else str(envelope.topic))
    ids = (identity.platform_tenant_id, identity.service_tenant_id, identity.service_user_id)
    event_id, event_type = body["id"], body["type"]
    with db.transaction(identity) as conn:
        if conn.execute("select 1 from gateway.stream_events where platform_tenant_id = %s and service_tenant_id = %s"
                        " and service_user_id = %s and event_id = %s", (*ids, event_id)).fetchone():
            return False
        seq = conn.execute(
            "insert into gateway.stream_heads (platform_tenant_id, service_tenant_id, service_user_id, last_seq)"
            " values (%s, %s, %s, 1) on conflict (platform_tenant_id, service_tenant_id, service_user_id)"
            " do update set last_seq = gateway.stream_heads.last_seq + 1 returning last_seq", ids,
        ).fetchone()["last_seq"]
        conn.execute(
            "insert into gateway.stream_events (platform_tenant_id, service_tenant_id, service_user_id, seq,"
            " event_id, type, topic, envelope) values (%s, %s, %s, %s, %s, %s, %s, %s) on conflict do nothing",
            (*ids, seq, event_id, event_type, topic, Jsonb(body)),
        )
        listened = conn.execute(
            "select 1 from gateway.stream_connections where event_cursor is not null limit 1").fetchone()
        if seq % PRUNE_EVERY == 0:
            conn.execute(
                "delete from gateway.stream_events where platform_tenant_id = %s and service_tenant_id = %s"
                " and service_user_id = %s and recorded_at < now() - %s", (
                    *ids, timedelta(seconds=settings.EVENT_STREAM_RETENTION_S.get())),
            )
    return listened is not None


def subscribe_request(message: Mapping[str, Any]) -> tuple[list[str] | None, list[str] | None, int | None]:
    """(topics, event types, after) of a ``subscribe`` message (``None`` lists: all; ``None`` after: from now);
    raises :class:`SubscribeRefused` 400 for anything malformed."""

    def names(field: str) -> list[str] | None:
        value = message.get(field)
        if value is None or value == []:
            return None
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) and 0 < len(v) <= MAX_NAME for v in value):
            raise SubscribeRefused(400, f"'{field}' must be a list of names (1-{MAX_NAME} characters)")
        if len(value) > MAX_FILTERS:
            raise SubscribeRefused(400, f"'{field}' may name at most {MAX_FILTERS}")
        return sorted(set(value))

    topics, types = names("topics"), names("event_types")
    after = message.get("after")
    if after is not None and (isinstance(after, bool) or not isinstance(after, int) or after < 0):
        raise SubscribeRefused(400, f"invalid cursor {str(after)[:64]!r}: 'after' is the last seq seen, an integer"
                                    " >= 0")
    return topics, types, after


def _frame(kind: str, **fields: Any) -> bytes:
    return json.dumps({"type": kind, **fields}, default=str, separators=(",", ":")).encode()


def _matches(row: Mapping[str, Any], topics: list[str] | None, types: list[str] | None) -> bool:
    return (not topics or row["topic"] in topics) and (not types or row["type"] in types or "*" in types)


def push(db: Database, identity: Identity, api: Any, *, connection_id: str | None = None,
         subscribe: tuple[list[str] | None, list[str] | None, int | None] | None = None) -> int:
    """Send ``identity``'s subscribed connections (only ``connection_id`` when given) every matching event after
    their cursors; returns the number of frames sent.

    ``subscribe`` (with ``connection_id``): (topics, event types, after) of a ``subscribe`` message; the connection's
    subscription is set (its ``subscribed`` frame sent first, under the same lock) before the backlog is pushed.
    Raises :class:`SubscribeRefused` 400 when ``after`` is beyond the stream's last number, 410 when the connection
    is not registered. ``api``: a :class:`soorma.functions.gateway.streams.ConnectionsApi`."""
    from soorma.functions.gateway.streams import ConnectionGone

    sent = 0
    with db.transaction(identity) as conn:
        if subscribe is None and conn.execute(
            "select 1 from gateway.stream_connections where event_cursor is not null limit 1"
        ).fetchone() is None:
            return 0  # the usual case for the tracker: nobody of this identity subscribes (one indexed read)
        if subscribe is not None:
            # The head row, locked against recorders until this subscription is committed: an event recorded
            # concurrently is then either at or before the cursor read here, or recorded after the subscription
            # exists, so its recorder pushes it (:func:`record` looks for subscribers after taking its number).
            conn.execute(
                "insert into gateway.stream_heads (platform_tenant_id, service_tenant_id, service_user_id)"
                " values (%s, %s, %s) on conflict do nothing",
                (identity.platform_tenant_id, identity.service_tenant_id, identity.service_user_id))
            head = conn.execute("select last_seq from gateway.stream_heads for share").fetchone()
        else:
            head = conn.execute("select last_seq from gateway.stream_heads").fetchone()
        last_seq = head["last_seq"] if head else 0
        if subscribe is not None and connection_id is not None:
            topics, types, after = subscribe
            if after is not None and after > last_seq:
                raise SubscribeRefused(400, f"cursor {after} is beyond the stream's last event ({last_seq})")
            start = last_seq if after is None else after
            updated = conn.execute(
                "update gateway.stream_connections set topics = %s, event_types = %s, event_cursor = %s"
                " where connection_id = %s returning connection_id", (topics, types, start, connection_id),
            ).fetchone()
            if updated is None:
                raise SubscribeRefused(410, "the connection is not registered; reconnect")
        where, params = "event_cursor is not null", []
        if connection_id is not None:
            where += " and connection_id = %s"
            params.append(connection_id)
        targets = conn.execute(
            f"select connection_id, topics, event_types, event_cursor from gateway.stream_connections where {where}"
            " order by connection_id for update", params,
        ).fetchall()
        if not targets:
            return 0
        cursors = {t["connection_id"]: t["event_cursor"] for t in targets}
        filters = {t["connection_id"]: (t["topics"], t["event_types"]) for t in targets}
        alive = set(cursors)
        if subscribe is not None and connection_id is not None:
            try:
                api.post(connection_id, _frame("subscribed", topics=subscribe[0], event_types=subscribe[1],
                                               after=cursors[connection_id], last_seq=last_seq))
                sent += 1
            except ConnectionGone:
                alive.discard(connection_id)
        low = min(cursors.values())
        while alive:
            rows = conn.execute(
                "select seq, type, topic, envelope, recorded_at from gateway.stream_events where seq > %s"
                " order by seq limit %s", (low, PAGE),
            ).fetchall()
            for row in rows:
                body: bytes | None = None
                for cid in sorted(alive):
                    if cursors[cid] >= row["seq"]:
                        continue
                    if _matches(row, *filters[cid]):
                        body = body or _frame("event", seq=row["seq"], recorded_at=row["recorded_at"].isoformat(),
                                              envelope=row["envelope"])
                        try:
                            api.post(cid, body)
                        except ConnectionGone:
                            alive.discard(cid)
                            continue
                        sent += 1
                    cursors[cid] = row["seq"]
            if len(rows) < PAGE:
                break
            low = rows[-1]["seq"]
        for cid in cursors:
            if cid not in alive:
                conn.execute("delete from gateway.stream_connections where connection_id = %s", (cid,))
            else:
                conn.execute("update gateway.stream_connections set event_cursor = %s where connection_id = %s",
                             (cursors[cid], cid))
    return sent


def push_recorded(db: Database, identities: Iterable[Identity], api: Any = None) -> None:
    """The tracker's push after a batch: :func:`push` for each identity it recorded events of. Never raises: the
    events are kept whatever happens here, and a subscriber that missed a push gets them with its next
    ``subscribe``."""
    from soorma.functions.gateway.streams import connections_api_from_env

    api = api if api is not None else connections_api_from_env()
    if api is None:
        return
    for identity in dict.fromkeys(identities):
        try:
            push(db, identity, api)
        except Exception as exc:  # noqa: BLE001 - see the docstring
            logger.warning("event stream push failed: %s", exc)
