"""Precompiled Lambda bundles (``soorma.infra.packaging``: :func:`find_bytecode_python`, :func:`compile_tree`).

A CPython of the Lambda runtime's version (3.12) may or may not be installed where the tests run, so the mechanism
is tested with the host interpreter as the target (the ``version`` parameter, or ``packaging.LAMBDA_PYTHON`` monkeypatched in-process; the
deployed runtime is not changed): the built trees hold ``__pycache__/*.<host cache tag>.pyc`` in unchecked-hash mode
(PEP 552 flags ``0b01``), an interpreter started with ``-B -S`` imports from them without looking at the sources, a
mismatched interpreter is refused with a clear message, and with no interpreter the bundles ship as source and one
line says so.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from soorma.infra import packaging

HOST = f"{sys.version_info.major}.{sys.version_info.minor}"
OTHER = "3.12" if HOST != "3.12" else "3.13"  # a version the host interpreter is not
TAG = sys.implementation.cache_tag  # cpython-311 here


@pytest.fixture
def host_bytecode(monkeypatch) -> packaging.Bytecode:
    """The host interpreter, accepted as the compiler for a target of the host's version."""
    monkeypatch.setenv(packaging.LAMBDA_PYTHON_ENV, sys.executable)
    found = packaging.find_bytecode_python(HOST, log=lambda msg: None)
    assert found is not None and found.cache_tag == TAG and found.magic == importlib.util.MAGIC_NUMBER.hex()
    return found


