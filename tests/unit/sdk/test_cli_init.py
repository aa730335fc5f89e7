"""``soorma init NAME --type worker|tool|planner``: every type scaffolds a project whose own tests pass with plain
pytest (no stack), and bad input is refused with a clear message and a non-zero exit, writing nothing."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from soorma.cli.init import InitError, render, scaffold
from soorma.cli.main import app

runner = CliRunner()


def init(*args: str):
    return runner.invoke(app, ["init", *args])


def run_project_tests(project: Path) -> subprocess.CompletedProcess:
    """The generated project's tests, in a fresh interpreter from the project folder, as its README says."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SOORMA_", "PYTEST_"))}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=project, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("agent_type", ["worker", "tool", "planner"])
def test_each_type_scaffolds_a_project_whose_tests_pass(tmp_path, agent_type):
    name = f"my-{agent_type}"
    result = init(name, "--type", agent_type, "--dir", str(tmp_path))
    assert result.exit_code == 0, result.output
    project = tmp_path / name
    assert {p.relative_to(project).as_posix() for p in project.rglob("*") if p.is_file()} == {
        "agent.py", "tests/test_agent.py", "README.md", "soorma.toml", "pyproject.toml", ".gitignore"}
    readme = (project / "README.md").read_text()
    assert f"soorma local deploy {name}" in readme and "pytest" in readme
    manifest = tomllib.loads((project / "soorma.toml").read_text())
    assert manifest["app"] == {"name": name, "modules": ["agent"]}
    tests = run_project_tests(project)
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert " passed" in tests.stdout and "failed" not in tests.stdout, tests.stdout


@pytest.mark.parametrize("agent_type,cls,event", [("worker", "Worker", "greeter.requested"),
                                                  ("tool", "Tool", "greeter.invoke"),
                                                  ("planner", "Planner", "greeter.goal")])
def test_the_module_holds_one_agent_of_the_type_handling_one_event(tmp_path, monkeypatch, agent_type, cls, event):
    """What ``soorma local deploy`` finds in the project: one module-level agent, subscribed to one event."""
    from soorma.local.deploy import discover_agents, load_app

    # each project's module is named ``agent``: forget the one an earlier case imported from another folder
    monkeypatch.delitem(sys.modules, "agent", raising=False)

    scaffold("greeter", agent_type, tmp_path)
    app_ = load_app(tmp_path / "greeter")
    assert app_.name == "greeter" and app_.modules == ["agent"]
    [found] = discover_agents(app_)
    assert type(found.agent).__name__ == cls and found.agent.name == "greeter"
    assert found.handler == f"agent.{agent_type}"
    assert found.agent.subscriptions() == [("action-requests", event)]


def test_the_default_type_is_a_worker_in_the_current_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = init("order-checker")
    assert result.exit_code == 0, result.output
    assert "Worker(" in (tmp_path / "order-checker" / "agent.py").read_text()
    assert "order-checker.requested" in (tmp_path / "order-checker" / "agent.py").read_text()


@pytest.mark.parametrize("name", ["Bad", "1abc", "my_agent", "-x", "a--b", "ab-", "a.b", "", "x" * 32])
def test_an_invalid_name_is_refused(tmp_path, name):
    result = init("--dir", str(tmp_path), "--", name)
    assert result.exit_code == 2
    assert "invalid name" in result.output
    assert list(tmp_path.iterdir()) == []


def test_an_unknown_type_is_refused(tmp_path):
    result = init("greeter", "--type", "robot", "--dir", str(tmp_path))
    assert result.exit_code == 2  # a usage error, refused by the choice before the command runs
    assert "'robot' is not one of" in result.stderr and "'worker', 'tool', 'planner'" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_an_existing_non_empty_folder_is_refused_and_left_alone(tmp_path):
    (tmp_path / "greeter").mkdir()
    (tmp_path / "greeter" / "notes.txt").write_text("mine")
    result = init("greeter", "--dir", str(tmp_path))
    assert result.exit_code == 2
    assert "already exists and is not empty" in result.output
    assert [p.name for p in (tmp_path / "greeter").iterdir()] == ["notes.txt"]
    assert (tmp_path / "greeter" / "notes.txt").read_text() == "mine"


def test_an_existing_empty_folder_is_used(tmp_path):
    (tmp_path / "greeter").mkdir()
    result = init("greeter", "--type", "tool", "--dir", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "greeter" / "agent.py").is_file()


def test_a_file_in_the_way_is_refused(tmp_path):
    (tmp_path / "greeter").write_text("x")
    result = init("greeter", "--dir", str(tmp_path))
    assert result.exit_code == 2 and "is not a folder" in result.output


def test_render_and_scaffold_raise_init_error():
    with pytest.raises(InitError, match="invalid name"):
        render("No", "worker")
    with pytest.raises(InitError, match="unknown type"):
        render("ok", "agent")
    files = render("ok", "planner")
    compile(files["agent.py"], "agent.py", "exec")
    compile(files["tests/test_agent.py"], "test_agent.py", "exec")
