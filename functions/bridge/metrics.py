"""The bridge's delivery metrics: CloudWatch Embedded Metric Format (EMF) through Powertools Metrics.

Every ``interval`` the bridge writes one EMF object per route (namespace ``Soorma``, dimension ``agent``; the
consumer and platform tenant go into the object's metadata, not dimensions), built with Powertools'
``AmazonCloudWatchEMFProvider`` (the ``EphemeralMetrics`` class: no state shared with a function's own ``Metrics``)
(https://docs.powertools.aws.dev/lambda/python/latest/core/metrics/):

* ``Delivered`` (Count) — messages acknowledged after the function returned success for them;
* ``Retried`` (Count) — messages NAKed for a later retry after a failure;
* ``DeadLettered`` (Count) — messages moved to ``SOORMA_DLQ``;
* ``Throttled`` (Count) — messages NAKed because the function was throttled;
* ``Invocations`` / ``FailedInvocations`` (Count) — function invocations, and those that failed as a whole;
* ``ConsumerLag`` (Count) — messages of the consumer not yet delivered (JetStream ``num_pending``), read from the
  consumer's info at flush time (or the last known value when that read fails);
* ``DeliveryLatency`` (Milliseconds) — per delivered message, from the moment JetStream stored it (the publish) to
  its acknowledgement; up to 99 values per object (EMF allows 100 values per metric; a uniform sample of the
  interval's latencies when there were more), so CloudWatch's percentiles stay meaningful.

The objects are JSON lines written to ``sink`` (default: standard output; on Fargate the ``awslogs`` driver ships it
to CloudWatch Logs, which extracts EMF from such lines — the ``x-amzn-logs-format: json/emf`` header is optional:
https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Generation_PutLogEvents.html;
in the local stack standard output is the stack's log, ``.soorma/logs/stack.log``).
``POWERTOOLS_METRICS_DISABLED=true`` turns the output off (Powertools' own switch).

The same figures feed :meth:`Bridge.stats` (``soorma local status``): ``consumer_lag`` and the latency percentiles
``delivery_latency_p50_ms`` / ``delivery_latency_p99_ms`` over the last :data:`WINDOW` delivered messages.
"""

from __future__ import annotations

import json
import random
import sys
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Iterable

from .types import ConsumerStats, Route

NAMESPACE = "Soorma"
WINDOW = 1000
MAX_EMF_VALUES = 99  # Powertools flushes on its own at 100 values of one metric; stay below

#: ConsumerStats counter → EMF metric name (flushed as the delta since the previous flush).
COUNTERS = {
    "succeeded": "Delivered",
    "retried": "Retried",
    "dead_lettered": "DeadLettered",
    "throttled": "Throttled",
    "invocations": "Invocations",
    "failed_invocations": "FailedInvocations",
}


def percentile(values: Iterable[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in 0..100) of ``values``; ``None`` when there are none."""
    ordered = sorted(values)
    if not ordered:
        return None
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return round(ordered[index], 3)


def stdout_sink(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


@dataclass
class _Series:
    """One consumer's latencies: a rolling window (for ``stats()``) and this interval's sample (for EMF)."""

    window: deque = field(default_factory=lambda: deque(maxlen=WINDOW))
    sample: list[float] = field(default_factory=list)
    seen: int = 0  # latencies recorded this interval (reservoir sampling)
    flushed: dict[str, int] = field(default_factory=dict)  # counter values at the previous flush


class DeliveryMetrics:
    """Latency bookkeeping and EMF flushing for one bridge replica."""

    def __init__(self, *, namespace: str = NAMESPACE, service: str | None = None,
                 sink: Callable[[str], None] | None = None, rng: random.Random | None = None) -> None:
        self.namespace = namespace
        self.service = service
        self.sink = sink or stdout_sink
        self._rng = rng or random.Random()
        self._series: dict[str, _Series] = {}

    def series(self, consumer: str) -> _Series:
        series = self._series.get(consumer)
        if series is None:
            series = self._series[consumer] = _Series()
        return series

    def record_latency(self, consumer: str, latency_ms: float) -> None:
        series = self.series(consumer)
        series.window.append(latency_ms)
        series.seen += 1
        if len(series.sample) < MAX_EMF_VALUES:
            series.sample.append(latency_ms)
        else:  # reservoir sampling: every latency of the interval equally likely to be kept
            slot = self._rng.randrange(series.seen)
            if slot < MAX_EMF_VALUES:
                series.sample[slot] = latency_ms

    def summary(self, consumer: str) -> dict:
        """``delivery_latency_p50_ms``, ``delivery_latency_p99_ms`` and the window size, for ``stats()``."""
        series = self._series.get(consumer)
        window = list(series.window) if series else []
        return {
            "delivery_latency_p50_ms": percentile(window, 50),
            "delivery_latency_p99_ms": percentile(window, 99),
            "delivery_latency_window": len(window),
        }

    def emf(self, route: Route, stats: ConsumerStats) -> dict | None:
        """The EMF object of one route for the interval since the previous call (``None`` if metrics are off)."""
        from aws_lambda_powertools.metrics.functions import is_metrics_disabled
        from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import AmazonCloudWatchEMFProvider

        series = self.series(route.consumer_name)
        provider = AmazonCloudWatchEMFProvider(namespace=self.namespace, service=self.service)
        provider.add_dimension("agent", route.agent)
        for counter, metric in COUNTERS.items():
            value = int(getattr(stats, counter))
            provider.add_metric(name=metric, unit="Count", value=value - series.flushed.get(counter, 0))
            series.flushed[counter] = value
        if stats.num_pending is not None:
            provider.add_metric(name="ConsumerLag", unit="Count", value=stats.num_pending)
        for latency in series.sample:
            provider.add_metric(name="DeliveryLatency", unit="Milliseconds", value=latency)
        series.sample, series.seen = [], 0
        provider.add_metadata("consumer", route.consumer_name)
        provider.add_metadata("platform_tenant_id", route.platform_tenant_id)
        provider.add_metadata("function_name", route.function_name)
        if is_metrics_disabled():
            return None
        return provider.serialize_metric_set()

    def flush(self, items: Iterable[tuple[Route, ConsumerStats]]) -> list[dict]:
        """Write one EMF line per route to the sink; returns the objects written."""
        written = []
        for route, stats in items:
            obj = self.emf(route, stats)
            if obj is None:
                continue
            self.sink(json.dumps(obj, separators=(",", ":")))
            written.append(obj)
        return written
