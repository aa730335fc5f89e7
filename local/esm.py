"""A local SQS event source mapping: polls an agent's queue and invokes its function the way Lambda's SQS event
source mapping does, for the SNS/SQS transport on moto (or any SQS endpoint).

Semantics followed (https://docs.aws.amazon.com/lambda/latest/dg/with-sqs.html,
https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-configure.html,
https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-errorhandling.html):

* **batch size** — up to ``batch_size`` messages per invocation. SQS returns at most 10 per ``ReceiveMessage``, so a
  larger batch is gathered from several receives: until it is full, until ``max_batching_window_s`` has passed since
  the first message, or — with no window — as long as each receive comes back full (what is there now, no waiting);
* **visibility timeout** — the queue's own (``VisibilityTimeout``); a message that is not deleted becomes visible
  again when it runs out, and its ``ApproximateReceiveCount`` grows with every receive;
* **maximum receive count** — SQS's redrive policy on the queue moves a message to the dead-letter queue after
  ``maxReceiveCount`` receives (moto implements it; this poller does nothing special);
* **partial batch responses** (``ReportBatchItemFailures``) — the response is read by the same rules as the bridge's
  (:func:`soorma.functions.bridge.interpret`): the succeeded messages are deleted, the ones in ``batchItemFailures``
  are left to come back after the visibility timeout; a function error, a timeout or a malformed response fails the
  whole batch. Without ``report_batch_item_failures`` a function error fails the batch and anything else deletes it;
* **throttling** (the invoker raises :class:`~soorma.functions.bridge.FunctionThrottled`) — Lambda keeps the batch and
  retries with backoff until the messages' visibility timeout runs out, then lets them go back to the queue: the
  same here (equal-jitter pauses; the receive count does not grow while it retries);
* **maximum concurrency** — ``max_concurrency`` pollers, each with one batch in flight.

Records have Lambda's SQS event shape (``eventSource`` ``aws:sqs``, the queue ARN, attributes and message attributes
as Lambda spells them), so the same SDK entry point (Powertools' ``BatchProcessor(EventType.SQS)``) handles them.
The invoker is the bridge's :class:`~soorma.functions.bridge.Invoker`: the local Lambda runtime, or anything else.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

from soorma.delivery.backoff import ExponentialBackoff
from soorma.functions.bridge.metrics import percentile
from soorma.functions.bridge.payload import Outcome, clip, interpret
from soorma.functions.bridge.types import FunctionThrottled, Invoker

log = logging.getLogger("soorma.local.esm")

SQS_RECEIVE_MAX = 10


@dataclass(frozen=True)
class Mapping:
    """One event source mapping: ``queue_url`` → ``function_name``."""

    function_name: str
    queue_url: str
    batch_size: int = 10
    max_batching_window_s: float = 0.0
    max_concurrency: int = 2
    report_batch_item_failures: bool = True
    name: str | None = None  # the key in stats(); default "<function>@<queue name>"

    def __post_init__(self) -> None:
        if not 1 <= self.batch_size <= 10_000:
            raise ValueError("batch_size must be 1..10000 (Lambda's limit for standard queues)")
        if not 0 <= self.max_batching_window_s <= 300:
            raise ValueError("max_batching_window_s must be 0..300")
        if self.max_concurrency < 1:
            raise ValueError("max_concurrency must be >= 1")

    @property
    def key(self) -> str:
        return self.name or f"{self.function_name}@{self.queue_url.rstrip('/').rsplit('/', 1)[-1]}"


def lambda_record(message: dict[str, Any], *, queue_arn: str, region: str) -> dict[str, Any]:
    """One record of Lambda's SQS event from a ``ReceiveMessage`` message (attribute names as Lambda writes them)."""
    attributes = {k: str(v) for k, v in (message.get("Attributes") or {}).items()
                  if k in ("ApproximateReceiveCount", "SentTimestamp", "SenderId", "ApproximateFirstReceiveTimestamp",
                           "AWSTraceHeader", "MessageGroupId", "SequenceNumber", "MessageDeduplicationId")}
    attrs: dict[str, Any] = {}
    for name, value in (message.get("MessageAttributes") or {}).items():
        binary = value.get("BinaryValue")
        attrs[name] = {
            "stringValue": value.get("StringValue"),
            "binaryValue": base64.b64encode(binary).decode() if isinstance(binary, bytes) else binary,
            "stringListValues": list(value.get("StringListValues") or []),
            "binaryListValues": list(value.get("BinaryListValues") or []),
            "dataType": value.get("DataType", "String"),
        }
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": attributes,
        "messageAttributes": attrs,
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }


