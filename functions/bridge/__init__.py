"""NATS JetStream → function push bridge (docs/architecture.md "Function payload"; DESIGN.md "Delivery semantics").

Durable pull consumers on ``SOORMA_EVENTS`` (one per route), SQS-shaped batch invocations, partial batch responses,
NAK-with-backoff retries and dead letters in ``SOORMA_DLQ``. See :mod:`.bridge` for the semantics.
"""

from .backoff import ExponentialBackoff
from .bridge import Bridge, RoutesSource
from .consumer import ConsumerPolicy, delete_consumer, desired_config, ensure_consumer, normalize_filters
from .dlq import dead_letter, dlq_headers
from .payload import EVENT_SOURCE, Outcome, build_payload, build_record, interpret
from .types import ConsumerStats, FunctionThrottled, InvokeResult, Invoker, Route, consumer_name_for

__all__ = [
    "Bridge",
    "ConsumerPolicy",
    "ConsumerStats",
    "EVENT_SOURCE",
    "ExponentialBackoff",
    "FunctionThrottled",
    "InvokeResult",
    "Invoker",
    "Outcome",
    "Route",
    "RoutesSource",
    "build_payload",
    "build_record",
    "consumer_name_for",
    "dead_letter",
    "delete_consumer",
    "desired_config",
    "dlq_headers",
    "ensure_consumer",
    "interpret",
    "normalize_filters",
]
