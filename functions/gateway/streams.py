"""Live goal streams: a client follows a goal over a WebSocket and receives its events as the tracker records them
(issue 14, item 1; docs/architecture.md "Goal streams" has the frames).

The protocol is API Gateway's WebSocket API (https://docs.aws.amazon.com/apigateway/latest/developerguide/
apigateway-websocket-api.html), served in AWS by API Gateway and locally by :mod:`soorma.local.websocket`; the
routes are :data:`soorma.functions.http_api.STREAM_ROUTES`, all handled here (:func:`handle_event`, called by the
gateway function for WebSocket events):

* ``$connect`` (after the Lambda authorizer allowed the handshake): the caller's identity (with
  :func:`soorma.identity.act_for` applied to the handshake's headers, and the same revocation, suspension and rate
  checks as every HTTP request) is stored with API Gateway's connection id in ``gateway.stream_connections``.
* ``follow`` ``{"action": "follow", "goal_id": "<uuid>", "after": <seq>}``: the connection follows that goal from
  after event number ``after`` (0: from the start). It is answered with a ``following`` frame, then every recorded
  event after the cursor, then (once the goal has ended and every event was sent) an ``end`` frame. An unknown
  goal, another identity's goal (row-level security hides it) or a bad cursor is an ``error`` frame; the connection
  stays open for another ``follow``. Sending ``follow`` again with the last ``seq`` seen is how a client resumes
  (on a new connection after a disconnect, or on the same one as a cheap "anything new?").
* ``subscribe`` ``{"action": "subscribe", "topics": [...], "event_types": [...], "after": <seq>}``: the connection
  receives its identity's events of those topics and types (all of a kind left out), whatever their goal
  (:mod:`soorma.functions.gateway.event_streams`, soorma-core's ``EventClient``).
* ``$disconnect``: the row is deleted.

Pushing: events are numbered per goal by the tracker (``seq``, migration 0020) and a connection's ``cursor`` is the
last number it was sent. :func:`push` locks the goal's connection rows (``for update``, in connection id order),
sends each the events after its cursor through API Gateway's ``@connections`` API (:class:`ManagementApi`,
https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-how-to-call-websocket-api-connections.html)
and moves the cursor, so two pushers at once (the tracker for two events of one goal, or a ``follow`` and the
tracker) never send an event twice or out of order, and an event committed after a pusher read is sent by the
pusher of that event. The tracker pushes after every batch (:func:`push_recorded`); a ``follow`` pushes the backlog.
A connection API Gateway reports gone (410) is deleted. No process keeps state: everything is in PostgreSQL, so
this runs on Lambda. Nothing polls: a stream costs nothing while its goal is quiet.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

import psycopg

from soorma.functions.http_api import STREAM_SUBPROTOCOL
from soorma.functions.shared import settings
from soorma.functions.shared.db import Database
from soorma.identity import Identity, MissingIdentity, OverrideRefused, act_for, event_headers

logger = logging.getLogger("soorma.functions.gateway.streams")

#: Goal states after which nothing more happens to a goal (its ``end`` frame is sent once every event was).
FINAL = ("completed", "failed", "cancelled")
#: Events read per query while pushing a backlog.
PAGE = 200
#: Longest ``follow`` message body accepted (bytes).
MAX_MESSAGE_BYTES = 4096

_EVENT_COLUMNS = ("seq, event_id, type, topic, correlation_id, parent_event_id, source, time, recorded_at,"
                  " data_summary as data")


class ConnectionGone(Exception):
    """The connection no longer exists (API Gateway's ``GoneException``, HTTP 410)."""


class ConnectionsApi(Protocol):
    """Sends one frame to one connection; raises :class:`ConnectionGone` when the connection is gone."""

    def post(self, connection_id: str, data: bytes) -> None: ...


class ManagementApi:
    """API Gateway's ``@connections`` API through boto3's ``apigatewaymanagementapi`` client
    (``PostToConnection``: https://docs.aws.amazon.com/apigatewayv2/latest/api-reference/apis-apiid-stages-stagename-
    connections-connectionid.html).

    Parameters: ``endpoint_url`` — ``https://<api id>.execute-api.<region>.amazonaws.com/<stage>`` (the local stack:
    its own ``/_ws`` path, :mod:`soorma.local.websocket`). Short timeouts and no retries: a push that fails leaves the
    cursor where it was, and the next push (or the client's next ``follow``) sends the rest."""

    def __init__(self, endpoint_url: str) -> None:
        import boto3
        from botocore.config import Config

        self._client = boto3.client(
            "apigatewaymanagementapi", endpoint_url=endpoint_url,
            config=Config(connect_timeout=2, read_timeout=5, retries={"max_attempts": 1, "mode": "standard"}),
        )

    def post(self, connection_id: str, data: bytes) -> None:
        try:
            self._client.post_to_connection(ConnectionId=connection_id, Data=data)
        except self._client.exceptions.GoneException:
            raise ConnectionGone(connection_id) from None


_api: list[ConnectionsApi | None] = []


def connections_api_from_env() -> ConnectionsApi | None:
    """The execution environment's :class:`ManagementApi` for ``SOORMA_STREAM_CONNECTIONS_URL`` (built once), or
    ``None`` when it is not set (streams are then off: nothing is pushed)."""
    if not _api:
        endpoint = settings.STREAM_CONNECTIONS_URL.get()
        _api.append(ManagementApi(endpoint) if endpoint else None)
    return _api[0]


def _iso(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


def frame(kind: str, **fields: Any) -> bytes:
    """One frame: a JSON object whose ``type`` is ``kind`` (docs/architecture.md "Goal streams")."""
    return json.dumps({"type": kind, **fields}, default=str, separators=(",", ":")).encode()


def event_frame(goal_id: str, row: Mapping[str, Any]) -> bytes:
    """The ``event`` frame of one recorded event (``row``: a ``gateway.goal_events`` row of :data:`_EVENT_COLUMNS`)."""
    event = {k: _iso(row[k]) for k in ("event_id", "type", "topic", "correlation_id", "parent_event_id", "source",
                                       "time", "data")}
    return frame("event", goal_id=goal_id, seq=row["seq"], recorded_at=_iso(row["recorded_at"]), event=event)


def error_frame(status: int, message: str, **fields: Any) -> bytes:
    """An ``error`` frame: ``status`` is the HTTP status the same mistake gets on the HTTP API (400, 404, …)."""
    return frame("error", status=status, message=message, **fields)


class FollowRefused(Exception):
    """A ``follow`` that cannot be served: ``status`` (404 unknown goal, 400 bad cursor) and the message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def push(db: Database, identity: Identity, goal_id: str, api: ConnectionsApi, *,
         connection_id: str | None = None, follow_after: int | None = None) -> int:
    """Send the goal's connections (of ``identity``; only ``connection_id`` when given) every event after their
    cursors, then the ``end`` frame once the goal has ended; returns the number of frames sent.

    ``follow_after``: with ``connection_id``, the connection starts following ``goal_id`` from after that number
    (its ``following`` frame is sent first, under the same lock, so no event can overtake it); raises
    :class:`FollowRefused` 404 when the caller cannot see the goal, 400 when ``follow_after`` is beyond the goal's
    last event. Frames are sent while the rows are locked: see the module docstring."""
    gid = str(uuid.UUID(goal_id))
    sent = 0
    with db.transaction(identity) as conn:
        if follow_after is None and connection_id is None and conn.execute(
            "select 1 from gateway.stream_connections where goal_id = %s limit 1", (gid,)
        ).fetchone() is None:
            return 0  # the usual case for the tracker: nobody follows this goal (one indexed read)
        goal = conn.execute(
            "select status, result, error, event_seq from gateway.goals where goal_id = %s", (gid,)
        ).fetchone()
        if follow_after is not None:
            if goal is None:
                raise FollowRefused(404, f"goal {gid} not found")
            if follow_after > goal["event_seq"]:
                raise FollowRefused(400, f"cursor {follow_after} is beyond the goal's last event "
                                         f"({goal['event_seq']})")
            updated = conn.execute(
                "update gateway.stream_connections set goal_id = %s, cursor = %s, end_sent = false,"
                " followed_at = now() where connection_id = %s returning connection_id",
                (gid, follow_after, connection_id),
            ).fetchone()
            if updated is None:
                raise FollowRefused(410, "the connection is not registered; reconnect")
        if goal is None:
            return 0
        where, params = "goal_id = %s", [gid]
        if connection_id is not None:
            where += " and connection_id = %s"
            params.append(connection_id)
        targets = conn.execute(
            f"select connection_id, cursor, end_sent from gateway.stream_connections where {where}"
            " order by connection_id for update", params,
        ).fetchall()
        if not targets:
            return 0
        cursors = {t["connection_id"]: t["cursor"] for t in targets}
        ended = {t["connection_id"]: t["end_sent"] for t in targets}
        alive = set(cursors)
        if follow_after is not None and connection_id is not None:
            try:
                api.post(connection_id, frame("following", goal_id=gid, after=follow_after, status=goal["status"],
                                              last_seq=goal["event_seq"]))
                sent += 1
            except ConnectionGone:
                alive.discard(connection_id)
        low = min(cursors.values())
        while alive:
            rows = conn.execute(
                f"select {_EVENT_COLUMNS} from gateway.goal_events where goal_id = %s and seq > %s"
                " order by seq limit %s", (gid, low, PAGE),
            ).fetchall()
            for row in rows:
                body = event_frame(gid, row)
                for cid in sorted(alive):
                    if cursors[cid] >= row["seq"]:
                        continue
                    try:
                        api.post(cid, body)
                    except ConnectionGone:
                        alive.discard(cid)
                        continue
                    cursors[cid] = row["seq"]
                    sent += 1
            if len(rows) < PAGE:
                break
            low = rows[-1]["seq"]
        if goal["status"] in FINAL:
            # The last event's number, not the counter: a redelivered event takes a number and records nothing.
            last = conn.execute(
                "select coalesce(max(seq), 0) as last from gateway.goal_events where goal_id = %s and seq is not null",
                (gid,),
            ).fetchone()["last"]
            end = frame("end", goal_id=gid, status=goal["status"], result=goal["result"], error=goal["error"],
                        last_seq=last)
            for cid in sorted(alive):
                if ended[cid] or cursors[cid] < last:
                    continue
                try:
                    api.post(cid, end)
                    ended[cid] = True
                    sent += 1
                except ConnectionGone:
                    alive.discard(cid)
        for cid in cursors:
            if cid not in alive:
                conn.execute("delete from gateway.stream_connections where connection_id = %s", (cid,))
            else:
                conn.execute(
                    "update gateway.stream_connections set cursor = %s, end_sent = %s where connection_id = %s",
                    (cursors[cid], ended[cid], cid),
                )
    return sent


def push_recorded(db: Database, recorded: Iterable[tuple[Identity, str]], api: ConnectionsApi | None = None) -> None:
    """The tracker's push after a batch: :func:`push` for each (identity, goal id) it recorded events of. Never
    raises: the events are recorded whatever happens here, and a client that missed a push catches up with its next
    ``follow``."""
    api = api if api is not None else connections_api_from_env()
    if api is None:
        return
    for identity, goal_id in dict.fromkeys(recorded):
        try:
            uuid.UUID(goal_id)
        except ValueError:
            continue  # no goal has that id: nobody can follow it
        try:
            push(db, identity, goal_id, api)
        except Exception as exc:  # noqa: BLE001 - see the docstring
            logger.warning("goal %s: stream push failed: %s", goal_id, exc)


# -- the WebSocket API's routes ------------------------------------------------------------------------------------
def is_websocket_event(event: Mapping[str, Any]) -> bool:
    """Whether a Lambda event is one of API Gateway's WebSocket API events (``requestContext.eventType``
    ``CONNECT``, ``MESSAGE`` or ``DISCONNECT``)."""
    context = event.get("requestContext")
    return isinstance(context, Mapping) and context.get("eventType") in ("CONNECT", "MESSAGE", "DISCONNECT")


def _status(code: int, message: str = "") -> dict[str, Any]:
    return {"statusCode": code, "body": json.dumps({"message": message}) if message else ""}


def _connection_identity(db: Database, principal: Identity, connection_id: str) -> Identity | None:
    """The identity the connection acts for, stored at ``$connect`` (see migration 0020)."""
    with db.transaction() as conn:
        row = conn.execute("select * from gateway.stream_connection_identity(%s, %s)",
                           (connection_id, principal.platform_tenant_id)).fetchone()
    if row is None:
        return None
    return Identity(platform_tenant_id=principal.platform_tenant_id, service_tenant_id=row["service_tenant_id"],
                    service_user_id=row["service_user_id"], principal_id=principal.principal_id, role=principal.role)


def _connect(db: Database, event: Mapping[str, Any], context: Mapping[str, Any], connection_id: str
             ) -> dict[str, Any]:
    from soorma.functions.gateway.credentials import DEFERRED, handshake_headers, resolve_deferred
    from soorma.functions.shared.service import Admission

    headers = handshake_headers(event_headers(event))
    if headers is None:  # the authorizer refuses such a handshake; never act on it here either
        return _status(401, "Unauthorized")
    if context.get(DEFERRED):
        principal = resolve_deferred(headers, context, db)
        if principal is None:
            return _status(401, "Unauthorized")
    else:
        principal = Identity.from_context(context)
    try:
        identity = act_for(principal, headers)
    except OverrideRefused as exc:
        return _status(403, str(exc))
    verdict, _ = Admission.from_env().check(db, principal)
    if verdict != "ok":
        return _status({"revoked": 401, "suspended": 403}.get(verdict, 429), verdict)
    with db.transaction(identity) as conn:
        conn.execute(
            "insert into gateway.stream_connections (connection_id, platform_tenant_id, service_tenant_id,"
            " service_user_id, principal_id) values (%s, %s, %s, %s, %s) on conflict do nothing",
            (connection_id, identity.platform_tenant_id, identity.service_tenant_id, identity.service_user_id,
             identity.principal_id),
        )
    return _accept(headers)


def _accept(headers: Mapping[str, str]) -> dict[str, Any]:
    """``$connect``'s 200, selecting :data:`~soorma.functions.http_api.STREAM_SUBPROTOCOL` when the client offered it
    (``headers``: the handshake's, the credential entry already removed): a browser that offers subprotocols fails
    a handshake whose answer selects none (RFC 6455 §4.1), and API Gateway passes this header on
    (https://docs.aws.amazon.com/apigateway/latest/developerguide/websocket-connect-route-subprotocol.html)."""
    offered = {entry.strip() for entry in headers.get("sec-websocket-protocol", "").split(",")}
    if STREAM_SUBPROTOCOL in offered:
        return {"statusCode": 200, "headers": {"Sec-WebSocket-Protocol": STREAM_SUBPROTOCOL}, "body": ""}
    return _status(200)


def _message_object(body: Any) -> dict[str, Any]:
    """The message as a JSON object; raises :class:`FollowRefused` 400 for anything else."""
    try:
        message = json.loads(body or "")
    except ValueError:
        raise FollowRefused(400, "a message must be a JSON object") from None
    if not isinstance(message, dict):
        raise FollowRefused(400, "a message must be a JSON object")
    return message


def _follow_request(message: dict[str, Any] | str | bytes) -> tuple[str, int]:
    """(goal id, after) of a ``follow`` message (the body, or its JSON object); raises :class:`FollowRefused` 400
    for anything else."""
    if not isinstance(message, dict):
        message = _message_object(message)
    if message.get("action") != "follow":
        raise FollowRefused(400, f"unknown action {str(message.get('action'))[:64]!r}; send "
                                 '{"action": "follow", "goal_id": "<goal id>", "after": <last seq seen or 0>}'
                                 ' or {"action": "subscribe", "topics": [...], "event_types": [...], "after": <seq>}')
    goal_id, after = message.get("goal_id"), message.get("after", 0)
    try:
        goal_id = str(uuid.UUID(str(goal_id)))
    except ValueError:
        raise FollowRefused(404, f"goal {str(goal_id)[:100]!r} not found") from None
    if isinstance(after, bool) or not isinstance(after, int) or after < 0:
        raise FollowRefused(400, f"invalid cursor {str(after)[:64]!r}: 'after' is the last seq seen, an integer"
                                 " >= 0")
    return goal_id, after


def _message(db: Database, api: ConnectionsApi, event: Mapping[str, Any], principal: Identity,
             connection_id: str) -> dict[str, Any]:
    body = event.get("body") or ""
    if len(body.encode() if isinstance(body, str) else body) > MAX_MESSAGE_BYTES:
        api.post(connection_id, error_frame(413, f"a message may have at most {MAX_MESSAGE_BYTES} bytes"))
        return _status(200)
    identity = _connection_identity(db, principal, connection_id)
    if identity is None:
        api.post(connection_id, error_frame(410, "the connection is not registered; reconnect"))
        return _status(200)
    from soorma.functions.gateway import event_streams

    try:
        message = _message_object(body)
        if message.get("action") == "subscribe":
            event_streams.push(db, identity, api, connection_id=connection_id,
                               subscribe=event_streams.subscribe_request(message))
        else:
            goal_id, after = _follow_request(message)
            push(db, identity, goal_id, api, connection_id=connection_id, follow_after=after)
    except (FollowRefused, event_streams.SubscribeRefused) as exc:
        api.post(connection_id, error_frame(exc.status, str(exc)))
    return _status(200)


def handle_event(event: Mapping[str, Any], db: Database, api: ConnectionsApi | None = None) -> dict[str, Any]:
    """Serve one WebSocket API event (``$connect``, ``follow``/``$default``, ``$disconnect``; see the module
    docstring) and return the integration response (``statusCode``: a ``$connect`` answered other than 200 refuses
    the handshake with that status).

    The identity comes from the authorizer's context at ``requestContext.authorizer`` (API Gateway passes it to
    every route of the connection). A database that cannot be reached answers 503."""
    context = event.get("requestContext") or {}
    kind, connection_id = context.get("eventType"), str(context.get("connectionId") or "")
    authorizer = context.get("authorizer") or {}
    if not connection_id:
        return _status(400, "no connection id")
    try:
        if kind == "CONNECT":
            return _connect(db, event, authorizer, connection_id)
        principal = Identity.from_context(authorizer)
        if kind == "DISCONNECT":
            identity = _connection_identity(db, principal, connection_id)
            if identity is not None:
                with db.transaction(identity) as conn:
                    conn.execute("delete from gateway.stream_connections where connection_id = %s",
                                 (connection_id,))
            return _status(200)
        api = api if api is not None else connections_api_from_env()
        if api is None:
            return _status(503, "live goal streams are not configured (SOORMA_STREAM_CONNECTIONS_URL)")
        try:
            return _message(db, api, event, principal, connection_id)
        except ConnectionGone:
            return _status(410, "gone")
    except MissingIdentity:
        return _status(401, "Unauthorized")
    except psycopg.OperationalError as exc:  # DatabaseUnavailable is one too
        logger.warning("stream %s: database unavailable: %s", kind, exc)
        return _status(503, "the database is unavailable; retry")
