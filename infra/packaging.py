"""Building the Lambda code and layers on the local machine, without Docker (no AWS CDK import here).

The CDK app calls these through ``ILocalBundling`` (:mod:`soorma.infra.bundling`); ``bench/cold_start.py`` calls them
directly to build the same contents for the host interpreter and time a cold start.

* **Layers** (``layers/*.txt``): ``pip install --target <dir>/python --only-binary=:all:`` with ``--platform``
  ``manylinux2014_aarch64`` / ``manylinux_2_28_aarch64`` (the Lambda Python 3.12 runtime is Amazon Linux 2023, glibc
  2.34) and ``--python-version 3.12 --implementation cp``, so no compiler and no container is needed: pip only picks
  wheels. The result is pruned (bytecode caches, test suites, type stubs, console scripts) and cached under
  ``<cache>/<name>-<hash>/``, the hash covering the requirement file, the pip flags and the build code, so a second
  synth copies (hard-links) the cached folder instead of running pip again.
* **Code**: the ``soorma`` package as it is installed (the SDK, ``soorma.functions`` and ``soorma.infra.runtime``),
  laid out as ``soorma/...`` so the handler paths are the same as in the local stack.
* **Bytecode**: when the deploying machine has a CPython of the Lambda runtime's version (:data:`LAMBDA_PYTHON`;
  ``$SOORMA_LAMBDA_PYTHON``, else ``python3.12`` on ``PATH``, in pyenv or uv: :func:`candidate_pythons`), every bundle built for Lambda is compiled with it
  (``compileall --invalidation-mode unchecked-hash``, see :func:`compile_tree`), so a cold start reads ``.pyc`` files
  instead of compiling every imported module (``/opt`` is read-only in Lambda, so nothing compiled there is kept).
  Otherwise the bundles ship as source and one line says so. The cache key and the CDK asset hash name the variant
  (``src`` or ``pyc-cpython-312``), so a source bundle is never reused as a compiled one or the other way round.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from soorma.infra import settings


def _layers_dir() -> Path:
    """Where the layers' requirement files are: package ``soorma.infra.layers``, which setup.py maps to the
    repository's ``layers/`` (the same folder in an editable install, package data in a wheel)."""
    import importlib.util

    spec = importlib.util.find_spec("soorma.infra.layers")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("soorma.infra.layers is not installed: reinstall soorma (pip install 'soorma[infra]')")
    return Path(next(iter(spec.submodule_search_locations))).resolve()


LAYERS_DIR = _layers_dir()
# The Lambda runtime's Python version: the one setting behind pip's --python-version, the functions' and layers'
# runtime (soorma.infra.bundling.LAMBDA_RUNTIME), the bridge's image and the interpreter that compiles the bytecode.
LAMBDA_PYTHON = "3.12"
# An interpreter path for compiling the bundles (else python<LAMBDA_PYTHON> on PATH); see find_bytecode_python().
LAMBDA_PYTHON_ENV = settings.LAMBDA_PYTHON.name
LAMBDA_PLATFORMS = ("manylinux2014_aarch64", "manylinux_2_28_aarch64")
# Build-code version: bump when the pruning or layout rules change so cached bundles are rebuilt.
BUNDLE_FORMAT = "6"

# Removed from every bundle: never imported at run time.
_PRUNE_DIRS = {"__pycache__", "tests", "test"}
_PRUNE_SUFFIXES = (".pyc", ".pyo", ".pyi", ".a", ".h", ".c", ".cpp", ".pxd", ".pyx")
# Whole sub-trees never imported by the functions: console scripts, C headers, and onnxruntime's model conversion
# and quantisation tools (InferenceSession does not import them).
_PRUNE_PATHS = (
    "bin",
    "numpy/_core/include",
    "numpy/f2py",
    "numpy/_pyinstaller",
    "onnxruntime/tools",
    "onnxruntime/transformers",
    "onnxruntime/quantization",
    "onnxruntime/datasets",
)
# Files never loaded: onnxruntime's C-API library (the Python binding links the runtime statically).
_PRUNE_GLOBS = ("onnxruntime/capi/libonnxruntime.so*",)


def default_cache_dir() -> Path:
    """``$SOORMA_CDK_CACHE``, else ``<repo or cwd>/.soorma/cdk-cache``."""
    override = settings.CDK_CACHE.get()
    if override:
        return Path(override)
    repo = LAYERS_DIR.parent
    base = repo if (repo / "pyproject.toml").exists() else Path.cwd()
    return base / ".soorma" / "cdk-cache"


