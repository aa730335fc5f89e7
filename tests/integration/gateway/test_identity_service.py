"""The identity service (``/v1/identity/*``) through the local API Gateway and the real authorizer: onboarding with
the platform admin key in ``X-Identity-Admin-Key``, principals, token issuance, tokens accepted by the platform's own
authorizer on the goals API, tenant isolation, signing key rotation without downtime, and the attacks: any value,
a wrong key, another tenant's admin key, a token of tenant A on tenant B's data."""

from __future__ import annotations

import time

import jwt
import pytest

ADMIN = "X-Identity-Admin-Key"


def _onboard(api, platform_admin: str) -> dict:
    reply = api.post("/v1/identity/onboarding", headers={ADMIN: platform_admin},
                     json={"bootstrapAdminExternalRef": "tests-bootstrap"})
    assert reply.status_code == 201, reply.text
    body = reply.json()
    assert body["tenantAdminApiKey"].startswith("sk_") and body["platformTenantId"] == body["tenantDomainId"]
    return body


def _principal(api, tenant: dict, principal_type: str = "user") -> str:
    reply = api.post("/v1/identity/principals", json={"principalType": principal_type},
                     headers={ADMIN: tenant["tenantAdminApiKey"], "X-Tenant-ID": tenant["platformTenantId"]})
    assert reply.status_code == 201, reply.text
    assert reply.json()["lifecycleState"] == "active" and reply.json()["tenantDomainId"] == tenant["platformTenantId"]
    return reply.json()["principalId"]


def _token(api, tenant: dict, principal: str) -> str:
    reply = api.post("/v1/identity/tokens/issue", json={"principalId": principal, "issuanceType": "platform"},
                     headers={ADMIN: tenant["tenantAdminApiKey"]})
    assert reply.status_code == 200, reply.text
    assert reply.json()["tokenType"] == "Bearer" and reply.json()["expiresIn"] == 900
    return reply.json()["token"]


def _jwks(api) -> dict:
    reply = api.get("/v1/identity/.well-known/jwks.json")
    assert reply.status_code == 200
    return reply.json()


def test_onboarding_principal_token_works_on_goals_and_tenants_stay_apart(api, platform_admin, gx):
    a, b = _onboard(api, platform_admin), _onboard(api, platform_admin)
    alice = _principal(api, a)
    token = _token(api, a, alice)
    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert header["alg"] == "ES256" and header["kid"] in {k["kid"] for k in _jwks(api)["keys"]}
    assert claims["platform_tenant_id"] == a["platformTenantId"] and claims["sub"] == alice
    assert claims["exp"] - claims["iat"] == 900 and claims["role"] == "user"
    # the platform's own authorizer accepts it (no HTTP fetch of the JWKS: verified from the database)
    submitted = api.post("/v1/goals", headers=gx.bearer(token), json={"goal_type": "identity.test", "data": {}})
    assert submitted.status_code == 202, submitted.text
    goal_id = submitted.json()["goal_id"]
    assert api.get(f"/v1/goals/{goal_id}", headers=gx.bearer(token)).status_code == 200
    # tenant B's user never sees it, and B's token is refused on it
    bob_token = _token(api, b, _principal(api, b))
    assert api.get(f"/v1/goals/{goal_id}", headers=gx.bearer(bob_token)).status_code == 404
    assert goal_id not in {g["goal_id"] for g in api.get("/v1/goals", headers=gx.bearer(bob_token)).json()["goals"]}
    # A's token cannot be made B's by headers (the identity comes from the verified claims alone)
    spoof = api.get(f"/v1/goals/{goal_id}", headers=gx.bearer(bob_token, **{"X-Tenant-ID": a["platformTenantId"]}))
    assert spoof.status_code == 404


