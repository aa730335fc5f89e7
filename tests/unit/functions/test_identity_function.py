"""The identity service is a function of its own (soorma.functions.identity), so the gateway, on every goal's critical
path, neither serves ``/v1/identity/*`` nor loads PyJWT and ``cryptography`` (layer ``auth``, which its Lambda bundle
no longer has: tests/infra/test_layers.py checks every import it can reach; this checks what a cold start loads)."""

from __future__ import annotations

import subprocess
import sys

from soorma.functions.http_api import ROUTES, select_route
from soorma.infra.packaging import platform_packages


def test_the_identity_routes_go_to_the_identity_function_and_the_gateway_serves_none(function_apps):
    for method, path in (("GET", "/v1/identity/.well-known/jwks.json"), ("POST", "/v1/identity/onboarding"),
                         ("POST", "/v1/identity/tokens/issue"), ("POST", "/v1/identity/tokens/exchange")):
        route = select_route(ROUTES, method, path)
        assert route is not None and route.function == "identity" and route.public, (method, path)
    gateway_paths = set(function_apps["gateway"].openapi()["paths"])
    identity_paths = set(function_apps["identity"].openapi()["paths"])
    assert not {p for p in gateway_paths if p.startswith("/v1/identity")}
    assert "/v1/identity/tokens/issue" in identity_paths and "/v1/identity/.well-known/jwks.json" in identity_paths


def test_only_the_functions_that_sign_or_verify_tokens_get_layer_auth():
    for transport in ("sqs", "nats"):
        with_auth = {name for name, package in platform_packages(transport=transport).items()
                     if "auth" in package.layers}
        assert with_auth == {"authorizer", "identity"}, (transport, with_auth)


def test_a_gateway_cold_start_loads_no_jwt_library():
    """The gateway's handler imported and its app built, in a fresh interpreter: neither PyJWT nor cryptography is
    loaded (they would not be there on Lambda)."""
    code = (
        "import sys\n"
        "from unittest import mock\n"
        "import soorma.functions.gateway.handler\n"
        "from soorma.functions.gateway.app import create_app\n"
        "create_app(db=mock.MagicMock(), publisher=mock.MagicMock())\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'jwt', 'cryptography'}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout + done.stderr
