"""Idempotency for agent functions: Powertools' idempotency utility on a PostgreSQL persistence layer (the platform's
memory function), so an event redelivered to ANY execution environment after it was handled is skipped.

Powertools' documentation: https://docs.powertools.aws.dev/lambda/python/latest/utilities/idempotency/

* :class:`PlatformPersistenceLayer` — a Powertools ``BasePersistenceLayer`` on ``/v1/memory/idempotency/{key}``
  (:mod:`soorma.idempotency.persistence`); usable with Powertools' ``idempotent_function`` / ``idempotent`` for any
  function, not only agents.
* :class:`AgentIdempotency` — what the agent Lambda entry wraps each record's dispatch in
  (:mod:`soorma.idempotency.agent`).
* :func:`idempotency_mode` — the ``SOORMA_IDEMPOTENCY`` setting:

  ``commit``    each handler run's effects in one request (``POST /v1/events/commit``: one transaction with an
                idempotency record per agent, event and handler; :meth:`soorma.agents.base.Agent._run_handler`),
                plus the per-environment cache of handlers that already succeeded;
  ``platform``  Powertools + :class:`PlatformPersistenceLayer` (two memory round trips per new event: PUT, PATCH),
                plus the per-environment cache of handlers that already succeeded;
  ``local``     only the per-environment cache (a redelivery to another environment runs the handlers again);
  ``off``       neither: every delivery runs every matching handler.

  Default: ``commit`` when running as a Lambda function (``AWS_LAMBDA_FUNCTION_NAME`` is set: in AWS or under
  ``soorma local``'s Lambda runtime) with a platform URL (``SOORMA_API_URL``, or ``SOORMA_MEMORY_URL``); else
  ``local``.

Importing this package is cheap: the Powertools parts load on first use of the names that need them (and never
import boto3; see :mod:`soorma.idempotency._powertools`).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Mapping

from soorma._lazy import lazy_exports
from soorma import settings

if TYPE_CHECKING:
    from soorma.idempotency.agent import AgentIdempotency, expiry_from_env
    from soorma.idempotency.persistence import PlatformPersistenceLayer

MODE_ENV = settings.IDEMPOTENCY.name
MODES = settings.IDEMPOTENCY_MODES
DOCS_URL = "https://docs.powertools.aws.dev/lambda/python/latest/utilities/idempotency/"

_URL_SETTINGS = (settings.API_URL, settings.MEMORY_URL, settings.MEMORY_SERVICE_URL)


def idempotency_mode(environ: Mapping[str, str] | None = None) -> str:
    """``"platform"``, ``"local"`` or ``"off"`` from ``SOORMA_IDEMPOTENCY`` (case-insensitive), else the default
    described in the module docstring. Raises ``ValueError`` for any other value."""
    env = os.environ if environ is None else environ
    value = settings.IDEMPOTENCY.get(env)
    if value:
        return value
    in_lambda = bool(env.get("AWS_LAMBDA_FUNCTION_NAME"))
    has_platform = any(setting.get(env) for setting in _URL_SETTINGS)
    return "commit" if in_lambda and has_platform else "local"


_LAZY = {
    "AgentIdempotency": "soorma.idempotency.agent",
    "expiry_from_env": "soorma.idempotency.agent",
    "PlatformPersistenceLayer": "soorma.idempotency.persistence",
}


__getattr__ = lazy_exports(__name__, _LAZY)


__all__ = ["AgentIdempotency", "DOCS_URL", "MODES", "MODE_ENV", "PlatformPersistenceLayer", "expiry_from_env",
           "idempotency_mode"]
