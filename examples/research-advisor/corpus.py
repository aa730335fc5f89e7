"""The research-advisor corpus: Python's standard library documentation as ``pydoc`` shows it.

``build_corpus()`` imports a curated list of widely used standard-library modules and turns their docstrings
(``inspect.getdoc``, which is what ``pydoc`` prints) into passages for semantic memory:

* one passage per module docstring,
* one per public function and class that the module defines (or re-exports from its private C accelerator,
  e.g. ``heapq.heappush`` from ``_heapq``),
* one per public method that such a class defines itself (not inherited), each with a docstring.

A passage is ``{"content", "external_id", "is_public", "metadata": {"name", "module", "kind"}}``; ``content`` is
``"<qualified name>: <summary>"`` where the summary is the docstring's first paragraph (more paragraphs while it is
very short, e.g. a bare signature line) cut to ~600 characters. ``external_id`` is the qualified name
(``gzip.open``), ``is_public`` is true: the corpus is shared knowledge of the platform tenant.

The order is deterministic (module list order, then names sorted) and names are unique. (Under pytest,
``sys.unraisablehook`` and ``threading.excepthook`` are pytest's own and so are left out: 2 passages fewer.) Run it to print the size::

    python corpus.py            # how many passages, from how many modules, of which kinds
    python corpus.py --json     # every passage, one JSON object per line
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import io
import json
import re
import sys
import warnings
from typing import Any, Iterator

#: Widely used, import-safe standard-library modules (those that fail to import on this platform are skipped).
MODULES: tuple[str, ...] = (
    # files and compression
    "gzip", "zipfile", "tarfile", "zlib", "bz2", "lzma", "shutil", "tempfile", "glob", "fnmatch", "pathlib",
    "os", "os.path", "io", "filecmp", "fileinput", "stat",
    # data formats
    "json", "csv", "configparser", "tomllib", "pickle", "shelve", "struct", "base64", "binascii", "xml.etree.ElementTree",
    "html", "html.parser", "mimetypes", "email", "email.message", "email.utils", "quopri", "plistlib",
    # text
    "re", "string", "textwrap", "difflib", "unicodedata", "codecs", "shlex", "pprint", "reprlib", "locale", "gettext",
    # data types and algorithms
    "datetime", "time", "calendar", "zoneinfo", "collections", "collections.abc", "itertools", "functools",
    "operator", "heapq", "bisect", "array", "copy", "weakref", "enum", "dataclasses", "typing", "graphlib",
    "types", "abc", "numbers",
    # numbers and randomness
    "math", "cmath", "decimal", "fractions", "random", "statistics",
    # cryptography and identifiers
    "hashlib", "hmac", "secrets", "uuid",
    # networking and the internet
    "urllib.parse", "urllib.request", "urllib.error", "http", "http.client", "http.server", "http.cookies",
    "socket", "ssl", "select", "selectors", "ipaddress", "smtplib", "webbrowser", "wsgiref.simple_server",
    # concurrency
    "asyncio", "threading", "multiprocessing", "concurrent.futures", "subprocess", "queue", "sched", "signal",
    "contextvars",
    # program structure, debugging, testing
    "sys", "platform", "argparse", "getpass", "logging", "logging.handlers", "warnings", "traceback", "inspect",
    "contextlib", "atexit", "importlib", "importlib.resources", "importlib.metadata", "pkgutil", "unittest",
    "unittest.mock", "doctest", "timeit", "cProfile", "pstats", "tracemalloc", "gc", "keyword", "builtins",
    # databases, media, misc
    "sqlite3", "dbm", "wave", "colorsys",
)

#: Platform modules whose functions report another ``__module__`` than the name they are documented under.
MODULE_ALIASES: dict[str, tuple[str, ...]] = {"os": ("posix", "nt"), "os.path": ("posixpath", "ntpath", "genericpath")}

#: Longest summary kept, in characters (cut on a word boundary).
MAX_SUMMARY = 600
#: A first paragraph shorter than this (typically a bare signature line) is extended with the next paragraphs.
MIN_SUMMARY = 60

_SIGNATURE_LINE = re.compile(r"^[\w.]+\(.*\)(\s*->\s*.+)?$")


def _is_code(paragraph: str) -> bool:
    """An example rather than prose: a doctest, or an assignment from a call (csv.reader's "csv_reader = reader(...)")."""
    return paragraph.startswith(">>>") or bool(re.match(r"^[\w.]+ = [\w.]+\(", paragraph))


def _summary(doc: str) -> str:
    """First paragraph of a docstring (more while it is a signature or very short), whitespace-folded, ≤ ~600 chars."""
    paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", doc.strip()) if p.strip()]
    parts: list[str] = []
    for paragraph in paragraphs:
        if (_SIGNATURE_LINE.match(paragraph) or _is_code(paragraph)) and len(paragraphs) > 1:
            continue  # "strftime(format[, tuple]) -> string": pydoc's signature line (or an example), not prose
        parts.append(paragraph)
        if len(" ".join(parts)) >= MIN_SUMMARY:
            break
    text = " ".join(parts) or " ".join(paragraphs)
    if len(text) > MAX_SUMMARY:
        cut = text.rfind(" ", 0, MAX_SUMMARY)
        text = text[: cut if cut > MAX_SUMMARY // 2 else MAX_SUMMARY].rstrip(" ,;:") + " …"
    return text


def _import(name: str) -> Any | None:
    """Import quietly (some modules warn about deprecation or print); None when it fails on this platform."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        try:
            return importlib.import_module(name)
        except Exception:  # noqa: BLE001 — any failure means "not available here"
            return None


def _own_modules(name: str, module: Any) -> tuple[str, ...]:
    return (name, module.__name__, *MODULE_ALIASES.get(name, ()))


def _defined_here(obj: Any, name: str, module: Any, listed: bool) -> bool:
    """Whether ``obj`` belongs to module ``name``: defined there or in a submodule, or in a private accelerator.

    Names listed in ``__all__`` may come from any private module (``threading.Lock`` is ``_thread.allocate_lock``);
    otherwise a private owner must carry the module's name (``heapq.heappush`` is ``_heapq.heappush``).
    """
    owner = getattr(obj, "__module__", None)
    if not isinstance(owner, str):
        return False
    own = _own_modules(name, module)
    if owner in own or any(owner.startswith(o + ".") for o in own):
        return True
    if not any(part.startswith("_") for part in owner.split(".")):
        return False  # re-exported from another public module: documented there
    if listed:
        return True
    return owner.split(".")[0].lstrip("_") in {name.split(".")[-1], name.split(".")[0]}


def _public_names(module: Any) -> tuple[list[str], bool]:
    names = getattr(module, "__all__", None)
    if names is not None:
        return sorted({n for n in names if isinstance(n, str) and not n.startswith("_")}), True
    return sorted(n for n in vars(module) if not n.startswith("_")), False


def _passage(name: str, module: str, kind: str, doc: str) -> dict[str, Any]:
    return {
        "content": f"{name}: {_summary(doc)}",
        "external_id": name,
        "is_public": True,
        "metadata": {"name": name, "module": module, "kind": kind},
    }


def _doc(obj: Any) -> str | None:
    doc = inspect.getdoc(obj)
    return doc if doc and doc.strip() else None


def _members(modname: str, module: Any, seen_objects: set[int]) -> Iterator[dict[str, Any]]:
    names, listed = _public_names(module)
    for attr in names:
        try:
            obj = getattr(module, attr)
        except Exception:  # noqa: BLE001 — lazy attributes may fail
            continue
        is_class = inspect.isclass(obj)
        if not (is_class or inspect.isroutine(obj)):
            continue
        if not _defined_here(obj, modname, module, listed):
            continue
        if id(obj) in seen_objects:
            continue  # the same object documented under an earlier module (e.g. io.open / open)
        # Own docstrings only: inspect.getdoc falls back to a base class's ("Common base class for all non-exit
        # exceptions."), which would add thousands of identical passages.
        doc = obj.__doc__ and _doc(obj)
        if not doc:
            continue
        seen_objects.add(id(obj))
        qualified = f"{modname}.{attr}"
        yield _passage(qualified, modname, "class" if is_class else "function", doc)
        if not is_class:
            continue
        for meth_name in sorted(vars(obj)):
            if meth_name.startswith("_"):
                continue
            raw = vars(obj)[meth_name]
            func = raw.__func__ if isinstance(raw, (classmethod, staticmethod)) else raw
            if not inspect.isroutine(func) and not isinstance(raw, property):
                continue
            if isinstance(raw, property) or not getattr(func, "__doc__", None):
                continue  # properties and undocumented methods (inherited docstrings would duplicate the base's)
            meth_doc = _doc(func)
            if meth_doc:
                yield _passage(f"{qualified}.{meth_name}", modname, "method", meth_doc)


def build_corpus(modules: tuple[str, ...] = MODULES) -> list[dict[str, Any]]:
    """Passages for every available module in ``modules``: deterministic order, unique ``external_id``."""
    passages: list[dict[str, Any]] = []
    seen_names: set[str] = set()
    seen_objects: set[int] = set()
    done: set[str] = set()
    for modname in modules:
        if modname in done:
            continue
        done.add(modname)
        module = _import(modname)
        if module is None:
            continue
        candidates = []
        doc = _doc(module)
        if doc:
            candidates.append(_passage(modname, modname, "module", doc))
        candidates.extend(_members(modname, module, seen_objects))
        for passage in candidates:
            if passage["external_id"] not in seen_names:
                seen_names.add(passage["external_id"])
                passages.append(passage)
    return passages


def main(argv: list[str]) -> None:
    passages = build_corpus()
    if "--json" in argv:
        for passage in passages:
            print(json.dumps(passage, ensure_ascii=False))
        return
    kinds: dict[str, int] = {}
    for passage in passages:
        kinds[passage["metadata"]["kind"]] = kinds.get(passage["metadata"]["kind"], 0) + 1
    modules = len({p["metadata"]["module"] for p in passages})
    plural = {"class": "classes"}
    detail = ", ".join(f"{count} {plural.get(kind, kind + 's')}" for kind, count in sorted(kinds.items()))
    print(f"{len(passages)} passages from {modules} modules ({detail})")


if __name__ == "__main__":
    main(sys.argv[1:])
