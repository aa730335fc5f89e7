"""Lambda entry points of the gateway.

* ``soorma.functions.gateway.handler.handler`` — the FastAPI app (``/v1/goals``, ``/v1/events/publish``) through
  Mangum; built on the first invocation and reused while the environment is warm (one DB pool, one NATS publisher).
* ``soorma.functions.gateway.authorizer.handler`` — the HTTP API Lambda authorizer (its own function).
"""

from fastapi import FastAPI

from soorma.functions.gateway.app import create_app
from soorma.functions.shared.service import lazy_mangum_handler


def warm(app: FastAPI) -> None:
    """Before a SnapStart snapshot: what the first publish would build (the SNS client; NATS connects on use)."""
    prewarm = getattr(app.state.publisher, "prewarm", None)
    if prewarm is not None:
        prewarm()


handler = lazy_mangum_handler(create_app, warm=warm)
