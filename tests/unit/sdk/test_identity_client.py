"""soorma-core's identity client conventions, checked on the wire (httpx.MockTransport): which key goes in
``X-Identity-Admin-Key`` for which call, where the keys, the base URL and the platform tenant come from, and that no
built-in default key is ever sent (soorma-core's was ``dev-identity-admin``)."""

from __future__ import annotations

import json

import httpx
import pytest

from soorma.identity.client import IdentityClient, IdentityCredentialMissing, IdentityServiceClient
from soorma.identity.models import OnboardingRequest, PrincipalRequest, TokenIssuanceType, TokenIssueRequest

ONBOARDED = {"tenantDomainId": "pt_a", "platformTenantId": "pt_a", "bootstrapAdminPrincipalId": "pr_a",
             "tenantAdminApiKey": "sk_tenantadmin_secret", "status": "active"}


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    for name in ("IDENTITY_SUPERUSER_API_KEY", "IDENTITY_ADMIN_API_KEY", "IDENTITY_TENANT_ADMIN_API_KEY",
                 "SOORMA_PLATFORM_TENANT_ID", "SOORMA_IDENTITY_URL", "SOORMA_API_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SOORMA_HOME", str(tmp_path))
    return monkeypatch


def recorder():
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path.endswith("/onboarding"):
            return httpx.Response(201, json=ONBOARDED)
        if request.url.path.endswith("/tokens/issue"):
            return httpx.Response(200, json={"token": "a.b.c", "tokenType": "Bearer", "expiresIn": 900})
        return httpx.Response(201, json={"principalId": "pr_x", "tenantDomainId": "pt_a", "lifecycleState": "active"})

    return seen, httpx.MockTransport(answer)


async def test_superuser_then_tenant_admin_key_and_the_base_url_from_the_environment(clean_env):
    clean_env.setenv("SOORMA_API_URL", "http://platform.test")
    clean_env.setenv("IDENTITY_ADMIN_API_KEY", "sk_alias_key")  # soorma-core's alias
    clean_env.setenv("SOORMA_PLATFORM_TENANT_ID", "pt_env")
    seen, transport = recorder()
    async with IdentityServiceClient(transport=transport) as client:
        await client.onboard_tenant(OnboardingRequest(bootstrap_admin_external_ref="x"), "st", "su")
        await client.create_principal(PrincipalRequest(principal_type="service"), "st", "su")
        await client.issue_token(TokenIssueRequest(principal_id="pr_x", issuance_type=TokenIssuanceType.PLATFORM))
    onboard, principal, token = seen
    assert str(onboard.url) == "http://platform.test/v1/identity/onboarding"
    assert onboard.headers["x-identity-admin-key"] == "sk_alias_key" and "x-tenant-id" not in onboard.headers
    assert json.loads(onboard.content) == {"bootstrapAdminExternalRef": "x"}
    # after onboarding: its tenant admin key and tenant, never the superuser key
    for request in (principal, token):
        assert request.headers["x-identity-admin-key"] == "sk_tenantadmin_secret"
        assert request.headers["x-tenant-id"] == "pt_a"
    assert json.loads(token.content) == {"principalId": "pr_x", "issuanceType": "platform"}


async def test_superuser_key_takes_precedence_and_no_key_means_no_request(clean_env):
    clean_env.setenv("IDENTITY_SUPERUSER_API_KEY", "sk_super_key")
    clean_env.setenv("IDENTITY_ADMIN_API_KEY", "sk_alias_key")
    seen, transport = recorder()
    async with IdentityServiceClient("http://x.test", transport=transport) as client:
        await client.onboard_tenant(OnboardingRequest())
    assert seen[0].headers["x-identity-admin-key"] == "sk_super_key"
    clean_env.delenv("IDENTITY_SUPERUSER_API_KEY")
    clean_env.delenv("IDENTITY_ADMIN_API_KEY")
    async with IdentityServiceClient("http://x.test", transport=transport) as client:
        with pytest.raises(IdentityCredentialMissing):
            await client.onboard_tenant(OnboardingRequest())
        with pytest.raises(IdentityCredentialMissing):
            await client.create_principal(PrincipalRequest())
    assert len(seen) == 1


async def test_the_local_stack_credentials_are_the_fallback(clean_env, tmp_path):
    (tmp_path / "credentials.json").write_text(json.dumps({
        "api_url": "http://local.test:8787", "admin_api_key": "sk_local_admin", "tenant_admin_api_key": "sk_local_ta"}))
    seen, transport = recorder()
    async with IdentityServiceClient(transport=transport) as client:
        assert client.base_url == "http://local.test:8787"
        await client.create_principal(PrincipalRequest())
    assert seen[0].headers["x-identity-admin-key"] == "sk_local_ta"


async def test_the_wrapper_needs_a_platform_tenant_and_uses_the_bound_event(clean_env):
    seen, transport = recorder()
    wrapper = IdentityClient("http://x.test", transport=transport, tenant_admin_api_key="sk_ta_key")
    with pytest.raises(ValueError):
        await wrapper.create_principal(PrincipalRequest())

    class Event:
        platform_tenant_id = "pt_event"

    token = wrapper.bind_event_metadata(Event())
    await wrapper.create_principal(PrincipalRequest())
    wrapper.reset_event_metadata(token)
    await wrapper.close()
    assert seen[0].headers["x-tenant-id"] == "pt_event"


async def test_platform_context_identity_is_the_identity_client(clean_env):
    """soorma-core's ``context.identity``: the wrapper, on the context's base URL (``SOORMA_IDENTITY_URL`` wins),
    building no connection until used."""
    from soorma import PlatformContext

    clean_env.setenv("SOORMA_API_URL", "http://platform.test")
    context = PlatformContext()
    assert isinstance(context.identity, IdentityClient) and context.identity.base_url == "http://platform.test"
    clean_env.setenv("SOORMA_IDENTITY_URL", "http://identity.test")
    assert PlatformContext().identity.base_url == "http://identity.test"
    await context.close()
