"""`soorma local logs FUNCTION`: which log file a name selects, and the errors for names that select none."""

from __future__ import annotations

from typer.testing import CliRunner

from soorma.cli.main import app


def _home(tmp_path, monkeypatch, *functions: str):
    logs = tmp_path / "logs"
    logs.mkdir()
    for name in functions:
        (logs / f"{name}.log").write_text(f"START {name}\nREPORT {name}\n")
    monkeypatch.setenv("SOORMA_HOME", str(tmp_path))


def test_an_exact_name_wins_over_longer_names_that_share_its_prefix(tmp_path, monkeypatch):
    # '-' sorts before '.', so a plain prefix glob would pick foo-bar.log for "foo"
    _home(tmp_path, monkeypatch, "foo", "foo-bar")
    result = CliRunner().invoke(app, ["local", "logs", "foo"])
    assert result.exit_code == 0, result.output
    assert "REPORT foo\n" in result.output and "foo-bar" not in result.output


def test_a_unique_prefix_selects_its_function(tmp_path, monkeypatch):
    _home(tmp_path, monkeypatch, "research-advisor-planner", "hello-tool-calculator")
    result = CliRunner().invoke(app, ["local", "logs", "research"])
    assert result.exit_code == 0, result.output
    assert "REPORT research-advisor-planner" in result.output


def test_an_ambiguous_prefix_names_the_candidates(tmp_path, monkeypatch):
    _home(tmp_path, monkeypatch, "research-advisor-planner", "research-advisor-researcher")
    result = CliRunner().invoke(app, ["local", "logs", "research"])
    assert result.exit_code == 2
    assert "research-advisor-planner" in result.output and "research-advisor-researcher" in result.output


def test_unknown_and_path_like_names_are_refused(tmp_path, monkeypatch):
    _home(tmp_path, monkeypatch, "foo")
    unknown = CliRunner().invoke(app, ["local", "logs", "nope"])
    assert unknown.exit_code == 1 and "no log for function 'nope'" in unknown.output
    traversal = CliRunner().invoke(app, ["local", "logs", "../foo"])
    assert traversal.exit_code == 2 and "not a function name" in traversal.output
