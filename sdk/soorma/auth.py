"""Bearer-token providers for the SDK's clients (soorma-core's ``soorma.auth``).

* :data:`AuthTokenProvider` — soorma-core's type: a callable returning a token, ``None``, or an awaitable of either;
  every client that takes ``auth_token_provider=`` calls it before each request (:func:`resolve_auth_token`).
* :class:`IdentityTokenProvider` — issues a principal's 15-minute token from the identity service with a tenant
  admin key and issues a new one 30 s before the cached one expires (what soorma-core's examples' token provider
  does, ``examples/shared/auth.py``).
* :class:`ApiKeyTokenProvider` — exchanges an API key for a token of the same identity
  (``POST /v1/identity/tokens/exchange``) and refreshes it the same way, so requests carry a short-lived token
  instead of the long-lived key.

Expiry is read from the issuer's answer (``expiresIn``), never by decoding the token, so the SDK needs no JWT
library. ``transport`` (an ``httpx`` transport) replaces the network, for tests.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from typing import Awaitable, Callable, TypeAlias

import httpx

from .identity.client import IdentityServiceClient
from .identity.models import TokenIssuanceType, TokenIssueRequest, TokenIssueResponse

AuthTokenProvider: TypeAlias = Callable[[], "str | None | Awaitable[str | None]"]

#: A cached token is replaced this many seconds before it expires (soorma-core's refresh window).
REFRESH_WINDOW_S = 30.0


async def resolve_auth_token(auth_token: str | None, auth_token_provider: AuthTokenProvider | None) -> str | None:
    """The bearer token to send: the provider's answer (awaited if it is awaitable) when a provider is given, else
    ``auth_token``; blank is ``None``."""
    resolved = auth_token
    if auth_token_provider is not None:
        provided = auth_token_provider()
        resolved = await provided if inspect.isawaitable(provided) else provided
    token = str(resolved or "").strip()
    return token or None


class _CachingProvider:
    """A token cached until :data:`REFRESH_WINDOW_S` before its expiry; one refresh at a time."""

    def __init__(self) -> None:
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock: asyncio.Lock | None = None

    async def __call__(self) -> str:
        return await self.get_token()

    async def get_token(self, force_refresh: bool = False) -> str:
        """A token valid for at least :data:`REFRESH_WINDOW_S` more seconds (a new one when ``force_refresh``)."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if force_refresh or self._token is None or time.time() >= self._expires_at - REFRESH_WINDOW_S:
                answer = await self._issue()
                self._token = answer.token
                self._expires_at = time.time() + float(answer.expires_in or 900)
            return self._token

    async def _issue(self) -> TokenIssueResponse:  # pragma: no cover - abstract
        raise NotImplementedError


class IdentityTokenProvider(_CachingProvider):
    """Tokens of ``principal_id`` issued with a tenant admin key (``tenant_admin_api_key``, else
    ``IDENTITY_TENANT_ADMIN_API_KEY``) of ``platform_tenant_id`` (else ``SOORMA_PLATFORM_TENANT_ID``); ``base_url``
    as :class:`~soorma.identity.client.IdentityServiceClient` finds it."""

    def __init__(self, principal_id: str, *, platform_tenant_id: str | None = None,
                 tenant_admin_api_key: str | None = None, base_url: str | None = None,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        super().__init__()
        self.principal_id = principal_id
        self.platform_tenant_id = platform_tenant_id
        self.tenant_admin_api_key = tenant_admin_api_key
        self.base_url = base_url
        self.transport = transport

    async def _issue(self) -> TokenIssueResponse:
        async with IdentityServiceClient(self.base_url, tenant_admin_api_key=self.tenant_admin_api_key,
                                         platform_tenant_id=self.platform_tenant_id,
                                         transport=self.transport) as client:
            return await client.issue_token(TokenIssueRequest(principal_id=self.principal_id,
                                                              issuance_type=TokenIssuanceType.PLATFORM))


class ApiKeyTokenProvider(_CachingProvider):
    """Tokens of ``api_key``'s own identity (the API key → token exchange)."""

    def __init__(self, api_key: str, *, base_url: str | None = None,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        super().__init__()
        self.api_key = api_key
        self.base_url = base_url
        self.transport = transport

    async def _issue(self) -> TokenIssueResponse:
        async with IdentityServiceClient(self.base_url, transport=self.transport) as client:
            return await client.exchange_api_key(self.api_key)


__all__ = ["REFRESH_WINDOW_S", "ApiKeyTokenProvider", "AuthTokenProvider", "IdentityTokenProvider",
           "resolve_auth_token"]
