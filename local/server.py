"""The local stack's one HTTP server: the API routes (through :class:`LocalApiGateway`), Lambda's Invoke API, and
the ``/_local`` control routes the CLI uses (deploy a function, status)."""

from __future__ import annotations

import asyncio
import hmac
import re
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from soorma.local.apigw import LocalApiGateway
from soorma.local.paths import write_json

if TYPE_CHECKING:
    from soorma.local.stack import LocalStack

_FUNCTION_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


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


def build_app(stack: "LocalStack") -> Starlette:
    from soorma.local.stack import PLATFORM_FUNCTIONS

    function_names = {logical: name for logical, (name, _) in PLATFORM_FUNCTIONS.items()}
    gateway = LocalApiGateway(
        stack.runtime,
        authorizer="authorizer",
        authorizer_ttl_s=stack.settings.authorizer_ttl_s,
        function_names=lambda logical: function_names.get(logical, logical),
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
        from soorma.local.runtime import FunctionConfig

        key = await asyncio.to_thread(stack.issue_agent_key, spec.platform_tenant_id, spec.agent_name)
        config: dict[str, Any] = {
            "name": name,
            "handler": spec.handler,
            "code_dir": spec.code_dir,
            "env": stack.agent_env(key, spec.env, platform_tenant_id=spec.platform_tenant_id),
            "timeout_s": spec.timeout_s,
            "memory_mb": spec.memory_mb,
            "max_concurrency": spec.max_concurrency,
        }
        write_json(stack.paths.functions / f"{name}.json", config, private=True)
        stack.runtime.register(FunctionConfig(**config))
        return JSONResponse({"function_name": name, "handler": spec.handler})

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": stack.state.get("status", "starting")})

    async def api(request: Request) -> Any:
        return await gateway.handle(request)

    routes: list[Any] = [
        Route("/health", health),
        Route("/_local/status", status),
        Route("/_local/functions/{name}", put_function, methods=["PUT"]),
    ]
    try:
        from soorma.local.runtime.lambda_api import create_lambda_api

        # Lambda's Invoke API (boto3 `lambda.invoke` with endpoint_url = the stack's URL).
        routes.extend(create_lambda_api(stack.runtime).routes)
    except ImportError:  # the Invoke API is optional for the stack itself
        pass
    routes.append(Route("/{path:path}", api, methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]))

    async def not_found(request: Request, exc: Exception) -> JSONResponse:
        # a path no route matches (e.g. with a newline, which `{path:path}` does not take): API Gateway's answer
        return JSONResponse({"message": "Not Found"}, status_code=404)

    return Starlette(routes=routes, exception_handlers={404: not_found})
