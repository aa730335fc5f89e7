"""Publishing envelopes to JetStream from synchronous code, with one NATS connection per execution environment.

Why a dedicated thread: Mangum runs each invocation with ``asyncio.get_event_loop().run_until_complete(...)`` and
FastAPI runs our sync endpoints in worker threads; tests and the local stack may drive the app from other loops
(TestClient starts its own). A nats-py client is bound to the loop that created it and needs that loop running to
read acknowledgements, answer PINGs and reconnect. So :class:`NatsPublisher` owns one private asyncio loop running
forever in a daemon thread; the nats-py client lives only there, and :meth:`NatsPublisher.publish` submits the
coroutine with :func:`asyncio.run_coroutine_threadsafe` and waits for the stream's ack with a timeout. The
connection is opened lazily, ``ensure_streams`` runs once per connection owner, and a connection that died while the
Lambda environment was frozen is replaced: a failed publish is retried once on a fresh connection (safe, because
``Nats-Msg-Id`` = ``<platform tenant>:<envelope id>`` lets JetStream drop a duplicate).

Every publish returns a :class:`PublishResult`: ``duplicate`` is JetStream's own answer (``PubAck.duplicate``) that it
already held this tenant's event id within the stream's duplicate window and stored nothing, so callers can tell the
client the truth instead of claiming a new event was published. The message id is scoped by the platform tenant
(:func:`soorma.subjects.message_id`), so only the same tenant's earlier publish of that id can make one a duplicate.

The other transport (DESIGN.md, "Runtime topology": SNS → a filtered SQS queue per agent → Lambda's event source
mapping) is :class:`SnsPublisher`. :func:`publisher_from_env` picks one from ``SOORMA_EVENT_TRANSPORT``: ``nats`` (the
default) or ``sns`` (``sqs`` is accepted as the same thing, the CDK app's name for it), with the topic in
``SOORMA_SNS_TOPIC_ARN`` (or ``SOORMA_EVENTS_TOPIC_ARN``, which the CDK app sets). boto3 finds the endpoint in
``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_SNS`` (moto or LocalStack locally).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any, Protocol, Sequence

from soorma.events import EventEnvelope
from soorma.functions.shared import settings
from soorma.subjects import InvalidSubjectToken

logger = logging.getLogger("soorma.functions.gateway.publisher")

NATS_URL_ENV = settings.NATS_URL.name
DEFAULT_NATS_URL = "nats://127.0.0.1:14222"
TRANSPORT_ENV = settings.EVENT_TRANSPORT.name
SNS_TOPIC_ARN_ENV = settings.SNS_TOPIC_ARN.name
CDK_TOPIC_ARN_ENV = settings.EVENTS_TOPIC_ARN.name
#: SNS's limit on one message: body plus attribute names, types and values.
SNS_MAX_MESSAGE_BYTES = 256 * 1024
#: nats-server's default ``max_payload`` (1 MiB, https://docs.nats.io/running-a-nats-service/configuration#limits),
#: used before a connection has told us the server's own value.
NATS_DEFAULT_MAX_PAYLOAD = 1024 * 1024


class PublishError(RuntimeError):
    """The event could not be stored in JetStream (NATS unreachable, no ack in time, stream error).

    ``published``: of the envelopes given to one :func:`publish_all` (or ``publish_many``), how many were stored
    before the failure: the first ones, in order (0 for a single publish; a lower bound when the acks were lost)."""

    published: int = 0


class PayloadTooLarge(PublishError):
    """The envelope is larger than the NATS server's ``max_payload`` (1 MiB by default): retrying cannot help."""


@dataclass(frozen=True)
class PublishResult:
    """What the event bus answered for one stored publish.

    ``duplicate``: JetStream already held a message with this ``Nats-Msg-Id`` (the same platform tenant's event id)
    inside the stream's duplicate window (120 s) and did not store this one (``PubAck.duplicate``,
    https://docs.nats.io/using-nats/developer/develop_jetstream/model_deep_dive#message-deduplication). Always
    false on SNS, which does not de-duplicate standard topics.
    """

    duplicate: bool = False


