"""NATS JetStream → function push bridge (docs/architecture.md "Function payload"; DESIGN.md "Delivery semantics").

Durable pull consumers on ``SOORMA_EVENTS`` (one per route), SQS-shaped batch invocations, partial batch responses,
NAK-with-backoff retries and dead letters in ``SOORMA_DLQ`` (listed and replayed with :mod:`.dlq`), delivery
metrics as CloudWatch EMF (:mod:`.metrics`). See :mod:`.bridge` for the semantics.
"""

from soorma.delivery.backoff import ExponentialBackoff
from soorma.delivery.consumer import ConsumerPolicy, delete_consumer, desired_config, ensure_consumer, normalize_filters
from soorma.delivery.dead_letters import dead_letter, dlq_headers
from soorma.delivery.route import Route, consumer_name_for

from .bridge import Bridge, RoutesSource
from .dlq import DeadLetter, list_dead_letters, replay
from .metrics import DeliveryMetrics
from .payload import EVENT_SOURCE, Outcome, build_payload, build_record, interpret
from .types import ConsumerStats, FunctionThrottled, Invoker, InvokeResult

__all__ = [
    "Bridge",
    "ConsumerPolicy",
    "ConsumerStats",
    "DeadLetter",
    "DeliveryMetrics",
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
    "list_dead_letters",
    "normalize_filters",
    "replay",
]
