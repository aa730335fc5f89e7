"""The live goal stream client: :func:`follow_goal` (``GatewayClient.follow_goal``) follows a goal over the platform's
WebSocket API and yields its events as they are recorded, reconnecting and resuming from the last event by itself.

The protocol is docs/architecture.md "Goal streams": after the handshake (``Authorization: Bearer <key>``) the
client sends ``{"action": "follow", "goal_id": ..., "after": <last seq seen>}`` and receives a ``following`` frame,
then ``event`` frames in ``seq`` order, then an ``end`` frame once the goal has ended; ``error`` frames answer a bad
request. Needs the ``websockets`` package (extra ``soorma[stream]``; https://websockets.readthedocs.io).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel

from ..errors import PlatformError
from ..settings import STREAM_URL

log = logging.getLogger("soorma.clients.streams")

#: The local stack's WebSocket path (functions/http_api.py STREAM_PATH; the SDK does not import the functions).
LOCAL_STREAM_PATH = "/v1/stream"
#: Seconds without a frame after which the client asks again (``follow`` with its cursor): it picks up anything a
#: failed push left behind, and keeps the connection inside API Gateway's 10-minute idle timeout
#: (https://docs.aws.amazon.com/apigateway/latest/developerguide/limits.html). Not shorter: each resync reads the
#: database, and Aurora pauses only after 5 idle minutes, so a follower of a quiet goal must not keep it awake.
IDLE_RESYNC_S = 540.0
#: Reconnect backoff: first pause and cap (seconds).
BACKOFF_S, BACKOFF_MAX_S = 0.2, 10.0


class GoalStreamEvent(BaseModel):
    """One recorded event of the goal: ``seq`` its number in the goal's stream (the resume cursor), ``event`` the
    recorded event (``event_id``, ``type``, ``topic``, ``correlation_id``, ``parent_event_id``, ``source``,
    ``time``, ``data``), ``recorded_at`` when the tracker recorded it (ISO 8601)."""

    kind: Literal["event"] = "event"
    goal_id: str
    seq: int
    recorded_at: str | None = None
    event: dict[str, Any]

    @property
    def type(self) -> str:
        return str(self.event.get("type", ""))


class GoalStreamEnd(BaseModel):
    """The goal has ended and every event was sent: its ``status`` (``completed``, ``failed``, ``cancelled``),
    ``result`` and ``error``; the last item a follow yields."""

    kind: Literal["end"] = "end"
    goal_id: str
    status: str
    result: Any = None
    error: str | None = None
    last_seq: int = 0


def stream_url(api_url: str, explicit: str | None = None) -> str:
    """The WebSocket URL: ``explicit``, else ``SOORMA_STREAM_URL``, else the API URL as ``ws(s)://…/v1/stream``
    (the local stack serves it on its own port)."""
    chosen = explicit or STREAM_URL.get()
    if chosen:
        return chosen
    parts = urlsplit(api_url)
    scheme = "wss" if parts.scheme == "https" else "ws"
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/") + LOCAL_STREAM_PATH, "", ""))



def _retry_reason(exc: BaseException, url: str, invalid_status: type[Exception]) -> str:
    """Why a stream connection failed, for the reconnect log; raises :class:`~soorma.errors.PlatformError` when
    retrying cannot help: a handshake refused with a 4xx other than 429 (``invalid_status``: websockets'
    ``InvalidStatus``, passed in because websockets is imported only where a stream is opened)."""
    if isinstance(exc, invalid_status):
        status = exc.response.status_code  # type: ignore[attr-defined]
        if status < 500 and status != 429:
            raise PlatformError(status, "the stream's handshake was refused", method="WS", url=url) from None
        return f"handshake answered {status}"
    return f"{type(exc).__name__}: {exc}"

async def follow_goal(url: str, headers: Mapping[str, str], goal_id: str, *, after: int = 0,
                      idle_resync_s: float = IDLE_RESYNC_S, max_reconnects: int | None = None,
                      ) -> AsyncIterator[GoalStreamEvent | GoalStreamEnd]:
    """Yield the goal's events after ``after`` (0: all), each once and in order, then its :class:`GoalStreamEnd`.

    A lost connection (network, server restart, API Gateway's 2-hour connection limit) is reopened with growing
    pauses and the follow resumed from the last ``seq`` yielded, so a follow has no time limit; ``max_reconnects``
    bounds consecutive failed attempts (``None``: no bound). Raises :class:`~soorma.errors.PlatformError` for a
    refused handshake (401/403) or an ``error`` frame (404 unknown goal, 400 bad cursor; ``status`` as on the HTTP
    API)."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidStatus, WebSocketException

    last, failures = after, 0
    request = {"action": "follow", "goal_id": goal_id}
    while True:
        try:
            async with connect(url, additional_headers=dict(headers), open_timeout=30, max_size=2**20) as socket:
                await socket.send(json.dumps({**request, "after": last}))
                while True:
                    try:
                        raw = await asyncio.wait_for(socket.recv(), idle_resync_s)
                    except TimeoutError:
                        await socket.send(json.dumps({**request, "after": last}))
                        continue
                    frame = json.loads(raw)
                    kind = frame.get("type")
                    if kind == "following":
                        failures = 0
                    elif kind == "event":
                        if int(frame["seq"]) <= last:
                            continue  # sent again after a resync: already yielded
                        item = GoalStreamEvent.model_validate(frame)
                        last = item.seq
                        yield item
                    elif kind == "end":
                        yield GoalStreamEnd.model_validate(frame)
                        return
                    elif kind == "error":
                        raise PlatformError(int(frame.get("status") or 400), frame.get("message"), method="WS",
                                            url=url)
        except (OSError, TimeoutError, WebSocketException) as exc:
            failures += 1
            reason = _retry_reason(exc, url, InvalidStatus)
        if max_reconnects is not None and failures > max_reconnects:
            raise PlatformError(0, f"the goal stream could not be resumed: {reason}", method="WS", url=url)
        pause = min(BACKOFF_MAX_S, BACKOFF_S * 2 ** max(0, failures - 1))
        log.info("goal %s: stream lost (%s); resuming after seq %s in %.1f s", goal_id, reason, last, pause)
        await asyncio.sleep(pause)


class StreamedEvent(BaseModel):
    """One event of an event subscription (:func:`subscribe_events`): ``seq`` its number in the subscriber's
    stream (the resume cursor), ``envelope`` the event as published (an
    :class:`~soorma.events.EventEnvelope`'s JSON object, without its delivery grant), ``recorded_at`` when the
    tracker received it (ISO 8601)."""

    seq: int
    recorded_at: str | None = None
    envelope: dict[str, Any]


HeadersSource = Callable[[], Awaitable[Mapping[str, str]]]


async def subscribe_events(url: str, headers: Mapping[str, str] | HeadersSource, *,
                           topics: Sequence[str] | None = None, event_types: Sequence[str] | None = None,
                           after: int | None = None, idle_resync_s: float = IDLE_RESYNC_S,
                           max_reconnects: int | None = None, on_subscribed: Callable[[int], Any] | None = None,
                           backoff_s: float = BACKOFF_S, backoff_max_s: float = BACKOFF_MAX_S,
                           ) -> AsyncIterator[StreamedEvent]:
    """Yield the caller's events of ``topics`` and ``event_types`` (``None``: all) as the platform receives them,
    each once and in order, without end (docs/event-client.md; the ``subscribe`` message of docs/architecture.md
    "Goal streams").

    ``after``: start after that ``seq`` (0: every event still kept; ``None``: only events from now on).
    ``headers``: the handshake's headers, or an async function returning them (called at every connect, so a token
    provider's fresh token is used after a reconnect). A lost connection is reopened with growing pauses and the
    subscription resumed after the last ``seq`` yielded; ``max_reconnects`` bounds consecutive failed attempts,
    ``backoff_s`` .. ``backoff_max_s`` the pauses (seconds, doubling). ``on_subscribed(after)`` is called at every
    ``subscribed`` frame (the platform registered the subscription; ``after``: its cursor). Raises :class:`~soorma.errors.PlatformError` for a refused handshake (401/403) or an ``error`` frame (400)."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidStatus, WebSocketException

    last, failures = after, 0
    request: dict[str, Any] = {"action": "subscribe", "topics": list(topics or []),
                               "event_types": list(event_types or [])}
    while True:
        handshake = dict(headers) if isinstance(headers, Mapping) else dict(await headers())
        try:
            async with connect(url, additional_headers=handshake, open_timeout=30, max_size=2**20) as socket:
                await socket.send(json.dumps({**request, "after": last}))
                while True:
                    try:
                        raw = await asyncio.wait_for(socket.recv(), idle_resync_s)
                    except TimeoutError:
                        await socket.send(json.dumps({**request, "after": last}))
                        continue
                    frame = json.loads(raw)
                    kind = frame.get("type")
                    if kind == "subscribed":
                        failures = 0
                        if last is None:
                            last = int(frame.get("after") or 0)
                        if on_subscribed is not None:
                            on_subscribed(last)
                    elif kind == "event" and "envelope" in frame:
                        item = StreamedEvent.model_validate(frame)
                        if last is not None and item.seq <= last:
                            continue  # sent again after a resync: already yielded
                        last = item.seq
                        yield item
                    elif kind == "error":
                        raise PlatformError(int(frame.get("status") or 400), frame.get("message"), method="WS",
                                            url=url)
        except (OSError, TimeoutError, WebSocketException) as exc:
            failures += 1
            reason = _retry_reason(exc, url, InvalidStatus)
        if max_reconnects is not None and failures > max_reconnects:
            raise PlatformError(0, f"the event subscription could not be resumed: {reason}", method="WS", url=url)
        pause = min(backoff_max_s, backoff_s * 2 ** max(0, failures - 1))
        log.info("event subscription lost (%s); resuming after seq %s in %.1f s", reason, last, pause)
        await asyncio.sleep(pause)
