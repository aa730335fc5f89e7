"""The identity guard every HTTP function shares (``soorma.functions.shared.service``): a ``/v1/`` request without the authorizer's
context is a 401 before its body is parsed, so an anonymous caller learns nothing about its body's validity."""

from __future__ import annotations

import pytest

from soorma.functions.shared.service import UNAUTHORIZED
from soorma.identity import Identity

ROUTES = [
    ("registry", "POST", "/v1/agents"),
    ("registry", "POST", "/v1/events"),
    ("gateway", "POST", "/v1/goals"),
    ("gateway", "POST", "/v1/events/publish"),
    ("tracker_http", "GET", "/v1/tracker/goals/g/events"),
]


@pytest.mark.parametrize("function,method,path", ROUTES)
def test_anonymous_malformed_request_is_401(request, fx, function, method, path):
    handler = request.getfixturevalue(function)
    reply = fx.invoke(handler, fx.http_event(method, path, raw_body="{oops"))
    assert reply.status == 401 and reply.body == UNAUTHORIZED

    me = fx.new_identity()
    broken = Identity(me.platform_tenant_id, "", me.service_user_id, me.principal_id, me.role)
    assert fx.invoke(handler, fx.http_event(method, path, identity=broken, raw_body="{oops")).status == 401


@pytest.mark.parametrize("function,method,path", [r for r in ROUTES if r[1] == "POST"])
def test_with_identity_a_malformed_body_is_422(request, fx, function, method, path):
    handler = request.getfixturevalue(function)
    reply = fx.invoke(handler, fx.http_event(method, path, identity=fx.new_identity(), raw_body="{oops"))
    assert reply.status == 422, reply.body
