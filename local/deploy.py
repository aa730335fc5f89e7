"""``soorma local deploy PATH``: find the agents in a file or folder, create their functions on the local Lambda
runtime, register them in the registry, bind each to its function (the deployment binding, written through the
stack's control route ``PUT /_local/functions/{name}/binding``: the registry API refuses bindings, see
:mod:`soorma.local.bindings`), and run the folder's setup step once.

The app itself (its modules, setup step and defaults, from an optional ``soorma.toml``) is :mod:`soorma.app`'s,
which the CDK construct ``SoormaAgent`` reads too.

``soorma local deploy PATH --watch`` deploys, then polls the app's files (:func:`watch`) and deploys again when one
changes: the stack replaces each function's execution environments, so the next invocation runs the new code.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import httpx

from soorma.app import App, AppError, FoundAgent, discover_agents, function_name, load_app, setup_fingerprint

# The deployer's errors are the app's (one class): a deploy stops with the same message either way.
DeployError = AppError

@dataclass
class Deployer:
    """Deploys apps to a running local stack. ``api_url``/``api_key``: the developer's; ``control_token``: the
    stack's; ``setup_dir``: where setup fingerprints are kept; ``echo``: progress output; ``transport``: the
    stack's (``nats``: the bridge consumes for the agent; ``sqs``: the stack gives it a queue and an event source
    mapping), written into the agent's deployment binding."""

    api_url: str
    api_key: str
    control_token: str
    platform_tenant_id: str
    setup_dir: Path
    echo: Callable[[str], None] = print
    transport: str = "nats"

    def deploy(self, path: Path, *, run_setup: bool = True) -> list[dict[str, Any]]:
        app = load_app(path)
        agents = discover_agents(app)
        deployed = []
        with httpx.Client(base_url=self.api_url, timeout=60) as client:
            for found in agents:
                deployed.append(self._deploy_agent(client, app, found))
            self._wait_for_routes(client, [d["consumer"] for d in deployed])
        if run_setup and app.setup_command:
            self._setup(app)
        return deployed

    def _deploy_agent(self, client: httpx.Client, app: App, found: FoundAgent) -> dict[str, Any]:
        from soorma.functions.bridge.routes import consumer_name

        agent = found.agent
        name = function_name(app, agent)
        defaults = {"batch_size": 10, "max_concurrency": 2, "max_deliveries": 5, "timeout_seconds": 30}
        defaults.update(app.defaults)
        response = client.put(
            f"/_local/functions/{name}",
            headers={"x-soorma-control-token": self.control_token},
            json={
                "handler": found.handler,
                "code_dir": str(app.code_dir),
                "platform_tenant_id": self.platform_tenant_id,
                "agent_name": agent.name,
                "timeout_s": defaults["timeout_seconds"],
                "max_concurrency": defaults["max_concurrency"],
            },
        )
        _check(response, f"creating function {name}")
        # The agent's event definitions first (soorma-core's agents register them at startup; a function has no
        # startup before its first event), so discovery finds their descriptions and schemas as soon as it is live.
        # A definition the registry refuses (soorma-core code may name a topic that is not one of the 8, such as
        # "action-responses") is reported and skipped: the agent itself still deploys, as it did there.
        for event in agent.event_definitions():
            response = client.post(
                "/v1/events", headers={"authorization": f"Bearer {self.api_key}"}, json={"event": event}
            )
            if 400 <= response.status_code < 500:
                self.echo(f"warning: event {event.get('event_name')} of {agent.name} not registered "
                          f"({response.status_code}: {response.text[:200]})")
                continue
            _check(response, f"registering event {event.get('event_name')} of {agent.name}")
        definition = dict(agent.definition())
        definition.pop("deployment", None)
        response = client.post(
            "/v1/agents", headers={"authorization": f"Bearer {self.api_key}"}, json={"agent": definition}
        )
        _check(response, f"registering agent {agent.name}")
        # The binding goes through the stack's control route, which writes it into the agent of the function's own
        # platform tenant (the registry API refuses bindings: issue 12, finding 3).
        response = client.put(
            f"/_local/functions/{name}/binding",
            headers={"x-soorma-control-token": self.control_token},
            json={"agent_id": definition["agent_id"], "deployment": {
                "transport": self.transport,
                "subscriptions": [{"topic": str(t), "event_type": e} for t, e in agent.subscriptions()],
                **{k: defaults[k] for k in ("batch_size", "max_concurrency", "max_deliveries", "timeout_seconds")},
            }},
        )
        _check(response, f"binding agent {agent.name} to function {name}")
        subs = ", ".join(f"{t}:{e}" for t, e in agent.subscriptions())
        self.echo(f"deployed {agent.name} as function {name} ({found.handler}) on {subs}")
        return {"agent": agent.name, "function_name": name, "consumer": consumer_name(self.platform_tenant_id, agent.name)}

    def _wait_for_routes(self, client: httpx.Client, consumers: list[str], timeout_s: float = 20.0) -> None:
        """Wait until the bridge consumes (or, on the SQS transport, an event source mapping polls) for every new
        agent, so a goal sent right after the deploy is handled. Raises :class:`DeployError` after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            response = client.get("/_local/status", headers={"x-soorma-control-token": self.control_token})
            if response.status_code == 200:
                body = response.json()
                if self.transport == "sqs":
                    active = set((body.get("esm") or {}).keys())
                else:
                    bridge = body.get("bridge") or {}
                    active = set((bridge.get("consumers") or bridge).keys()) if isinstance(bridge, dict) else set()
                if all(c in active for c in consumers):
                    return
            time.sleep(0.25)
        what = "no event source mapping polls" if self.transport == "sqs" else "the bridge did not start consuming"
        raise DeployError(f"{what} for {', '.join(consumers)} within {timeout_s:.0f} s")

    def _setup(self, app: App) -> None:
        marker = self.setup_dir / f"{app.name}.sha256"
        fingerprint = setup_fingerprint(app)
        if marker.exists() and marker.read_text().strip() == fingerprint:
            self.echo(f"setup of {app.name} already done (rerun with --force-setup to run it again)")
            return
        command = [sys.executable if part == "python" else part for part in app.setup_command or ()]
        self.echo(f"running setup of {app.name}: {' '.join(app.setup_command or ())}")
        env = {**os.environ, "SOORMA_API_URL": self.api_url, "SOORMA_API_KEY": self.api_key}
        started = time.monotonic()
        result = subprocess.run(command, cwd=app.code_dir, env=env)
        if result.returncode != 0:
            raise DeployError(f"setup of {app.name} failed (exit {result.returncode}); it will run again next deploy")
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(fingerprint)
        self.echo(f"setup of {app.name} done in {time.monotonic() - started:.1f} s")


def _check(response: httpx.Response, what: str) -> None:
    if response.status_code >= 400:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        raise DeployError(f"{what} failed: HTTP {response.status_code}: {detail}")


# --- watch ---------------------------------------------------------------------------------------------------------

#: Folders never watched (tooling, caches, the local stack's own state).
IGNORED_DIRS = frozenset({".git", ".hg", ".svn", ".venv", "venv", ".soorma", "__pycache__", "node_modules",
                          ".pytest_cache", ".mypy_cache", ".ruff_cache", ".tox", "build", "dist"})
#: Files never watched (editor swap and backup files, compiled bytecode).
_IGNORED_FILE = re.compile(r"(^\.#|^#.*#$|~$|\.sw[a-p]$|\.py[co]$|\.tmp$)")
#: Bound on the files one snapshot looks at (a deploy of a huge folder must not stall the loop).
MAX_WATCHED_FILES = 20_000

Snapshot = dict[str, tuple[int, int]]


def watched_files(path: Path) -> Iterator[Path]:
    """The files whose change redeploys the app at ``path``: for a folder, every file under it (hidden and tool
    folders skipped); for a single ``.py`` file, the ``.py`` files beside it (the modules it may import) and a
    ``soorma.toml`` there."""
    path = path.resolve()
    if path.is_file():
        folder = path.parent
        yield from sorted(p for p in folder.glob("*.py") if p.is_file() and not _IGNORED_FILE.search(p.name))
        if (folder / "soorma.toml").is_file():
            yield folder / "soorma.toml"
        return
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames[:] = sorted(d for d in dirnames if d not in IGNORED_DIRS and not d.startswith(".")
                             and not d.endswith(".egg-info"))
        for filename in sorted(filenames):
            if not _IGNORED_FILE.search(filename):
                yield Path(dirpath) / filename


def snapshot(path: Path) -> Snapshot:
    """``{file: (mtime_ns, size)}`` of :func:`watched_files` (files that vanish while listed are left out)."""
    out: Snapshot = {}
    for count, file in enumerate(watched_files(path)):
        if count >= MAX_WATCHED_FILES:
            break
        try:
            st = file.stat()
        except OSError:
            continue
        out[str(file)] = (st.st_mtime_ns, st.st_size)
    return out


def changed_files(before: Snapshot, after: Snapshot) -> list[str]:
    """Files added, removed or modified between two snapshots."""
    return sorted(f for f in before.keys() | after.keys() if before.get(f) != after.get(f))


def watch(path: Path, redeploy: Callable[[], Any], *, interval_s: float = 1.0, settle_s: float = 0.2,
          stop: threading.Event | None = None, max_polls: int | None = None,
          echo: Callable[[str], None] = print) -> int:
    """Poll the files of the app at ``path`` every ``interval_s`` and call ``redeploy()`` after a change.

    A change is acted on once the files have been still for ``settle_s`` (an editor saving several files, or
    writing one in steps, causes one redeploy). A :class:`DeployError` from ``redeploy`` is reported through
    ``echo`` and watching goes on; the next change tries again. Returns (the number of successful redeploys) when
    ``stop`` is set or after ``max_polls`` polls (``None``: until interrupted).
    """
    stop = stop or threading.Event()
    current = snapshot(path)
    deployed = polls = 0
    while not stop.is_set() and (max_polls is None or polls < max_polls):
        if stop.wait(interval_s):
            break
        polls += 1
        latest = snapshot(path)
        if latest == current:
            continue
        while True:  # wait until the files stop changing
            if stop.wait(settle_s):
                return deployed
            settled = snapshot(path)
            if settled == latest:
                break
            latest = settled
        changes = changed_files(current, latest)
        current = latest
        shown = ", ".join(os.path.relpath(f, path if path.is_dir() else path.parent) for f in changes[:3])
        more = f" and {len(changes) - 3} more" if len(changes) > 3 else ""
        echo(f"change in {shown}{more}: redeploying")
        try:
            redeploy()
        except DeployError as exc:
            echo(f"redeploy failed: {exc} (fix it and save again)")
            continue
        deployed += 1
        # ``current`` is what was deployed: an edit made while the deploy ran is caught by the next poll
    return deployed
