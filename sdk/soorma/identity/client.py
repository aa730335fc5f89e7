"""soorma-core's identity clients on this platform's identity service (``/v1/identity/*``,
:mod:`soorma.functions.identity.service`): :class:`IdentityServiceClient` (soorma-core's low-level client,
its method names and signatures) and :class:`IdentityClient` (its agent-facing wrapper, also ``from soorma import
IdentityClient``).

Where the service is: ``base_url``, else ``SOORMA_IDENTITY_URL`` (soorma-core's per-service variable), else
``SOORMA_API_URL`` (one base URL serves every route), else the local stack's ``credentials.json``.

Which credential goes in ``X-Identity-Admin-Key`` (soorma-core's header, reference §2.5): onboarding and
:meth:`IdentityServiceClient.onboard_tenant` send the superuser key (argument ``superuser_api_key``, the client's
``admin_api_key``, ``IDENTITY_SUPERUSER_API_KEY``, its alias ``IDENTITY_ADMIN_API_KEY``, else the local stack's
``admin_api_key``): here an API key of a platform admin. Every other call sends the tenant admin key (argument
``tenant_admin_api_key``, the client's (or the one it got from onboarding), ``IDENTITY_TENANT_ADMIN_API_KEY``, else
the local stack's ``tenant_admin_api_key``): an ``admin`` API key of the tenant. Unlike soorma-core there is no default key (``dev-identity-admin``):
without a key the call fails with :class:`IdentityCredentialMissing`. ``X-Tenant-ID`` carries ``platform_tenant_id``
(argument, :meth:`IdentityServiceClient.set_platform_tenant_id`, else ``SOORMA_PLATFORM_TENANT_ID``); the platform
refuses it when it is not the key's own tenant.

soorma-core's positional ``service_tenant_id`` / ``service_user_id`` arguments are accepted and not sent: the
credential alone says who calls (reference §2.0: soorma-core's service ignored them too since its JWT cut-over).
Errors are ``httpx.HTTPStatusError`` (``raise_for_status``), as soorma-core's client raises.
"""

from __future__ import annotations

import contextvars
import os
from typing import Any, TypeVar

import httpx

from soorma.settings import (
    API_URL,
    DEFAULT_API_URL,
    DEFAULT_TIMEOUT,
    IDENTITY_ADMIN_API_KEY,
    IDENTITY_SUPERUSER_API_KEY,
    IDENTITY_TENANT_ADMIN_API_KEY,
    IDENTITY_URL,
    PLATFORM_TENANT_ID,
    _credentials,
)

from .models import (
    DelegatedIssuerRequest,
    DelegatedIssuerResponse,
    IdentityDTO,
    MappingEvaluationRequest,
    MappingEvaluationResponse,
    OnboardingRequest,
    OnboardingResponse,
    PrincipalRequest,
    PrincipalResponse,
    TenantAdminCredentialRotateResponse,
    TokenIssueRequest,
    TokenIssueResponse,
)

ResponseT = TypeVar("ResponseT", bound=IdentityDTO)

ADMIN_KEY_HEADER = "X-Identity-Admin-Key"
TENANT_HEADER = "X-Tenant-ID"


class IdentityCredentialMissing(RuntimeError):
    """No superuser or tenant admin key is configured for a call that needs one."""


def identity_base_url(base_url: str | None = None) -> str:
    """``base_url``, ``SOORMA_IDENTITY_URL``, ``SOORMA_API_URL``, the local stack's ``api_url``, else the default."""
    found = base_url or IDENTITY_URL.get() or API_URL.get() or _credentials_env().get("api_url") or DEFAULT_API_URL
    return found.rstrip("/")


def _credentials_env() -> dict[str, str]:
    return _credentials(os.environ)


def superuser_api_key() -> str | None:
    """``IDENTITY_SUPERUSER_API_KEY``, ``IDENTITY_ADMIN_API_KEY``, else the local stack's ``admin_api_key``."""
    return (IDENTITY_SUPERUSER_API_KEY.get() or IDENTITY_ADMIN_API_KEY.get()
            or _credentials_env().get("admin_api_key"))


def tenant_admin_api_key() -> str | None:
    """``IDENTITY_TENANT_ADMIN_API_KEY``, else the local stack's ``tenant_admin_api_key`` (its ``local`` tenant)."""
    return IDENTITY_TENANT_ADMIN_API_KEY.get() or _credentials_env().get("tenant_admin_api_key")


