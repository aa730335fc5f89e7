"""Lambda entry points of the gateway.

* ``soorma.functions.gateway.handler.handler`` — the FastAPI app (``/v1/goals``, ``/v1/events/publish``) through
  Mangum; built on the first invocation and reused while the environment is warm (one DB pool, one NATS publisher).
* ``soorma.functions.gateway.authorizer.handler`` — the HTTP API Lambda authorizer (its own function).

The same entry point serves the live goal streams' WebSocket API events (:mod:`soorma.functions.gateway.streams`),
which carry no HTTP request for the FastAPI app.
"""

from typing import Any

from fastapi import FastAPI

from soorma.functions.gateway import streams
from soorma.functions.gateway.app import create_app
from soorma.functions.shared.db import database_from_env
from soorma.functions.shared.service import lazy_mangum_handler


def warm(app: FastAPI) -> None:
    """Before a SnapStart snapshot: what the first publish would build (the SNS client; NATS connects on use)."""
    prewarm = getattr(app.state.publisher, "prewarm", None)
    if prewarm is not None:
        prewarm()


http_handler = lazy_mangum_handler(create_app, warm=warm)


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Lambda entry point: a WebSocket API event goes to :func:`soorma.functions.gateway.streams.handle_event`, any
    other to the FastAPI app."""
    if streams.is_websocket_event(event):
        return streams.handle_event(event, database_from_env())
    return http_handler(event, context)


handler.prewarm = http_handler.prewarm  # type: ignore[attr-defined]  # SnapStart (soorma.infra.runtime.boot)
