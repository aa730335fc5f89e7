"""The authorization matrix: every /v1 route of the gateway, registry, memory and tracker functions, called through the
local API Gateway (real authorizer, real handlers, real PostgreSQL and NATS) with

* no credential, and soorma-core's ``X-Identity-Admin-Key`` bypass headers (any value, ``X-Tenant-ID`` of the
  victim) without a credential → 401;
* a revoked API key → 403 when the authorizer sees it, 401 when its earlier "allow" is still cached (the function
  checks revocation on every request);
* an expired JWT → 403;
* a wrong tenant: another tenant's ``user`` key naming the victim's service tenant and user → 403;
* a role too weak for the route → 403 (404 where the route hides what the caller may not see);

and nothing changes: no row of any table of the ``gateway``, ``registry`` and ``memory`` schemas (token buckets
aside: they count requests, not data) and no message on the event bus. A last pass calls every route with another
tenant's admin key and checks the victim tenant's rows are untouched.

Routes are enumerated from the apps themselves, so a route added later is covered without editing this file (with
the generic sample below when it has none of its own).
"""

from __future__ import annotations

import asyncio
import re
import uuid
from typing import Any

import pytest

#: The identity service's discovery documents (public keys and metadata): nothing there to refuse.
PUBLIC = ("/v1/identity/.well-known/",)


def _routes(apps) -> list[tuple[str, str, str]]:
    """(function, method, path template) of every /v1 operation, from each app's OpenAPI document (which lists the
    routes of included routers too), but the public discovery documents."""
    found = []
    for function, app in apps.items():
        for path, operations in app.openapi()["paths"].items():
            if path.startswith("/v1/") and not path.startswith(PUBLIC):
                found += [(function, method.upper(), path) for method in operations
                          if method in ("get", "put", "post", "delete", "patch")]
    return sorted(set(found))


# Role too weak for a route: the credential to use and the answers that count as a refusal. Routes not listed are
# open to every role (each caller then only reaches its own rows).
WEAK: dict[tuple[str, str], tuple[str, set[int]]] = {
    ("POST", "/v1/tenants"): ("admin", {403}),  # a tenant admin is not the platform admin
    ("GET", "/v1/tenants"): ("admin", {403}),
    ("GET", "/v1/tenants/{platform_tenant_id}"): ("developer", {403}),
    ("PATCH", "/v1/tenants/{platform_tenant_id}"): ("admin", {403}),
    ("GET", "/v1/policy"): ("user", {403}),
    ("PUT", "/v1/policy"): ("developer", {403}),
    ("POST", "/v1/api-keys"): ("user", {403}),
    ("GET", "/v1/api-keys/{key_id}"): ("user", {404}),  # another principal's key is hidden
    ("POST", "/v1/api-keys/{key_id}/rotate"): ("developer", {403}),  # the path names the admin's key
    ("POST", "/v1/api-keys/{key_id}/revoke"): ("developer", {403}),
    ("POST", "/v1/agents"): ("user", {403}),
    ("DELETE", "/v1/agents/{agent_id}"): ("user", {403}),
    ("PUT", "/v1/agents/{agent_id}/heartbeat"): ("user", {403}),
    ("POST", "/v1/agents/{agent_id}/heartbeat"): ("user", {403}),
    ("POST", "/v1/events"): ("user", {403}),
    ("POST", "/v1/schemas"): ("user", {403}),
    ("POST", "/v1/memory/semantic"): ("user", {403}),  # public knowledge
    ("POST", "/v1/memory/semantic/batch"): ("user", {403}),
    ("DELETE", "/v1/memory/admin/platform/{platform_tenant_id}"): ("developer", {403}),  # erasure: admin only
    ("DELETE", "/v1/memory/admin/tenant/{platform_tenant_id}/{service_tenant_id}"): ("developer", {403}),
    ("DELETE", "/v1/memory/admin/user/{platform_tenant_id}/{service_tenant_id}/{service_user_id}"): ("developer", {403}),
    # the identity service: onboarding and signing keys are the platform admin's, the rest the tenant admin's
    ("POST", "/v1/identity/onboarding"): ("admin", {403}),
    ("POST", "/v1/identity/signing-keys/rotate"): ("admin", {403}),
    ("POST", "/v1/identity/tenant-admin-credentials/rotate"): ("developer", {403}),
    ("POST", "/v1/identity/principals"): ("developer", {403}),
    ("PUT", "/v1/identity/principals/{principal_id}"): ("developer", {403}),
    ("POST", "/v1/identity/principals/{principal_id}/revoke"): ("developer", {403}),
    ("POST", "/v1/identity/tokens/issue"): ("developer", {403}),
    ("POST", "/v1/identity/delegated-issuers"): ("developer", {403}),
    ("PUT", "/v1/identity/delegated-issuers/{delegated_issuer_id}"): ("developer", {403}),
    ("POST", "/v1/identity/mappings/evaluate"): ("developer", {403}),
}

