"""The main job as a user runs it: `soorma local up`, `soorma local deploy examples/research-advisor`, goals over
the CLI and over plain HTTP, the cited modules checked, `soorma local down`."""

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

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "research-advisor"
SOORMA = str(Path(sys.executable).with_name("soorma"))


def _questions() -> list[dict]:
    return json.loads((EXAMPLE / "questions.json").read_text())


def _cited_modules(goal: dict) -> set[str]:
    result = goal["result"]
    payload = result.get("result", result)
    return {source["module"] for source in payload["sources"]}


@pytest.fixture(scope="module")
def stack():
    home = Path(tempfile.mkdtemp(prefix="soorma-e2e-"))
    env = {
        **os.environ,
        "SOORMA_HOME": str(home / "s"),
        "SOORMA_LOCAL_PORT": str(free_port()),
        "SOORMA_NATS_PORT": str(free_port()),
    }
    env.pop("SOORMA_API_URL", None)
    env.pop("SOORMA_API_KEY", None)

    def run(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        return subprocess.run([SOORMA, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout)

    up = run("local", "up")
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        deploy = run("local", "deploy", str(EXAMPLE))
        assert deploy.returncode == 0, deploy.stdout + deploy.stderr
        credentials = json.loads((home / "s" / "credentials.json").read_text())
        yield {"run": run, "env": env, "url": credentials["api_url"], "key": credentials["api_key"], "up": up}
    finally:
        down = run("local", "down", timeout=120)
        print(down.stdout, down.stderr)


def test_up_prints_endpoint_and_key(stack):
    out = stack["up"].stdout
    assert stack["url"] in out and stack["key"] in out


def test_goals_over_the_cli_cite_the_expected_modules(stack):
    for item in _questions()[:3]:
        done = stack["run"](
            "goal", "submit", "research.goal", "--data", json.dumps({"question": item["question"]}), "--wait",
            "--timeout", "120",
        )
        assert done.returncode == 0, done.stdout + done.stderr
        goal = json.loads(done.stdout)
        assert goal["status"] == "completed"
        payload = goal["result"].get("result", goal["result"])
        assert payload["answer"]
        assert payload["validated"] is True
        assert set(item["expect_modules"]) & _cited_modules(goal), (item, payload)
        assert goal["tasks"], "the tracker recorded no task of the goal"


def test_goals_over_http_with_curl_like_calls(stack):
    headers = {"Authorization": f"Bearer {stack['key']}"}
    with httpx.Client(base_url=stack["url"], headers=headers, timeout=30) as client:
        items = _questions()[3:6]
        ids = []
        for item in items:
            response = client.post("/v1/goals", json={"goal_type": "research.goal", "data": {"question": item["question"]}})
            assert response.status_code == 202, response.text
            ids.append(response.json()["goal_id"])
        deadline = time.monotonic() + 120
        goals = {}
        while len(goals) < len(ids) and time.monotonic() < deadline:
            for goal_id in ids:
                goal = client.get(f"/v1/goals/{goal_id}").json()
                if goal["status"] != "running":
                    goals[goal_id] = goal
            time.sleep(0.2)
        assert len(goals) == len(ids), "goals did not finish in 120 s"
        for goal_id, item in zip(ids, items):
            goal = goals[goal_id]
            assert goal["status"] == "completed", goal
            assert set(item["expect_modules"]) & _cited_modules(goal), (item, goal["result"])


def test_api_refuses_missing_and_wrong_keys_and_bad_input(stack):
    with httpx.Client(base_url=stack["url"], timeout=30) as client:
        assert client.post("/v1/goals", json={"goal_type": "x", "data": {}}).status_code == 401
        wrong = {"Authorization": "Bearer sk_nope_nope"}
        assert client.get("/v1/goals/00000000-0000-0000-0000-000000000000", headers=wrong).status_code == 403
        good = {"Authorization": f"Bearer {stack['key']}"}
        bad_type = client.post("/v1/goals", headers=good, json={"goal_type": "bad type!", "data": {}})
        assert 400 <= bad_type.status_code < 500
        missing = client.get("/v1/goals/00000000-0000-0000-0000-000000000000", headers=good)
        assert missing.status_code == 404
        malformed = client.post("/v1/goals", headers={**good, "content-type": "application/json"}, content=b"{nope")
        assert 400 <= malformed.status_code < 500


def test_status_lists_functions_and_bridge(stack):
    status = stack["run"]("local", "status", "--json")
    assert status.returncode == 0, status.stderr
    details = json.loads(status.stdout)
    assert "soorma-gateway" in details["functions"]
    assert any("research-planner" in name for name in json.dumps(details["bridge"]).split('"'))
