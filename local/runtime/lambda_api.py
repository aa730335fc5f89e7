"""Lambda's control-plane Invoke API over a :class:`LocalLambda`, as a Starlette app.

``POST /2015-03-31/functions/{name}/invocations`` with ``X-Amz-Invocation-Type`` ``RequestResponse`` (default),
``Event`` or ``DryRun``, ``X-Amz-Log-Type: Tail`` and ``X-Amz-Client-Context``; plus read-only
``GET /2015-03-31/functions/`` (ListFunctions) and ``GET /2015-03-31/functions/{name}[/configuration]``.
Enough for ``boto3.client("lambda", endpoint_url=...).invoke(...)``. Mount it anywhere that shares the
``LocalLambda``'s event loop (the local API Gateway process: ``app.mount("/", create_lambda_api(runtime))`` or
serve it alone with uvicorn).
"""

from __future__ import annotations

import base64
import binascii
import json
import sys
from urllib.parse import unquote

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from soorma.local.runtime.manager import LocalLambda
from soorma.local.runtime.types import MAX_SYNC_PAYLOAD, FunctionConfig, FunctionNotFound

#: Lambda's limit on an asynchronous (``Event``) invocation payload.
MAX_ASYNC_PAYLOAD = 1024 * 1024


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"Type": "User", "message": message, "__type": code}, status_code=status,
                        headers={"x-amzn-ErrorType": code})


def _resolve(runtime: LocalLambda, raw: str, qualifier: str | None) -> str | JSONResponse:
    """The function name from a name, partial ARN or ARN (optionally qualified); only ``$LATEST`` exists."""
    ref = unquote(raw)
    parts = ref.split(":")
    if ref.startswith("arn:") and len(parts) >= 7:
        name, qual = parts[6], (parts[7] if len(parts) > 7 else None)
    elif len(parts) >= 3 and parts[1] == "function":  # 123456789012:function:name[:qualifier]
        name, qual = parts[2], (parts[3] if len(parts) > 3 else None)
    else:
        name, qual = parts[0], (parts[1] if len(parts) > 1 else None)
    qual = qualifier or qual
    try:
        runtime.function(name)
    except FunctionNotFound:
        return _error(404, "ResourceNotFoundException", f"Function not found: {runtime.function_arn(name)}")
    if qual not in (None, "", "$LATEST"):
        return _error(404, "ResourceNotFoundException",
                      f"Function not found: {runtime.function_arn(name)}:{qual}")
    return name


def _configuration(runtime: LocalLambda, cfg: FunctionConfig) -> dict:
    return {
        "FunctionName": cfg.name,
        "FunctionArn": runtime.function_arn(cfg.name),
        "Runtime": f"python{sys.version_info.major}.{sys.version_info.minor}",
        "Handler": cfg.handler,
        "Timeout": int(cfg.timeout_s) if float(cfg.timeout_s).is_integer() else cfg.timeout_s,
        "MemorySize": cfg.memory_mb,
        "Version": "$LATEST",
        "State": "Active",
        "PackageType": "Zip",
        "Environment": {"Variables": dict(cfg.env)},
    }


def create_lambda_api(runtime: LocalLambda) -> Starlette:
    """A Starlette app serving Lambda's Invoke API for ``runtime``."""

    async def invoke(request: Request) -> Response:
        found = _resolve(runtime, request.path_params["name"], request.query_params.get("Qualifier"))
        if isinstance(found, Response):
            return found
        name = found
        kind = request.headers.get("x-amz-invocation-type", "RequestResponse")
        if kind not in ("RequestResponse", "Event", "DryRun"):
            return _error(400, "InvalidParameterValueException", f"Unsupported invocation type {kind!r}")
        body = await request.body()
        limit = MAX_ASYNC_PAYLOAD if kind == "Event" else MAX_SYNC_PAYLOAD
        if len(body) > limit:
            return _error(413, "RequestTooLargeException",
                          f"Request must be smaller than {limit} bytes for the InvokeFunction operation")
        if not body.strip():
            body = b"{}"
        else:
            try:
                json.loads(body)
            except ValueError as exc:
                return _error(400, "InvalidRequestContentException",
                              f"Could not parse request body into json: {exc}")
        if kind == "DryRun":
            return Response(status_code=204)
        if kind == "Event":
            request_id = runtime.invoke_event(name, body)
            return Response(status_code=202, headers={"x-amzn-RequestId": request_id})
        client_context = None
        raw_context = request.headers.get("x-amz-client-context")
        if raw_context:
            try:
                client_context = base64.b64decode(raw_context).decode()
            except (binascii.Error, UnicodeDecodeError):
                return _error(400, "InvalidRequestContentException", "Client context must be base64 JSON")
        try:
            result = await runtime.invoke(name, body, client_context=client_context)
        except FunctionNotFound:
            return _error(404, "ResourceNotFoundException", f"Function not found: {runtime.function_arn(name)}")
        headers = {"x-amzn-RequestId": result.request_id, "X-Amz-Executed-Version": "$LATEST"}
        if result.function_error:
            headers["X-Amz-Function-Error"] = result.function_error
        if request.headers.get("x-amz-log-type") == "Tail":
            headers["X-Amz-Log-Result"] = base64.b64encode(result.log_tail.encode()).decode()
        return Response(result.payload, status_code=200, headers=headers, media_type="application/json")

    async def list_functions(request: Request) -> Response:
        return JSONResponse({"Functions": [_configuration(runtime, c) for c in runtime.functions()]})

    async def get_function(request: Request) -> Response:
        found = _resolve(runtime, request.path_params["name"], request.query_params.get("Qualifier"))
        if isinstance(found, Response):
            return found
        config = _configuration(runtime, runtime.function(found))
        if request.url.path.endswith("/configuration"):
            return JSONResponse(config)
        return JSONResponse({"Configuration": config})

    return Starlette(routes=[
        Route("/2015-03-31/functions/{name}/invocations", invoke, methods=["POST"]),
        Route("/2015-03-31/functions/", list_functions, methods=["GET"]),
        Route("/2015-03-31/functions", list_functions, methods=["GET"]),
        Route("/2015-03-31/functions/{name}/configuration", get_function, methods=["GET"]),
        Route("/2015-03-31/functions/{name}", get_function, methods=["GET"]),
    ])
