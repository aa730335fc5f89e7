"""``soorma local deploy PATH``: find the agents in a file or folder, create their functions on the local Lambda
runtime, register them (with their deployment binding) in the registry, and run the folder's setup step once.

A folder may hold ``soorma.toml``::

    [app]
    name = "research-advisor"          # default: the folder name
    modules = ["agents"]                # default: agents.py if present, else every top-level *.py

    [setup]
    command = ["python", "setup_corpus.py"]   # run once; again only when soorma.toml or the script changes

    [defaults]
    batch_size = 10
    max_concurrency = 2
    max_deliveries = 5
    timeout_seconds = 30
"""

from __future__ import annotations

import hashlib
import importlib
import os
import re
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import httpx

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


class DeployError(Exception):
    """A deploy cannot go on; the message names the problem and what to do."""


@dataclass
class FoundAgent:
    module: str
    attr: str
    agent: Any

    @property
    def handler(self) -> str:
        return f"{self.module}.{self.attr}"


@dataclass
class App:
    name: str
    code_dir: Path
    modules: list[str]
    setup_command: list[str] | None = None
    defaults: dict[str, Any] = field(default_factory=dict)
    manifest: Path | None = None


def load_app(path: Path) -> App:
    """Describe the app at ``path`` (a ``.py`` file or a folder). Raises :class:`DeployError` if there is none."""
    path = path.resolve()
    if not path.exists():
        raise DeployError(f"{path} does not exist")
    if path.is_file():
        if path.suffix != ".py":
            raise DeployError(f"{path} is not a Python file")
        return App(name=_UNSAFE.sub("-", path.stem), code_dir=path.parent, modules=[path.stem])
    manifest = path / "soorma.toml"
    config: dict[str, Any] = {}
    if manifest.exists():
        try:
            config = tomllib.loads(manifest.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise DeployError(f"{manifest}: {exc}") from None
    app_conf = config.get("app", {})
    setup = config.get("setup", {}).get("command")
    if setup is not None and (not isinstance(setup, list) or not all(isinstance(a, str) for a in setup)):
        raise DeployError(f"{manifest}: [setup] command must be a list of strings")
    modules = app_conf.get("modules")
    if modules is None:
        if (path / "agents.py").exists():
            modules = ["agents"]
        else:
            setup_files = {Path(a).stem for a in setup or () if a.endswith(".py")}
            modules = sorted(
                p.stem for p in path.glob("*.py")
                if not p.stem.startswith(("_", "test_", "setup")) and p.stem not in setup_files
            )
    if not modules:
        raise DeployError(f"no Python modules to deploy in {path}")
    return App(
        name=_UNSAFE.sub("-", app_conf.get("name", path.name)),
        code_dir=path,
        modules=list(modules),
        setup_command=setup,
        defaults=config.get("defaults", {}),
        manifest=manifest if manifest.exists() else None,
    )


def discover_agents(app: App) -> list[FoundAgent]:
    """Import the app's modules (from its folder) and return their module-level agent objects, each once."""
    from soorma.agents.base import Agent

    sys.path.insert(0, str(app.code_dir))
    found: list[FoundAgent] = []
    seen: set[int] = set()
    try:
        for module_name in app.modules:
            try:
                module = importlib.import_module(module_name)
            except Exception as exc:  # noqa: BLE001 - any import error is the user's to see, with its cause
                raise DeployError(f"importing {module_name} from {app.code_dir} failed: {type(exc).__name__}: {exc}") from exc
            for attr, value in vars(module).items():
                if isinstance(value, Agent) and id(value) not in seen:
                    seen.add(id(value))
                    found.append(FoundAgent(module_name, attr, value))
    finally:
        sys.path.remove(str(app.code_dir))
    if not found:
        raise DeployError(f"no module-level agent objects (Worker, Tool, Planner, Agent) in {', '.join(app.modules)}")
    return found


def function_name(app: App, agent: Any) -> str:
    return _UNSAFE.sub("-", f"{app.name}-{agent.name}")[:64]


def setup_fingerprint(app: App) -> str:
    """Hash of the manifest and of the files the setup command names: a change reruns the setup."""
    digest = hashlib.sha256()
    for part in [str(app.manifest and app.manifest.read_bytes()), *(app.setup_command or ())]:
        digest.update(part.encode())
        candidate = app.code_dir / part
        if candidate.is_file():
            digest.update(candidate.read_bytes())
    return digest.hexdigest()


@dataclass
class Deployer:
    """Deploys apps to a running local stack. ``api_url``/``api_key``: the developer's; ``control_token``: the
    stack's; ``setup_dir``: where setup fingerprints are kept; ``echo``: progress output."""

    api_url: str
    api_key: str
    control_token: str
    platform_tenant_id: str
    setup_dir: Path
    echo: Callable[[str], None] = print

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
        from soorma.local.routes import consumer_name

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
        definition = dict(agent.definition())
        definition["deployment"] = {
            "function_name": name,
            "transport": "nats",
            "subscriptions": [{"topic": str(t), "event_type": e} for t, e in agent.subscriptions()],
            **{k: defaults[k] for k in ("batch_size", "max_concurrency", "max_deliveries", "timeout_seconds")},
        }
        response = client.post(
            "/v1/agents", headers={"authorization": f"Bearer {self.api_key}"}, json={"agent": definition}
        )
        _check(response, f"registering agent {agent.name}")
        subs = ", ".join(f"{t}:{e}" for t, e in agent.subscriptions())
        self.echo(f"deployed {agent.name} as function {name} ({found.handler}) on {subs}")
        return {"agent": agent.name, "function_name": name, "consumer": consumer_name(self.platform_tenant_id, agent.name)}

    def _wait_for_routes(self, client: httpx.Client, consumers: list[str], timeout_s: float = 20.0) -> None:
        """Wait until the bridge consumes for every new agent, so a goal sent right after the deploy is handled."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            response = client.get("/_local/status", headers={"x-soorma-control-token": self.control_token})
            if response.status_code == 200:
                bridge = response.json().get("bridge") or {}
                active = set((bridge.get("consumers") or bridge).keys()) if isinstance(bridge, dict) else set()
                if all(c in active for c in consumers):
                    return
            time.sleep(0.25)
        raise DeployError(f"the bridge did not start consuming for {', '.join(consumers)} within {timeout_s:.0f} s")

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
