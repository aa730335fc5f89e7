"""``soorma local deploy --watch``: which files are watched, change detection, the bounded watch loop, and
re-discovery of changed agent modules (the stack side, new environments for new code, is in
tests/e2e/test_local_dev_loop.py)."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from soorma.local.deploy import DeployError, changed_files, discover_agents, load_app, snapshot, watch, watched_files

pytestmark = pytest.mark.timeout(60)


def _touch(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    # make the change visible even on a file system with coarse timestamps
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def test_watched_files_of_a_folder_skip_tooling_and_editor_files(tmp_path):
    for name in ["agents.py", "soorma.toml", "data/corpus.json", "pkg/helpers.py", "__pycache__/agents.cpython-311.pyc",
                 ".git/HEAD", ".venv/lib/x.py", "node_modules/a.js", ".agents.py.swp", "agents.py~", "x.egg-info/PKG"]:
        _touch(tmp_path / name, "x")
    names = sorted(str(p.relative_to(tmp_path)) for p in watched_files(tmp_path))
    assert names == ["agents.py", "data/corpus.json", "pkg/helpers.py", "soorma.toml"]


def test_watched_files_of_a_single_module_are_its_python_neighbours(tmp_path):
    for name in ["my_agents.py", "helpers.py", "notes.md", "sub/other.py"]:
        _touch(tmp_path / name, "x")
    names = sorted(p.name for p in watched_files(tmp_path / "my_agents.py"))
    assert names == ["helpers.py", "my_agents.py"]


def test_changed_files(tmp_path):
    _touch(tmp_path / "a.py", "a")
    _touch(tmp_path / "b.py", "b")
    before = snapshot(tmp_path)
    assert changed_files(before, snapshot(tmp_path)) == []
    _touch(tmp_path / "a.py", "a2")
    (tmp_path / "b.py").unlink()
    _touch(tmp_path / "c.py", "c")
    assert [Path(f).name for f in changed_files(before, snapshot(tmp_path))] == ["a.py", "b.py", "c.py"]


def _wait_for(predicate, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_watch_redeploys_once_per_change_and_survives_a_failed_deploy(tmp_path):
    _touch(tmp_path / "agents.py", "v = 1\n")
    calls: list[float] = []
    lines: list[str] = []
    fail_next = threading.Event()

    def redeploy() -> None:
        calls.append(time.monotonic())
        if fail_next.is_set():
            fail_next.clear()
            raise DeployError("importing agents failed: SyntaxError")

    stop = threading.Event()
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(
        watch(tmp_path, redeploy, interval_s=0.05, settle_s=0.05, stop=stop, echo=lines.append)))
    thread.start()
    try:
        time.sleep(0.2)
        assert calls == []  # nothing changed yet: no deploy

        _touch(tmp_path / "agents.py", "v = 2\n")
        _wait_for(lambda: len(calls) == 1)

        fail_next.set()
        _touch(tmp_path / "agents.py", "v = (\n")
        _wait_for(lambda: len(calls) == 2)
        _wait_for(lambda: any("redeploy failed" in line for line in lines))

        _touch(tmp_path / "agents.py", "v = 3\n")  # fixed: deploys again
        _wait_for(lambda: len(calls) == 3)
        time.sleep(0.3)
        assert len(calls) == 3  # no change, no deploy
    finally:
        stop.set()
        thread.join(5)
    assert not thread.is_alive()
    assert result == [2]  # two successful redeploys; the failed one is not counted
    assert any("change in agents.py: redeploying" in line for line in lines)


def test_watch_is_bounded_by_max_polls(tmp_path):
    _touch(tmp_path / "agents.py", "x")
    started = time.monotonic()
    assert watch(tmp_path, lambda: None, interval_s=0.01, max_polls=5, echo=lambda _: None) == 0
    assert time.monotonic() - started < 2


AGENT = """
from soorma.agents.base import Agent

agent = Agent("{name}")
"""


def test_discover_agents_sees_a_changed_module(tmp_path):
    """A redeploy in the same process (the watch loop) imports the app's modules afresh."""
    import sys

    code = tmp_path / "app"
    _touch(code / "rediscover_agents_mod.py", AGENT.format(name="first"))
    try:
        app = load_app(code)
        assert app.modules == ["rediscover_agents_mod"]
        assert [f.agent.name for f in discover_agents(app)] == ["first"]
        _touch(code / "rediscover_agents_mod.py", AGENT.format(name="second"))
        assert [f.agent.name for f in discover_agents(load_app(code))] == ["second"]
    finally:
        sys.modules.pop("rediscover_agents_mod", None)


def test_two_apps_with_the_same_module_name_each_discover_their_own(tmp_path):
    """Two apps deployed from one process (the CDK app's entries, an in-process deploy) both have ``agents.py``: the
    second must not get the first's cached module."""
    import sys

    one, two = tmp_path / "one", tmp_path / "two"
    _touch(one / "agents.py", AGENT.format(name="first-app"))
    _touch(two / "agents.py", AGENT.format(name="second-app"))
    try:
        assert [f.agent.name for f in discover_agents(load_app(one))] == ["first-app"]
        assert [f.agent.name for f in discover_agents(load_app(two))] == ["second-app"]
        assert [f.agent.name for f in discover_agents(load_app(one))] == ["first-app"]
    finally:
        sys.modules.pop("agents", None)
