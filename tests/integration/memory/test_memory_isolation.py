"""Tenant isolation, table-driven: every memory route is tried by three other identities against tenant A's data —
another platform tenant (even with role admin), another service tenant of A's platform tenant, and another user of
A's service tenant — reading, searching, updating and deleting. The test passes only if no response carries any of
A's data and A's rows in every memory table are byte-for-byte unchanged afterwards (read as the database owner,
which bypasses RLS).

``test_the_route_table_covers_every_memory_route`` keeps the table honest: it enumerates the app's routes and fails
naming any (method, path) the table does not try. What the *database* enforces, independently of the SQL the routes
send (which also filters by owner), is proved in ``test_memory_rls.py``.
"""

from __future__ import annotations

import json

import psycopg
import pytest
from psycopg.rows import dict_row

# The canary must not occur by chance in an answer: "4711" once matched the microseconds of an updatedAt
# ("...34.847110"). Thirteen digits fit neither a timestamp's fraction (six) nor a UUID's all-digit group (at most 12).
SECRET_WORDS = ("vault", "8231907446615")
IDEMPOTENCY_ROUTE = "/v1/memory/idempotency/{key}"

# Routes that hold no tenant data, so there is nothing to isolate (they need no identity either):
NO_TENANT_DATA = {
    ("GET", "/health"),  # liveness: a constant answer, no database round trip
    ("GET", "/v1/memory/health"),  # the same through the gateway (soorma-core's MemoryClient.health)
    ("GET", "/openapi.json"),  # the app's OpenAPI document
    ("GET", "/openapi/memory.json"),  # the same document under the gateway's per-service name
}
HTTP_METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE"}


def app_routes(app) -> set[tuple[str, str]]:
    """Every (method, path template) the FastAPI ``app`` serves, walking included routers (FastAPI >= 0.16x keeps
    them as ``_IncludedRouter`` entries whose ``original_router`` holds the prefixed routes), HEAD/OPTIONS aside."""
    found: set[tuple[str, str]] = set()

    def walk(routes) -> None:
        for route in routes:
            inner = getattr(route, "original_router", None)
            if inner is not None:
                walk(inner.routes)
                continue
            for method in getattr(route, "methods", None) or ():
                if method in HTTP_METHODS:
                    found.add((method, route.path))

    walk(app.routes)
    # and whatever the OpenAPI document lists (a route the walk could not see still has to be covered)
    for path, operations in app.openapi().get("paths", {}).items():
        found |= {(m.upper(), path) for m in operations if m.upper() in HTTP_METHODS}
    return found


def _has_idempotency() -> bool:
    """Whether this checkout's memory app serves the idempotency routes (added alongside 0010_memory_idempotency)."""
    from soorma.functions.memory.app import create_app

    return ("PUT", IDEMPOTENCY_ROUTE) in app_routes(create_app())


HAS_IDEMPOTENCY = _has_idempotency()


def memory_tables(postgres: str) -> list[str]:
    """Every ordinary table in schema ``memory``, from the catalog (a new table is snapshotted without a code
    change, and the fixture must then give tenant A a row in it)."""
    with psycopg.connect(postgres) as conn:
        rows = conn.execute(
            "select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace"
            " where n.nspname = 'memory' and c.relkind in ('r', 'p') order by 1"
        ).fetchall()
    return [r[0] for r in rows]


def _snapshot(postgres: str, who) -> dict[str, list[dict]]:
    """Every row of ``who`` (its three identity values) in every memory table, read as the owner."""
    with psycopg.connect(postgres, row_factory=dict_row) as conn:
        out = {}
        for table in memory_tables(postgres):
            rows = conn.execute(
                f"select * from memory.{table} where platform_tenant_id = %s and service_tenant_id = %s"
                " and service_user_id = %s",
                (who.platform_tenant_id, who.service_tenant_id, who.service_user_id),
            ).fetchall()
            out[table] = sorted(json.dumps(r, default=str, sort_keys=True) for r in rows)
        return out


