"""Cross-cutting HTTP behaviour of the memory handler: health, identity only from the authorizer, error shapes."""

from __future__ import annotations

import pytest

ROUTES = [
    ("POST", "/v1/memory/semantic", {"content": "x"}),
    ("POST", "/v1/memory/semantic/batch", {"items": [{"content": "x"}]}),
    ("POST", "/v1/memory/semantic/query?query=x", None),
    ("GET", "/v1/memory/semantic/search?q=x", None),
    ("PUT", "/v1/memory/working/p/k", {"value": 1}),
    ("GET", "/v1/memory/working/p/k", None),
    ("DELETE", "/v1/memory/working/p/k", None),
    ("DELETE", "/v1/memory/working/p", None),
    ("POST", "/v1/memory/task-context", {"task_id": "t", "event_type": "e"}),
    ("GET", "/v1/memory/task-context/t", None),
    ("PUT", "/v1/memory/task-context/t", {"state": {}}),
    ("DELETE", "/v1/memory/task-context/t", None),
    ("GET", "/v1/memory/task-context/by-subtask/s", None),
    ("GET", "/v1/memory/semantic", None),
    ("DELETE", "/v1/memory/semantic/00000000-0000-0000-0000-000000000000", None),
    ("POST", "/v1/memory/episodic", {"agent_id": "a", "role": "user", "content": "x"}),
    ("GET", "/v1/memory/episodic/recent?agent_id=a", None),
    ("GET", "/v1/memory/episodic/search?agent_id=a&q=x", None),
    ("POST", "/v1/memory/procedural", {"agent_id": "a", "content": "x"}),
    ("GET", "/v1/memory/procedural/context?agent_id=a&q=x", None),
    ("DELETE", "/v1/memory/procedural/00000000-0000-0000-0000-000000000000", None),
    ("POST", "/v1/memory/plan-context", {"plan_id": "p", "goal_event": "g"}),
    ("GET", "/v1/memory/plan-context/p", None),
    ("PUT", "/v1/memory/plan-context/p", {"state": {}}),
    ("DELETE", "/v1/memory/plan-context/p", None),
    ("GET", "/v1/memory/plan-context/by-correlation/c", None),
    ("POST", "/v1/memory/plans", {"plan_id": "p", "goal_event": "g"}),
    ("GET", "/v1/memory/plans", None),
    ("GET", "/v1/memory/plans/p", None),
    ("PUT", "/v1/memory/plans/p", {"status": "failed"}),
    ("DELETE", "/v1/memory/plans/p", None),
    ("POST", "/v1/memory/sessions", {"session_id": "s"}),
    ("GET", "/v1/memory/sessions", None),
    ("GET", "/v1/memory/sessions/s", None),
    ("DELETE", "/v1/memory/sessions/s", None),
    ("DELETE", "/v1/memory/admin/platform/pt", None),
    ("DELETE", "/v1/memory/admin/tenant/pt/st", None),
    ("DELETE", "/v1/memory/admin/user/pt/st/su", None),
]


def test_health_needs_no_identity(api):
    reply = api.call("GET", "/health", None)
    assert reply.status == 200 and reply.body["status"] == "ok"


@pytest.mark.parametrize("method,path,body", ROUTES)
def test_every_route_needs_the_authorizer_context(api, method, path, body):
    path, _, query = path.partition("?")
    params = dict(p.split("=") for p in query.split("&")) if query else None
    reply = api.call(method, path, None, body=body, query=params)
    assert reply.status == 401, (method, path, reply.body)
    assert "detail" in reply.body


def test_identity_headers_are_not_trusted(api):
    """A caller cannot name its tenant in headers; only the authorizer context counts."""
    reply = api.call(
        "GET", "/v1/memory/working/p/k", None,
        headers={"x-soorma-service-tenant": "victim", "x-soorma-service-user": "victim", "x-tenant-id": "victim",
                 "x-identity-admin-key": "anything"},
    )
    assert reply.status == 401


def test_incomplete_authorizer_context_is_rejected(api, make_identity):
    from soorma.identity import Identity

    who = make_identity()
    broken = Identity(who.platform_tenant_id, "", who.service_user_id, who.principal_id, who.role)
    assert api.call("GET", "/v1/memory/working/p/k", broken).status == 401


def test_malformed_json_without_identity_is_still_401(api):
    assert api.call("POST", "/v1/memory/semantic", None, raw_body="{oops").status == 401


def test_unknown_route_is_404(api, make_identity):
    assert api.call("GET", "/v1/memory/nothing-here", make_identity()).status == 404


def test_wrong_method_is_405(api, make_identity):
    assert api.call("PATCH", "/v1/memory/task-context/t", make_identity(), body={}).status == 405
