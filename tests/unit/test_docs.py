"""The documentation against the code: every name the pages quote must exist.

The pages are ``README.md``, ``SECURITY.md`` and ``docs/*.md``. What is checked, each by one test:

* every ``soorma.…`` dotted name resolves: a module that imports, or an attribute of one
  (``soorma.functions.migrate.apply``). A dotted name that is not a Python path (an event type such as
  ``soorma.goal.result``, a PostgreSQL setting such as ``soorma.platform_tenant_id``) must appear as a string
  literal in the code instead; subject patterns with ``<placeholders>`` are not names;
* every ``import`` in a ``python`` code block imports, and every name it takes from a module exists;
* every ``SOORMA_*`` variable appears in the code (a name ending in ``_*`` or ``_<…>`` is a prefix that some
  variable in the code must start with);
* every ``soorma …`` command line (inline code or a shell block) names a real command of the CLI, and every
  ``--option`` it passes is an option of that command;
* every HTTP route quoted with its method (``GET /v1/goals/{goal_id}``, ``GET|PUT /v1/policy``) is a route of a
  platform function, with that method;
* every relative link (``[text](path#anchor)``) reaches a file of the repository, and its anchor a heading there;
* every repository path quoted in inline code (``infra/platform.py``, ``tests/infra/``) exists, and every test module
  quoted by its name alone (``test_finding02_lambda_invoke_api.py``) is one of the tests.

``README.md``'s first code block holds exactly ``make demo`` and ``make test``, the two entry points.
"""

from __future__ import annotations

import ast
import importlib
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import typer

from soorma.functions.http_api import HTTP_FUNCTIONS

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted([ROOT / "README.md", ROOT / "SECURITY.md", *(ROOT / "docs").glob("**/*.md")])
# Where the code lives (what "exists in the code" means); tests and benchmarks do not define names.
CODE_FOLDERS = ("sdk", "functions", "local", "infra", "layers", "examples")
CODE_SUFFIXES = {".py", ".sql", ".yaml", ".yml", ".toml", ".json", ".txt"}
# The repository's top-level folders: an inline-code path starting with one of them must exist.
REPO_FOLDERS = ("sdk", "functions", "local", "infra", "layers", "examples", "tests", "bench", "docs")

