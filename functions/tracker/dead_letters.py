"""The SQS transport's dead letters: notice the goal, then park the message (``soorma.functions.tracker.dead_letters``).

On the SNS/SQS transport an agent's queue has a redrive policy: after ``maxReceiveCount`` receives SQS itself moves a
message to the agent's dead-letter queue (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/
sqs-dead-letter-queues.html), and no platform code runs at that moment. So every agent's dead-letter queue is the
source of an event source mapping (``ReportBatchItemFailures``, https://docs.aws.amazon.com/lambda/latest/dg/
services-sqs-errorhandling.html#services-sqs-batchfailurereporting) on this function, which for each dead letter:

1. sends the goal notice (:func:`soorma.goal_notices.dead_letter_notice`, id derived from the dead letter, so a retry
   is recorded once) to the **tracker's queue**, where the tracker records it exactly as it records the notice the
   NATS bridge publishes (:func:`soorma.functions.tracker.recording.record_envelope`): the goal ends ``failed`` with
   ``event T (id) was dead-lettered by agent A after N deliveries: …``;
2. sends the message, body and message attributes unchanged plus the attribute :data:`ATTRIBUTE` (JSON: agent,
   platform tenant, source queue, notice queue, deliveries, error, time, dead-letter id), to the agent's **parked
   queue**, where ``soorma dlq list`` / ``soorma dlq replay`` find it (:mod:`soorma.local.sqs_transport`);
3. answers success for it, so the mapping deletes it from the dead-letter queue.

A record whose step 1 or 2 fails is reported in ``batchItemFailures`` and comes back after the dead-letter queue's
visibility timeout (both steps are repeatable: the notice is de-duplicated by its id, a second parked copy only
replays the event once more, and handlers are idempotent by event id).

Why a function of its own, not the tracker: the tracker runs in the VPC's isolated subnets with no route to SQS (an
SQS interface endpoint would cost about $7.30 a month per zone, for ever, against the design's "about nothing while
idle"); this function needs no database and no secret, so it runs outside the VPC like the agents' functions, and the
tracker still applies every notice through its one code path.

What a dead-letter queue says about itself (queue tags, set by the CDK app and the local stack): :data:`TAG_TENANT`,
:data:`TAG_AGENT`, :data:`TAG_PARKED` (the parked queue's URL), :data:`TAG_NOTICES` (the tracker queue's URL),
:data:`TAG_MAX_DELIVERIES` (the source queue's ``maxReceiveCount``) and, where no dependency cycle forbids it,
:data:`TAG_SOURCE` (else the source queue is found with ``ListDeadLetterSourceQueues``). SQS does not carry the
function's error with the message: the reason names the delivery count and where the error is logged.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from soorma import telemetry
from soorma.goal_notices import dead_letter_notice

logger = logging.getLogger("soorma.functions.dead_letters")

TAG_TENANT, TAG_AGENT = "soorma:platform_tenant_id", "soorma:agent"
TAG_SOURCE = "soorma:source_queue_url"
TAG_PARKED = "soorma:parked_queue_url"
TAG_NOTICES = "soorma:notice_queue_url"
TAG_MAX_DELIVERIES = "soorma:max_deliveries"
TAG_ROLE = "soorma:role"  # "parked" on a parked queue
#: The message attribute a parked message carries (a JSON object, see the module docstring).
ATTRIBUTE = "soorma_dead_letter"


@dataclass(frozen=True)
class DeadLetterQueue:
    """What a dead-letter queue's tags (and ``ListDeadLetterSourceQueues``) say: whose it is and where things go."""

    url: str
    platform_tenant_id: str
    agent: str
    parked_url: str
    notice_url: str | None
    source_url: str | None
    max_deliveries: int | None


def queue_url_of(sqs, arn: str) -> str:
    """The URL of the queue ``arn`` (``arn:aws:sqs:<region>:<account>:<name>``), by ``GetQueueUrl``."""
    parts = arn.split(":")
    if len(parts) != 6 or parts[2] != "sqs":
        raise ValueError(f"not an SQS queue ARN: {arn!r}")
    return sqs.get_queue_url(QueueName=parts[5], QueueOwnerAWSAccountId=parts[4])["QueueUrl"]


class DeadLetterRouter:
    """Resolves and caches each dead-letter queue's :class:`DeadLetterQueue` (tags change only on deploy)."""

    def __init__(self, sqs) -> None:
        self.sqs = sqs
        self._cache: dict[str, DeadLetterQueue] = {}
        self._lock = threading.Lock()

    def queue(self, arn: str) -> DeadLetterQueue:
        with self._lock:
            known = self._cache.get(arn)
        if known is not None:
            return known
        url = queue_url_of(self.sqs, arn)
        tags = self.sqs.list_queue_tags(QueueUrl=url).get("Tags") or {}
        missing = [t for t in (TAG_TENANT, TAG_AGENT, TAG_PARKED) if not tags.get(t)]
        if missing:
            raise ValueError(f"dead-letter queue {url} lacks the tags {', '.join(missing)}")
        source = tags.get(TAG_SOURCE)
        if not source:
            sources = self.sqs.list_dead_letter_source_queues(QueueUrl=url).get("queueUrls") or []
            source = sources[0] if len(sources) == 1 else None
        max_deliveries = tags.get(TAG_MAX_DELIVERIES)
        found = DeadLetterQueue(url, tags[TAG_TENANT], tags[TAG_AGENT], tags[TAG_PARKED], tags.get(TAG_NOTICES),
                                source, int(max_deliveries) if max_deliveries and max_deliveries.isdigit() else None)
        with self._lock:
            self._cache[arn] = found
        return found


