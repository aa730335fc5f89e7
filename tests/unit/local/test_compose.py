"""The Compose path: local/compose.yaml against the Compose specification's JSON schema, its content, and
`soorma local up --docker` / `down --docker` (only the error path and the command line: no Docker engine here)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from soorma.cli.main import app
from soorma.local import compose
from soorma.local.stack import PLATFORM_FUNCTIONS

ROOT = Path(__file__).resolve().parents[3]


def compose_spec_errors(path: Path) -> list[dict]:
    """The errors of ``path`` against the Compose specification's JSON schema (compose-spec/compose-spec,
    schema/compose-spec.json) as check-jsonschema vendors and updates it (``--builtin-schema vendor.compose-spec``):
    ``[{"path": "$.services.x", "message": ...}, ...]``, empty when the file is valid."""
    result = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec", "--output-format",
         "json", str(path)],
        capture_output=True, text=True, timeout=120,
    )
    report = json.loads(result.stdout)
    assert (result.returncode == 0) == (report["status"] == "ok"), result.stdout + result.stderr
    return report["errors"]


@pytest.fixture(scope="module")
def doc() -> dict:
    return yaml.safe_load(compose.COMPOSE_FILE.read_text())


def test_compose_file_is_where_the_cli_looks():
    assert compose.COMPOSE_FILE == ROOT / "local" / "compose.yaml"


def test_compose_file_validates_against_the_compose_spec():
    errors = compose_spec_errors(compose.COMPOSE_FILE)
    assert not errors, "\n".join(f"{e['path']}: {e['message']}" for e in errors)


def test_the_schema_check_catches_mistakes(doc, tmp_path):
    # a control: the validation above would fail on a wrong file (written as JSON, a subset of YAML, so that the
    # anchors the services share are expanded and one change stays in one service)
    broken = json.loads(json.dumps(doc))
    broken["services"]["nats"]["imagee"] = "nats"
    broken["services"]["postgres"]["ports"] = "5432:5432"
    broken["services"]["registry"]["depends_on"]["postgres"]["condition"] = "service_ready"
    path = tmp_path / "compose.json"
    path.write_text(json.dumps(broken))
    paths = {e["path"] for e in compose_spec_errors(path)}
    assert {"$.services.nats", "$.services.postgres.ports", "$.services.registry.depends_on"} <= paths, paths


def test_nats_has_jetstream_and_postgres_has_pgvector(doc):
    services = doc["services"]
    assert "--jetstream" in services["nats"]["command"]
    assert any(p.endswith(":4222") for p in services["nats"]["ports"])
    image = services["postgres"]["image"]
    assert image.split(":")[0] == "pgvector/pgvector" and image.split(":")[1] in ("pg17", "pg18")
    assert services["postgres"]["healthcheck"]["test"][1] == "pg_isready"


def test_localstack_is_optional_and_takes_its_token_from_the_environment(doc):
    services = doc["services"]
    localstack = services["localstack"]
    assert localstack["profiles"] == ["localstack"]  # not started unless asked for
    assert localstack["environment"]["LOCALSTACK_AUTH_TOKEN"] == "${LOCALSTACK_AUTH_TOKEN:-}"
    assert not any("localstack" in (s.get("depends_on") or {}) for s in services.values())


def test_platform_functions_run_in_the_lambda_base_image(doc):
    services = doc["services"]
    for logical, (_name, handler) in PLATFORM_FUNCTIONS.items():
        service = services[logical]
        assert service["image"] == "public.ecr.aws/lambda/python:3.12"
        assert "entrypoint" not in service  # the image's own entrypoint: the Runtime Interface Emulator
        assert service["command"] == [handler]
        assert service["ports"] == [f"127.0.0.1:${{{compose.FUNCTION_PORTS[logical][0]}:-"
                                    f"{compose.FUNCTION_PORTS[logical][1]}}}:8080"]
        assert service["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert "soorma-task:/var/task:ro" in service["volumes"]
    # the repository is mounted (relative to the compose file) and installed into the functions' task root
    mount = next(v for v in services["packages"]["volumes"] if v.endswith(":/src:ro"))
    assert (compose.COMPOSE_FILE.parent / mount.split(":")[0]).resolve() == ROOT
    assert "/tmp/src[functions]" in services["packages"]["command"][0]


def test_every_published_port_is_loopback_only(doc):
    for name, service in doc["services"].items():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), (name, port)


# --- the CLI ---------------------------------------------------------------------------------------------------------

def _fake_docker(folder: Path, *, engine: bool, plugin: bool = True) -> Path:
    """A ``docker`` on PATH that records its arguments and answers like a client with (or without) an engine."""
    folder.mkdir(parents=True, exist_ok=True)
    calls = folder / "calls.txt"
    script = folder / "docker"
    script.write_text(f"""#!/bin/sh