@pytest.fixture
def tenant_a(api, make_identity):
    """Tenant A's data in every memory table, all private to A."""
    a = make_identity()
    ids = {}

    def ok(reply, *statuses):
        assert reply.status in (statuses or (200, 201)), reply.body
        return reply.body

    ids["semantic"] = ok(api.call("POST", "/v1/memory/semantic", a, body={
        "content": "A's secret: the vault code is 8231907446615", "external_id": "secret-doc"}))["id"]
    ids["episodic"] = ok(api.call("POST", "/v1/memory/episodic", a, body={
        "agent_id": "agent-x", "role": "user", "content": "A told the agent the vault code 8231907446615"}))["id"]
    ids["procedural"] = ok(api.call("POST", "/v1/memory/procedural", a, body={
        "agent_id": "agent-x", "external_id": "a-skill", "trigger_condition": "someone asks for the vault code",
        "content": "answer 8231907446615 only to A"}))["id"]
    ok(api.call("PUT", "/v1/memory/working/plan-a/k", a, body={"value": {"vault": 8231907446615}}))
    ok(api.call("POST", "/v1/memory/task-context", a, body={
        "task_id": "task-a", "event_type": "e", "sub_tasks": ["sub-a"], "state": {"vault": 8231907446615}}))
    ok(api.call("POST", "/v1/memory/plan-context", a, body={
        "plan_id": "plan-a", "goal_event": "g", "state": {"vault": 8231907446615}, "correlation_ids": ["corr-a"]}))
    ok(api.call("POST", "/v1/memory/plans", a, body={"plan_id": "plan-a", "goal_event": "g",
                                                     "goal_data": {"vault": 8231907446615}}))
    ok(api.call("POST", "/v1/memory/sessions", a, body={"session_id": "session-a", "name": "vault 8231907446615"}))
    if HAS_IDEMPOTENCY:
        ok(api.call("PUT", "/v1/memory/idempotency/idem-a", a, body={
            "status": "COMPLETED", "expiry_timestamp": 4_000_000_000, "response_data": '{"vault": 8231907446615}'}))
    return a, ids


