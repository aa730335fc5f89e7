"""Fixtures of the local Lambda runtime tests: real awslambdaric subprocesses, handler modules in ``tmp_path``."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from soorma.local.runtime import LocalLambda


@pytest.fixture
def code_dir(tmp_path: Path) -> Path:
    path = tmp_path / "code"
    path.mkdir()
    return path


@pytest.fixture
def write_module(code_dir: Path):
    """``write_module("name", source)`` writes ``<code_dir>/name.py`` (dedented)."""

    def write(name: str, source: str) -> Path:
        target = code_dir / f"{name.replace('.', '/')}.py"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(textwrap.dedent(source))
        return target

    return write


@pytest.fixture
async def runtime(tmp_path: Path):
    lam = LocalLambda(logs_dir=tmp_path / "logs")
    try:
        yield lam
    finally:
        await lam.close()