def _send_attributes(lambda_attributes: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Lambda's record ``messageAttributes`` (``stringValue``, ``dataType``…) in ``SendMessage``'s spelling."""
    out: dict[str, dict[str, Any]] = {}
    for name, value in (lambda_attributes or {}).items():
        if name == ATTRIBUTE:
            continue  # a replayed message dead-lettered again gets a fresh one
        data_type = value.get("dataType") or value.get("DataType") or "String"
        if value.get("stringValue") is not None:
            out[name] = {"DataType": data_type, "StringValue": value["stringValue"]}
        elif value.get("binaryValue") is not None:
            import base64

            out[name] = {"DataType": data_type, "BinaryValue": base64.b64decode(value["binaryValue"])}
    return out


def error_text(deliveries: int | None) -> str:
    """The reason a goal gets: SQS keeps no error with the message, so say what is known and where the rest is."""
    count = f" (maxReceiveCount {deliveries})" if deliveries else ""
    return (f"every delivery failed{count} and the queue's redrive policy moved the event to the dead-letter queue; "
            "the function's error is in its log")


def park(sqs, router: DeadLetterRouter, record: dict[str, Any]) -> dict[str, Any]:
    """Notice and park one dead letter (the module docstring's steps 1 and 2); returns the parked metadata.
    Raises on any failed step (the record is then reported failed and retried)."""
    dlq = router.queue(record["eventSourceARN"])
    # tenant and agent are [A-Za-z0-9_-] (soorma.subjects.check_identifier), so ":" keeps the id unambiguous
    dead_letter_id = f"sqs:{dlq.platform_tenant_id}:{dlq.agent}:{record['messageId']}"
    received = (record.get("attributes") or {}).get("ApproximateReceiveCount")
    deliveries = dlq.max_deliveries or (int(received) if received and str(received).isdigit() else None)
    error = error_text(deliveries)
    body = record.get("body") or ""
    notice = dead_letter_notice(body, agent=dlq.agent, error=error, deliveries=deliveries,
                                dead_letter_id=dead_letter_id, platform_tenant_id=dlq.platform_tenant_id)
    if notice is not None:
        if not dlq.notice_url:
            raise ValueError(f"dead-letter queue {dlq.url} has no {TAG_NOTICES} tag: the goal notice has nowhere to go")
        sqs.send_message(QueueUrl=dlq.notice_url, MessageBody=notice.to_json())
    meta = {
        "agent": dlq.agent, "platform_tenant_id": dlq.platform_tenant_id, "dead_letter_id": dead_letter_id,
        "source_queue_url": dlq.source_url, "notice_queue_url": dlq.notice_url, "deliveries": deliveries,
        "error": error, "dead_lettered_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "goal_noticed": notice is not None,
    }
    attributes = _send_attributes(record.get("messageAttributes") or {})
    attributes[ATTRIBUTE] = {"DataType": "String", "StringValue": json.dumps(meta, sort_keys=True)}
    sqs.send_message(QueueUrl=dlq.parked_url, MessageBody=body, MessageAttributes=attributes)
    return meta


def process_dead_letters(sqs, router: DeadLetterRouter, event: dict[str, Any]) -> dict[str, Any]:
    """Park every record of a dead-letter queue batch; ``{"batchItemFailures": [{"itemIdentifier"}]}`` names the
    ones to retry (Lambda's partial batch response)."""
    failures = []
    parked: dict[str, int] = {}  # agent -> dead letters parked in this batch
    for record in event.get("Records") or []:
        try:
            meta = park(sqs, router, record)
        except Exception as exc:  # noqa: BLE001 - one record's failure must not fail the others
            logger.error("dead letter %s not parked (retried): %s: %s", record.get("messageId"),
                         type(exc).__name__, exc)
            failures.append({"itemIdentifier": record.get("messageId")})
        else:
            parked[meta["agent"]] = parked.get(meta["agent"], 0) + 1
            logger.info("dead letter %s of agent %s parked (goal noticed: %s)", meta["dead_letter_id"],
                        meta["agent"], meta["goal_noticed"],
                        extra={"agent": meta["agent"], "tenant": meta["platform_tenant_id"]})
    if telemetry.in_function():
        emit_dead_letter_metrics(parked)
    return {"batchItemFailures": failures}


def emit_dead_letter_metrics(parked: dict[str, int]) -> None:
    """The SQS transport's ``DeadLettered`` metric (Count, namespace ``Soorma``, dimension ``agent``: the name the
    NATS bridge uses for its dead letters, :mod:`soorma.functions.bridge.metrics`), one EMF record per agent on
    stdout (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html)."""
    from aws_lambda_powertools.metrics import MetricUnit, single_metric

    for agent, count in parked.items():
        with single_metric(name="DeadLettered", unit=MetricUnit.Count, value=count, namespace=telemetry.METRICS_NAMESPACE,
                           default_dimensions={"agent": agent}):
            pass


_client_lock = threading.Lock()
_sqs = None
_router: DeadLetterRouter | None = None


def _clients():
    global _sqs, _router
    with _client_lock:
        if _sqs is None:
            import boto3

            kw: dict[str, Any] = {}
            if os.environ.get("AWS_ENDPOINT_URL"):
                kw["endpoint_url"] = os.environ["AWS_ENDPOINT_URL"]
            _sqs = boto3.client("sqs", **kw)
            _router = DeadLetterRouter(_sqs)
        return _sqs, _router


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """Lambda entry point (the event source mappings on the agents' dead-letter queues)."""
    sqs, router = _clients()
    return process_dead_letters(sqs, router, event)


__all__ = ["ATTRIBUTE", "DeadLetterRouter", "handler", "park", "process_dead_letters"]