@dataclass(frozen=True)
class Target:
    """Which interpreter the bundle is for: ``lambda`` (arm64, CPython 3.12) or ``host`` (this interpreter)."""

    name: str
    pip_flags: tuple[str, ...]

    @classmethod
    def lambda_arm64(cls) -> "Target":
        flags: list[str] = []
        for plat in LAMBDA_PLATFORMS:
            flags += ["--platform", plat]
        flags += ["--python-version", LAMBDA_PYTHON, "--implementation", "cp", "--only-binary=:all:"]
        return cls("lambda-arm64-py" + LAMBDA_PYTHON.replace(".", ""), tuple(flags))

    @classmethod
    def host(cls) -> "Target":
        return cls(f"host-py{sys.version_info.major}{sys.version_info.minor}", ("--only-binary=:all:",))


@dataclass(frozen=True)
class LayerSpec:
    """One layer: a requirement file of ``layers/``, whether pip resolves dependencies, and extra content."""

    name: str
    requirements: str
    no_deps: bool = False
    extra_no_deps: str | None = None  # a second requirement file of layers/, installed with --no-deps
    include_sdk: bool = False  # add the soorma SDK (and soorma.infra.runtime) to the layer
    tokenizer: bool = False  # add all-MiniLM-L6-v2's tokenizer.json as soorma-model/tokenizer.json
    # Distributions pip installs as dependencies that another layer of the same functions already carries: removed
    # after the install (their RECORD files), so Lambda's merged /opt/python holds one copy, from that layer.
    provided_by_other_layers: tuple[str, ...] = ()
    description: str = ""

    @property
    def requirements_path(self) -> Path:
        return LAYERS_DIR / self.requirements

    @property
    def requirement_files(self) -> list[Path]:
        return [self.requirements_path] + ([LAYERS_DIR / self.extra_no_deps] if self.extra_no_deps else [])


LAYERS: dict[str, LayerSpec] = {
    "db": LayerSpec("db", "db.txt", description="psycopg (binary) and psycopg-pool: every platform function's"),
    "platform": LayerSpec("platform", "platform.txt",
                          provided_by_other_layers=("typing_extensions",),  # layer "db" (psycopg needs it)
                          description="FastAPI, Mangum, pydantic, nats-py, Powertools"),
    "auth": LayerSpec("auth", "auth.txt",
                      description="PyJWT and cryptography: the authorizer's and the identity service's JWTs"),
    "schemas": LayerSpec("schemas", "schemas.txt", provided_by_other_layers=("typing_extensions",),
                         description="jsonschema: JSON Schema validation of input answers and MCP tool arguments"),
    # The protocols function's alone (its A2A and MCP servers); what layers "platform" and "db" carry is theirs.
    "protocols": LayerSpec("protocols", "protocols.txt", extra_no_deps="protocols-nodeps.txt", provided_by_other_layers=(
        "annotated_types", "anyio", "attrs", "h11", "idna", "jsonschema", "jsonschema_specifications",
        "opentelemetry_api", "pydantic", "pydantic_core", "referencing", "rpds_py", "starlette", "typing_extensions",
        "typing_inspection"),
        description="a2a-sdk's server and the MCP SDK: the protocols function's A2A and MCP endpoints"),
    "embeddings": LayerSpec(
        "embeddings", "embeddings.txt", no_deps=True, tokenizer=True,
        description="onnxruntime, tokenizers, numpy, all-MiniLM-L6-v2 (int8): the local embedding model",
    ),
    "sdk": LayerSpec("sdk", "sdk.txt", include_sdk=True, description="the soorma SDK, pydantic, httpx, Powertools"),
    "bridge": LayerSpec("bridge", "bridge.txt", description="psycopg, nats-py, boto3 for the NATS bridge"),
}

# Where the tokenizer lands inside a layer (Lambda mounts layers at /opt).
TOKENIZER_LAYER_PATH = "soorma-model/tokenizer.json"


# --------------------------------------------------------------------------------------------------- hashing


def _hash_files(digest: "hashlib._Hash", root: Path, files: Iterable[Path]) -> None:
    for path in sorted(files):
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        digest.update(path.read_bytes())


def _source_files(folder: Path) -> list[Path]:
    return [
        p for p in folder.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and not p.name.endswith((".pyc", ".pyo"))
    ]


def layer_hash(spec: LayerSpec, target: Target, bytecode: "Bytecode | None" = None) -> str:
    """Content hash of a layer: requirement file, pip flags, build rules, the SDK sources or tokenizer when included,
    and the bytecode variant (:func:`variant`: the compiling interpreter's cache tag and magic number, or none)."""
    digest = hashlib.sha256()
    digest.update(f"{BUNDLE_FORMAT}\0{spec}\0{target}\0".encode())
    if bytecode is not None:
        digest.update(f"{bytecode.fingerprint}\0".encode())
    for path in spec.requirement_files:
        digest.update(path.read_bytes())
    if spec.include_sdk:
        for root, files in _sdk_sources():
            _hash_files(digest, root, files)
    if spec.tokenizer:
        from soorma.functions.memory.embeddings import PACKAGED_TOKENIZER

        digest.update(PACKAGED_TOKENIZER.read_bytes())
    return digest.hexdigest()[:20]


