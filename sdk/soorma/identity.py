"""The resolved identity of a caller, as the gateway's authorizer produced it.

DESIGN.md "Identity": callers authenticate at the gateway; it resolves them to three values (platform tenant,
service tenant, service user) plus the principal and its role, and everything downstream trusts only that. In an
HTTP API the authorizer's context arrives at ``event["requestContext"]["authorizer"]["lambda"]`` (payload format 2.0,
https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-lambda-authorizer.html).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping

ROLES = ("admin", "developer", "agent", "user")

#: Roles that may write shared platform data: the registry and public knowledge in memory. An end user (role
#: ``user``) reads those and writes only its own private rows.
WRITER_ROLES = frozenset({"admin", "developer", "agent"})

#: Roles that may act for another service tenant and user (``X-Soorma-Service-Tenant`` / ``X-Soorma-Service-User``,
#: validated by the authorizer); for the others those headers may only repeat the key's own values.
OVERRIDE_ROLES = frozenset({"agent", "admin"})


class MissingIdentity(Exception):
    """The request carries no authorizer context (it did not come through the gateway's authorizer)."""


@dataclass(frozen=True)
class Identity:
    """Who is calling and for whom: ``platform_tenant_id``, ``service_tenant_id``, ``service_user_id`` (each
    ``[A-Za-z0-9_-]{1,64}``), ``principal_id`` and ``role`` (one of :data:`ROLES`)."""

    platform_tenant_id: str
    service_tenant_id: str
    service_user_id: str
    principal_id: str
    role: str

    def as_context(self) -> dict[str, str]:
        """The authorizer context form (flat string map)."""
        return asdict(self)

    @classmethod
    def from_context(cls, context: Mapping[str, Any]) -> "Identity":
        """Build from an authorizer context; raises :class:`MissingIdentity` if a field is missing or empty."""
        try:
            values = {name: str(context[name]) for name in cls.__dataclass_fields__}
        except (KeyError, TypeError) as exc:
            raise MissingIdentity(f"authorizer context lacks {exc}") from None
        if not all(values.values()) or values["role"] not in ROLES:
            raise MissingIdentity("authorizer context is incomplete")
        return cls(**values)


def from_event(event: Mapping[str, Any]) -> Identity:
    """The identity in an API Gateway v2 event. Raises :class:`MissingIdentity` when there is none."""
    context = ((event.get("requestContext") or {}).get("authorizer") or {}).get("lambda")
    if not context:
        raise MissingIdentity("no authorizer context on the request")
    return Identity.from_context(context)


def from_request(request: Any) -> Identity:
    """The identity of a FastAPI/Starlette request served by Mangum (``request.scope["aws.event"]``).

    Raises :class:`MissingIdentity` when the request did not pass the authorizer.
    """
    event = request.scope.get("aws.event")
    if not event:
        raise MissingIdentity("no API Gateway event on the request")
    return from_event(event)
