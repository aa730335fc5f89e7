"""Identity through the local API Gateway: tenants onboarded by the platform admin, API key lifecycle (create → shown
once, list, rotate, revoke, expiry), JWTs (HS256; RS256 from a JWKS URL), suspension."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
import pytest


def test_platform_admin_onboards_tenants_and_only_they_can(api, platform_admin, gx):
    tenant = gx.onboard(api, platform_admin)
    assert tenant.keys["admin"].startswith("sk_")
    listed = api.get("/v1/tenants", headers=gx.bearer(platform_admin), params={"limit": 200}).json()
    assert listed["count"] >= 1
    # the tenant's own admin reads its tenant, but may neither list nor onboard nor change limits
    own = api.get(f"/v1/tenants/{tenant.id}", headers=gx.bearer(tenant.keys["admin"]))
    assert own.status_code == 200 and own.json()["status"] == "active"
    assert api.get("/v1/tenants", headers=gx.bearer(tenant.keys["admin"])).status_code == 403
    assert api.post("/v1/tenants", headers=gx.bearer(tenant.keys["admin"]), json={}).status_code == 403
    assert api.patch(f"/v1/tenants/{tenant.id}", headers=gx.bearer(tenant.keys["admin"]),
                     json={"key_rps": 1e5}).status_code == 403
    assert api.get(f"/v1/tenants/{tenant.id}", headers=gx.bearer(tenant.keys["developer"])).status_code == 403
    # onboarding the same id twice is a conflict
    again = api.post("/v1/tenants", headers=gx.bearer(platform_admin), json={"platform_tenant_id": tenant.id})
    assert again.status_code == 409


def test_key_lifecycle_create_list_rotate_revoke(api, platform_admin, gx):
    t = gx.onboard(api, platform_admin)
    admin = gx.bearer(t.keys["admin"])
    created = api.post("/v1/api-keys", headers=admin, json={"role": "agent", "name": "worker-1"})
    assert created.status_code == 201
    body = created.json()
    key, key_id = body["api_key"], body["key_id"]
    assert key.startswith(f"sk_{key_id}_") and body["role"] == "agent" and body["service_tenant_id"] == t.id
    # shown once: reading or listing never returns the secret
    read = api.get(f"/v1/api-keys/{key_id}", headers=admin).json()
    assert "api_key" not in read and key.split("_", 2)[2] not in json.dumps(read)
    listed = api.get("/v1/api-keys", headers=admin).json()
    assert key_id in {k["key_id"] for k in listed["keys"]} and all("api_key" not in k for k in listed["keys"])
    # the key works
    assert api.get("/v1/goals", headers=gx.bearer(key)).status_code == 200
    # rotate: a new key, same identity; the old one stops at once (even with the authorizer's answer cached)
    rotated = api.post(f"/v1/api-keys/{key_id}/rotate", headers=admin)
    assert rotated.status_code == 201, rotated.text
    new = rotated.json()
    assert new["rotated_from"] == key_id and new["principal_id"] == body["principal_id"]
    assert new["service_user_id"] == body["service_user_id"] and new["role"] == "agent"
    assert api.get("/v1/goals", headers=gx.bearer(key)).status_code == 401
    assert api.get("/v1/goals", headers=gx.bearer(new["api_key"])).status_code == 200
    # revoke: at once, twice is harmless; a revoked key cannot be rotated
    revoked = api.post(f"/v1/api-keys/{new['key_id']}/revoke", headers=admin)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    assert api.post(f"/v1/api-keys/{new['key_id']}/revoke", headers=admin).status_code == 200
    assert api.get("/v1/goals", headers=gx.bearer(new["api_key"])).status_code == 401
    assert api.post(f"/v1/api-keys/{new['key_id']}/rotate", headers=admin).status_code == 409
    # a fresh client (no cached authorizer answer): the authorizer itself refuses it
    with gx.make_client(api.gateway.invoker) as fresh:
        assert fresh.get("/v1/goals", headers=gx.bearer(new["api_key"])).status_code == 403
    listed = api.get("/v1/api-keys", headers=admin, params={"include_revoked": "true"}).json()
    assert {key_id, new["key_id"]} <= {k["key_id"] for k in listed["keys"]}


def test_key_roles_per_route(api, platform_admin, gx):
    t = gx.onboard(api, platform_admin)
    dev, user, agent = (gx.bearer(t.keys[r]) for r in ("developer", "user", "agent"))
    assert api.post("/v1/api-keys", headers=dev, json={"role": "user"}).status_code == 201
    assert api.post("/v1/api-keys", headers=dev, json={"role": "admin"}).status_code == 403
    assert api.post("/v1/api-keys", headers=dev, json={"role": "developer"}).status_code == 403
    assert api.post("/v1/api-keys", headers=user, json={"role": "user"}).status_code == 403
    assert api.post("/v1/api-keys", headers=agent, json={"role": "agent"}).status_code == 403
    # a developer cannot revoke the admin's key; a user sees only its own keys
    assert api.post(f"/v1/api-keys/{t.key_ids['admin']}/revoke", headers=dev).status_code == 403
    mine = api.get("/v1/api-keys", headers=user).json()["keys"]
    assert [k["key_id"] for k in mine] == [t.key_ids["user"]]
    assert api.get(f"/v1/api-keys/{t.key_ids['admin']}", headers=user).status_code == 404
    # another tenant's key is invisible
    other = gx.onboard(api, platform_admin)
    assert api.post(f"/v1/api-keys/{other.key_ids['user']}/revoke",
                    headers=gx.bearer(t.keys["admin"])).status_code == 404
    # a user may rotate its own key
    rotated = api.post(f"/v1/api-keys/{t.key_ids['user']}/rotate", headers=user)
    assert rotated.status_code == 201


def test_a_principal_keeps_its_role_so_naming_the_admin_escalates_nothing(api, platform_admin, gx):
    """Naming the tenant admin's principal must not yield a key that "owns" the admin's keys (which could then rotate
    them into fresh admin keys): a developer may not name a principal at all (its keys are for new principals,
    issue 12), and an admin cannot give one principal two roles."""
    t = gx.onboard(api, platform_admin)
    dev, admin = gx.bearer(t.keys["developer"]), gx.bearer(t.keys["admin"])
    admin_key = api.get(f"/v1/api-keys/{t.key_ids['admin']}", headers=admin).json()
    before = api.get("/v1/api-keys", headers=admin, params={"include_revoked": "true"}).json()["keys"]
    forged = api.post("/v1/api-keys", headers=dev, json={"role": "user", "principal_id": admin_key["principal_id"]})
    assert forged.status_code == 403, forged.text
    after = api.get("/v1/api-keys", headers=admin, params={"include_revoked": "true"}).json()["keys"]
    assert after == before  # nothing was created
    # the admin itself cannot give one principal two roles either
    assert api.post("/v1/api-keys", headers=admin,
                    json={"role": "developer", "principal_id": admin_key["principal_id"]}).status_code == 409
    assert api.post("/v1/api-keys", headers=admin,
                    json={"role": "user", "principal_id": admin_key["principal_id"]}).status_code == 409
    # the same role for an existing principal is a second key of that principal (an admin's to issue)
    user_key = api.get(f"/v1/api-keys/{t.key_ids['user']}", headers=admin).json()
    second = api.post("/v1/api-keys", headers=admin, json={"role": "user", "principal_id": user_key["principal_id"]})
    assert second.status_code == 201 and second.json()["principal_id"] == user_key["principal_id"]
    # and that key may manage its principal's keys, never the admin's
    user2 = gx.bearer(second.json()["api_key"])
    assert api.post(f"/v1/api-keys/{t.key_ids['admin']}/rotate", headers=user2).status_code == 404
    assert api.post(f"/v1/api-keys/{t.key_ids['user']}/rotate", headers=user2).status_code == 201


def test_expiring_keys(api, platform_admin, gx):
    t = gx.onboard(api, platform_admin)
    created = api.post("/v1/api-keys", headers=gx.bearer(t.keys["admin"]),
                       json={"role": "user", "expires_in_seconds": 1}).json()
    assert created["expires_at"]
    assert api.get("/v1/goals", headers=gx.bearer(created["api_key"])).status_code == 200
    time.sleep(1.2)
    assert api.get("/v1/goals", headers=gx.bearer(created["api_key"])).status_code == 401  # cached authorizer answer
    with gx.make_client(api.gateway.invoker) as fresh:
        assert fresh.get("/v1/goals", headers=gx.bearer(created["api_key"])).status_code == 403


def test_hs256_jwt_identity_projection(api, platform_admin, gx):
    t = gx.onboard(api, platform_admin)
    token = gx.jwt_for(t.id, "user", service_tenant_id="acme", user_id="alice")
    goal = api.post("/v1/goals", headers=gx.bearer(token), json={"goal_type": "jwt.goal", "data": {}})
    assert goal.status_code == 202, goal.text
    # the same service tenant/user through an API key sees the goal (same three identity values)
    key = api.post("/v1/api-keys", headers=gx.bearer(t.keys["admin"]),
                   json={"role": "user", "service_tenant_id": "acme", "service_user_id": "alice"}).json()["api_key"]
    assert api.get(f"/v1/goals/{goal.json()['goal_id']}", headers=gx.bearer(key)).status_code == 200
    # reference-style token: tenant_id + principal_type, no service claims → service tenant = tenant, user = sub
    ref = jwt.encode({"sub": "pr_x", "tenant_id": t.id, "principal_type": "worker", "roles": ["worker"],
                      "aud": gx.JWT_AUDIENCE, "exp": int(time.time()) + 60}, gx.JWT_SECRET, algorithm="HS256")
    published = api.post("/v1/events/publish", headers=gx.bearer(ref),
                         json={"event": {"type": "a.b", "topic": "business-facts", "tenant_id": t.id,
                                         "user_id": "pr_x"}})
    assert published.status_code == 200, published.text  # an agent (worker) acting as itself
    # bad tokens: expired, wrong secret, alg none, unknown tenant, suspended tenant
    expired = gx.jwt_for(t.id, "admin", ttl_s=-120)
    assert api.get("/v1/goals", headers=gx.bearer(expired)).status_code == 403
    forged = jwt.encode({"sub": "x", "platform_tenant_id": t.id, "role": "admin", "aud": gx.JWT_AUDIENCE,
                         "exp": int(time.time()) + 60},
                        "another-secret-0123456789abcdef0123456789", algorithm="HS256")
    assert api.get("/v1/goals", headers=gx.bearer(forged)).status_code == 403
    unsigned = jwt.encode({"sub": "x", "platform_tenant_id": t.id, "aud": gx.JWT_AUDIENCE,
                           "exp": int(time.time()) + 60}, None,
                          algorithm="none")
    assert api.get("/v1/goals", headers=gx.bearer(unsigned)).status_code == 403
    assert api.get("/v1/goals", headers=gx.bearer(gx.jwt_for("pt_never_onboarded"))).status_code == 403


def test_suspended_tenant_is_refused_at_once(api, platform_admin, gx):
    t = gx.onboard(api, platform_admin)
    user = gx.bearer(t.keys["user"])
    token = gx.bearer(gx.jwt_for(t.id, "user"))
    assert api.get("/v1/goals", headers=user).status_code == 200
    assert api.get("/v1/goals", headers=token).status_code == 200
    assert api.patch(f"/v1/tenants/{t.id}", headers=gx.bearer(platform_admin),
                     json={"status": "suspended"}).status_code == 200
    assert api.get("/v1/goals", headers=user).status_code == 403  # cached authorizer answer; the function refuses
    assert api.get("/v1/goals", headers=token).status_code == 403
    with gx.make_client(api.gateway.invoker) as fresh:
        assert fresh.get("/v1/goals", headers=user).status_code == 403
    assert api.patch(f"/v1/tenants/{t.id}", headers=gx.bearer(platform_admin),
                     json={"status": "active"}).status_code == 200
    assert api.get("/v1/goals", headers=user).status_code == 200
    assert api.patch(f"/v1/tenants/{gx.PLATFORM}", headers=gx.bearer(platform_admin),
                     json={"status": "suspended"}).status_code == 409


class _Jwks(BaseHTTPRequestHandler):
    document = b"{}"
    hits = 0

    def do_GET(self):  # noqa: N802
        type(self).hits += 1
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.end_headers()
        self.wfile.write(self.document)

    def log_message(self, *args):
        pass


@pytest.fixture
def jwks_server():
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    _Jwks.document = json.dumps({"keys": [{**public, "kid": "k1", "use": "sig", "alg": "RS256"}]}).encode()
    _Jwks.hits = 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Jwks)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json", key
    server.shutdown()


def test_rs256_from_jwks_url_with_issuer_and_audience(api, platform_admin, gx, gw_db, jwks_server):
    from soorma.functions.gateway import authorizer
    from soorma.functions.gateway.tokens import JwtSettings
    from soorma.testing import authorizer_event, http_api_event

    url, key = jwks_server
    t = gx.onboard(api, platform_admin)
    settings = JwtSettings(jwks_url=url, issuer="https://issuer.example", audience=("soorma",))

    def token(**claims):
        base = {"sub": "u1", "platform_tenant_id": t.id, "cognito:groups": ["developer"],
                "iss": "https://issuer.example", "aud": "soorma", "exp": int(time.time()) + 60}
        return jwt.encode({**base, **claims}, key, algorithm="RS256", headers={"kid": "k1"})

    def decide(tok):
        event = authorizer_event(http_api_event("GET", "/v1/goals", headers={"authorization": f"Bearer {tok}"}))
        return authorizer.authorize(event, gw_db, pepper=gx.PEPPER, jwt_settings=settings)

    ok = decide(token())
    assert ok["isAuthorized"] is True
    assert ok["context"]["platform_tenant_id"] == t.id and ok["context"]["role"] == "developer"
    assert ok["context"]["service_user_id"] == "u1" and ok["context"]["credential_type"] == "jwt"
    assert decide(token(iss="https://evil.example"))["isAuthorized"] is False
    assert decide(token(aud="other"))["isAuthorized"] is False
    assert decide(token(exp=int(time.time()) - 10))["isAuthorized"] is False
    # an HS256 token is refused when only a JWKS is configured (no algorithm confusion)
    assert decide(gx.jwt_for(t.id))["isAuthorized"] is False
    for _ in range(5):
        decide(token())
    assert _Jwks.hits == 1  # the JWKS is fetched once and cached
