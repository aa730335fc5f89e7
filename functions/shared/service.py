"""HTTP plumbing shared by the platform's FastAPI functions (registry, memory, gateway, tracker).

* :func:`function_app` — a FastAPI app set up the way every function's is: no docs routes, the identity guard and
  the error handlers below installed.
* :class:`RequireIdentity` — ASGI middleware: a request under ``/v1/`` without the authorizer context is answered
  401 before routing and body parsing (an anonymous caller learns nothing about its body's validity), and the
  identity it found is kept in ``request.state.identity``. Then it **admits** the request (:class:`Admission`): one
  call of ``gateway.admit`` (SECURITY DEFINER) refuses an API key revoked or expired since the authorizer's answer was
  cached (401), a suspended platform tenant (403), and takes a token from the key's and the tenant's token bucket
  (429 with ``Retry-After`` when either is empty). A JWT past its ``exp`` is refused (401) without a database call.
* Rate limits are enforced here, in the function, and not in the authorizer: API Gateway caches the authorizer's
  answer per identity source (so it does not run on every request and could not count them), and a simple
  authorizer response can only allow or deny (403), never answer 429 with ``Retry-After``. The buckets live in
  PostgreSQL, shared by every execution environment.
* :func:`function_app` also serves the app's OpenAPI document at ``/openapi/<name>.json`` (public) with the
  security schemes and every error answer (``{"detail": ...}``) documented on each ``/v1`` operation.
* :func:`current_identity` — the FastAPI dependency every route uses: the caller's identity, read only from the
  authorizer context of the API Gateway v2 event that Mangum put in ``request.scope["aws.event"]``.
* :func:`install_error_handlers` — maps what a client can cause to 4xx answers instead of a 500: no identity → 401,
  a value that cannot form a NATS subject → 422, a value PostgreSQL refuses (NUL characters, ...) → 422, a unique
  violation → 409, a value too large for an index → 422, a statement cancelled by ``statement_timeout``
  (:mod:`soorma.functions.shared.db`) → 503 with ``Retry-After``, and an unavailable database (paused and resuming,
  restarting, unreachable: no connection within ``SOORMA_DB_CONNECT_WAIT_S``) → 503 with ``Retry-After``
  (:func:`database_unavailable`), never a 500.
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
import math
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

import psycopg
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from psycopg_pool import PoolTimeout
from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from soorma import telemetry
from soorma.functions.shared import settings
from soorma.identity import Identity, MissingIdentity, OverrideRefused, from_request
from soorma.subjects import InvalidSubjectToken

logger = logging.getLogger("soorma.functions")

T = TypeVar("T")

#: Paths under this prefix need the authorizer's identity (everything else, e.g. ``/health``, does not).
PROTECTED_PREFIX = "/v1/"

#: Paths under :data:`PROTECTED_PREFIX` whose function verifies the credential itself, on every request, because it
#: comes in a header the authorizer's cache is not keyed on (the identity service's ``X-Identity-Admin-Key``,
#: :mod:`soorma.functions.identity.service`); their routes have no authorizer.
SELF_AUTHENTICATED_PREFIXES = ("/v1/identity/",)

UNAUTHORIZED = {"detail": "Unauthorized: no authorizer identity on the request"}


def needs_authorizer(path: str, prefix: str = PROTECTED_PREFIX) -> bool:
    """Whether a request for ``path`` must carry the authorizer's identity (see :data:`SELF_AUTHENTICATED_PREFIXES`)."""
    return path.startswith(prefix) and not path.startswith(SELF_AUTHENTICATED_PREFIXES)


def _unauthorized() -> JSONResponse:
    return JSONResponse(UNAUTHORIZED, status_code=401)


def database_unavailable(exc: BaseException) -> JSONResponse:
    """The answer to a request the database could not serve now: 503 ``{"detail": ...}`` with ``Retry-After``
    (whole seconds: the exception's ``retry_after_s`` when it has one, else ``SOORMA_DB_RETRY_AFTER_S``). Clients
    (the SDK included) retry after it; the event consumers treat it as "platform unavailable" (not a failure of the
    event)."""
    seconds = getattr(exc, "retry_after_s", None) or settings.DB_RETRY_AFTER_S.get()
    logger.error("database unavailable: %s", _first_line(exc))
    return JSONResponse({"detail": "database unavailable, retry later"}, status_code=503,
                        headers={"Retry-After": str(int(seconds))})


