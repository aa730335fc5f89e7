"""Lambda's control-plane Invoke API over a :class:`LocalLambda`, as a Starlette app.

``POST /2015-03-31/functions/{name}/invocations`` with ``X-Amz-Invocation-Type`` ``RequestResponse`` (default),
``Event`` or ``DryRun``, ``X-Amz-Log-Type: Tail`` and ``X-Amz-Client-Context``; plus read-only
``GET /2015-03-31/functions/`` (ListFunctions) and ``GET /2015-03-31/functions/{name}[/configuration]``.
Enough for ``boto3.client("lambda", endpoint_url=..., region_name="us-east-1", aws_access_key_id=...,
aws_secret_access_key=...).invoke(...)``. Mount it anywhere that shares the ``LocalLambda``'s event loop (the local
API Gateway process: ``app.mount("/", create_lambda_api(runtime, credentials=...))`` or serve it alone with uvicorn).

It is an administrative surface (it runs any function with any event, including the gateway with a hand-made
authorizer context), so, like Lambda's own endpoint:

* every request must be signed with AWS Signature Version 4 by the stack's access key (:mod:`soorma.local.sigv4`;
  ``aws_access_key_id``/``aws_secret_access_key`` in ``.soorma/secrets.json``), else 403;
* a browser-originated request (an ``Origin`` header, or ``Sec-Fetch-Site`` other than ``none``) is 403 before
  anything else, so a web page cannot drive it even with a CORS "simple" ``text/plain`` POST;
* ListFunctions/GetFunction return the names of a function's environment variables, never their values (they hold
  the database password, the API key pepper, agents' keys);
* ``X-Amz-Client-Context`` must be base64 of a JSON object of at most 3,583 bytes encoded (Lambda's limit); what
  the runtime gets is that object re-serialised as ASCII JSON, never the client's bytes;
* an ``Event`` invocation beyond the function's queue depth (:data:`soorma.local.runtime.manager.MAX_EVENT_QUEUE`)
  is 429 ``TooManyRequestsException``, as Lambda throttles.
"""

from __future__ import annotations

import base64
import binascii
import json
import sys
from typing import Awaitable, Callable
from urllib.parse import unquote

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from soorma.local.runtime.manager import LocalLambda, TooManyRequests
from soorma.local.runtime.types import MAX_SYNC_PAYLOAD, FunctionConfig, FunctionNotFound
from soorma.local.sigv4 import LocalAwsCredentials, SignatureError, browser_origin, verify

#: Lambda's limit on an asynchronous (``Event``) invocation payload.
MAX_ASYNC_PAYLOAD = 1024 * 1024
#: Lambda's limit on ``X-Amz-Client-Context`` (base64-encoded bytes).
MAX_CLIENT_CONTEXT = 3583
#: What ListFunctions/GetFunction show instead of an environment variable's value.
REDACTED = "**redacted**"


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
        # names only: the values are the function's secrets (database URL with password, pepper, API keys)
        "Environment": {"Variables": {name: REDACTED for name in sorted(cfg.env)}},
    }


def client_context_json(raw: str) -> str:
    """The JSON object in an ``X-Amz-Client-Context`` value, re-serialised as compact ASCII JSON (so it can go into
    the runtime's ``Lambda-Runtime-Client-Context`` header: no CR, LF or other control character survives
    ``json.dumps``). Raises ``ValueError`` with the reason for anything that is not strict base64 of a UTF-8 JSON
    object of at most :data:`MAX_CLIENT_CONTEXT` encoded bytes."""
    if len(raw) > MAX_CLIENT_CONTEXT:
        raise ValueError(f"Client context must be at most {MAX_CLIENT_CONTEXT} bytes (base64-encoded)")
    try:
        value = json.loads(base64.b64decode(raw.encode("ascii"), validate=True).decode("utf-8"))
    except (UnicodeError, binascii.Error, ValueError):
        raise ValueError("Client context must be base64-encoded JSON") from None
    if not isinstance(value, dict):
        raise ValueError("Client context must be a base64-encoded JSON object")
    return json.dumps(value, separators=(",", ":"), ensure_ascii=True)


def create_lambda_api(runtime: LocalLambda, *, credentials: LocalAwsCredentials) -> Starlette:
    """A Starlette app serving Lambda's Invoke API for ``runtime``; every request must be signed (SigV4, service
    ``lambda``, the runtime's region) with ``credentials`` and must not come from a browser (module docstring)."""
    region = runtime.settings.region

    def guarded(endpoint: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
        async def checked(request: Request) -> Response:
            why = browser_origin(request.headers)
            if why is not None:
                return _error(403, "AccessDeniedException",
                              f"browser-originated requests ({why}) are refused by the local Lambda API")
            if "transfer-encoding" in request.headers:
                # a body of unannounced length would be read whole before the signature is checked (boto3 and
                # every AWS SDK send Content-Length)
                return _error(411, "LengthRequiredException", "Content-Length is required; chunked bodies are refused")
            length = request.headers.get("content-length", "0")
            if not length.isdigit() or int(length) > MAX_SYNC_PAYLOAD:
                # refused before the body is read: an unauthenticated client cannot make the stack buffer it
                return _error(413, "RequestTooLargeException",
                              f"Request must be smaller than {MAX_SYNC_PAYLOAD} bytes for the InvokeFunction operation")
            body = await request.body()  # cached on the request: the endpoint reads the same bytes
            try:
                verify(request.method, request.scope.get("raw_path", b"").decode("latin-1") or request.url.path,
                       request.scope.get("query_string", b"").decode("latin-1"),
                       [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.scope["headers"]],
                       body, credentials, region=region)
            except SignatureError as exc:
                return _error(403, exc.code, str(exc))
            return await endpoint(request)

        return checked

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
        client_context = None
        raw_context = request.headers.get("x-amz-client-context")
        if raw_context:
            try:
                client_context = client_context_json(raw_context)
            except ValueError as exc:
                return _error(400, "InvalidRequestContentException", str(exc))
        if kind == "Event":
            try:
                request_id = runtime.invoke_event(name, body)
            except TooManyRequests as exc:
                return _error(429, "TooManyRequestsException", str(exc))
            return Response(status_code=202, headers={"x-amzn-RequestId": request_id})
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
        Route("/2015-03-31/functions/{name}/invocations", guarded(invoke), methods=["POST"]),
        Route("/2015-03-31/functions/", guarded(list_functions), methods=["GET"]),
        Route("/2015-03-31/functions", guarded(list_functions), methods=["GET"]),
        Route("/2015-03-31/functions/{name}/configuration", guarded(get_function), methods=["GET"]),
        Route("/2015-03-31/functions/{name}", guarded(get_function), methods=["GET"]),
    ])
