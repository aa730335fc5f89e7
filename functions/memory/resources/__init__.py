"""The memory function's resources, one module each (its wire models, SQL and ``router``), all on
:class:`soorma.functions.memory.owned.OwnedTable`. :data:`ROUTERS` is the order they are served in (each prefixed
``/v1/memory``)."""

from __future__ import annotations

from fastapi import APIRouter

from soorma.functions.memory.resources import (
    admin,
    episodic,
    idempotency,
    plan_context,
    plans,
    procedural,
    semantic,
    sessions,
    task_context,
    working,
)

ROUTERS: tuple[APIRouter, ...] = tuple(
    module.router
    for module in (
        semantic, working, task_context, episodic, procedural, plan_context, plans, sessions, admin, idempotency,
    )
)
