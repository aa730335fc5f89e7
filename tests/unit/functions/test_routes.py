"""The route table (:data:`soorma.functions.http_api.ROUTES`, which the CDK HTTP API and the local API Gateway both
read) against the functions' own FastAPI routes, so a route added to an app but not to the table fails here:

* every endpoint an app serves under ``/v1/`` (and each function's OpenAPI document, and the agent card) is routed to
  that app, with API Gateway's route selection (:func:`~soorma.functions.http_api.select_route`);
* every route of the table serves at least one endpoint of its function (no route leads nowhere);
* a route is public exactly when its endpoints need no authorizer: outside ``/v1/``, or the identity service's,
  which verify their credential themselves (the functions answer 401 to any other ``/v1/`` request without the
  authorizer's identity, so another public ``/v1/`` route could only fail).

Endpoints outside ``/v1/`` that no route selects (``/health``) are private to the function.
"""

from __future__ import annotations

import re

from soorma.functions.http_api import HTTP_FUNCTIONS, ROUTES, ApiRoute, Authorization, select_route
from soorma.functions.shared.service import PROTECTED_PREFIX, needs_authorizer

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def endpoints(function_apps) -> set[tuple[str, str, str]]:
    """``(function, METHOD, concrete path)`` of every route the functions' apps serve (path parameters filled in):
    the operations of their OpenAPI documents and the routes left out of them (the document itself)."""
    found: set[tuple[str, str, str]] = set()
    for name, app in function_apps.items():
        for path, operations in app.openapi()["paths"].items():
            found |= {(name, method.upper(), path) for method in operations if method.upper() in METHODS}
        for route in app.routes:
            path, methods = getattr(route, "path", None), getattr(route, "methods", None)
            if path and methods and getattr(route, "include_in_schema", True) is False:
                found |= {(name, method, path) for method in methods if method in METHODS}
    return {(name, method, re.sub(r"\{[^}]+\}", "x1", path)) for name, method, path in found}


def test_every_endpoint_is_routed_to_its_function(function_apps):
    found = endpoints(function_apps)
    assert {function for function, _, _ in found} == set(HTTP_FUNCTIONS)
    assert ("protocols", "POST", "/v1/a2a") in found and ("protocols", "GET", "/.well-known/agent-card.json") in found
    wrong = []
    for function, method, path in sorted(found):
        route = select_route(ROUTES, method, path)
        if route is None:
            if path.startswith(PROTECTED_PREFIX) or path.startswith("/openapi/"):
                wrong.append((method, path, f"served by {function}, not routed"))
        elif route.function != function:
            wrong.append((method, path, f"served by {function}, routed to {route.function} by {route.key}"))
        elif route.public == needs_authorizer(path):
            wrong.append((method, path, f"{route.key} is {route.authorization.value}"))
    assert not wrong, "\n".join(map(str, wrong))


def test_every_route_serves_an_endpoint_of_its_function(function_apps):
    found = endpoints(function_apps)
    for route in ROUTES:
        served = [(function, method, path) for function, method, path in found
                  if select_route(ROUTES, method, path) == route]
        assert served, f"{route.key} ({route.function}) serves no endpoint"
        assert {function for function, _, _ in served} == {route.function}


def test_route_keys_are_unique():
    keys = [route.key for route in ROUTES]
    assert len(keys) == len(set(keys))


def test_route_selection_follows_api_gateway_precedence():
    routes = (ApiRoute("ANY", "/a/{proxy+}", "x"), ApiRoute("POST", "/a/b", "y"),
              ApiRoute("GET", "/a/{id}", "z", Authorization.PUBLIC), ApiRoute("ANY", "/a/b/{proxy+}", "w"))

    def picked(method: str, path: str) -> str | None:
        route = select_route(routes, method, path)
        return route.function if route else None

    assert picked("POST", "/a/b") == "y"  # exact beats greedy
    assert picked("GET", "/a/b") == "z"  # a path variable route beats greedy
    assert picked("GET", "/a/c/d") == "x"
    assert picked("GET", "/a/b/c") == "w"  # the longer greedy base wins
    assert picked("GET", "/a") is None  # {proxy+} needs a segment
    assert picked("GET", "/a/") is None