def code_hash(parts: tuple[str, ...] = ("sdk", "functions", "runtime"), bytecode: "Bytecode | None" = None) -> str:
    """Content hash of the platform code bundle: its sources, the build rules and the bytecode variant."""
    digest = hashlib.sha256(f"{BUNDLE_FORMAT}\0{parts}\0".encode())
    if bytecode is not None:
        digest.update(f"{bytecode.fingerprint}\0".encode())
    for root, files in _code_sources(parts):
        _hash_files(digest, root, files)
    return digest.hexdigest()[:20]


def tree_hash(path: Path) -> str:
    """Content hash of a user's agent file or folder."""
    digest = hashlib.sha256(BUNDLE_FORMAT.encode())
    if path.is_file():
        _hash_files(digest, path.parent, [path])
    else:
        _hash_files(digest, path, [p for p in _source_files(path) if not _excluded_user_path(path, p)])
    return digest.hexdigest()[:20]


# --------------------------------------------------------------------------------------------------- sources


def _package_dir(module: str) -> Path:
    import importlib

    return Path(importlib.import_module(module).__file__).resolve().parent


#: What of ``soorma.infra.runtime`` every function needs: the boot module, Lambda's entry point of every function
#: (stdlib only). The registrar and the bridge's entry point are the platform's and ship only in its code bundles.
RUNTIME_BOOT = ("__init__.py", "boot.py", "settings.py")


def _sdk_sources() -> list[tuple[Path, list[Path]]]:
    """The SDK (package ``soorma`` without the CLI and the nested parts) and the boot module of
    ``soorma.infra.runtime`` (:data:`RUNTIME_BOOT`)."""
    sdk = _package_dir("soorma")
    skip = {"cli", "functions", "local", "infra", "testing"}
    files = [p for p in _source_files(sdk) if not (set(p.relative_to(sdk).parts[:1]) & skip)]
    runtime = _package_dir("soorma.infra.runtime")
    return [(sdk, files), (runtime, [runtime / name for name in RUNTIME_BOOT])]


def _runtime_files(parts: tuple[str, ...]) -> list[Path]:
    """``soorma.infra.runtime`` beyond the boot module: all of it (part ``runtime``) or the bridge's entry point
    (part ``bridge``)."""
    runtime = _package_dir("soorma.infra.runtime")
    if "runtime" in parts:
        return [p for p in _source_files(runtime) if p.name not in RUNTIME_BOOT]
    if "bridge" in parts:
        return [runtime / "bridge_main.py"]
    return []


#: The platform functions' modules the NATS bridge runs (``soorma.infra.runtime.bridge_main``): the bridge, the
#: database plumbing its route reader uses, and the registry's route read model. Nothing of the web-serving functions
#: and nothing of the local stack (tests/unit/test_architecture.py lists the bundle's imports).
BRIDGE_MODULES = (
    "__init__.py",
    "shared/__init__.py",
    "shared/capacity.py",
    "shared/db.py",
    "shared/settings.py",
    "bridge",
    "registry/__init__.py",
    "registry/models.py",
    "registry/routes.py",
)


def _function_files(parts: tuple[str, ...]) -> tuple[Path, list[Path]] | None:
    """``soorma.functions``' files for a code bundle: all of them (part ``functions``), only the bridge's (part
    ``bridge``, :data:`BRIDGE_MODULES`), or none."""
    functions = _package_dir("soorma.functions")
    if "functions" in parts:
        return functions, _source_files(functions)
    if "bridge" in parts:
        files: list[Path] = []
        for entry in BRIDGE_MODULES:
            path = functions / entry
            files += _source_files(path) if path.is_dir() else [path]
        return functions, files
    return None


def _code_sources(parts: tuple[str, ...]) -> list[tuple[Path, list[Path]]]:
    out: list[tuple[Path, list[Path]]] = []
    if "sdk" in parts or "runtime" in parts:
        out += _sdk_sources()
    if _runtime_files(parts):
        out.append((_package_dir("soorma.infra.runtime"), _runtime_files(parts)))
    functions = _function_files(parts)
    if functions is not None:
        out.append(functions)
    return out


def _copy_file(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src, dst)


def write_sdk(dest: Path) -> None:
    """Lay the SDK out as ``dest/soorma/...`` with ``soorma.infra.runtime.boot`` (the entry point of every function).

    ``soorma/infra/__init__.py`` is written empty: the real one only re-exports the CDK constructs lazily, and a
    function has no use for them."""
    (sdk, sdk_files), (runtime, runtime_files) = _sdk_sources()
    for path in sdk_files:
        _copy_file(path, dest / "soorma" / path.relative_to(sdk))
    for path in runtime_files:
        _copy_file(path, dest / "soorma" / "infra" / "runtime" / path.relative_to(runtime))
    (dest / "soorma" / "infra" / "__init__.py").write_text('"""Deployment glue (the CDK constructs are not shipped)."""\n')


