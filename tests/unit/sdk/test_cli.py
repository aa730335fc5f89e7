"""The ``soorma`` command line as scripts see it: ``--version``, exit codes (usage errors 2 before any network call,
runtime errors 1, messages on stderr), ``--json`` results that parse, and the enum choices in ``--help`` and shell
completion. Goals go through the SDK's ``GatewayClient`` on an ``httpx.MockTransport``; no stack is started."""

from __future__ import annotations

import functools
import json
import os
import re
from importlib.metadata import version
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from soorma.cli import goal as goal_cli
from soorma.cli.main import app
from soorma.clients import _http
from soorma.clients.gateway import GatewayClient

KEY = "sk_test_secret"
URL = "http://gateway.test"


def soorma(*args: str, env: dict[str, str] | None = None, input: str | None = None):
    """Run ``soorma ARGS`` in-process; stdout and stderr apart (click ≥ 8.2 keeps them apart by default)."""
    return CliRunner().invoke(app, list(args), prog_name="soorma", env=env, input=input)


def plain(text: str) -> str:
    """``text`` without rich's panel borders and line wrapping, so a message can be matched whole."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())


@pytest.fixture
def api(monkeypatch, tmp_path):
    """The gateway as an ``httpx.MockTransport``: ``api.goals`` maps a goal id to what ``GET /v1/goals/{id}`` answers
    (a status code and body, or an exception to raise); ``api.requests`` lists what was sent."""

    class Api:
        def __init__(self) -> None:
            self.requests: list[httpx.Request] = []
            self.goals: dict[str, tuple[int, dict] | Exception] = {}
            self.submit: tuple[int, dict] | Exception = (
                202, {"goal_id": "g-1", "status": "running", "goal_type": "demo.goal"})

    api = Api()

    def handle(request: httpx.Request) -> httpx.Response:
        api.requests.append(request)
        if request.method == "POST" and request.url.path == "/v1/goals":
            answer = api.submit
        else:
            answer = api.goals.get(request.url.path.rsplit("/", 1)[-1], (404, {"detail": "goal not found"}))
        if isinstance(answer, Exception):
            raise answer
        return httpx.Response(answer[0], json=answer[1])

    monkeypatch.setattr(goal_cli, "GatewayClient",
                        functools.partial(GatewayClient, transport=httpx.MockTransport(handle)))
    monkeypatch.setattr(_http, "_BACKOFF", 0.0)  # the client's retries of an unreachable API, without the waits
    monkeypatch.setenv("SOORMA_API_URL", URL)
    monkeypatch.setenv("SOORMA_API_KEY", KEY)
    monkeypatch.setenv("SOORMA_HOME", str(tmp_path / "no-stack"))
    return api


def _goal(status: str, **fields) -> dict:
    return {"goal_id": "g-1", "goal_type": "demo.goal", "status": status, "data": {"q": 1}, "result": None,
            "error": None, "session_id": None, "response_event": "soorma.goal.result",
            "created_at": "2026-01-01T00:00:00Z", "completed_at": None, "tasks": [], "events": 2, **fields}


# ---------------------------------------------------------------------------------------------------------- version


def test_version_is_the_installed_package_metadata():
    result = soorma("--version")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == version("soorma")
    assert soorma("version").stdout == result.stdout


# ------------------------------------------------------------------------------------------------------ usage errors


@pytest.mark.parametrize("args,message", [
    (["--data", "{nope"], "Invalid value for '--data' / '-d': not valid JSON"),
    (["--data", "[1, 2]"], "Invalid value for '--data' / '-d': must be a JSON object"),
    (["--timeout", "-1", "--wait"], "Invalid value for '--timeout'"),
])
def test_bad_goal_arguments_are_usage_errors_on_stderr_without_a_request(api, args, message):
    result = soorma("goal", "submit", "demo.goal", *args)
    assert result.exit_code == 2
    assert message in plain(result.stderr)
    assert result.stdout == ""
    assert api.requests == []


def test_no_api_key_is_a_usage_error_before_any_request(api, monkeypatch):
    monkeypatch.delenv("SOORMA_API_KEY")
    result = soorma("goal", "submit", "demo.goal")
    assert result.exit_code == 2
    assert "no API key: set SOORMA_API_URL and SOORMA_API_KEY" in plain(result.stderr)
    assert api.requests == []


def test_unknown_choices_are_usage_errors(tmp_path):
    for args in (["local", "up", "--transport", "kafka"], ["deploy", "--transport", "kafka", "--dry-run"],
                 ["deploy", "--require-approval", "sometimes", "--dry-run"],
                 ["init", "x", "--type", "robot", "--dir", str(tmp_path)],
                 ["dlq", "list", "--transport", "kafka"]):
        result = soorma(*args)
        assert result.exit_code == 2, (args, result.output)
        assert "is not one of" in plain(result.stderr), args
    assert list(tmp_path.iterdir()) == []


def test_a_bad_invoke_payload_is_refused_before_the_stack_is_looked_for(tmp_path, monkeypatch):
    monkeypatch.setenv("SOORMA_HOME", str(tmp_path))  # no stack there: the payload is checked first
    result = soorma("local", "invoke", "some-function", "--payload", "{nope")
    assert result.exit_code == 2
    assert "the payload is not valid JSON" in plain(result.stderr)


# --------------------------------------------------------------------------------------------------- goal submit


def test_submit_prints_the_goal_id_and_sends_the_data_with_the_key(api):
    result = soorma("goal", "submit", "demo.goal", "--data", '{"q": 1}', "--session", "s-1")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "g-1\n"
    [sent] = api.requests
    assert sent.headers["authorization"] == f"Bearer {KEY}" and sent.headers["idempotency-key"]
    assert json.loads(sent.content) == {"goal_type": "demo.goal", "data": {"q": 1}, "session_id": "s-1"}


def test_submit_json_prints_the_submitted_goal(api):
    result = soorma("goal", "submit", "demo.goal", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == {"goal_id": "g-1", "status": "running", "goal_type": "demo.goal"}
    assert json.loads(api.requests[0].content) == {"goal_type": "demo.goal", "data": {}}  # --data's default


def test_submit_wait_prints_the_final_goal_as_json_and_progress_on_stderr(api):
    api.goals["g-1"] = (200, _goal("completed", result={"answer": 42}, completed_at="2026-01-01T00:00:01Z"))
    result = soorma("goal", "submit", "demo.goal", "--wait", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == api.goals["g-1"][1]  # the gateway's goal, every key it sent
    assert "goal g-1 submitted; waiting up to 120 s" in result.stderr


def test_submit_wait_exits_1_with_the_error_when_the_goal_failed(api):
    api.goals["g-1"] = (200, _goal("failed", error="planner crashed"))
    result = soorma("goal", "submit", "demo.goal", "--wait")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["status"] == "failed"
    assert "goal g-1 failed: planner crashed" in plain(result.stderr)


def test_submit_wait_exits_1_when_the_goal_is_still_running_after_the_timeout(api):
    api.goals["g-1"] = (200, _goal("running"))
    result = soorma("goal", "submit", "demo.goal", "--wait", "--timeout", "0")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["status"] == "running"
    assert "goal g-1 still running after 0 s" in plain(result.stderr)


def test_an_unreachable_api_is_a_runtime_error_on_stderr(api):
    api.submit = httpx.ConnectError("connection refused")
    result = soorma("goal", "submit", "demo.goal")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert f"cannot reach the API at {URL}" in plain(result.stderr)


def test_an_error_answer_is_a_runtime_error_with_its_status_and_detail(api):
    api.submit = (403, {"detail": "this key may not submit goals"})
    result = soorma("goal", "submit", "demo.goal")
    assert result.exit_code == 1
    assert "HTTP 403: this key may not submit goals" in plain(result.stderr)


def test_status_prints_the_goal_and_exits_1_for_an_unknown_one(api):
    api.goals["g-1"] = (200, _goal("running"))
    shown = soorma("goal", "status", "g-1")
    assert shown.exit_code == 0, shown.stderr
    assert json.loads(shown.stdout) == api.goals["g-1"][1]
    unknown = soorma("goal", "status", "g-2")
    assert unknown.exit_code == 1 and "goal g-2 not found" in plain(unknown.stderr)


# ----------------------------------------------------------------------------------------------------- local --json


@pytest.fixture
def ready_stack(tmp_path, monkeypatch) -> Path:
    """A ``.soorma`` whose state says a stack is ready, run by this (live) process; nothing listens on its URL."""
    home = tmp_path / ".soorma"
    home.mkdir()
    (home / "state.json").write_text(json.dumps({
        "pid": os.getpid(), "status": "ready", "transport": "nats", "api_url": "http://127.0.0.1:9",
        "nats_url": "nats://127.0.0.1:4222", "home": str(home), "ready_seconds": 4.2,
        "lambda_access_key_id": "AKIDLOCAL"}))
    (home / "credentials.json").write_text(json.dumps({"api_url": "http://127.0.0.1:9", "api_key": "sk_local_key",
                                                        "platform_tenant_id": "local"}))
    (home / "secrets.json").write_text(json.dumps({"control_token": "ctl"}))
    monkeypatch.setenv("SOORMA_HOME", str(home))
    monkeypatch.delenv("SOORMA_EVENT_TRANSPORT", raising=False)
    return home


def test_local_up_json_reports_the_running_stack(ready_stack):
    result = soorma("local", "up", "--json")
    assert result.exit_code == 0, result.stderr
    ready = json.loads(result.stdout)
    assert ready["api_url"] == "http://127.0.0.1:9" and ready["api_key"] == "sk_local_key"
    assert ready["already_running"] is True and ready["transport"] == "nats"
    assert ready["nats_url"] == "nats://127.0.0.1:4222" and ready["ready_seconds"] == 4.2
    assert "already running" in result.stderr


def test_local_up_prints_the_same_facts_for_people(ready_stack):
    result = soorma("local", "up")
    assert result.exit_code == 0, result.stderr
    assert "soorma local stack ready in 4.2 s" in result.stdout
    assert "export SOORMA_API_URL=http://127.0.0.1:9 SOORMA_API_KEY=sk_local_key" in result.stdout


def test_local_deploy_json_keeps_progress_off_stdout(ready_stack, tmp_path, monkeypatch):
    from soorma.local import deploy as local_deploy

    agent = tmp_path / "agent.py"
    agent.write_text("")
    deployed = [{"agent": "greeter", "function_name": "app-greeter", "consumer": "local-greeter"}]

    def fake_deploy(self, path, *, run_setup=True):
        self.echo(f"deployed greeter as function app-greeter from {path}")  # the Deployer's progress (print)
        return deployed

    monkeypatch.setattr(local_deploy.Deployer, "deploy", fake_deploy)
    result = soorma("local", "deploy", str(agent), "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == {"path": str(agent.resolve()), "deployed": deployed}
    assert "deployed greeter as function app-greeter" in result.stderr


def test_local_deploy_refuses_json_with_watch_and_a_missing_path(ready_stack, tmp_path):
    both = soorma("local", "deploy", str(tmp_path), "--json", "--watch")
    assert both.exit_code == 2 and "--json and --watch do not go together" in plain(both.stderr)
    missing = soorma("local", "deploy", str(tmp_path / "nope.py"))
    assert missing.exit_code == 2 and "does not exist" in plain(missing.stderr)


# --------------------------------------------------------------------------------------------- choices in --help


@pytest.mark.parametrize("args,choices", [
    (["local", "up"], "nats|sqs"),
    (["deploy"], "never|any-change|broadening"),
    (["init"], "worker|tool|planner"),
    (["dlq", "replay"], "nats|sqs"),
])
def test_help_lists_the_choices(args, choices):
    result = soorma(*args, "--help", env={"COLUMNS": "200"})  # wide enough that rich does not cut the choices
    assert result.exit_code == 0, result.stderr
    assert choices in result.stdout


def test_shell_completion_offers_the_choices():
    result = soorma(env={"_SOORMA_COMPLETE": "complete_bash", "COMP_WORDS": "soorma local up --transport ",
                         "COMP_CWORD": "4"})
    assert result.exit_code == 0, result.stderr
    assert result.stdout.split() == ["nats", "sqs"]
    assert "--install-completion" in soorma("--help").stdout
