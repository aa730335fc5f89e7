"""Lazy package exports: a module ``__getattr__`` (`PEP 562 <https://peps.python.org/pep-0562/>`_) that imports a
name's module on first access, so ``import soorma`` (and ``soorma.ai``, ``soorma.idempotency``) stays cheap for a
function's cold start and only what an agent uses is loaded."""

from __future__ import annotations

import importlib
import sys
from typing import Any, Callable, Mapping


def lazy_exports(package: str, exports: Mapping[str, str]) -> Callable[[str], Any]:
    """The ``__getattr__`` for ``package``: ``exports`` maps a public name to the module defining it (absolute, or
    relative to ``package`` like ``".state"``). The first access imports that module and caches the value in the
    package's namespace, so later accesses never reach ``__getattr__``. Any other name raises ``AttributeError``
    (``module 'soorma' has no attribute 'x'``), as for an ordinary module.

    Usage, at the end of a package's ``__init__``: ``__getattr__ = lazy_exports(__name__, _LAZY)``."""

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, package), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__
