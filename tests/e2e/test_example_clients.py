"""soorma-core's example client scripts, run the soorma-core way against the local stack (issue 17).

One stack deploys examples/hello-tool, memory-working, worker-basic and planner-basic; each example's client script
(``hello-tool/client.py``, ``memory-working/client.py``, ``worker-basic/publisher.py``, ``planner-basic/client.py``)
runs as a separate process with only what a soorma-core user sets: ``SOORMA_API_URL``,
``IDENTITY_TENANT_ADMIN_API_KEY`` (the stack's ``local`` tenant, where the agents are deployed),
``SOORMA_PLATFORM_TENANT_ID`` and an empty ``SOORMA_HOME`` (no API key, no stack files). Each script gets its token
from ``examples/shared/auth.py`` (soorma-core's token provider logic on the identity service), publishes an action
request with a ``response_event`` through its ``EventClient`` and waits for the answer with its correlation id on
the gateway's event stream; the test checks the printed answer's content. Then: a second run reuses the kept
bootstrap (mode 0600, same principal), a forced refresh or an expired token issues a new token that the platform
accepts, and a script with only the superuser key (soorma-core's onboarding) gets a tenant of its own, whose
request the ``local`` tenant's agents never answer (exit code 1).

A second stack runs the LLM examples' clients (events-structured, choreography-basic, discovery-llm,
event-selector) offline, against the fake LLM of ``tests/e2e/test_llm_examples.py`` (its decisions are reused),
and a third runs examples/research-advisor's client (extractive answers, no LLM, no web).
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import stat
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import httpx
import jwt
import pytest

from soorma.testing.llm import FakeLLMServer

from .conftest import EXAMPLES, local_stack
from .test_llm_examples import LLM_APPS, LLM_KEY, fake_llm

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]

DEPLOYED = ("hello-tool", "memory-working", "worker-basic", "planner-basic")


@pytest.fixture(scope="module")
def stack():
    with local_stack("soorma-e2e-example-clients-", tuple(EXAMPLES / name for name in DEPLOYED)) as stack_:
        yield stack_


def soorma_core_user_env(stack: dict[str, Any], home: Path) -> dict[str, str]:
    """A soorma-core user's environment: the API URL, the tenant admin key and tenant, an empty ``SOORMA_HOME``
    (``home``, a pytest temporary folder: mode 0700, removed by pytest's retention)."""
    creds = stack["credentials"]
    return {
        "PATH": os.environ.get("PATH", ""),
        "SOORMA_API_URL": creds["api_url"],
        "IDENTITY_TENANT_ADMIN_API_KEY": creds["tenant_admin_api_key"],
        "SOORMA_PLATFORM_TENANT_ID": creds["platform_tenant_id"],
        "SOORMA_HOME": str(home),
    }


@pytest.fixture(scope="module")
def user_env(stack, tmp_path_factory) -> dict[str, str]:
    return soorma_core_user_env(stack, tmp_path_factory.mktemp("home"))


def run_script(env: dict[str, str], script: str, *args: str) -> dict[str, Any]:
    """Run ``examples/<script>`` as its own process; returns the JSON answer it printed (asserts exit code 0)."""
    result = subprocess.run([sys.executable, str(EXAMPLES / script), *args], env=env, cwd=tempfile.gettempdir(),
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, f"{script} {args}: {result.stdout}{result.stderr}"
    return json.loads(result.stdout.strip().splitlines()[-1])


def bootstrap_of(env: dict[str, str], example: str) -> Path:
    return Path(env["SOORMA_HOME"]) / f"{example}-identity.json"


def test_hello_tool_client_answers_and_fails_and_reuses_its_bootstrap(stack, user_env):
    added = run_script(user_env, "hello-tool/client.py", "--operation", "add", "--a", "10", "--b", "5")
    assert added["success"] is True and added["result"] == {"operation": "add", "value": 15.0}, added
    bootstrap = bootstrap_of(user_env, "hello-tool")
    assert stat.S_IMODE(bootstrap.stat().st_mode) == 0o600  # it holds the example's identity: its owner's only
    kept = json.loads(bootstrap.read_text())
    assert kept["platform_tenant_id"] == stack["credentials"]["platform_tenant_id"]
    assert kept["bootstrap_admin_principal_id"].startswith("pr_")

    # a second run: the kept principal, no new bootstrap; a handler that raised is a failed result, an answer
    failed = run_script(user_env, "hello-tool/client.py", "--operation", "divide", "--a", "100", "--b", "0")
    assert failed["success"] is False and "cannot divide by zero" in failed["error"], failed
    assert json.loads(bootstrap.read_text()) == kept
    assert stat.S_IMODE(bootstrap.stat().st_mode) == 0o600


def test_memory_working_client_gets_the_plan_built_in_working_memory(user_env):
    answer = run_script(user_env, "memory-working/client.py", "Lisbon", "2")
    assert answer["status"] == "completed" and answer["destination"] == "Lisbon" and answer["days"] == 2, answer
    assert answer["itinerary"] == ["day 1: old town walk in Lisbon", "day 2: museum day in Lisbon"]
    assert answer["budget"] == {"lodging": 180, "food": 80, "activities": 50, "total": 310, "currency": "EUR"}
    assert answer["steps_done"] == 2
    assert answer["actions"] == ["trip.plan", "itinerary.draft", "itinerary.drafted", "budget.estimate",
                                 "budget.estimated"]


def test_worker_basic_publisher_gets_the_order_after_both_delegations(user_env):
    answer = run_script(user_env, "worker-basic/publisher.py", "ORD-001", "widget", "gadget")
    assert answer["status"] == "completed", answer
    assert answer["result"] == {
        "order_id": "ORD-001",
        "status": "confirmed",
        "inventory": {"reserved": True, "items": ["widget", "gadget"]},
        "payment": {"charged": True, "amount": 12.5},
    }


def test_planner_basic_client_gets_the_finalized_plan(user_env):
    answer = run_script(user_env, "planner-basic/client.py", "event-driven", "agents")
    assert answer["plan_id"], answer
    assert answer["result"] == {
        "topic": "event-driven agents",
        "summary": "Found 3 papers on event-driven agents",
        "papers_found": 3,
        "papers": ["Introduction to event-driven agents", "Advanced event-driven agents",
                   "event-driven agents in practice"],
        "states": ["start", "search", "complete"],
    }


def test_a_script_onboarded_as_a_new_tenant_gets_no_answer_from_another_tenants_agents(stack, user_env, tmp_path):
    """soorma-core's own flow (only the superuser key): the provider onboards a tenant of its own and keeps its
    tenant admin key (0600). The calculator is deployed for the stack's ``local`` tenant, so the request of the new
    tenant is never answered by it: the script times out with exit code 1 (the attack is that it got an answer)."""
    creds = stack["credentials"]
    env = {name: value for name, value in user_env.items()
           if name not in ("IDENTITY_TENANT_ADMIN_API_KEY", "SOORMA_PLATFORM_TENANT_ID")}
    env.update(IDENTITY_SUPERUSER_API_KEY=creds["admin_api_key"],
               SOORMA_HOME=str(tmp_path))
    result = subprocess.run([sys.executable, str(EXAMPLES / "hello-tool" / "client.py"), "--operation", "add",
                             "--a", "1", "--b", "2"], env=env, cwd=tempfile.gettempdir(), capture_output=True,
                            text=True, timeout=180)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout == "" and "no answer" in result.stderr
    bootstrap = bootstrap_of(env, "hello-tool")
    assert stat.S_IMODE(bootstrap.stat().st_mode) == 0o600  # it holds the new tenant's admin key
    kept = json.loads(bootstrap.read_text())
    assert kept["platform_tenant_id"] != creds["platform_tenant_id"]
    assert kept["tenant_admin_api_key"] and kept["tenant_admin_api_key"] not in (creds["tenant_admin_api_key"],
                                                                                  creds["admin_api_key"])


def load_example_auth() -> ModuleType:
    """``examples/shared/auth.py`` as the scripts import it (a module of its own, not a test copy)."""
    spec = importlib.util.spec_from_file_location("example_shared_auth", EXAMPLES / "shared" / "auth.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def accepted(api_url: str, token: str) -> bool:
    """The gateway authorizes ``token``: an unknown goal is 404 for it (401/403 when the token is refused)."""
    answer = httpx.get(f"{api_url}/v1/goals/{uuid.uuid4()}", headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert answer.status_code in (401, 403, 404), answer.text
    return answer.status_code == 404


def test_a_forced_refresh_and_an_expired_token_issue_new_tokens(stack, user_env, monkeypatch):
    for name in ("SOORMA_API_KEY", "SOORMA_AUTH_TOKEN", "SOORMA_IDENTITY_URL", "IDENTITY_SUPERUSER_API_KEY",
                 "IDENTITY_ADMIN_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    for name, value in user_env.items():
        monkeypatch.setenv(name, value)
    auth = load_example_auth()
    script = EXAMPLES / "hello-tool" / "client.py"
    bootstrap_before = bootstrap_of(user_env, "hello-tool").read_text()  # the scripts' runs above kept it
    provider = auth.build_example_token_provider("hello-tool", script)

    async def tokens() -> tuple[str, str, str, str]:
        first = await provider.get_token()
        cached = await provider.get_token()
        forced = await provider.get_token(force_refresh=True)
        # 15 minutes later (the tokens' lifetime): the cached one is past its refresh window, a new one is issued
        later = time.time() + 15 * 60
        monkeypatch.setattr(auth, "time", SimpleNamespace(time=lambda: later))
        expired = await provider.get_token()
        return first, cached, forced, expired

    first, cached, forced, expired = asyncio.run(tokens())
    assert cached == first
    assert len({first, forced, expired}) == 3
    claims = [jwt.decode(t, options={"verify_signature": False}) for t in (first, forced, expired)]
    assert len({c["jti"] for c in claims}) == 3
    assert {c["sub"] for c in claims} == {json.loads(bootstrap_before)["bootstrap_admin_principal_id"]}
    assert all(c["platform_tenant_id"] == stack["credentials"]["platform_tenant_id"] for c in claims)
    api_url = stack["credentials"]["api_url"]
    assert all(accepted(api_url, t) for t in (first, forced, expired))
    assert not accepted(api_url, expired[:-4] + ("AAAA" if not expired.endswith("AAAA") else "BBBB"))
    # refreshing reused the kept bootstrap: no new principal; soorma-core's accessors read it
    assert bootstrap_of(user_env, "hello-tool").read_text() == bootstrap_before
    kept = json.loads(bootstrap_before)
    assert asyncio.run(provider.get_platform_tenant_id()) == kept["platform_tenant_id"]
    assert asyncio.run(provider.get_bootstrap_admin_principal_id()) == kept["bootstrap_admin_principal_id"]
    assert asyncio.run(provider.get_bootstrap_payload()) == kept
    # and exported soorma-core's variables for subprocesses
    assert os.environ["SOORMA_AUTH_TOKEN"] == expired
    assert os.environ["SOORMA_PLATFORM_TENANT_ID"] == stack["credentials"]["platform_tenant_id"]


# --- the LLM examples, offline: the fake LLM of tests/e2e/test_llm_examples.py ------------------------------------


@pytest.fixture(scope="module")
def llm_stack():
    llm = FakeLLMServer(fake_llm).start()
    env = {"SOORMA_LLM_PROVIDER": "openai", "SOORMA_LLM_BASE_URL": llm.base_url, "SOORMA_LLM_API_KEY": LLM_KEY,
           "SOORMA_LLM_MODEL": "fake-model"}
    try:
        with local_stack("soorma-e2e-example-clients-llm-", [EXAMPLES / app for app in LLM_APPS], env=env) as stack_:
            yield stack_
    finally:
        llm.stop()


@pytest.fixture(scope="module")
def llm_user_env(llm_stack, tmp_path_factory) -> dict[str, str]:
    return soorma_core_user_env(llm_stack, tmp_path_factory.mktemp("home"))


def test_events_structured_client_gets_the_routed_ticket(llm_user_env):
    answer = run_script(llm_user_env, "events-structured/client.py", "Wrong invoice",
                        "Please refund the extra 20 on my March invoice")
    assert answer["status"] == "completed", answer
    routed = answer["result"]
    assert routed["routed_to"] == "ticket.billing.requested" and routed["handled_by"] == "billing", routed
    assert routed["resolution"] == "refund of 20.00 issued" and routed["payload"]["amount"] == 20


def test_choreography_client_gets_the_report_of_the_chained_workers(llm_user_env):
    answer = run_script(llm_user_env, "choreography-basic/client.py", "Acme Notes")
    assert answer["result"] == {"report": "Acme Notes: 2 positive, 2 negative, 1 neutral; feedback is mixed.",
                                "sentiment": {"positive": 2, "negative": 2, "neutral": 1}}, answer


def test_discovery_client_gets_the_answer_in_its_own_schema(llm_user_env):
    answer = run_script(llm_user_env, "discovery-llm/client.py", "--headline-schema", "Event-driven agents")
    assert answer["status"] == "completed" and answer["response_schema"] == "client", answer
    assert answer["result"] == {"headline": "Overview of Event-driven agents", "count": 3,
                                "links": [f"https://example.com/research/{i}" for i in (1, 2, 3)]}
    default = run_script(llm_user_env, "discovery-llm/client.py", "Serverless NATS in depth")
    assert default["response_schema"] == "research_result_v1", default
    assert default["result"]["summary"] == "5 findings about Serverless NATS in depth"


def test_event_selector_client_gets_the_specialists_resolution(llm_user_env):
    answer = run_script(llm_user_env, "event-selector/client.py", "T-9", "Charged twice",
                        "I was charged twice for March")
    assert answer["status"] == "completed", answer
    resolved = answer["result"]
    assert resolved["routed_to"] == "support.billing.requested" and resolved["fallback"] is False, resolved
    assert resolved["handled_by"] == "billing-worker" and resolved["resolution"] == "duplicate charge refunded"
    assert resolved["payload"]["ticket_id"] == "T-9"


# --- research-advisor: offline (extractive answers from the standard library's documentation) ---------------------


@pytest.fixture(scope="module")
def research_user_env(tmp_path_factory):
    """A stack with examples/research-advisor deployed (its setup step ingests the corpus) and a user's env."""
    with local_stack("soorma-e2e-example-clients-research-", (EXAMPLES / "research-advisor",)) as stack_:
        yield soorma_core_user_env(stack_, tmp_path_factory.mktemp("home"))


def test_research_advisor_client_gets_a_validated_answer_citing_the_expected_module(research_user_env):
    answer = run_script(research_user_env, "research-advisor/client.py", "How do I read a gzip-compressed file?")
    assert answer["status"] == "completed", answer
    result = answer["result"]
    assert result["question"] == "How do I read a gzip-compressed file?"
    assert result["validated"] is True and result["unsupported"] == [] and result["method"] == "extractive"
    assert "gzip" in {source["module"] for source in result["sources"]}, result
    assert "`gzip." in result["answer"]
