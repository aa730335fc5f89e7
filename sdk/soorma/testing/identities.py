"""Identities for tests: what the gateway's authorizer would resolve a caller to."""

from __future__ import annotations

import uuid

from soorma.identity import ROLES, Identity


def new_identity(
    role: str = "developer",
    *,
    platform_tenant_id: str | None = None,
    service_tenant_id: str | None = None,
    service_user_id: str | None = None,
    principal_id: str | None = None,
) -> Identity:
    """An :class:`Identity` of ``role`` (one of :data:`soorma.identity.ROLES`) whose values not given are fresh and
    unique (``pt_<tag>``, ``st_<tag>``, ``su_<tag>``, ``pr_<tag>``), so tests sharing one database never see each
    other's rows. Give a value to share it, e.g. ``new_identity(platform_tenant_id=a.platform_tenant_id)`` for
    another service tenant of the same platform tenant."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    tag = uuid.uuid4().hex[:10]
    return Identity(
        platform_tenant_id=platform_tenant_id or f"pt_{tag}",
        service_tenant_id=service_tenant_id or f"st_{tag}",
        service_user_id=service_user_id or f"su_{tag}",
        principal_id=principal_id or f"pr_{tag}",
        role=role,
    )


__all__ = ["new_identity"]