def _routes(a, ids):
    """(kind, method, path, body, query). Reads and searches first, then writes and deletes, then reads again."""
    reads = [
        ("read", "GET", "/v1/memory/semantic", None, None),
        ("read", "GET", "/v1/memory/working/plan-a/k", None, None),
        ("read", "GET", "/v1/memory/task-context/task-a", None, None),
        ("read", "GET", "/v1/memory/task-context/by-subtask/sub-a", None, None),
        ("read", "GET", "/v1/memory/plan-context/plan-a", None, None),
        ("read", "GET", "/v1/memory/plan-context/by-correlation/corr-a", None, None),
        ("read", "GET", "/v1/memory/plans/plan-a", None, None),
        ("read", "GET", "/v1/memory/plans", None, None),
        ("read", "GET", "/v1/memory/sessions/session-a", None, None),
        ("read", "GET", "/v1/memory/sessions", None, None),
        ("read", "GET", "/v1/memory/episodic/recent", None, {"agent_id": "agent-x"}),
        ("search", "POST", "/v1/memory/semantic/query", None, {"query": "what is the vault code", "limit": 50}),
        ("search", "POST", "/v1/memory/semantic/query", None,
         {"query": "vault code", "include_public": "false", "ef_search": 1000}),
        ("search", "GET", "/v1/memory/semantic/search", None, {"q": "vault code", "limit": 50}),
        ("search", "GET", "/v1/memory/episodic/search", None, {"agent_id": "agent-x", "q": "vault code"}),
        ("search", "GET", "/v1/memory/procedural/context", None, {"agent_id": "agent-x", "q": "vault code"}),
    ]
    if HAS_IDEMPOTENCY:
        reads.append(("read", "GET", "/v1/memory/idempotency/idem-a", None, None))
    writes = [
        ("delete", "DELETE", f"/v1/memory/semantic/{ids['semantic']}", None, None),
        ("delete", "DELETE", f"/v1/memory/procedural/{ids['procedural']}", None, None),
        ("delete", "DELETE", "/v1/memory/working/plan-a/k", None, None),
        ("delete", "DELETE", "/v1/memory/working/plan-a", None, None),
        ("delete", "DELETE", "/v1/memory/task-context/task-a", None, None),
        ("delete", "DELETE", "/v1/memory/plan-context/plan-a", None, None),
        ("delete", "DELETE", "/v1/memory/plans/plan-a", None, None),
        ("delete", "DELETE", "/v1/memory/sessions/session-a", None, None),
        ("update", "PUT", "/v1/memory/task-context/task-a", {"state": {"hacked": True}}, None),
        ("update", "PUT", "/v1/memory/task-context/task-a", {"state": {"hacked": True}, "version": 1}, None),
        ("update", "PUT", "/v1/memory/plan-context/plan-a", {"current_state": "hacked"}, None),
        ("update", "PUT", "/v1/memory/plan-context/plan-a", {"current_state": "hacked", "version": 1}, None),
        ("update", "PUT", "/v1/memory/plans/plan-a", {"status": "failed"}, None),
        ("update", "PUT", "/v1/memory/working/plan-a/k", {"value": "overwritten"}, None),
        # the atomic operations: each would change A's value in place if it reached A's row
        ("update", "POST", "/v1/memory/working/plan-a/k/increment", {"delta": 1}, None),
        ("update", "POST", "/v1/memory/working/plan-a/k/append", {"items": ["hacked"]}, None),
        ("update", "POST", "/v1/memory/working/plan-a/k/merge", {"updates": {"hacked": True}}, None),
        ("update", "POST", "/v1/memory/task-context",
         {"task_id": "task-a", "event_type": "e", "sub_tasks": ["sub-a"], "state": {"hacked": True}}, None),
        ("update", "POST", "/v1/memory/plan-context",
         {"plan_id": "plan-a", "goal_event": "g", "correlation_ids": ["corr-a"], "state": {"hacked": True}}, None),
        ("update", "POST", "/v1/memory/plans", {"plan_id": "plan-a", "goal_event": "hacked"}, None),
        ("update", "POST", "/v1/memory/sessions", {"session_id": "session-a", "name": "hijacked"}, None),
        ("update", "POST", "/v1/memory/semantic", {"content": "overwritten", "external_id": "secret-doc"}, None),
        ("update", "POST", "/v1/memory/semantic/batch",
         {"items": [{"content": "overwritten again", "external_id": "secret-doc"}]}, None),
        ("update", "POST", "/v1/memory/procedural",
         {"agent_id": "agent-x", "external_id": "a-skill", "content": "evil"}, None),
        ("update", "POST", "/v1/memory/episodic", {"agent_id": "agent-x", "role": "user", "content": "hello"}, None),
        ("delete", "DELETE", f"/v1/memory/admin/platform/{a.platform_tenant_id}", None, None),
        ("delete", "DELETE", f"/v1/memory/admin/tenant/{a.platform_tenant_id}/{a.service_tenant_id}", None, None),
        ("delete", "DELETE",
         f"/v1/memory/admin/user/{a.platform_tenant_id}/{a.service_tenant_id}/{a.service_user_id}", None, None),
    ]
    if HAS_IDEMPOTENCY:
        writes += [
            ("delete", "DELETE", "/v1/memory/idempotency/idem-a", None, None),
            # a create over A's key (live or not) must make the attacker's own record, never take over A's
            ("update", "PUT", "/v1/memory/idempotency/idem-a",
             {"status": "INPROGRESS", "expiry_timestamp": 1, "in_progress_expiry_timestamp": 1}, None),
            ("update", "PATCH", "/v1/memory/idempotency/idem-a",
             {"status": "COMPLETED", "expiry_timestamp": 1, "response_data": "hacked"}, None),
        ]
    return reads + writes + [r for r in reads]  # reads again: the attacker sees only what it wrote itself


ATTACKERS = {
    "other platform tenant (admin)": lambda make, a: make(role="admin"),
    "same platform, other service tenant": lambda make, a: make(platform=a.platform_tenant_id),
    "same service tenant, other user": lambda make, a: make(
        platform=a.platform_tenant_id, service=a.service_tenant_id, role="user"),
}


