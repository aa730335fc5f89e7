"""``EventClient``: soorma-core's client for scripts that publish events and listen for answers (reference §1.10).

::

    client = EventClient(agent_id="research-client", source="research-client")

    @client.on_event("research.result", topic=EventTopic.ACTION_RESULTS)
    async def on_result(event: EventEnvelope):
        ...

    await client.connect(topics=[EventTopic.ACTION_RESULTS])
    await client.publish(event_type="research.goal", topic=EventTopic.ACTION_REQUESTS, data={...},
                         correlation_id=cid, response_event="research.result", response_topic="action-results")
    ...
    await client.disconnect()

Publishing goes through the gateway (``POST /v1/events/publish``, :class:`~soorma.clients.bus.BusClient`) with the
caller's API key (``SOORMA_API_KEY``) or token (``auth_token``, ``auth_token_provider``), so the gateway sets the
identity. Listening goes through the gateway too: :meth:`connect` opens the live stream (``/v1/stream``, the
``subscribe`` message; :meth:`BusClient.stream_events`), which carries only the caller's own identity's events of
the topics asked for, so it works from any process (a script on a laptop) and never touches NATS. ``connect``
returns once the platform confirmed the subscription: an answer to a request published after it is never missed.
A lost connection is reopened with exponential backoff (``reconnect_base_delay`` .. ``reconnect_max_delay``) and
resumed after the last event received. ``connect`` first registers the definitions given as ``events_consumed``
with the registry (once); with no topics it then only prepares publishing. ``async with EventClient(...) as
client:`` disconnects on exit. Handlers run one at a time, in arrival order; exceptions are logged.
docs/event-client.md; needs ``soorma[stream]``.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from typing import Any, Awaitable, Callable

from .errors import PlatformError
from .events import EventEnvelope, EventTopic

log = logging.getLogger("soorma.event_client")

Handler = Callable[[EventEnvelope], "Awaitable[Any] | Any"]


class EventClient:
    def __init__(
        self,
        event_service_url: str | None = None,
        agent_id: str | None = None,
        source: str | None = None,
        auth_token: str | None = None,
        auth_token_provider: Any = None,
        platform_tenant_id: str | None = None,
        tenant_id: str | None = None,
        session_id: str | None = None,
        events_consumed: list[Any] | None = None,
        max_reconnect_attempts: int = -1,
        reconnect_base_delay: float = 1.0,
        reconnect_max_delay: float = 60.0,
        *,
        stream_url: str | None = None,
    ) -> None:
        from .clients.bus import BusClient
        from .settings import Settings

        settings = Settings.from_env()
        self.agent_id = agent_id or source or "soorma-client"
        self.source = source or self.agent_id
        self.bus = BusClient(event_service_url or settings.bus_base, auth_token or settings.api_key,
                             source=self.source, timeout=settings.timeout, auth_token_provider=auth_token_provider)
        self.platform_tenant_id = platform_tenant_id
        self.tenant_id = tenant_id
        self.session_id = session_id
        self.events_consumed = list(events_consumed or [])
        self.max_reconnect_attempts = max_reconnect_attempts
        self.reconnect_base_delay = reconnect_base_delay
        self.reconnect_max_delay = reconnect_max_delay
        self.stream_url = stream_url
        self._handlers: list[tuple[str | None, str | None, Handler]] = []  # (topic, event type or None=all, fn)
        self._listener: asyncio.Task[None] | None = None
        self._events_registered = False

    # --- handlers ----------------------------------------------------------------------------------------------
    def on_event(self, event_type: str, *, topic: str | EventTopic | None = None) -> Callable[[Handler], Handler]:
        def decorate(func: Handler) -> Handler:
            self._handlers.append((str(topic) if topic else None, event_type, func))
            return func

        return decorate

    def on_all_events(self, func: Handler) -> Handler:
        self._handlers.append((None, None, func))
        return func

    @property
    def is_connected(self) -> bool:
        return self._listener is not None and not self._listener.done()

    # --- connection --------------------------------------------------------------------------------------------
    async def connect(self, topics: list[str | EventTopic] | None = None, *, timeout_s: float = 30.0) -> None:
        """Listen to ``topics`` (see the module docstring); returns once the platform confirmed the subscription.

        Raises :class:`~soorma.errors.PlatformError` when the credential is refused (401/403) or the request is
        bad (400), ``TimeoutError`` when no confirmation came within ``timeout_s``. First registers ``events_consumed``
        (:meth:`register_events_consumed`, once)."""
        await self.register_events_consumed()
        from .clients import streams

        names = [str(t.value if isinstance(t, EventTopic) else t) for t in topics or []]
        if not names or self.is_connected:
            return
        try:
            import websockets  # noqa: F401 - the stream's client library, an extra
        except ImportError:
            raise ImportError("EventClient.connect listens over a WebSocket: pip install 'soorma[stream]'") from None
        confirmed: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        url = streams.stream_url(self.bus.base_url, self.stream_url)
        max_reconnects = None if self.max_reconnect_attempts < 0 else self.max_reconnect_attempts

        async def listen() -> None:
            try:
                async for item in streams.subscribe_events(
                    url, self.bus._auth_headers, topics=list(dict.fromkeys(names)), max_reconnects=max_reconnects,
                    on_subscribed=lambda after: None if confirmed.done() else confirmed.set_result(after),
                    backoff_s=self.reconnect_base_delay, backoff_max_s=self.reconnect_max_delay,
                ):
                    await self._dispatch(EventEnvelope.model_validate(item.envelope))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - handed to connect() while it waits, logged after
                if not confirmed.done():
                    confirmed.set_exception(exc)
                else:
                    log.error("the event subscription ended: %s", exc)

        self._listener = asyncio.create_task(listen())
        try:
            await asyncio.wait_for(asyncio.shield(confirmed), timeout_s)
        except BaseException:
            await self._stop_listening()
            raise

    async def _dispatch(self, event: EventEnvelope) -> None:
        topic = str(event.topic.value if isinstance(event.topic, EventTopic) else event.topic)
        for want_topic, want_type, func in list(self._handlers):
            if want_topic and want_topic != topic:
                continue
            if want_type not in (None, "*", event.type):
                continue
            try:
                result = func(event)
                if inspect.isawaitable(result):
                    await result
            except Exception:  # noqa: BLE001 - as soorma-core: a handler error is logged, the stream goes on
                log.exception("handler %s failed on %s", getattr(func, "__name__", func), event.type)

    async def _stop_listening(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.cancel()
            try:
                await listener
            except BaseException:  # noqa: BLE001 - cancelled, or already failed and logged
                pass

    async def disconnect(self) -> None:
        """Stop listening and close the HTTP client."""
        await self._stop_listening()
        await self.bus.close()

    async def register_events_consumed(self) -> int:
        """Register the event definitions given as ``events_consumed`` with the registry, as soorma-core's
        ``connect`` does: each :class:`~soorma.events.EventDefinition` (or dict, or model with ``event_name``) is
        upserted (``POST /v1/events``), and one that carries an inline ``payload_schema`` with a
        ``payload_schema_name`` also registers that schema (``POST /v1/schemas``, version ``1.0.0``; an existing
        version is left as it is). Bare event names register nothing. Runs once per client; returns how many
        definitions were registered (0 on later calls). The registry is reached at ``SOORMA_REGISTRY_URL``, else at
        this client's gateway, with this client's credentials.

        A refusal (e.g. 403 for a ``user`` key, which may not write the registry) or an unreachable registry is
        logged as a warning and the client goes on, as soorma-core's registration does: registering is a
        declaration for discovery, not a condition of publishing or listening; the next ``connect`` tries again.
        """
        if self._events_registered:
            return 0
        from .agents.base import _event_definition
        from .clients.registry import RegistryClient
        from .settings import Settings

        definitions = [d for d in (_event_definition(entry) for entry in self.events_consumed) if d]
        if definitions:
            registry = RegistryClient(Settings.from_env().registry_url or self.bus.base_url, self.bus.api_key,
                                      auth_token_provider=self.bus.auth_token_provider, timeout=self.bus.timeout,
                                      transport=self.bus._transport)
            try:
                async with registry:
                    for definition in definitions:
                        await registry.register_event(definition)
                        if definition.get("payload_schema_name") and definition.get("payload_schema"):
                            await registry.register_schema({"schema_name": definition["payload_schema_name"],
                                                            "version": "1.0.0",
                                                            "json_schema": definition["payload_schema"]})
            except PlatformError as exc:  # PlatformConnectionError too: the registry was not reached
                log.warning("events_consumed not registered (%s); publishing and listening go on", exc)
                return 0
        self._events_registered = True
        return len(definitions)

    async def __aenter__(self) -> "EventClient":
        """``async with EventClient(...) as client:`` (soorma-core): :meth:`disconnect` on exit."""
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.disconnect()

    # --- publishing --------------------------------------------------------------------------------------------
    async def publish(
        self,
        event_type: str,
        topic: str | EventTopic,
        data: dict[str, Any] | None = None,
        correlation_id: str | None = None,
        response_event: str | None = None,
        response_topic: str | None = None,
        **fields: Any,
    ) -> str:
        """Publish one event through the gateway; returns its id. ``fields``: any other envelope field
        (``tenant_id``, ``user_id``, ``session_id``, ``trace_id``, ``payload_schema_name``, ...)."""
        fields.setdefault("tenant_id", self.tenant_id)
        fields.setdefault("session_id", self.session_id)
        return await self.bus.publish(
            str(topic.value if isinstance(topic, EventTopic) else topic), event_type, data,
            correlation_id=correlation_id, response_event=response_event, response_topic=response_topic, **fields,
        )


__all__ = ["EventClient"]
