"""Lambda entry point of the tracker: ``soorma.functions.tracker.handler.handler``.

* An event with ``"Records"`` is the function payload of docs/architecture.md (a batch of envelopes of every tenant,
  from the bridge or SQS): each is recorded and the answer is ``{"batchItemFailures": [...]}``.
* Anything else is an API Gateway v2 request for ``GET /v1/tracker/goals/{goal_id}/events``, served by the FastAPI
  app through Mangum (built on first use, reused while warm).
"""

from __future__ import annotations

from typing import Any

from soorma.db import database_from_env
from soorma.service import lazy_mangum_handler
from soorma.functions.tracker.app import create_app, process_batch

_http = lazy_mangum_handler(create_app)


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    if isinstance(event, dict) and "Records" in event:
        return process_batch(database_from_env(), event, context)
    return _http(event, context)