#: The identity routes verify their credential in the function (no authorizer: soorma.functions.identity.service),
#: which answers 401 for every credential that is not valid, where the authorizer answers 403.
SELF_AUTHENTICATED = "/v1/identity/"


def _sample(method: str, path: str, v: dict[str, str]) -> tuple[str, dict[str, Any], Any]:
    """(concrete path, query, JSON body) for one route, naming the victim's resources."""
    values = {
        "goal_id": v["goal_id"], "session_id": v["session_id"], "platform_tenant_id": v["tenant"],
        "key_id": v["admin_key_id"], "agent_id": "victim-agent", "plan_id": "victim-plan", "key": "k1",
        "task_id": "victim-task", "sub_task_id": "victim-sub", "service_tenant_id": v["a"].service_tenant,
        "service_user_id": f"su_user_{v['tenant']}", "schema_name": "victim-schema", "version": "1.0.0",
        "principal_id": v["admin_principal_id"], "delegated_issuer_id": "victim-issuer",
    }
    concrete = re.sub(r"\{(\w+)\}", lambda m: values.get(m.group(1), "x"), path)
    bodies: dict[tuple[str, str], Any] = {
        ("POST", "/v1/goals"): {"goal_type": "matrix.goal", "data": {}},
        ("POST", "/v1/goals/{goal_id}/cancel"): {"reason": "matrix"},
        ("POST", "/v1/sessions"): {"session_id": "matrix-session"},
        ("POST", "/v1/events/publish"): {"event": {"type": "matrix.event", "topic": "action-requests",
                                                   "plan_id": "victim-plan"}},
        # a handler commit that would overwrite the victim's task context and publish as it (issue 19)
        ("POST", "/v1/events/commit"): {"key": "k1", "expiry_timestamp": 4_000_000_000,
                                        "events": [{"type": "matrix.event", "topic": "action-requests",
                                                    "plan_id": "victim-plan"}],
                                        "task_contexts": [{"task_id": "victim-task", "event_type": "x",
                                                           "data": {"p": 3}}]},
        # the same, as one of a batch's handler runs
        ("POST", "/v1/events/commits"): {"commits": [{"key": "k2", "expiry_timestamp": 4_000_000_000,
                                                      "events": [{"type": "matrix.event", "topic": "action-requests",
                                                                  "plan_id": "victim-plan"}],
                                                      "task_contexts": [{"task_id": "victim-task", "event_type": "x",
                                                                         "data": {"p": 4}}]}]},
        ("POST", "/v1/tenants"): {"platform_tenant_id": f"pt_m_{uuid.uuid4().hex[:8]}"},
        ("PATCH", "/v1/tenants/{platform_tenant_id}"): {"status": "suspended"},
        ("PUT", "/v1/policy"): {"allowed_goal_types": ["nothing"]},
        ("POST", "/v1/api-keys"): {"role": "admin"},
        ("POST", "/v1/identity/principals"): {"principal_type": "admin"},
        ("PUT", "/v1/identity/principals/{principal_id}"): {"lifecycle_state": "suspended"},
        ("POST", "/v1/identity/tokens/issue"): {"principal_id": v["admin_principal_id"]},
        ("POST", "/v1/identity/delegated-issuers"): {"issuer_id": "https://evil.example"},
        ("PUT", "/v1/identity/delegated-issuers/{delegated_issuer_id}"): {"issuer_id": "https://evil.example"},
        ("POST", "/v1/identity/mappings/evaluate"): {"issuer_id": "https://evil.example", "claims": {"sub": "x"}},
        ("POST", "/v1/a2a"): {"jsonrpc": "2.0", "id": 1, "method": "tasks/cancel", "params": {"id": v["goal_id"]}},
        ("POST", "/v1/agents"): {"agent": {"agent_id": "victim-agent", "name": "victim", "description": "pwned"}},
        ("POST", "/v1/events"): {"event": {"event_name": "victim.event", "topic": "business-facts",
                                           "description": "pwned"}},
        ("POST", "/v1/schemas"): {"schema": {"schema_name": "victim-schema", "version": "9.0.0",
                                             "json_schema": {"type": "object"}}},
        ("POST", "/v1/memory/semantic"): {"content": "poison", "is_public": True},
        ("POST", "/v1/memory/semantic/batch"): {"items": [{"content": "poison", "is_public": True}]},
        ("PUT", "/v1/memory/working/{plan_id}/{key}"): {"value": "poison"},
        ("POST", "/v1/memory/task-context"): {"task_id": "victim-task", "event_type": "x", "data": {"p": 1},
                                              "response_topic": "action-results"},
        ("PUT", "/v1/memory/task-context/{task_id}"): {"data": {"p": 2}},
    }
    queries: dict[tuple[str, str], dict[str, Any]] = {
        ("POST", "/v1/memory/semantic/query"): {"query": "secret"},
        ("GET", "/v1/memory/semantic/search"): {"q": "secret"},
    }
    body = bodies.get((method, path), {} if method in ("POST", "PUT", "PATCH") else None)
    return concrete, queries.get((method, path), {}), body