def write_code(dest: Path, parts: tuple[str, ...] = ("sdk", "functions", "runtime")) -> Path:
    """The platform functions' code: the SDK and ``soorma.functions`` (all of it, or only the bridge's modules)."""
    dest.mkdir(parents=True, exist_ok=True)
    write_sdk(dest)
    runtime = _package_dir("soorma.infra.runtime")
    for path in _runtime_files(parts):
        _copy_file(path, dest / "soorma" / "infra" / "runtime" / path.relative_to(runtime))
    functions = _function_files(parts)
    if functions is not None:
        root, files = functions
        for path in files:
            _copy_file(path, dest / "soorma" / "functions" / path.relative_to(root))
    return dest


def _excluded_user_path(root: Path, path: Path) -> bool:
    rel = path.relative_to(root).parts
    return any(part in {"__pycache__", ".venv", "venv", ".git", ".soorma", "cdk.out", "node_modules", ".pytest_cache"}
               for part in rel) or path.suffix in (".pyc", ".pyo")


def write_agent_code(entry: Path, dest: Path) -> Path:
    """A user's agent: the file alone, or the folder without virtualenvs, caches and build output."""
    dest.mkdir(parents=True, exist_ok=True)
    if entry.is_file():
        _copy_file(entry, dest / entry.name)
        return dest
    for path in _source_files(entry):
        if not _excluded_user_path(entry, path):
            _copy_file(path, dest / path.relative_to(entry))
    return dest


# --------------------------------------------------------------------------------------------------- bytecode


class BytecodeInterpreterError(RuntimeError):
    """``$SOORMA_LAMBDA_PYTHON`` names no usable CPython of the Lambda runtime's version."""


@dataclass(frozen=True)
class Bytecode:
    """A CPython interpreter whose ``.pyc`` files the Lambda runtime loads: same implementation and ``major.minor``
    (the bytecode format and magic number are fixed within a released CPython minor version)."""

    python: str  # the interpreter's path
    version: str  # "3.12": the target it was checked against
    full_version: str  # "3.12.1"
    cache_tag: str  # "cpython-312": the name part of __pycache__/<module>.<cache_tag>.pyc
    magic: str  # importlib.util.MAGIC_NUMBER, hex

    @property
    def tag(self) -> str:
        """The variant's name in cache folders and asset hashes: ``pyc-cpython-312``."""
        return f"pyc-{self.cache_tag}"

    @property
    def fingerprint(self) -> str:
        """What the hashes cover: the cache tag, the magic number and the invalidation mode."""
        return f"{self.tag}-{self.magic}-unchecked-hash"


_PROBE = ("import importlib.util, json, sys; print(json.dumps({'implementation': sys.implementation.name, "
          "'version': list(sys.version_info[:3]), 'cache_tag': sys.implementation.cache_tag, "
          "'magic': importlib.util.MAGIC_NUMBER.hex(), 'executable': sys.executable}))")


