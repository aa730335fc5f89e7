"""The local console (``/console`` on the local stack's address, ``soorma local console`` opens it): a bundled static
front end (``static/``: plain HTML, JavaScript and CSS, no build step) that shows goals, one goal's timeline, agents,
dead letters, memory and the input requests waiting for a person.

Where its data comes from:

* everything but the dead letters: the platform's own HTTP routes (:data:`soorma.functions.http_api.ROUTES`), which
  the page calls through the local API Gateway with the stack's API key (``Authorization: Bearer``), exactly as any
  other client does: the authorizer, the functions' row-level security and their 4xx answers apply unchanged; and
  the live goal stream (:data:`~soorma.functions.http_api.STREAM_PATH`: ``subscribe`` for the goal list,
  ``follow`` for a goal), whose handshake carries the key as a ``Sec-WebSocket-Protocol`` entry
  (:func:`soorma.functions.gateway.credentials.handshake_headers`), with polling when the stream is down;
* the dead letters: the platform has no HTTP route for them (on AWS they are SQS dead-letter queues, read by an
  operator's ``soorma dlq``), so the console serves two routes of its own, ``GET /console/api/dead-letters`` and
  ``POST /console/api/dead-letters/replay`` ``{"event_id"}``, that do what ``soorma dlq list|replay`` does
  (:mod:`soorma.functions.bridge.dlq` on NATS, :mod:`soorma.local.sqs_transport` on SQS) for the caller's own
  platform tenant only. They run the stack's authorizer function on the request first, as the API Gateway does, and
  answer 401 without a credential and 403 for a refused one (or a role other than ``developer``/``admin``).

The page itself (``/console`` and its three files) holds no data and is served to anyone who can reach the port; it
keeps the key in ``sessionStorage`` (gone when the tab closes) and renders every value as text, never as HTML, so
data an agent wrote cannot run script in the page that holds the key. Its responses forbid framing and any script
or connection to another origin (``Content-Security-Policy``,
https://developer.mozilla.org/en-US/docs/Web/HTTP/Headers/Content-Security-Policy).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from soorma.local.apigw import LocalApiGateway, http_event

if TYPE_CHECKING:
    from soorma.local.stack import LocalStack

#: Where the console is served on the local stack's address.
CONSOLE_PATH = "/console"
STATIC_DIR = Path(__file__).resolve().parent / "static"
#: The console's files: name → media type. Only these are served (no directory listing, no path from the request).
STATIC_FILES = {
    "index.html": "text/html; charset=utf-8",
    "console.js": "text/javascript; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
}
#: Roles whose key may read and replay its platform tenant's dead letters (the developer's and the admin's keys).
DEAD_LETTER_ROLES = frozenset({"developer", "admin"})
#: Most dead letters one listing returns (oldest first), as ``soorma dlq list`` defaults to.
DEAD_LETTER_LIMIT = 100
#: Seconds a dead-letter route waits for the stack's NATS before it answers 503.
NATS_CONNECT_DEADLINE_S = 10.0
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def _static(name: str) -> Response:
    return FileResponse(STATIC_DIR / name, media_type=STATIC_FILES[name], headers=SECURITY_HEADERS)


async def index(request: Request) -> Response:
    """``GET /console/``: the page, ``index.html`` (one file for every view: the view is the URL's fragment, e.g.
    ``#/goal/<goal_id>``), with :data:`SECURITY_HEADERS`."""
    return _static("index.html")


async def static_file(request: Request) -> Response:
    """``GET /console/{name}``: one of :data:`STATIC_FILES` with its media type and :data:`SECURITY_HEADERS`; any
    other name is 404 ``{"message": "Not Found"}`` (the name is looked up, never joined to a path)."""
    name = request.path_params["name"]
    if name not in STATIC_FILES:
        return JSONResponse({"message": "Not Found"}, status_code=404)
    return _static(name)


async def caller_tenant(gateway: LocalApiGateway, request: Request) -> tuple[str | None, Response | None]:
    """Who calls a console data route, decided by the stack's authorizer function exactly as the local API Gateway
    decides it for a platform route (:meth:`soorma.local.apigw.LocalApiGateway.authorize`: the same payload 2.0
    authorizer event, identity source and cache, https://docs.aws.amazon.com/apigateway/latest/developerguide/
    http-api-lambda-authorizer.html).

    Parameters: ``gateway``, the stack's local API Gateway; ``request``, the incoming request (its ``Authorization``
    header is the credential).

    Returns ``(platform_tenant_id, None)`` for a credential of a :data:`DEAD_LETTER_ROLES` role, else ``(None,
    response)`` with the answer to send: 401 without a credential, 403 when it is refused or of another role, 503
    with ``Retry-After`` while the database cannot check it (the authorizer deferred), 500 when the authorizer
    failed."""
    headers = {k.lower(): v for k, v in request.headers.items()}
    event = http_event(request.method, request.url.path, query=request.url.query, headers=headers,
                       source_ip=request.client.host if request.client else "127.0.0.1")
    status, context = await gateway.authorize(event)
    if status == 401:
        return None, JSONResponse({"message": "Unauthorized"}, status_code=401)
    if status == 403 or (status == 200 and context is None):
        return None, JSONResponse({"message": "Forbidden"}, status_code=403)
    if status != 200 or context is None:
        return None, JSONResponse({"message": "Internal Server Error"}, status_code=500)
    if context.get("deferred"):  # the authorizer could not reach the database: nothing to check the key against
        return None, JSONResponse({"message": "the database is unavailable; retry later"}, status_code=503,
                                  headers={"Retry-After": "2"})
    if context.get("role") not in DEAD_LETTER_ROLES:
        return None, JSONResponse({"message": f"Forbidden: role {context.get('role')!r} may not manage dead letters "
                                              f"(only {', '.join(sorted(DEAD_LETTER_ROLES))})"}, status_code=403)
    return str(context["platform_tenant_id"]), None


class DeadLetters:
    """The stack's dead letters of one platform tenant, on the stack's transport: :meth:`listing` and :meth:`replay`,
    as ``soorma dlq`` does them, with the same functions (:mod:`soorma.functions.bridge.dlq` on NATS JetStream's
    ``SOORMA_DLQ`` stream; :mod:`soorma.local.sqs_transport` on the agents' SQS dead-letter queues, whose redrive
    policy is https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-dead-letter-queues.html).
    A replayed event gets a fresh delivery grant (:mod:`soorma.grants`) from the stack's own pepper. Raises whatever
    the bus raises (the routes answer 503 with it)."""

    def __init__(self, stack: "LocalStack") -> None:
        self.stack = stack

    def _grant_key(self) -> bytes:
        from soorma.grants import derive_key

        return derive_key(self.stack.secrets["api_key_pepper"])

    def _sqs(self) -> Any:
        from soorma.local import sqs as resources

        return resources.clients(self.stack.aws_endpoint_url)[1]

    async def _on_nats(self, work: Any) -> Any:
        import nats

        # max_reconnect_attempts=1: nats-py retries the first connection forever with 0 (soorma.cli.dlq._with_js)
        connection = await asyncio.wait_for(nats.connect(self.stack.nats_url, connect_timeout=3, allow_reconnect=False,
                                                         max_reconnect_attempts=1), NATS_CONNECT_DEADLINE_S)
        try:
            return await work(connection.jetstream())
        finally:
            await connection.close()

    async def listing(self, platform_tenant_id: str) -> list[dict[str, Any]]:
        """The dead letters of ``platform_tenant_id``, oldest first, at most :data:`DEAD_LETTER_LIMIT`: each the
        summary ``soorma dlq list --json`` prints (``seq``, ``event_id``, ``event_type``, ``platform_tenant_id``,
        ``agent``, ``deliveries``, ``error``, ``dead_lettered_at`` …)."""
        if self.stack.settings.transport == "sqs":
            from soorma.local.sqs_transport import list_sqs_dead_letters

            client = self._sqs()
            found = await asyncio.to_thread(lambda: list_sqs_dead_letters(
                client, platform_tenant_id=platform_tenant_id, limit=DEAD_LETTER_LIMIT))
            return [entry.summary() for entry in found]
        from soorma.functions.bridge.dlq import list_dead_letters

        async def work(js: Any) -> list[dict[str, Any]]:
            entries = await list_dead_letters(js, platform_tenant_id=platform_tenant_id, limit=DEAD_LETTER_LIMIT)
            return [entry.summary() for entry in entries]

        result: list[dict[str, Any]] = await self._on_nats(work)
        return result

    async def replay(self, platform_tenant_id: str, event_id: str) -> list[dict[str, Any]]:
        """Replay the dead letters of ``event_id`` in ``platform_tenant_id`` to the agents that failed them (never
        another tenant's: both buses are read through the tenant's own filter). Returns the replayed entries'
        summaries, empty when the tenant has no dead letter of that event; raises ``RuntimeError`` when the bus
        refused a replay."""
        key = self._grant_key()
        if self.stack.settings.transport == "sqs":
            from soorma.local.sqs_transport import replay_sqs_dead_letters

            client = self._sqs()
            done, failed = await asyncio.to_thread(lambda: replay_sqs_dead_letters(
                client, platform_tenant_id=platform_tenant_id, event_id=event_id, grant_key=key))
            if failed:
                raise RuntimeError(failed[0].get("replay_error", "replay failed"))
            return list(done)
        from soorma.functions.bridge.dlq import list_dead_letters, replay

        async def work(js: Any) -> list[dict[str, Any]]:
            entries = await list_dead_letters(js, platform_tenant_id=platform_tenant_id, event_id=event_id,
                                              limit=None)
            for entry in entries:
                await replay(js, entry, grant_key=key)
            return [entry.summary() for entry in entries]

        result: list[dict[str, Any]] = await self._on_nats(work)
        return result


def console_routes(stack: "LocalStack", gateway: LocalApiGateway) -> list[BaseRoute]:
    """The console's routes on the local stack's server (:func:`soorma.local.server.build_app`), to be placed before
    its catch-all API route: ``/console`` (a redirect to ``/console/``), the page and its files, and the two
    dead-letter routes (see the module docstring). ``GET /console/api/dead-letters`` answers ``{"dead_letters": [...],
    "count", "transport"}``; ``POST /console/api/dead-letters/replay`` ``{"event_id"}`` answers ``{"replayed": [...],
    "count"}``, 404 when the caller's tenant has no such dead letter, 422 for a malformed body, 503 when the bus
    fails.

    Parameters: ``stack``, the running :class:`~soorma.local.stack.LocalStack` (its transport, NATS URL or SQS
    endpoint, and pepper); ``gateway``, its :class:`~soorma.local.apigw.LocalApiGateway` (the authorizer)."""
    dead_letters = DeadLetters(stack)

    async def redirect(request: Request) -> Response:
        return RedirectResponse(f"{CONSOLE_PATH}/", status_code=308)

    async def list_dead_letters(request: Request) -> Response:
        tenant, refused = await caller_tenant(gateway, request)
        if refused is not None:
            return refused
        assert tenant is not None
        try:
            entries = await dead_letters.listing(tenant)
        except Exception as exc:  # noqa: BLE001 - the bus is unreachable: a clear answer, not a traceback
            return JSONResponse({"message": f"cannot read the dead letters: {type(exc).__name__}: {exc}"},
                                status_code=503)
        return JSONResponse({"dead_letters": entries, "count": len(entries), "transport": stack.settings.transport})

    async def replay_dead_letter(request: Request) -> Response:
        tenant, refused = await caller_tenant(gateway, request)
        if refused is not None:
            return refused
        assert tenant is not None
        try:
            body = json.loads(await request.body() or b"null")
        except ValueError:
            body = None
        event_id = body.get("event_id") if isinstance(body, dict) else None
        if not isinstance(event_id, str) or not 0 < len(event_id) <= 255:
            return JSONResponse({"message": 'the body must be {"event_id": "<the dead letter\'s event id>"}'},
                                status_code=422)
        try:
            replayed = await dead_letters.replay(tenant, event_id)
        except Exception as exc:  # noqa: BLE001 - the bus refused or is unreachable: say so
            return JSONResponse({"message": f"replay failed: {type(exc).__name__}: {exc}"}, status_code=503)
        if not replayed:
            return JSONResponse({"message": f"no dead letter with event id {event_id}"}, status_code=404)
        return JSONResponse({"replayed": replayed, "count": len(replayed)})

    return [
        Route(CONSOLE_PATH, redirect, methods=["GET"]),
        Route(f"{CONSOLE_PATH}/", index, methods=["GET"]),
        Route(f"{CONSOLE_PATH}/api/dead-letters", list_dead_letters, methods=["GET"]),
        Route(f"{CONSOLE_PATH}/api/dead-letters/replay", replay_dead_letter, methods=["POST"]),
        Route(f"{CONSOLE_PATH}/{{name}}", static_file, methods=["GET"]),
    ]


__all__ = ["CONSOLE_PATH", "DEAD_LETTER_ROLES", "DeadLetters", "STATIC_FILES", "caller_tenant", "console_routes"]
