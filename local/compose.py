"""The Compose path: ``soorma local up --docker`` runs ``local/compose.yaml`` with Docker Compose.

The file starts NATS (JetStream), PostgreSQL with pgvector, the platform functions in the public Lambda Python base
image (each behind the Runtime Interface Emulator that image includes) and, only with ``LOCALSTACK_AUTH_TOKEN`` set,
LocalStack. Nothing here is needed by the default, Docker-free stack (``soorma local up``).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

from soorma.local import settings

COMPOSE_FILE = Path(__file__).resolve().with_name("compose.yaml")
PROJECT = "soorma"

#: Host ports of the Compose services (each overridable with the variable named in compose.yaml).
NATS_PORT = (settings.DOCKER_NATS_PORT.name, settings.DOCKER_NATS_PORT.default)
POSTGRES_PORT = (settings.DOCKER_PG_PORT.name, settings.DOCKER_PG_PORT.default)
LOCALSTACK_PORT = (settings.DOCKER_LOCALSTACK_PORT.name, settings.DOCKER_LOCALSTACK_PORT.default)
#: Platform function → (port variable, default host port) of its Runtime Interface Emulator.
FUNCTION_PORTS: dict[str, tuple[str, int]] = {
    logical: (setting.name, setting.default) for logical, setting in settings.DOCKER_FUNCTION_PORTS.items()
}
_PORT_SETTINGS = {s.name: s for s in (settings.DOCKER_NATS_PORT, settings.DOCKER_PG_PORT,
                                      settings.DOCKER_LOCALSTACK_PORT, *settings.DOCKER_FUNCTION_PORTS.values())}

Runner = Callable[..., subprocess.CompletedProcess]


class DockerUnavailable(RuntimeError):
    """Docker (the client, its Compose plugin or a reachable engine) is missing; the message says what to do."""


def _port(setting: tuple[str, int]) -> int:
    return _PORT_SETTINGS[setting[0]].get()


def compose_command(*args: str, localstack: bool | None = None) -> list[str]:
    """``docker compose -p soorma -f local/compose.yaml [--profile localstack] ARGS``.

    LocalStack's profile is enabled when ``LOCALSTACK_AUTH_TOKEN`` is set (``localstack=None``) or when asked.
    """
    if localstack is None:
        localstack = bool(settings.LOCALSTACK_AUTH_TOKEN.get())
    command = ["docker", "compose", "-p", PROJECT, "-f", str(COMPOSE_FILE)]
    if localstack:
        command += ["--profile", "localstack"]
    return [*command, *args]


def check_docker(run: Runner = subprocess.run, which: Callable[[str], str | None] = shutil.which) -> str:
    """Return the Docker engine's version, or raise :class:`DockerUnavailable` naming every missing piece."""
    if which("docker") is None:
        raise DockerUnavailable(
            "Docker is not installed (no `docker` command on PATH). `soorma local up --docker` needs Docker with "
            "the Compose plugin; without Docker, run `soorma local up`, which needs neither Docker nor an account.")
    problems = []
    engine = ""
    try:
        info = run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True,
                   timeout=20)
        engine = info.stdout.strip()
        if info.returncode != 0 or not engine:
            reason = (info.stderr or info.stdout).strip().splitlines()
            problems.append("the Docker engine is not reachable"
                            + (f" ({reason[-1]})" if reason else "")
                            + ": start it (Docker Desktop, or `sudo systemctl start docker`) or point DOCKER_HOST at one")
    except subprocess.TimeoutExpired:
        problems.append("the Docker engine did not answer `docker info` within 20 s")
    try:
        version = run(["docker", "compose", "version"], capture_output=True, text=True, timeout=20)
        if version.returncode != 0:
            problems.append("the Docker Compose v2 plugin is missing (`docker compose version` failed): install "
                            "docker-compose-plugin")
    except subprocess.TimeoutExpired:
        problems.append("`docker compose version` did not answer within 20 s")
    if problems:
        raise DockerUnavailable("Docker cannot run the Compose stack: " + "; ".join(problems)
                                + ". Without Docker, `soorma local up` runs the same platform.")
    return engine


def up(run: Runner = subprocess.run, extra: Sequence[str] = ()) -> int:
    """``docker compose ... up -d`` (output goes to this terminal); returns its exit code."""
    check_docker(run)
    return run(compose_command("up", "-d", *extra)).returncode


def down(run: Runner = subprocess.run, *, volumes: bool = False) -> int:
    """``docker compose ... down`` (``-v`` also removes the database and package volumes)."""
    check_docker(run)
    return run(compose_command("down", *(["-v"] if volumes else []), localstack=True)).returncode


def endpoints() -> dict[str, str]:
    """What the Compose stack serves on this machine."""
    out = {
        "nats_url": f"nats://127.0.0.1:{_port(NATS_PORT)}",
        "database_url": f"postgresql://soorma:soorma@127.0.0.1:{_port(POSTGRES_PORT)}/soorma",
    }
    for name, setting in FUNCTION_PORTS.items():
        out[f"function:{name}"] = (f"http://127.0.0.1:{_port(setting)}/2015-03-31/functions/function/invocations")
    if settings.LOCALSTACK_AUTH_TOKEN.get():
        out["aws_endpoint_url"] = f"http://127.0.0.1:{_port(LOCALSTACK_PORT)}"
    return out