def probe_python(python: str, version: str = LAMBDA_PYTHON) -> tuple[Bytecode | None, str]:
    """Run ``python`` and check it can compile for CPython ``version``: ``(Bytecode, "")`` or ``(None, why not)``.

    The check is ``sys.implementation.name == "cpython"`` and ``sys.version_info[:2]`` equal to ``version``: the
    import system only loads ``__pycache__/<name>.<sys.implementation.cache_tag>.pyc`` whose magic number is its
    own (`PEP 3147 <https://peps.python.org/pep-3147/>`_), so ``.pyc`` files of any other version are dead weight."""
    try:
        result = subprocess.run([python, "-I", "-S", "-c", _PROBE], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as exc:
        return None, f"{python} does not run ({exc})"
    if result.returncode != 0:
        first = (result.stderr.strip().splitlines() or [f"exit status {result.returncode}"])[0]
        return None, f"{python} does not run ({first})"
    try:
        info = json.loads(result.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None, f"{python} printed no version"
    found = ".".join(str(n) for n in info["version"][:2])
    if info["implementation"] != "cpython" or found != version:
        name = {"cpython": "CPython", "pypy": "PyPy"}.get(info["implementation"], info["implementation"])
        return None, (f"{python} is {name} {'.'.join(map(str, info['version']))}, but the Lambda runtime is "
                      f"CPython {version}")
    return Bytecode(python=python, version=version, full_version=".".join(map(str, info["version"])),
                    cache_tag=info["cache_tag"], magic=info["magic"]), ""


def _enable_hint(version: str) -> str:
    return f"install CPython {version} (python{version} on PATH) or set {LAMBDA_PYTHON_ENV}=/path/to/python{version}"


# The system prefixes candidate_pythons() searches last, after PATH, pyenv's versions (a pyenv shim on PATH only
# runs the versions pyenv has selected, so a deploy from a project pinned to another version would otherwise ship
# source) and uv's managed interpreters.
WELL_KNOWN_PYTHON_DIRS: tuple[str, ...] = ("/usr/local/bin", "/usr/bin", "/opt/homebrew/bin")


def candidate_pythons(version: str = LAMBDA_PYTHON) -> list[str]:
    """Interpreter paths that may be CPython ``version`` (``major.minor``), in the order they are tried: every
    ``python<version>`` on ``PATH``, ``$PYENV_ROOT/versions/<version>.*/bin`` (default ``~/.pyenv``, newest patch
    first), uv's ``~/.local/share/uv/python/cpython-<version>.*/bin``, then :data:`WELL_KNOWN_PYTHON_DIRS`.
    Paths only: :func:`probe_python` decides."""
    name = f"python{version}"
    found: list[str] = []

    def add(path: Path | str | None) -> None:
        if path and os.access(path, os.X_OK) and str(path) not in found:
            found.append(str(path))

    for folder in os.environ.get("PATH", "").split(os.pathsep):
        if folder:
            add(Path(folder) / name)

    def by_patch(folder: Path) -> tuple[int, ...]:
        digits = folder.name.split("-")[1 if folder.name.startswith("cpython-") else 0].split(".")
        return tuple(int(d) if d.isdigit() else -1 for d in digits)

    home = Path(os.environ.get("HOME") or Path.home())
    pyenv = Path(os.environ.get("PYENV_ROOT") or home / ".pyenv") / "versions"
    uv = Path(os.environ.get("UV_PYTHON_INSTALL_DIR") or home / ".local" / "share" / "uv" / "python")
    for root, pattern in ((pyenv, f"{version}.*"), (uv, f"cpython-{version}.*")):
        if root.is_dir():
            for folder in sorted(root.glob(pattern), key=by_patch, reverse=True):
                add(folder / "bin" / name)
    for folder in WELL_KNOWN_PYTHON_DIRS:
        add(Path(folder) / name)
    return found


def find_bytecode_python(version: str = LAMBDA_PYTHON, *, log=None) -> Bytecode | None:
    """The interpreter that compiles the Lambda bundles, or ``None`` (they then ship as source); logs one line.

    ``$SOORMA_LAMBDA_PYTHON`` (an interpreter path) if set, else the first of :func:`candidate_pythons` (``PATH``,
    pyenv, uv, system prefixes) that passes :func:`probe_python`. An explicit ``$SOORMA_LAMBDA_PYTHON`` that does
    not raises :class:`BytecodeInterpreterError` (it asked for bytecode); candidates that do not (a pyenv shim of an
    unselected version, another implementation) are skipped, and when none is left the line says why the first
    was refused. ``version`` is the target ``major.minor`` (the tests pass the host's; deploys use
    :data:`LAMBDA_PYTHON`)."""
    log = log or (lambda msg: print(msg, file=sys.stderr))
    explicit = settings.LAMBDA_PYTHON.get()
    if explicit:
        found, why = probe_python(explicit, version)
        if found is None:
            raise BytecodeInterpreterError(f"{LAMBDA_PYTHON_ENV}={explicit} refused: {why}; set it to a CPython "
                                           f"{version} interpreter, or unset it to ship the Lambda bundles as source")
    else:
        found, why = None, f"no python{version} on PATH, in pyenv or uv, and {LAMBDA_PYTHON_ENV} unset"
        refusals: list[str] = []
        for path in candidate_pythons(version):
            found, refused = probe_python(path, version)
            if found is not None:
                break
            refusals.append(refused)
        if found is None and refusals:
            why = refusals[0] + (f"; {len(refusals) - 1} more refused" if len(refusals) > 1 else "")
    if found is None:
        log(f"soorma bundling: shipping the Lambda code and layers as source, not bytecode ({why}), so every cold "
            f"start compiles what it imports; to precompile, {_enable_hint(version)}")
    else:
        log(f"soorma bundling: precompiling the Lambda code and layers with {found.python} (CPython "
            f"{found.full_version}, unchecked-hash .pyc)")
    return found


_resolved: dict[tuple[str | None, ...], Bytecode | None] = {}


def lambda_bytecode(*, log=None) -> Bytecode | None:
    """:func:`find_bytecode_python` for :data:`LAMBDA_PYTHON`, resolved (and logged) once per process and setting:
    what every Lambda bundle of this process is compiled with (``None``: shipped as source)."""
    key = (LAMBDA_PYTHON, settings.LAMBDA_PYTHON.raw(),
           *(os.environ.get(name) for name in ("PATH", "HOME", "PYENV_ROOT", "UV_PYTHON_INSTALL_DIR")))
    if key not in _resolved:
        _resolved[key] = find_bytecode_python(LAMBDA_PYTHON, log=log)
    return _resolved[key]


def variant(bytecode: Bytecode | None) -> str:
    """``src`` or the compiling interpreter's tag (``pyc-cpython-312``): part of every cache key and asset hash."""
    return "src" if bytecode is None else bytecode.tag


def compile_tree(root: Path, bytecode: Bytecode, log=None) -> None:
    """Compile every ``.py`` under ``root`` to ``__pycache__/*.<cache_tag>.pyc`` with ``bytecode``'s interpreter.

    ``python -m compileall -q -j 0 --invalidation-mode unchecked-hash <root>``
    (`compileall <https://docs.python.org/3/library/compileall.html>`_). Unchecked-hash ``.pyc`` files
    (`PEP 552 <https://peps.python.org/pep-0552/>`_, flags word ``0b01``; `py_compile.PycInvalidationMode
    <https://docs.python.org/3/library/py_compile.html#py_compile.PycInvalidationMode>`_) are loaded without
    comparing anything with the source: the default timestamp ``.pyc`` records the source's mtime and size, and the
    zip upload and extraction into ``/var/task`` and ``/opt`` do not preserve mtimes reliably, so such files could be
    ignored (and, ``/opt`` being read-only, recompiled on every cold start); checked-hash ones would make every
    import read and hash its source. The bundles are immutable once deployed, so there is nothing to check. Files
    that do not compile (none in the platform's bundles) are reported and left as source."""
    log = log or (lambda msg: print(msg, file=sys.stderr))
    cmd = [bytecode.python, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash", str(root)]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode == 1:  # some file did not compile; the others did
        log(f"soorma bundling: compileall left some files of {root} as source:\n{result.stdout[-2000:]}")
    elif result.returncode != 0:
        raise RuntimeError(f"compileall failed ({result.returncode}): {' '.join(cmd)}\n"
                           f"{(result.stdout + result.stderr)[-4000:]}")


_AUTO = object()


def _bytecode_for(target: Target, bytecode, log) -> Bytecode | None:
    """``bytecode`` as given, or for ``_AUTO``: :func:`lambda_bytecode` for the Lambda target, none for the host."""
    if bytecode is not _AUTO:
        return bytecode
    return lambda_bytecode(log=log) if target == Target.lambda_arm64() else None


# --------------------------------------------------------------------------------------------------- layers


def prune(root: Path) -> None:
    """Remove what is never imported at run time (see the module docstring)."""
    for rel in _PRUNE_PATHS:
        shutil.rmtree(root / rel, ignore_errors=True)
    for pattern in _PRUNE_GLOBS:
        for path in root.glob(pattern):
            path.unlink()
    for path in sorted(root.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if path.is_dir() and not path.is_symlink() and path.name in _PRUNE_DIRS:
            shutil.rmtree(path, ignore_errors=True)
        elif path.is_file() and path.name.endswith(_PRUNE_SUFFIXES):
            path.unlink()


def _pip(args: list[str], log) -> None:
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile", *args]
    log(f"soorma bundling: {' '.join(cmd[3:])}")
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"pip failed ({result.returncode}): {' '.join(cmd)}\n{result.stderr[-4000:]}")


def _tokenizer_json(target_dir: Path) -> None:
    """all-MiniLM-L6-v2's ``tokenizer.json``, as the soorma package ships it, at :data:`TOKENIZER_LAYER_PATH`."""
    from soorma.functions.memory.embeddings import PACKAGED_TOKENIZER

    _copy_file(PACKAGED_TOKENIZER, target_dir / TOKENIZER_LAYER_PATH)


def _link_tree(src: Path, dst: Path) -> None:
    """Copy ``src`` into ``dst`` with hard links when possible (same file system), else real copies."""

    def link(s: str, d: str) -> None:
        try:
            os.link(s, d)
        except OSError:
            shutil.copy2(s, d)

    shutil.copytree(src, dst, copy_function=link, dirs_exist_ok=True, symlinks=True)


def _cached(key: str, cache_dir: Path, build, log) -> Path:
    """``cache_dir/key``, built once with ``build(tmp_dir)`` and renamed into place atomically."""
    final = cache_dir / key
    if (final / ".complete").exists():
        return final
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=cache_dir))
    try:
        build(tmp)
        (tmp / ".complete").write_text(key)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if (final / ".complete").exists():  # another process finished the same bundle meanwhile
            return final
        raise
    log(f"soorma bundling: cached {final}")
    return final


def build_layer(spec: LayerSpec, *, target: Target | None = None, cache_dir: Path | None = None, log=None,
                bytecode=_AUTO) -> Path:
    """The layer's folder (``python/...`` and extra files), from the cache or built now. Returns the cached path.

    ``bytecode``: the interpreter that compiles it (:func:`compile_tree`), ``None`` for source only; by default
    :func:`lambda_bytecode` for the Lambda target and source for the host one."""
    target = target or Target.lambda_arm64()
    cache_dir = cache_dir or default_cache_dir()
    log = log or (lambda msg: print(msg, file=sys.stderr))
    bytecode = _bytecode_for(target, bytecode, log)
    key = f"layer-{spec.name}-{target.name}-{variant(bytecode)}-{layer_hash(spec, target, bytecode)}"

    def build(tmp: Path) -> None:
        site = tmp / "python"
        args = ["--target", str(site), *target.pip_flags, "-r", str(spec.requirements_path)]
        if spec.no_deps:
            args.insert(0, "--no-deps")
        _pip(args, log)
        if spec.extra_no_deps:
            _pip(["--no-deps", "--target", str(site), *target.pip_flags, "-r", str(LAYERS_DIR / spec.extra_no_deps)],
                 log)
        for distribution in spec.provided_by_other_layers:
            remove_distribution(site, distribution)
        prune(site)
        if spec.include_sdk:
            write_sdk(site)
        if spec.tokenizer:
            _tokenizer_json(tmp)
        if bytecode is not None:
            compile_tree(site, bytecode, log)

    return _cached(key, cache_dir, build, log)


def remove_distribution(site: Path, name: str) -> list[Path]:
    """Delete an installed distribution from ``site``: every file its ``*.dist-info/RECORD`` lists (the wheel
    format's manifest, `PEP 376 <https://peps.python.org/pep-0376/>`_) and the dist-info folder; returns what was
    removed. ``name`` is the distribution's normalized name (``typing_extensions``). Raises ``FileNotFoundError``
    when it is not installed there (a requirement file changed and the exclusion no longer applies)."""
    infos = [d for d in site.glob("*.dist-info")
             if d.name.removesuffix(".dist-info").rsplit("-", 1)[0].lower().replace(".", "_") == name.lower()]
    if not infos:
        raise FileNotFoundError(f"{name} is not installed in {site}: nothing to leave to another layer")
    removed: list[Path] = []
    for info in infos:
        for line in (info / "RECORD").read_text().splitlines():
            relative = line.split(",", 1)[0]
            path = (site / relative).resolve()
            if relative and path.is_file() and site.resolve() in path.parents:
                path.unlink()
                removed.append(path)
        shutil.rmtree(info, ignore_errors=True)
    # now-empty package folders, deepest first, up to the site: a folder that held only folders (data files in
    # nested directories) is empty once those are gone
    root = site.resolve()
    folders = {parent for p in removed for parent in p.parents if root in parent.parents}
    for folder in sorted(folders, key=lambda p: -len(p.parts)):
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
    return removed


def requirements_hash(requirements: Path, target: Target, bytecode: Bytecode | None = None) -> str:
    """Content hash of a user's requirements layer: the file, the pip flags, the build rules, the bytecode variant."""
    fingerprint = "" if bytecode is None else bytecode.fingerprint
    return hashlib.sha256(f"{BUNDLE_FORMAT}\0{target}\0{fingerprint}\0".encode()
                          + requirements.read_bytes()).hexdigest()[:20]


def build_requirements_layer(requirements: Path, *, target: Target | None = None, cache_dir: Path | None = None,
                             log=None, bytecode=_AUTO) -> Path:
    """A layer from a user's ``requirements.txt`` (an agent folder's own dependencies); ``bytecode`` as for
    :func:`build_layer`."""
    spec = LayerSpec(f"user-{requirements.parent.name}", requirements.name)
    target = target or Target.lambda_arm64()
    cache_dir = cache_dir or default_cache_dir()
    log = log or (lambda msg: print(msg, file=sys.stderr))
    bytecode = _bytecode_for(target, bytecode, log)
    digest = requirements_hash(requirements, target, bytecode)

    def build(tmp: Path) -> None:
        _pip(["--target", str(tmp / "python"), *target.pip_flags, "-r", str(requirements)], log)
        prune(tmp / "python")
        if bytecode is not None:
            compile_tree(tmp / "python", bytecode, log)

    return _cached(f"layer-{spec.name}-{target.name}-{variant(bytecode)}-{digest}", cache_dir, build, log)


def copy_into(src: Path, output_dir: Path) -> None:
    """Place a cached bundle into CDK's bundling output folder (hard links; the marker file is left out)."""
    _link_tree(src, Path(output_dir))
    marker = Path(output_dir) / ".complete"
    if marker.exists():
        marker.unlink()


# --------------------------------------------------------------------------------------------------- sizes


def zipped_size(folder: Path) -> int:
    """Bytes of ``folder`` as a deflate zip (what Lambda's 50 MB direct-upload limit counts)."""
    with tempfile.TemporaryFile() as fh:
        with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
            for path in sorted(Path(folder).rglob("*")):
                if path.is_file() and path.name != ".complete":
                    zf.write(path, path.relative_to(folder))
        fh.seek(0, os.SEEK_END)
        return fh.tell()


def unzipped_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file() and p.name != ".complete")