FENCE = re.compile(r"^```(?P<lang>[\w+-]*)[^\n]*\n(?P<body>.*?)^```", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"(?<!`)`([^`]+)`(?!`)")  # a code span may continue on the next line
DOTTED = re.compile(r"(?<![\w.<>/-])soorma(?:\.[A-Za-z_<>{}][\w<>{}-]*)+")
SETTING = re.compile(r"\bSOORMA_[A-Z0-9_]*[A-Z0-9](?:_\*|_<[A-Z_]+>[A-Z0-9_]*)?")
LINK = re.compile(r"(?<!!)\[[^\]\n]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)
SHELL_LANGS = {"", "bash", "sh", "shell", "console"}
SHELL_SEPARATORS = re.compile(r"&&|\|\||;|\$\(|(?<!\S)\|(?!\S)|\(|\)")


@dataclass(frozen=True)
class Page:
    path: Path
    text: str

    @property
    def name(self) -> str:
        return str(self.path.relative_to(ROOT))

    def blocks(self, *langs: str) -> list[str]:
        """The bodies of the fenced code blocks whose language is one of ``langs``."""
        return [m["body"] for m in FENCE.finditer(self.text) if m["lang"] in langs]

    def prose(self) -> str:
        """The text outside fenced code blocks."""
        return FENCE.sub("", self.text)

    def inline_code(self) -> list[str]:
        """The inline code spans outside code blocks, a line break inside one read as a space."""
        return [re.sub(r"\s*\n\s*", " ", span) for span in INLINE_CODE.findall(self.prose())]


@cache
def pages() -> list[Page]:
    return [Page(path, path.read_text()) for path in PAGES]


@cache
def code_text() -> str:
    """All the code of the repository's packages and examples, as one string (for "appears in the code")."""
    parts = []
    for folder in CODE_FOLDERS:
        for path in sorted((ROOT / folder).rglob("*")):
            if path.suffix in CODE_SUFFIXES and path.is_file() and "__pycache__" not in path.parts:
                parts.append(path.read_text(errors="replace"))
    return "\n".join(parts)


def resolves(dotted: str) -> bool:
    """Whether ``dotted`` is an importable module, or a chain of attributes of the longest importable prefix."""
    parts = dotted.split(".")
    for split in range(len(parts), 0, -1):
        try:
            target = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for attribute in parts[split:]:
            if not hasattr(target, attribute):
                return False
            target = getattr(target, attribute)
        return True
    return False


def test_the_pages_exist() -> None:
    """The pages the brief names are there (and so the other tests have something to check)."""
    names = {page.name for page in pages()}
    for required in ("README.md", "SECURITY.md", "docs/architecture.md"):
        assert required in names
    assert len(names) >= 8, names


def test_readme_starts_with_the_two_commands() -> None:
    readme = next(page for page in pages() if page.name == "README.md")
    first = FENCE.search(readme.text)
    assert first is not None
    assert first["body"].split("\n") == ["make demo", "make test", ""]


def test_every_quoted_soorma_name_resolves() -> None:
    missing = []
    checked = 0
    for page in pages():
        for name in sorted(set(DOTTED.findall(page.text))):
            if any(c in name for c in "<>{}"):
                continue  # a pattern such as the subject soorma.<platform_tenant_id>.<topic>.<event_type>
            checked += 1
            if resolves(name):
                continue
            if re.search(rf"""["']{re.escape(name)}["']""", code_text()):
                continue  # an event type or setting name the code spells as a string
            missing.append(f"{page.name}: {name}")
    assert checked > 50
    assert not missing, "names the docs quote that resolve to nothing in the code:\n" + "\n".join(missing)


def test_python_blocks_import() -> None:
    problems = []
    checked = 0
    for page in pages():
        for body in page.blocks("python", "py"):
            for node in ast.walk(ast.parse(body)):
                if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "soorma":
                    for alias in node.names:
                        checked += 1
                        if not resolves(f"{node.module}.{alias.name}"):
                            problems.append(f"{page.name}: from {node.module} import {alias.name}")
                elif isinstance(node, ast.Import):
                    for alias in node.names:
                        if alias.name.split(".")[0] == "soorma":
                            checked += 1
                            if not resolves(alias.name):
                                problems.append(f"{page.name}: import {alias.name}")
    assert checked > 5
    assert not problems, "\n".join(problems)


def test_every_quoted_setting_is_in_the_code() -> None:
    code = code_text()
    missing = []
    quoted = set()
    for page in pages():
        for name in set(SETTING.findall(page.text)):
            quoted.add(name)
            prefix = re.split(r"_\*|_<", name)[0] + "_" if ("*" in name or "<" in name) else None
            if prefix:
                found = re.search(rf"\b{re.escape(prefix)}[A-Z0-9]", code)
            else:
                found = re.search(rf"\b{re.escape(name)}\b", code)
            if not found:
                missing.append(f"{page.name}: {name}")
    assert len(quoted) > 40
    assert not missing, "SOORMA_* names the docs quote that the code never uses:\n" + "\n".join(missing)


@cache
def cli() -> Any:
    """The click command tree of the ``soorma`` console script (typer builds it; its click is typer's own copy)."""
    from soorma.cli.main import app

    return typer.main.get_command(app)


def is_group(command: Any) -> bool:
    return hasattr(command, "list_commands")


def option_names(command: Any) -> set[str]:
    return {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)} | {"--help"}


def command_lines(page: Page) -> list[str]:
    """Each shell command of the page that starts with ``soorma`` (or ``<venv>/bin/soorma``)."""
    candidates = [*page.inline_code()]
    for body in page.blocks(*SHELL_LANGS):
        candidates.extend(body.splitlines())
    commands = []
    for candidate in candidates:
        candidate = candidate.split(" #")[0]  # a shell comment
        for part in SHELL_SEPARATORS.split(candidate):
            words = part.split()
            while words and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=\S*", words[0]):
                words.pop(0)  # VAR=value before the command
            if words and re.fullmatch(r"(?:\S*/bin/)?soorma", words[0]):
                commands.append(" ".join(words))
    return commands


def check_command(line: str) -> str | None:
    """``None`` when the command line names a real command and passes only its options; else the problem."""
    words = [w.strip("[]") for w in line.split()[1:]]
    command = cli()
    path = ["soorma"]
    while words and is_group(command) and not words[0].startswith("-"):
        sub = command.commands.get(words[0])
        if sub is None:
            return f"`{' '.join(path)}` has no command {words[0]!r}"
        command = sub
        path.append(words.pop(0))
    for word in words:
        if word.startswith("--") and word.split("=")[0] not in option_names(command):
            return f"`{' '.join(path)}` has no option {word.split('=')[0]}"
    return None


