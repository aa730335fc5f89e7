"""The HTTP layer shared by the service clients: auth, identity headers, retries, error mapping."""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
import weakref
from contextlib import nullcontext
from contextvars import ContextVar, Token
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Mapping, Self

if TYPE_CHECKING:  # httpx is imported on the first request, not with the SDK (cold starts)
    import httpx

from .. import telemetry
from .._current import delivering, identity_headers
from ..errors import ConflictError, PlatformConnectionError, PlatformError, PlatformUnavailableError
from ..events import EventEnvelope
from ..settings import DEFAULT_TIMEOUT, Settings

log = logging.getLogger("soorma.clients")

TokenProvider = Callable[[], "str | None | Awaitable[str | None]"]

# Statuses worth one more try: the gateway or a cold function answered "not now". Every call the SDK makes is
# idempotent (upserts, reads, deletes, and publishes deduplicated by the envelope id), so a retry is safe.
_RETRY_STATUSES = {502, 503, 504}
_RETRIES = 2
_BACKOFF = 0.2
# 429 (rate limited) is retried too, after the ``Retry-After`` the platform sent (RFC 9110 section 10.2.3), as the AWS
# SDKs and Kubernetes' client-go do with throttling answers: a throttled call that gives up loses the work it was
# part of (a publish, the release of an idempotency record). Bounded: at most _THROTTLE_RETRIES tries and
# _THROTTLE_WAIT_CAP seconds per wait, so a caller far over its limit still sees the 429.
_THROTTLE_RETRIES = 4
_THROTTLE_WAIT_CAP = 5.0


