"""Admin erase (GDPR): only role admin, only its own platform tenant; soorma-core's X-Memory-Admin-Key means nothing."""

from __future__ import annotations

import psycopg
import pytest

TABLES = (
    "semantic_memory", "episodic_memory", "procedural_memory", "working_memory", "task_context", "task_subtasks",
    "plan_context", "plan_correlations", "plans", "sessions",
)


def _fill(api, who, tag):
    """One row in every memory table for ``who``."""
    calls = [
        ("POST", "/v1/memory/semantic", {"content": f"fact {tag}", "is_public": who.role != "user"}),
        ("POST", "/v1/memory/episodic", {"agent_id": "a", "role": "user", "content": f"said {tag}"}),
        ("POST", "/v1/memory/procedural", {"agent_id": "a", "content": f"skill {tag}"}),
        ("PUT", "/v1/memory/working/p/k", {"value": tag}),
        ("POST", "/v1/memory/task-context", {"task_id": "t", "event_type": "e", "sub_tasks": ["s"]}),
        ("POST", "/v1/memory/plan-context", {"plan_id": "p", "goal_event": "g", "correlation_ids": ["c"]}),
        ("POST", "/v1/memory/plans", {"plan_id": "p", "goal_event": "g"}),
        ("POST", "/v1/memory/sessions", {"session_id": "s"}),
    ]
    for method, path, body in calls:
        reply = api.call(method, path, who, body=body)
        assert reply.status in (200, 201), (path, reply.body)


def _count(postgres, platform, service=None, user=None) -> int:
    where = "platform_tenant_id = %(pt)s"
    if service:
        where += " and service_tenant_id = %(st)s"
    if user:
        where += " and service_user_id = %(su)s"
    with psycopg.connect(postgres) as conn:
        return sum(
            conn.execute(f"select count(*) from memory.{t} where {where}",
                         {"pt": platform, "st": service, "su": user}).fetchone()[0]
            for t in TABLES
        )


@pytest.fixture
def platform(api, make_identity):
    """Platform tenant P with two service tenants (t1: users u1, u2; t2: user u3) and another platform tenant Q."""
    u1 = make_identity(role="agent")
    u2 = make_identity(platform=u1.platform_tenant_id, service=u1.service_tenant_id, role="user")
    u3 = make_identity(platform=u1.platform_tenant_id, role="developer")
    q = make_identity(role="agent")
    for who, tag in ((u1, "u1"), (u2, "u2"), (u3, "u3"), (q, "q")):
        _fill(api, who, tag)
    admin = make_identity(platform=u1.platform_tenant_id, role="admin")
    return u1, u2, u3, q, admin


def test_only_an_admin_of_the_same_platform_tenant_may_erase(api, postgres, make_identity, platform):
    u1, u2, u3, q, admin = platform
    pt = u1.platform_tenant_id
    total = _count(postgres, pt)
    paths = [f"/v1/memory/admin/platform/{pt}", f"/v1/memory/admin/tenant/{pt}/{u1.service_tenant_id}",
             f"/v1/memory/admin/user/{pt}/{u1.service_tenant_id}/{u1.service_user_id}"]
    key = {"x-memory-admin-key": "dev-memory-admin"}
    for path in paths:
        for who in (u1, u2, u3):  # agent, user, developer of the same platform tenant: 403, header or not
            for headers in (None, key):
                reply = api.call("DELETE", path, who, headers=headers)
                assert reply.status == 403, (path, who.role, reply.body)
                assert "admin" in reply.body["detail"]
        other_admin = make_identity(role="admin")  # an admin of another platform tenant
        reply = api.call("DELETE", path, other_admin, headers=key)
        assert reply.status == 403 and "own platform tenant" in reply.body["detail"]
        assert api.call("DELETE", path, None, headers=key).status == 401
    assert _count(postgres, pt) == total


def test_erase_user_then_tenant_then_platform(api, postgres, platform):
    u1, u2, u3, q, admin = platform
    pt = u1.platform_tenant_id
    rows_q = _count(postgres, q.platform_tenant_id)

    reply = api.call("DELETE", f"/v1/memory/admin/user/{pt}/{u1.service_tenant_id}/{u2.service_user_id}", admin)
    assert reply.status == 200, reply.body
    assert reply.body["scope"] == "user" and reply.body["deleted"]["episodic_memory"] == 1
    assert reply.body["total"] == 8  # one row in each of the eight tables (side tables go by cascade)
    assert _count(postgres, pt, u2.service_tenant_id, u2.service_user_id) == 0
    assert _count(postgres, pt, u1.service_tenant_id, u1.service_user_id) > 0

    reply = api.call("DELETE", f"/v1/memory/admin/tenant/{pt}/{u1.service_tenant_id}", admin)
    assert reply.status == 200 and reply.body["scope"] == "tenant"
    assert reply.body["deleted"]["semantic_memory"] == 1  # u1's public fact went with its service tenant
    assert _count(postgres, pt, u1.service_tenant_id) == 0
    assert _count(postgres, pt, u3.service_tenant_id) > 0

    reply = api.call("DELETE", f"/v1/memory/admin/platform/{pt}", admin)
    assert reply.status == 200 and reply.body["scope"] == "platform" and reply.body["total"] == 8
    assert _count(postgres, pt) == 0
    assert _count(postgres, q.platform_tenant_id) == rows_q  # the other platform tenant is untouched

    again = api.call("DELETE", f"/v1/memory/admin/platform/{pt}", admin)
    assert again.status == 200 and again.body["total"] == 0


def test_erase_scope_does_not_outlive_the_request(api, platform):
    """After an erase, the admin's ordinary reads see only its own rows again (the scope is transaction-local)."""
    u1, u2, u3, q, admin = platform
    api.call("DELETE", f"/v1/memory/admin/user/{u1.platform_tenant_id}/{u1.service_tenant_id}/nobody", admin)
    assert api.call("GET", "/v1/memory/plans", admin).body == []
    assert api.call("GET", "/v1/memory/sessions", admin).body == []