@dataclass(frozen=True)
class Admission:
    """Default rate limits (a tenant's own settings in ``gateway.tenants`` override them):
    ``SOORMA_RATE_KEY_RPS`` (50 requests/s per API key or token principal), ``SOORMA_RATE_KEY_BURST`` (100),
    ``SOORMA_RATE_TENANT_RPS`` (200 per platform tenant), ``SOORMA_RATE_TENANT_BURST`` (400);
    ``SOORMA_RATE_LIMITS=off`` turns the buckets off (the revocation and suspension checks stay).

    Principals of role ``agent`` (the platform's own agent functions, keyed at deploy) are admitted by a bucket of
    their own (``gateway.admit_agent``, migration 0016): ``SOORMA_RATE_AGENT_RPS`` (1000 requests/s per agent
    credential) and ``SOORMA_RATE_AGENT_BURST`` (2000), not drawing from the tenant's bucket and not subject to a
    tenant's per-key override. Their calls are the work of goals and events already admitted at the edge; throttling
    them with limits meant for outside callers loses work half-done (issue 12, finding 11). Kubernetes' API Priority
    and Fairness gives system components their own priority levels for the same reason. The bucket still bounds a
    runaway or leaked agent key.

    Buckets are keyed by platform tenant AND credential (``<platform tenant>/<credential id>``): a JWT's credential id
    comes from claims another tenant's issuer may choose too (``sub``, ``jti``), so two tenants' tokens naming the
    same subject must not share (and drain) one bucket (issue 12, finding 10)."""

    key_rps: float = settings.RATE_KEY_RPS.default
    key_burst: float = settings.RATE_KEY_BURST.default
    tenant_rps: float = settings.RATE_TENANT_RPS.default
    tenant_burst: float = settings.RATE_TENANT_BURST.default
    agent_rps: float = settings.RATE_AGENT_RPS.default
    agent_burst: float = settings.RATE_AGENT_BURST.default
    limits: bool = settings.RATE_LIMITS.default

    @classmethod
    def from_env(cls) -> "Admission":
        return cls(
            key_rps=settings.RATE_KEY_RPS.get(),
            key_burst=max(1.0, settings.RATE_KEY_BURST.get()),
            tenant_rps=settings.RATE_TENANT_RPS.get(),
            tenant_burst=max(1.0, settings.RATE_TENANT_BURST.get()),
            agent_rps=settings.RATE_AGENT_RPS.get(),
            agent_burst=max(1.0, settings.RATE_AGENT_BURST.get()),
            limits=settings.RATE_LIMITS.get(),
        )

    @staticmethod
    def bucket_key(identity: Identity) -> str:
        """The key bucket's name: ``<platform tenant>/<credential id or principal id>`` (see the class docstring)."""
        return f"{identity.platform_tenant_id}/{identity.credential_id or identity.principal_id}"

    def check(self, db: Any, identity: Identity) -> tuple[str, float]:
        """``(verdict, retry_after_s)``: ``ok``, ``revoked``, ``suspended`` or ``limited`` (one database call).
        Raises ``psycopg.OperationalError`` / ``PoolTimeout`` when the database is unavailable."""
        big = 1e12  # buckets off: a huge bucket never empties, the credential checks still run
        key_id = identity.credential_id if identity.credential_type == "api_key" else None
        # Pipelined, its result read after the block: BEGIN, the call and COMMIT travel in ONE round trip (a plain
        # transaction takes three) on the critical path of every request.
        with db.transaction(pipeline=True) as conn:
            if identity.role == "agent":
                cursor = conn.execute(
                    "select verdict, retry_after from gateway.admit_agent(%s, %s, %s, %s, %s)",
                    (identity.platform_tenant_id, self.bucket_key(identity), key_id,
                     self.agent_rps if self.limits else big, self.agent_burst if self.limits else big),
                )
            else:
                cursor = conn.execute(
                    "select verdict, retry_after from gateway.admit(%s, %s, %s, %s, %s, %s, %s)",
                    (
                        identity.platform_tenant_id,
                        self.bucket_key(identity),
                        key_id,
                        self.key_rps if self.limits else big,
                        self.key_burst if self.limits else big,
                        self.tenant_rps if self.limits else big,
                        self.tenant_burst if self.limits else big,
                    ),
                )
        row = cursor.fetchone()
        if isinstance(row, dict):
            return row["verdict"], float(row["retry_after"])
        return row[0], float(row[1])