def retry_after_seconds(value: str | None, default: float) -> float:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds; an HTTP date or garbage → ``default``), at most
    :data:`_THROTTLE_WAIT_CAP`."""
    try:
        seconds = float(value) if value is not None else default
    except ValueError:
        seconds = default
    return min(max(seconds, 0.0), _THROTTLE_WAIT_CAP)


class HttpClient:
    """One base URL, one API key, one lazily created ``httpx.AsyncClient`` per event loop.

    ``transport`` replaces the network (tests pass ``httpx.MockTransport``). An ``AsyncClient``'s connection pool is
    bound to the loop it was created on, so each loop that uses this client gets its own (created on first use there,
    kept in a weak map that forgets it with its loop): threads with loops of their own (:mod:`soorma.runtime` keeps
    one per thread) share one ``HttpClient`` safely. In a Lambda environment there is one loop, so one pool.

    soorma-core's client surface is here too, as adapters over the same fields: ``auth_token=`` and a positional
    ``timeout`` (:meth:`__init__`), no base URL, :meth:`set_auth_token`, :meth:`set_auth_token_provider`,
    :meth:`bind_event_metadata` / :meth:`reset_event_metadata`, and ``async with`` (closes the pools on exit).
    """

    #: The :class:`~soorma.settings.Settings` property that gives this client's base URL when none is passed
    #: (``MemoryClient()``, as soorma-core's clients default to their service's URL).
    settings_base = "base_url"

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | float | None = None,
        auth_token: str | None = None,
        auth_token_provider: TokenProvider | None = None,
        *,
        timeout: float | None = None,
        transport: "httpx.AsyncBaseTransport | None" = None,
    ) -> None:
        """Two call styles are accepted, this SDK's and soorma-core's (a thin adapter: both set the same fields).

        Parameters
        ----------
        base_url:
            The platform's base URL. ``None``: read from the environment (:class:`soorma.settings.Settings`, the
            property named by :attr:`settings_base`), and then the API key too when no token is given, so
            ``MemoryClient()`` reaches the platform as ``PlatformContext.from_env()`` does.
        api_key:
            The bearer token (an API key ``sk_...`` or a JWT). A number here is soorma-core's positional
            ``timeout`` (``RegistryClient(url, 30.0, token)``).
        auth_token:
            soorma-core's name for ``api_key``.
        auth_token_provider:
            ``() -> str | None`` or ``async () -> str | None``, called before every request; its token wins.
        timeout:
            Seconds per request (default ``SOORMA_HTTP_TIMEOUT``, 30).
        transport:
            Replaces the network (tests pass ``httpx.MockTransport``).

        Raises
        ------
        TypeError
            ``timeout`` given both positionally and by name.
        ValueError
            Two different tokens (``api_key`` and ``auth_token``).
        """
        if isinstance(api_key, (int, float)) and not isinstance(api_key, bool):
            if timeout is not None:
                raise TypeError("timeout given twice (positionally, soorma-core style, and by name)")
            timeout, api_key = float(api_key), None
        if api_key is not None and auth_token is not None and api_key != auth_token:
            raise ValueError("give api_key or auth_token (soorma-core's name for it), not two different tokens")
        token = api_key if api_key is not None else auth_token
        if base_url is None:
            settings = Settings.from_env()
            base_url = getattr(settings, self.settings_base)
            if token is None and auth_token_provider is None:
                token = settings.api_key
            if timeout is None:
                timeout = settings.timeout
        self.base_url = base_url.rstrip("/")
        self.api_key = token
        self.timeout = DEFAULT_TIMEOUT if timeout is None else timeout
        self.auth_token_provider = auth_token_provider
        self._transport = transport
        self._clients: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient]" = (
            weakref.WeakKeyDictionary())
        self._lock = threading.Lock()
        # One variable per client, as soorma-core binds per wrapper: a handler's binding on ``context.memory`` leaves
        # other clients alone, and concurrent tasks each see their own (contextvars copy per task).
        self._bound_event: ContextVar[EventEnvelope | None] = ContextVar(
            f"soorma_client_bound_event_{id(self)}", default=None)

    # --- soorma-core's per-client credentials and identity binding -----------------------------------------------
    def set_auth_token(self, token: str | None) -> None:
        """Send ``token`` (API key or JWT) as ``Authorization: Bearer`` from now on (soorma-core's name)."""
        self.api_key = token

    def set_auth_token_provider(self, provider: TokenProvider | None) -> None:
        """Call ``provider`` (sync or async) before every request for the bearer token; ``None`` stops it."""
        self.auth_token_provider = provider

    def bind_event_metadata(self, event: EventEnvelope) -> "Token[EventEnvelope | None]":
        """Make this client's calls act for ``event`` in the current context (soorma-core's wrappers do this per
        handled event): calls without ``tenant_id``/``user_id`` use the event's, and its delivery grant goes along
        (as inside the event's handler, :func:`soorma._current.identity_headers`). Returns the token for
        :meth:`reset_event_metadata`. Inside an agent's handlers this happens by itself; bind explicitly only for
        work done outside them (e.g. a task spawned with its own context)."""
        return self._bound_event.set(event)

    def reset_event_metadata(self, token: "Token[EventEnvelope | None]") -> None:
        """Undo :meth:`bind_event_metadata` (the binding before it applies again)."""
        self._bound_event.reset(token)

    async def __aenter__(self) -> Self:
        """``async with Client(...) as client:`` (soorma-core's clients): the client itself; :meth:`close` on exit."""
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def _http(self) -> "httpx.AsyncClient":
        """The running loop's ``AsyncClient`` (created on first use on that loop, or after it was closed)."""
        import httpx

        loop = asyncio.get_running_loop()
        with self._lock:
            client = self._clients.get(loop)
            if client is None or client.is_closed:
                client = httpx.AsyncClient(base_url=self.base_url, timeout=self.timeout, transport=self._transport)
                self._clients[loop] = client
        return client

    async def _auth_headers(self) -> dict[str, str]:
        token = self.api_key
        if self.auth_token_provider is not None:
            provided = self.auth_token_provider()
            if inspect.isawaitable(provided):
                provided = await provided
            token = provided or token
        return {"Authorization": f"Bearer {token}"} if token else {}

    async def _request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        tenant_id: str | None = None,
        user_id: str | None = None,
        not_found: Any = ...,
        headers: Mapping[str, str] | None = None,
        client_span: bool = True,
    ) -> Any:
        """Send a request and return the decoded JSON body (``None`` for an empty body).

        Identity headers come from ``tenant_id``/``user_id`` or the event being handled. ``not_found``: the value to
        return on 404 instead of raising. Raises :class:`PlatformError` on any other 4xx/5xx and
        :class:`PlatformConnectionError` when the platform cannot be reached (after retries). ``headers``: extra
        request headers (e.g. ``Idempotency-Key``). ``client_span``: ``False`` for a request whose server records
        its own span (a commit carrying the delivery's spans, :meth:`soorma.clients.bus.BusClient.commit`).
        """
        import httpx

        bound = self._bound_event.get()
        if bound is None:
            acting_for = identity_headers(tenant_id, user_id)
        else:
            with delivering(bound):
                acting_for = identity_headers(tenant_id or bound.tenant_id, user_id or bound.user_id)
        headers = {**(headers or {}), **await self._auth_headers(), **acting_for}
        query = {k: v for k, v in (params or {}).items() if v is not None}
        url = f"{self.base_url}{path}"
        attempt = throttled = 0
        while True:
            try:
                with telemetry.client_span(f"{method} {path}", {"http.request.method": method, "url.full": url},
                                           headers) if client_span else nullcontext() as span:
                    response = await self._http().request(method, path, json=json, params=query, headers=headers)
                    if span is not None:
                        span.set_attribute("http.response.status_code", response.status_code)
            except httpx.TransportError as exc:
                if attempt < _RETRIES:
                    await asyncio.sleep(_BACKOFF * 2**attempt)
                    attempt += 1
                    continue
                raise PlatformConnectionError(f"{type(exc).__name__}: {exc}", method=method, url=url) from exc
            if response.status_code == 429 and throttled < _THROTTLE_RETRIES:
                wait = retry_after_seconds(response.headers.get("retry-after"), _BACKOFF * 2**throttled)
                log.info("%s %s -> 429, retrying after %.2f s", method, url, wait)
                await asyncio.sleep(wait)
                throttled += 1
                continue
            if response.status_code == 503 and "retry-after" in response.headers:
                # The platform already waited what it could for its database (SOORMA_DB_CONNECT_WAIT_S) and says
                # when to come back: a retry now would wait as long again and eat the caller's time (an agent's
                # invocation); the caller decides (the agent runtime reports the event "retry later").
                break
            if response.status_code in _RETRY_STATUSES and attempt < _RETRIES:
                log.debug("%s %s -> %s, retrying", method, url, response.status_code)
                await asyncio.sleep(_BACKOFF * 2**attempt)
                attempt += 1
                continue
            break
        if response.status_code == 404 and not_found is not ...:
            return not_found
        if response.status_code == 409:
            raise ConflictError(409, _detail(response), method=method, url=url)
        if response.status_code == 503:
            retry_after = response.headers.get("retry-after")
            seconds = retry_after_seconds(retry_after, 0.0) if retry_after is not None else 0.0
            raise PlatformUnavailableError(_detail(response), method=method, url=url, retry_after_s=seconds or None)
        if response.status_code >= 400:
            raise PlatformError(response.status_code, _detail(response), method=method, url=url)
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            return response.text

    async def close(self) -> None:
        """Close the running loop's connection pool and forget the others (safe to call twice; a client is
        re-created on next use). A pool of another loop can only be closed on that loop: a loop that is closed took
        its sockets with it, and one still open keeps its pool until it is garbage-collected."""
        loop = asyncio.get_running_loop()
        with self._lock:
            client = self._clients.pop(loop, None)
            self._clients.clear()
        if client is not None and not client.is_closed:
            try:
                await client.aclose()
            except RuntimeError:  # its loop is gone; nothing left to close cleanly
                pass


def _detail(response: "httpx.Response") -> Any:
    try:
        body = response.json()
    except ValueError:
        return response.text or response.reason_phrase
    if isinstance(body, dict) and "detail" in body:
        return body["detail"]
    return body


def json_object(body: Any) -> dict[str, Any]:
    """``body``, a decoded answer of a route whose response model is a JSON object, typed as one.

    Raises ``TypeError`` when it is not an object (a platform answering outside its contract).
    """
    if not isinstance(body, dict):
        raise TypeError(f"expected a JSON object from the platform, got {type(body).__name__}")
    return body


def snake_keys(obj: Mapping[str, Any]) -> dict[str, Any]:
    """Top-level keys camelCase → snake_case (nested values, e.g. user data, are left alone)."""
    return {_snake(k): v for k, v in obj.items()}


def _snake(name: str) -> str:
    out = []
    for ch in name:
        if ch.isupper():
            out.append("_")
            out.append(ch.lower())
        else:
            out.append(ch)
    return "".join(out).lstrip("_") if not name.startswith("_") else "".join(out)
