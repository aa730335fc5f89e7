"""The protocols function: the agent world's protocols over the platform's goals (issue 15), its own Lambda function
so the gateway does not carry their SDKs (layer ``protocols``: a2a-sdk's server and the MCP SDK, about 12 MB zipped).

* A2A 1.0 and 0.3 (:mod:`soorma.functions.protocols.a2a`): ``GET /.well-known/agent-card.json`` (public),
  ``/v1/a2a`` (JSON-RPC) and ``/v1/a2a/...`` (HTTP+JSON);
* the OpenAI-compatible chat API (:mod:`soorma.functions.protocols.chat`): ``POST /v1/chat/completions``,
  ``GET /v1/models``, ``GET /v1/models/{model}``;
* MCP (:mod:`soorma.functions.protocols.mcp`): ``POST /v1/mcp``, every Tool of the caller's tenant as an MCP tool;
* the LLM gateway (:mod:`soorma.functions.protocols.llm`): ``POST /v1/llm/chat`` (models, not goals: the tenant's
  provider, metered into the goal's usage) and ``/v1/llm/settings``.

Each one turns a request into a goal through :class:`soorma.functions.gateway.goals.Goals` (the goal API's own model:
the same policy checks, idempotency, publish and long-poll), under the caller's identity (row-level security).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from soorma.functions.gateway.goals import Goals
from soorma.functions.gateway.policy import PolicyViolation
from soorma.functions.gateway.publisher import Publisher, publisher_from_env
from soorma.functions.protocols import a2a, chat, llm, mcp
from soorma.functions.shared.db import Database, database_from_env
from soorma.functions.shared.service import function_app

__all__ = ["create_app"]


def create_app(db: Database | None = None, publisher: Publisher | None = None) -> FastAPI:
    """The protocols function's FastAPI app.

    ``db`` defaults to :func:`soorma.functions.shared.db.database_from_env`; ``publisher`` to the transport chosen by
    ``SOORMA_EVENT_TRANSPORT`` (:func:`~soorma.functions.gateway.publisher.publisher_from_env`), as the gateway's.
    """
    db = db if db is not None else database_from_env()
    publisher = publisher if publisher is not None else publisher_from_env()
    app = function_app("Soorma agent protocols", version="1")
    app.state.db = db
    app.state.publisher = publisher
    goals = Goals(db, publisher)
    app.state.goals = goals

    @app.exception_handler(PolicyViolation)
    async def _policy(request: Request, exc: PolicyViolation) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=403)

    app.include_router(a2a.create_router(db, goals))
    chat.install(app, db, goals)
    app.include_router(mcp.create_router(db, goals))
    app.include_router(llm.create_router(db))
    generate_document = app.openapi

    def openapi() -> dict[str, Any]:
        # The A2A answers' schemas are added when the document is first built, not here: they need the a2a SDK's
        # types, which a cold start serving no A2A request should not import.
        if app.openapi_schema is None:
            app.openapi_schema = a2a.document_answers(generate_document())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
