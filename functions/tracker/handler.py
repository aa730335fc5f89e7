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

from typing import Any

from soorma.functions.shared.db import database_from_env
from soorma.functions.tracker.recording import process_batch
from soorma.functions.webhooks.aws import notify_sender


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    if isinstance(event, dict) and "Records" in event:
        db = database_from_env()
        answer = process_batch(db, event, context)
        notify_sender(db)  # AWS: a goal that ended or progressed may have webhook deliveries due
        return answer
    # Imported here, not above: the import system runs soorma.functions.tracker.app once (under its lock) and
    # caches it, so the first HTTP request builds the lazy Mangum handler and later ones reuse it.
    from soorma.functions.tracker.app import http_handler

    return http_handler(event, context)
