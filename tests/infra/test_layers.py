"""``layers/*.txt`` cover every import of the functions, statically (bench/cold_start.py checks the paths one request
takes; this checks every import the code can reach).

For each platform function, in both embedding configurations, the import closure of its handler is followed through
the code bundle the CDK app ships (``soorma`` modules must be in it: the SDK's CLI, ``soorma.local`` and
``soorma.testing`` are not), and every other top-level module must be in the standard library of Python 3.12, in
the function's own layers (as built for Lambda, arm64), or shipped by the Lambda Python runtime (boto3 and its
dependencies). Imports guarded by ``except ImportError`` and ``if TYPE_CHECKING:`` are optional and skipped; so are
the embedding providers the configuration does not select (they are imported only when selected).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

from soorma.infra import packaging

pytestmark = pytest.mark.timeout(1200)

# What the Lambda Python 3.12 runtime ships besides the standard library.
LAMBDA_RUNTIME = {"boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six", "awslambdaric"}
REMOVED_IN_312 = {"distutils", "imp", "asynchat", "asyncore", "smtpd"}
STDLIB = (set(sys.stdlib_module_names) - REMOVED_IN_312) | {"__future__"}
# Modules imported only when SOORMA_EMBEDDING_PROVIDER names them (soorma.functions.memory.embeddings.PROVIDERS), and
# the model-quantising tool that nothing imports at run time.
PROVIDER_MODULES = {
    "local": "soorma.functions.memory.embeddings.local",
    "bedrock": "soorma.functions.memory.embeddings.bedrock",
    "openai": "soorma.functions.memory.embeddings.openai",
}
NEVER_AT_RUN_TIME = {"soorma.functions.memory.embeddings.quantize"}


def _optional(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    """Inside ``try: ... except ImportError`` or ``if TYPE_CHECKING:``."""
    child, parent = node, parents.get(node)
    while parent is not None:
        if isinstance(parent, ast.Try) and child in parent.body:
            for handler in parent.handlers:
                names = [handler.type] if not isinstance(handler.type, ast.Tuple) else handler.type.elts
                if any(isinstance(n, ast.Name) and n.id in ("ImportError", "ModuleNotFoundError") for n in names):
                    return True
        if isinstance(parent, ast.If) and "TYPE_CHECKING" in ast.unparse(parent.test) and child in parent.body:
            return True
        child, parent = parent, parents.get(parent)
    return False


def _module_file(root: Path, module: str) -> Path | None:
    base = root.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imports(path: Path, module: str) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if not isinstance(node, (ast.Import, ast.ImportFrom)) or _optional(node, parents):
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
            continue
        if node.level:
            parts = package.split(".")
            base = ".".join(parts[: len(parts) - node.level + 1])
            target = f"{base}.{node.module}" if node.module else base
        else:
            target = node.module or ""
        found.add(target)
        found |= {f"{target}.{alias.name}" for alias in node.names}  # maybe submodules
    return found


def closure(code: Path, handler_module: str, skip: set[str]) -> tuple[dict[str, str], set[str]]:
    """(third-party top-level module -> a module importing it, soorma modules missing from the bundle)."""
    todo, seen = [handler_module], set()
    third_party: dict[str, str] = {}
    missing: set[str] = set()
    while todo:
        module = todo.pop()
        if module in seen or module in skip:
            continue
        seen.add(module)
        path = _module_file(code, module)
        if path is None:
            missing.add(module)
            continue
        parents = module.split(".")
        todo += [".".join(parents[:i]) for i in range(1, len(parents))]
        for name in _imports(path, module):
            top = name.split(".")[0]
            if top == "soorma":
                if _module_file(code, name) is not None or name.count(".") == 0:
                    todo.append(name)
                elif _module_file(code, name.rpartition(".")[0]) is None:
                    todo.append(name.rpartition(".")[0])  # reported as missing unless it is a name in a module
            elif top and top not in STDLIB:
                third_party.setdefault(top, module)
    return third_party, missing


def layer_modules(folder: Path) -> set[str]:
    names = set()
    for entry in (folder / "python").iterdir():
        if entry.name.endswith((".dist-info", ".libs", ".data")) or entry.name == "__pycache__":
            continue
        names.add(entry.name.split(".")[0] if entry.is_file() else entry.name)
    return names


@pytest.fixture(scope="module")
def built() -> dict[str, Path]:
    """The code bundle and every layer of layers/ as the CDK app builds them (cached under .soorma/cdk-cache)."""
    out = {"code": packaging.build_code()}
    for name in {n for provider in packaging.EMBEDDING_PROVIDERS for p in packaging.platform_packages(provider).values()
                 for n in p.layers}:
        out[name] = packaging.build_layer(packaging.LAYERS[name])
    return out


@pytest.mark.parametrize("provider", sorted(packaging.EMBEDDING_PROVIDERS))
@pytest.mark.parametrize("transport", sorted(packaging.GATEWAY_HANDLERS))
def test_layers_cover_every_import_of_every_function(built, provider, transport):
    skip = NEVER_AT_RUN_TIME | {m for p, m in PROVIDER_MODULES.items() if p != provider}
    problems = []
    for name, package in packaging.platform_packages(provider, transport).items():
        module = package.handler.rpartition(".")[0]
        # Only the memory function embeds: the gateway's commit reuses memory's table modules (idempotency records,
        # task contexts), whose shared module names the provider factory, but it never calls it.
        embeds = name == "memory"
        third_party, missing = closure(built["code"], module,
                                       skip if embeds else skip | set(PROVIDER_MODULES.values()))
        available = LAMBDA_RUNTIME.union(*(layer_modules(built[layer]) for layer in package.layers))
        for top, importer in sorted(third_party.items()):
            if top not in available:
                problems.append(f"{name}: {importer} imports {top}, which none of its layers {package.layers} has")
        problems += [f"{name}: {m} is imported but not in the code bundle" for m in sorted(missing)]
    assert not problems, "\n".join(problems)


def test_no_module_is_in_two_layers_of_one_function(built):
    for provider in packaging.EMBEDDING_PROVIDERS:
        for name, package in packaging.platform_packages(provider).items():
            seen: dict[str, str] = {}
            for layer in package.layers:
                for module in layer_modules(built[layer]):
                    assert module not in seen, f"{name}: {module} is in layers {seen[module]} and {layer}"
                    seen[module] = layer


def test_the_closure_sees_lazy_imports(built):
    """The walk is not vacuous: a lazy import inside a function body is found (the authorizer's jwt, the local
    provider's numpy and onnxruntime), and an unselected provider's imports are not: without the local model the
    memory function imports no numpy (nor pgvector-python), so its default (Bedrock) package has neither."""
    third, _ = closure(built["code"], "soorma.functions.gateway.authorizer", set())
    assert {"jwt", "psycopg"} <= set(third)
    third, _ = closure(built["code"], "soorma.functions.memory.handler", {PROVIDER_MODULES["local"]})
    assert "psycopg" in third and not {"numpy", "pgvector", "onnxruntime"} & set(third), third
    third, _ = closure(built["code"], "soorma.functions.memory.handler", set())
    assert {"numpy", "onnxruntime"} <= set(third)


def test_only_the_local_model_brings_numpy(built):
    """numpy is in the memory function's layers only with the local model (whose layer has it); the default
    configuration's memory function gets the db and platform layers alone."""
    for provider in packaging.EMBEDDING_PROVIDERS:
        layers = packaging.platform_packages(provider)["memory"].layers
        modules = set().union(*(layer_modules(built[layer]) for layer in layers))
        assert ("numpy" in modules) == (provider == "local"), (provider, layers)
        assert "pgvector" not in modules, (provider, layers)
    assert packaging.platform_packages()["memory"].layers == ["db", "platform"]


def test_a_distribution_two_layers_need_is_carried_once(built):
    """typing_extensions (psycopg's and pydantic's dependency) is layer db's: the platform layer's pip install brings
    it too, and the build removes that copy with its dist-info, so the merged /opt/python has one version."""
    assert "typing_extensions" in layer_modules(built["db"])
    assert "typing_extensions" not in layer_modules(built["platform"])
    assert not list((built["platform"] / "python").glob("typing_extensions*"))
    with pytest.raises(FileNotFoundError, match="not installed"):
        packaging.remove_distribution(built["platform"] / "python", "typing_extensions")
