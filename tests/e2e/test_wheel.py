"""Soorma as a user installs it: the wheel built from this repository, installed with pip alone into a fresh venv
(``pip install '<wheel>[local]'``: no Makefile, no editable install, nothing from the source tree), runs
``soorma local up`` in an empty folder, deploys a copy of ``examples/research-advisor`` and answers a goal.

pip may use the lock (``-c constraints.txt``, the versions the other tests run) and its own cache, so the packages the
dev environment already downloaded are not fetched again."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import pytest

from soorma.testing import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "research-advisor"
# What a build copies of the repository: its sources, not its caches and environments.
NOT_SOURCES = shutil.ignore_patterns(".git", ".venv", ".soorma", "__pycache__", "*.egg-info", "build", "dist",
                                     "node_modules", "cdk.out", ".pytest_cache")


def _run(cmd: list[str], timeout: float, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kwargs)
    assert result.returncode == 0, f"{' '.join(map(str, cmd))}\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel ``pip wheel --no-deps`` builds from a copy of the repository (so the build leaves the tree as it is)."""
    base = tmp_path_factory.mktemp("wheel")
    source = base / "source"
    shutil.copytree(ROOT, source, ignore=NOT_SOURCES)
    _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(base / "dist"), str(source)], 600)
    (built,) = (base / "dist").glob("soorma-*.whl")
    return built


def test_the_wheel_carries_what_the_code_reads(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    migrations = {p.name for p in (ROOT / "functions" / "migrate" / "sql").glob("*.sql")}
    assert {n.rpartition("/")[2] for n in names if n.startswith("soorma/functions/migrate/sql/")} == migrations
    assert "soorma/functions/memory/embeddings/all-MiniLM-L6-v2/tokenizer.json" in names
    assert "soorma/functions/memory/embeddings/all-MiniLM-L6-v2/LICENSE" in names
    assert "soorma/py.typed" in names
    assert "soorma/local/compose.yaml" in names
    layers = {p.name for p in (ROOT / "layers").glob("*.txt")}  # what `soorma deploy` builds the Lambda layers from
    assert {n.rpartition("/")[2] for n in names if n.startswith("soorma/infra/layers/") and n.endswith(".txt")} == layers


def _log_errors(home: Path) -> str:
    """The ERROR lines and tracebacks of the stack's logs (for a failure's message)."""
    out = []
    for log in sorted((home / "logs").glob("*.log")) if (home / "logs").is_dir() else []:
        lines = log.read_text(errors="replace").splitlines()
        hits = [i for i, line in enumerate(lines) if "ERROR" in line or line.startswith("Traceback")]
        for i in hits[:5]:
            out.append(f"--- {log.name}:{i + 1}\n" + "\n".join(lines[i:i + 15]))
    return "\n".join(out)[-8000:]


def test_pip_install_of_the_wheel_runs_the_main_job(wheel):
    # Not pytest's tmp_path: other test runs on the machine rotate it away, and with it the stack's logs.
    tmp_path = Path(tempfile.mkdtemp(prefix="soorma-wheel-"))
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], 300)
    python, soorma = venv / "bin" / "python", venv / "bin" / "soorma"
    _run([str(python), "-m", "pip", "install", "--quiet", "-c", str(ROOT / "constraints.txt"), f"{wheel}[local]"],
         1200)
    where = _run([str(python), "-c", "import soorma; print(soorma.__file__)"], 60, cwd=tmp_path).stdout.strip()
    assert Path(where).is_relative_to(venv), where  # the installed package, not the source tree

    work = tmp_path / "work"
    shutil.copytree(EXAMPLE, work / "research-advisor", ignore=NOT_SOURCES)
    question = json.loads((EXAMPLE / "questions.json").read_text())[0]
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("SOORMA_") and k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    env.update({
        # as after `source venv/bin/activate`
        "PATH": f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}",
        "VIRTUAL_ENV": str(venv),
        "SOORMA_HOME": str(tmp_path / "home"),
        "SOORMA_LOCAL_PORT": str(free_port()),
        "SOORMA_NATS_PORT": str(free_port()),
    })

    def cli(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
        return subprocess.run([str(soorma), *args], env=env, cwd=work, capture_output=True, text=True,
                              timeout=timeout)

    home = tmp_path / "home"
    up = cli("local", "up")
    try:
        assert up.returncode == 0, up.stdout + up.stderr + _log_errors(home)
        deployed = cli("local", "deploy", "research-advisor")
        assert deployed.returncode == 0, deployed.stdout + deployed.stderr + _log_errors(home)
        done = cli("goal", "submit", "research.goal", "--data", json.dumps({"question": question["question"]}),
                   "--wait", "--timeout", "180", timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr + _log_errors(home)
        goal = json.loads(done.stdout)
        assert goal["status"] == "completed", goal
        payload = goal["result"].get("result", goal["result"])
        assert payload["answer"]
        cited = {source["module"] for source in payload["sources"]}
        assert set(question["expect_modules"]) & cited, payload
    finally:
        down = cli("local", "down", timeout=120)
        print(down.stdout, down.stderr)
        shutil.rmtree(venv, ignore_errors=True)
    assert down.returncode == 0, down.stdout + down.stderr
    shutil.rmtree(tmp_path, ignore_errors=True)  # kept after a failure, for the stack's logs