def test_a_forged_or_tampered_token_is_refused(api, platform_admin, gx):
    a = _onboard(api, platform_admin)
    token = _token(api, a, _principal(api, a))
    claims = jwt.decode(token, options={"verify_signature": False})
    header = jwt.get_unverified_header(token)
    from cryptography.hazmat.primitives.asymmetric import ec

    other_key = ec.generate_private_key(ec.SECP256R1())
    forged = jwt.encode({**claims, "role": "admin"}, other_key, algorithm="ES256", headers={"kid": header["kid"]})
    assert api.get("/v1/goals", headers=gx.bearer(forged)).status_code == 403
    # none algorithm with a platform kid
    unsigned = jwt.encode({**claims, "role": "admin"}, None, algorithm="none", headers={"kid": header["kid"]})
    assert api.get("/v1/goals", headers=gx.bearer(unsigned)).status_code in (401, 403)


def test_admin_credential_is_verified_and_scoped(api, platform_admin, gx):
    a, b = _onboard(api, platform_admin), _onboard(api, platform_admin)
    # soorma-core's bypass: any non-empty value was accepted; here it is refused, everywhere
    for value in ("anything", "dev-identity-admin", "sk_0123456789abcdef_wrong"):
        assert api.post("/v1/identity/onboarding", headers={ADMIN: value}, json={}).status_code == 401
        assert api.post("/v1/identity/principals", headers={ADMIN: value}, json={}).status_code == 401
    assert api.post("/v1/identity/onboarding", json={}).status_code == 401
    # the header names nobody on other routes (the authorizer ignores it)
    assert api.get("/v1/goals", headers={ADMIN: a["tenantAdminApiKey"]}).status_code == 401
    # a tenant admin key may not onboard; a user key may not administer
    assert api.post("/v1/identity/onboarding", headers={ADMIN: a["tenantAdminApiKey"]}, json={}).status_code == 403
    user_key = api.post("/v1/api-keys", headers=gx.bearer(a["tenantAdminApiKey"]), json={"role": "user"}).json()
    assert api.post("/v1/identity/principals", headers={ADMIN: user_key["api_key"]}, json={}).status_code == 403
    # tenant admin of A cannot administer B: another X-Tenant-ID is refused, B's principals are not found
    b_principal = _principal(api, b)
    assert api.post("/v1/identity/principals", json={}, headers={
        ADMIN: a["tenantAdminApiKey"], "X-Tenant-ID": b["platformTenantId"]}).status_code == 403
    for method, path, body in (("POST", f"/v1/identity/principals/{b_principal}/revoke", None),
                               ("PUT", f"/v1/identity/principals/{b_principal}", {"lifecycleState": "suspended"}),
                               ("POST", "/v1/identity/tokens/issue", {"principalId": b_principal})):
        reply = api.request(method, path, json=body, headers={ADMIN: a["tenantAdminApiKey"]})
        assert reply.status_code == 404, (path, reply.text)
    assert api.post("/v1/identity/principals", json={"tenantDomainId": b["platformTenantId"]},
                    headers={ADMIN: a["tenantAdminApiKey"]}).status_code == 403
    # B's principal is untouched and still gets tokens from B's admin
    _token(api, b, b_principal)


def test_rotation_of_the_tenant_admin_key_and_revocation_of_a_principal(api, platform_admin, gx):
    a = _onboard(api, platform_admin)
    old = a["tenantAdminApiKey"]
    rotated = api.post("/v1/identity/tenant-admin-credentials/rotate", headers={ADMIN: old})
    assert rotated.status_code == 201, rotated.text
    new = rotated.json()["tenantAdminApiKey"]
    assert api.post("/v1/identity/principals", headers={ADMIN: old}, json={}).status_code == 401
    a["tenantAdminApiKey"] = new
    principal = _principal(api, a, "worker")
    token = _token(api, a, principal)
    assert jwt.decode(token, options={"verify_signature": False})["role"] == "agent"
    revoked = api.post(f"/v1/identity/principals/{principal}/revoke", headers={ADMIN: new})
    assert revoked.status_code == 200 and revoked.json()["lifecycleState"] == "revoked"
    # no new token; the issued one is refused by the identity service at once and by an uncached authorizer
    assert api.post("/v1/identity/tokens/issue", headers={ADMIN: new},
                    json={"principalId": principal}).status_code == 409
    with gx.make_client(api.gateway.invoker, ttl=0) as uncached:
        assert uncached.get("/v1/goals", headers=gx.bearer(token)).status_code == 403
    # a revoked principal stays revoked
    assert api.put(f"/v1/identity/principals/{principal}", headers={ADMIN: new},
                   json={"lifecycleState": "active"}).status_code == 409