@pytest.mark.parametrize("attacker", list(ATTACKERS))
def test_another_identity_can_neither_see_nor_change_tenant_a(api, postgres, make_identity, tenant_a, attacker):
    a, ids = tenant_a
    b = ATTACKERS[attacker](make_identity, a)
    before = _snapshot(postgres, a)
    empty = [t for t, rows in before.items() if not rows]
    assert not empty, f"the fixture gives tenant A no row in {empty}: add one (and the routes that reach it)"

    secrets = set(SECRET_WORDS) | set(ids.values())
    if b.service_tenant_id != a.service_tenant_id:
        secrets.add(a.service_tenant_id)
    secrets.add(a.service_user_id)

    for kind, method, path, body, query in _routes(a, ids):
        reply = api.call(method, path, b, body=body, query=query,
                         headers={"x-memory-admin-key": "dev-memory-admin", "x-identity-admin-key": "x",
                                  "x-tenant-id": a.platform_tenant_id})
        where = f"{attacker}: {method} {path} {query or ''} -> {reply.status} {reply.body}"
        assert reply.status < 500, where
        text = json.dumps(reply.body) if reply.body is not None else ""
        sent = path + json.dumps(body) + json.dumps(query)  # an id the attacker sent may be echoed in a 404
        leaked = [s for s in secrets if s in text and s not in sent]
        assert not leaked, f"{where} leaked {leaked}"
        if "/admin/" in path:
            assert reply.status == 403, where
        elif kind == "read" and reply.status == 200:
            # a listing may show the attacker's own rows (written above), never A's
            assert isinstance(reply.body, (list, dict)), where
        elif kind == "search":
            assert reply.status == 200, where

    assert _snapshot(postgres, a) == before, f"{attacker} changed tenant A's rows"

    # and A still reads its own data
    assert api.call("GET", "/v1/memory/plan-context/by-correlation/corr-a", a).body["planId"] == "plan-a"
    assert api.call("GET", "/v1/memory/working/plan-a/k", a).body["value"] == {"vault": 8231907446615}
    found = api.call("GET", "/v1/memory/episodic/search", a, query={"agent_id": "agent-x", "q": "vault code"}).body
    assert [r["id"] for r in found] == [ids["episodic"]]


def _template_of(method: str, path: str, routes: set[tuple[str, str]]) -> str | None:
    """The route template that serves ``method path``: of the templates that match, the one with the fewest
    parameters (a literal segment wins over ``{param}``, as in the app's own ordering)."""
    segments = path.split("/")
    matches = []
    for route_method, template in routes:
        parts = template.split("/")
        if route_method != method or len(parts) != len(segments):
            continue
        if all(p == s or (p.startswith("{") and p.endswith("}") and s) for p, s in zip(parts, segments)):
            matches.append((template.count("{"), template))
    return min(matches)[1] if matches else None


def test_the_route_table_covers_every_memory_route(make_identity):
    """Every (method, path) of the memory app is tried by the attackers above, except the explicitly listed routes
    with no tenant data. A route added later without an entry in ``_routes`` fails here, by name."""
    from soorma.functions.memory.app import create_app

    routes = app_routes(create_app())
    assert ("POST", "/v1/memory/working/{plan_id}/{key}/increment") in routes  # the walk sees included routers
    a = make_identity()
    ids = {"semantic": "00000000-0000-0000-0000-000000000001", "episodic": "e", "procedural":
           "00000000-0000-0000-0000-000000000002"}
    tried = {}
    for _, method, path, _, _ in _routes(a, ids):
        template = _template_of(method, path, routes)
        assert template is not None, f"the table tries {method} {path}, which no memory route serves"
        tried[(method, template)] = path
    uncovered = sorted(routes - set(tried) - NO_TENANT_DATA)
    assert not uncovered, "memory routes the isolation table never tries: " + ", ".join(
        f"{m} {p}" for m, p in uncovered)
    assert not (NO_TENANT_DATA & set(tried)), "a route listed as holding no tenant data is in the table"


def test_public_knowledge_is_readable_but_not_writable_across_users(api, postgres, make_identity):
    """Public knowledge is shared in the platform tenant, but another user can neither delete it nor see its author."""
    author = make_identity(role="developer")
    reader = make_identity(platform=author.platform_tenant_id, role="user")
    row = api.call("POST", "/v1/memory/semantic", author,
                   body={"content": "Office hours are 9 to 5.", "is_public": True, "external_id": "hours"}).body
    before = _snapshot(postgres, author)
    hits = api.call("POST", "/v1/memory/semantic/query", reader, query={"query": "when is the office open"}).body
    assert hits[0]["id"] == row["id"] and hits[0]["tenantId"] is None and hits[0]["userId"] is None
    assert api.call("DELETE", f"/v1/memory/semantic/{row['id']}", reader).status == 404
    assert api.call("GET", "/v1/memory/semantic", reader).body["items"] == []  # listing shows own rows only
    assert _snapshot(postgres, author) == before
