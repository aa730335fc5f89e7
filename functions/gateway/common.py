"""HTTP plumbing shared by the platform's FastAPI functions (registry, gateway, tracker).

* :func:`current_identity` — the FastAPI dependency every route uses: the caller's identity, read only from the
  authorizer context of the API Gateway v2 event that Mangum put in ``request.scope["aws.event"]``.
* :func:`install_error_handlers` — maps what a client can cause to 4xx answers instead of a 500: no identity → 401,
  a value that cannot form a NATS subject → 422, a value PostgreSQL refuses (NUL characters, ...) → 422, a unique
  violation → 409, and an unreachable database → 503.
* :func:`lazy_mangum_handler` — a Lambda entry point that builds the app (and its Mangum adapter) on the first
  invocation, so importing a handler module needs no environment.

Mangum (0.17+) runs each invocation with ``asyncio.get_event_loop().run_until_complete(...)`` on the thread that
calls the handler, reusing that loop across warm invocations; FastAPI runs our sync endpoints in a worker thread.
Nothing here keeps an async resource on Mangum's loop (see ``soorma.functions.gateway.publisher`` for NATS).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any, Callable

import psycopg
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from psycopg_pool import PoolTimeout

from soorma.identity import Identity, MissingIdentity, from_request
from soorma.subjects import InvalidSubjectToken

logger = logging.getLogger("soorma.functions")

WRITER_ROLES = frozenset({"admin", "developer", "agent"})


def current_identity(request: Request) -> Identity:
    """FastAPI dependency: the authorizer's identity; raises :class:`MissingIdentity` (answered 401) without it."""
    return from_request(request)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]


def install_error_handlers(app: FastAPI) -> None:
    """Register the exception handlers described in the module docstring."""

    @app.exception_handler(MissingIdentity)
    async def _missing_identity(request: Request, exc: MissingIdentity) -> JSONResponse:
        return JSONResponse({"detail": "Unauthorized: no authorizer identity on the request"}, status_code=401)

    @app.exception_handler(InvalidSubjectToken)
    async def _bad_subject(request: Request, exc: InvalidSubjectToken) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.exception_handler(psycopg.DataError)
    async def _bad_data(request: Request, exc: psycopg.DataError) -> JSONResponse:
        return JSONResponse({"detail": f"invalid value: {_first_line(exc)}"}, status_code=422)

    @app.exception_handler(psycopg.errors.UniqueViolation)
    async def _conflict(request: Request, exc: psycopg.IntegrityError) -> JSONResponse:
        return JSONResponse({"detail": "conflict: the resource already exists"}, status_code=409)

    @app.exception_handler(psycopg.errors.ProgramLimitExceeded)
    async def _too_large(request: Request, exc: psycopg.Error) -> JSONResponse:
        return JSONResponse({"detail": f"value too large: {_first_line(exc)}"}, status_code=422)

    @app.exception_handler(psycopg.OperationalError)
    async def _db_down(request: Request, exc: psycopg.OperationalError) -> JSONResponse:
        logger.error("database unavailable: %s", exc)
        return JSONResponse({"detail": "database unavailable, retry later"}, status_code=503)

    @app.exception_handler(PoolTimeout)
    async def _pool_timeout(request: Request, exc: PoolTimeout) -> JSONResponse:
        logger.error("database pool timeout: %s", exc)
        return JSONResponse({"detail": "database unavailable, retry later"}, status_code=503)


def _usable_event_loop() -> None:
    """Give the calling thread an open event loop for Mangum (it calls ``asyncio.get_event_loop()``)."""
    try:
        loop = asyncio.get_event_loop()
    except RuntimeError:
        loop = None
    if loop is None or loop.is_closed():
        asyncio.set_event_loop(asyncio.new_event_loop())


def lazy_mangum_handler(factory: Callable[[], FastAPI]) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    """A Lambda handler that builds ``Mangum(factory(), lifespan="off")`` on first use and reuses it while warm."""
    from mangum import Mangum

    built: list[Mangum] = []
    lock = threading.Lock()

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        if not built:
            with lock:
                if not built:
                    built.append(Mangum(factory(), lifespan="off"))
        _usable_event_loop()
        return built[0](event, context)

    handler.__doc__ = "Lambda entry point (API Gateway HTTP API, payload format 2.0) of the function's FastAPI app."
    return handler
