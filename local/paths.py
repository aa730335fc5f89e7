"""Where the local stack keeps its state: everything lives under one folder, ``.soorma/`` by default.

The folder holds the stack's secrets (``secrets.json``: the API key pepper, the control token, the Lambda API's access
key, the NATS password and the ``soorma_app`` database password; ``credentials.json``: API keys; ``functions/*.json``:
agent keys), so it is readable by its owner only: folders are created 0700 and every file is created 0600 from its
first byte (:func:`write_private`), never written with the umask's mode and narrowed afterwards.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from soorma.settings import HOME
from soorma.urls import redact_url  # noqa: F401 - re-exported: the stack and the CLI redact with it


def default_home() -> Path:
    """``$SOORMA_HOME`` or ``./.soorma`` (relative to the current directory, like ``.git``)."""
    return Path(HOME.get() or Path.cwd() / ".soorma").resolve()


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
        """Create the stack's folders owner-only (0700); an existing ``.soorma/`` made by an older version with the
        umask's mode (0755) is narrowed to 0700 too."""
        for folder in (self.home, self.logs, self.functions, self.setup):
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            folder.chmod(0o700)
        gitignore = self.home / ".gitignore"
        if not gitignore.exists():
            write_private(gitignore, b"*\n")


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``, or None if it is missing or half-written."""
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None


def write_private(path: Path, data: bytes) -> None:
    """Replace ``path`` atomically with ``data``, readable and writable by the owner only (0600).

    The temporary file is created with ``O_CREAT | O_EXCL`` and mode 0600, so no other user can open it between its
    creation and the rename, even for a moment (a file written with the umask's 0644 and ``chmod``-ed afterwards can be
    opened by anyone in that window, and the open descriptor stays valid). Its name is unique, so two writers never
    share it; ``os.replace`` makes the switch atomic. Raises ``OSError`` when the folder is not writable.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_CLOEXEC", 0), 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_json(path: Path, value: dict[str, Any], *, private: bool = True) -> None:
    """Write ``value`` as JSON atomically with mode 0600 (:func:`write_private`). Every file of the stack's home is
    owner-only; ``private`` is kept for callers of the old signature and has no other effect."""
    write_private(path, json.dumps(value, indent=2, sort_keys=True).encode())


#: The stack's generated secrets and how each is made. ``aws_access_key_id``/``aws_secret_access_key`` sign requests
#: to the local Lambda Invoke API (AWS Signature Version 4); ``nats_password`` is the embedded NATS server's client
#: password (user :data:`NATS_USER`); ``app_db_password`` is the ``soorma_app`` role's password.
_GENERATED = {
    "api_key_pepper": lambda: secrets.token_urlsafe(32),
    "control_token": lambda: secrets.token_urlsafe(32),
    "aws_access_key_id": lambda: "LOCAL" + "".join(secrets.choice(_KEY_ID_ALPHABET) for _ in range(15)),
    "aws_secret_access_key": lambda: secrets.token_urlsafe(30),
    "nats_password": lambda: secrets.token_urlsafe(32),
    "app_db_password": lambda: secrets.token_urlsafe(32),
}
_KEY_ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
#: The embedded NATS server's one client user.
NATS_USER = "soorma"


def load_or_create_secrets(paths: StackPaths) -> dict[str, str]:
    """The stack's generated secrets (see ``_GENERATED``), each created on first use and kept in ``secrets.json``
    (0600). Returns every key of the file (the stack also keeps ``nats_url`` there: its NATS URL with credentials)."""
    current = read_json(paths.secrets) or {}
    changed = False
    for key, make in _GENERATED.items():
        if not current.get(key):
            current[key] = make()
            changed = True
    if changed:
        write_json(paths.secrets, current)
    return current
