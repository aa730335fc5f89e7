"""Webhooks in AWS: a sender outside the VPC (it reaches any receiver on the internet, IPv4 or IPv6, with no NAT
gateway) and the bookkeeping inside (it reaches the database), with two SQS queues between them. Nothing polls while
idle beyond the queues' event source mappings; a retry waits in an SQS delay, not in a running function.

* **control queue** → :func:`control_handler` (in the VPC): records each attempt's outcome
  (:func:`~soorma.functions.webhooks.sender.record_outcome`), then *dispatches*: claims every delivery due now
  (``webhooks.claim_due``, with a lease of :data:`LEASE_S` so a lost attempt is claimed again) and sends each to the
  send queue; when the earliest pending delivery is due later it arms one delayed wake-up message to itself
  (``DelaySeconds`` at most 900, SQS's maximum, so a longer wait is several hops; ``webhooks.arm_wake`` keeps one
  chain of them, https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-delay-queues.html).
* **send queue** → :func:`sender_handler` (outside the VPC): one attempt per message
  (:func:`~soorma.functions.webhooks.sender.attempt`, signed with the secret it derives from the pepper), its
  outcome sent back to the control queue.
* :func:`notify_sender` — what the tracker (after a batch) and the gateway (after a cancel or a replay) call: when a
  delivery is due, a wake-up message to the control queue. The triggers that create deliveries run in the database,
  which cannot send to SQS, so the functions whose transactions ended goals or recorded progress do it.

The functions in the VPC reach SQS at its dual-stack endpoint over IPv6 (``network="ipv6"``,
https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-dual-stack.html); with
``network="endpoints"`` an SQS interface endpoint would be needed (not created: webhooks are off there unless one is
added).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any, Mapping

from soorma.functions.shared import settings
from soorma.functions.shared.db import Database, database_from_env
from soorma.functions.webhooks.sender import BATCH, Outcome, attempt, record_outcome

logger = logging.getLogger("soorma.functions.webhooks")

#: SQS's longest ``DelaySeconds``.
MAX_DELAY_S = 900
#: SQS's largest message (256 KiB), with room to spare.
MAX_MESSAGE_BYTES = 250_000
#: How long a delivery sent to the sender stays claimed: the send queue's visibility timeout times its receives,
#: with room; an outcome that never comes back (the sender died) lets the delivery be claimed again after it.
LEASE_S = 900.0
WAKE = {"wake": True}


def _sqs() -> Any:
    import boto3

    return boto3.client("sqs")


def notify_sender(db: Database, sqs: Any = None, env: Mapping[str, str] | None = None) -> bool:
    """Wake the webhooks function when a delivery is due now (AWS only: a no-op without
    ``SOORMA_WEBHOOK_CONTROL_QUEUE_URL``, where the local stack's sender listens for ``NOTIFY``). Never raises: a
    failed wake-up is logged, and the delivery goes with the next one. Returns whether a wake-up was sent."""
    control = settings.WEBHOOK_CONTROL_QUEUE_URL.get(env)
    if not control:
        return False
    try:
        with db.transaction() as conn:
            row = conn.execute("select webhooks.next_due() <= clock_timestamp() as due").fetchone()
        if not (row and row["due"]):
            return False
        (sqs or _sqs()).send_message(QueueUrl=control, MessageBody=json.dumps(WAKE))
        return True
    except Exception:  # noqa: BLE001 - a webhook wake-up must never fail the goal's own work
        logger.exception("webhooks: could not wake the sender")
        return False


def dispatch(db: Database, sqs: Any, *, send_queue: str, control_queue: str) -> int:
    """Send every delivery due now to the send queue, and arm a wake-up for the next one due later. Returns how many
    were sent."""
    sent = 0
    while True:
        with db.transaction() as conn:
            rows = conn.execute("select * from webhooks.claim_due(%s, %s)", (BATCH, LEASE_S)).fetchall()
        if not rows:
            break
        bodies = []
        for r in rows:
            body = json.dumps({"delivery_id": str(r["delivery_id"]), "subscription_id": str(r["subscription_id"]),
                               "url": r["url"], "payload": r["payload"], "attempts": r["attempts"]},
                              separators=(",", ":"))
            if len(body.encode()) > MAX_MESSAGE_BYTES:  # it would fail on every claim: dead-letter it now
                record_outcome(db, str(r["delivery_id"]), int(r["attempts"]), Outcome(
                    None, f"payload over {MAX_MESSAGE_BYTES} bytes, SQS's message limit", retry=False), ())
                continue
            bodies.append(body)
        # One SendMessage each: a batch's 256 KiB limit is on the sum of its messages, and a payload may be large.
        for body in bodies:
            try:
                sqs.send_message(QueueUrl=send_queue, MessageBody=body)
                sent += 1
            except Exception:  # noqa: BLE001 - the lease runs out and the delivery is claimed again
                logger.exception("webhooks: an attempt was not queued")
    with db.transaction() as conn:
        due = conn.execute("select webhooks.next_due() as due").fetchone()["due"]
        if due is None:
            return sent
        delay = (due - datetime.now(UTC)).total_seconds()
        hop = min(MAX_DELAY_S, max(1, int(delay) + 1))
        armed = conn.execute("select webhooks.arm_wake(clock_timestamp() + make_interval(secs => %s)) as armed",
                             (hop,)).fetchone()["armed"]
    if armed:
        sqs.send_message(QueueUrl=control_queue, MessageBody=json.dumps(WAKE), DelaySeconds=hop)
    return sent


def control_handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """Lambda entry point of the webhooks function (in the VPC), mapped to the control queue: outcomes and
    wake-ups. A database error fails the batch, which SQS delivers again (recording an outcome twice is harmless)."""
    db = database_from_env()
    schedule = settings.WEBHOOK_RETRY_SCHEDULE.get()
    for record in event.get("Records", []):
        body = json.loads(record["body"])
        if "delivery_id" in body:
            outcome = Outcome(body.get("status"), body.get("error"), bool(body.get("retry")))
            record_outcome(db, str(body["delivery_id"]), int(body["attempts"]), outcome, schedule)
    dispatch(db, _sqs(), send_queue=settings.WEBHOOK_SEND_QUEUE_URL.required(),
             control_queue=settings.WEBHOOK_CONTROL_QUEUE_URL.required())
    return {"batchItemFailures": []}


def sender_handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """Lambda entry point of the webhook sender (outside the VPC), mapped to the send queue: one attempt per message,
    its outcome sent to the control queue. A message whose outcome could not be sent is reported failed, so SQS
    delivers it again (the receiver may see the attempt twice, with the same ``webhook-id``)."""
    import httpx

    sqs = _sqs()
    control = settings.WEBHOOK_CONTROL_QUEUE_URL.required()
    allow_loopback = settings.WEBHOOK_ALLOW_LOOPBACK.get()
    failures = []
    with httpx.Client(timeout=settings.WEBHOOK_TIMEOUT_S.get(), follow_redirects=False) as client:
        for record in event.get("Records", []):
            message = json.loads(record["body"])
            outcome = attempt(client, delivery_id=message["delivery_id"], subscription_id=message["subscription_id"],
                              url=message["url"], payload=message["payload"], allow_loopback=allow_loopback)
            try:
                sqs.send_message(QueueUrl=control, MessageBody=json.dumps({
                    "delivery_id": message["delivery_id"], "attempts": message["attempts"],
                    "status": outcome.status, "error": outcome.error, "retry": outcome.retry}))
            except Exception:  # noqa: BLE001 - reported to SQS per message
                logger.exception("webhooks: outcome of %s not sent", message["delivery_id"])
                failures.append({"itemIdentifier": record["messageId"]})
    return {"batchItemFailures": failures}
