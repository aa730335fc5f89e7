"""The architecture's import rules (docs/architecture.md "Layers").

1. The layers of ``.importlinter`` hold: the wire contracts <- the SDK <- the platform functions <- the local stack
   and the CDK app <- the CLI; nothing imports upward (import-linter, on the source tree as one ``soorma`` package).
2. Each deployable bundle carries what it imports and imports only what it carries or lists: the agents' ``sdk``
   layer and the NATS bridge's code bundle, built by :mod:`soorma.infra.packaging` exactly as ``cdk deploy`` builds
   them, are read file by file and every import is listed here. A new import shows up as a failure naming its file.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from soorma.infra import packaging

REPO = Path(__file__).resolve().parents[2]

#: The repository's folders as the parts of package ``soorma`` (setup.py maps them the same way for the wheel).
PARTS = {"functions": REPO / "functions", "local": REPO / "local", "infra": REPO / "infra"}


def _package_view(root: Path) -> Path:
    """``root/soorma``: the source tree as one importable package, through symbolic links (grimp, which
    import-linter uses, reads packages from the file system and cannot follow the editable install's mapping)."""
    package = root / "soorma"
    package.mkdir()
    for entry in (REPO / "sdk" / "soorma").iterdir():
        if entry.name != "__pycache__":
            (package / entry.name).symlink_to(entry)
    for name, folder in PARTS.items():
        (package / name).symlink_to(folder, target_is_directory=True)
    return root


def test_import_linter_contracts_hold(tmp_path):
    lint_imports = Path(sys.executable).with_name("lint-imports")
    env = {**os.environ, "PYTHONPATH": str(_package_view(tmp_path))}
    result = subprocess.run(
        [str(lint_imports), str(REPO / ".importlinter"), "--no-cache"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240,
    )
    assert "Contracts: 1 kept, 0 broken." in result.stdout, result.stdout + result.stderr
    assert result.returncode == 0, result.stdout + result.stderr


# ------------------------------------------------------------------------------------------------- bundles


def _imports(root: Path) -> dict[str, set[str]]:
    """Every absolute import in the ``.py`` files under ``root`` (module-level and inside functions alike), as
    ``{module: {file, ...}}``."""
    found: dict[str, set[str]] = {}
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name, set()).add(str(path.relative_to(root)))
    return found


def _resolves(root: Path, module: str) -> bool:
    base = root.joinpath(*module.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def _third_party(imports: dict[str, set[str]]) -> set[str]:
    return {name.split(".")[0] for name in imports
            if name.split(".")[0] not in sys.stdlib_module_names and name.split(".")[0] not in {"soorma", "__future__"}}


def _dangling(root: Path, imports: dict[str, set[str]]) -> dict[str, set[str]]:
    """``soorma`` modules imported in the bundle that it does not carry (``from soorma.x import name`` counts when
    ``soorma.x`` is there)."""
    return {name: files for name, files in imports.items()
            if name.split(".")[0] == "soorma" and not _resolves(root, name)}


#: What the agents' ``sdk`` layer may import from outside the standard library. Each is in layer "sdk"
#: (layers/sdk.txt) or the Lambda runtime (boto3), or optional: nats (``agent.run()``), jsonschema
#: (``Tool.on_invoke(response_schema=...)``), snapshot_restore_py (Lambda SnapStart's runtime hooks), mcp with its
#: mcp_types and httpx2 (``context.mcp(url)``, the ``mcp`` extra), websockets (``GatewayClient.follow_goal``, the
#: ``stream`` extra); botocore comes with boto3 in the Lambda runtime (SigV4 of the X-Ray export,
#: ``soorma.telemetry.export_to_xray``).
SDK_LAYER_IMPORTS = {"aws_lambda_powertools", "boto3", "botocore", "httpx", "httpx2", "jsonschema", "mcp", "mcp_types", "nats",
                     "opentelemetry",
                     "pydantic", "snapshot_restore_py", "websockets"}

#: What the NATS bridge's bundle may import: the SDK's, psycopg for its route reader, botocore for its Lambda client.
BRIDGE_IMPORTS = SDK_LAYER_IMPORTS | {"botocore", "psycopg", "psycopg_pool"}


@pytest.fixture(scope="module")
def bundles(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bundles")
    packaging.write_sdk(root / "sdk")
    packaging.write_code(root / "bridge", ("sdk", "bridge"))
    return {"sdk": root / "sdk", "bridge": root / "bridge"}


def test_the_sdk_layer_carries_no_platform_and_no_local_code(bundles):
    sdk = bundles["sdk"] / "soorma"
    carried = {p.relative_to(sdk).parts[0] for p in sdk.rglob("*.py")}
    assert not carried & {"functions", "local", "cli", "testing"}
    assert sorted(p.name for p in (sdk / "infra" / "runtime").glob("*.py")) == ["__init__.py", "boot.py", "settings.py"]


def test_the_sdk_layer_imports_only_what_it_lists(bundles):
    imports = _imports(bundles["sdk"])
    assert _dangling(bundles["sdk"], imports) == {}
    assert _third_party(imports) == SDK_LAYER_IMPORTS, {
        name: sorted(files) for name, files in imports.items()
        if name.split(".")[0] in _third_party(imports) ^ SDK_LAYER_IMPORTS}


def test_the_bridge_bundle_carries_the_bridge_alone(bundles):
    functions = bundles["bridge"] / "soorma" / "functions"
    carried = sorted(str(p.relative_to(functions).parent) for p in functions.rglob("*.py"))
    assert set(carried) == {".", "shared", "bridge", "registry"}
    assert not (bundles["bridge"] / "soorma" / "local").exists()
    assert not (functions / "shared" / "service.py").exists()  # no web framework where no request is served
    imports = _imports(bundles["bridge"])
    assert _dangling(bundles["bridge"], imports) == {}
    assert _third_party(imports) == BRIDGE_IMPORTS, {
        name: sorted(files) for name, files in imports.items()
        if name.split(".")[0] in _third_party(imports) ^ BRIDGE_IMPORTS}


def _layer_modules() -> set[str]:
    import configparser

    config = configparser.ConfigParser()
    config.read(REPO / ".importlinter")
    lines = config["importlinter:contract:layers"]["layers"].split("\n")
    return {name.strip() for line in lines for name in line.replace("|", ":").split(":") if name.strip()}


def test_every_module_of_the_sdk_has_a_layer():
    """A new module of ``sdk/soorma`` must be placed in a layer of .importlinter: a module no layer names would be
    free to import anything."""
    names = {f"soorma.{p.stem}" for p in (REPO / "sdk" / "soorma").iterdir()
             if (p.suffix == ".py" or (p / "__init__.py").is_file()) and p.name != "__init__.py"}
    layered = _layer_modules()
    parts = set(PARTS) | {"cli"}
    unplaced = {name for name in names - {f"soorma.{part}" for part in parts}
                if not any(name == m or m.startswith(name + ".") for m in layered)}
    assert unplaced == set(), "modules of sdk/soorma in no layer of .importlinter"


def test_the_architecture_page_describes_the_layers_that_are_checked():
    """docs/architecture.md's "Layers" table names every module of .importlinter's layers and no other."""
    import re

    page = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    section = page.split("## Layers", 1)[1].split("\n## ", 1)[0]
    table = [line for line in section.splitlines() if line.startswith("| ") and "`soorma" in line]
    documented = {name for line in table for name in re.findall(r"`(soorma[\w.]*)`", line.split("|")[2])}
    checked = _layer_modules()
    assert documented - checked == set(), "documented but not checked"
    assert checked - documented == set(), "checked but not documented"


def test_no_import_cycle_among_the_sdks_modules(tmp_path):
    """No SDK module imports, directly or through others, a module that imports it back (imports for annotations
    under ``if TYPE_CHECKING:`` aside; a submodule importing its own package is not a cycle). The cycles import-linter's
    layers allow inside one layer are refused too."""
    script = (
        "import grimp, json\n"
        "g = grimp.build_graph('soorma', cache_dir=None, exclude_type_checking_imports=True)\n"
        "top = {'functions', 'local', 'infra', 'cli'}\n"
        "sdk = {m for m in g.modules if '.' in m and m.split('.')[1] not in top}\n"
        "edges = {m: sorted(i for i in g.find_modules_directly_imported_by(m) if i in sdk and not m.startswith(i + '.'))"
        " for m in sdk}\n"
        "print(json.dumps(edges))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(_package_view(tmp_path))}
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=240, check=True)
    edges: dict[str, list[str]] = json.loads(result.stdout)
    cycles = _strongly_connected(edges)
    assert cycles == [], f"import cycles among the SDK's modules: {cycles}"


def _strongly_connected(edges: dict[str, list[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm, iterative; R. Tarjan, "Depth-
    first search and linear graph algorithms", SIAM J. Comput. 1(2), 1972)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            node, child = work.pop()
            if child == 0:
                index[node] = low[node] = len(index)
                stack.append(node)
                on_stack.add(node)
            targets = edges.get(node, [])
            if child < len(targets):
                work.append((node, child + 1))
                target = targets[child]
                if target not in index:
                    work.append((target, 0))
                elif target in on_stack:
                    low[node] = min(low[node], index[target])
                continue
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found