def is_duplicate(result: Any) -> bool:
    """True when a publisher's return value reports a duplicate (publishers that return ``None`` never do)."""
    return bool(getattr(result, "duplicate", False))


class Publisher(Protocol):
    def publish(self, envelope: EventEnvelope) -> PublishResult | None:
        """Store one envelope on the event bus (returning what the bus said) or raise :class:`PublishError`
        (or ``InvalidSubjectToken``)."""


def publish_all(publisher: Publisher, envelopes: Sequence[EventEnvelope]) -> list[PublishResult | None]:
    """Store ``envelopes`` on the event bus in this order: with one wait for all acknowledgements when the publisher
    has ``publish_many`` (:meth:`NatsPublisher.publish_many`), else one :meth:`Publisher.publish` after the other.
    Returns what the bus said of each. Raises :class:`PublishError` (or its :class:`PayloadTooLarge`) for the first
    envelope not stored, with ``published`` = its index (the ones before it are stored; later ones may be too, and
    publishing them again is the same event: ``Nats-Msg-Id``), ``InvalidSubjectToken`` or ``ValueError``."""
    publish_many = getattr(publisher, "publish_many", None)
    if publish_many is not None:
        return list(publish_many(envelopes))
    results: list[PublishResult | None] = []
    for index, envelope in enumerate(envelopes):
        try:
            results.append(publisher.publish(envelope))
        except PublishError as exc:
            exc.published = index
            raise
    return results