@pytest.fixture
def no_installs(monkeypatch, tmp_path):
    """Interpreter discovery sees no pyenv, uv or system installs (this machine's pyenv has a 3.12)."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("PYENV_ROOT", raising=False)
    monkeypatch.delenv("UV_PYTHON_INSTALL_DIR", raising=False)
    monkeypatch.setattr(packaging, "WELL_KNOWN_PYTHON_DIRS", ())


@pytest.fixture
def fresh_resolution(monkeypatch):
    """Forget the process-wide resolution of :func:`packaging.lambda_bytecode` for the test."""
    monkeypatch.setattr(packaging, "_resolved", {})


def pyc_flags(path: Path) -> tuple[bytes, int]:
    """(magic number, PEP 552 flags word) of a ``.pyc`` header."""
    header = path.read_bytes()[:16]
    return header[:4], int.from_bytes(header[4:8], "little")


def sources(tree: Path) -> list[Path]:
    return [p for p in tree.rglob("*.py") if "__pycache__" not in p.parts]


def cached_pyc(source: Path) -> Path:
    return source.parent / "__pycache__" / f"{source.stem}.{TAG}.pyc"


def snapshot(tree: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(tree)): (p.stat().st_mtime_ns, p.stat().st_size) for p in tree.rglob("*") if p.is_file()}


def test_built_code_and_layer_hold_unchecked_hash_pyc(tmp_path, host_bytecode):
    code = packaging.build_code(cache_dir=tmp_path, log=lambda msg: None, bytecode=host_bytecode)
    assert f"-pyc-{TAG}-" in code.name
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    spec = packaging.LayerSpec("bytecode-test", str(empty), include_sdk=True)
    layer = packaging.build_layer(spec, target=packaging.Target.host(), cache_dir=tmp_path, log=lambda msg: None,
                                  bytecode=host_bytecode)
    assert f"-pyc-{TAG}-" in layer.name
    for tree in (code, layer / "python"):
        files = sources(tree)
        assert len(files) > 20
        missing = [str(p) for p in files if not cached_pyc(p).is_file()]
        assert not missing, missing[:5]
        for source in files:
            magic, flags = pyc_flags(cached_pyc(source))
            assert magic == importlib.util.MAGIC_NUMBER
            assert flags == 0b01, f"{cached_pyc(source)}: flags {flags:#b}, not unchecked-hash"


def test_import_from_the_tree_uses_the_bytecode(tmp_path, host_bytecode):
    """``-B -S``: the handler's modules load from their ``.pyc`` (``__cached__``), the sources are not consulted (a
    source edited after the build does not change what runs) and nothing is recompiled or written."""
    code = packaging.build_code(cache_dir=tmp_path / "cache", log=lambda msg: None, bytecode=host_bytecode)
    tree = tmp_path / "tree"
    packaging.copy_into(code, tree)  # hard links: the edit below replaces a file rather than writing through one
    boot = tree / "soorma" / "infra" / "runtime" / "boot.py"
    original = boot.read_text()
    boot.unlink()
    boot.write_text(original + "\nEDITED_AFTER_BUILD = True\n")
    before = snapshot(tree)
    child = (
        "import json, os, sys\n"
        f"sys.path[:0] = [{str(tree)!r}, {sysconfig.get_paths()['purelib']!r}]\n"
        "import soorma.functions.registry.handler, soorma.infra.runtime.boot as boot\n"
        f"root = {str(tree)!r}\n"
        "mods = [m for m in list(sys.modules.values()) if (getattr(m, '__file__', None) or '').startswith(root)]\n"
        "print(json.dumps({'edited': hasattr(boot, 'EDITED_AFTER_BUILD'), 'count': len(mods),\n"
        "  'uncached': [m.__name__ for m in mods if not (m.__cached__ and os.path.isfile(m.__cached__))],\n"
        "  'loader': type(boot.__loader__).__name__}))\n"
    )
    for flags in (["-B", "-S"], ["-S"]):  # without -B too: a .pyc Python rejected would be rewritten
        result = subprocess.run([sys.executable, *flags, "-c", child], capture_output=True, text=True, timeout=120,
                                env={"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path)})
        assert result.returncode == 0, result.stderr[-3000:]
        report = json.loads(result.stdout.strip().splitlines()[-1])
        assert report["count"] > 10, report
        assert report["uncached"] == [], report
        assert report["edited"] is False, "the source was read: the unchecked-hash .pyc was not used"
        assert snapshot(tree) == before, "a .pyc was written or rewritten"


def test_source_bundle_is_a_separate_cache_entry(tmp_path, host_bytecode):
    compiled = packaging.build_code(cache_dir=tmp_path, log=lambda msg: None, bytecode=host_bytecode)
    source = packaging.build_code(cache_dir=tmp_path, log=lambda msg: None, bytecode=None)
    assert compiled != source and "-src-" in source.name
    assert not list(source.rglob("*.pyc")) and list(compiled.rglob("*.pyc"))
    spec = packaging.LAYERS["platform"]
    target = packaging.Target.lambda_arm64()
    assert packaging.layer_hash(spec, target, host_bytecode) != packaging.layer_hash(spec, target, None)
    assert packaging.code_hash(bytecode=host_bytecode) != packaging.code_hash(bytecode=None)
    other = packaging.Bytecode(python="x", version="9.9", full_version="9.9.0", cache_tag="cpython-99", magic="00")
    assert packaging.layer_hash(spec, target, other) != packaging.layer_hash(spec, target, host_bytecode)


def test_lambda_bytecode_follows_the_runtime_version(monkeypatch, fresh_resolution, tmp_path):
    """With the runtime version monkeypatched to the host's, the Lambda target's default build is compiled."""
    monkeypatch.setattr(packaging, "LAMBDA_PYTHON", HOST)
    monkeypatch.setenv(packaging.LAMBDA_PYTHON_ENV, sys.executable)
    lines: list[str] = []
    found = packaging.lambda_bytecode(log=lines.append)
    assert found is not None and found.version == HOST and found.cache_tag == TAG
    assert len(lines) == 1 and "precompiling" in lines[0] and sys.executable in lines[0]
    assert packaging.lambda_bytecode(log=lines.append) is found and len(lines) == 1  # resolved once
    code = packaging.build_code(cache_dir=tmp_path, log=lines.append)
    assert f"-pyc-{TAG}-" in code.name and list(code.rglob(f"*.{TAG}.pyc"))


def test_mismatched_interpreter_named_by_the_variable_is_refused(monkeypatch):
    monkeypatch.setenv(packaging.LAMBDA_PYTHON_ENV, sys.executable)
    with pytest.raises(packaging.BytecodeInterpreterError) as error:
        packaging.find_bytecode_python(OTHER, log=lambda msg: None)
    message = str(error.value)
    assert f"{packaging.LAMBDA_PYTHON_ENV}={sys.executable} refused" in message
    assert f"CPython {platform_version()}" in message and f"runtime is CPython {OTHER}" in message
    assert f"set it to a CPython {OTHER} interpreter, or unset it" in message


def test_mismatched_interpreter_on_path_is_refused_and_source_shipped(monkeypatch, tmp_path, no_installs):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / f"python{OTHER}").symlink_to(sys.executable)  # a python3.12 that is not one
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.delenv(packaging.LAMBDA_PYTHON_ENV, raising=False)
    lines: list[str] = []
    assert packaging.find_bytecode_python(OTHER, log=lines.append) is None
    assert len(lines) == 1
    assert f"is CPython {platform_version()}, but the Lambda runtime is CPython {OTHER}" in lines[0]
    assert "as source" in lines[0] and packaging.LAMBDA_PYTHON_ENV in lines[0]


def test_no_interpreter_ships_source_and_says_so(monkeypatch, fresh_resolution, tmp_path, no_installs):
    monkeypatch.setenv("PATH", str(tmp_path / "nothing-here"))
    monkeypatch.delenv(packaging.LAMBDA_PYTHON_ENV, raising=False)
    lines: list[str] = []
    code = packaging.build_code(cache_dir=tmp_path / "cache", log=lines.append)
    assert "-src-" in code.name
    assert not list(code.rglob("*.pyc")) and not list(code.rglob("__pycache__"))
    said = [line for line in lines if "bytecode" in line]
    assert len(said) == 1, lines
    version = packaging.LAMBDA_PYTHON
    assert said[0] == (
        f"soorma bundling: shipping the Lambda code and layers as source, not bytecode (no python{version} on PATH, "
        f"in pyenv or uv, and {packaging.LAMBDA_PYTHON_ENV} unset), so every cold start compiles what it imports; to precompile, "
        f"install CPython {version} (python{version} on PATH) or set "
        f"{packaging.LAMBDA_PYTHON_ENV}=/path/to/python{version}")
    packaging.build_code(cache_dir=tmp_path / "cache", log=lines.append)
    assert len([line for line in lines if "bytecode" in line]) == 1  # one line per process, not per bundle


def test_an_unselected_pyenv_version_is_found_behind_a_refusing_shim(monkeypatch, tmp_path, no_installs):
    """A pyenv shim on PATH that refuses (the version is installed but not selected) does not stop the search:
    ``$PYENV_ROOT/versions/<version>.*/bin`` is searched next, newest patch first."""
    bin_dir = tmp_path / "shims"
    bin_dir.mkdir()
    shim = bin_dir / f"python{HOST}"
    shim.write_text("#!/bin/sh\necho 'pyenv: version not installed' >&2\nexit 127\n")
    shim.chmod(0o755)
    root = tmp_path / "pyenv"
    for patch in ("0", "10", "9"):
        folder = root / "versions" / f"{HOST}.{patch}" / "bin"
        folder.mkdir(parents=True)
        (folder / f"python{HOST}").symlink_to(sys.executable)
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setenv("PYENV_ROOT", str(root))
    monkeypatch.delenv(packaging.LAMBDA_PYTHON_ENV, raising=False)
    assert packaging.candidate_pythons(HOST) == [str(shim)] + [
        str(root / "versions" / f"{HOST}.{patch}" / "bin" / f"python{HOST}") for patch in ("10", "9", "0")]
    lines: list[str] = []
    found = packaging.find_bytecode_python(HOST, log=lines.append)
    assert found is not None and found.python == packaging.candidate_pythons(HOST)[1] and found.cache_tag == TAG
    assert len(lines) == 1 and "precompiling" in lines[0] and f"{HOST}.10" in lines[0]


def test_the_runtime_and_the_wheels_follow_one_setting():
    from soorma.infra import bundling, platform

    version = packaging.LAMBDA_PYTHON
    assert bundling.LAMBDA_RUNTIME.name == f"python{version}"
    flags = packaging.Target.lambda_arm64().pip_flags
    assert flags[flags.index("--python-version") + 1] == version
    assert platform.BRIDGE_IMAGE.endswith(f"python:{version}-slim")


def platform_version() -> str:
    import platform

    return platform.python_version()