class IdentityServiceClient:
    """soorma-core's low-level identity client (async, httpx).

    Parameters: ``base_url`` (see the module docstring), ``timeout`` (seconds per request), ``admin_api_key`` (the
    superuser key, soorma-core's argument), ``tenant_admin_api_key``, ``platform_tenant_id``, ``transport`` (an
    ``httpx`` transport, for tests). Use ``async with`` or :meth:`close`."""

    def __init__(self, base_url: str | None = None, timeout: float = DEFAULT_TIMEOUT,
                 admin_api_key: str | None = None, *, tenant_admin_api_key: str | None = None,
                 platform_tenant_id: str | None = None,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.base_url = identity_base_url(base_url)
        self.timeout = timeout
        self.admin_api_key = admin_api_key
        self.tenant_admin_api_key = tenant_admin_api_key
        self.platform_tenant_id: str | None = None
        self.set_platform_tenant_id(platform_tenant_id or PLATFORM_TENANT_ID.get())
        self._client = httpx.AsyncClient(base_url=self.base_url, timeout=timeout, transport=transport)

    def set_platform_tenant_id(self, platform_tenant_id: str | None) -> None:
        """Bind the platform tenant sent as ``X-Tenant-ID`` on tenant admin calls."""
        value = str(platform_tenant_id or "").strip()
        self.platform_tenant_id = value or None

    async def close(self) -> None:
        """Close the HTTP connections."""
        await self._client.aclose()

    async def __aenter__(self) -> "IdentityServiceClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- plumbing ---------------------------------------------------------------------------------------------
    def _superuser_headers(self, key: str | None, platform_tenant_id: str | None) -> dict[str, str]:
        found = key or self.admin_api_key or superuser_api_key()
        if not found:
            raise IdentityCredentialMissing(
                "no superuser key: set IDENTITY_SUPERUSER_API_KEY (an API key of a platform admin; the local "
                "stack's is admin_api_key in .soorma/credentials.json)")
        headers = {ADMIN_KEY_HEADER: found}
        if platform_tenant_id:
            headers[TENANT_HEADER] = platform_tenant_id
        return headers

    def _tenant_headers(self, key: str | None, platform_tenant_id: str | None) -> dict[str, str]:
        found = key or self.tenant_admin_api_key or tenant_admin_api_key()
        if not found:
            raise IdentityCredentialMissing(
                "no tenant admin key: set IDENTITY_TENANT_ADMIN_API_KEY (onboarding returns tenantAdminApiKey) or "
                "pass tenant_admin_api_key=")
        headers = {ADMIN_KEY_HEADER: found}
        tenant = str(platform_tenant_id or self.platform_tenant_id or "").strip()
        if tenant:
            headers[TENANT_HEADER] = tenant
        return headers

    async def _call(self, method: str, path: str, payload: IdentityDTO | None, response_model: type[ResponseT],
                    headers: dict[str, str]) -> ResponseT:
        body: Any = payload.model_dump(by_alias=True, exclude_none=True, mode="json") if payload else {}
        response = await self._client.request(method, path, json=body, headers=headers)
        response.raise_for_status()
        return response_model.model_validate(response.json())

    # -- soorma-core's methods --------------------------------------------------------------------------------
    async def onboard_tenant(self, payload: OnboardingRequest, service_tenant_id: str | None = None,
                             service_user_id: str | None = None, platform_tenant_id: str | None = None, *,
                             superuser_api_key: str | None = None) -> OnboardingResponse:
        """``POST /v1/identity/onboarding`` with the superuser key: a new tenant, its bootstrap admin principal and
        its tenant admin key (kept by this client for its next calls, and its tenant bound)."""
        answer = await self._call("POST", "/v1/identity/onboarding", payload, OnboardingResponse,
                                  self._superuser_headers(superuser_api_key, platform_tenant_id))
        self.tenant_admin_api_key = self.tenant_admin_api_key or answer.tenant_admin_api_key
        self.set_platform_tenant_id(answer.platform_tenant_id)
        return answer

    async def rotate_tenant_admin_key(self, service_tenant_id: str | None = None, service_user_id: str | None = None,
                                      platform_tenant_id: str | None = None, *,
                                      tenant_admin_api_key: str | None = None) -> TenantAdminCredentialRotateResponse:
        """``POST /v1/identity/tenant-admin-credentials/rotate``: a new tenant admin key; the one sent is revoked
        (this client uses the new one from now on)."""
        answer = await self._call("POST", "/v1/identity/tenant-admin-credentials/rotate", None,
                                  TenantAdminCredentialRotateResponse,
                                  self._tenant_headers(tenant_admin_api_key, platform_tenant_id))
        self.tenant_admin_api_key = answer.tenant_admin_api_key
        return answer

    async def create_principal(self, payload: PrincipalRequest, service_tenant_id: str | None = None,
                               service_user_id: str | None = None, platform_tenant_id: str | None = None, *,
                               tenant_admin_api_key: str | None = None) -> PrincipalResponse:
        """``POST /v1/identity/principals``."""
        return await self._call("POST", "/v1/identity/principals", payload, PrincipalResponse,
                                self._tenant_headers(tenant_admin_api_key, platform_tenant_id))

    async def update_principal(self, principal_id: str, payload: PrincipalRequest,
                               service_tenant_id: str | None = None, service_user_id: str | None = None,
                               platform_tenant_id: str | None = None, *,
                               tenant_admin_api_key: str | None = None) -> PrincipalResponse:
        """``PUT /v1/identity/principals/{principal_id}``."""
        return await self._call("PUT", f"/v1/identity/principals/{principal_id}", payload, PrincipalResponse,
                                self._tenant_headers(tenant_admin_api_key, platform_tenant_id))

    async def revoke_principal(self, principal_id: str, service_tenant_id: str | None = None,
                               service_user_id: str | None = None, platform_tenant_id: str | None = None, *,
                               tenant_admin_api_key: str | None = None) -> PrincipalResponse:
        """``POST /v1/identity/principals/{principal_id}/revoke``: its API keys are revoked, its tokens refused."""
        return await self._call("POST", f"/v1/identity/principals/{principal_id}/revoke", None, PrincipalResponse,
                                self._tenant_headers(tenant_admin_api_key, platform_tenant_id))

    async def issue_token(self, payload: TokenIssueRequest, service_tenant_id: str | None = None,
                          service_user_id: str | None = None, platform_tenant_id: str | None = None, *,
                          tenant_admin_api_key: str | None = None) -> TokenIssueResponse:
        """``POST /v1/identity/tokens/issue``: a 15-minute JWT of the principal (ES256, ``kid`` header)."""
        return await self._call("POST", "/v1/identity/tokens/issue", payload, TokenIssueResponse,
                                self._tenant_headers(tenant_admin_api_key, platform_tenant_id))

    async def exchange_api_key(self, api_key: str) -> TokenIssueResponse:
        """``POST /v1/identity/tokens/exchange``: a token of ``api_key``'s own identity (this platform's addition)."""
        return await self._call("POST", "/v1/identity/tokens/exchange", None, TokenIssueResponse,
                                {"Authorization": f"Bearer {api_key}"})

    async def register_delegated_issuer(self, payload: DelegatedIssuerRequest, service_tenant_id: str | None = None,
                                        service_user_id: str | None = None, platform_tenant_id: str | None = None,
                                        *, tenant_admin_api_key: str | None = None) -> DelegatedIssuerResponse:
        """``POST /v1/identity/delegated-issuers``."""
        return await self._call("POST", "/v1/identity/delegated-issuers", payload, DelegatedIssuerResponse,
                                self._tenant_headers(tenant_admin_api_key, platform_tenant_id))

    async def update_delegated_issuer(self, delegated_issuer_id: str, payload: DelegatedIssuerRequest,
                                      service_tenant_id: str | None = None, service_user_id: str | None = None,
                                      platform_tenant_id: str | None = None, *,
                                      tenant_admin_api_key: str | None = None) -> DelegatedIssuerResponse:
        """``PUT /v1/identity/delegated-issuers/{delegated_issuer_id}``."""
        return await self._call("PUT", f"/v1/identity/delegated-issuers/{delegated_issuer_id}", payload,
                                DelegatedIssuerResponse, self._tenant_headers(tenant_admin_api_key,
                                                                              platform_tenant_id))

    async def evaluate_mapping(self, payload: MappingEvaluationRequest, service_tenant_id: str | None = None,
                               service_user_id: str | None = None, platform_tenant_id: str | None = None, *,
                               tenant_admin_api_key: str | None = None) -> MappingEvaluationResponse:
        """``POST /v1/identity/mappings/evaluate``."""
        return await self._call("POST", "/v1/identity/mappings/evaluate", payload, MappingEvaluationResponse,
                                self._tenant_headers(tenant_admin_api_key, platform_tenant_id))


class IdentityClient:
    """soorma-core's agent-facing identity wrapper (``context.identity``): the same calls as
    :class:`IdentityServiceClient` with soorma-core's wrapper signatures (``superuser_api_key=`` on onboarding,
    ``platform_tenant_id=`` and ``tenant_admin_api_key=`` on the others; the platform tenant defaults to the one of
    the event bound with :meth:`bind_event_metadata`, and tenant admin calls raise ``ValueError`` without one)."""

    def __init__(self, base_url: str | None = None, timeout: float = DEFAULT_TIMEOUT, **client_kwargs: Any) -> None:
        self.base_url = identity_base_url(base_url)
        self.timeout = timeout
        self._client_kwargs = client_kwargs
        self._client: IdentityServiceClient | None = None
        self._bound: contextvars.ContextVar[str | None] = contextvars.ContextVar("soorma_identity_bound_tenant",
                                                                                 default=None)

    def _ensure_client(self) -> IdentityServiceClient:
        if self._client is None:
            self._client = IdentityServiceClient(self.base_url, self.timeout, **self._client_kwargs)
        return self._client

    def bind_event_metadata(self, event: Any) -> contextvars.Token[str | None]:
        """Use the platform tenant of ``event`` as the default of the next calls (in this context)."""
        return self._bound.set(str(getattr(event, "platform_tenant_id", "") or "").strip() or None)

    def reset_event_metadata(self, token: contextvars.Token[str | None]) -> None:
        self._bound.reset(token)

    def _tenant(self, platform_tenant_id: str | None) -> str:
        found = platform_tenant_id if platform_tenant_id is not None else self._bound.get()
        found = (found or PLATFORM_TENANT_ID.get() or "").strip()
        if not found:
            raise ValueError("platform_tenant_id is required for tenant admin operations")
        return found

    async def onboard_tenant(self, payload: OnboardingRequest,
                             superuser_api_key: str | None = None) -> OnboardingResponse:
        return await self._ensure_client().onboard_tenant(payload, superuser_api_key=superuser_api_key)

    async def rotate_tenant_admin_key(self, platform_tenant_id: str | None = None,
                                      tenant_admin_api_key: str | None = None) -> TenantAdminCredentialRotateResponse:
        return await self._ensure_client().rotate_tenant_admin_key(
            platform_tenant_id=self._tenant(platform_tenant_id), tenant_admin_api_key=tenant_admin_api_key)

    async def issue_token(self, payload: TokenIssueRequest, platform_tenant_id: str | None = None,
                          tenant_admin_api_key: str | None = None) -> TokenIssueResponse:
        return await self._ensure_client().issue_token(
            payload, platform_tenant_id=self._tenant(platform_tenant_id), tenant_admin_api_key=tenant_admin_api_key)

    async def create_principal(self, payload: PrincipalRequest, platform_tenant_id: str | None = None,
                               tenant_admin_api_key: str | None = None) -> PrincipalResponse:
        return await self._ensure_client().create_principal(
            payload, platform_tenant_id=self._tenant(platform_tenant_id), tenant_admin_api_key=tenant_admin_api_key)

    async def update_principal(self, principal_id: str, payload: PrincipalRequest,
                               platform_tenant_id: str | None = None,
                               tenant_admin_api_key: str | None = None) -> PrincipalResponse:
        return await self._ensure_client().update_principal(
            principal_id, payload, platform_tenant_id=self._tenant(platform_tenant_id),
            tenant_admin_api_key=tenant_admin_api_key)

    async def revoke_principal(self, principal_id: str, platform_tenant_id: str | None = None,
                               tenant_admin_api_key: str | None = None) -> PrincipalResponse:
        return await self._ensure_client().revoke_principal(
            principal_id, platform_tenant_id=self._tenant(platform_tenant_id),
            tenant_admin_api_key=tenant_admin_api_key)

    async def register_delegated_issuer(self, payload: DelegatedIssuerRequest, platform_tenant_id: str | None = None,
                                        tenant_admin_api_key: str | None = None) -> DelegatedIssuerResponse:
        return await self._ensure_client().register_delegated_issuer(
            payload, platform_tenant_id=self._tenant(platform_tenant_id), tenant_admin_api_key=tenant_admin_api_key)

    async def update_delegated_issuer(self, delegated_issuer_id: str, payload: DelegatedIssuerRequest,
                                      platform_tenant_id: str | None = None,
                                      tenant_admin_api_key: str | None = None) -> DelegatedIssuerResponse:
        return await self._ensure_client().update_delegated_issuer(
            delegated_issuer_id, payload, platform_tenant_id=self._tenant(platform_tenant_id),
            tenant_admin_api_key=tenant_admin_api_key)

    async def evaluate_mapping(self, payload: MappingEvaluationRequest, platform_tenant_id: str | None = None,
                               tenant_admin_api_key: str | None = None) -> MappingEvaluationResponse:
        return await self._ensure_client().evaluate_mapping(
            payload, platform_tenant_id=self._tenant(platform_tenant_id), tenant_admin_api_key=tenant_admin_api_key)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def __aenter__(self) -> "IdentityClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


__all__ = ["IdentityClient", "IdentityCredentialMissing", "IdentityServiceClient", "identity_base_url",
           "superuser_api_key", "tenant_admin_api_key"]
