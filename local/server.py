"""The local stack's one HTTP server: the API routes (through :class:`LocalApiGateway`), Lambda's Invoke API, and
the ``/_local`` control routes the CLI uses (deploy a function, bind it to its agent, status).

The administrative surfaces require the stack's own credentials: the Invoke API (``/2015-03-31/...``) a SigV4
signature by the stack's access key (:mod:`soorma.local.runtime.lambda_api`), ``/_local`` the control token
(``X-Soorma-Control-Token``). Both refuse browser-originated requests (an ``Origin`` header, or ``Sec-Fetch-Site``
other than ``none``) with 403 before routing, so a web page open in the developer's browser cannot drive them, not
even with a CORS "simple" request (a ``text/plain`` POST needs no preflight).
"""

from __future__ import annotations

import asyncio
import hmac
import re
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from soorma.local.apigw import LocalApiGateway
from soorma.local.bindings import binding_route
from soorma.local.dbpause import MAX_PAUSE_S
from soorma.local.paths import write_json
from soorma.local.settings import API_KEY
from soorma.local.sigv4 import browser_origin

if TYPE_CHECKING:
    from soorma.local.stack import LocalStack

_FUNCTION_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
#: Path prefixes of the administrative surfaces (the Invoke API and the control routes).
ADMIN_PREFIXES = ("/2015-03-31/", "/2015-03-31", "/_local/", "/_local")