def test_api_key_exchange(api, platform_admin, gx):
    a = _onboard(api, platform_admin)
    dev = api.post("/v1/api-keys", headers=gx.bearer(a["tenantAdminApiKey"]),
                   json={"role": "developer", "service_user_id": "dev-1"}).json()
    reply = api.post("/v1/identity/tokens/exchange", headers=gx.bearer(dev["api_key"]))
    assert reply.status_code == 200, reply.text
    token = reply.json()["token"]
    claims = jwt.decode(token, options={"verify_signature": False})
    assert (claims["role"], claims["service_user_id"], claims["principal_id"]) == (
        "developer", "dev-1", dev["principal_id"])
    assert api.get("/v1/goals", headers=gx.bearer(token)).status_code == 200
    # only an API key is exchanged, and a wrong one is 401
    assert api.post("/v1/identity/tokens/exchange", headers=gx.bearer(token)).status_code == 400
    assert api.post("/v1/identity/tokens/exchange", headers=gx.bearer("sk_0123456789abcdef_x")).status_code == 401


def test_signing_key_rotation_without_downtime(api, platform_admin, gx):
    a = _onboard(api, platform_admin)
    principal = _principal(api, a)
    before = _token(api, a, principal)
    old_kid = jwt.get_unverified_header(before)["kid"]
    # only a platform admin rotates
    assert api.post("/v1/identity/signing-keys/rotate", headers={ADMIN: a["tenantAdminApiKey"]},
                    json={"leadSeconds": 0}).status_code == 403
    # a rotation with a lead: the new key is published at once but the old one still signs
    ahead = api.post("/v1/identity/signing-keys/rotate", headers={ADMIN: platform_admin}, json={"leadSeconds": 600})
    assert ahead.status_code == 201, ahead.text
    assert ahead.json()["kid"] in {k["kid"] for k in _jwks(api)["keys"]}
    assert jwt.get_unverified_header(_token(api, a, principal))["kid"] == old_kid
    # a rotation now: new tokens carry the new kid; the old kid stays published and its tokens keep working
    now = api.post("/v1/identity/signing-keys/rotate", headers={ADMIN: platform_admin}, json={"leadSeconds": 0})
    assert now.status_code == 201
    time.sleep(0.01)
    after = _token(api, a, principal)
    new_kid = jwt.get_unverified_header(after)["kid"]
    assert new_kid == now.json()["kid"] != old_kid
    published = {k["kid"] for k in _jwks(api)["keys"]}
    assert {old_kid, new_kid} <= published and ahead.json()["kid"] in published
    with gx.make_client(api.gateway.invoker, ttl=0) as uncached:
        assert uncached.get("/v1/goals", headers=gx.bearer(before)).status_code == 200
        assert uncached.get("/v1/goals", headers=gx.bearer(after)).status_code == 200


