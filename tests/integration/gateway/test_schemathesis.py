"""Schemathesis against the OpenAPI documents of the gateway, registry and memory functions, on a local stack this
module starts (``soorma local up`` with a temporary SOORMA_HOME and free ports), through the local API Gateway.

Bounded: every operation gets a few positive and a few negative (schema-violating) generated requests
(``SOORMA_FUZZ_EXAMPLES``, default 5 each), derandomized, and each document has a time budget
(``SOORMA_FUZZ_BUDGET_S``, default 150 s). Checks: no 5xx, every status code and content type documented, every
response body valid against its documented schema.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from soorma.testing import free_port

pytestmark = [pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[3]
SOORMA = str(Path(sys.executable).with_name("soorma"))
EXAMPLES = int(os.environ.get("SOORMA_FUZZ_EXAMPLES", "5"))
BUDGET_S = float(os.environ.get("SOORMA_FUZZ_BUDGET_S", "150"))


@pytest.fixture(scope="module")
def stack():
    home = Path(tempfile.mkdtemp(prefix="soorma-fuzz-")) / "s"
    env = {**os.environ, "SOORMA_HOME": str(home), "SOORMA_LOCAL_PORT": str(free_port()),
           "SOORMA_NATS_PORT": str(free_port())}
    for name in ("SOORMA_API_URL", "SOORMA_API_KEY", "SOORMA_DATABASE_URL", "SOORMA_NATS_URL"):
        env.pop(name, None)

    def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run([SOORMA, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout)

    up = run("local", "up")
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        credentials = json.loads((home / "credentials.json").read_text())
        url, platform = credentials["api_url"], credentials["admin_api_key"]
        with httpx.Client(base_url=url, headers={"authorization": f"Bearer {platform}"}, timeout=30) as admin:
            lifted = {"key_rps": 10000, "key_burst": 10000, "tenant_rps": 10000, "tenant_burst": 10000}
            assert admin.patch("/v1/tenants/local", json=lifted).status_code == 200
            fuzz = admin.post("/v1/tenants", json={"platform_tenant_id": "fuzz", "name": "fuzzing"})
            assert fuzz.status_code == 201, fuzz.text
            assert admin.patch("/v1/tenants/fuzz", json=lifted).status_code == 200
        yield {"url": url, "developer": credentials["api_key"], "tenant_admin": fuzz.json()["admin_api_key"]}
    finally:
        down = run("local", "down", timeout=120)
        print(down.stdout, down.stderr)


#: Operations that would end the run: rotating the tenant admin credential revokes the key the fuzzer holds (the
#: identity service's own tests cover it: tests/integration/gateway/test_identity_service.py).
NOT_FUZZED = {"POST /v1/identity/tenant-admin-credentials/rotate"}


def fuzz(url: str, document: str, key: str) -> tuple[int, list[str]]:
    """Run every operation of ``/openapi/<document>.json``; returns (requests made, failures)."""
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis.errors import Unsatisfiable
    from schemathesis import GenerationMode
    from schemathesis.checks import (
        content_type_conformance,
        not_a_server_error,
        response_schema_conformance,
        status_code_conformance,
    )

    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
    schema = schemathesis.openapi.from_url(f"{url}/openapi/{document}.json")
    headers = {"Authorization": f"Bearer {key}"}
    deadline = time.monotonic() + BUDGET_S
    calls, failures = 0, []
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.label in NOT_FUZZED:
            continue
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            if time.monotonic() > deadline:
                failures.append(f"time budget of {BUDGET_S:.0f} s spent before {operation.label} ({mode.value})")
                return calls, failures

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                      suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])
            def check(case):
                nonlocal calls
                calls += 1
                case.call_and_validate(base_url=url, headers=headers, checks=checks, timeout=30)

            try:
                check()
            except Unsatisfiable:
                pass  # e.g. no negative request exists for an operation without parameters
            except BaseException as exc:  # noqa: BLE001 - Schemathesis reports failures as exception groups
                if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                    raise
                failures.append(f"{operation.label} ({mode.value}):\n{str(exc)[:2000]}")
    return calls, failures


@pytest.mark.parametrize(
    "document,who",
    [("gateway", "developer"), ("gateway", "tenant_admin"), ("registry", "developer"), ("memory", "developer")],
)
def test_schemathesis(stack, document, who):
    calls, failures = fuzz(stack["url"], document, stack[who])
    print(f"\n{document} as {who}: {calls} requests")
    assert calls > 20
    assert not failures, "\n\n".join(failures)