class RefuseBrowserRequests:
    """ASGI middleware: a request to an administrative path (:data:`ADMIN_PREFIXES`) that a browser sent
    (:func:`soorma.local.sigv4.browser_origin`) is answered 403 without reaching any route. Everything else passes."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope.get("path", "").startswith(ADMIN_PREFIXES):
            from starlette.datastructures import Headers

            why = browser_origin(Headers(scope=scope))
            if why is not None:
                response = JSONResponse({"message": f"browser-originated requests ({why}) are refused by the local "
                                                    "stack's administrative API", "__type": "AccessDeniedException"},
                                        status_code=403, headers={"x-amzn-ErrorType": "AccessDeniedException"})
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


class FunctionSpec(BaseModel):
    """Body of ``PUT /_local/functions/{name}``: what ``soorma local deploy`` sends for one agent function."""

    handler: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_.]*$")
    code_dir: str
    platform_tenant_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    agent_name: str = Field(min_length=1, max_length=128)
    env: dict[str, str] = Field(default_factory=dict)
    timeout_s: float = Field(default=30.0, gt=0, le=900)
    memory_mb: int = Field(default=512, ge=128, le=10240)
    max_concurrency: int = Field(default=2, ge=1, le=100)


class DbPause(BaseModel):
    """Body of ``POST /_local/db/pause``: how long the database is unavailable (``0``: resume now) and whether new
    connections are refused or held until it resumes (:mod:`soorma.local.dbpause`)."""

    seconds: float = Field(ge=0, le=MAX_PAUSE_S)
    mode: Literal["refuse", "hold"] = "refuse"


def build_app(stack: "LocalStack") -> Starlette:
    from soorma.local.stack import PLATFORM_FUNCTIONS

    function_names = {logical: name for logical, (name, _) in PLATFORM_FUNCTIONS.items()}
    gateway = LocalApiGateway(
        stack.runtime,
        authorizer="authorizer",
        authorizer_ttl_s=stack.settings.authorizer_ttl_s,
        function_names=lambda logical: function_names.get(logical, logical),
        access_log=stack.paths.logs / "api.log",
    )

    def authorized(request: Request) -> bool:
        token = request.headers.get("x-soorma-control-token", "")
        return hmac.compare_digest(token.encode(), stack.secrets["control_token"].encode())

    async def status(request: Request) -> JSONResponse:
        if not authorized(request):
            return JSONResponse({"detail": "control token required"}, status_code=401)
        return JSONResponse(
            {
                "state": stack.state,
                "functions": stack.runtime.stats() if stack.runtime else {},
                "bridge": stack.bridge.stats() if stack.bridge else {},
                "esm": stack.sqs.stats() if stack.sqs else {},
            }
        )

    async def put_function(request: Request) -> JSONResponse:
        if not authorized(request):
            return JSONResponse({"detail": "control token required"}, status_code=401)
        name = request.path_params["name"]
        if not _FUNCTION_NAME.match(name) or name in function_names.values():
            return JSONResponse({"detail": f"invalid or reserved function name {name!r}"}, status_code=400)
        try:
            spec = FunctionSpec.model_validate_json(await request.body())
        except ValidationError as exc:
            return JSONResponse({"detail": exc.errors(include_url=False, include_context=False)}, status_code=422)
        from soorma.local.runtime import FunctionConfig, FunctionNotFound

        try:  # a redeploy keeps the function's valid key (or revokes it when it issues another)
            previous_key = API_KEY.get(stack.runtime.function(name).env)
        except FunctionNotFound:
            previous_key = None
        key = await asyncio.to_thread(stack.issue_agent_key, spec.platform_tenant_id, spec.agent_name, previous_key)
        config: dict[str, Any] = {
            "name": name,
            "handler": spec.handler,
            "code_dir": spec.code_dir,
            "env": stack.agent_env(key, spec.env, platform_tenant_id=spec.platform_tenant_id),
            "timeout_s": spec.timeout_s,
            "memory_mb": spec.memory_mb,
            "max_concurrency": spec.max_concurrency,
            "platform_tenant_id": spec.platform_tenant_id,  # routes of other tenants never reach it (finding 3)
        }
        write_json(stack.paths.functions / f"{name}.json", config, private=True)
        stack.runtime.register(FunctionConfig(**config))
        return JSONResponse({"function_name": name, "handler": spec.handler})

    async def db_pause(request: Request) -> JSONResponse:
        """``POST /_local/db/pause`` ``{"seconds": 20, "mode": "refuse"|"hold"}``: the database is unavailable to the
        functions for that long (:mod:`soorma.local.dbpause`); ``{"seconds": 0}`` resumes it now. ``GET
        /_local/db``: the proxy's status."""
        if not authorized(request):
            return JSONResponse({"detail": "control token required"}, status_code=401)
        proxy = stack.db_proxy
        if proxy is None:
            return JSONResponse({"detail": "the stack runs without the pausable database proxy: start it with "
                                           "SOORMA_LOCAL_DB_PAUSABLE=on to simulate a pause"}, status_code=409)
        if request.method == "GET":
            return JSONResponse(proxy.status())
        try:
            body = DbPause.model_validate_json(await request.body() or b"{}")
        except ValidationError as exc:
            return JSONResponse({"detail": exc.errors(include_url=False, include_context=False)}, status_code=422)
        if body.seconds == 0:
            return JSONResponse(proxy.resume())
        return JSONResponse(proxy.pause(body.seconds, body.mode))

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": stack.state.get("status", "starting")})

    async def api(request: Request) -> Any:
        return await gateway.handle(request)

    routes: list[Any] = [
        Route("/health", health),
        Route("/_local/status", status),
        Route("/_local/functions/{name}", put_function, methods=["PUT"]),
        Route("/_local/db", db_pause, methods=["GET"]),
        Route("/_local/db/pause", db_pause, methods=["POST"]),
        binding_route(stack, authorized),  # deployment bindings: only the deploy path writes them (finding 3)
    ]
    try:
        from soorma.local.runtime.lambda_api import create_lambda_api
        from soorma.local.sigv4 import LocalAwsCredentials

        # Lambda's Invoke API (boto3 `lambda.invoke` with endpoint_url = the stack's URL and the stack's access key).
        credentials = LocalAwsCredentials(stack.secrets["aws_access_key_id"], stack.secrets["aws_secret_access_key"])
        routes.extend(create_lambda_api(stack.runtime, credentials=credentials).routes)
        # The live goal streams' WebSocket API and its @connections API (soorma.local.websocket).
        from soorma.local.websocket import LocalWebSocketApi

        routes.extend(LocalWebSocketApi(stack.runtime, credentials=credentials, region=stack.runtime.settings.region,
                                        function_names=lambda logical: function_names.get(logical, logical)).routes())
    except ImportError:  # the Invoke API is optional for the stack itself (it needs botocore)
        pass
    # The local console (soorma.local.console): its page, and the dead letters, which no platform route serves.
    from soorma.local.console import console_routes

    routes.extend(console_routes(stack, gateway))
    routes.append(Route("/{path:path}", api, methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]))

    async def not_found(request: Request, exc: Exception) -> JSONResponse:
        # a path no route matches (e.g. with a newline, which `{path:path}` does not take): API Gateway's answer
        return JSONResponse({"message": "Not Found"}, status_code=404)

    app = Starlette(routes=routes, exception_handlers={404: not_found})
    app.add_middleware(RefuseBrowserRequests)
    return app