def test_delegated_issuer_and_claim_mapping(api, platform_admin, gx):
    from cryptography.hazmat.primitives.asymmetric import rsa
    from jwt.algorithms import RSAAlgorithm

    a = _onboard(api, platform_admin)
    admin = {ADMIN: a["tenantAdminApiKey"]}
    principal = _principal(api, a)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = {**__import__("json").loads(RSAAlgorithm.to_jwk(key.public_key())), "kid": "idp-1"}
    created = api.post("/v1/identity/delegated-issuers", headers=admin, json={
        "issuerId": "https://idp.example", "jwkSetRefOrMaterial": {"keys": [public]},
        "audiencePolicyRef": "soorma-app", "claimMappingPolicyRef": {"principal_claim": "sub"}})
    assert created.status_code == 201, created.text
    issuer_id = created.json()["delegatedIssuerId"]
    now = int(time.time())
    good = jwt.encode({"iss": "https://idp.example", "aud": "soorma-app", "sub": principal, "exp": now + 60}, key,
                      algorithm="RS256", headers={"kid": "idp-1"})
    evaluated = api.post("/v1/identity/mappings/evaluate", headers=admin,
                         json={"delegatedIssuerId": issuer_id, "token": good}).json()
    assert evaluated == {"decision": "allow", "reasonCode": "MAPPED", "principalId": principal, "role": "user"}
    wrong_aud = jwt.encode({"iss": "https://idp.example", "aud": "other", "sub": principal, "exp": now + 60}, key,
                           algorithm="RS256", headers={"kid": "idp-1"})
    assert api.post("/v1/identity/mappings/evaluate", headers=admin, json={
        "delegatedIssuerId": issuer_id, "token": wrong_aud}).json()["reasonCode"] == "AUDIENCE_MISMATCH"
    assert api.post("/v1/identity/mappings/evaluate", headers=admin, json={
        "delegatedIssuerId": issuer_id, "token": good[:-4] + "AAAA"}).json()["decision"] == "deny"
    # a private key is refused as issuer material; another tenant does not see the issuer
    private = {**__import__("json").loads(RSAAlgorithm.to_jwk(key)), "kid": "x"}
    assert api.post("/v1/identity/delegated-issuers", headers=admin, json={
        "issuerId": "https://bad.example", "jwkSetRefOrMaterial": {"keys": [private]}}).status_code == 422
    b = _onboard(api, platform_admin)
    assert api.put(f"/v1/identity/delegated-issuers/{issuer_id}", headers={ADMIN: b["tenantAdminApiKey"]},
                   json={"issuerId": "https://idp.example"}).status_code == 404
    delegated = api.post("/v1/identity/tokens/issue", headers=admin, json={
        "principalId": principal, "issuanceType": "delegated", "delegatedIssuerId": issuer_id})
    assert delegated.status_code == 200
    assert jwt.decode(delegated.json()["token"], options={"verify_signature": False})["issuance_type"] == "delegated"


def test_discovery_documents_are_public(api):
    config = api.get("/v1/identity/.well-known/openid-configuration")
    assert config.status_code == 200
    body = config.json()
    assert body["jwks_uri"].endswith("/v1/identity/.well-known/jwks.json") and body["issuer"]
    assert body["id_token_signing_alg_values_supported"] == ["ES256"]
    keys = _jwks(api)["keys"]
    assert keys and all("d" not in k and k["kty"] == "EC" for k in keys)


@pytest.mark.parametrize("body", [{"principalId": "../../x"}, {"principalId": "a" * 100}, {}])
def test_bad_input_is_a_4xx(api, platform_admin, body):
    a = _onboard(api, platform_admin)
    reply = api.post("/v1/identity/tokens/issue", headers={ADMIN: a["tenantAdminApiKey"]}, json=body)
    assert 400 <= reply.status_code < 500


