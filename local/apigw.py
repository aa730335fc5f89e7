"""The local API Gateway: an HTTP API front that turns requests into API Gateway v2 events for the same handlers
that run on AWS.

It reproduces what the cloud HTTP API does for Soorma
(https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-develop-integrations-lambda.html): pick a
request's route from the platform's route table (:data:`soorma.functions.http_api.ROUTES`, which the CDK HTTP API is
built from) with API Gateway's precedence, call the Lambda authorizer first unless the route is public (payload
format 2.0, simple responses, results cached for ``authorizer_ttl_s`` keyed on the ``Authorization`` header, which is
then required as on AWS; with the cache off ``X-API-Key`` works too). The cache key is exactly the credential the
authorizer reads (:func:`soorma.functions.gateway.authorizer.presented_key` reads only ``Authorization`` when it is
present and refuses a request that also carries ``X-API-Key``), so no answer can be stored under a value it was not
computed from. Then pass the authorizer's context to the integration at ``requestContext.authorizer.lambda``, and map
the function's response (``statusCode``, ``headers``, ``body``, ``isBase64Encoded``, ``cookies``) back to HTTP. A
function error becomes 500 ``{"message": "Internal Server Error"}`` as on AWS; a request no route matches 404, a
missing identity source 401 and a refusal 403, with AWS's bodies. The events are built by
:mod:`soorma.lambda_events`, the same builders the tests use (through :mod:`soorma.testing`).

With ``access_log`` (the local stack's ``logs/api.log``), every request is one JSON line there, like API Gateway's
access logs (https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-logging.html):
``{"requestTime": epoch ms, "routeKey", "function", "status", "responseLatency": ms}``; no header, query or body is written
(credentials never reach the file). ``bench/round_trip.py`` counts the platform calls from it.

Every answer carries a ``Server-Timing`` header (``authorizer;dur=<ms>`` with ``desc="cached"`` on a cache hit, and
``integration;dur=<ms>``), so a client or a benchmark can see the authorizer's share of a request's time.
"""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any, Awaitable, Callable, Protocol

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from soorma.functions.http_api import ROUTES, ApiRoute, select_route
from soorma.lambda_events import IDENTITY_HEADERS, authorizer_event, http_api_event
from soorma.local.lru import LruCache

#: Most authorizer answers the local API Gateway keeps (least recently used ones are dropped first).
AUTHORIZER_CACHE_MAX_ENTRIES = 10_000


class Invoker(Protocol):
    async def invoke(self, function_name: str, payload: bytes) -> Any:  # returns an object with payload, function_error
        ...


def http_event(
    request_method: str,
    path: str,
    *,
    query: str = "",
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    authorizer: dict[str, Any] | None = None,
    source_ip: str = "127.0.0.1",
) -> dict[str, Any]:
    """An API Gateway HTTP API (payload format 2.0) event, as Lambda receives it, for a request as it arrived:
    :func:`soorma.lambda_events.http_api_event` with the raw query string and body, and ``authorizer`` as the context."""
    return http_api_event(
        request_method, path, query=query, headers=headers, raw_body=body, identity=authorizer, source_ip=source_ip
    )


def response_from_result(raw: bytes) -> Response:
    """Map a function's payload 2.0 response to HTTP. A plain JSON value (no ``statusCode``) is a 200 JSON body,
    as API Gateway does."""
    try:
        result = json.loads(raw or b"null")
    except ValueError:
        return JSONResponse({"message": "Internal Server Error"}, status_code=500)
    if not isinstance(result, dict) or "statusCode" not in result:
        return JSONResponse(result, status_code=200)
    body = result.get("body") or ""
    content = base64.b64decode(body) if result.get("isBase64Encoded") else body.encode()
    response = Response(content=content, status_code=int(result["statusCode"]))
    for key, value in (result.get("headers") or {}).items():
        response.headers[key] = str(value)
    for cookie in result.get("cookies") or ():
        response.headers.append("set-cookie", cookie)
    return response