def _admission_db(app: Any) -> Any:
    state = getattr(app, "state", None)
    db = getattr(state, "db", None)
    if db is None:
        resources = getattr(state, "resources", None)
        db = getattr(resources, "db", None) if resources is not None else None
    if db is None:
        from soorma.functions.shared.db import database_from_env

        db = database_from_env()
    return db


class RequireIdentity:
    """ASGI middleware: every request under ``prefix`` must carry the authorizer context; 401 otherwise, before
    routing and body parsing. The identity goes to ``scope["state"]["identity"]`` (``request.state.identity``).

    A context the authorizer produced names its credential (``credential_type``); such a request is then admitted by
    :class:`Admission` (see the module docstring). ``admission=None`` reads the settings from the environment on the
    first request."""

    def __init__(self, app: ASGIApp, prefix: str = PROTECTED_PREFIX, admission: Admission | None = None) -> None:
        self.app = app
        self.prefix = prefix
        self.admission = admission

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and needs_authorizer(scope.get("path", ""), self.prefix):
            refusal = await self._resolve_deferred(scope)
            if refusal is not None:
                await refusal(scope, receive, send)
                return
            try:
                identity = from_request(HTTPConnection(scope))
            except MissingIdentity:
                await _unauthorized()(scope, receive, send)
                return
            except OverrideRefused as exc:
                await JSONResponse({"detail": str(exc)}, status_code=403)(scope, receive, send)
                return
            scope.setdefault("state", {})["identity"] = identity
            refusal = await self._admit(scope, identity)
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def _resolve_deferred(self, scope: Scope) -> JSONResponse | None:
        """A request the authorizer let through while the database was unavailable
        (:mod:`soorma.functions.gateway.authorizer`, "deferred"): check its credential now and put the identity in
        the event's authorizer context, as if the authorizer had answered; 401 for a bad credential, 503 with
        ``Retry-After`` while the database is still unavailable. ``None``: go on."""
        event = scope.get("aws.event")
        authorizer = ((event or {}).get("requestContext") or {}).get("authorizer") or {}
        context = authorizer.get("lambda") if isinstance(authorizer, dict) else None
        if not isinstance(context, dict) or not context.get("deferred"):
            return None
        from soorma.functions.gateway.credentials import resolve_deferred

        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers") or []}
        try:
            db = _admission_db(scope.get("app"))
            identity = await run_blocking(scope, resolve_deferred, headers, context, db)
        except (psycopg.OperationalError, PoolTimeout) as exc:
            return database_unavailable(exc)
        if identity is None:
            return _unauthorized()
        authorizer["lambda"] = identity.as_context()
        return None

    async def _admit(self, scope: Scope, identity: Identity) -> JSONResponse | None:
        if not identity.credential_type:
            return None  # not from the platform's authorizer (in-process tests of a function)
        if identity.expires_at:
            try:
                expired = int(identity.expires_at) <= time.time()
            except ValueError:
                expired = True
            if expired:
                return JSONResponse({"detail": "Unauthorized: the token has expired"}, status_code=401)
        if self.admission is None:
            self.admission = Admission.from_env()
        try:
            db = _admission_db(scope.get("app"))
            verdict, retry_after = await run_blocking(scope, self.admission.check, db, identity)
        except (psycopg.OperationalError, PoolTimeout) as exc:
            return database_unavailable(exc)
        if verdict == "ok":
            return None
        if verdict == "revoked":
            return JSONResponse({"detail": "Unauthorized: the API key was revoked or has expired"}, status_code=401)
        if verdict == "suspended":
            return JSONResponse({"detail": "Forbidden: the platform tenant is suspended"}, status_code=403)
        seconds = max(1, math.ceil(retry_after))
        return JSONResponse(
            {"detail": f"rate limit exceeded, retry after {seconds} s"},
            status_code=429,
            headers={"Retry-After": str(seconds)},
        )


def identity_of(request: Request) -> Identity:
    """The authorizer's identity (as :class:`RequireIdentity` found it, or read from the event for a route outside
    its prefix); raises :class:`MissingIdentity` (answered 401) without it."""
    found = getattr(request.state, "identity", None)
    return found if found is not None else from_request(request)


