"""The memory function: semantic memory on pgvector, working memory, task and plan context, episodic and procedural
memory, plans, sessions and idempotency records, on soorma-core's routes (prefix ``/v1/memory``; one module per
resource in :mod:`soorma.functions.memory.resources`, which documents its routes).

``create_app(db=None, embedder=None)`` builds the FastAPI app; without arguments the database comes from
``SOORMA_APP_DATABASE_URL`` (:func:`soorma.functions.shared.db.database_from_env`) and the embedding provider from
``SOORMA_EMBEDDING_PROVIDER`` (:func:`soorma.functions.memory.embeddings.provider_from_env`), both on first use, so
importing the handler touches neither.

Identity comes only from the API Gateway authorizer context (``requestContext.authorizer.lambda``); a ``/v1/``
request without it is answered 401 before its body is read (:func:`soorma.functions.shared.service.function_app`,
like every function). Row-level security (0004_memory.sql) scopes every row. Responses are camelCase, bodies
camelCase or snake_case; every create body of an embedded resource may carry ``embedding``, a vector the caller
computed, checked against ``SOORMA_EMBEDDING_DIMENSIONS``. ``GET /health`` answers without identity (the function's
own); ``GET /v1/memory/health``, the same through the gateway, with it.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from soorma._current import GOAL_HEADER
from soorma.functions.memory.common import PUBLIC_WRITERS, Resources
from soorma.functions.memory.embeddings import EmbeddingError, EmbeddingProvider
from soorma.functions.memory.resources import ROUTERS
from soorma.functions.memory.wire import Reply
from soorma.functions.shared import usage
from soorma.functions.shared.db import Database
from soorma.functions.shared.service import function_app

logger = logging.getLogger(__name__)


class Health(Reply):
    status: str
    service: str


#: POST routes that only read (a query with a body).
READ_POSTS = ("/semantic/query",)


def _count(db: Database, identity, goal: str, read: bool) -> None:
    try:
        with db.transaction(identity) as conn:
            usage.add(conn, identity, goal, memory_reads=int(read), memory_writes=int(not read))
    except Exception:  # noqa: BLE001 - metering must not fail the caller's memory request
        logger.warning("memory usage of goal %s not counted", goal[:64], exc_info=True)


def create_app(db: Database | None = None, embedder: EmbeddingProvider | None = None) -> FastAPI:
    """The memory FastAPI app. ``db`` / ``embedder`` are injected by tests; otherwise taken from the environment."""
    # The identity guard and the shared error mapping (bad input is a 4xx with a reason, never a 500); memory keeps
    # its OpenAPI document, as it always had.
    app = function_app("Soorma memory", version="1", openapi_url="/openapi.json")
    app.state.resources = Resources(db, embedder)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": list(error.get("loc", ())), "msg": error.get("msg", ""), "type": error.get("type", "")}
            for error in exc.errors()
        ]
        return JSONResponse({"detail": errors}, status_code=422)

    @app.exception_handler(EmbeddingError)
    async def _embedding_failed(request: Request, exc: EmbeddingError) -> JSONResponse:
        return JSONResponse({"detail": f"embedding failed: {exc}"}, status_code=502)

    for router in ROUTERS:
        app.include_router(router)

    @app.middleware("http")
    async def _meter(request: Request, call_next):
        # A request that names its goal (the SDK does inside a handler) counts in that goal's usage: a read (GET, or a
        # POST that only queries) or a write. Counted after the answer, only when it succeeded, under the caller's
        # identity (RLS), in its own short transaction so a failed count never fails the request.
        response = await call_next(request)
        goal = request.headers.get(GOAL_HEADER)
        identity = getattr(request.state, "identity", None)
        if goal and identity is not None and response.status_code < 400:
            read = request.method in ("GET", "HEAD") or request.url.path.endswith(READ_POSTS)
            await run_in_threadpool(_count, app.state.resources.db, identity, goal, read)
        return response

    # Private to the function (no gateway routes it: the local API Gateway answers its own /health), so not in the
    # published OpenAPI document, whose every operation schemathesis checks through the gateway.
    @app.get("/health", include_in_schema=False)
    def health() -> Health:
        """Liveness only (no identity, no database round trip)."""
        return Health(status="ok", service="memory")

    @app.get("/v1/memory/health", tags=["health"])
    def authenticated_health() -> Health:
        """soorma-core's ``MemoryServiceClient.health()`` through the gateway (``GET /v1/memory/health``, with the
        caller's credential like every ``/v1/`` route): liveness only, as ``/health``."""
        return Health(status="ok", service="memory")

    return app


__all__ = ["PUBLIC_WRITERS", "create_app"]
