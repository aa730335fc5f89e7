"""The bridge's routes, read from the registry: every deployed agent, plus the tracker (the same on the local stack and
on Fargate)."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Any, Callable

from soorma.delivery.route import Route, consumer_name_for
from soorma.functions.shared.db import Database
from soorma.subjects import STREAM_SUBJECTS, filter_subject

log = logging.getLogger("soorma.functions.bridge.routes")


def consumer_name(platform_tenant_id: str, agent: str) -> str:
    """Durable consumer name of one (platform tenant, agent): the bridge's collision-free
    :func:`soorma.functions.bridge.consumer_name_for` (``<tenant>__<agent>``, plus a hash suffix when a part holds
    ``__`` or an edge ``_``, so tenant ``a__b`` + agent ``c`` and tenant ``a`` + agent ``b__c`` differ).

    Raises ``ValueError`` if either part is not ``[A-Za-z0-9_-]{1,64}`` (``soorma.subjects.check_identifier``)."""
    return consumer_name_for(platform_tenant_id, agent)


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
    """Reads the routes from the registry's ``list_routes`` (all tenants) on every bridge refresh.

    ``function_tenant(function_name)`` — the platform tenant a function was deployed for, or ``None`` — turns on a
    defence in depth (issue 12, finding 3): a deployment binding is routed only to a function deployed for the
    binding's own platform tenant, so even a binding written around the deploy path cannot deliver one tenant's
    events to another tenant's function (which would then act inside that tenant with its key). The local stack
    passes its runtime's record (each function's ``FunctionSpec.platform_tenant_id``). The cloud bridge passes none:
    there the bindings come only from rows the ``Custom::SoormaAgent`` registrar wrote (the registry API refuses
    them) and the bridge's IAM role may invoke only the functions the stack granted it.
    """

    def __init__(self, app_dsn: str, *, tracker_function: str,
                 function_tenant: Callable[[str], str | None] | None = None) -> None:
        self.db = Database(app_dsn)
        self.function_tenant = function_tenant
        self.tracker = Route(
            consumer_name=consumer_name("platform", "tracker"),
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

    def read_checked(self) -> list[Any]:
        """The registry's routes whose function was deployed for the route's own platform tenant (every route when
        no ``function_tenant`` was given); the others are logged and left out."""
        rows = self._read()
        if self.function_tenant is None:
            return rows
        kept = []
        for row in rows:
            deployment = _field(row, "deployment")
            function = _field(deployment, "function_name") if deployment is not None else None
            tenant = _field(row, "platform_tenant_id")
            owner = self.function_tenant(function) if function else None
            if function and owner != tenant:
                log.error("agent %s of tenant %s is bound to function %s, which was not deployed for that tenant"
                          " (it belongs to %s); not routed", _field(row, "name"), tenant, function, owner or "nobody")
                continue
            kept.append(row)
        return kept

    async def routes(self) -> list[Route]:
        rows = await asyncio.to_thread(self.read_checked)
        routes = []
        for row in rows:
            try:
                route = bridge_route(row)
            except ValueError as exc:  # one unroutable agent must not stop the others' delivery
                log.error("agent %s of tenant %s has no route: %s", _field(row, "name"),
                          _field(row, "platform_tenant_id"), exc)
                continue
            if route is not None:
                routes.append(route)
        return [self.tracker, *routes]
