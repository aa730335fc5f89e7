"""The HTTP API's routes in AWS, the local API Gateway's and the functions' own routes must agree, so they cannot
drift apart again.

* The local API Gateway routes by path prefix (``soorma.local.apigw.PLATFORM_ROUTES``, longest prefix wins); the
  cloud one by route keys (:data:`soorma.infra.platform.API_ROUTES`: exact paths and greedy ``{proxy+}``, exact
  routes first, a method's own route before ``ANY``), as API Gateway selects them
  (https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-develop-routes.html).
* For every endpoint the functions serve (each FastAPI app's OpenAPI paths and its plain routes, path parameters
  filled in), both must pick the same function — the function that serves it — and agree on whether the authorizer
  runs. Endpoints outside ``/v1`` that neither routes (``/health``) are private to the function.
* No route of either table may lead nowhere, and the synthesized template has exactly :data:`API_ROUTES`.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from soorma.infra.platform import API_ROUTES
from soorma.local.apigw import PLATFORM_ROUTES, LocalApiGateway

# Local routes that no function serves yet: the registry has no schema routes (DESIGN.md lists /v1/schemas). The
# cloud API leaves them out (API Gateway answers 404 itself); locally the registry answers 404.
LOCAL_ONLY_DEAD: set[str] = set()
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


class _Publisher:
    def publish(self, envelope: Any) -> None:  # pragma: no cover - never called: no request is served
        raise AssertionError


class _Embedder:
    dimensions = 384

    def embed(self, texts):  # pragma: no cover
        raise AssertionError


def _apps() -> dict[str, Any]:
    from soorma.functions.gateway.app import create_app as gateway
    from soorma.functions.memory.app import create_app as memory
    from soorma.functions.registry.app import create_app as registry
    from soorma.functions.tracker.app import create_app as tracker

    db = object()  # the apps only keep it; nothing here opens a connection
    return {"gateway": gateway(db=db, publisher=_Publisher()), "registry": registry(db=db),
            "memory": memory(db=db, embedder=_Embedder()), "tracker": tracker(db=db)}


def endpoints() -> set[tuple[str, str, str]]:
    """``(function, METHOD, concrete path)`` of every route the functions' apps serve."""
    found: set[tuple[str, str, str]] = set()
    for name, app in _apps().items():
        for path, operations in app.openapi()["paths"].items():
            for method in operations:
                if method.upper() in METHODS:
                    found.add((name, method.upper(), path))
        for route in app.routes:  # routes outside the schema (the OpenAPI document itself)
            path, methods = getattr(route, "path", None), getattr(route, "methods", None)
            if path and methods and getattr(route, "include_in_schema", True) is False:
                found |= {(name, m, path) for m in methods if m in METHODS}
    return {(name, method, re.sub(r"\{[^}]+\}", "x1", path)) for name, method, path in found}


def cloud_route(routes, method: str, path: str) -> tuple[str, str, bool] | None:
    """(route key, function, public) API Gateway picks for ``method path``, or None (404)."""
    best = None
    for key, function, public in routes:
        route_method, route_path = key.split(" ", 1)
        if route_method not in ("ANY", method):
            continue
        if route_path.endswith("/{proxy+}"):
            base = route_path[: -len("/{proxy+}")]
            if not path.startswith(base + "/") or len(path) == len(base) + 1:
                continue
            rank = (0, base.count("/"), route_method != "ANY")
        else:
            want, got = route_path.split("/"), path.split("/")
            if len(want) != len(got) or any(w != g and not (w.startswith("{") and g) for w, g in zip(want, got)):
                continue
            rank = (1, sum(not w.startswith("{") for w in want), route_method != "ANY")
        if best is None or rank > best[0]:
            best = (rank, (key, function, public))
    return best[1] if best else None


def local_route(method: str, path: str):
    return LocalApiGateway(invoker=None).route_for(method, path)


def test_every_endpoint_is_routed_the_same_way_locally_and_in_aws():
    found = endpoints()
    assert {f for f, _, _ in found} == {"gateway", "registry", "memory", "tracker"}
    assert ("gateway", "POST", "/v1/a2a") in found and ("gateway", "GET", "/.well-known/agent-card.json") in found
    mismatches = []
    for function, method, path in sorted(found):
        local = local_route(method, path)
        cloud = cloud_route(API_ROUTES, method, path)
        local_target = (local.function, local.public) if local else None
        cloud_target = (cloud[1], cloud[2]) if cloud else None
        if local_target != cloud_target:
            mismatches.append((method, path, "local", local_target, "aws", cloud_target))
        elif local_target is None:
            if path.startswith("/v1/"):
                mismatches.append((method, path, "not routed at all"))
        elif local_target[0] != function:
            mismatches.append((method, path, f"served by {function}, routed to {local_target[0]}"))
    assert not mismatches, "\n".join(map(str, mismatches))


def test_no_route_leads_nowhere():
    found = endpoints()
    for key, function, _ in API_ROUTES:
        served = [e for e in found if (hit := cloud_route(API_ROUTES, e[1], e[2])) and hit[0] == key]
        assert served, f"{key} ({function}) serves no endpoint"
    dead = set()
    for route in PLATFORM_ROUTES:
        if not any(local_route(m, p) == route for _, m, p in found):
            dead.add(route.prefix)
    assert dead <= LOCAL_ONLY_DEAD, f"local routes that no function serves: {dead - LOCAL_ONLY_DEAD}"


def test_route_matcher_follows_api_gateway_precedence():
    routes = (("ANY /a/{proxy+}", "x", False), ("POST /a/b", "y", False), ("GET /a/{id}", "z", True))
    assert cloud_route(routes, "POST", "/a/b")[1] == "y"  # exact beats greedy
    assert cloud_route(routes, "GET", "/a/b")[1] == "z"  # a path variable route beats greedy
    assert cloud_route(routes, "GET", "/a/b/c")[1] == "x"
    assert cloud_route(routes, "GET", "/a") is None  # {proxy+} needs a segment


@pytest.mark.timeout(1200)
def test_template_has_exactly_the_route_table(synth):
    integrations = {k: v["Properties"]["IntegrationUri"] for k, v in synth.of_type(
        "AWS::ApiGatewayV2::Integration").items()}
    found = set()
    for route in synth.of_type("AWS::ApiGatewayV2::Route").values():
        props = route["Properties"]
        integration = props["Target"]["Fn::Join"][1][1]["Ref"]
        uri = integrations[integration]
        if "Ref" in uri:  # under SnapStart (the nats app) the alias "live" of the function
            uri = synth.resources[uri["Ref"]]["Properties"]["FunctionName"]
            function_id = uri["Ref"]
        else:
            function_id = uri["Fn::GetAtt"][0]
        function = re.match(r"^Platform([A-Z][a-z]+)Function", function_id).group(1).lower()
        found.add((props["RouteKey"], function, props.get("AuthorizationType", "NONE") == "NONE"))
    assert found == set(API_ROUTES)
