"""The resolved identity of a caller, as the gateway's authorizer produced it; and (loaded on first use, so the
authorizer, which ships without httpx and pydantic, never loads them) soorma-core's identity clients
:class:`~soorma.identity.client.IdentityServiceClient` and :class:`~soorma.identity.client.IdentityClient`
(:mod:`soorma.identity.client`) and the identity service's DTOs (:mod:`soorma.identity.models`).

DESIGN.md "Identity": callers authenticate at the gateway; it resolves them to three values (platform tenant,
service tenant, service user) plus the principal and its role, and everything downstream trusts only that. In an
HTTP API the authorizer's context arrives at ``event["requestContext"]["authorizer"]["lambda"]`` (payload format 2.0,
https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-lambda-authorizer.html).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any, Mapping

from soorma._lazy import lazy_exports
from soorma.settings import PLATFORM_ADMIN_TENANT as _ADMIN_TENANT_SETTING

ROLES = ("admin", "developer", "agent", "user")

#: Privilege order of the roles (higher may do what lower may): ``user`` < ``agent`` < ``developer`` < ``admin``.
ROLE_RANK = {"user": 0, "agent": 1, "developer": 2, "admin": 3}

#: The platform tenant whose ``admin`` principals operate the platform (onboard and suspend tenants, set their
#: limits). ``SOORMA_PLATFORM_ADMIN_TENANT`` overrides it.
PLATFORM_ADMIN_TENANT = _ADMIN_TENANT_SETTING.default

#: Credential kinds in the authorizer context.
CREDENTIAL_API_KEY = "api_key"
CREDENTIAL_JWT = "jwt"

#: Roles that may write shared platform data: the registry and public knowledge in memory. An end user (role
#: ``user``) reads those and writes only its own private rows.
WRITER_ROLES = frozenset({"admin", "developer", "agent"})

#: Roles that may act for another service tenant and user (``X-Soorma-Service-Tenant`` / ``X-Soorma-Service-User``,
#: applied by :func:`act_for`): ``admin`` for any of its platform tenant, ``agent`` only with the delivery grant of
#: the event it handles; for the others those headers may only repeat the key's own values.
OVERRIDE_ROLES = frozenset({"agent", "admin"})

#: The headers with which an ``agent`` (or ``admin``) principal names the service tenant and user it acts for.
SERVICE_TENANT_HEADER = "x-soorma-service-tenant"
SERVICE_USER_HEADER = "x-soorma-service-user"
#: The header with the delivery grant that lets an ``agent`` act for them (:mod:`soorma.grants`).
GRANT_HEADER = "x-soorma-grant"


class MissingIdentity(Exception):
    """The request carries no authorizer context (it did not come through the gateway's authorizer)."""


class OverrideRefused(Exception):
    """The service tenant/user headers of a request may not be honoured (answered 403 with this message)."""


@dataclass(frozen=True)
class Identity:
    """Who is calling and for whom: ``platform_tenant_id``, ``service_tenant_id``, ``service_user_id`` (each
    ``[A-Za-z0-9_-]{1,64}``), ``principal_id`` and ``role`` (one of :data:`ROLES`).

    The authorizer also says which credential it checked (not part of equality): ``credential_type``
    (``api_key`` | ``jwt``), ``credential_id`` (the API key's id, or ``jwt:<jti or sub>``) and ``expires_at``
    (a JWT's ``exp`` in epoch seconds, else ``""``). The functions use them for rate limits per key and to refuse
    a key revoked, or a token expired, after the authorizer's answer was cached."""

    platform_tenant_id: str
    service_tenant_id: str
    service_user_id: str
    principal_id: str
    role: str
    credential_type: str = field(default="", compare=False)
    credential_id: str = field(default="", compare=False)
    expires_at: str = field(default="", compare=False)

    def as_context(self) -> dict[str, str]:
        """The authorizer context form (flat string map); the credential fields only when set."""
        values = asdict(self)
        for name in _OPTIONAL:
            if not values[name]:
                del values[name]
        return values

    @classmethod
    def from_context(cls, context: Mapping[str, Any]) -> "Identity":
        """Build from an authorizer context; raises :class:`MissingIdentity` if a field is missing or empty."""
        try:
            values = {name: str(context[name]) for name in _REQUIRED}
            values.update({name: str(context.get(name) or "") for name in _OPTIONAL})
        except (KeyError, TypeError, AttributeError) as exc:
            raise MissingIdentity(f"authorizer context lacks {exc}") from None
        if not all(values[name] for name in _REQUIRED) or values["role"] not in ROLES:
            raise MissingIdentity("authorizer context is incomplete")
        return cls(**values)

    def at_least(self, role: str) -> bool:
        """True when this identity's role ranks at least as high as ``role`` (:data:`ROLE_RANK`)."""
        return ROLE_RANK[self.role] >= ROLE_RANK[role]


_REQUIRED = ("platform_tenant_id", "service_tenant_id", "service_user_id", "principal_id", "role")
_OPTIONAL = ("credential_type", "credential_id", "expires_at")


def platform_admin_tenant() -> str:
    """The platform-operator tenant (``SOORMA_PLATFORM_ADMIN_TENANT``, default :data:`PLATFORM_ADMIN_TENANT`)."""
    return _ADMIN_TENANT_SETTING.get()


def is_platform_admin(identity: "Identity") -> bool:
    """An ``admin`` of the platform-operator tenant: may onboard, list, suspend and configure tenants."""
    return identity.role == "admin" and identity.platform_tenant_id == platform_admin_tenant()


def act_for(identity: Identity, headers: Mapping[str, str], *, grant_key: bytes | None = None,
            now: float | None = None) -> Identity:
    """``identity`` after the request's service tenant/user headers (``headers``: lower-cased names).

    The authorizer resolves the *principal* (its answer depends on the credential alone, so API Gateway may cache it
    keyed on ``Authorization``); which service tenant and user the request acts for is decided here, per request:

    * role ``admin`` acts for the tenant/user the headers name (a tenant's administrator may act for its users);
    * role ``agent`` acts for them only with a valid delivery grant (header ``X-Soorma-Grant``, :mod:`soorma.grants`)
      for exactly this platform tenant, that service tenant and that user: DESIGN.md "Identity", an agent acts for
      the service tenant and user of an event only while it handles that event (issue 12, finding 8). Acting as its
      own principal needs no grant. ``grant_key`` defaults to the key derived from ``SOORMA_API_KEY_PEPPER``
      (:func:`soorma.grants.grant_key_from_env`, which raises :class:`soorma.grants.GrantKeyMissing` when it is not
      set: a deployment error); ``now`` (epoch seconds) is for tests;
    * the platform tenant always stays the credential's;
    * for ``user`` and ``developer`` the headers may only repeat their own values; naming anyone else raises
      :class:`OverrideRefused` rather than being ignored, so a client that believes it acts for someone else fails
      loudly instead of silently writing under its own identity;
    * a value that is not ``[A-Za-z0-9_-]{1,64}`` raises :class:`OverrideRefused`.

    Raises :class:`OverrideRefused` (answered 403 with its message) for anything refused: no grant, a grant that is
    malformed, forged, expired, of another platform tenant, or of another service tenant/user.
    """
    tenant = headers.get(SERVICE_TENANT_HEADER)
    user = headers.get(SERVICE_USER_HEADER)
    if tenant is None and user is None:
        return identity
    from ..subjects import InvalidSubjectToken, check_identifier

    try:
        if tenant is not None:
            check_identifier(tenant, "service tenant")
        if user is not None:
            check_identifier(user, "service user")
    except InvalidSubjectToken as exc:
        raise OverrideRefused(f"{exc} (X-Soorma-Service-Tenant / X-Soorma-Service-User)") from None
    new_tenant = tenant if tenant is not None else identity.service_tenant_id
    new_user = user if user is not None else identity.service_user_id
    if (new_tenant, new_user) == (identity.service_tenant_id, identity.service_user_id):
        return identity
    if identity.role not in OVERRIDE_ROLES:
        raise OverrideRefused(f"role {identity.role!r} may not act for another service tenant or user")
    if identity.role == "agent":
        from .. import grants

        key = grant_key if grant_key is not None else grants.grant_key_from_env()
        try:
            grants.check(headers.get(GRANT_HEADER), key, platform_tenant_id=identity.platform_tenant_id,
                         service_tenant_id=new_tenant, service_user_id=new_user, now=now)
        except grants.GrantInvalid as exc:
            raise OverrideRefused(
                f"an agent acts for another service tenant or user only with the delivery grant of the event it "
                f"handles: {exc}"
            ) from None
    return replace(identity, service_tenant_id=new_tenant, service_user_id=new_user)


def from_event(event: Mapping[str, Any]) -> Identity:
    """The identity of an API Gateway v2 event: the authorizer's principal (``requestContext.authorizer.lambda``)
    acting for the service tenant/user its headers name (:func:`act_for`).

    Raises :class:`MissingIdentity` when there is no authorizer context, :class:`OverrideRefused` when the headers
    may not be honoured.
    """
    context = ((event.get("requestContext") or {}).get("authorizer") or {}).get("lambda")
    if not context:
        raise MissingIdentity("no authorizer context on the request")
    return act_for(Identity.from_context(context), event_headers(event))


def event_headers(event: Mapping[str, Any]) -> dict[str, str]:
    """An API Gateway v2 event's headers with lower-cased names (v2 events already carry them lower-cased; other
    casings, as tests and other front ends may send, are accepted too); non-string values are dropped."""
    raw = event.get("headers") or {}
    return {str(k).lower(): v for k, v in raw.items() if isinstance(v, str)}


def from_request(request: Any) -> Identity:
    """The identity of a FastAPI/Starlette request served by Mangum (``request.scope["aws.event"]``).

    Raises :class:`MissingIdentity` when the request did not pass the authorizer.
    """
    event = request.scope.get("aws.event")
    if not event:
        raise MissingIdentity("no API Gateway event on the request")
    return from_event(event)


__getattr__ = lazy_exports(__name__, {"IdentityServiceClient": ".client", "IdentityClient": ".client",
                                      "IdentityCredentialMissing": ".client"})