class NatsPublisher:
    """A thread-safe, synchronous JetStream publisher (see the module docstring)."""

    def __init__(self, url: str, *, connect_timeout_s: float = 2.0, publish_timeout_s: float = 5.0) -> None:
        self.url = url
        self.connect_timeout_s = connect_timeout_s
        self.publish_timeout_s = publish_timeout_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._nc = None
        self._js = None
        self._streams_ready = False
        self._conn_lock: asyncio.Lock | None = None  # created on the publisher's loop

    @classmethod
    def from_env(cls) -> "NatsPublisher":
        return cls(settings.NATS_URL.get() or DEFAULT_NATS_URL)

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._start_lock:
            if self._loop is None or not self._thread or not self._thread.is_alive():
                loop = asyncio.new_event_loop()
                ready = threading.Event()

                def run() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(ready.set)
                    loop.run_forever()

                thread = threading.Thread(target=run, name="soorma-nats-publisher", daemon=True)
                thread.start()
                ready.wait(5)
                self._loop, self._thread = loop, thread
                self._nc = self._js = None
                self._conn_lock = None
            return self._loop

    async def _error_cb(self, exc: Exception) -> None:
        logger.warning("nats: %s", exc)

    async def _connect(self):
        if self._conn_lock is None:
            self._conn_lock = asyncio.Lock()
        async with self._conn_lock:
            return await self._connect_locked()

    async def _connect_locked(self):
        import nats

        from soorma.jetstream import ensure_streams

        if self._nc is not None and self._nc.is_connected:
            return self._js
        if self._nc is not None:
            try:
                await self._nc.close()
            except Exception:  # noqa: BLE001 - a dead connection may fail to close; it is dropped either way
                pass
            self._nc = self._js = None
        self._nc = await asyncio.wait_for(
            nats.connect(
                self.url,
                connect_timeout=self.connect_timeout_s,
                max_reconnect_attempts=1,
                reconnect_time_wait=0.2,
                error_cb=self._error_cb,
                name="soorma-gateway",
            ),
            self.connect_timeout_s * 2 + 1,
        )
        self._js = self._nc.jetstream()
        if not self._streams_ready:
            await ensure_streams(self._js)
            self._streams_ready = True
        return self._js

    async def _publish(self, envelope: EventEnvelope, *, maybe_stored: bool = False) -> PublishResult:
        # nats-py is imported by the first NATS publish, not with this module: under transport sqs the gateway
        # publishes to SNS only, and importing nats-py would lengthen every cold start for nothing.
        from nats import errors as nats_errors

        from soorma.jetstream import publish_envelope

        last: Exception | None = None
        # ``maybe_stored``: true once a publish request may have reached the server (its ack was lost): a duplicate
        # answered to the retry is then most likely our own first attempt, not an earlier publish, and is not
        # reported as one.
        for attempt in (1, 2):
            sending = False
            try:
                js = await self._connect()
                sending = True
                ack = await publish_envelope(js, envelope, timeout_s=self.publish_timeout_s)
                return PublishResult(duplicate=bool(ack.duplicate) and not maybe_stored)
            except (InvalidSubjectToken, ValueError):
                raise
            except nats_errors.MaxPayloadError:
                size = len(envelope.to_json().encode())
                raise PayloadTooLarge(f"event of {size} bytes exceeds the event bus's maximum payload") from None
            except Exception as exc:  # noqa: BLE001 - any NATS failure: drop the connection, retry once
                last = exc
                maybe_stored = maybe_stored or sending
                if isinstance(exc, nats_errors.NoRespondersError):
                    self._streams_ready = False  # no stream took the subject: create the streams again
                logger.warning("publish attempt %d of %s failed: %r", attempt, envelope.id, exc)
                nc, self._nc, self._js = self._nc, None, None
                if nc is not None:
                    try:
                        await asyncio.wait_for(nc.close(), 1)
                    except Exception:  # noqa: BLE001
                        pass
        raise PublishError(f"event bus unavailable: {type(last).__name__}: {last}".rstrip(": "))

    async def _publish_many(self, envelopes: list[EventEnvelope]) -> list[PublishResult]:
        """Send every envelope, in order, on the one connection (NATS delivers one connection's messages in the order
        they were sent), then wait once for all the acks (nats-py's ``publish_async``); from the first envelope
        without an ack on, publish one by one as :meth:`_publish` does (a fresh connection, one retry each)."""
        from soorma.jetstream import envelope_message

        messages = [envelope_message(envelope) for envelope in envelopes]  # a bad subject raises before any send
        futures: list[asyncio.Future] = []
        try:
            js = await self._connect()
            for name, payload, headers in messages:
                futures.append(await js.publish_async(name, payload, headers=headers))
            await asyncio.wait_for(asyncio.wait(futures), self.publish_timeout_s)
        except Exception as exc:  # noqa: BLE001 - what was not acknowledged is published one by one below
            logger.warning("publishing %d events at once failed after %d sent: %r", len(envelopes), len(futures), exc)
        results: list[PublishResult] = []
        for future in futures:
            if not future.done() or future.cancelled() or future.exception() is not None:
                break
            results.append(PublishResult(duplicate=bool(future.result().duplicate)))
        for future in futures[len(results):]:
            future.cancel()  # an ack arriving late is not waited for (and its slot in nats-py's limit is freed)
        for index in range(len(results), len(envelopes)):
            try:
                results.append(await self._publish(envelopes[index], maybe_stored=index < len(futures)))
            except PublishError as exc:
                exc.published = index
                raise
        return results

    def publish_many(self, envelopes: Sequence[EventEnvelope]) -> list[PublishResult]:
        """Store ``envelopes`` in ``SOORMA_EVENTS`` in this order with one wait for all their acks (see
        :func:`publish_all`, which calls it); returns a :class:`PublishResult` each. Raises :class:`PublishError` or
        :class:`PayloadTooLarge` with ``published`` (the envelopes before it are stored), ``InvalidSubjectToken`` or
        ``ValueError`` (nothing sent)."""
        if not envelopes:
            return []
        loop = self._ensure_loop()
        future = asyncio.run_coroutine_threadsafe(self._publish_many(list(envelopes)), loop)
        try:
            return future.result(self.publish_timeout_s + len(envelopes) * self._budget_s())
        except FutureTimeout:
            future.cancel()
            raise PublishError("event bus unavailable: no acknowledgement in time") from None  # published: 0

    def _budget_s(self) -> float:
        """How long one :meth:`publish` may take: two attempts of a connect and a publish, with slack (seconds)."""
        return 2 * (self.connect_timeout_s * 2 + 1 + self.publish_timeout_s + 1) + 1

    def check_size(self, envelope: EventEnvelope) -> None:
        """Raise :class:`PayloadTooLarge` when the envelope's JSON (bytes) exceeds the server's ``max_payload`` (the
        connected server's value, else nats-server's 1 MiB default). Opens no connection, so it can run before
        anything is stored even while NATS is down."""
        limit = getattr(self._nc, "max_payload", None) or NATS_DEFAULT_MAX_PAYLOAD
        size = len(envelope.to_json().encode())
        if size > limit:
            raise PayloadTooLarge(f"event of {size} bytes exceeds the event bus's maximum payload ({limit} bytes)")

    def publish(self, envelope: EventEnvelope) -> PublishResult:
        """Store ``envelope`` in ``SOORMA_EVENTS`` and wait for the ack; returns :class:`PublishResult`. Raises
        :class:`PayloadTooLarge`, :class:`PublishError` (no ack: the event may or may not be stored, so a retry
        must reuse the same event id), ``InvalidSubjectToken`` or ``ValueError``."""
        loop = self._ensure_loop()
        future = asyncio.run_coroutine_threadsafe(self._publish(envelope), loop)
        try:
            return future.result(self._budget_s())
        except FutureTimeout:
            future.cancel()
            raise PublishError("event bus unavailable: no acknowledgement in time") from None

    def close(self) -> None:
        """Close the connection and stop the thread (tests; Lambda simply freezes the environment)."""
        loop, thread = self._loop, self._thread
        if loop is None:
            return

        async def shutdown() -> None:
            if self._nc is not None:
                try:
                    await asyncio.wait_for(self._nc.drain(), 2)
                except Exception:  # noqa: BLE001
                    pass
            self._nc = self._js = None

        try:
            asyncio.run_coroutine_threadsafe(shutdown(), loop).result(5)
        except Exception:  # noqa: BLE001
            pass
        loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(5)
        loop.close()
        self._loop = self._thread = None


