"""Fixtures of the issue-12 ("Trust") tests that run the real platform functions in-process: the memory function
behind Mangum on the session's real PostgreSQL, reached by SDK clients through an httpx transport that plays API
Gateway (tests/integration/memory/conftest.py's helpers, loaded by path: the suite runs with
``--import-mode=importlib``). Tests that need the whole local stack start it themselves."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

_TESTS = Path(__file__).resolve().parents[1]


def load_helpers(relative: str, name: str):
    """Import ``tests/<relative>`` as module ``name`` (helpers shared with another test folder)."""
    spec = importlib.util.spec_from_file_location(name, _TESTS / relative)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def memory_helpers():
    return load_helpers("integration/memory/conftest.py", "soorma_memory_test_helpers")


@pytest.fixture(scope="session")
def memory_api(app_dsn, memory_helpers):
    """The real memory function (``soorma.functions.memory.app``) behind Mangum, on the session's PostgreSQL."""
    from mangum import Mangum

    from soorma.db import Database
    from soorma.functions.memory.app import create_app

    db = Database(app_dsn)
    yield memory_helpers.MemoryApi(Mangum(create_app(db=db), lifespan="off"))
    db.close()


# The gateway tests' fixtures (the real gateway, registry, memory and tracker apps behind the local API Gateway and the
# real authorizer, on the session's PostgreSQL and NATS), re-exported so the finding tests use the same ones.
_gateway = load_helpers("integration/gateway/conftest.py", "soorma_gateway_test_helpers")
gw_env, gw_db, gw_publisher, apps, invoker = (_gateway.gw_env, _gateway.gw_db, _gateway.gw_publisher, _gateway.apps,
                                              _gateway.invoker)
api, owner_conn, platform_admin, gx = _gateway.api, _gateway.owner_conn, _gateway.platform_admin, _gateway.gx