class LocalApiGateway:
    """ASGI-callable pieces of the local HTTP API. ``handle(request)`` serves one request.

    ``invoker`` runs functions (the local Lambda runtime); ``authorizer`` is the authorizer function's name;
    ``function_names`` maps a route's logical function (``gateway``, ``registry`` …) to the deployed function name.
    ``cache_max_entries`` bounds the authorizer cache (LRU). ``access_log``: a file to append one line per request
    to (see the module docstring).
    """

    def __init__(
        self,
        invoker: Invoker,
        *,
        routes: tuple[ApiRoute, ...] = ROUTES,
        authorizer: str = "authorizer",
        authorizer_ttl_s: float = 30.0,
        function_names: Callable[[str], str] = lambda name: name,
        cache_max_entries: int = AUTHORIZER_CACHE_MAX_ENTRIES,
        access_log: Path | None = None,
    ) -> None:
        self.invoker = invoker
        self.routes = routes
        self.authorizer = authorizer
        self.authorizer_ttl_s = authorizer_ttl_s
        self.function_names = function_names
        # bounded (LRU): every new credential value adds an entry, so an unbounded dict grows with a client's whims
        self._cache: LruCache = LruCache(cache_max_entries)  # key → (expiry, context or None)
        self.access_log = access_log

    def route_for(self, method: str, path: str) -> ApiRoute | None:
        """The route API Gateway would pick for ``method path``, or None (a 404)."""
        return select_route(self.routes, method, path)

    async def authorize(self, event: dict[str, Any]) -> tuple[int, dict[str, Any] | None]:
        """Returns (status, context): 200 with the context, 401 without identity source, 403 when refused."""
        status, context, _ = await self._authorize(event)
        return status, context

    async def _authorize(self, event: dict[str, Any]) -> tuple[int, dict[str, Any] | None, bool]:
        """(status, context, answered from the cache)."""
        headers = event["headers"]
        if self.authorizer_ttl_s > 0:
            # As on AWS: a cached authorizer has identity sources, and a request lacking one is a 401 before the
            # authorizer runs. The CDK app's source is the Authorization header alone (infra/platform.py), and it
            # is the only header the authorizer reads when present (issue 12, finding 1: keying the cache on a
            # header the answer does not come from would let a request poison it).
            source = (headers.get("authorization", ""),)
        else:
            source = tuple(headers.get(h, "") for h in IDENTITY_HEADERS)
        if not any(source):
            return 401, None, False
        cached = self._cache.get(source)
        if cached and cached[0] > time.monotonic():
            return ((200, cached[1]) if cached[1] is not None else (403, None)) + (True,)
        result = await self.invoker.invoke(self.function_names(self.authorizer), json.dumps(authorizer_event(event)).encode())
        context: dict[str, Any] | None = None
        if result.function_error is None:
            try:
                answer = json.loads(result.payload)
                if answer.get("isAuthorized") is True:
                    context = dict(answer.get("context") or {})
            except (ValueError, AttributeError):
                context = None
        else:
            return 500, None, False  # an authorizer error is not cached, as on AWS
        if self.authorizer_ttl_s > 0:
            self._cache[source] = (time.monotonic() + self.authorizer_ttl_s, context)
        return ((200, context) if context is not None else (403, None)) + (False,)

    async def handle(self, request: Request) -> Response:
        """Serve one request (see the class docstring), recorded in the access log when there is one."""
        started = time.time()
        response = await self._handle(request)
        if self.access_log is not None:
            route = self.route_for(request.method, request.url.path)
            line = json.dumps({"requestTime": int(started * 1000), "routeKey": route.key if route else "$default",
                               "function": route.function if route else None, "status": response.status_code,
                               "responseLatency": round((time.time() - started) * 1000, 2)})
            with self.access_log.open("a") as log:
                log.write(line + "\n")
        return response

    async def _handle(self, request: Request) -> Response:
        path = request.url.path
        method = request.method
        route = self.route_for(method, path)
        if route is None:
            return JSONResponse({"message": "Not Found"}, status_code=404)
        body = await request.body()
        headers = {k.lower(): v for k, v in request.headers.items()}
        event = http_event(
            method,
            path,
            query=request.url.query,
            headers=headers,
            body=body,
            source_ip=request.client.host if request.client else "127.0.0.1",
        )
        timing: list[str] = []
        if not route.public:
            started = time.perf_counter()
            status, context, hit = await self._authorize(event)
            cached = ';desc="cached"' if hit else ""
            timing.append(f"authorizer;dur={(time.perf_counter() - started) * 1000:.2f}{cached}")
            if status == 401:
                return _timed(JSONResponse({"message": "Unauthorized"}, status_code=401), timing)
            if status == 403:
                return _timed(JSONResponse({"message": "Forbidden"}, status_code=403), timing)
            if status != 200:
                return _timed(JSONResponse({"message": "Internal Server Error"}, status_code=500), timing)
            event["requestContext"]["authorizer"] = {"lambda": context}
        started = time.perf_counter()
        result = await self.invoker.invoke(self.function_names(route.function), json.dumps(event).encode())
        timing.append(f"integration;dur={(time.perf_counter() - started) * 1000:.2f}")
        if result.function_error is not None:
            return _timed(JSONResponse({"message": "Internal Server Error"}, status_code=500), timing)
        return _timed(response_from_result(result.payload), timing)


def _timed(response: Response, timing: list[str]) -> Response:
    if timing:
        response.headers["server-timing"] = ", ".join(timing)
    return response


InvokeFn = Callable[[str, bytes], Awaitable[Any]]
