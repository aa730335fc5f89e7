"""Builders of the events a Soorma function is invoked with: API Gateway HTTP API requests (payload format 2.0) and
the Lambda authorizer's REQUEST event (defined in :mod:`soorma.lambda_events`, which ``soorma local``'s API Gateway
builds its events with, and re-exported here), and the SQS-shaped function payload of docs/architecture.md.

They build plain dicts, exactly what Lambda hands a handler, and import nothing heavy (no FastAPI, no database
driver): a test calls the handler with them directly, without deploying anything.
"""

from __future__ import annotations

import json
import time
from typing import Any, Mapping

from soorma.events import EventEnvelope
from soorma.lambda_events import DEFAULT_ROUTE_ARN, IDENTITY_HEADERS, authorizer_event, http_api_event
from soorma.payload import batch, sqs_record
from soorma.subjects import STREAM


def _body_text(item: Any) -> str:
    if isinstance(item, EventEnvelope):
        return item.to_json()
    if isinstance(item, str):
        return item
    if isinstance(item, bytes):
        return item.decode("utf-8")
    if isinstance(item, Mapping):
        return json.dumps(dict(item))
    raise TypeError(f"sqs_batch takes EventEnvelope, dict, str or bytes bodies, not {type(item).__name__}")


def sqs_batch(
    *envelopes_or_bodies: EventEnvelope | Mapping[str, Any] | str | bytes,
    receive_count: int = 1,
    consumer: str = "test",
) -> dict[str, Any]:
    """The function payload of docs/architecture.md (``{"Records": [...]}``), one record per item, with the same
    record shape the bridge sends (:func:`soorma.payload.sqs_record`).

    An :class:`EventEnvelope` becomes its JSON (``to_json()``), a dict is dumped as JSON, and a ``str``/``bytes`` is
    the body as given (to test malformed bodies). Message ids are ``m0``, ``m1``, … in order, which is what a
    handler names in ``batchItemFailures``; ``receive_count`` is every record's ``ApproximateReceiveCount`` (>1: a
    redelivery); ``eventSourceARN`` is ``SOORMA_EVENTS/<consumer>``.
    """
    now_ms = int(time.time() * 1000)
    return batch(
        sqs_record(
            message_id=f"m{i}",
            body=_body_text(item),
            stream=STREAM,
            consumer=consumer,
            receive_count=receive_count,
            sent_ms=now_ms,
            first_receive_ms=now_ms,
            sender="soorma.testing",
            region="local",
        )
        for i, item in enumerate(envelopes_or_bodies)
    )


__all__ = ["DEFAULT_ROUTE_ARN", "IDENTITY_HEADERS", "authorizer_event", "http_api_event", "sqs_batch"]