@dataclass
class FunctionPackage:
    """What one platform function is made of (for sizes and the cold-start bench)."""

    name: str
    handler: str
    layers: list[str] = field(default_factory=list)
    code_parts: tuple[str, ...] = ("sdk", "functions", "runtime")


# Embedding providers the CDK app can configure for the memory function: the default width of their vectors and the
# layers the memory function needs with them. ``bedrock`` (Amazon Titan Text Embeddings v2, 256 | 512 | 1024
# dimensions) is the default in AWS: it needs no model in a layer, and no numpy (the memory function's vectors are
# ``array('f')``, soorma.functions.memory.vectors). ``local`` adds the ONNX model's layer (with numpy).
DEFAULT_EMBEDDING_PROVIDER = "bedrock"
BEDROCK_EMBEDDING_MODEL = "amazon.titan-embed-text-v2:0"
EMBEDDING_PROVIDERS: dict[str, dict] = {
    "bedrock": {"dimensions": 1024, "allowed_dimensions": (256, 512, 1024), "layers": ("db", "platform")},
    "local": {"dimensions": 384, "allowed_dimensions": (384,), "layers": ("db", "platform", "embeddings")},
}


# The gateway's entry per transport: under ``sqs`` the gateway app with the SNS publisher.
GATEWAY_HANDLERS = {"sqs": "soorma.functions.gateway.handler.handler", "nats": "soorma.functions.gateway.handler.handler"}


