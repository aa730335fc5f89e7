"""Shared fixtures: the real embedded PostgreSQL (pgvector) and NATS JetStream servers, started once per session.

Integration tests use these, never mocks of our own services (README "Tests").
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from soorma.testing import free_port

# aws-cdk-lib's jsii runtime prints a banner about untested Node.js versions on every start; the CDK tests pin the
# CLI and check the synthesized templates, so the banner is noise in the test output.
os.environ.setdefault("JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION", "1")


@pytest.fixture(scope="session")
def postgres(tmp_path_factory) -> str:
    """Owner DSN of a fresh embedded PostgreSQL with every migration applied."""
    # pgserver needs a short path for its Unix socket (108-byte limit), so not pytest's long tmp path.
    import tempfile

    from soorma.functions.migrate import apply
    from soorma.local.postgres import EmbeddedPostgres

    data = Path(tempfile.mkdtemp(prefix="soorma-pg-")) / "pg"
    server = EmbeddedPostgres(data, cleanup="delete")
    dsn = server.start()
    apply(dsn)
    yield dsn
    server.stop()


@pytest.fixture(scope="session")
def app_dsn(postgres) -> str:
    """DSN of role ``soorma_app`` (non-superuser; RLS applies) on the migrated database."""
    from soorma.local.postgres import app_dsn as derive

    return derive(postgres)


@pytest.fixture(scope="session")
def nats_url(tmp_path_factory) -> str:
    """URL of a fresh embedded nats-server with JetStream."""
    from soorma.local.nats import EmbeddedNats

    server = EmbeddedNats(tmp_path_factory.mktemp("nats"), port=free_port())
    url = server.start()
    yield url
    server.stop()


@pytest.fixture
def app_env(monkeypatch, app_dsn, nats_url):
    """Environment of a platform function execution environment pointed at the test servers."""
    monkeypatch.setenv("SOORMA_APP_DATABASE_URL", app_dsn)
    monkeypatch.setenv("SOORMA_NATS_URL", nats_url)
    monkeypatch.setenv("SOORMA_API_KEY_PEPPER", "test-pepper")
    return os.environ


#: What soorma-core's example token provider (examples/shared/auth.py, run in this process by tests that import an
#: example's client) exports into the process environment, as soorma-core's does; left there it would become every
#: later test's credential (the SDK and the CLI read SOORMA_AUTH_TOKEN), and a stale token a 401/403 far away.
_EXPORTED_BY_EXAMPLES = ("SOORMA_AUTH_TOKEN", "SOORMA_PLATFORM_TENANT_ID")


@pytest.fixture(autouse=True)
def _no_exported_example_credentials():
    """Restore the variables :data:`_EXPORTED_BY_EXAMPLES` after each test."""
    import os

    before = {name: os.environ.get(name) for name in _EXPORTED_BY_EXAMPLES}
    yield
    for name, value in before.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value

