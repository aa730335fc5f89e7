"""Lambda entry points of the gateway.

* ``soorma.functions.gateway.handler.handler`` — the FastAPI app (``/v1/goals``, ``/v1/events/publish``) through
  Mangum; built on the first invocation and reused while the environment is warm (one DB pool, one NATS publisher).
* ``soorma.functions.gateway.authorizer.handler`` — the HTTP API Lambda authorizer (its own function).

EventBridge Scheduler's firing input (``{"soorma_fire_timers": true}``) goes to
:func:`soorma.functions.scheduler.handler.fire_timers` instead of the HTTP app.
The same entry point serves the live goal streams' WebSocket API events (:mod:`soorma.functions.gateway.streams`),
which carry no HTTP request for the FastAPI app.
"""

from typing import Any

from fastapi import FastAPI

from soorma.functions.gateway import streams
from soorma.functions.gateway.app import create_app
from soorma.functions.scheduler.handler import fire_timers, is_firing
from soorma.functions.shared.db import database_from_env
from soorma.functions.shared.service import lazy_mangum_handler


def warm(app: FastAPI) -> None:
    """Before a SnapStart snapshot: what the first publish would build (the SNS client; NATS connects on use)."""
    prewarm = getattr(app.state.publisher, "prewarm", None)
    if prewarm is not None:
        prewarm()


http_handler = lazy_mangum_handler(create_app, warm=warm)


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Lambda entry point: EventBridge Scheduler's firing input to the scheduler, a WebSocket API event to
    :func:`soorma.functions.gateway.streams.handle_event`, anything else (an HTTP API request, payload format 2.0) to
    the FastAPI app."""
    if is_firing(event):
        return fire_timers(event, context)
    if streams.is_websocket_event(event):
        return streams.handle_event(event, database_from_env())
    return http_handler(event, context)


handler.prewarm = http_handler.prewarm  # type: ignore[attr-defined]  # SnapStart (soorma.infra.runtime.boot)
