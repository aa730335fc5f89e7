"""The bridge's own input and output types: the invoker seam and its results (routes, :class:`Route`, are the
delivery contract's: :mod:`soorma.delivery.route`).

A :class:`Route` binds one durable JetStream pull consumer on stream ``SOORMA_EVENTS`` to one function. The bridge
never reads the registry itself: whoever builds the bridge passes a ``routes()`` coroutine (the registry adapter in
production, a list in tests). Field meanings follow the registry's ``Deployment`` (docs/architecture.md, "HTTP
routes") and Lambda's SQS event source mapping (batch size, maximum concurrency, ``maxReceiveCount``:
https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-parameters.html).

The :class:`Invoker` protocol mirrors Lambda's synchronous ``Invoke`` (``InvocationType=RequestResponse``): the
response payload plus ``X-Amz-Function-Error`` when the function failed
(https://docs.aws.amazon.com/lambda/latest/api/API_Invoke.html), and ``TooManyRequestsException`` (HTTP 429) when
it is throttled, which an invoker reports by raising :class:`FunctionThrottled`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from soorma.delivery.route import Route, consumer_name_for

__all__ = ["ConsumerStats", "FunctionThrottled", "InvokeResult", "Invoker", "Route", "consumer_name_for"]


@dataclass(frozen=True)
class InvokeResult:
    """What a synchronous invocation returned: the response ``payload`` and Lambda's ``X-Amz-Function-Error``
    (``"Unhandled"``/``"Handled"``; ``None`` when the function returned normally)."""

    payload: bytes
    function_error: str | None = None


class FunctionThrottled(Exception):
    """The function could not run now (Lambda ``TooManyRequestsException`` / 429). The bridge naks the batch with
    a delay and pauses that route's workers; ``retry_after_s``, when given, is the least delay to use."""

    def __init__(self, message: str = "function throttled", *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


@runtime_checkable
class Invoker(Protocol):
    """Invokes a function synchronously with an SQS-shaped payload (see ``payload.py``).

    Returns :class:`InvokeResult`; raises :class:`FunctionThrottled` when throttled. Any other exception is a failed
    invocation (every message of the batch is retried or dead-lettered).
    """

    async def invoke(self, function_name: str, payload: bytes) -> InvokeResult: ...


@dataclass
class ConsumerStats:
    """Counters of one consumer in one bridge replica (messages, not invocations, unless named so).

    ``num_pending`` is the consumer's unprocessed-message count as last reported by JetStream, taken for free from
    the metadata of the last delivered message (ADR-15 ack reply subject) or from consumer info when the bridge
    created/updated the consumer; ``num_ack_pending`` only from consumer info.
    """

    consumer: str
    function_name: str
    active: bool = True
    workers: int = 0
    delivered: int = 0
    succeeded: int = 0
    retried: int = 0
    throttled: int = 0
    dead_lettered: int = 0
    in_flight: int = 0
    invocations: int = 0
    failed_invocations: int = 0
    last_latency_ms: float | None = None
    last_end_to_end_ms: float | None = None
    num_pending: int | None = None
    num_ack_pending: int | None = None
    last_error: str | None = None
    consumer_error: str | None = None
    extra: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        out = dict(self.__dict__)
        out.pop("extra")
        out.update(self.extra)
        return out