async def current_identity(request: Request) -> Identity:
    """FastAPI dependency: :func:`identity_of`. Async because it only reads: FastAPI runs a plain function
    dependency in its threadpool, and in a Lambda invocation that starts a thread (see :func:`run_blocking`)."""
    return identity_of(request)


async def run_blocking(scope: Scope, func: Callable[..., T], *args: Any) -> T:
    """``func(*args)`` (blocking: database calls) from async code. In a Lambda invocation (Mangum puts the event in
    the ASGI scope as ``aws.event``) it runs on the event loop itself: an execution environment serves one request at
    a time, so nothing else waits for the loop, and the threadpool would start a new thread for each invocation
    (anyio's worker threads belong to the root task, and Mangum runs every invocation as a new one: 0.75 ms measured
    by bench/request_path.py). Elsewhere (an ASGI server with concurrent requests, in-process tests) in the
    threadpool, as Starlette does. Raises what ``func`` raises."""
    if scope.get("aws.event") is not None:
        return func(*args)
    return await run_in_threadpool(func, *args)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]


def install_error_handlers(app: FastAPI) -> None:
    """Register the exception handlers described in the module docstring."""

    @app.exception_handler(MissingIdentity)
    async def _missing_identity(request: Request, exc: MissingIdentity) -> JSONResponse:
        return _unauthorized()

    @app.exception_handler(OverrideRefused)
    async def _override_refused(request: Request, exc: OverrideRefused) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=403)

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

    @app.exception_handler(psycopg.errors.QueryCanceled)
    async def _statement_timeout(request: Request, exc: psycopg.errors.QueryCanceled) -> JSONResponse:
        # statement_timeout (soorma.functions.shared.db): the server cancelled a statement that ran too long. A clean, retryable
        # answer instead of a hung function; the statement's text is not echoed.
        logger.error("database statement cancelled: %s", _first_line(exc))
        return JSONResponse({"detail": "the database statement took too long and was cancelled; retry later"},
                            status_code=503, headers={"Retry-After": "1"})

    @app.exception_handler(psycopg.errors.IdleInTransactionSessionTimeout)
    async def _idle_ended(request: Request, exc: psycopg.Error) -> JSONResponse:
        # idle_in_transaction_session_timeout (soorma.functions.shared.db) ended the session (SQLSTATE 25P03, an InternalError, not
        # an OperationalError); the pool replaces the connection, so a retry succeeds.
        logger.error("database session ended while idle in a transaction: %s", _first_line(exc))
        return JSONResponse({"detail": "database unavailable, retry later"}, status_code=503,
                            headers={"Retry-After": "1"})

    @app.exception_handler(psycopg.OperationalError)
    async def _db_down(request: Request, exc: psycopg.OperationalError) -> JSONResponse:
        return database_unavailable(exc)

    @app.exception_handler(PoolTimeout)
    async def _pool_timeout(request: Request, exc: PoolTimeout) -> JSONResponse:
        return database_unavailable(exc)


ERROR_SCHEMA: dict[str, Any] = {
    "title": "ErrorResponse",
    "type": "object",
    "description": "An error: FastAPI's ``detail`` (a string, or a list of validation errors), or API Gateway's "
    "``message``.",
    "properties": {"detail": {}, "message": {"type": "string"}},
}

ERROR_ANSWERS = {
    "400": "Bad request",
    "401": "No valid credential (missing, wrong, revoked or expired)",
    "403": "Refused: role too weak, another tenant, suspended tenant, or a policy rule (``rule`` names it)",
    "404": "Not found (or not visible to the caller)",
    "409": "Conflict",
    "413": "Too large for the event bus",
    "422": "Invalid request",
    "429": "Rate limit exceeded; ``Retry-After`` says when to retry",
    "503": "A platform dependency is unavailable (e.g. the database resuming); ``Retry-After`` says when to retry",
}

SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer", "description": "An API key (sk_<key_id>_<secret>) or a JWT"},
    "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
}