@pytest.fixture(scope="module")
def matrix_client(invoker, gx):
    with gx.make_client(invoker, ttl=3600) as client:  # cached "allow" answers outlive the whole matrix
        yield client


@pytest.fixture(scope="module")
def uncached_client(invoker, gx):
    with gx.make_client(invoker, ttl=0) as client:
        yield client


@pytest.fixture(scope="module")
def victim(matrix_client, platform_admin, gx):
    """Tenant A with data everywhere, tenant B, and the bad credentials."""
    api = matrix_client
    a, b = gx.onboard(api, platform_admin), gx.onboard(api, platform_admin)
    user, dev, admin = (gx.bearer(a.keys[r]) for r in ("user", "developer", "admin"))
    goal_id = api.post("/v1/goals", headers=user, json={"goal_type": "victim.goal", "data": {"s": 1}}).json()["goal_id"]
    session_id = api.post("/v1/sessions", headers=user, json={}).json()["session_id"]
    assert api.post("/v1/agents", headers=dev, json={"agent": {"agent_id": "victim-agent", "name": "victim",
                                                               "consumed_events": ["victim.goal"]}}).status_code == 200
    assert api.post("/v1/events", headers=dev, json={"event": {"event_name": "victim.event",
                                                               "topic": "business-facts"}}).status_code == 200
    assert api.post("/v1/schemas", headers=dev, json={"schema": {"schema_name": "victim-schema", "version": "1.0.0",
                                                                 "json_schema": {"type": "object"}}}).status_code == 201
    assert api.post("/v1/memory/semantic", headers=user, json={"content": "victim secret"}).status_code == 201
    assert api.post("/v1/memory/semantic", headers=dev, json={"content": "victim public",
                                                              "is_public": True}).status_code == 201
    assert api.put("/v1/memory/working/victim-plan/k1", headers=user, json={"value": {"v": 1}}).status_code == 200
    assert api.post("/v1/memory/task-context", headers=user,
                    json={"task_id": "victim-task", "event_type": "victim.goal", "data": {},
                          "sub_tasks": ["victim-sub"], "response_topic": "action-results"}).status_code in (200, 201)
    assert api.put("/v1/policy", headers=admin, json={"max_actions_per_plan": 1000}).status_code == 200
    # the identity service's rows: a principal, a delegated issuer, and the platform's signing key (made by the first
    # token it issues, so no refused call below is the one that creates it)
    ident = {"x-identity-admin-key": a.keys["admin"]}
    principal = api.post("/v1/identity/principals", headers=ident, json={"principal_type": "user"})
    assert principal.status_code == 201, principal.text
    assert api.post("/v1/identity/delegated-issuers", headers=ident, json={
        "delegated_issuer_id": "victim-issuer", "issuer_id": "https://victim.example"}).status_code == 201
    assert api.post("/v1/identity/tokens/exchange", headers=user).status_code == 200
    # bad credentials
    revoked = api.post("/v1/api-keys", headers=admin, json={"role": "admin"}).json()
    assert api.post(f"/v1/api-keys/{revoked['key_id']}/revoke", headers=admin).status_code == 200
    cached = api.post("/v1/api-keys", headers=admin, json={"role": "admin"}).json()
    assert api.get("/v1/goals", headers=gx.bearer(cached["api_key"])).status_code == 200  # allowed once: cached
    assert api.post(f"/v1/api-keys/{cached['key_id']}/revoke", headers=admin).status_code == 200
    return {
        "a": a, "b": b, "tenant": a.id, "goal_id": goal_id, "session_id": session_id,
        "admin_key_id": a.key_ids["admin"], "admin_principal_id": principal.json()["principalId"],
        "revoked_uncached": revoked["api_key"], "revoked_cached": cached["api_key"],
        "expired_jwt": gx.jwt_for(a.id, "admin", ttl_s=-300, service_tenant_id=a.service_tenant,
                                  service_user_id=f"su_user_{a.id}"),
    }


