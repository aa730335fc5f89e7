"""Helpers shared by the end-to-end tests that run examples on a local stack: start one (free ports, a temporary
``SOORMA_HOME``), deploy apps to it, submit goals through the gateway's goal API and wait for them.

Test modules import them with ``from .conftest import ...`` and build their own module-scoped ``stack`` fixture
with :func:`local_stack`, so each module deploys only what it tests."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import httpx

from soorma.testing import free_port

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
SOORMA = str(Path(sys.executable).with_name("soorma"))
GOAL_TIMEOUT_S = 90


@contextmanager
def local_stack(prefix: str, deploy: Iterable[Path] = (), *, env: dict[str, str] | None = None,
                up_args: Iterable[str] = (), unset: Iterable[str] = ()) -> Iterator[dict[str, Any]]:
    """``soorma local up [up_args]`` in a fresh ``SOORMA_HOME`` on free ports, ``soorma local deploy`` of each path,
    and ``soorma local down`` at the end (the temporary folder is removed when ``down`` succeeded, unless
    ``SOORMA_E2E_KEEP`` is set: then its path is printed, with the stack's logs under ``s/logs``).

    ``env`` adds variables to the stack's environment (e.g. ``SOORMA_LLM_*``); ``unset`` removes more of the caller's
    than the defaults (``SOORMA_API_URL``, ``SOORMA_API_KEY``, ``SOORMA_NATS_URL``, ``SOORMA_PLATFORM_TENANT_ID``).
    Yields ``{"run", "env", "client", "home", "up", "credentials", "state"}``: ``run(*args)`` runs the CLI against
    this stack, ``env`` is its environment (for scripts), ``client`` an ``httpx.Client`` on the gateway with the
    stack's API key, ``home`` the stack's ``SOORMA_HOME``, ``up`` the finished ``soorma local up``, ``credentials``
    and ``state`` the stack's ``credentials.json`` and ``state.json``."""
    base = Path(tempfile.mkdtemp(prefix=prefix))
    home = base / "s"
    stack_env = {
        **os.environ,
        "SOORMA_HOME": str(home),
        "SOORMA_LOCAL_PORT": str(free_port()),
        "SOORMA_NATS_PORT": str(free_port()),
    }
    for name in ("SOORMA_API_URL", "SOORMA_API_KEY", "SOORMA_AUTH_TOKEN", "SOORMA_NATS_URL", "SOORMA_PLATFORM_TENANT_ID",
                 *unset):
        stack_env.pop(name, None)
    stack_env.update(env or {})

    def run(*args: str, timeout: float = 600, cwd: Path = ROOT) -> subprocess.CompletedProcess:
        return subprocess.run([SOORMA, *args], env=stack_env, cwd=cwd, capture_output=True, text=True,
                              timeout=timeout)

    up = run("local", "up", *up_args)
    try:
        if up.returncode != 0:
            log = home / "logs" / "stack.log"
            raise AssertionError(up.stdout + up.stderr + (log.read_text()[-3000:] if log.exists() else ""))
        for path in deploy:
            deployed = run("local", "deploy", str(path))
            assert deployed.returncode == 0, deployed.stdout + deployed.stderr
        credentials = json.loads((home / "credentials.json").read_text())
        state = json.loads((home / "state.json").read_text())
        client = httpx.Client(base_url=credentials["api_url"], timeout=30,
                              headers={"Authorization": f"Bearer {credentials['api_key']}"})
        try:
            yield {"run": run, "env": stack_env, "client": client, "home": home, "up": up,
                   "credentials": credentials, "state": state}
        finally:
            client.close()
    finally:
        down = run("local", "down", timeout=120)
        print(down.stdout, down.stderr)
        if down.returncode == 0 and not os.environ.get("SOORMA_E2E_KEEP"):
            shutil.rmtree(base, ignore_errors=True)
        else:
            print(f"stack home kept: {home}")


@contextmanager
def logs_kept_on_failure(stack: dict[str, Any], name: str) -> Iterator[None]:
    """Copy the stack's logs to ``.soorma/failed-tests/<name>-<time>/`` (and print where) when the block raises, so
    an intermittent failure can be diagnosed from the run that showed it; the stack's own folder is removed with it."""
    try:
        yield
    except BaseException:
        target = ROOT / ".soorma" / "failed-tests" / f"{name}-{time.strftime('%Y%m%dT%H%M%S')}"
        shutil.copytree(stack["home"] / "logs", target, dirs_exist_ok=True)
        print(f"stack logs kept: {target}")
        raise


def submit(client: httpx.Client, goal_type: str, data: dict, session_id: str | None = None) -> str:
    """``POST /v1/goals``; returns the goal id (asserts 202)."""
    body: dict[str, Any] = {"goal_type": goal_type, "data": data}
    if session_id is not None:
        body["session_id"] = session_id
    response = client.post("/v1/goals", json=body)
    assert response.status_code == 202, response.text
    return response.json()["goal_id"]


#: Goal states that are not final: the goal is still to be published (``pending``) or being worked on.
UNFINISHED = ("pending", "running")


def get_goal(client: httpx.Client, goal_id: str) -> dict:
    """``GET /v1/goals/{id}`` as an outside caller should make it: a 429 (the caller's own rate limit) is waited out
    for its ``Retry-After``, never taken for an answer; any other status than 200 fails the test."""
    while True:
        reply = client.get(f"/v1/goals/{goal_id}")
        if reply.status_code != 429:
            break
        time.sleep(float(reply.headers.get("retry-after", "1")))
    assert reply.status_code == 200, reply.text
    return reply.json()


def wait(client: httpx.Client, *goal_ids: str, timeout: float = GOAL_TIMEOUT_S) -> dict[str, dict]:
    """Poll ``GET /v1/goals/{id}`` until every goal is final (neither ``pending`` nor ``running``); returns them by
    id."""
    deadline = time.monotonic() + timeout
    done: dict[str, dict] = {}
    while len(done) < len(goal_ids):
        for goal_id in goal_ids:
            if goal_id in done:
                continue
            goal = get_goal(client, goal_id)
            if goal["status"] not in UNFINISHED:
                done[goal_id] = goal
        if time.monotonic() > deadline:
            raise AssertionError(f"goals still running after {timeout}s: {set(goal_ids) - set(done)}")
        time.sleep(0.2)
    return done


def wait_until(check: Callable[[], Any], what: str, timeout: float = GOAL_TIMEOUT_S, interval: float = 0.25) -> Any:
    """Call ``check()`` until it returns something truthy (returned); ``AssertionError`` naming ``what`` after
    ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s")
        time.sleep(interval)
