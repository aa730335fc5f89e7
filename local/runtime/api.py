"""The Lambda Runtime API (version 2018-06-01) for one execution environment.

https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html

One listening socket on 127.0.0.1 per environment, served by a minimal HTTP/1.1 keep-alive implementation on an
asyncio ``Protocol``. Accepted sockets get ``TCP_NODELAY``: without it Nagle's algorithm and the client's delayed ACK
add ~40 ms to every invocation.

**Only its own environment can use it.** Any local process can connect to a port on 127.0.0.1, and an invocation can
carry secrets (an authorizer event carries the caller's API key), so each server has an unguessable capability: a
256-bit token that is the first path segment of every route (``/<token>/2018-06-01/runtime/...``). The environment
learns it from ``AWS_LAMBDA_RUNTIME_API=127.0.0.1:<port>/<token>``, which only its own process (and the user who
owns it, through ``/proc/<pid>/environ``) can read; it is never on a command line. awslambdaric's native client
builds its URLs as ``"http://" + AWS_LAMBDA_RUNTIME_API + "/2018-06-01/..."``, so it honours the prefix as it is;
its Python fallback (``init/error``) does not, which :mod:`soorma.local.ric` fixes. A request without the token is
403 and changes nothing. On top of that, only one ``next`` poll may be outstanding (a second is 409), and a result
is accepted only for the request id currently handed to the environment (else 400 ``InvalidRequestID``).

The server knows nothing about processes: it hands one :class:`Invocation` at a time to the runtime's
``GET /next`` long poll and reports what the runtime posts back through the :class:`RuntimeListener` methods.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import re
import secrets
import socket
from typing import Protocol

from soorma.local.runtime.types import MAX_RESPONSE_PAYLOAD

PREFIX = "/2018-06-01/runtime/"
_MAX_HEAD = 64 * 1024
_MAX_BODY = 64 * 1024 * 1024
#: A chunk size as RFC 9112 §7.1 allows it (hex digits only; at most 16 of them, far beyond _MAX_BODY).
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,16}")

_ACCEPTED = b'HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: 16\r\n\r\n{"status":"OK"}\n'
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_REASONS = {200: "OK", 202: "Accepted", 400: "Bad Request", 403: "Forbidden", 404: "Not Found",
            405: "Method Not Allowed", 409: "Conflict", 413: "Payload Too Large", 500: "Internal Server Error"}


class Invocation:
    """One event handed to the runtime: what ``GET /next`` returns."""

    __slots__ = ("request_id", "payload", "deadline_ms", "function_arn", "trace_id", "client_context", "head")

    def __init__(self, request_id: str, payload: bytes, deadline_ms: int, function_arn: str, trace_id: str,
                 client_context: str | None = None) -> None:
        self.request_id = request_id
        self.payload = payload
        self.deadline_ms = deadline_ms
        self.function_arn = function_arn
        self.trace_id = trace_id
        if client_context is not None and any(c in client_context for c in "\r\n\0"):
            # it becomes a header line: CR/LF would let the caller add headers or a whole second response
            raise ValueError("client_context must not contain CR, LF or NUL")
        self.client_context = client_context

    def response_bytes(self) -> bytes:
        extra = ""
        if self.client_context:
            extra = f"Lambda-Runtime-Client-Context: {self.client_context}\r\n"
        head = (
            "HTTP/1.1 200 OK\r\n"
            "Content-Type: application/json\r\n"
            f"Lambda-Runtime-Aws-Request-Id: {self.request_id}\r\n"
            f"Lambda-Runtime-Deadline-Ms: {self.deadline_ms}\r\n"
            f"Lambda-Runtime-Invoked-Function-Arn: {self.function_arn}\r\n"
            f"Lambda-Runtime-Trace-Id: {self.trace_id}\r\n"
            f"{extra}"
            f"Content-Length: {len(self.payload)}\r\n\r\n"
        )
        return head.encode("latin-1") + self.payload


class RuntimeListener(Protocol):
    """What the environment hears from its runtime."""

    def on_next(self) -> None:
        """The runtime asked for an event (the first call ends INIT)."""

    def on_response(self, request_id: str, body: bytes) -> None:
        """The runtime posted the result of ``request_id``."""

    def on_error(self, request_id: str, body: bytes, error_type: str | None) -> None:
        """The runtime posted an error for ``request_id`` (``body`` is Lambda's error object)."""

    def on_init_error(self, body: bytes, error_type: str | None) -> None:
        """The runtime failed to initialise (for awslambdaric: the handler module did not import)."""


def _json_response(status: int, obj: dict) -> bytes:
    body = json.dumps(obj).encode()
    return (f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


class RuntimeApiServer:
    """The Runtime API of one environment. ``await start()`` returns the value for ``AWS_LAMBDA_RUNTIME_API``:
    ``"127.0.0.1:<port>/<token>"`` (the token is the capability every request's path must start with; module
    docstring)."""

    def __init__(self, listener: RuntimeListener) -> None:
        self.listener = listener
        self.token = secrets.token_urlsafe(32)
        self._token_segment = f"/{self.token}/".encode()
        self.port = 0
        self._server: asyncio.base_events.Server | None = None
        self._conns: set[_Connection] = set()
        self._waiting: _Connection | None = None  # connection parked on GET /next
        self._pending: Invocation | None = None  # event not yet taken by the runtime
        self.current: Invocation | None = None  # event taken, no result posted yet
        self.address = ""

    async def start(self) -> str:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Connection(self), "127.0.0.1", 0, backlog=8)
        self.port = self._server.sockets[0].getsockname()[1]
        self.address = f"127.0.0.1:{self.port}/{self.token}"
        return self.address

    def deliver(self, invocation: Invocation) -> None:
        """Hand ``invocation`` to the runtime now if it is polling, else as soon as it polls."""
        conn = self._waiting
        if conn is not None and not conn.closed:
            self._waiting = None
            self.current = invocation
            conn.send(invocation.response_bytes())
        else:
            self._pending = invocation

    def withdraw(self) -> None:
        """Forget the current or pending event (it timed out or the environment is going away)."""
        self._pending = None
        self.current = None

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for conn in list(self._conns):
            conn.abort()
        self._conns.clear()
        self._waiting = None
        self._pending = None
        self.current = None

    # --- request dispatch (called by _Connection) ---

    def holds_capability(self, path: str) -> bool:
        """Whether request path ``path`` starts with this environment's capability segment (``/<token>/``), compared
        in constant time. Checked on the request head, before any body is read: a caller without the capability
        makes the server buffer or parse nothing."""
        segment = self._token_segment
        return hmac.compare_digest(path[:len(segment)].encode("latin-1", "replace"), segment)

    def _handle(self, conn: _Connection, method: str, path: str, headers: dict[str, str], body: bytes) -> None:
        path = path[len(self._token_segment) - 1:]  # the capability was checked on the head (_Connection)
        if not path.startswith(PREFIX):
            conn.send(_json_response(404, {"errorMessage": f"unknown path {path}", "errorType": "NotFound"}))
            return
        route = path[len(PREFIX):]
        if route == "invocation/next":
            if method != "GET":
                conn.send(_json_response(405, {"errorMessage": "use GET", "errorType": "MethodNotAllowed"}))
                return
            waiting = self._waiting
            if waiting is not None and not waiting.closed and waiting is not conn:
                # one runtime polls at a time: a second poller never takes (or steals the answer of) an event
                conn.send(_json_response(409, {"errorMessage": "another next poll of this environment is outstanding",
                                               "errorType": "ConcurrentPoll"}))
                return
            self.listener.on_next()
            pending = self._pending
            if pending is not None:
                self._pending = None
                self.current = pending
                conn.send(pending.response_bytes())
            else:
                self._waiting = conn
            return
        if method != "POST":
            conn.send(_json_response(405, {"errorMessage": "use POST", "errorType": "MethodNotAllowed"}))
            return
        if route == "init/error":
            conn.send(_ACCEPTED)
            self.listener.on_init_error(body, headers.get("lambda-runtime-function-error-type"))
            return
        if route.startswith("invocation/"):
            request_id, _, kind = route[len("invocation/"):].rpartition("/")
            current = self.current
            if kind not in ("response", "error"):
                conn.send(_json_response(404, {"errorMessage": f"unknown path {path}", "errorType": "NotFound"}))
                return
            if current is None or current.request_id != request_id:
                conn.send(_json_response(400, {"errorMessage": "Invalid request ID", "errorType": "InvalidRequestID"}))
                return
            self.current = None
            if kind == "response":
                if len(body) > MAX_RESPONSE_PAYLOAD:
                    conn.send(_json_response(413, {
                        "errorMessage": "Exceeded maximum allowed payload size (6291556 bytes).",
                        "errorType": "RequestEntityTooLarge"}))
                    self.listener.on_error(request_id, json.dumps({
                        "errorMessage": f"Response payload size ({len(body)} bytes) exceeded maximum allowed "
                                        f"payload size ({MAX_RESPONSE_PAYLOAD} bytes).",
                        "errorType": "Function.ResponseSizeTooLarge"}).encode(), "Function.ResponseSizeTooLarge")
                    return
                conn.send(_ACCEPTED)
                self.listener.on_response(request_id, body)
            else:
                conn.send(_ACCEPTED)
                self.listener.on_error(request_id, body, headers.get("lambda-runtime-function-error-type"))
            return
        conn.send(_json_response(404, {"errorMessage": f"unknown path {path}", "errorType": "NotFound"}))


class _Connection(asyncio.Protocol):
    """HTTP/1.1 with keep-alive, Content-Length or chunked bodies, and ``Expect: 100-continue``."""

    def __init__(self, server: RuntimeApiServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.closed = False
        self._continued = False

    def connection_made(self, transport) -> None:
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        self.server._conns.add(self)

    def connection_lost(self, exc) -> None:
        self.closed = True
        self.server._conns.discard(self)
        if self.server._waiting is self:
            self.server._waiting = None

    def send(self, data: bytes) -> None:
        if not self.closed and self.transport is not None:
            self.transport.write(data)

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    def _fail(self, status: int, message: str) -> None:
        self.send(_json_response(status, {"errorMessage": message, "errorType": "BadRequest"}))
        self.closed = True
        self.transport.close()

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        while buf and not self.closed:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > _MAX_HEAD:
                    self._fail(400, "request head too large")
                return
            head = bytes(buf[:end]).decode("latin-1")
            lines = head.split("\r\n")
            try:
                method, target, _version = lines[0].split(" ", 2)
            except ValueError:
                self._fail(400, "bad request line")
                return
            if not self.server.holds_capability(target):
                # not this environment's runtime: refused on the head, nothing read or revealed, nothing changes
                self.send(_json_response(403, {"errorMessage": "this Runtime API belongs to another execution "
                                                               "environment", "errorType": "Forbidden"}))
                self.closed = True
                self.transport.close()
                return
            headers: dict[str, str] = {}
            for line in lines[1:]:
                name, sep, value = line.partition(":")
                if sep:
                    headers[name.strip().lower()] = value.strip()
            start = end + 4
            if "chunked" in headers.get("transfer-encoding", "").lower():
                try:
                    parsed = _parse_chunked(buf, start)
                except ValueError:
                    self._fail(400, "bad chunked body")
                    return
                if parsed is None:
                    if len(buf) > _MAX_BODY:
                        self._fail(413, "body too large")
                    self._maybe_continue(headers)
                    return
                body, consumed = parsed
            else:
                try:
                    length = int(headers.get("content-length", "0"))
                except ValueError:
                    self._fail(400, "bad content-length")
                    return
                if length > _MAX_BODY:
                    self._fail(413, "body too large")
                    return
                if len(buf) < start + length:
                    self._maybe_continue(headers)
                    return
                body = bytes(buf[start:start + length])
                consumed = start + length
            del buf[:consumed]
            self._continued = False
            self.server._handle(self, method, target.split("?", 1)[0], headers, body)

    def _maybe_continue(self, headers: dict[str, str]) -> None:
        if not self._continued and headers.get("expect", "").lower() == "100-continue":
            self._continued = True
            self.send(_CONTINUE)


def _parse_chunked(buf: bytearray, pos: int) -> tuple[bytes, int] | None:
    """Decode a chunked body starting at ``pos``; ``None`` while incomplete."""
    out = bytearray()
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return None
        token = bytes(buf[pos:eol]).split(b";", 1)[0].strip()
        if not _CHUNK_SIZE.fullmatch(token):
            # RFC 9112 §7.1: chunk-size = 1*HEXDIG. int(..., 16) would also take "-6" and walk backwards forever.
            raise ValueError(f"bad chunk size {token[:20]!r}")
        size = int(token, 16)
        pos = eol + 2
        if size == 0:
            # trailers until an empty line
            while True:
                eol = buf.find(b"\r\n", pos)
                if eol < 0:
                    return None
                if eol == pos:
                    return bytes(out), eol + 2
                pos = eol + 2
        if len(buf) < pos + size + 2:
            return None
        out += buf[pos:pos + size]
        pos += size + 2
