"""The local console's quick checks (the browser tests are tests/e2e/test_console.py): ``soorma local console``
prints the address and opens it without a key in it, the page's files are served with their security headers and
nothing else under ``/console`` is, and the page puts the platform's values in as text only."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient
from typer.testing import CliRunner

from soorma.cli.main import app
from soorma.local.console import STATIC_DIR, STATIC_FILES, console_routes


@pytest.fixture
def ready_stack(tmp_path, monkeypatch) -> Path:
    """A ``.soorma`` whose state says a stack is ready, run by this (live) process."""
    home = tmp_path / ".soorma"
    home.mkdir()
    (home / "state.json").write_text(json.dumps({"pid": os.getpid(), "status": "ready",
                                                  "api_url": "http://127.0.0.1:9", "home": str(home)}))
    (home / "credentials.json").write_text(json.dumps({"api_url": "http://127.0.0.1:9", "api_key": "sk_local_key"}))
    monkeypatch.setenv("SOORMA_HOME", str(home))
    return home


def test_console_opens_the_address_without_the_key(ready_stack, monkeypatch):
    opened: list[str] = []
    monkeypatch.setattr("webbrowser.open", lambda url, *a, **k: opened.append(url) or True)
    result = CliRunner().invoke(app, ["local", "console"], prog_name="soorma")
    assert result.exit_code == 0, result.stderr
    assert opened == ["http://127.0.0.1:9/console/"]
    assert "console: http://127.0.0.1:9/console/" in result.stdout
    assert "sk_local_key" not in result.stdout + result.stderr + opened[0]


def test_console_no_browser_only_prints(ready_stack, monkeypatch):
    monkeypatch.setattr("webbrowser.open", lambda *a, **k: pytest.fail("no browser with --no-browser"))
    result = CliRunner().invoke(app, ["local", "console", "--no-browser"], prog_name="soorma")
    assert result.exit_code == 0 and "http://127.0.0.1:9/console/" in result.stdout


def test_console_without_a_stack_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("SOORMA_HOME", str(tmp_path / "none"))
    result = CliRunner().invoke(app, ["local", "console", "--no-browser"], prog_name="soorma")
    assert result.exit_code == 1 and "soorma local up" in result.stderr


@pytest.fixture
def client() -> TestClient:
    # the page's routes need neither the stack nor the gateway (only the dead-letter routes use them)
    return TestClient(Starlette(routes=console_routes(stack=None, gateway=None)))  # type: ignore[arg-type]


def test_the_page_and_its_files_carry_the_security_headers(client):
    assert client.get("/console", follow_redirects=False).headers["location"] == "/console/"
    for path, media in (("/console/", "text/html"), *((f"/console/{n}", t.split(";")[0]) for n, t in STATIC_FILES.items())):
        answer = client.get(path)
        assert answer.status_code == 200 and answer.headers["content-type"].startswith(media), path
        policy = answer.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy and "default-src 'none'" in policy
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["cache-control"] == "no-store"


@pytest.mark.parametrize("path", ["/console/__init__.py", "/console/static", "/console/..%2F__init__.py",
                                  "/console/%2e%2e/server.py", "/console/index.htm"])
def test_nothing_else_under_console_is_served(client, path):
    assert client.get(path).status_code == 404


def test_the_script_never_parses_platform_values_as_html():
    """Data an agent wrote must not run script in the page that holds the key: no HTML sinks in the script, no
    inline script or handler in the page (the policy would block them anyway)."""
    script = (STATIC_DIR / "console.js").read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert sink not in script, sink
    page = (STATIC_DIR / "index.html").read_text()
    assert not re.search(r"<script>(?!</script>)|\son[a-z]+=", page)


def test_the_script_opens_the_stream_as_the_platform_names_it():
    """The page cannot import the platform's constants: its copies must be the ones the stream's $connect reads."""
    from soorma.functions.http_api import STREAM_BEARER_PROTOCOL_PREFIX, STREAM_PATH, STREAM_SUBPROTOCOL

    script = (STATIC_DIR / "console.js").read_text()
    for name, value in (("STREAM_PATH", STREAM_PATH), ("STREAM_SUBPROTOCOL", STREAM_SUBPROTOCOL),
                        ("STREAM_BEARER_PROTOCOL_PREFIX", STREAM_BEARER_PROTOCOL_PREFIX)):
        assert f'const {name} = "{value}";' in script, name
