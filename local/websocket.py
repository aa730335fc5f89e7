"""The local WebSocket API: what API Gateway's WebSocket API does for the live goal streams, on the local stack's own
port (:data:`soorma.functions.http_api.STREAM_PATH`), so the gateway function serves the same events locally as in
AWS (:mod:`soorma.functions.gateway.streams`).

* Handshake (https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-websocket-api-lambda-auth.html):
  without one of the authorizer's identity sources (:data:`~soorma.functions.http_api.STREAM_IDENTITY_SOURCES`:
  none, so the authorizer always runs) 401; otherwise the Lambda authorizer gets a REQUEST event with ``methodArn``
  and answers an IAM policy: ``Deny`` is 403, an error 500. Then the ``$connect`` route's integration: a
  ``statusCode`` other than 200 refuses the handshake with that status; 200 accepts it, with the subprotocol its
  ``Sec-WebSocket-Protocol`` header selects (https://docs.aws.amazon.com/apigateway/latest/developerguide/
  websocket-connect-route-subprotocol.html).
* Messages: the route is picked by ``$request.body.action`` (:data:`~soorma.functions.http_api.STREAM_ROUTES`, else
  ``$default``) and invoked with a ``MESSAGE`` event; every route gets the authorizer's context at
  ``requestContext.authorizer``. Nothing is answered on the socket by the integration's return value (no route
  responses): frames come from the ``@connections`` API below, as in the CDK app.
* Close (by either side): the ``$disconnect`` route, once.
* The ``@connections`` management API at ``/_ws/@connections/{connection_id}``
  (https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-how-to-call-websocket-api-connections.html):
  ``POST`` sends the body as one text frame, ``DELETE`` closes the connection, ``GET`` describes it; an unknown
  connection is 410 ``GoneException``. Requests must be signed (SigV4, service ``execute-api``) with the stack's
  access key, the one the Invoke API takes, which the platform functions get as their AWS credentials.

The sockets live in this process, as they live in API Gateway: the functions keep nothing.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from soorma.functions.http_api import STREAM_FUNCTION, STREAM_IDENTITY_SOURCES, STREAM_PATH, STREAM_ROUTES
from soorma.local.apigw import Invoker
from soorma.local.sigv4 import LocalAwsCredentials, SignatureError, browser_origin, verify

log = logging.getLogger("soorma.local.websocket")

#: The management API's path prefix on the stack's port (its endpoint URL is the stack's URL plus this).
CONNECTIONS_PREFIX = "/_ws"
#: API Gateway's largest frame a client may send, and a post to a connection may carry (128 KiB).
MAX_FRAME_BYTES = 128 * 1024
API_ID = "local"
STAGE = "local"


@dataclass
class _Connection:
    socket: WebSocket
    connected_at: float = field(default_factory=time.time)
    last_active_at: float = field(default_factory=time.time)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


def _request_context(connection_id: str, event_type: str, route_key: str, region: str,
                     authorizer: dict[str, Any] | None, source_ip: str) -> dict[str, Any]:
    now = datetime.now(UTC)
    context: dict[str, Any] = {
        "routeKey": route_key, "eventType": event_type, "connectionId": connection_id, "apiId": API_ID,
        "stage": STAGE, "domainName": "localhost", "requestId": secrets.token_hex(8),
        "messageDirection": "IN", "connectedAt": int(now.timestamp() * 1000),
        "requestTimeEpoch": int(now.timestamp() * 1000), "identity": {"sourceIp": source_ip},
        "region": region,
    }
    if authorizer is not None:
        context["authorizer"] = authorizer
    return context


class LocalWebSocketApi:
    """The local WebSocket API over the local Lambda runtime.

    Parameters: ``invoker`` (the runtime), ``credentials`` (the stack's access key, which the ``@connections`` API
    requires), ``function_names`` (logical → deployed function name), ``authorizer`` (the authorizer's logical
    name), ``region``."""

    def __init__(self, invoker: Invoker, *, credentials: LocalAwsCredentials,
                 function_names: Callable[[str], str] = lambda name: name, authorizer: str = "authorizer",
                 region: str = "us-east-1") -> None:
        self.invoker = invoker
        self.credentials = credentials
        self.function_names = function_names
        self.authorizer = authorizer
        self.region = region
        self.connections: dict[str, _Connection] = {}

    def routes(self) -> list[Any]:
        """The Starlette routes: the WebSocket endpoint and the ``@connections`` API."""
        return [
            WebSocketRoute(STREAM_PATH, self.serve),
            Route(CONNECTIONS_PREFIX + "/@connections/{connection_id}", self.manage, methods=["GET", "POST", "DELETE"]),
        ]

    async def _invoke(self, logical: str, event: dict[str, Any]) -> dict[str, Any] | None:
        """The function's answer as JSON, or None when it failed."""
        result = await self.invoker.invoke(self.function_names(logical), json.dumps(event).encode())
        if result.function_error is not None:
            log.warning("%s failed: %s", logical, result.payload[:500])
            return None
        try:
            answer = json.loads(result.payload or b"null")
        except ValueError:
            return None
        return answer if isinstance(answer, dict) else None

    async def _authorize(self, headers: dict[str, str], query: dict[str, str], connection_id: str,
                         source_ip: str) -> tuple[int, dict[str, Any] | None]:
        if not all(headers.get(source.rsplit(".", 1)[-1].lower()) for source in STREAM_IDENTITY_SOURCES):
            return 401, None  # API Gateway's check of the identity sources, before it calls the authorizer
        event = {
            "type": "REQUEST",
            "methodArn": f"arn:aws:execute-api:{self.region}:000000000000:{API_ID}/{STAGE}/$connect",
            "headers": headers, "multiValueHeaders": {k: [v] for k, v in headers.items()},
            "queryStringParameters": query,
            "requestContext": _request_context(connection_id, "CONNECT", "$connect", self.region, None, source_ip),
        }
        answer = await self._invoke(self.authorizer, event)
        if answer is None:
            return 500, None
        statements = (answer.get("policyDocument") or {}).get("Statement") or []
        allowed = bool(statements) and all(s.get("Effect") == "Allow" for s in statements)
        if not allowed:
            return 403, None
        return 200, {**(answer.get("context") or {}), "principalId": answer.get("principalId")}

    async def serve(self, websocket: WebSocket) -> None:
        """One client connection, from handshake to close."""
        headers = {k.lower(): v for k, v in websocket.headers.items()}
        query = dict(websocket.query_params)
        source_ip = websocket.client.host if websocket.client else "127.0.0.1"
        connection_id = base64.urlsafe_b64encode(secrets.token_bytes(12)).decode()
        status, authorizer = await self._authorize(headers, query, connection_id, source_ip)
        subprotocol = None
        if status == 200:
            connect = {"headers": headers, "multiValueHeaders": {k: [v] for k, v in headers.items()},
                       "queryStringParameters": query, "isBase64Encoded": False,
                       "requestContext": _request_context(connection_id, "CONNECT", "$connect", self.region,
                                                          authorizer, source_ip)}
            answer = await self._invoke(STREAM_FUNCTION, connect)
            status = int(answer.get("statusCode", 200)) if answer is not None else 500
            chosen = {k.lower(): v for k, v in ((answer or {}).get("headers") or {}).items()}
            subprotocol = chosen.get("sec-websocket-protocol") or None
        if status != 200:
            await self._deny(websocket, status)
            return
        await websocket.accept(subprotocol=subprotocol)
        connection = _Connection(websocket)
        self.connections[connection_id] = connection
        try:
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    break
                body = message.get("text")
                if body is None:
                    body = (message.get("bytes") or b"").decode("utf-8", "replace")
                connection.last_active_at = time.time()
                if len(body.encode()) > MAX_FRAME_BYTES:
                    await websocket.close(code=1009)
                    break
                event = {"body": body, "isBase64Encoded": False,
                         "requestContext": _request_context(connection_id, "MESSAGE", self._route_key(body),
                                                            self.region, authorizer, source_ip)}
                await self._invoke(STREAM_FUNCTION, event)
        except WebSocketDisconnect:
            pass
        finally:
            self.connections.pop(connection_id, None)
            event = {"requestContext": _request_context(connection_id, "DISCONNECT", "$disconnect", self.region,
                                                        authorizer, source_ip)}
            await self._invoke(STREAM_FUNCTION, event)

    @staticmethod
    def _route_key(body: str) -> str:
        """``$request.body.action`` route selection: the action when it names a route, else ``$default``."""
        try:
            action = json.loads(body).get("action")
        except (ValueError, AttributeError):
            return "$default"
        return action if isinstance(action, str) and action in STREAM_ROUTES and not action.startswith("$") \
            else "$default"

    @staticmethod
    async def _deny(websocket: WebSocket, status: int) -> None:
        """Refuse the handshake with an HTTP status, as API Gateway does (Starlette's denial response where the
        server offers the extension; a plain 403 otherwise)."""
        try:
            await websocket.send_denial_response(JSONResponse(
                {"message": {401: "Unauthorized", 403: "Forbidden"}.get(status, "Refused")}, status_code=status))
        except RuntimeError:
            await websocket.close(code=1008)

    async def manage(self, request: Request) -> Response:
        """The ``@connections`` API (see the module docstring)."""
        if browser_origin(request.headers) is not None:
            return _aws_error(403, "AccessDeniedException", "browser-originated requests are refused")
        length = request.headers.get("content-length", "0")
        if not length.isdigit() or int(length) > MAX_FRAME_BYTES:
            return _aws_error(413, "PayloadTooLargeException", f"at most {MAX_FRAME_BYTES} bytes per post")
        body = await request.body()
        try:
            verify(request.method, request.scope.get("raw_path", b"").decode("latin-1") or request.url.path,
                   request.scope.get("query_string", b"").decode("latin-1"),
                   [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.scope["headers"]],
                   body, self.credentials, region=self.region, service="execute-api")
        except SignatureError as exc:
            return _aws_error(403, exc.code, str(exc))
        connection_id = request.path_params["connection_id"]
        connection = self.connections.get(connection_id)
        if connection is None:
            return _aws_error(410, "GoneException", f"connection {connection_id[:64]} is gone")
        if request.method == "GET":
            return JSONResponse({
                "connectedAt": datetime.fromtimestamp(connection.connected_at, UTC).isoformat(),
                "lastActiveAt": datetime.fromtimestamp(connection.last_active_at, UTC).isoformat(),
                "identity": {"sourceIp": connection.socket.client.host if connection.socket.client else ""},
            })
        try:
            async with connection.lock:  # one frame at a time on a socket
                if request.method == "DELETE":
                    await connection.socket.close(code=1000)
                else:
                    await connection.socket.send_text(body.decode("utf-8", "replace"))
        except (RuntimeError, WebSocketDisconnect, OSError):
            self.connections.pop(connection_id, None)
            return _aws_error(410, "GoneException", f"connection {connection_id[:64]} is gone")
        return Response(status_code=200 if request.method == "POST" else 204)


def _aws_error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"message": message}, status_code=status, headers={"x-amzn-ErrorType": code})
