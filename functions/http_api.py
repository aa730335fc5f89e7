"""The platform's HTTP API: one route table, read by the CDK HTTP API (:mod:`soorma.infra.platform`) and by the
local API Gateway (:mod:`soorma.local.apigw`), so the cloud and the local stack route every request the same way.

A route is an API Gateway HTTP API route (https://docs.aws.amazon.com/apigateway/latest/developerguide/
http-api-develop-routes.html): a method (or ``ANY``), a path that is exact or ends in the greedy ``/{proxy+}``, the
function that serves it (its integration) and whether the Lambda authorizer runs first. :func:`select_route` picks
a request's route with API Gateway's precedence, for the local API Gateway and for the tests.

tests/unit/functions/test_routes.py checks this table against the functions' FastAPI apps (every endpoint an app
serves is routed to that app, every route serves at least one endpoint, only endpoints outside ``/v1/`` are public),
and tests/infra/test_routes.py checks that the synthesized HTTP API has exactly these routes.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

#: The functions that serve HTTP (each has a FastAPI app and its OpenAPI document at ``/openapi/<name>.json``).
HTTP_FUNCTIONS = ("gateway", "registry", "memory", "tracker", "protocols", "identity")

PROXY = "/{proxy+}"


class Authorization(str, enum.Enum):
    """Who may call a route: ``authorizer`` (the Lambda authorizer must accept the request's credential first) or
    ``public`` (no authorizer: discovery documents a client reads before it has a key)."""

    AUTHORIZER = "authorizer"
    PUBLIC = "public"


@dataclass(frozen=True)
class ApiRoute:
    """One route: ``method`` (``ANY`` or an upper-case HTTP method), ``path`` (exact, ``{name}`` segments match one
    segment, a trailing ``/{proxy+}`` one or more), ``function`` (one of :data:`HTTP_FUNCTIONS`) and
    ``authorization``."""

    method: str
    path: str
    function: str
    authorization: Authorization = Authorization.AUTHORIZER

    @property
    def key(self) -> str:
        """API Gateway's route key, ``"<METHOD> <path>"``."""
        return f"{self.method} {self.path}"

    @property
    def public(self) -> bool:
        return self.authorization is Authorization.PUBLIC

    def rank(self, method: str, path: str) -> tuple[int, int, bool] | None:
        """How specifically this route matches ``method path`` (higher wins, as in API Gateway: an exact or
        path-variable route before a greedy one, more literal segments first, a method's own route before
        ``ANY``), or None when it does not match."""
        if self.method not in ("ANY", method):
            return None
        own_method = self.method != "ANY"
        if self.path.endswith(PROXY):
            base = self.path[: -len(PROXY)]
            if not path.startswith(base + "/") or len(path) == len(base) + 1:
                return None  # {proxy+} needs at least one more segment
            return 0, base.count("/"), own_method
        want, got = self.path.split("/"), path.split("/")
        if len(want) != len(got):
            return None
        if any(w != g and not (w.startswith("{") and g) for w, g in zip(want, got)):
            return None
        return 1, sum(not w.startswith("{") for w in want), own_method


def select_route(routes: tuple[ApiRoute, ...], method: str, path: str) -> ApiRoute | None:
    """The route API Gateway picks for ``method path`` among ``routes`` (see :meth:`ApiRoute.rank`), or None (404)."""
    ranked = [(rank, route) for route in routes if (rank := route.rank(method, path)) is not None]
    return max(ranked, key=lambda pair: pair[0])[1] if ranked else None


def _routes(function: str, *paths: str, method: str = "ANY",
            authorization: Authorization = Authorization.AUTHORIZER) -> tuple[ApiRoute, ...]:
    return tuple(ApiRoute(method, path, function, authorization) for path in paths)


_PUBLIC = Authorization.PUBLIC

#: Every route of the HTTP API (docs/architecture.md "Routes").
ROUTES: tuple[ApiRoute, ...] = (
    *_routes("registry", "/v1/agents", "/v1/agents/{proxy+}", "/v1/events", "/v1/schemas", "/v1/schemas/{proxy+}"),
    *_routes("gateway", "/v1/events/publish", "/v1/events/commit", "/v1/events/commits", method="POST"),
    *_routes("memory", "/v1/memory/{proxy+}"),
    *_routes("tracker", "/v1/tracker/{proxy+}"),
    *_routes("gateway", "/v1/goals", "/v1/goals/{proxy+}", "/v1/sessions", "/v1/sessions/{proxy+}", "/v1/tenants",
             "/v1/tenants/{proxy+}", "/v1/api-keys", "/v1/api-keys/{proxy+}", "/v1/policy",
             "/v1/webhooks", "/v1/webhooks/{proxy+}"),
    # Usage and cost per tenant and day (per goal: /v1/goals/{id}/usage above).
    *_routes("gateway", "/v1/usage", method="GET"),
    # The identity service (soorma.functions.identity): no authorizer, because its admin credential comes in
    # X-Identity-Admin-Key, which the authorizer's cache is not keyed on; the function verifies the credential itself
    # on every request (and the JWKS and OpenID configuration are public).
    *_routes("identity", "/v1/identity/{proxy+}", authorization=_PUBLIC),
    # Scheduled goals and waits for an event (soorma.functions.scheduler.schedules).
    *_routes("gateway", "/v1/schedules", "/v1/schedules/{proxy+}", "/v1/waits"),
    # The agent protocols (soorma.functions.protocols): A2A, MCP, the OpenAI-compatible chat API.
    *_routes("protocols", "/v1/a2a", "/v1/a2a/{proxy+}", "/v1/mcp"),
    *_routes("protocols", "/v1/chat/completions", method="POST"),
    *_routes("protocols", "/v1/models", "/v1/models/{model}", method="GET"),
    # The LLM gateway (soorma.functions.protocols.llm): models through the tenant's provider, metered per goal.
    *_routes("protocols", "/v1/llm/chat", method="POST"),
    *_routes("protocols", "/v1/llm/settings"),
    # Each function's OpenAPI document and the A2A agent card: discovery documents, public.
    *(ApiRoute("GET", f"/openapi/{name}.json", name, _PUBLIC) for name in HTTP_FUNCTIONS),
    *_routes("protocols", "/.well-known/agent-card.json", method="GET", authorization=_PUBLIC),
)


#: The live goal streams' WebSocket API (docs/architecture.md "Goal streams"), read by the CDK WebSocket API
#: (:mod:`soorma.infra.streams`) and the local API Gateway (:mod:`soorma.local.websocket`): API Gateway's route keys,
#: picked by :data:`STREAM_ROUTE_SELECTION` (https://docs.aws.amazon.com/apigateway/latest/developerguide/
#: websocket-api-develop-routes.html), every one served by :data:`STREAM_FUNCTION`; ``$connect`` runs the
#: authorizer. Locally the API's own port serves it at :data:`STREAM_PATH`.
STREAM_ROUTES: tuple[str, ...] = ("$connect", "$disconnect", "follow", "subscribe", "$default")
STREAM_ROUTE_SELECTION = "$request.body.action"
STREAM_FUNCTION = "gateway"
STREAM_PATH = "/v1/stream"
#: The WebSocket subprotocol of the live streams (RFC 6455 §1.9, https://www.rfc-editor.org/rfc/rfc6455#section-1.9):
#: a client that offers it in ``Sec-WebSocket-Protocol`` gets it selected by ``$connect``. A browser's WebSocket
#: cannot send ``Authorization``; it offers its credential as one more entry, :data:`STREAM_BEARER_PROTOCOL_PREFIX`
#: followed by the credential in base64url without padding (RFC 4648 §5), as Kubernetes' API server takes
#: ``base64url.bearer.authorization.k8s.io.<token>``; that entry is never selected (never echoed back).
STREAM_SUBPROTOCOL = "soorma.stream.v1"
STREAM_BEARER_PROTOCOL_PREFIX = "base64url.bearer.soorma."
#: The WebSocket API authorizer's identity sources: none, because a handshake carries its credential in either
#: ``Authorization`` or ``Sec-WebSocket-Protocol`` and API Gateway answers 401 without calling the authorizer unless
#: EVERY listed source is present (https://docs.aws.amazon.com/apigatewayv2/latest/api-reference/
#: apis-apiid-authorizers.html, ``identitySource``); WebSocket APIs cache no authorizer answer, so the list keys no
#: cache either. The authorizer itself refuses a handshake without a credential.
STREAM_IDENTITY_SOURCES: tuple[str, ...] = ()

__all__ = ["HTTP_FUNCTIONS", "ROUTES", "STREAM_BEARER_PROTOCOL_PREFIX", "STREAM_FUNCTION", "STREAM_IDENTITY_SOURCES",
           "STREAM_PATH", "STREAM_ROUTES", "STREAM_ROUTE_SELECTION", "STREAM_SUBPROTOCOL",
           "ApiRoute", "Authorization", "select_route"]