async def test_the_sdk_identity_client_and_token_providers(api, platform_admin, gx, monkeypatch, tmp_path):
    """soorma-core's client calls, the soorma way: ``IdentityServiceClient`` with the superuser key from
    ``IDENTITY_SUPERUSER_API_KEY``, then the tenant admin key it got; the token providers refresh and work."""
    import httpx

    from soorma import IdentityClient
    from soorma.auth import ApiKeyTokenProvider, IdentityTokenProvider, resolve_auth_token
    from soorma.identity.client import IdentityCredentialMissing, IdentityServiceClient
    from soorma.identity.models import OnboardingRequest, PrincipalRequest, TokenIssueRequest

    transport = httpx.ASGITransport(app=api.asgi_app)
    monkeypatch.setenv("SOORMA_HOME", str(tmp_path))  # no local stack credentials to fall back on
    monkeypatch.delenv("IDENTITY_TENANT_ADMIN_API_KEY", raising=False)
    monkeypatch.setenv("IDENTITY_ADMIN_API_KEY", platform_admin)  # soorma-core's alias
    monkeypatch.setenv("SOORMA_IDENTITY_URL", "http://api.local")
    async with IdentityServiceClient(transport=transport) as client:
        onboarded = await client.onboard_tenant(OnboardingRequest(bootstrap_admin_external_ref="sdk"), "st", "su")
        principal = await client.create_principal(PrincipalRequest(principal_type="planner"))
        assert principal.role == "agent" and principal.tenant_domain_id == onboarded.platform_tenant_id
        issued = await client.issue_token(TokenIssueRequest(principal_id=principal.principal_id))
        assert issued.token_type == "Bearer" and issued.expires_in == 900
        rotated = await client.rotate_tenant_admin_key()
        assert rotated.tenant_admin_api_key != onboarded.tenant_admin_api_key
        revoked = await client.revoke_principal(principal.principal_id)
        assert revoked.lifecycle_state == "revoked"
    with gx.make_client(api.gateway.invoker, ttl=0) as uncached:  # the revoked principal's token is refused
        assert uncached.get("/v1/goals", headers=gx.bearer(issued.token)).status_code == 403
    # a tenant admin call without a tenant admin key fails before any request
    async with IdentityServiceClient(transport=transport) as bare:
        with pytest.raises(IdentityCredentialMissing):
            await bare.create_principal(PrincipalRequest())
    # the wrapper wants a platform tenant for tenant admin calls, as soorma-core's does
    wrapper = IdentityClient(transport=transport, tenant_admin_api_key=rotated.tenant_admin_api_key)
    with pytest.raises(ValueError):
        await wrapper.create_principal(PrincipalRequest())
    user = await wrapper.create_principal(PrincipalRequest(principal_type="user"),
                                          platform_tenant_id=onboarded.platform_tenant_id)
    await wrapper.close()
    # providers: a token per principal (or per API key), cached, renewed on demand
    provider = IdentityTokenProvider(user.principal_id, platform_tenant_id=onboarded.platform_tenant_id,
                                     tenant_admin_api_key=rotated.tenant_admin_api_key, transport=transport)
    first = await resolve_auth_token(None, provider)
    assert first == await provider() and first != await provider.get_token(force_refresh=True)
    assert api.get("/v1/goals", headers=gx.bearer(first)).status_code == 200
    exchanged = await ApiKeyTokenProvider(rotated.tenant_admin_api_key, transport=transport)()
    assert api.get("/v1/goals", headers=gx.bearer(exchanged)).status_code == 200


def test_an_api_key_keeps_a_principal_s_role_and_revocation(api, platform_admin, gx):
    """One identity: an API key naming an identity-service principal neither changes its role nor revives it."""
    a = _onboard(api, platform_admin)
    admin = gx.bearer(a["tenantAdminApiKey"])
    principal = _principal(api, a, "user")
    assert api.post("/v1/api-keys", headers=admin, json={"role": "admin", "principal_id": principal}).status_code == 409
    same = api.post("/v1/api-keys", headers=admin, json={"role": "user", "principal_id": principal})
    assert same.status_code == 201, same.text
    api.post(f"/v1/identity/principals/{principal}/revoke", headers={ADMIN: a["tenantAdminApiKey"]})
    assert api.get("/v1/goals", headers=gx.bearer(same.json()["api_key"])).status_code == 403  # its key was revoked
    assert api.post("/v1/api-keys", headers=admin, json={"role": "user", "principal_id": principal}).status_code == 409


def test_signing_keys_follow_a_pepper_change(gw_db, gx):
    """A key stored under another pepper cannot be read: it is ended and a new one signs; its public half stays
    published for the tokens it signed."""
    from soorma.functions.identity import signing

    class Undo(Exception):
        """Rolls the transaction back: the session's other tests keep their keys."""

    with pytest.raises(Undo):
        with gw_db.transaction() as conn:
            before = signing.current_key(conn, pepper=gx.PEPPER)
            after = signing.current_key(conn, pepper="another-pepper-entirely")
            assert after.kid != before.kid
            assert before.kid in {k["kid"] for k in signing.published_jwks(conn)["keys"]}
            raise Undo


def test_identity_routes_are_rate_limited_like_every_route(api, platform_admin, gx):
    a = _onboard(api, platform_admin)
    limited = api.patch(f"/v1/tenants/{a['platformTenantId']}", headers=gx.bearer(platform_admin),
                        json={"key_rps": 0.01, "key_burst": 1})
    assert limited.status_code == 200, limited.text
    admin = {ADMIN: a["tenantAdminApiKey"]}
    assert api.post("/v1/identity/principals", headers=admin, json={}).status_code == 201
    refused = api.post("/v1/identity/principals", headers=admin, json={})
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