def platform_packages(embedding_provider: str = DEFAULT_EMBEDDING_PROVIDER,
                      transport: str = "sqs") -> dict[str, FunctionPackage]:
    """The platform functions, their handlers and the layers each one gets (the CDK app and the bench share this
    table); the defaults are what ``cdk deploy`` deploys without context options."""
    if embedding_provider not in EMBEDDING_PROVIDERS:
        raise ValueError(f"embedding provider must be one of {', '.join(EMBEDDING_PROVIDERS)}, "
                         f"not {embedding_provider!r}")
    return {
        "registry": FunctionPackage("registry", "soorma.functions.registry.handler.handler", ["db", "platform"]),
        "memory": FunctionPackage("memory", "soorma.functions.memory.handler.handler",
                                  list(EMBEDDING_PROVIDERS[embedding_provider]["layers"])),
        "gateway": FunctionPackage("gateway", GATEWAY_HANDLERS[transport], ["db", "platform", "schemas"]),
        "protocols": FunctionPackage("protocols", "soorma.functions.protocols.handler.handler",
                                     ["db", "platform", "schemas", "protocols"]),
        # the identity service: signs tokens (layer "auth"), which the gateway, on every goal's path, does not carry
        "identity": FunctionPackage("identity", "soorma.functions.identity.handler.handler", ["db", "platform", "auth"]),
        "authorizer": FunctionPackage("authorizer", "soorma.functions.gateway.authorizer.handler", ["db", "auth"]),
        "tracker": FunctionPackage("tracker", "soorma.functions.tracker.handler.handler", ["db", "platform"]),
        # the agent functions' GB-seconds per goal from their log groups (soorma.infra.usage)
        "usage": FunctionPackage("usage", "soorma.functions.tracker.invocation_usage.handler", ["db", "platform"]),
        "migrate": FunctionPackage("migrate", "soorma.functions.migrate.handler.handler", ["db"]),
        "registrar": FunctionPackage("registrar", "soorma.infra.runtime.registrar.handler", ["db", "platform"]),
        # webhooks (soorma.functions.webhooks.aws): the bookkeeping in the VPC, the sender outside it
        "webhooks": FunctionPackage("webhooks", "soorma.functions.webhooks.aws.control_handler", ["db", "platform"]),
        "webhook-sender": FunctionPackage("webhook-sender", "soorma.functions.webhooks.aws.sender_handler",
                                          ["db", "platform"]),
    }