echo "$@" >> {calls}
case "$1 $2" in
  "info "*) {"echo 28.2.2; exit 0" if engine else
             "echo 'Cannot connect to the Docker daemon at unix:///var/run/docker.sock.' >&2; exit 1"} ;;
  "compose version") {"echo 'Docker Compose version v2.39.1'; exit 0" if plugin else
                      "echo 'docker: unknown command: docker compose' >&2; exit 1"} ;;
esac
exit 0
""")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return calls


def _run(args: list[str], path: str, **env: str):
    clean = {k: v for k, v in os.environ.items() if k != "LOCALSTACK_AUTH_TOKEN"}
    return CliRunner().invoke(app, args, env={**clean, "PATH": path, **env})


def test_up_docker_without_docker_says_so(tmp_path):
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    result = _run(["local", "up", "--docker"], str(empty))
    assert result.exit_code == 1
    assert "Docker is not installed" in result.output and "soorma local up" in result.output


def test_up_docker_without_an_engine_or_plugin_names_both(tmp_path):
    _fake_docker(tmp_path / "bin", engine=False, plugin=False)
    result = _run(["local", "up", "--docker"], str(tmp_path / "bin"))
    assert result.exit_code == 1
    assert "Docker engine is not reachable" in result.output
    assert "Cannot connect to the Docker daemon" in result.output
    assert "Compose v2 plugin is missing" in result.output


def test_up_and_down_docker_run_compose_with_the_file(tmp_path):
    calls = _fake_docker(tmp_path / "bin", engine=True)
    path = f"{tmp_path / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"
    result = _run(["local", "up", "--docker"], path)
    assert result.exit_code == 0, result.output
    assert "nats://127.0.0.1:14222" in result.output and "SOORMA_DATABASE_URL=" in result.output
    assert calls.read_text().splitlines()[-1] == f"compose -p soorma -f {compose.COMPOSE_FILE} up -d"

    result = _run(["local", "up", "--docker"], path, LOCALSTACK_AUTH_TOKEN="ls-test")
    assert result.exit_code == 0, result.output
    assert calls.read_text().splitlines()[-1] == (
        f"compose -p soorma -f {compose.COMPOSE_FILE} --profile localstack up -d")
    assert "LocalStack" in result.output

    result = _run(["local", "down", "--docker"], path)
    assert result.exit_code == 0, result.output
    assert calls.read_text().splitlines()[-1] == (
        f"compose -p soorma -f {compose.COMPOSE_FILE} --profile localstack down")


def test_real_docker_client_without_engine(tmp_path):
    """On this machine the docker client exists but no engine runs: the real client's answer is reported."""
    import shutil
    import subprocess

    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("no docker client on this machine")
    if subprocess.run([docker, "info"], capture_output=True, timeout=30).returncode == 0:
        pytest.skip("a Docker engine is reachable here")
    with pytest.raises(compose.DockerUnavailable, match="engine is not reachable"):
        compose.check_docker()
