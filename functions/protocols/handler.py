"""Lambda entry point of the protocols function: ``soorma.functions.protocols.handler.handler``, the FastAPI app
(A2A, the OpenAI-compatible chat API, MCP) through Mangum, built on the first invocation and reused while the
environment is warm."""

from fastapi import FastAPI

from soorma.functions.protocols.app import create_app
from soorma.functions.shared.service import lazy_mangum_handler


def warm(app: FastAPI) -> None:
    """Before a SnapStart snapshot: what the first publish would build (the SNS client; NATS connects on use)."""
    prewarm = getattr(app.state.publisher, "prewarm", None)
    if prewarm is not None:
        prewarm()


handler = lazy_mangum_handler(create_app, warm=warm)