# The functions SoormaPlatform(snap_start=True) publishes with Lambda SnapStart: the ones that serve the HTTP API
# through FastAPI, whose import and app build are most of their cold start. The authorizer, tracker and migrations
# start fast enough from bytecode; the registrar runs once per deploy.
SNAP_START_FUNCTIONS = ("registry", "memory", "gateway", "protocols", "identity")

# The default configuration (what ``cdk deploy`` without context options deploys).
PLATFORM_PACKAGES: dict[str, FunctionPackage] = platform_packages()


def build_code(parts: tuple[str, ...] = ("sdk", "functions", "runtime"), *, cache_dir: Path | None = None,
               log=None, bytecode=_AUTO) -> Path:
    """The platform functions' code bundle (:func:`write_code`), from the cache or built now; ``bytecode`` as for
    :func:`build_layer` (by default :func:`lambda_bytecode`: the code is only ever built for Lambda)."""
    cache_dir = cache_dir or default_cache_dir()
    log = log or (lambda msg: print(msg, file=sys.stderr))
    bytecode = lambda_bytecode(log=log) if bytecode is _AUTO else bytecode
    key = f"code-{'-'.join(parts)}-{variant(bytecode)}-{code_hash(parts, bytecode)}"

    def build(tmp: Path) -> None:
        write_code(tmp, parts)
        if bytecode is not None:
            compile_tree(tmp, bytecode, log)

    return _cached(key, cache_dir, build, log)
