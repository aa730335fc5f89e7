"""The examples' token provider: soorma-core's ``examples/shared/auth.py`` logic on this platform's identity service
(``soorma.identity.client.IdentityServiceClient``), so a client script holds a 15-minute token instead of an API key.

What :class:`ExampleTokenProvider` does, as soorma-core's does:

1. **Bootstrap once per example** and keep it in ``<SOORMA_HOME or ./.soorma>/<example>-identity.json`` (mode 0600:
   it may hold a tenant admin key): its platform tenant, tenant domain and principal.

   * Where a tenant admin key is at hand (``IDENTITY_TENANT_ADMIN_API_KEY``, or the local stack's
     ``tenant_admin_api_key`` of its ``local`` tenant, the tenant ``soorma local deploy`` deploys the agents to), the
     provider creates a principal of type ``service`` in that tenant, so the script reaches the deployed agents.
   * Otherwise it onboards a new tenant with the superuser key (``IDENTITY_SUPERUSER_API_KEY`` /
     ``IDENTITY_ADMIN_API_KEY``), exactly soorma-core's flow, and keeps the tenant admin key it gets in the file.
     Tenants are isolated here: agents must then be deployed for that tenant.

2. **Issue and refresh tokens**: :meth:`get_token` returns the cached token until 30 s before it expires, then issues
   a new one; a bootstrap the platform no longer knows (a new local stack) is made again once.
3. **Export** ``SOORMA_AUTH_TOKEN`` and ``SOORMA_PLATFORM_TENANT_ID`` for subprocesses (soorma-core's names).

Use::

    from shared.auth import build_example_token_provider   # examples/ on sys.path
    provider = build_example_token_provider("hello-world", __file__)
    client = EventClient(agent_id="hello-client", auth_token_provider=provider)

Run ``python examples/shared/auth.py <example-name> <example-path>`` to prime the bootstrap and print the tenant.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from soorma.identity.client import IdentityServiceClient, tenant_admin_api_key
from soorma.identity.models import OnboardingRequest, PrincipalRequest, TokenIssuanceType, TokenIssueRequest

#: soorma-core's refresh window: a token is replaced this many seconds before it expires.
TOKEN_REFRESH_WINDOW_SECONDS = 30
_REQUIRED = ("platform_tenant_id", "bootstrap_admin_principal_id", "tenant_domain_id")


def bootstrap_filename(example_name: str) -> str:
    """``<example>-identity.json``."""
    return f"{example_name}-identity.json"


def _soorma_dir(start_path: Path) -> Path:
    """``SOORMA_HOME`` (the local stack's folder), else ``.soorma`` next to the ``examples`` folder above
    ``start_path``, else ``./.soorma``."""
    home = os.environ.get("SOORMA_HOME")
    if home:
        return Path(home)
    for folder in (start_path, *start_path.parents):
        if (folder / "examples").is_dir():
            return folder / ".soorma"
    return Path(".soorma").resolve()


def bootstrap_file_path(example_name: str, start_path: Path | str) -> Path:
    """Where the example's bootstrap is kept."""
    return _soorma_dir(Path(start_path).resolve()) / bootstrap_filename(example_name)


def load_bootstrap_payload(example_name: str, start_path: Path | str) -> dict[str, Any] | None:
    """The kept bootstrap, or None when there is none or it is unreadable."""
    try:
        payload = json.loads(bootstrap_file_path(example_name, start_path).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(payload, dict) or not all(payload.get(k) for k in _REQUIRED):
        return None
    return payload


def persist_bootstrap_payload(example_name: str, start_path: Path | str, payload: dict[str, Any]) -> Path:
    """Write the bootstrap readable by its owner only (created 0600, never world-readable even for a moment)."""
    path = bootstrap_file_path(example_name, start_path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # an existing file keeps its mode on open: set it
    with os.fdopen(fd, "w") as handle:
        handle.write(json.dumps(payload, sort_keys=True, indent=2) + "\n")
    return path


class ExampleTokenProvider:
    """A token provider (``soorma.auth.AuthTokenProvider``: awaitable call → token) for one example."""

    def __init__(self, example_name: str, start_path: Path | str) -> None:
        self.example_name = example_name
        self.start_path = Path(start_path).resolve()
        self._token: str | None = None
        self._expires_at = 0.0
        self._bootstrap: dict[str, Any] | None = None

    async def __call__(self) -> str:
        return await self.get_token()

    async def get_token(self, force_refresh: bool = False) -> str:
        """A token valid for at least 30 more seconds (bootstrapping first when needed)."""
        if not force_refresh and self._token and time.time() < self._expires_at - TOKEN_REFRESH_WINDOW_SECONDS:
            return self._token
        bootstrap = await self._ensure_bootstrap()
        try:
            answer = await self._issue(bootstrap)
        except httpx.HTTPStatusError as exc:
            if exc.response.status_code not in (401, 404, 409):
                raise
            # The platform no longer knows this bootstrap (a new local stack): make it again, once.
            self._bootstrap = None
            bootstrap_file_path(self.example_name, self.start_path).unlink(missing_ok=True)
            bootstrap = await self._ensure_bootstrap()
            answer = await self._issue(bootstrap)
        self._token = answer.token
        self._expires_at = time.time() + float(answer.expires_in or 900)
        self._export_environment(answer.token)
        return answer.token

    @property
    def platform_tenant_id(self) -> str | None:
        """The example's platform tenant (after the first :meth:`get_token`)."""
        return None if self._bootstrap is None else str(self._bootstrap["platform_tenant_id"])

    async def get_bootstrap_payload(self) -> dict[str, Any]:
        """The kept bootstrap (made first when there is none): soorma-core's accessor."""
        return await self._ensure_bootstrap()

    async def get_platform_tenant_id(self) -> str:
        """The example's platform tenant (soorma-core's accessor, e.g. for ``publish(tenant_id=...)``)."""
        return str((await self._ensure_bootstrap())["platform_tenant_id"])

    async def get_bootstrap_admin_principal_id(self) -> str:
        """The example's principal (soorma-core's accessor, e.g. for ``publish(user_id=...)``)."""
        return str((await self._ensure_bootstrap())["bootstrap_admin_principal_id"])

    async def _issue(self, bootstrap: dict[str, Any]) -> Any:
        async with IdentityServiceClient(tenant_admin_api_key=bootstrap.get("tenant_admin_api_key"),
                                         platform_tenant_id=bootstrap["platform_tenant_id"]) as client:
            return await client.issue_token(TokenIssueRequest(
                principal_id=str(bootstrap["bootstrap_admin_principal_id"]),
                issuance_type=TokenIssuanceType.PLATFORM))

    async def _ensure_bootstrap(self) -> dict[str, Any]:
        if self._bootstrap is not None:
            return self._bootstrap
        payload = load_bootstrap_payload(self.example_name, self.start_path)
        if payload is None:
            payload = await (self._join_tenant() if tenant_admin_api_key() else self._onboard())
            persist_bootstrap_payload(self.example_name, self.start_path, payload)
        self._bootstrap = payload
        return payload

    async def _join_tenant(self) -> dict[str, Any]:
        """A ``service`` principal in the tenant of the configured tenant admin key."""
        async with IdentityServiceClient() as client:
            principal = await client.create_principal(PrincipalRequest(
                principal_type="service", external_ref=f"{self.example_name}-client"))
        return {"platform_tenant_id": principal.tenant_domain_id, "tenant_domain_id": principal.tenant_domain_id,
                "bootstrap_admin_principal_id": principal.principal_id}

    async def _onboard(self) -> dict[str, Any]:
        """soorma-core's flow: a new tenant onboarded with the superuser key (its tenant admin key is kept)."""
        async with IdentityServiceClient() as client:
            answer = await client.onboard_tenant(OnboardingRequest(
                bootstrap_admin_external_ref=f"{self.example_name}-bootstrap-admin"))
        return answer.model_dump()

    def _export_environment(self, token: str) -> None:
        if self._bootstrap is None:
            return
        os.environ["SOORMA_AUTH_TOKEN"] = token
        os.environ["SOORMA_PLATFORM_TENANT_ID"] = str(self._bootstrap["platform_tenant_id"])


def build_example_token_provider(example_name: str, start_path: Path | str) -> ExampleTokenProvider:
    """soorma-core's factory."""
    return ExampleTokenProvider(example_name=example_name, start_path=start_path)


async def ensure_example_auth_token(example_name: str, start_path: Path | str) -> str:
    """Bootstrap and issue a token now (soorma-core's helper)."""
    return await build_example_token_provider(example_name, start_path).get_token()


async def _main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: python examples/shared/auth.py <example-name> <example-path>", file=sys.stderr)
        return 2
    provider = build_example_token_provider(argv[1], argv[2])
    await provider.get_token()
    print(json.dumps({"platform_tenant_id": provider.platform_tenant_id,
                      "bootstrap": str(bootstrap_file_path(argv[1], argv[2]))}))
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(_main(sys.argv)))
