"""The admin erase: every memory row of a platform tenant, a service tenant or a user
(``DELETE /admin/platform/{pt}``, ``/admin/tenant/{pt}/{st}``, ``/admin/user/{pt}/{st}/{su}``; role ``admin`` in its
own platform tenant only)."""

from __future__ import annotations

from dataclasses import replace
from typing import Literal, get_args

import psycopg
from fastapi import APIRouter, HTTPException, status
from psycopg import sql

from soorma.functions.memory.common import CALLER, PREFIX, RESOURCES, Resources, check_path, id_path
from soorma.functions.memory.wire import Reply
from soorma.identity import Identity

#: Every tenant-owned memory table (side tables go with their parents by cascade).
ERASE_TABLES = (
    "semantic_memory", "episodic_memory", "procedural_memory", "working_memory", "task_context", "plan_context",
    "plans", "sessions", "idempotency_records",
)
Scope = Literal["platform", "tenant", "user"]
ERASE_SCOPES: tuple[str, ...] = get_args(Scope)


class Erased(Reply):
    """What an erase deleted: rows per table and in all."""

    success: bool = True
    scope: Scope
    platform_tenant_id: str
    service_tenant_id: str | None
    service_user_id: str | None
    deleted: dict[str, int]
    total: int


def erase(
    conn: psycopg.Connection,
    scope: str,
    platform_tenant_id: str,
    service_tenant_id: str | None = None,
    service_user_id: str | None = None,
) -> dict[str, int]:
    """Delete every row of a platform tenant, a service tenant or a user; returns the rows deleted per table.

    The transaction's identity must already be the erased one's (platform tenant; service tenant for 'tenant';
    all three for 'user'): this sets ``soorma.erase_scope`` so the erase policies of 0005 let it see the rows, and
    RLS still confines it to that platform tenant. Raises ``ValueError`` for an unknown scope.
    """
    if scope not in ERASE_SCOPES:
        raise ValueError(f"unknown erase scope {scope!r}")
    conn.execute("select set_config('soorma.erase_scope', %s, true)", (scope,))
    where = "platform_tenant_id = %(pt)s"
    if scope in ("tenant", "user"):
        where += " and service_tenant_id = %(st)s"
    if scope == "user":
        where += " and service_user_id = %(su)s"
    params = {"pt": platform_tenant_id, "st": service_tenant_id, "su": service_user_id}
    counts: dict[str, int] = {}
    for table in ERASE_TABLES:
        cur = conn.execute(sql.SQL("delete from {} where " + where).format(sql.Identifier("memory", table)), params)
        counts[table] = cur.rowcount
    conn.execute("select set_config('soorma.erase_scope', '', true)")
    return counts


router = APIRouter(prefix=PREFIX)


def _erase(
    res: Resources, caller: Identity, scope: Scope, pt: str, st: str | None = None, su: str | None = None
) -> Erased:
    """Only a principal of role ``admin`` may erase, and only inside its own platform tenant (the authorizer's
    identity; no header such as soorma-core's ``X-Memory-Admin-Key`` counts)."""
    for value, what in ((pt, "platform_tenant_id"), (st, "service_tenant_id"), (su, "service_user_id")):
        if value is not None:
            check_path(value, what)
    if caller.role != "admin":
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"erasing memory needs role admin, not {caller.role!r}")
    if caller.platform_tenant_id != pt:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "an admin may erase only its own platform tenant")
    # The transaction acts as the erased identity (RLS then confines it there); see erase.
    acting = replace(caller, service_tenant_id=st or caller.service_tenant_id,
                     service_user_id=su or caller.service_user_id)
    with res.db.transaction(acting) as conn:
        counts = erase(conn, scope, pt, st, su)
    return Erased(
        scope=scope, platform_tenant_id=pt, service_tenant_id=st, service_user_id=su, deleted=counts,
        total=sum(counts.values()),
    )


@router.delete("/admin/platform/{platform_tenant_id}")
def erase_platform(
    platform_tenant_id: str = id_path("platform tenant id"), caller: Identity = CALLER, res: Resources = RESOURCES
) -> Erased:
    return _erase(res, caller, "platform", platform_tenant_id)


@router.delete("/admin/tenant/{platform_tenant_id}/{service_tenant_id}")
def erase_tenant(
    platform_tenant_id: str = id_path("platform tenant id"),
    service_tenant_id: str = id_path("service tenant id"),
    caller: Identity = CALLER,
    res: Resources = RESOURCES,
) -> Erased:
    return _erase(res, caller, "tenant", platform_tenant_id, service_tenant_id)


@router.delete("/admin/user/{platform_tenant_id}/{service_tenant_id}/{service_user_id}")
def erase_user(
    platform_tenant_id: str = id_path("platform tenant id"),
    service_tenant_id: str = id_path("service tenant id"),
    service_user_id: str = id_path("service user id"),
    caller: Identity = CALLER,
    res: Resources = RESOURCES,
) -> Erased:
    return _erase(res, caller, "user", platform_tenant_id, service_tenant_id, service_user_id)
