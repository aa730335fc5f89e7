"""The bridge's routes on the local stack: every deployed agent in the registry, plus the tracker."""

from __future__ import annotations

import asyncio
import re
from datetime import datetime
from typing import Any

from soorma.db import Database
from soorma.functions.bridge import Route
from soorma.subjects import STREAM_SUBJECTS, filter_subject

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def consumer_name(platform_tenant_id: str, agent: str) -> str:
    """Durable consumer name of one (platform tenant, agent): ``<tenant>__<agent>`` with unsafe characters
    replaced (consumer names cannot hold ``.``, ``*``, ``>`` or spaces)."""
    return _UNSAFE.sub("_", f"{platform_tenant_id}__{agent}")[:200]


def _field(obj: Any, name: str, default: Any = None) -> Any:
    if isinstance(obj, dict):
        return obj.get(name, default)
    return getattr(obj, name, default)


def bridge_route(registry_route: Any) -> Route | None:
    """Translate one registry route (an agent with a ``nats`` deployment) to the bridge's :class:`Route`."""
    deployment = _field(registry_route, "deployment") or {}
    if hasattr(deployment, "model_dump"):
        deployment = deployment.model_dump()
    if deployment.get("transport", "nats") != "nats" or not deployment.get("function_name"):
        return None
    tenant = _field(registry_route, "platform_tenant_id")
    name = _field(registry_route, "name")
    subjects = tuple(
        sorted({filter_subject(tenant, s["topic"], s["event_type"]) for s in deployment.get("subscriptions") or ()})
    )
    if not subjects:
        return None
    registered = _field(registry_route, "registered_at") or _field(registry_route, "created_at")
    return Route(
        consumer_name=consumer_name(tenant, name),
        function_name=deployment["function_name"],
        filter_subjects=subjects,
        batch_size=int(deployment.get("batch_size", 10)),
        max_concurrency=int(deployment.get("max_concurrency", 2)),
        max_deliveries=int(deployment.get("max_deliveries", 5)),
        timeout_s=float(deployment.get("timeout_seconds", 30)),
        deliver_from=registered if isinstance(registered, datetime) else None,
        platform_tenant_id=tenant,
        agent=name,
    )


class RouteSource:
    """Reads the routes from the registry's ``list_routes`` (all tenants) on every bridge refresh."""

    def __init__(self, app_dsn: str, *, tracker_function: str) -> None:
        self.db = Database(app_dsn)
        self.tracker = Route(
            consumer_name="platform__tracker",
            function_name=tracker_function,
            filter_subjects=(STREAM_SUBJECTS,),
            batch_size=50,
            max_concurrency=2,
            max_deliveries=10,
            timeout_s=60.0,
            deliver_from=None,
            platform_tenant_id="platform",
            agent="tracker",
        )

    def _read(self) -> list[Any]:
        from soorma.functions.registry.routes import list_routes

        with self.db.transaction() as conn:
            return list_routes(conn)

    async def routes(self) -> list[Route]:
        rows = await asyncio.to_thread(self._read)
        routes = [r for r in (bridge_route(row) for row in rows) if r is not None]
        return [self.tracker, *routes]