@dataclass
class MappingStats:
    mapping: str
    function_name: str
    queue_url: str
    received: int = 0
    succeeded: int = 0
    failed: int = 0
    throttled: int = 0
    abandoned: int = 0  # batches given back to the queue after throttling outlasted their visibility timeout
    invocations: int = 0
    failed_invocations: int = 0
    in_flight: int = 0
    last_error: str | None = None
    latencies: deque = field(default_factory=lambda: deque(maxlen=1000), repr=False)

    def as_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k != "latencies"}
        out["delivery_latency_p50_ms"] = percentile(self.latencies, 50)
        out["delivery_latency_p99_ms"] = percentile(self.latencies, 99)
        return out


class EventSourceMapping:
    """The pollers of one :class:`Mapping` (``await start()``, ``await stop()``, ``stats()``).

    ``sqs`` is a boto3 SQS client (thread-safe; calls run in worker threads). ``wait_time_s`` is the long-poll wait of
    a receive (bounds how fast ``stop`` takes effect). ``backoff.pause(n)`` paces throttled retries.
    """

    def __init__(self, sqs, mapping: Mapping, invoker: Invoker, *, region: str = "us-east-1",
                 wait_time_s: int = 1, backoff: ExponentialBackoff | None = None,
                 on_record: Callable[[dict], None] | None = None) -> None:
        self.sqs = sqs
        self.mapping = mapping
        self.invoker = invoker
        self.region = region
        self.wait_time_s = wait_time_s
        self.backoff = backoff or ExponentialBackoff(base_s=0.1, cap_s=5.0)
        self.queue_arn = ""
        self.visibility_timeout_s = 30.0
        self._stats = MappingStats(mapping.key, mapping.function_name, mapping.queue_url)
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task] = []

    async def start(self) -> None:
        attrs = (await asyncio.to_thread(
            self.sqs.get_queue_attributes, QueueUrl=self.mapping.queue_url,
            AttributeNames=["QueueArn", "VisibilityTimeout"]))["Attributes"]
        self.queue_arn = attrs["QueueArn"]
        self.visibility_timeout_s = float(attrs.get("VisibilityTimeout", 30))
        self._stopping.clear()
        self._tasks = [asyncio.create_task(self._poll(i), name=f"esm-{self.mapping.key}-{i}")
                       for i in range(self.mapping.max_concurrency)]

    async def stop(self, drain_timeout_s: float = 30.0) -> None:
        """Stop receiving; let in-flight batches finish (up to ``drain_timeout_s``), then cancel the rest (their
        messages come back after the visibility timeout)."""
        self._stopping.set()
        if not self._tasks:
            return
        _, pending = await asyncio.wait(self._tasks, timeout=drain_timeout_s)
        for task in pending:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    def kill(self) -> None:
        """Cancel every poller at once, mid-batch (tests: a crashed poller deletes nothing it has not deleted)."""
        self._stopping.set()
        for task in self._tasks:
            task.cancel()

    def stats(self) -> dict[str, Any]:
        return self._stats.as_dict()

    # ---------------------------------------------------------------------------------------------- polling

    async def _receive(self, count: int, wait_s: int) -> list[dict]:
        response = await asyncio.to_thread(
            self.sqs.receive_message, QueueUrl=self.mapping.queue_url, MaxNumberOfMessages=count,
            WaitTimeSeconds=wait_s, AttributeNames=["All"], MessageAttributeNames=["All"])
        return response.get("Messages", [])

    async def _gather(self) -> list[dict]:
        mapping = self.mapping
        batch = await self._receive(min(SQS_RECEIVE_MAX, mapping.batch_size), self.wait_time_s)
        if not batch or len(batch) >= mapping.batch_size:
            return batch
        deadline = time.monotonic() + mapping.max_batching_window_s
        last = len(batch)
        while len(batch) < mapping.batch_size and not self._stopping.is_set():
            window_left = deadline - time.monotonic()
            if mapping.max_batching_window_s <= 0:
                if last < SQS_RECEIVE_MAX:
                    break  # the queue had no more right now
                got = await self._receive(min(SQS_RECEIVE_MAX, mapping.batch_size - len(batch)), 0)
            else:
                if window_left <= 0:
                    break
                got = await self._receive(min(SQS_RECEIVE_MAX, mapping.batch_size - len(batch)),
                                          min(int(window_left), 20) if window_left >= 1 else 0)
                if not got and window_left < 1:
                    await asyncio.sleep(min(window_left, 0.05))
            last = len(got)
            batch.extend(got)
            if not got and mapping.max_batching_window_s <= 0:
                break
        return batch

    async def _poll(self, index: int) -> None:
        stats = self._stats
        while not self._stopping.is_set():
            try:
                messages = await self._gather()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the queue endpoint is down: wait and retry
                stats.last_error = clip(f"receive: {type(exc).__name__}: {exc}")
                await asyncio.sleep(1.0)
                continue
            if messages:
                await self._handle(messages)

    async def _handle(self, messages: list[dict]) -> None:
        stats = self._stats
        received_at = time.monotonic()
        stats.received += len(messages)
        stats.in_flight += len(messages)
        try:
            records = [lambda_record(m, queue_arn=self.queue_arn, region=self.region) for m in messages]
            ids = [r["messageId"] for r in records]
            payload = json.dumps({"Records": records}, separators=(",", ":")).encode()
            streak = 0
            while True:
                try:
                    result = await asyncio.wait_for(self.invoker.invoke(self.mapping.function_name, payload),
                                                    timeout=self.visibility_timeout_s + 5)
                except FunctionThrottled as exc:
                    streak += 1
                    stats.throttled += len(messages)
                    stats.last_error = clip(f"throttled: {exc}")
                    pause = max(self.backoff.pause(streak), exc.retry_after_s or 0.0)
                    if time.monotonic() + pause >= received_at + self.visibility_timeout_s:
                        stats.abandoned += 1  # Lambda drops the batch back into the queue
                        return
                    await asyncio.sleep(pause)
                    continue
                except TimeoutError:
                    outcome = Outcome(None, "invocation outlasted the queue's visibility timeout")
                except Exception as exc:  # noqa: BLE001 - a failed invocation fails the batch
                    outcome = Outcome(None, clip(f"invocation failed: {type(exc).__name__}: {exc}"))
                else:
                    if self.mapping.report_batch_item_failures:
                        outcome = interpret(result, ids)
                    elif result.function_error is not None:
                        outcome = interpret(result, ids)  # a function error: every message failed
                    else:
                        outcome = Outcome(frozenset(), None)
                break
            stats.invocations += 1
            if outcome.all_failed:
                stats.failed_invocations += 1
            failed = set(ids) if outcome.failed is None else set(outcome.failed)
            if failed:
                stats.failed += len(failed)
                stats.last_error = outcome.error
            done = [m for m in messages if m["MessageId"] not in failed]
            await self._delete(done)
            now_ms = time.time() * 1000
            for message in done:
                sent = (message.get("Attributes") or {}).get("SentTimestamp")
                if sent:
                    stats.latencies.append(max(0.0, now_ms - float(sent)))
        finally:
            stats.in_flight -= len(messages)

    async def _delete(self, messages: list[dict]) -> None:
        stats = self._stats
        for start in range(0, len(messages), SQS_RECEIVE_MAX):
            chunk = messages[start:start + SQS_RECEIVE_MAX]
            entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)]
            try:
                response = await asyncio.to_thread(self.sqs.delete_message_batch, QueueUrl=self.mapping.queue_url,
                                                   Entries=entries)
            except Exception as exc:  # noqa: BLE001 - not deleted: they come back after the visibility timeout
                stats.last_error = clip(f"delete: {type(exc).__name__}: {exc}")
                continue
            failed = response.get("Failed") or []
            stats.succeeded += len(chunk) - len(failed)
            if failed:
                stats.last_error = clip(f"delete: {failed[0].get('Message', failed[0])}")


class EventSourceMappings:
    """Several mappings on one SQS client (the local stack's set), keyed by :attr:`Mapping.key`."""

    def __init__(self, sqs, invoker: Invoker, **kw: Any) -> None:
        self.sqs = sqs
        self.invoker = invoker
        self.kw = kw
        self._mappings: dict[str, EventSourceMapping] = {}

    async def apply(self, mappings: list[Mapping]) -> None:
        """Start new mappings, restart changed ones, stop the ones no longer listed."""
        wanted = {m.key: m for m in mappings}
        for key in [k for k, esm in self._mappings.items() if wanted.get(k) != esm.mapping]:
            await self._mappings.pop(key).stop()
        for key, mapping in wanted.items():
            if key not in self._mappings:
                esm = EventSourceMapping(self.sqs, mapping, self.invoker, **self.kw)
                await esm.start()
                self._mappings[key] = esm

    async def stop(self) -> None:
        for esm in list(self._mappings.values()):
            with contextlib.suppress(Exception):
                await esm.stop()
        self._mappings.clear()

    def stats(self) -> dict[str, dict[str, Any]]:
        return {key: esm.stats() for key, esm in self._mappings.items()}
