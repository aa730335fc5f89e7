"""The function payload (docs/architecture.md, "Function payload"): the SQS-shaped batch an agent or the tracker is
invoked with.

One record shape serves every producer: the bridge builds records from JetStream messages
(``soorma.functions.bridge.payload.build_record``), :func:`soorma.testing.sqs_batch` builds them for tests, and
:mod:`soorma.runtime` (like the tracker) reads them with Powertools' ``BatchProcessor(EventType.SQS)``. Every field
that Powertools' ``SqsRecordModel`` requires is present
(https://docs.aws.amazon.com/lambda/latest/dg/with-sqs.html#example-standard-queue-message-event).

Standard library only: importing this module loads nothing else.
"""

from __future__ import annotations

import hashlib
from typing import Any, Iterable

#: ``eventSource`` of every record the platform builds (SQS's own records say ``aws:sqs``).
EVENT_SOURCE = "soorma:nats"


def event_source_arn(stream: str, consumer: str) -> str:
    """``eventSourceARN`` of a record: ``<stream>/<consumer>``."""
    return f"{stream}/{consumer}"


def sqs_record(
    *,
    message_id: str,
    body: str,
    stream: str,
    consumer: str,
    receive_count: int,
    sent_ms: int,
    first_receive_ms: int,
    sender: str,
    region: str,
) -> dict[str, Any]:
    """One record of the function payload.

    ``receiptHandle`` is ``<stream>/<consumer>/<message id>/<receive count>`` (opaque: a function cannot ack);
    ``attributes.ApproximateReceiveCount`` is ``receive_count``, ``SentTimestamp`` ``sent_ms`` and
    ``ApproximateFirstReceiveTimestamp`` ``first_receive_ms`` (epoch milliseconds, as strings like SQS's).
    """
    return {
        "messageId": message_id,
        "receiptHandle": f"{stream}/{consumer}/{message_id}/{receive_count}",
        "body": body,
        "attributes": {
            "ApproximateReceiveCount": str(receive_count),
            "SentTimestamp": str(sent_ms),
            "ApproximateFirstReceiveTimestamp": str(first_receive_ms),
            "SenderId": sender,
        },
        "messageAttributes": {},
        "md5OfBody": hashlib.md5(body.encode("utf-8")).hexdigest(),
        "eventSource": EVENT_SOURCE,
        "eventSourceARN": event_source_arn(stream, consumer),
        "awsRegion": region,
    }


def batch(records: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The function payload: ``{"Records": [record, ...]}``."""
    return {"Records": list(records)}


#: The partial batch response's extension field for terminal failures (docs/architecture.md, "Function payload").
#: ``{"batchItemFailures": [{"itemIdentifier": id}, ...], "soormaTerminalFailures": [{"itemIdentifier": id,
#: "reason": text}, ...]}``: every terminal item is *also* listed in ``batchItemFailures``, so the response stays a
#: valid SQS partial batch response. Lambda's SQS event source mapping ignores fields it does not know
#: (https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-errorhandling.html#services-sqs-batchfailurereporting),
#: so there the item is retried until the queue's ``maxReceiveCount`` moves it to the dead-letter queue; the NATS
#: bridge reads the field and dead-letters the item at once, without spending its remaining deliveries.
TERMINAL_FAILURES_FIELD = "soormaTerminalFailures"


def with_terminal_failures(response: dict[str, Any], terminal: dict[str, str]) -> dict[str, Any]:
    """``response`` (a partial batch response) with ``terminal`` (``{message id: reason}``) added as
    :data:`TERMINAL_FAILURES_FIELD`; each terminal id is added to ``batchItemFailures`` too if it is missing there.
    Returns ``response`` unchanged when ``terminal`` is empty (the plain SQS shape)."""
    return _with_failure_extension(response, TERMINAL_FAILURES_FIELD,
                                   [{"itemIdentifier": ident, "reason": reason} for ident, reason in terminal.items()])


def _with_failure_extension(response: dict[str, Any], field: str, entries: list[dict[str, Any]]) -> dict[str, Any]:
    """``response`` with ``entries`` (each with an ``itemIdentifier``) as extension ``field``, every such id also in
    ``batchItemFailures``; ``response`` itself when there are no entries."""
    if not entries:
        return response
    out = dict(response)
    failures = list(out.get("batchItemFailures") or [])
    listed = {f.get("itemIdentifier") for f in failures if isinstance(f, dict)}
    failures.extend({"itemIdentifier": e["itemIdentifier"]} for e in entries if e["itemIdentifier"] not in listed)
    out["batchItemFailures"] = failures
    out[field] = entries
    return out


#: The partial batch response's extension field for items that failed because the platform is unavailable now (its
#: database resuming from a pause): ``"soormaRetryLater": [{"itemIdentifier": id, "retryAfterSeconds": s}, ...]``,
#: each item *also* in ``batchItemFailures``. The NATS bridge redelivers them after at least ``s`` seconds without
#: counting the delivery toward the route's ``max_deliveries`` (:mod:`soorma.functions.bridge`); Lambda's SQS event
#: source mapping ignores the field and redelivers after the queue's visibility timeout (6 × the function's timeout
#: in the CDK app, 35 s or more locally), so ``maxReceiveCount`` deliveries span minutes, longer than a resume.
RETRY_LATER_FIELD = "soormaRetryLater"


def with_retry_later(response: dict[str, Any], retry_later: dict[str, float]) -> dict[str, Any]:
    """``response`` (a partial batch response) with ``retry_later`` (``{message id: seconds}``) added as
    :data:`RETRY_LATER_FIELD`; each id is added to ``batchItemFailures`` too if it is missing there. Returns
    ``response`` unchanged when ``retry_later`` is empty."""
    return _with_failure_extension(response, RETRY_LATER_FIELD,
                                   [{"itemIdentifier": ident, "retryAfterSeconds": round(float(seconds), 3)}
                                    for ident, seconds in retry_later.items()])
