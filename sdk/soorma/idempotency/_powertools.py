"""Import Powertools' idempotency utility without importing boto3.

``aws_lambda_powertools.utilities.idempotency/__init__.py`` re-exports ``DynamoDBPersistenceLayer``, whose module
imports boto3 at its top: about 150-300 ms of a cold start on these machines, for a layer this SDK never uses (ours is
:class:`soorma.idempotency.PlatformPersistenceLayer`). :func:`load` registers the package with the same public names
resolved lazily instead (each from the submodule the real ``__init__`` takes it from), so importing the submodules we
use (``persistence.base``, ``idempotency``, ``exceptions``, ...) costs about 10 ms, and code that later imports
``DynamoDBPersistenceLayer`` from the package still gets the real class (boto3 is imported at that moment). A name
this table does not know runs the real ``__init__`` into the package. When the package is already imported, or
anything here fails, the plain import is used.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import sys
from typing import Any

PACKAGE = "aws_lambda_powertools.utilities.idempotency"

# What the real __init__ of aws-lambda-powertools 3.x exports, and where each name comes from.
_EXPORTS = {
    "BasePersistenceLayer": ".persistence.base",
    "DynamoDBPersistenceLayer": ".persistence.dynamodb",
    "IdempotentHookFunction": ".hook",
    "IdempotencyConfig": ".idempotency",
    "idempotent": ".idempotency",
    "idempotent_function": ".idempotency",
}


def load() -> Any:
    """The ``aws_lambda_powertools.utilities.idempotency`` package module (registered lazily on first call)."""
    module = sys.modules.get(PACKAGE)
    if module is not None:
        return module
    try:
        return _register()
    except Exception:  # pragma: no cover - a layout this code does not know: import it the ordinary way
        sys.modules.pop(PACKAGE, None)
        return importlib.import_module(PACKAGE)


def _register() -> Any:
    import aws_lambda_powertools.utilities as parent

    spec = importlib.machinery.PathFinder.find_spec(PACKAGE, list(parent.__path__))
    if spec is None or spec.loader is None or not spec.submodule_search_locations:
        raise ImportError(PACKAGE)
    loader = spec.loader
    module = importlib.util.module_from_spec(spec)
    state = {"full": False}

    def __getattr__(name: str) -> Any:
        target = _EXPORTS.get(name)
        if target is not None:
            value = getattr(importlib.import_module(PACKAGE + target), name)
        else:
            if state["full"] or name.startswith("__"):
                raise AttributeError(f"module {PACKAGE!r} has no attribute {name!r}")
            state["full"] = True
            loader.exec_module(module)  # the real __init__ (imports boto3 through the DynamoDB layer)
            try:
                value = module.__dict__[name]
            except KeyError:
                raise AttributeError(f"module {PACKAGE!r} has no attribute {name!r}") from None
        setattr(module, name, value)
        return value

    # PEP 562's module __getattr__; typeshed declares ModuleType.__getattr__, so mypy sees a method assignment
    module.__getattr__ = __getattr__  # type: ignore[method-assign]
    module.__all__ = tuple(_EXPORTS)  # type: ignore[attr-defined]  # ModuleType declares no __all__
    sys.modules[PACKAGE] = module
    setattr(parent, "idempotency", module)  # noqa: B010 - the submodule attribute, unknown to mypy before the import
    return module