# ---------------------------------------------------------------------------------------------- SNS transport


def sns_message_attributes(envelope: EventEnvelope) -> dict[str, dict[str, str]]:
    """The message attributes the agents' subscription filter policies match (``soorma.local.sqs.filter_policy``
    and the CDK app's): ``platform_tenant_id``, ``topic`` and ``event_type``, all ``String``."""
    topic = envelope.topic.value if hasattr(envelope.topic, "value") else str(envelope.topic)
    return {
        "platform_tenant_id": {"DataType": "String", "StringValue": str(envelope.platform_tenant_id)},
        "topic": {"DataType": "String", "StringValue": topic},
        "event_type": {"DataType": "String", "StringValue": envelope.type},
    }


class SnsPublisher:
    """Publishes envelopes to one SNS topic: the body is the envelope JSON, routed by message attributes.

    SNS stores the message durably once ``Publish`` returns (its acknowledgement); a failed call raises
    :class:`PublishError`. SNS standard topics do not de-duplicate, so a retried publish can deliver an event
    twice; handlers are idempotent by envelope ``id`` (DESIGN.md, "Delivery semantics"). The same identifier rules as
    NATS subjects apply, so both transports accept and refuse the same events. boto3 clients are thread-safe: one
    publisher serves every request thread.
    """

    def __init__(self, topic_arn: str, *, client=None, region: str | None = None) -> None:
        if not topic_arn:
            raise ValueError("an SNS topic ARN is required")
        self.topic_arn = topic_arn
        self._client = client
        self._region = region
        self._client_lock = threading.Lock()

    @classmethod
    def from_env(cls) -> "SnsPublisher":
        arn = settings.SNS_TOPIC_ARN.get() or settings.EVENTS_TOPIC_ARN.get()
        if not arn:
            raise RuntimeError(f"{SNS_TOPIC_ARN_ENV} is not set: the SNS transport has no topic to publish to")
        return cls(arn)

    @property
    def client(self):
        with self._client_lock:
            if self._client is None:
                import boto3

                parts = self.topic_arn.split(":")
                region = self._region or (parts[3] if len(parts) > 3 else "") or None  # the topic's region
                self._client = boto3.client("sns", region_name=region)
            return self._client

    @staticmethod
    def _check_size(body: str, attributes: dict[str, dict[str, str]]) -> None:
        size = len(body.encode()) + sum(len(k) + len(v["DataType"]) + len(v["StringValue"].encode())
                                        for k, v in attributes.items())
        if size > SNS_MAX_MESSAGE_BYTES:
            raise PayloadTooLarge(f"event of {size} bytes exceeds the event bus's maximum payload"
                                  f" ({SNS_MAX_MESSAGE_BYTES} bytes)")

    def check_size(self, envelope: EventEnvelope) -> None:
        """Raise :class:`PayloadTooLarge` when the message (body plus attributes) exceeds SNS's 256 KiB limit
        (https://docs.aws.amazon.com/sns/latest/api/API_Publish.html); calls nothing remote."""
        self._check_size(envelope.to_json(), sns_message_attributes(envelope))

    def prewarm(self) -> None:
        """Build the SNS client now (before a SnapStart snapshot: boto3's import and client build are most of the
        first publish's time). It opens no connection."""
        self.client  # noqa: B018 - the property builds it

    def publish(self, envelope: EventEnvelope) -> PublishResult:
        """Publish ``envelope`` to the topic; returns ``PublishResult(duplicate=False)`` — SNS standard topics do
        not de-duplicate, so a repeated event id is delivered again and handlers' idempotency by event id (DESIGN.md
        "Delivery semantics") is what makes it harmless; no tenant can suppress another's message here. Raises
        :class:`PayloadTooLarge`, :class:`PublishError`, ``InvalidSubjectToken`` or ``ValueError``."""
        from soorma.subjects import subject

        if not envelope.platform_tenant_id:
            raise ValueError("an envelope needs platform_tenant_id before it is published")
        attributes = sns_message_attributes(envelope)
        subject(envelope.platform_tenant_id, attributes["topic"]["StringValue"], envelope.type)  # same rules as NATS
        body = envelope.to_json()
        self._check_size(body, attributes)
        try:
            self.client.publish(TopicArn=self.topic_arn, Message=body, MessageAttributes=attributes)
        except Exception as exc:  # noqa: BLE001 - any SNS/botocore failure: the bus is unavailable
            raise PublishError(f"event bus unavailable: {type(exc).__name__}: {exc}") from exc
        return PublishResult(duplicate=False)

    def close(self) -> None:
        """Nothing to release (symmetry with :meth:`NatsPublisher.close`)."""


def publisher_from_env() -> Publisher:
    """The publisher ``SOORMA_EVENT_TRANSPORT`` asks for: ``nats`` (default) → :class:`NatsPublisher` on
    ``SOORMA_NATS_URL``; ``sns`` (or ``sqs``) → :class:`SnsPublisher` on ``SOORMA_SNS_TOPIC_ARN``."""
    transport = settings.EVENT_TRANSPORT.get()
    if transport == "nats":
        return NatsPublisher.from_env()
    if transport in ("sns", "sqs"):
        return SnsPublisher.from_env()
    raise RuntimeError(f"{TRANSPORT_ENV} must be 'nats' or 'sns', not {transport!r}")
