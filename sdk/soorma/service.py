"""HTTP plumbing shared by the platform's FastAPI functions (registry, memory, gateway, tracker).

* :func:`function_app` — a FastAPI app set up the way every function's is: no docs routes, the identity guard and
  the error handlers below installed.
* :class:`RequireIdentity` — ASGI middleware: a request under ``/v1/`` without the authorizer context is answered
  401 before routing and body parsing (an anonymous caller learns nothing about its body's validity), and the
  identity it found is kept in ``request.state.identity``.
* :func:`current_identity` — the FastAPI dependency every route uses: the caller's identity, read only from the
  authorizer context of the API Gateway v2 event that Mangum put in ``request.scope["aws.event"]``.
* :func:`install_error_handlers` — maps what a client can cause to 4xx answers instead of a 500: no identity → 401,
  a value that cannot form a NATS subject → 422, a value PostgreSQL refuses (NUL characters, ...) → 422, a unique
  violation → 409, a value too large for an index → 422, and an unreachable database → 503.
* :func:`lazy_mangum_handler` — a Lambda entry point that builds the app (and its Mangum adapter) on the first
  invocation, so importing a handler module needs no environment.

Mangum (0.17+) runs each invocation with ``asyncio.get_event_loop().run_until_complete(...)`` on the thread that
calls the handler, reusing that loop across warm invocations; FastAPI runs our sync endpoints in a worker thread.
Nothing here keeps an async resource on Mangum's loop (see ``soorma.functions.gateway.publisher`` for NATS).

Requires the ``functions`` extra (FastAPI, Mangum, psycopg); ``import soorma`` does not import this module.
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
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from soorma.identity import Identity, MissingIdentity, from_request
from soorma.subjects import InvalidSubjectToken

logger = logging.getLogger("soorma.functions")

#: Paths under this prefix need the authorizer's identity (everything else, e.g. ``/health``, does not).
PROTECTED_PREFIX = "/v1/"

UNAUTHORIZED = {"detail": "Unauthorized: no authorizer identity on the request"}


def _unauthorized() -> JSONResponse:
    return JSONResponse(UNAUTHORIZED, status_code=401)


class RequireIdentity:
    """ASGI middleware: every request under ``prefix`` must carry the authorizer context; 401 otherwise, before
    routing and body parsing. The identity goes to ``scope["state"]["identity"]`` (``request.state.identity``)."""

    def __init__(self, app: ASGIApp, prefix: str = PROTECTED_PREFIX) -> None:
        self.app = app
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("path", "").startswith(self.prefix):
            try:
                identity = from_request(HTTPConnection(scope))
            except MissingIdentity:
                await _unauthorized()(scope, receive, send)
                return
            scope.setdefault("state", {})["identity"] = identity
        await self.app(scope, receive, send)


def current_identity(request: Request) -> Identity:
    """FastAPI dependency: the authorizer's identity (as :class:`RequireIdentity` found it, or read from the event
    for a route outside its prefix); raises :class:`MissingIdentity` (answered 401) without it."""
    found = getattr(request.state, "identity", None)
    return found if found is not None else from_request(request)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]


def install_error_handlers(app: FastAPI) -> None:
    """Register the exception handlers described in the module docstring."""

    @app.exception_handler(MissingIdentity)
    async def _missing_identity(request: Request, exc: MissingIdentity) -> JSONResponse:
        return _unauthorized()

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


def function_app(title: str, *, protected_prefix: str = PROTECTED_PREFIX, **fastapi_kwargs: Any) -> FastAPI:
    """A function's FastAPI app: ``FastAPI(title=title, docs_url=None, redoc_url=None, openapi_url=None,
    **fastapi_kwargs)`` with :class:`RequireIdentity` on ``protected_prefix`` and :func:`install_error_handlers`."""
    options: dict[str, Any] = {"docs_url": None, "redoc_url": None, "openapi_url": None, **fastapi_kwargs}
    app = FastAPI(title=title, **options)
    app.add_middleware(RequireIdentity, prefix=protected_prefix)
    install_error_handlers(app)
    return app


def ensure_event_loop() -> None:
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
        ensure_event_loop()
        return built[0](event, context)

    handler.__doc__ = "Lambda entry point (API Gateway HTTP API, payload format 2.0) of the function's FastAPI app."
    return handler


__all__ = [
    "PROTECTED_PREFIX",
    "RequireIdentity",
    "current_identity",
    "ensure_event_loop",
    "function_app",
    "install_error_handlers",
    "lazy_mangum_handler",
]
