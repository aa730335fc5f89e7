"""Lambda entry points of the gateway.

* ``soorma.functions.gateway.handler.handler`` — the FastAPI app (``/v1/goals``, ``/v1/events/publish``) through
  Mangum; built on the first invocation and reused while the environment is warm (one DB pool, one NATS publisher).
* ``soorma.functions.gateway.authorizer.handler`` — the HTTP API Lambda authorizer (its own function).

EventBridge Scheduler's firing input (``{"soorma_fire_timers": true}``) goes to
:func:`soorma.functions.scheduler.handler.fire_timers` instead of the HTTP app.
"""

from typing import Any

from fastapi import FastAPI

from soorma.functions.gateway.app import create_app
from soorma.functions.scheduler.handler import fire_timers, is_firing
from soorma.functions.shared.service import lazy_mangum_handler


def warm(app: FastAPI) -> None:
    """Before a SnapStart snapshot: what the first publish would build (the SNS client; NATS connects on use)."""
    prewarm = getattr(app.state.publisher, "prewarm", None)
    if prewarm is not None:
        prewarm()


_api = lazy_mangum_handler(create_app, warm=warm)


def handler(event: Any, context: Any) -> dict[str, Any]:
    """Lambda entry point: an HTTP API request (payload format 2.0) to the FastAPI app, or the scheduler's firing."""
    if is_firing(event):
        return fire_timers(event, context)
    return _api(event, context)


handler.prewarm = _api.prewarm  # type: ignore[attr-defined]  # soorma.infra.runtime.boot.prepare_snapshot calls it