def test_every_quoted_command_is_a_cli_command() -> None:
    problems = []
    commands = 0
    for page in pages():
        for line in command_lines(page):
            commands += 1
            problem = check_command(line)
            if problem:
                problems.append(f"{page.name}: {line}: {problem}")
    assert commands > 20
    assert not problems, "\n".join(problems)


def test_the_command_check_can_fail() -> None:
    """The check itself: a misspelt command or option is caught, a real one passes."""
    assert check_command("soorma local up --transport sqs") is None
    assert check_command("soorma local") is None
    assert check_command("soorma lokal up") is not None
    assert check_command("soorma local up --no-such-option") is not None
    assert check_command("soorma goal sumbit research.goal") is not None
    assert check_command("soorma dlq --agent A") is not None  # an option of no group


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, inline markup and punctuation dropped, spaces as dashes."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    return {github_anchor(h) for h in HEADING.findall(FENCE.sub("", path.read_text()))}


def test_relative_links_resolve() -> None:
    problems = []
    links = 0
    for page in pages():
        for target in LINK.findall(page.prose()):
            if re.match(r"[a-z][a-z0-9+.-]*:", target):
                continue  # https:, mailto:
            links += 1
            file_part, _, anchor = target.partition("#")
            destination = (page.path.parent / file_part).resolve() if file_part else page.path
            if not destination.exists() or ROOT not in (destination, *destination.parents):
                problems.append(f"{page.name}: ({target}) is no file of the repository")
            elif anchor and destination.suffix == ".md" and anchor not in anchors(destination):
                problems.append(f"{page.name}: ({target}) names no heading of {destination.name}")
    assert links > 10
    assert not problems, "\n".join(problems)


def test_quoted_repository_paths_exist() -> None:
    problems = []
    checked = 0
    for page in pages():
        for span in page.inline_code():
            path = span.split()[0] if span.split() else span
            if path.split("/")[0] not in REPO_FOLDERS or "/" not in path or re.search(r"[<>{}*…]|NNNN", path):
                continue
            checked += 1
            if not (ROOT / path.rstrip("/")).exists():
                problems.append(f"{page.name}: `{span}`")
    assert checked > 20
    assert not problems, "repository paths the docs quote that do not exist:\n" + "\n".join(problems)


def test_quoted_test_files_exist() -> None:
    """A test module named without its folder (SECURITY.md's table names each boundary's test) is one of the tests."""
    tests = {path.name for path in (ROOT / "tests").rglob("test_*.py")}
    quoted = {span for page in pages() for span in page.inline_code() if re.fullmatch(r"test_\w+\.py", span)}
    assert len(quoted) > 5
    assert not quoted - tests, sorted(quoted - tests)


ROUTE = re.compile(r"^((?:GET|POST|PUT|PATCH|DELETE)(?:\|(?:GET|POST|PUT|PATCH|DELETE))*) (/\S+)$")
FUNCTIONS_WITH_ROUTES = HTTP_FUNCTIONS


@cache
def published_routes() -> dict[str, set[str]]:
    """Path (parameters as ``{}``) → methods, from the OpenAPI of each HTTP function's app (built without a
    database: building one connects nowhere)."""
    from unittest import mock

    routes: dict[str, set[str]] = {}
    for function in FUNCTIONS_WITH_ROUTES:
        app = importlib.import_module(f"soorma.functions.{function}.app").create_app(db=mock.MagicMock())
        for path, operations in app.openapi()["paths"].items():
            routes.setdefault(re.sub(r"\{[^}]*\}", "{}", path), set()).update(m.upper() for m in operations)
    return routes


def test_every_quoted_route_exists() -> None:
    routes = published_routes()
    problems = []
    checked = 0
    for page in pages():
        for span in page.inline_code():
            match = ROUTE.match(span.strip())
            if not match or not match[2].startswith(("/v1", "/.well-known")):
                continue  # the Lambda and control APIs of the local stack are not functions' routes
            checked += 1
            path = re.sub(r"\{[^}]*\}", "{}", match[2].split("?")[0])
            missing = set(match[1].split("|")) - routes.get(path, set())
            if missing:
                problems.append(f"{page.name}: `{span}` ({'|'.join(sorted(missing))} {path} is no route)")
    assert checked > 40
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    ("heading", "anchor"),
    [("Deploy to AWS", "deploy-to-aws"), ("`soorma local`: the stack", "soorma-local-the-stack"),
     ("Event delivery: guarantees, dead letters, metrics", "event-delivery-guarantees-dead-letters-metrics")],
)
def test_github_anchor(heading: str, anchor: str) -> None:
    assert github_anchor(heading) == anchor
