"""An app: the agents of one file or folder, described by its optional ``soorma.toml`` (Chalice's idea: the code is
the manifest; module-level ``Worker``/``Tool``/``Planner``/``Agent`` objects are the functions).

Both deploy paths read it: ``soorma local deploy`` (:mod:`soorma.local.deploy`) and the CDK construct ``SoormaAgent``
(:mod:`soorma.infra.agent`), so an app deploys the same way to the laptop and to AWS.

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
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


class AppError(Exception):
    """The app cannot be loaded: the message names the problem and what to do (a missing path, a bad ``soorma.toml``,
    an import error with its cause, no agent objects)."""


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
    """Describe the app at ``path`` (a ``.py`` file or a folder). Raises :class:`AppError` if there is none."""
    path = path.resolve()
    if not path.exists():
        raise AppError(f"{path} does not exist")
    if path.is_file():
        if path.suffix != ".py":
            raise AppError(f"{path} is not a Python file")
        return App(name=_UNSAFE.sub("-", path.stem), code_dir=path.parent, modules=[path.stem])
    manifest = path / "soorma.toml"
    config: dict[str, Any] = {}
    if manifest.exists():
        try:
            config = tomllib.loads(manifest.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise AppError(f"{manifest}: {exc}") from None
    app_conf = config.get("app", {})
    setup = config.get("setup", {}).get("command")
    if setup is not None and (not isinstance(setup, list) or not all(isinstance(a, str) for a in setup)):
        raise AppError(f"{manifest}: [setup] command must be a list of strings")
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
        raise AppError(f"no Python modules to deploy in {path}")
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

    _forget_modules(app.code_dir)  # a redeploy (--watch) must see the files as they are now
    _forget_foreign(app)  # another app's module of the same name (agents.py) must not stand in for this one's
    importlib.invalidate_caches()
    sys.path.insert(0, str(app.code_dir))
    found: list[FoundAgent] = []
    seen: set[int] = set()
    try:
        for module_name in app.modules:
            try:
                module = importlib.import_module(module_name)
            except Exception as exc:  # noqa: BLE001 - any import error is the user's to see, with its cause
                raise AppError(f"importing {module_name} from {app.code_dir} failed: {type(exc).__name__}: {exc}") from exc
            for attr, value in vars(module).items():
                if isinstance(value, Agent) and id(value) not in seen:
                    seen.add(id(value))
                    found.append(FoundAgent(module_name, attr, value))
    finally:
        sys.path.remove(str(app.code_dir))
    if not found:
        raise AppError(f"no module-level agent objects (Worker, Tool, Planner, Agent) in {', '.join(app.modules)}")
    return found


def _forget_foreign(app: App) -> None:
    """Drop from ``sys.modules`` each of ``app.modules`` (and its submodules) that an earlier import loaded from
    another folder — two apps deployed from one process (the CDK app's several ``SoormaAgent`` entries, tests) both
    have ``agents.py``, and ``import agents`` would otherwise return the first app's module. Never soorma itself or
    anything installed in this interpreter's environment."""
    root = str(app.code_dir.resolve()) + os.sep
    keep = tuple(str(Path(p).resolve()) + os.sep for p in {sys.prefix, sys.base_prefix})
    for name, module in list(sys.modules.items()):
        if not any(name == m or name.startswith(m + ".") for m in app.modules):
            continue
        if name == "soorma" or name.startswith("soorma."):
            continue
        file = getattr(module, "__file__", None)
        try:
            resolved = str(Path(file).resolve()) if file else ""
        except OSError:
            resolved = ""
        if resolved.startswith(keep) or resolved.startswith(root):
            continue
        del sys.modules[name]


def _forget_modules(code_dir: Path) -> None:
    """Drop from ``sys.modules`` what an earlier import loaded from ``code_dir`` (never soorma itself, nor anything
    installed in this interpreter's environment, even if that lives inside ``code_dir``)."""
    root = str(code_dir.resolve()) + os.sep
    keep = tuple(str(Path(p).resolve()) + os.sep for p in {sys.prefix, sys.base_prefix})
    for name, module in list(sys.modules.items()):
        if name == "soorma" or name.startswith("soorma."):
            continue
        file = getattr(module, "__file__", None)
        if not file:
            continue
        try:
            resolved = str(Path(file).resolve())
        except OSError:
            continue
        if resolved.startswith(root) and not resolved.startswith(keep):
            del sys.modules[name]


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