def _snapshot(owner_conn, tenant: str | None = None) -> dict[str, Any]:
    tables = owner_conn.execute(
        "select table_schema || '.' || table_name from information_schema.tables"
        " where table_schema in ('gateway', 'registry', 'memory') and table_type = 'BASE TABLE'"
        " and table_name <> 'rate_buckets' order by 1"
    ).fetchall()
    state = {}
    for (table,) in tables:
        has_tenant = owner_conn.execute(
            "select 1 from information_schema.columns where table_schema || '.' || table_name = %s"
            " and column_name = 'platform_tenant_id'", (table,)
        ).fetchone()
        where = " where platform_tenant_id = %s" if tenant and has_tenant else ""
        state[table] = owner_conn.execute(
            f"select count(*), md5(string_agg(md5((to_jsonb(t) - 'embedding')::text), '' order by"
            f" md5((to_jsonb(t) - 'embedding')::text))) from {table} t{where}",
            (tenant,) if where else (),
        ).fetchone()
    return state


def _messages(nats_url: str) -> int:
    import nats

    async def count() -> int:
        nc = await nats.connect(nats_url)
        try:
            return (await nc.jetstream().stream_info("SOORMA_EVENTS")).state.messages
        finally:
            await nc.close()

    return asyncio.run(count())


def _call(client, method, path, query, body, headers):
    return client.request(method, path, params=query, json=body, headers=headers)


def test_every_route_refuses_bad_callers_and_changes_nothing(apps, matrix_client, uncached_client, victim, owner_conn,
                                                            nats_url, gx):
    routes = _routes(apps)
    assert len(routes) >= 35, routes  # gateway, registry, memory and tracker routes were all found
    a, b = victim["a"], victim["b"]
    bypass = {"x-identity-admin-key": "anything", "x-tenant-id": a.id, "x-service-tenant-id": a.service_tenant,
              "x-user-id": f"su_user_{a.id}"}
    wrong_tenant = gx.bearer(b.keys["user"], **{"x-soorma-service-tenant": a.service_tenant,
                                                "x-soorma-service-user": f"su_user_{a.id}"})
    cases = [
        ("no credential", matrix_client, {}, {401}),
        ("admin-key bypass", matrix_client, bypass, {401}),
        ("revoked key", uncached_client, gx.bearer(victim["revoked_uncached"]), {403}),
        ("revoked key, cached allow", matrix_client, gx.bearer(victim["revoked_cached"]), {401}),
        ("expired JWT", matrix_client, gx.bearer(victim["expired_jwt"]), {403}),
        ("wrong tenant", matrix_client, wrong_tenant, {403}),
    ]
    before, messages = _snapshot(owner_conn), _messages(nats_url)
    failures, checked, weak_checked = [], 0, 0
    for _function, method, path in routes:
        concrete, query, body = _sample(method, path, victim)
        for name, client, headers, expected in cases:
            if path.startswith(SELF_AUTHENTICATED) and name != "wrong tenant":
                expected = {401}
            reply = _call(client, method, concrete, query, body, headers)
            checked += 1
            if reply.status_code not in expected:
                failures.append(f"{name}: {method} {concrete} → {reply.status_code} {reply.text[:200]}")
        weak = WEAK.get((method, path))
        if weak:
            role, expected = weak
            reply = _call(matrix_client, method, concrete, query, body, gx.bearer(a.keys[role]))
            weak_checked += 1
            if reply.status_code not in expected:
                failures.append(f"role {role}: {method} {concrete} → {reply.status_code} {reply.text[:200]}")
    assert not failures, "\n".join(failures)
    assert weak_checked == sum(1 for _, m, p in routes if (m, p) in WEAK)
    assert weak_checked >= 15
    assert _snapshot(owner_conn) == before, "a refused request changed the database"
    assert _messages(nats_url) == messages, "a refused request published an event"
    print(f"\n{len(routes)} routes × {len(cases)} bad callers = {checked} refusals, {weak_checked} too-weak roles")


