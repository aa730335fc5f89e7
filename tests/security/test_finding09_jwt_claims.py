"""Issue 12, finding 9 — tenant and role from IdP-writable claims.

Cognito's ``custom:``-prefixed attributes are writable by the user themselves by default, and the authorizer read
``custom:tenant_id`` / ``custom:role`` (and the rest) for the identity: a user could name their own platform tenant
and make themselves ``admin``. And the audience was checked only when configured, so a token the same issuer signed
for any other application was accepted.

Performed at the real authorizer (the cloud path) on the real database, with tokens signed by the configured issuer
key: ``custom:`` claims never give a tenant or a role, a token without the configured audience (or for another one)
is refused, and enabling JWTs without an audience is a configuration error, not a silent skip; a token whose tenant
and role come from issuer-set claims (or ``cognito:groups``) still works.
"""

from __future__ import annotations

import time

import jwt
import pytest

from soorma.functions.gateway import authorizer
from soorma.functions.gateway.tokens import JwtConfigError, JwtSettings
from soorma.testing import authorizer_event, http_api_event


def decide(sec_db, token: str) -> dict:
    """The real authorizer's answer (settings from the environment: HS256 secret and audience)."""
    event = authorizer_event(http_api_event("GET", "/v1/goals", headers={"authorization": f"Bearer {token}"}))
    return authorizer.authorize(event, sec_db)


def token(sx, **claims) -> str:
    base = {"sub": "mallory", "aud": sx.JWT_AUDIENCE, "exp": int(time.time()) + 300}
    return jwt.encode({**base, **claims}, sx.JWT_SECRET, algorithm="HS256")


def test_custom_claims_never_give_a_tenant_or_a_role(api, platform_admin, sx, sec_db):
    victim = sx.onboard(api, platform_admin, users=("victim",))
    own = sx.onboard(api, platform_admin, users=("mallory",))

    # a user who wrote the victim's tenant into their own custom attributes: no tenant at all
    for claims in ({"custom:tenant_id": victim.id}, {"custom:platform_tenant_id": victim.id, "custom:role": "admin"}):
        assert decide(sec_db, token(sx, **claims)) == {"isAuthorized": False}, claims
    # with an issuer-set tenant, custom: claims change neither the tenant nor the role nor the user
    answer = decide(sec_db, token(sx, platform_tenant_id=own.id, **{
        "custom:tenant_id": victim.id, "custom:platform_tenant_id": victim.id, "custom:role": "admin",
        "custom:roles": "admin", "custom:principal_type": "service", "custom:service_user_id": "victim",
        "custom:service_tenant_id": victim.service_tenant}))
    assert answer["isAuthorized"] is True
    context = answer["context"]
    assert context["platform_tenant_id"] == own.id and context["role"] == "user"  # the default role
    assert (context["service_tenant_id"], context["service_user_id"]) == (own.id, "mallory")
    # and it is worth nothing more at the API: an admin route is refused
    with_custom_admin = token(sx, platform_tenant_id=own.id, **{"custom:role": "admin"})
    assert api.post("/v1/api-keys", headers=sx.bearer(with_custom_admin), json={"role": "admin"}).status_code == 403

    # legitimate: tenant and role from issuer-set claims (a pre-token-generation trigger) or cognito:groups
    for claims, role in (({"tenant_id": own.id, "role": "admin"}, "admin"),
                         ({"platform_tenant_id": own.id, "cognito:groups": ["developer"]}, "developer")):
        answer = decide(sec_db, token(sx, **claims))
        assert answer["isAuthorized"] is True and answer["context"]["role"] == role, claims
        assert answer["context"]["platform_tenant_id"] == own.id
    admin = token(sx, tenant_id=own.id, role="admin")
    assert api.get("/v1/goals", headers=sx.bearer(admin)).status_code == 200


def test_the_audience_is_required(api, platform_admin, sx, sec_db, monkeypatch):
    own = sx.onboard(api, platform_admin, users=("mallory",))
    # tokens the issuer signed for another application, or for none, are refused
    assert decide(sec_db, token(sx, tenant_id=own.id, aud="another-app-client")) == {"isAuthorized": False}
    no_aud = jwt.encode({"sub": "mallory", "tenant_id": own.id, "exp": int(time.time()) + 300}, sx.JWT_SECRET,
                        algorithm="HS256")
    assert decide(sec_db, no_aud) == {"isAuthorized": False}
    assert decide(sec_db, token(sx, tenant_id=own.id))["isAuthorized"] is True  # the configured audience

    # JWTs enabled without an audience: a clear configuration error (API Gateway answers 500), never a skip
    with pytest.raises(JwtConfigError, match="SOORMA_JWT_AUDIENCE"):
        JwtSettings(secret=sx.JWT_SECRET)
    with pytest.raises(JwtConfigError, match="SOORMA_JWT_AUDIENCE"):
        JwtSettings(jwks_url="https://issuer.example/.well-known/jwks.json")
    monkeypatch.delenv("SOORMA_JWT_AUDIENCE")
    with pytest.raises(JwtConfigError, match="SOORMA_JWT_AUDIENCE"):
        decide(sec_db, no_aud)
    # API keys are not affected by the JWT configuration
    assert api.get("/v1/goals", headers=sx.bearer(own.keys["mallory"])).status_code == 200
    # and with JWTs off no audience is needed
    assert JwtSettings().enabled is False
