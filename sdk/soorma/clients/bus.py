"""Bus client: publishes events through the gateway (``POST /v1/events/publish`` with ``{"event": envelope}``).

Events published while a handler runs inherit the handled event's ``trace_id``, ``goal_id``, ``plan_id``,
``session_id``, ``tenant_id`` and ``user_id``, and get ``parent_event_id`` = its id (explicit arguments win).
Publishing is idempotent: the envelope ``id`` is the JetStream message id, so a retried publish is stored once.

Later delivery (durable timers, :mod:`soorma.functions.shared.timers`): every publish path takes ``deliver_at`` (an
aware ``datetime``) or ``delay`` (seconds); the gateway stores the event and publishes it once at that time, with the
id it has now (so the event is the same if a firing is repeated). :meth:`BusClient.wait_for_event` waits for an
event without holding the handler: its outcome arrives later as an event of its own.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import datetime
from typing import Any, AsyncIterator, Mapping, Sequence

from .. import telemetry
from .._current import PendingCommit, current_event, current_source, derived_id, pending_commit
from ..errors import PlatformError
from ..events import PROGRESS_EVENT, EventEnvelope, EventTopic
from ..subjects import check_event_type
from ._http import HttpClient, TokenProvider

_log = logging.getLogger(__name__)

ACTION_REQUESTS = EventTopic.ACTION_REQUESTS.value
ACTION_RESULTS = EventTopic.ACTION_RESULTS.value
BUSINESS_FACTS = EventTopic.BUSINESS_FACTS.value

_PROPAGATED = ("trace_id", "parent_event_id", "goal_id", "plan_id", "session_id", "tenant_id", "user_id")


class _Unpackable(EventEnvelope):
    """An envelope that also unpacks as keyword arguments (``**envelope``) of :meth:`BusClient.request` /
    :meth:`BusClient.respond`, as soorma-core's docs use it: ``await bus.request(**bus.create_child_request(...))``.
    Publish it whole with :meth:`BusClient.publish_envelope`."""

    _argument_names: tuple[str, ...] = ()

    def keys(self) -> list[str]:
        return [n for n in self._argument_names if self[n] is not None]

    def __getitem__(self, name: str) -> Any:
        if name == "event_type":
            return self.type
        if name in ("data",):
            return self.data
        return getattr(self, name)


class ChildRequest(_Unpackable):
    """What :meth:`BusClient.create_child_request` returns."""

    _argument_names = ("event_type", "data", "response_event", "correlation_id", "response_topic", "trace_id",
                       "parent_event_id", "tenant_id", "user_id", "session_id", "goal_id", "plan_id")


class Response(_Unpackable):
    """What :meth:`BusClient.create_response` returns."""

    _argument_names = ("event_type", "data", "correlation_id", "topic", "trace_id", "parent_event_id",
                       "payload_schema_name", "tenant_id", "user_id", "session_id", "goal_id", "plan_id")


class BusClient(HttpClient):
    """soorma-core's ``context.bus`` (reference §1.9), publishing over HTTP.

    ``BusClient(base_url=None, api_key=None, auth_token=None, auth_token_provider=None, *, source="soorma-sdk",
    timeout=30, transport=None)``, or soorma-core's ``BusClient(event_client)`` (positional or ``event_client=``):
    an adapter that publishes as that :class:`~soorma.event_client.EventClient` does (its gateway URL, token, token
    provider, timeout, transport and ``source``) and keeps it as :attr:`event_client`. Every publish returns the event
    id and raises :class:`soorma.errors.PlatformError` if the gateway refused it, ``InvalidSubjectToken`` (a
    ``ValueError``) for an event type that cannot be a subject.
    """

    settings_base = "bus_base"
    #: The ``source`` of the events this client publishes outside handlers (inside one, the agent's name).
    source: str

    def __init__(
        self,
        base_url: Any = None,
        api_key: str | float | None = None,
        auth_token: str | None = None,
        auth_token_provider: TokenProvider | None = None,
        *,
        source: str | None = None,
        event_client: Any = None,
        **kwargs: Any,
    ) -> None:
        if base_url is not None and not isinstance(base_url, str):
            if event_client is not None:
                raise TypeError("event client given twice (positionally and as event_client=)")
            base_url, event_client = None, base_url
        #: soorma-core's ``bus.event_client``: the client this bus publishes as, when built from one.
        self.event_client = event_client
        if event_client is not None:
            # Duck-typed (an object whose ``bus`` is a BusClient): the EventClient class sits in a layer above this one.
            adopted = getattr(event_client, "bus", None)
            if not isinstance(adopted, BusClient):
                raise TypeError(f"BusClient(event_client): {type(event_client).__name__} is not an EventClient")
            if base_url is not None or api_key is not None or auth_token is not None:
                raise TypeError("BusClient(event_client) takes its URL and token from the event client")
            kwargs.setdefault("timeout", adopted.timeout)
            kwargs.setdefault("transport", adopted._transport)
            super().__init__(adopted.base_url, adopted.api_key,
                             auth_token_provider=auth_token_provider or adopted.auth_token_provider, **kwargs)
            self.source = source or adopted.source
            return
        super().__init__(base_url, api_key, auth_token, auth_token_provider, **kwargs)
        self.source = source or "soorma-sdk"

    async def publish(
        self,
        topic: str | EventTopic,
        event_type: str,
        data: Mapping[str, Any] | None = None,
        correlation_id: str | None = None,
        response_event: str | None = None,
        response_topic: str | None = None,
        response_schema_name: str | None = None,
        trace_id: str | None = None,
        parent_event_id: str | None = None,
        payload_schema_name: str | None = None,
        subject: str | None = None,
        tenant_id: str | None = None,
        user_id: str | None = None,
        session_id: str | None = None,
        goal_id: str | None = None,
        plan_id: str | None = None,
        deliver_at: datetime | None = None,
        delay: float | None = None,
    ) -> str:
        """Publish one event on ``topic``; returns its id. ``deliver_at`` (timezone-aware) or ``delay`` (seconds > 0):
        publish it once at that time instead of now (a durable timer: it survives restarts)."""
        envelope = EventEnvelope(
            type=event_type,
            topic=EventTopic(topic),
            data=dict(data or {}),
            correlation_id=correlation_id,
            response_event=response_event,
            response_topic=str(response_topic) if response_topic else None,
            response_schema_name=response_schema_name,
            trace_id=trace_id,
            parent_event_id=parent_event_id,
            payload_schema_name=payload_schema_name,
            subject=subject,
            tenant_id=tenant_id,
            user_id=user_id,
            session_id=session_id,
            goal_id=goal_id,
            plan_id=plan_id,
        )
        if current_source() is None:
            envelope.source = self.source
        return await self.publish_envelope(envelope, deliver_at=deliver_at, delay=delay)

    async def request(
        self,
        event_type: str,
        data: Mapping[str, Any] | None,
        response_event: str,
        correlation_id: str | None = None,
        response_topic: str | EventTopic = ACTION_RESULTS,
        **kwargs: Any,
    ) -> str:
        """Publish an action request on ``action-requests`` expecting ``response_event`` on ``response_topic``.
        A correlation id is generated when none is given (responders echo it)."""
        return await self.publish(
            ACTION_REQUESTS,
            event_type,
            data,
            correlation_id=correlation_id or str(uuid.uuid4()),
            response_event=response_event,
            response_topic=response_topic,
            **kwargs,
        )

    async def respond(
        self,
        event_type: str,
        data: Mapping[str, Any] | None,
        correlation_id: str | None,
        topic: str | EventTopic = ACTION_RESULTS,
        **kwargs: Any,
    ) -> str:
        """Publish a response (default topic ``action-results``) carrying the request's ``correlation_id``."""
        return await self.publish(topic, event_type, data, correlation_id=correlation_id, **kwargs)

    async def announce(self, event_type: str, data: Mapping[str, Any] | None, **kwargs: Any) -> str:
        """Publish a fact on ``business-facts`` (no response expected)."""
        return await self.publish(BUSINESS_FACTS, event_type, data, **kwargs)

    def create_child_request(
        self,
        parent_event: EventEnvelope,
        event_type: str,
        data: Mapping[str, Any] | None,
        response_event: str,
        new_correlation_id: str | None = None,
    ) -> EventEnvelope:
        """Build (not publish) an action request caused by ``parent_event``, inheriting its propagated fields.
        Publish it with ``publish_envelope(child)`` or ``request(**child)``."""
        return ChildRequest(
            source=current_source() or self.source,
            type=event_type,
            topic=EventTopic.ACTION_REQUESTS,
            data=dict(data or {}),
            correlation_id=new_correlation_id or str(uuid.uuid4()),
            response_event=response_event,
            response_topic=ACTION_RESULTS,
            **parent_event.propagation(),
        )

    def create_response(
        self, request_event: EventEnvelope, data: Mapping[str, Any] | None, payload_schema_name: str | None = None
    ) -> EventEnvelope:
        """Build (not publish) the response to ``request_event``: its ``response_event`` type on its
        ``response_topic`` (default ``action-results``) with its ``correlation_id``. Raises ``ValueError`` if the
        request names no ``response_event``. Publish it with ``publish_envelope(response)`` or
        ``respond(**response)``."""
        if not request_event.response_event:
            raise ValueError(f"event {request_event.id} ({request_event.type}) has no response_event")
        return Response(
            source=current_source() or self.source,
            type=request_event.response_event,
            topic=EventTopic(request_event.response_topic or ACTION_RESULTS),
            data=dict(data or {}),
            correlation_id=request_event.correlation_id or request_event.id,
            payload_schema_name=payload_schema_name,
            **request_event.propagation(),
        )

    async def publish_envelope(self, envelope: EventEnvelope, *, deliver_at: datetime | None = None,
                               delay: float | None = None) -> str:
        """Publish a ready envelope; fields it leaves empty are filled from the event being handled. ``deliver_at``
        (timezone-aware) or ``delay`` (seconds > 0): publish it once at that time (see the module docstring). Raises
        ``ValueError`` for both, a naive ``deliver_at`` or a ``delay`` that is not positive."""
        timing = _timing(deliver_at, delay)
        check_event_type(envelope.type)
        event = current_event()
        if event is not None:
            inherited = event.propagation()
            update = {k: inherited[k] for k in _PROPAGATED if getattr(envelope, k) is None and inherited[k]}
            if "source" not in envelope.model_fields_set and current_source():
                update["source"] = current_source()
            if "id" not in envelope.model_fields_set:
                # A generated id becomes deterministic, so a retried handler's publishes are de-duplicated.
                update["id"] = derived_id(f"event:{envelope.type}")
            if envelope.traceparent is None:
                update["traceparent"] = telemetry.current_traceparent()
            envelope = envelope.model_copy(update=update)
        payload = envelope.model_dump(mode="json", exclude_none=True)
        unit = pending_commit()
        if unit is not None and not timing and unit.takes_event(envelope.tenant_id, envelope.user_id):
            if envelope.type == PROGRESS_EVENT:
                unit.early.append(payload)  # sent at the handler's next await, or with its commit (PendingCommit.early)
                if unit.early_send is None or unit.early_send.done():
                    unit.early_send = asyncio.get_running_loop().create_task(self._send_early(unit))
            else:
                unit.events.append(payload)  # published by the handler's commit (:meth:`commit`) when it returns
            return envelope.id
        return await self._publish_now(payload, timing)

    async def _publish_now(self, payload: dict[str, Any], timing: Mapping[str, Any] | None = None) -> str:
        """``POST /v1/events/publish`` of one envelope's JSON; returns the event id. Raises :class:`PlatformError`."""
        body = await self._request("POST", "/v1/events/publish", json={"event": payload, **(timing or {})})
        if isinstance(body, dict) and body.get("success") is False:
            raise PlatformError(200, body.get("message") or body, method="POST", url=f"{self.base_url}/v1/events/publish")
        return str((body or {}).get("event_id") or (body or {}).get("eventId") or payload["id"])

    async def _send_early(self, unit: PendingCommit) -> None:
        """The background send of a handler run's progress reports (:attr:`PendingCommit.early`): one at a time, in
        order, until none is left; what the commit took first is not sent here."""
        while unit.early:
            await self._publish_now(unit.early.pop(0))

    async def settle_early(self, unit: PendingCommit, *, send_rest: bool) -> list[dict[str, Any]]:
        """End the background send of ``unit``'s progress reports: take the ones not sent yet, wait for the send in
        flight (so what it carries reaches the bus first), and either return the taken ones (``send_rest=False``: the
        commit carries them) or publish them now and return ``[]`` (``send_rest=True``: the run failed, so there is
        no commit, but what it reported stays visible, as a report sent at once would have). Raises what the send in
        flight raised (``send_rest=False``), :class:`PlatformError`."""
        taken = unit.take_early()
        if unit.early_send is not None:
            sending, unit.early_send = unit.early_send, None
            try:
                await sending
            except Exception as exc:
                if not send_rest:
                    raise
                _log.warning("a progress report of a failed run was not published: %s", exc)
        if not send_rest:
            return taken
        for payload in taken:
            try:
                await self._publish_now(payload)
            except Exception as exc:  # the run failed already; its redelivery reports again, with the same ids
                _log.warning("a progress report of a failed run was not published: %s", exc)
        return []

    async def commit_body(self, unit: PendingCommit, *, key: str, expiry_timestamp: int,
                          spans: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """The ``POST /v1/events/commit`` body of what one handler run buffered (``{key, expiry_timestamp, events,
        task_contexts, deleted_task_contexts, spans?}``, docs/performance.md): its progress reports not
        sent yet first (:meth:`settle_early`, which ends their background send), then its other events. Raises what
        a progress report's send in flight raised."""
        early = await self.settle_early(unit, send_rest=False)
        unit.events[0:0] = early  # part of the run's events from now on (a deferred run's body is built once)
        body: dict[str, Any] = {
            "key": key,
            "expiry_timestamp": expiry_timestamp,
            "events": list(unit.events),
            "task_contexts": [{**fields, **({"version": expected} if expected is not None else {})}
                              for fields, expected in unit.task_contexts.values()],
            "deleted_task_contexts": list(unit.deleted),
        }
        if spans:
            body["spans"] = spans
        return body

    async def commit(self, unit: PendingCommit, *, key: str, expiry_timestamp: int,
                     spans: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """Apply what one handler run buffered (``POST /v1/events/commit``, :mod:`soorma.functions.gateway.commit`):
        its events (:meth:`commit_body`), task-context writes and deletions in one transaction with the idempotency
        record ``key`` (epoch seconds ``expiry_timestamp``), the events then published with their ids. Returns
        ``{"replayed", "event_ids", "task_versions"}``; ``replayed``: the key was committed before and nothing new
        was applied. Raises :class:`~soorma.errors.ConflictError` (a task context changed since the run read it:
        nothing was applied) and :class:`PlatformError`. ``spans``: finished spans of the delivery
        (:func:`soorma.telemetry.commit_spans`), stored in the same transaction; the request then makes no client
        span of its own but sends the delivery's ``traceparent``, below which the gateway records the commit's
        server span."""
        body = await self.commit_body(unit, key=key, expiry_timestamp=expiry_timestamp, spans=spans)
        return await self.send_commit(body, tenant_id=unit.tenant_id, user_id=unit.user_id,
                                      traceparent=telemetry.commit_traceparent() if spans else None)

    async def send_commit(self, body: Mapping[str, Any], *, tenant_id: str | None, user_id: str | None,
                          traceparent: str | None = None) -> dict[str, Any]:
        """``POST /v1/events/commit`` of a body from :meth:`commit_body` for the service tenant and user
        ``tenant_id``/``user_id``; returns and raises as :meth:`commit`. ``traceparent``: the parent of the gateway's
        server span (the request then makes no client span of its own)."""
        headers = {"traceparent": traceparent} if traceparent else {}
        answer = await self._request("POST", "/v1/events/commit", json=body, tenant_id=tenant_id, user_id=user_id,
                                     headers=headers, client_span=not traceparent)
        return dict(answer or {})

    async def commit_runs(self, bodies: Sequence[Mapping[str, Any]], *, tenant_id: str | None, user_id: str | None,
                          traceparent: str | None = None) -> list[dict[str, Any]]:
        """Apply several handler runs' commits (bodies of :meth:`commit_body`, in the order the runs happened) in
        ONE request and one transaction (``POST /v1/events/commits``, :mod:`soorma.functions.gateway.commit_batch`),
        for the service tenant and user ``tenant_id``/``user_id``. Returns one ``{"replayed", "event_ids",
        "task_versions"}`` per body, in order. All or nothing: raises :class:`~soorma.errors.ConflictError` or
        :class:`PlatformError` (the detail names the failing ``commits[i]``) and nothing was applied (a 503: the
        events of applied commits are published by repeating the same request). ``traceparent``: the parent of the
        gateway's server span."""
        headers = {"traceparent": traceparent} if traceparent else {}
        answer = await self._request("POST", "/v1/events/commits", json={"commits": list(bodies)},
                                     tenant_id=tenant_id, user_id=user_id, headers=headers,
                                     client_span=not traceparent)
        return [dict(result) for result in (answer or {}).get("results", [])]

    async def wait_for_event(
        self,
        event_type: str,
        *,
        correlation_id: str,
        timeout: float,
        resume_event: str,
        resume_topic: str | EventTopic = BUSINESS_FACTS,
        data: Mapping[str, Any] | None = None,
        wait_id: str | None = None,
        goal_id: str | None = None,
    ) -> dict[str, Any]:
        """Wait for an event of ``event_type`` carrying ``correlation_id``, at most ``timeout`` seconds, without
        holding this handler: the platform publishes ``resume_event`` on ``resume_topic`` (with ``data`` plus
        ``data["wait"]`` = ``{wait_id, status: "satisfied" | "timed_out", event_id?, event_type?, event_data?}``)
        once the event is recorded, or at the timeout. Race-free: an event recorded *before* this call satisfies it
        too (``status`` is then ``"satisfied"`` in the answer). The awaited event must belong to a goal (carry
        ``goal_id``; events published while handling a goal's events do). The resume event inherits the handled
        event's trace, goal, session and identity like any publish. ``wait_id`` (a UUID) makes a retried call the
        same wait. ``goal_id``: the resume event's goal when no handled event gives one. Returns ``{wait_id, status,
        timer_id}`` (``POST /v1/waits``)."""
        check_event_type(event_type)
        resume = EventEnvelope(type=resume_event, topic=EventTopic(resume_topic), data=dict(data or {}),
                               correlation_id=correlation_id, goal_id=goal_id)
        event = current_event()
        update: dict[str, Any] = {"source": current_source() or self.source}
        if event is not None:
            inherited = event.propagation()
            update.update({k: inherited[k] for k in _PROPAGATED if inherited[k] and getattr(resume, k) is None})
        resume = resume.model_copy(update=update)
        check_event_type(resume.type)
        payload: dict[str, Any] = {"correlation_id": correlation_id, "event_type": event_type,
                                   "timeout_seconds": timeout,
                                   "resume": resume.model_dump(mode="json", exclude_none=True, exclude={"id"})}
        if wait_id is not None:
            payload["wait_id"] = wait_id
        elif event is not None:  # a retried handler registers the same wait
            payload["wait_id"] = derived_id(f"wait:{event_type}:{correlation_id}")
        body = await self._request("POST", "/v1/waits", json=payload)
        return dict(body or {})

    async def stream_events(
        self, topics: Sequence[str | EventTopic] | None = None, event_types: Sequence[str] | None = None, *,
        after: int | None = None, stream_url: str | None = None, max_reconnects: int | None = None,
    ) -> AsyncIterator[EventEnvelope]:
        """The caller's events of ``topics`` and ``event_types`` (``None``: all), as the platform receives them,
        without end: ``async for event in bus.stream_events(["action-results"])``. Through the gateway's live
        stream (``subscribe`` on ``/v1/stream``, :func:`soorma.clients.streams.subscribe_events`; never NATS), so it
        works from any process holding an API key or token, and only ever yields events of the caller's own
        identity. ``after``: resume after that stream number (``None``: from now on). Reconnects by itself; raises
        :class:`~soorma.errors.PlatformError` for a refused credential (401/403) or a bad request (400). Needs
        ``soorma[stream]``. docs/event-client.md."""
        try:  # listening is an extra (the platform's own functions never listen, and their layers lack websockets)
            import websockets  # noqa: F401

            from . import streams
        except ImportError:
            raise ImportError("BusClient.stream_events listens over a WebSocket: pip install 'soorma[stream]'") from None

        url = streams.stream_url(self.base_url, stream_url)
        names = [t.value if isinstance(t, EventTopic) else str(t) for t in topics or []]
        async for item in streams.subscribe_events(url, self._auth_headers, topics=names, event_types=event_types,
                                                   after=after, max_reconnects=max_reconnects):
            yield EventEnvelope.model_validate(item.envelope)

    async def subscribe(self, topics: list[str]) -> None:
        """soorma-core's ``BusClient.subscribe(topics)``: start the bus's ``EventClient`` listening on ``topics``
        (its ``on_event`` handlers run for them; :meth:`soorma.EventClient.connect`). A bus made without an event
        client has no handlers to run: iterate :meth:`stream_events` instead. Raises ``RuntimeError`` then."""
        event_client = getattr(self, "event_client", None)
        if event_client is None:
            raise RuntimeError("BusClient.subscribe needs the EventClient whose handlers receive the events "
                               "(BusClient(event_client)); without one, iterate bus.stream_events(topics)")
        await event_client.connect(topics)


def _timing(deliver_at: datetime | None, delay: float | None) -> dict[str, Any]:
    """The publish body's ``deliver_at`` / ``delay_seconds`` (empty: publish now)."""
    if deliver_at is not None and delay is not None:
        raise ValueError("give deliver_at or delay, not both")
    if deliver_at is not None:
        if deliver_at.tzinfo is None or deliver_at.utcoffset() is None:
            raise ValueError("deliver_at must be timezone-aware (e.g. datetime.now(UTC) + timedelta(minutes=5))")
        return {"deliver_at": deliver_at.isoformat()}
    if delay is not None:
        if not delay > 0:
            raise ValueError("delay must be a positive number of seconds")
        return {"delay_seconds": float(delay)}
    return {}
