"""``PlatformContext``: the service clients a handler receives as its second argument."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .settings import Settings

if TYPE_CHECKING:
    import httpx

    from .ai.event_toolkit import EventToolkit
    from .clients import BusClient, GatewayClient, MemoryClient, RegistryClient, TrackerClient
    from .clients._http import HttpClient, TokenProvider
    from .mcp import McpClient


class PlatformContext:
    """``PlatformContext(registry=None, memory=None, bus=None, tracker=None, identity=None, toolkit=None,
    auth_token=None, auth_token_provider=None, *, gateway=None, settings=None, transport=None)``.

    Attributes ``registry`` (:class:`RegistryClient`), ``memory`` (:class:`MemoryClient`), ``bus``
    (:class:`BusClient`), ``tracker`` (:class:`TrackerClient` or ``None``), ``gateway`` (:class:`GatewayClient`),
    ``toolkit`` (:class:`~soorma.ai.event_toolkit.EventToolkit` over ``registry``, built on first use) and
    ``identity`` (:class:`~soorma.identity.client.IdentityClient`, soorma-core's identity service client). Clients not given are built from
    ``settings`` (default: from the environment); ``auth_token`` overrides the API key, ``transport`` replaces the
    network for every built client (tests). Building makes no network call.
    """

    def __init__(
        self,
        registry: RegistryClient | None = None,
        memory: MemoryClient | None = None,
        bus: BusClient | None = None,
        tracker: TrackerClient | None = None,
        identity: Any = None,
        toolkit: Any = None,
        auth_token: str | None = None,
        auth_token_provider: TokenProvider | None = None,
        *,
        gateway: GatewayClient | None = None,
        settings: Settings | None = None,
        transport: "httpx.AsyncBaseTransport | None" = None,
    ) -> None:
        from .clients import BusClient, GatewayClient, MemoryClient, RegistryClient

        self.settings = settings or Settings.from_env()
        key = auth_token or self.settings.api_key
        common: dict[str, Any] = {
            "timeout": self.settings.timeout,
            "transport": transport,
            "auth_token_provider": auth_token_provider,
        }
        self.registry = registry or RegistryClient(self.settings.registry_base, key, **common)
        self.memory = memory or MemoryClient(self.settings.memory_base, key, **common)
        self.bus = bus or BusClient(self.settings.bus_base, key, **common)
        self.gateway = gateway or GatewayClient(self.settings.base_url, key, **common)
        self.tracker = tracker
        if identity is None:
            from .identity.client import IdentityClient
            from .settings import IDENTITY_URL

            # soorma-core's context.identity; its HTTP client is made on the first call (building costs nothing)
            identity = IdentityClient(IDENTITY_URL.get() or self.settings.base_url, self.settings.timeout,
                                      transport=transport)
        self.identity = identity
        self._toolkit: EventToolkit | None = toolkit

    @property
    def toolkit(self) -> EventToolkit:
        """An :class:`~soorma.ai.event_toolkit.EventToolkit` over this context's registry client (built on first
        use)."""
        if self._toolkit is None:
            from .ai.event_toolkit import EventToolkit

            self._toolkit = EventToolkit(registry_client=self.registry)
        return self._toolkit

    @toolkit.setter
    def toolkit(self, value: Any) -> None:
        self._toolkit = value

    def mcp(self, url: str, headers: Mapping[str, str] | None = None, *, timeout: float | None = None) -> McpClient:
        """A client of the MCP server at ``url`` (:class:`soorma.mcp.McpClient`: ``list_tools()``,
        ``call_tool(name, arguments)``, ``async with`` for one connection), sending ``headers`` (its credentials:
        the platform's API key is not sent unless given here). ``timeout``: seconds per request (default 60).
        Needs the ``mcp`` extra; connects on first use."""
        from .mcp import DEFAULT_TIMEOUT_S, McpClient

        return McpClient(url, headers, timeout=timeout if timeout is not None else DEFAULT_TIMEOUT_S)

    @classmethod
    def from_env(
        cls,
        auth_token: str | None = None,
        auth_token_provider: TokenProvider | None = None,
        *,
        settings: Settings | None = None,
        transport: "httpx.AsyncBaseTransport | None" = None,
    ) -> "PlatformContext":
        """Every client (tracker included) built from ``SOORMA_*`` variables (see :class:`soorma.settings.Settings`)."""
        from .clients import TrackerClient

        settings = settings or Settings.from_env()
        tracker = TrackerClient(
            settings.tracker_base,
            auth_token or settings.api_key,
            timeout=settings.timeout,
            transport=transport,
            auth_token_provider=auth_token_provider,
        )
        return cls(
            tracker=tracker,
            auth_token=auth_token,
            auth_token_provider=auth_token_provider,
            settings=settings,
            transport=transport,
        )

    def _clients(self) -> list["HttpClient"]:
        from .clients._http import HttpClient

        found = [self.registry, self.memory, self.bus, self.gateway, self.tracker]
        return [c for c in found if isinstance(c, HttpClient)]

    def set_auth_token(self, token: str | None) -> None:
        """Use ``token`` (an API key) for every client from now on."""
        for client in self._clients():
            client.api_key = token

    def set_auth_token_provider(self, provider: TokenProvider | None) -> None:
        """Resolve the token by calling ``provider`` (sync or async) before every request."""
        for client in self._clients():
            client.auth_token_provider = provider

    async def close(self) -> None:
        """Close every client's connection pool."""
        for client in self._clients():
            await client.close()
        close_identity = getattr(self.identity, "close", None)
        if close_identity is not None:
            await close_identity()
