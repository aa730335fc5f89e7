"""Delivery grants for tests: what the gateway stamps on an event, so a test can act as an agent handling it.

An ``agent`` principal acts for another service tenant/user only with the delivery grant of the event it handles
(:mod:`soorma.grants`, :func:`soorma.identity.act_for`). Tests that call a function as an agent acting for a user
send :func:`acting_headers`; tests of an agent give its event a grant with :func:`granted`.
"""

from __future__ import annotations

import uuid
from typing import Any

from soorma import grants


def grant(
    pepper: str,
    platform_tenant_id: str,
    service_tenant_id: str,
    service_user_id: str,
    *,
    event_id: str | None = None,
    ttl_s: int = grants.DEFAULT_GRANT_TTL_S,
    now: float | None = None,
) -> str:
    """A grant token as the gateway with ``SOORMA_API_KEY_PEPPER=pepper`` would mint it for an event of that
    identity (``event_id`` default: a fresh UUID). A negative ``ttl_s`` makes an already expired grant."""
    return grants.mint(grants.derive_key(pepper), platform_tenant_id=platform_tenant_id,
                       service_tenant_id=service_tenant_id, service_user_id=service_user_id,
                       event_id=event_id or str(uuid.uuid4()), ttl_s=ttl_s, now=now)


def acting_headers(
    pepper: str,
    platform_tenant_id: str,
    service_tenant_id: str,
    service_user_id: str,
    **kwargs: Any,
) -> dict[str, str]:
    """The headers (lower-cased names) of a call acting for (``service_tenant_id``, ``service_user_id``) under a
    valid grant: ``x-soorma-service-tenant``, ``x-soorma-service-user`` and ``x-soorma-grant``. ``kwargs`` go to
    :func:`grant`."""
    return {
        "x-soorma-service-tenant": service_tenant_id,
        "x-soorma-service-user": service_user_id,
        "x-soorma-grant": grant(pepper, platform_tenant_id, service_tenant_id, service_user_id, **kwargs),
    }


def granted(envelope: Any, pepper: str, **kwargs: Any) -> Any:
    """A copy of ``envelope`` carrying the grant the gateway would stamp on it (its own platform tenant, tenant,
    user and id); ``kwargs`` go to :func:`soorma.grants.stamp` (``ttl_s``)."""
    return grants.stamp(envelope, key=grants.derive_key(pepper), **kwargs)


__all__ = ["acting_headers", "grant", "granted"]
