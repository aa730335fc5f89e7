"""What the wheel carries besides modules: every file of the source tree that is not a module is listed in
``[tool.setuptools.package-data]`` (or named here as not needed at run time), and every listed pattern matches a file.

setuptools ships a non-module file only when package data names it, and a folder without ``__init__.py`` (the
migrations' ``sql/``) is no package, so nothing in it is shipped by default: the wheel once left the migrations out.
tests/e2e/test_wheel.py installs the real wheel; this is the quick check of the same rule."""

from __future__ import annotations

import fnmatch
import runpy
import subprocess
import tomllib
from pathlib import Path

import pytest
import setuptools

ROOT = Path(__file__).resolve().parents[2]
# Files in the package folders that the installed package never reads: the pinned AWS CDK CLI's npm manifest
# (`soorma deploy` runs `npx aws-cdk@<version>`; the manifest is for maintainers updating it).
NOT_PACKAGE_DATA = {"infra/package.json", "infra/package-lock.json"}


@pytest.fixture(scope="module")
def layout() -> tuple[dict[str, Path], dict[str, list[str]]]:
    """``({package: folder}, {package: package-data patterns})`` as setup.py and pyproject.toml give them to
    setuptools (setup.py runs with ``setuptools.setup`` replaced, to read its arguments)."""
    captured: dict = {}
    original = setuptools.setup
    setuptools.setup = lambda **kwargs: captured.update(kwargs)
    try:
        runpy.run_path(str(ROOT / "setup.py"))
    finally:
        setuptools.setup = original
    package_dir: dict[str, str] = captured["package_dir"]

    def folder(package: str) -> Path:
        base = max((p for p in package_dir if package == p or package.startswith(p + ".")), key=len)
        return ROOT / package_dir[base] / Path(*package[len(base):].split(".")[1:])

    folders = {package: folder(package) for package in captured["packages"]}
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    return folders, data


def _source_files() -> set[Path]:
    """The repository's files as git sees them (tracked, or new and not ignored): never build output, caches or
    ``infra/node_modules``, which are not the package's."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=ROOT,
                            capture_output=True, check=True).stdout.decode()
    return {ROOT / name for name in listed.split("\0") if name}


def _data_files(folder: Path) -> list[Path]:
    """The files of a package folder that are not modules, down into sub-folders that are not packages."""
    source = _source_files()
    found = []
    for path in folder.iterdir():
        if path.is_dir() and path.name != "__pycache__" and not (path / "__init__.py").exists():
            found += [p for p in path.rglob("*") if p.is_file() and p in source]
        elif path.is_file() and path.suffix not in (".py", ".pyc") and path in source:
            found.append(path)
    return found


def test_every_file_the_code_reads_is_package_data(layout):
    folders, data = layout
    missing = []
    for package, folder in folders.items():
        patterns = data.get(package, [])
        for path in _data_files(folder):
            relative = path.relative_to(folder).as_posix()
            if str(path.relative_to(ROOT)) in NOT_PACKAGE_DATA:
                continue
            if not any(fnmatch.fnmatch(relative, pattern) for pattern in patterns):
                missing.append(f"{path.relative_to(ROOT)} (package {package})")
    assert not missing, "not in [tool.setuptools.package-data], so not in the wheel:\n" + "\n".join(missing)


def test_every_package_data_pattern_matches_a_file(layout):
    folders, data = layout
    for package, patterns in data.items():
        assert package in folders, f"package-data names {package}, which setup.py does not build"
        files = [p.relative_to(folders[package]).as_posix() for p in _data_files(folders[package])]
        for pattern in patterns:
            assert fnmatch.filter(files, pattern), f"{package}: {pattern!r} matches no file"


def test_the_wheel_carries_the_migrations_the_tokenizer_and_py_typed(layout):
    folders, data = layout
    assert "sql/*.sql" in data["soorma.functions.migrate"]
    assert any(fnmatch.fnmatch("all-MiniLM-L6-v2/tokenizer.json", p) for p in data["soorma.functions.memory.embeddings"])
    assert (folders["soorma"] / "py.typed").is_file() and "py.typed" in data["soorma"]
