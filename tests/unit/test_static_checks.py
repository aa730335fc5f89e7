"""The static checks the test command runs: mypy in strict mode on the SDK, and ruff on the whole tree.

What they check (files, strictness, third-party overrides, rule set, exclusions) is configured once, in
pyproject.toml's ``[tool.mypy]`` and ``[tool.ruff]``; these tests only run the tools from the repository root and fail
with their report. mypy keeps its cache in ``.mypy_cache``, so a run after the first takes about a second.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run_module(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m <args>`` in the repository root (where pyproject.toml is), with the interpreter running the tests,
    so the tools see the same installed packages."""
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_mypy_strict_passes_on_the_sdk():
    result = _run_module("mypy")
    assert result.returncode == 0, f"mypy (strict, [tool.mypy] files) found errors:\n{result.stdout}{result.stderr}"


def test_ruff_passes_on_the_tree():
    result = _run_module("ruff", "check", "--no-fix", "--output-format", "concise")
    assert result.returncode == 0, f"ruff check found problems:\n{result.stdout}{result.stderr}"
