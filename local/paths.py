"""Where the local stack keeps its state: everything lives under one folder, ``.soorma/`` by default."""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def default_home() -> Path:
    """``$SOORMA_HOME`` or ``./.soorma`` (relative to the current directory, like ``.git``)."""
    return Path(os.environ.get("SOORMA_HOME") or Path.cwd() / ".soorma").resolve()


@dataclass(frozen=True)
class StackPaths:
    home: Path

    @property
    def state(self) -> Path:
        return self.home / "state.json"

    @property
    def credentials(self) -> Path:
        return self.home / "credentials.json"

    @property
    def secrets(self) -> Path:
        return self.home / "secrets.json"

    @property
    def logs(self) -> Path:
        return self.home / "logs"

    @property
    def postgres(self) -> Path:
        return self.home / "pg"

    @property
    def nats(self) -> Path:
        return self.home / "nats"

    @property
    def functions(self) -> Path:
        return self.home / "functions"

    @property
    def setup(self) -> Path:
        return self.home / "setup"

    def ensure(self) -> None:
        for folder in (self.home, self.logs, self.functions, self.setup):
            folder.mkdir(parents=True, exist_ok=True)
        gitignore = self.home / ".gitignore"
        if not gitignore.exists():
            gitignore.write_text("*\n")


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``, or None if it is missing or half-written."""
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None


def write_json(path: Path, value: dict[str, Any], *, private: bool = False) -> None:
    """Write atomically (temp file + rename), mode 0600 when ``private``."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(value, indent=2, sort_keys=True))
    if private:
        tmp.chmod(0o600)
    tmp.replace(path)


def load_or_create_secrets(paths: StackPaths) -> dict[str, str]:
    """The stack's generated secrets (API key pepper, control token), created on first use."""
    current = read_json(paths.secrets) or {}
    changed = False
    for key in ("api_key_pepper", "control_token"):
        if not current.get(key):
            current[key] = secrets.token_urlsafe(32)
            changed = True
    if changed:
        write_json(paths.secrets, current, private=True)
    return current
