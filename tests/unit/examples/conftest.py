"""Fixtures for the examples' unit tests: load an example folder's modules by path.

Example folders are not packages (``examples/research-advisor`` has a hyphen, and its modules import each other by
plain name, as they do in a deployed function whose code root is the folder). The fixture puts the folder on
``sys.path`` while importing and removes its module names from ``sys.modules`` afterwards, so two examples with an
``agents.py`` each do not collide.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def load_example(folder: str, *modules: str) -> SimpleNamespace:
    path = str(EXAMPLES / folder)
    saved = {name: sys.modules.pop(name) for name in list(sys.modules) if name in modules}
    sys.path.insert(0, path)
    try:
        loaded = {name: importlib.import_module(name) for name in modules}
    finally:
        sys.path.remove(path)
        for name in modules:
            sys.modules.pop(name, None)
        sys.modules.update(saved)
    return SimpleNamespace(path=Path(path), **loaded)


@pytest.fixture(scope="session")
def research_advisor() -> SimpleNamespace:
    """``examples/research-advisor``'s ``corpus``, ``answers`` and ``agents`` modules."""
    return load_example("research-advisor", "corpus", "answers", "agents")