def document_errors(schema: dict[str, Any], prefix: str = PROTECTED_PREFIX) -> dict[str, Any]:
    """Add the security schemes and every error answer the platform can give to the operations under ``prefix``."""
    components = schema.setdefault("components", {})
    components.setdefault("securitySchemes", {}).update(SECURITY_SCHEMES)
    components.setdefault("schemas", {})["ErrorResponse"] = ERROR_SCHEMA
    ref = {"$ref": "#/components/schemas/ErrorResponse"}
    for path, operations in schema.get("paths", {}).items():
        if not path.startswith(prefix):
            continue
        for method, operation in operations.items():
            if method not in ("get", "put", "post", "delete", "patch", "head", "options"):
                continue
            operation.setdefault("security", [{"bearer": []}, {"apiKey": []}])
            responses = operation.setdefault("responses", {})
            for code, text in ERROR_ANSWERS.items():
                answer = {"description": text, "content": {"application/json": {"schema": ref}}}
                if code in ("429", "503"):
                    answer["headers"] = {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds"}}
                if code == "422" or code not in responses:
                    responses[code] = answer
    return schema


def function_app(
    title: str,
    *,
    protected_prefix: str = PROTECTED_PREFIX,
    name: str | None = None,
    admission: Admission | None = None,
    **fastapi_kwargs: Any,
) -> FastAPI:
    """A function's FastAPI app: ``FastAPI(title=title, docs_url=None, redoc_url=None, openapi_url=None,
    redirect_slashes=False, **fastapi_kwargs)`` with :class:`RequireIdentity` on ``protected_prefix`` and :func:`install_error_handlers`.

    The OpenAPI document (with :func:`document_errors`) is served at ``/openapi/<name>.json``; ``name`` defaults to
    the title's last word in lower case (``"Soorma gateway"`` → ``gateway``)."""
    # No trailing-slash redirects: behind API Gateway a 307 to another path of the same API only confuses clients.
    options: dict[str, Any] = {"docs_url": None, "redoc_url": None, "openapi_url": None, "redirect_slashes": False,
                               **fastapi_kwargs}
    if telemetry.in_function():  # JSON log records (Powertools' formatter), as the agents write them
        telemetry.structured_logging(f"soorma-{name or title.split()[-1].lower()}")
    app = FastAPI(title=title, **options)
    app.add_middleware(RequireIdentity, prefix=protected_prefix, admission=admission)
    install_error_handlers(app)
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document_errors(generate(), protected_prefix)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    doc_name = name or title.split()[-1].lower()

    async def openapi_document(request: Request) -> JSONResponse:
        return JSONResponse(app.openapi())

    app.add_route(f"/openapi/{doc_name}.json", openapi_document, include_in_schema=False)
    return app


def ensure_event_loop() -> None:
    """Give the calling thread an open event loop for Mangum (it calls ``asyncio.get_event_loop()``)."""
    try:
        loop = asyncio.get_event_loop()
    except RuntimeError:
        loop = None
    if loop is None or loop.is_closed():
        asyncio.set_event_loop(asyncio.new_event_loop())


def lazy_mangum_handler(factory: Callable[[], FastAPI], *, warm: Callable[[FastAPI], None] | None = None,
                        ) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    """A Lambda handler that builds ``Mangum(factory(), lifespan="off")`` on first use and reuses it while warm.

    ``handler.prewarm()`` builds it now (what ``soorma.infra.runtime.boot.prepare_snapshot`` calls before a
    SnapStart snapshot) and then ``warm(app)`` if given (the gateway builds its SNS client there: under SnapStart
    Lambda gives container credentials, which botocore refreshes after a restore). Neither may open network
    connections: they would be dead in every restored environment (the platform's apps connect on first use)."""
    from mangum import Mangum

    built: list[Mangum] = []
    lock = threading.Lock()

    def adapter() -> Mangum:
        if not built:
            with lock:
                if not built:
                    built.append(Mangum(factory(), lifespan="off"))
        return built[0]

    def prewarm() -> None:
        app = adapter().app
        if warm is not None:
            warm(app)

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        mangum = adapter()
        ensure_event_loop()
        return mangum(event, context)

    handler.__doc__ = "Lambda entry point (API Gateway HTTP API, payload format 2.0) of the function's FastAPI app."
    handler.prewarm = prewarm  # type: ignore[attr-defined]  # soorma.infra.runtime.boot.prepare_snapshot calls it
    return handler


__all__ = [
    "Admission",
    "PROTECTED_PREFIX",
    "document_errors",
    "RequireIdentity",
    "current_identity",
    "database_unavailable",
    "ensure_event_loop",
    "function_app",
    "install_error_handlers",
    "lazy_mangum_handler",
]