def test_another_tenants_admin_cannot_touch_the_victim(apps, matrix_client, victim, owner_conn, gx):
    """Tenant B's admin (whose service tenant/user overrides are honoured) calls every route with the victim's ids:
    whatever it may do in its own tenant, tenant A's rows stay as they were, and no route answers a 5xx."""
    b = victim["b"]
    headers = gx.bearer(b.keys["admin"], **{"x-soorma-service-tenant": victim["a"].service_tenant,
                                            "x-soorma-service-user": f"su_user_{victim['tenant']}"})
    before = _snapshot(owner_conn, victim["tenant"])
    # first, before B writes anything of its own: the victim's resources are invisible or refused
    for method, path in (("GET", "/v1/goals/{goal_id}"), ("GET", "/v1/sessions/{session_id}"),
                         ("GET", "/v1/memory/working/{plan_id}/{key}"), ("GET", "/v1/agents/{agent_id}"),
                         ("GET", "/v1/memory/task-context/{task_id}"), ("GET", "/v1/goals/{goal_id}/events"),
                         ("POST", "/v1/goals/{goal_id}/cancel"), ("GET", "/v1/api-keys/{key_id}"),
                         ("POST", "/v1/api-keys/{key_id}/revoke"), ("GET", "/v1/tenants/{platform_tenant_id}"),
                         ("DELETE", "/v1/memory/admin/platform/{platform_tenant_id}")):
        concrete, query, body = _sample(method, path, victim)
        reply = _call(matrix_client, method, concrete, query, body, headers)
        assert reply.status_code in (403, 404), (method, concrete, reply.status_code, reply.text)
    # then every route (B may create rows of its own: only the victim's rows matter)
    for _function, method, path in _routes(apps):
        concrete, query, body = _sample(method, path, victim)
        reply = _call(matrix_client, method, concrete, query, body, headers)
        assert reply.status_code < 500, (method, concrete, reply.text)
    assert _snapshot(owner_conn, victim["tenant"]) == before, "another tenant changed the victim's rows"


def test_the_matrix_samples_do_change_state_with_the_right_credentials(matrix_client, victim, owner_conn, gx):
    """Control: the samples are real writes, so 'nothing changed' above means 'refused', not 'invalid request'."""
    a = victim["a"]
    api = matrix_client
    before = _snapshot(owner_conn, a.id)
    for role, method, path in (("user", "POST", "/v1/goals"), ("user", "PUT", "/v1/memory/working/{plan_id}/{key}"),
                               ("developer", "POST", "/v1/agents"), ("user", "POST", "/v1/goals/{goal_id}/cancel")):
        concrete, query, body = _sample(method, path, victim)
        reply = _call(api, method, concrete, query, body, gx.bearer(a.keys[role]))
        assert reply.status_code < 300, (method, concrete, reply.status_code, reply.text)
    after = _snapshot(owner_conn, a.id)
    changed = {t for t in after if after[t] != before[t]}
    assert {"gateway.goals", "memory.working_memory", "registry.agents"} <= changed


def test_tenant_admin_header_bypass_with_a_valid_key_acts_only_as_the_key(matrix_client, victim, gx):
    """soorma-core's X-Identity-Admin-Key / X-Tenant-ID / X-User-ID headers next to a valid key of tenant B: the
    request runs as B's key says, never as the tenant the headers name."""
    b = victim["b"]
    headers = gx.bearer(b.keys["user"], **{"x-identity-admin-key": "dev-identity-admin", "x-tenant-id": victim["tenant"],
                                           "x-service-tenant-id": victim["a"].service_tenant,
                                           "x-user-id": f"su_user_{victim['tenant']}"})
    assert matrix_client.get(f"/v1/goals/{victim['goal_id']}", headers=headers).status_code == 404
    victims = gx.bearer(victim["a"].keys["user"])
    before = matrix_client.get("/v1/memory/working/victim-plan/k1", headers=victims).json()["value"]
    made = matrix_client.put("/v1/memory/working/victim-plan/k1", headers=headers, json={"value": "x"})
    assert made.status_code == 200
    mine = matrix_client.get("/v1/memory/working/victim-plan/k1", headers=gx.bearer(b.keys["user"]))
    assert mine.json()["value"] == "x"  # written under B's own identity
    theirs = matrix_client.get("/v1/memory/working/victim-plan/k1", headers=victims)
    assert theirs.json()["value"] == before != "x"
