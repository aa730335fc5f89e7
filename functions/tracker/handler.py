"""Lambda entry point of the tracker: ``soorma.functions.tracker.handler.handler``.

* An event with ``"Records"`` is the function payload of docs/architecture.md (a batch of envelopes of every tenant,
  from the bridge or SQS): each is recorded and the answer is ``{"batchItemFailures": [...]}``.
* Anything else is an API Gateway v2 request for ``GET /v1/tracker/goals/{goal_id}/events``, served by the FastAPI
  app through Mangum.

Only recording is imported at cold start: an execution environment that only ever records batches (the tracker's
usual work) never imports FastAPI; the HTTP app is imported and built on the first HTTP request and reused while
the environment is warm.
"""

from __future__ import annotations

import threading
from typing import Any, Callable

from soorma.db import database_from_env
from soorma.functions.tracker.recording import process_batch

_http: list[Callable[[dict[str, Any], Any], dict[str, Any]]] = []
_http_lock = threading.Lock()


def _http_handler() -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    if not _http:
        with _http_lock:
            if not _http:
                from soorma.functions.tracker.app import create_app
                from soorma.service import lazy_mangum_handler

                _http.append(lazy_mangum_handler(create_app))
    return _http[0]


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    if isinstance(event, dict) and "Records" in event:
        return process_batch(database_from_env(), event, context)
    return _http_handler()(event, context)
