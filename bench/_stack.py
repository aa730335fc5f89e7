"""A fresh local stack for one benchmark run: ``soorma local up`` in a temporary ``SOORMA_HOME`` on free ports (below
the ephemeral range, :mod:`soorma.testing.ports`), ``soorma local down`` however the run ends. The benchmarks import
it as a sibling module (``python bench/<name>.py`` puts ``bench/`` on ``sys.path``)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from soorma.testing import free_port

ROOT = Path(__file__).resolve().parents[1]
SOORMA = str(Path(sys.executable).with_name("soorma"))


@dataclass
class BenchStack:
    """``home``: the stack's ``SOORMA_HOME`` (its ``credentials.json``, ``secrets.json``, ``logs/``); ``env``: the
    environment the CLI runs with."""

    home: Path
    env: dict[str, str]

    def soorma(self, *command: str) -> None:
        """Run ``soorma <command>`` against this stack from the repository root. Raises ``SystemExit`` with its output
        when it fails."""
        result = subprocess.run([SOORMA, *command], env=self.env, cwd=ROOT, capture_output=True, text=True)
        if result.returncode != 0:
            raise SystemExit(f"soorma {' '.join(command)} failed:\n{result.stdout}\n{result.stderr}")


@contextmanager
def fresh_stack(prefix: str, *, env: Mapping[str, str] | None = None, unset: Iterable[str] = ()
                ) -> Iterator[BenchStack]:
    """A stack up for the block (``prefix``: of its temporary folder). ``env``: more variables for the stack;
    ``unset``: variables of the caller's environment it must not see (another stack's URL or key, say)."""
    home = Path(tempfile.mkdtemp(prefix=prefix)) / "s"
    stack_env = {**os.environ, "SOORMA_HOME": str(home), "SOORMA_LOCAL_PORT": str(free_port()),
                 "SOORMA_NATS_PORT": str(free_port()), **(env or {})}
    for name in unset:
        stack_env.pop(name, None)
    stack = BenchStack(home, stack_env)
    stack.soorma("local", "up")
    try:
        yield stack
    finally:
        stack.soorma("local", "down")
