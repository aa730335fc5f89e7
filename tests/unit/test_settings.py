"""The typed settings: every ``SOORMA_*`` variable is declared once in a settings module, code reads it only through
that module, and the README's configuration table is the one generated from the modules."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from soorma.cli import settings_doc
from soorma.settings import Setting, integer

REPO = Path(__file__).resolve().parents[2]
SCANNED = ("sdk", "functions", "local", "infra")
SETTINGS_MODULES = {
    Path("sdk/soorma/settings.py"),
    Path("functions/shared/settings.py"),
    Path("local/settings.py"),
    Path("infra/runtime/settings.py"),
    Path("infra/settings.py"),
}
NOT_SCANNED: tuple[Path, ...] = ()
# Runs as `python -c` on a bare container before the soorma package is there, so it cannot import a settings module;
# test_fetch_reads_only_declared_settings checks its names instead.
FETCH = Path("infra/runtime/fetch.py")
# Not our code: the pinned CDK CLI's packages (infra/node_modules), build output, caches.
FOREIGN_DIRS = {"node_modules", "cdk.out", "__pycache__", ".soorma"}


def _env_key(node: ast.AST, constants: dict[str, str]) -> str | None:
    """The ``SOORMA_*`` (or ``LOCALSTACK_*``) variable name ``node`` evaluates to, if it is one: a string literal, a
    module constant holding one, or an f-string starting with one."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        value = node.value
    elif isinstance(node, ast.Name) and node.id in constants:
        value = constants[node.id]
    elif isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant):
        value = str(node.values[0].value)
    else:
        return None
    return value if value.startswith(("SOORMA_", "LOCALSTACK_")) else None


def environment_reads(source: str) -> list[tuple[int, str]]:
    """``(line, variable)`` of every read of a ``SOORMA_*`` variable in ``source``: ``<mapping>.get(KEY)``,
    ``os.getenv(KEY)``, ``<mapping>[KEY]`` (not as an assignment target), ``KEY in <mapping>``, ``.pop``. Writing
    a variable (``env[KEY] = ...``, ``.setdefault``, a dict literal for a child process) is not a read."""
    tree = ast.parse(source)
    constants = {
        target.id: node.value.value
        for node in tree.body if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
        for target in node.targets if isinstance(target, ast.Name)
    }
    reads: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        key = None
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args:
            if node.func.attr in ("get", "getenv", "pop"):
                key = _env_key(node.args[0], constants)
        elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load):
            key = _env_key(node.slice, constants)
        elif isinstance(node, ast.Compare) and any(isinstance(op, (ast.In, ast.NotIn)) for op in node.ops):
            key = _env_key(node.left, constants)
        if key:
            reads.append((node.lineno, key))
    return reads


def _scanned_files() -> list[Path]:
    files = []
    for top in SCANNED:
        for path in sorted((REPO / top).rglob("*.py")):
            rel = path.relative_to(REPO)
            if FOREIGN_DIRS & set(rel.parts):
                continue
            if rel in SETTINGS_MODULES or rel == FETCH or any(rel.is_relative_to(p) for p in NOT_SCANNED):
                continue
            files.append(rel)
    return files


def test_the_scanner_finds_every_kind_of_read():
    source = (
        'import os\nNAME = "SOORMA_A"\n'
        'os.environ.get("SOORMA_B")\nos.getenv(NAME)\nos.environ["SOORMA_C"]\nenv.get(f"SOORMA_{x}_PORT")\n'
        '"SOORMA_D" in os.environ\n'
        'env["SOORMA_E"] = "written"\nchild = {"SOORMA_F": "written"}\nos.environ.get("HOME")\n'
    )
    assert environment_reads(source) == [(3, "SOORMA_B"), (4, "SOORMA_A"), (5, "SOORMA_C"), (6, "SOORMA_"),
                                         (7, "SOORMA_D")]


def test_no_soorma_variable_is_read_outside_the_settings_modules():
    files = _scanned_files()
    assert len(files) > 100  # the scan sees the tree
    found = [f"{path}:{line}: {key}" for path in files
             for line, key in environment_reads((REPO / path).read_text(encoding="utf-8"))]
    assert not found, ("SOORMA_* variables read outside the settings modules (declare them in the deployable's "
                       "settings module and read them through it):\n" + "\n".join(found))


def test_fetch_reads_only_declared_settings():
    declared = {s.name for s in settings_doc.all_settings()}
    read = {key for _, key in environment_reads((REPO / FETCH).read_text(encoding="utf-8"))}
    assert read == {"SOORMA_BUNDLE_BUCKET", "SOORMA_BUNDLE_KEY"}
    assert read <= declared


def test_every_setting_is_declared_once_with_a_description():
    found = settings_doc.all_settings()
    names = [s.name for s in found]
    assert len(names) == len(set(names)), "a variable declared in two settings modules"
    assert len(found) > 90
    for setting in found:
        # soorma-core's identity client variables keep soorma-core's names (issue 17: read as soorma-core reads them)
        assert setting.name.startswith(("SOORMA_", "LOCALSTACK_", "IDENTITY_")), setting.name
        assert setting.description.strip(), f"{setting.name} has no description"


def test_readme_configuration_table_is_generated_from_the_settings_modules():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert settings_doc.render(readme) == readme, (
        f"README.md's configuration table differs from the settings modules: run `{settings_doc.REGENERATE}`")


def test_check_mode_reports_a_stale_table(tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n{settings_doc.BEGIN}\n| stale |\n{settings_doc.END}\n", encoding="utf-8")
    assert settings_doc.main([str(readme), "--check"]) == 1
    assert settings_doc.REGENERATE in capsys.readouterr().err
    assert settings_doc.main([str(readme)]) == 0
    assert settings_doc.main([str(readme), "--check"]) == 0
    assert "`SOORMA_API_URL`" in readme.read_text(encoding="utf-8")


EXAMPLE = Setting("SOORMA_TEST_EXAMPLE", "an example", integer, 7)


def test_a_setting_is_read_when_asked_not_at_import(monkeypatch):
    monkeypatch.delenv(EXAMPLE.name, raising=False)
    assert EXAMPLE.get() == 7
    monkeypatch.setenv(EXAMPLE.name, "12")
    assert EXAMPLE.get() == 12
    assert EXAMPLE.get({EXAMPLE.name: "3"}) == 3  # an explicit mapping instead of os.environ


def test_blank_is_unset_unless_declared_otherwise():
    assert EXAMPLE.get({EXAMPLE.name: ""}) == 7
    assert EXAMPLE.get({EXAMPLE.name: "  "}) == 7
    strict = Setting("SOORMA_TEST_STRICT", "blank is an error", integer, None, blank_is_unset=False)
    assert strict.get({}) is None
    with pytest.raises(ValueError, match="SOORMA_TEST_STRICT=''"):
        strict.get({strict.name: ""})


def test_a_malformed_value_is_a_value_error_naming_the_variable():
    with pytest.raises(ValueError, match=r"SOORMA_TEST_EXAMPLE='x' is not an integer"):
        EXAMPLE.get({EXAMPLE.name: "x"})


def test_required_raises_key_error_naming_the_variable():
    with pytest.raises(KeyError, match="SOORMA_TEST_EXAMPLE"):
        EXAMPLE.required({})
    assert EXAMPLE.required({EXAMPLE.name: "5"}) == 5
