"""The SQS-shaped function payload the bridge sends, and how it reads the partial batch response.

Payload (docs/architecture.md, "Function payload"): ``{"Records": [record, ...]}`` with the fields of an SQS event
record (https://docs.aws.amazon.com/lambda/latest/dg/with-sqs.html#example-standard-queue-message-event), so one
handler built on Powertools' ``BatchProcessor(EventType.SQS)`` serves the bridge and SQS alike; every field that
Powertools' ``SqsRecordModel`` requires is present. The record's shape is :func:`soorma.payload.sqs_record` (shared
with :func:`soorma.testing.sqs_batch`); the bridge fills it from the message's JetStream metadata:

* ``messageId`` — the JetStream stream sequence as a string (unique within a batch: one consumer, one stream);
* ``receiptHandle`` — ``<stream>/<consumer>/<stream seq>/<delivery count>`` (opaque; the function cannot ack);
* ``body`` — the message data as text (the event envelope JSON);
* ``attributes.ApproximateReceiveCount`` — ``metadata.num_delivered``; ``SentTimestamp`` — the time JetStream stored
  the message (ack-subject timestamp, ADR-15), epoch ms; ``ApproximateFirstReceiveTimestamp`` — the time of *this*
  receipt (JetStream does not keep the first one); ``SenderId`` — the bridge name;
* ``messageAttributes`` ``{}``, ``md5OfBody``, ``eventSource`` ``"soorma:nats"``, ``eventSourceARN``
  ``"<stream>/<consumer>"``, ``awsRegion``.

Response, following Lambda's rules for ``ReportBatchItemFailures``
(https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-errorhandling.html#services-sqs-batchfailurereporting):

* ``function_error`` set → every message failed (the error payload's ``errorType: errorMessage`` is kept);
* empty body, ``null``, ``{}``, or an object whose ``batchItemFailures`` is ``null``/``[]`` → every message succeeded;
* an object with ``batchItemFailures`` listing ``{"itemIdentifier": id}`` → exactly those failed;
* anything else — not JSON, not an object, an object without ``batchItemFailures`` (e.g. ``{"statusCode": 200}``),
  ``batchItemFailures`` not a list, an entry without a non-empty string ``itemIdentifier``, or an identifier that is
  not in the batch → the whole batch failed (Lambda does the same for malformed partial responses).

Extension (ours; ignored by Lambda's SQS event source mapping, which reads only ``batchItemFailures``):
``soormaTerminalFailures`` (:data:`soorma.payload.TERMINAL_FAILURES_FIELD`), a list of ``{"itemIdentifier": id,
"reason": text}`` naming failed items that no redelivery can fix (a malformed envelope). They land in
:attr:`Outcome.terminal` and count as failed even if ``batchItemFailures`` left them out; the bridge dead-letters them
at once. A malformed extension (not a list, an entry without a string ``itemIdentifier``, an id not in the batch) is
ignored as a whole — the items are then merely retried, never lost.

Extension (ours, likewise ignored by Lambda): ``soormaRetryLater`` (:data:`soorma.payload.RETRY_LATER_FIELD`), a list
of ``{"itemIdentifier": id, "retryAfterSeconds": s}`` naming failed items the platform could not serve now (its
database resuming). They land in :attr:`Outcome.retry_later`; the bridge redelivers them after at least ``s`` without
counting the delivery toward dead-lettering. A malformed entry is skipped (its item is then an ordinary failure).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from nats.aio.msg import Msg

from soorma.delivery.dead_letters import MAX_ERROR_CHARS, clip  # noqa: F401 (re-exported)
from soorma.payload import (  # noqa: F401 (re-exported)
    EVENT_SOURCE,
    RETRY_LATER_FIELD,
    TERMINAL_FAILURES_FIELD,
    batch,
    event_source_arn,
    sqs_record,
)

from .types import InvokeResult


def build_record(msg: Msg, body: str, *, sender: str, region: str, now_ms: int | None = None) -> dict[str, Any]:
    """One SQS-shaped record (:func:`soorma.payload.sqs_record`) for a JetStream message whose data decoded to
    ``body``."""
    meta = msg.metadata
    return sqs_record(
        message_id=str(meta.sequence.stream),
        body=body,
        stream=meta.stream,
        consumer=meta.consumer,
        receive_count=meta.num_delivered,
        sent_ms=int(meta.timestamp.timestamp() * 1000),
        first_receive_ms=now_ms if now_ms is not None else int(time.time() * 1000),
        sender=sender,
        region=region,
    )


def build_payload(records: Sequence[dict[str, Any]]) -> bytes:
    return json.dumps(batch(records), separators=(",", ":")).encode("utf-8")


@dataclass(frozen=True)
class Outcome:
    """Which message ids failed (``None`` = all of them) and why (``None`` when nothing failed); ``terminal``: the
    failed ids the function reported as terminal (``soormaTerminalFailures``) with their reasons; ``retry_later``:
    the failed ids the function could not serve because the platform was unavailable (``soormaRetryLater``), with
    the least delay in seconds before the next delivery."""

    failed: frozenset[str] | None
    error: str | None
    terminal: Mapping[str, str] = field(default_factory=dict)
    retry_later: Mapping[str, float] = field(default_factory=dict)

    @property
    def all_failed(self) -> bool:
        return self.failed is None


SUCCESS = Outcome(frozenset(), None)


def describe_function_error(result: InvokeResult) -> str:
    """``<X-Amz-Function-Error>: <errorType>: <errorMessage>`` from a Lambda error payload when it has them."""
    detail = result.payload.decode("utf-8", "replace").strip()
    try:
        data = json.loads(detail) if detail else None
    except ValueError:
        data = None
    if isinstance(data, dict) and ("errorMessage" in data or "errorType" in data):
        detail = f"{data.get('errorType', 'Error')}: {data.get('errorMessage', '')}"
    return clip(f"{result.function_error}: {detail}" if detail else str(result.function_error))


def interpret(result: InvokeResult, batch_ids: Sequence[str]) -> Outcome:
    """Map an invocation result to an :class:`Outcome` (rules in the module docstring)."""
    if result.function_error is not None:
        return Outcome(None, describe_function_error(result))
    raw = result.payload.strip()
    if not raw:
        return SUCCESS
    try:
        data = json.loads(raw)
    except ValueError:
        return Outcome(None, clip(f"unparsable function response (not JSON): {raw[:200]!r}"))
    if data is None or data == {}:
        return SUCCESS
    if not isinstance(data, dict) or "batchItemFailures" not in data:
        return Outcome(None, clip(f"unparsable function response (no batchItemFailures): {raw[:200]!r}"))
    failures = data["batchItemFailures"]
    known = set(batch_ids)
    terminal = _terminal(data.get(TERMINAL_FAILURES_FIELD), known)
    if (failures is None or failures == []) and not terminal:
        return SUCCESS
    if failures is not None and not isinstance(failures, list):
        return Outcome(None, "invalid batchItemFailures (not a list)")
    failed: set[str] = set()
    for item in failures or ():
        ident = item.get("itemIdentifier") if isinstance(item, dict) else None
        if not isinstance(ident, str) or not ident:
            return Outcome(None, clip(f"invalid batchItemFailures entry {item!r}"))
        if ident not in known:
            return Outcome(None, clip(f"batchItemFailures names an unknown itemIdentifier {ident!r}"))
        failed.add(ident)
    failed.update(terminal)
    retry_later = {ident: seconds for ident, seconds in _retry_later(data.get(RETRY_LATER_FIELD), known).items()
                   if ident in failed and ident not in terminal}
    error = ("the platform was unavailable (retry later)" if retry_later and set(retry_later) == failed
             else "function reported the item in batchItemFailures")
    return Outcome(frozenset(failed), error, terminal, retry_later)


def _retry_later(entries: Any, known: set[str]) -> dict[str, float]:
    """``{id: seconds}`` of the well-formed entries of a ``soormaRetryLater`` list (see the module docstring)."""
    if not entries or not isinstance(entries, list):
        return {}
    out: dict[str, float] = {}
    for item in entries:
        ident = item.get("itemIdentifier") if isinstance(item, dict) else None
        seconds = item.get("retryAfterSeconds", 0) if isinstance(item, dict) else None
        if isinstance(ident, str) and ident in known and isinstance(seconds, (int, float)) and seconds >= 0:
            out[ident] = float(seconds)
    return out


def _terminal(entries: Any, known: set[str]) -> dict[str, str]:
    """``{id: reason}`` of a well-formed ``soormaTerminalFailures`` list, else ``{}`` (see the module docstring)."""
    if not entries or not isinstance(entries, list):
        return {}
    out: dict[str, str] = {}
    for item in entries:
        ident = item.get("itemIdentifier") if isinstance(item, dict) else None
        if not isinstance(ident, str) or ident not in known:
            return {}
        out[ident] = clip(f"terminal failure: {item.get('reason') or 'reported by the function'}")
    return out
