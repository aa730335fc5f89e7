"""The bridge's routing table: every deployed agent of every platform tenant.

Reads go through the SECURITY DEFINER SQL functions ``registry.list_routes()`` and ``registry.routes_version()``
(migration 0002), so the bridge can connect as ``soorma_app`` — RLS still hides every tenant's rows from ordinary
queries — and needs no tenant identity. ``routes_version`` is a counter bumped by triggers whenever a deployed
agent appears, changes its name or deployment, or goes away: poll it and call :func:`list_routes` only when it moved.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

import psycopg
from pydantic import ValidationError

from soorma.functions.registry.models import Deployment

logger = logging.getLogger("soorma.functions.registry")


@dataclass(frozen=True)
class Route:
    """One deployed agent: its tenant, id, name and validated :class:`Deployment`; ``created_at`` is when the agent
    was first registered (a new consumer can start from there), ``updated_at`` its last change."""

    platform_tenant_id: str
    agent_id: str
    name: str
    deployment: Deployment
    created_at: datetime | None = None
    updated_at: datetime | None = None


def _value(row, key: str, index: int):
    return row[key] if isinstance(row, dict) else row[index]


def list_routes(conn: psycopg.Connection) -> list[Route]:
    """Every deployed agent of every platform tenant, ordered by (platform tenant, agent id).

    Works on any connection (``soorma_app`` or owner; tuple or dict rows). A stored deployment that no longer
    validates (written by an older version) is skipped with a warning rather than breaking every route.
    """
    routes: list[Route] = []
    for row in conn.execute(
        "select platform_tenant_id, agent_id, name, deployment, created_at, updated_at from registry.list_routes()"
    ).fetchall():
        try:
            deployment = Deployment.model_validate(_value(row, "deployment", 3))
        except ValidationError as exc:
            logger.warning("skipping agent %s/%s: invalid deployment: %s",
                           _value(row, "platform_tenant_id", 0), _value(row, "agent_id", 1), exc)
            continue
        routes.append(
            Route(
                platform_tenant_id=_value(row, "platform_tenant_id", 0),
                agent_id=_value(row, "agent_id", 1),
                name=_value(row, "name", 2),
                deployment=deployment,
                created_at=_value(row, "created_at", 4),
                updated_at=_value(row, "updated_at", 5),
            )
        )
    return routes


def routes_version(conn: psycopg.Connection) -> int:
    """A number that changes whenever the result of :func:`list_routes` may have changed."""
    row = conn.execute("select registry.routes_version() as version").fetchone()
    return int(_value(row, "version", 0))
