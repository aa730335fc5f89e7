"""The identity service on the local stack (``soorma local up``), as a soorma-core user meets it: the SDK's
``IdentityServiceClient()`` with no base URL (``SOORMA_API_URL``) and the superuser key, onboarding → principal →
token → the goals API; tenant isolation of tokens; refused admin keys; and the hello-world example's client script
running on soorma-core's token provider logic (``examples/shared/auth.py``) against the deployed worker."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
import sys

import httpx
import pytest

from .conftest import EXAMPLES, local_stack, wait

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def stack():
    with local_stack("soorma-e2e-identity-", (EXAMPLES / "hello-world",)) as stack_:
        yield stack_


def _sdk_flow(env: dict[str, str]) -> dict:
    """Onboard two tenants, a principal each, a token each, with the SDK the soorma-core way (in this process, with
    the stack's environment: SOORMA_API_URL and the superuser key)."""
    from soorma.identity.client import IdentityServiceClient
    from soorma.identity.models import OnboardingRequest, PrincipalRequest, TokenIssuanceType, TokenIssueRequest

    async def flow() -> dict:
        out = {}
        for name in ("a", "b"):
            async with IdentityServiceClient() as client:
                onboarded = await client.onboard_tenant(OnboardingRequest(bootstrap_admin_external_ref=name))
                principal = await client.create_principal(PrincipalRequest(principal_type="user"))
                issued = await client.issue_token(TokenIssueRequest(principal_id=principal.principal_id,
                                                                    issuance_type=TokenIssuanceType.PLATFORM))
            out[name] = {"tenant": onboarded.platform_tenant_id, "token": issued.token,
                         "admin": onboarded.tenant_admin_api_key}
        return out

    saved = dict(os.environ)
    os.environ.update(env)
    try:
        return asyncio.run(flow())
    finally:
        os.environ.clear()
        os.environ.update(saved)


def test_onboarding_principal_token_and_the_goals_api(stack):
    creds = stack["credentials"]
    env = {"SOORMA_API_URL": creds["api_url"], "IDENTITY_SUPERUSER_API_KEY": creds["admin_api_key"],
           "SOORMA_HOME": str(stack["home"])}
    tenants = _sdk_flow(env)
    with httpx.Client(base_url=creds["api_url"], timeout=30) as api:
        a = {"Authorization": f"Bearer {tenants['a']['token']}"}
        b = {"Authorization": f"Bearer {tenants['b']['token']}"}
        submitted = api.post("/v1/goals", headers=a, json={"goal_type": "nobody.listens", "data": {}})
        assert submitted.status_code == 202, submitted.text
        goal_id = submitted.json()["goal_id"]
        assert api.get(f"/v1/goals/{goal_id}", headers=a).status_code == 200
        # tenant B's token never reaches tenant A's goal
        assert api.get(f"/v1/goals/{goal_id}", headers=b).status_code == 404
        assert api.get(f"/v1/goals/{goal_id}", headers={**b, "X-Tenant-ID": tenants["a"]["tenant"]}).status_code == 404
        # the admin credential: any value, a wrong key, or another tenant's admin key are refused
        for value in ("anything", "dev-identity-admin"):
            assert api.post("/v1/identity/onboarding", headers={"X-Identity-Admin-Key": value}).status_code == 401
        assert api.post("/v1/identity/onboarding",
                        headers={"X-Identity-Admin-Key": tenants["a"]["admin"]}).status_code == 403
        assert api.post("/v1/identity/principals", json={}, headers={
            "X-Identity-Admin-Key": tenants["a"]["admin"], "X-Tenant-ID": tenants["b"]["tenant"]}).status_code == 403
        # the published keys verify the token (what another service holding only the JWKS would do)
        import jwt

        jwks = api.get("/v1/identity/.well-known/jwks.json").json()
        kid = jwt.get_unverified_header(tenants["a"]["token"])["kid"]
        key = jwt.PyJWK(next(k for k in jwks["keys"] if k["kid"] == kid)).key
        claims = jwt.decode(tenants["a"]["token"], key, algorithms=["ES256"], audience="soorma-services")
        assert claims["platform_tenant_id"] == tenants["a"]["tenant"]


def test_the_hello_world_client_runs_on_the_example_token_provider(stack):
    env = {**stack["env"]}
    env.pop("SOORMA_API_KEY", None)  # no API key: the script's only credential is the provider's token
    result = subprocess.run([sys.executable, str(EXAMPLES / "hello-world" / "client.py"), "Hopper"], env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {"message": "Hello, Hopper!",
                                                                   "greeted_by": "hello-worker"}
    bootstrap = stack["home"] / "hello-world-identity.json"
    assert stat.S_IMODE(bootstrap.stat().st_mode) == 0o600
    kept = json.loads(bootstrap.read_text())
    assert kept["platform_tenant_id"] == stack["credentials"]["platform_tenant_id"]
    assert kept["bootstrap_admin_principal_id"].startswith("pr_")
    # a second run reuses the kept principal
    again = subprocess.run([sys.executable, str(EXAMPLES / "hello-world" / "client.py"), "Lovelace"], env=env,
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stdout + again.stderr
    assert json.loads(bootstrap.read_text())["bootstrap_admin_principal_id"] == kept["bootstrap_admin_principal_id"]


def test_a_platform_token_drives_the_deployed_worker_through_goals(stack):
    """A token exchanged for the stack's developer key submits a goal that the deployed hello-world worker answers."""
    creds = stack["credentials"]
    with httpx.Client(base_url=creds["api_url"], timeout=30) as api:
        exchanged = api.post("/v1/identity/tokens/exchange", headers={"Authorization": f"Bearer {creds['api_key']}"})
        assert exchanged.status_code == 200, exchanged.text
        token = {"Authorization": f"Bearer {exchanged.json()['token']}"}
        goal = api.post("/v1/goals", headers=token, json={"goal_type": "greeting.requested", "data": {"name": "Ada"}})
        assert goal.status_code == 202, goal.text
        api.headers.update(token)
        done = wait(api, goal.json()["goal_id"])[goal.json()["goal_id"]]
    assert done["status"] == "completed" and done["result"]["message"] == "Hello, Ada!"
