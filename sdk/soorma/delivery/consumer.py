"""Durable pull consumers on ``SOORMA_EVENTS``: the configuration a route asks for, created or updated in place.

JetStream semantics relied on (consumers: https://docs.nats.io/nats-concepts/jetstream/consumers; acknowledgement
models: https://docs.nats.io/using-nats/developer/develop_jetstream/model_deep_dive#acknowledgement-models; ADR-15
"JetStream Subscribe Workflow" for the ack reply subject; ADR-34 "JetStream Consumers Multiple Filters"):

* A durable **pull** consumer shares its messages among every client that fetches from it, so the bridge's fetch
  workers — in one replica or in several — form a queue group, while different consumers on the same subjects
  each get every message (broadcast).
* ``AckPolicy.EXPLICIT``: a message is done only when acked; ``-NAK`` (optionally with a delay) redelivers it,
  ``+WPI`` (``in_progress``) restarts the ack wait, ``+TERM`` stops redelivery.
* ``max_deliver`` is ``-1`` (unlimited): the bridge dead-letters after ``Route.max_deliveries`` itself, with the
  error attached. A server-side limit would drop the message silently (only an advisory), so it is not used.
* ``ack_wait`` = ``timeout_s`` + a margin; ``max_ack_pending`` ≥ ``batch_size × max_concurrency``. Messages waiting
  in a delayed NAK still count as ack-pending, so the bridge leaves head-room (see :func:`desired_config`).
* ``filter_subjects`` (nats-server ≥ 2.10) holds every subject of the route; filters may not overlap, so a filter
  covered by another is dropped (:func:`normalize_filters`).
* Create-or-update: ``$JS.API.CONSUMER.CREATE.<stream>.<name>`` without an ``action`` updates an existing consumer
  when only editable fields differ (filters, ack wait, max deliver, max ack pending, description; exercised by the
  integration tests on nats-server 2.15). The deliver policy and start time are not editable, so an existing
  consumer keeps its own and ``Route.deliver_from`` applies to new consumers only. A consumer deleted behind the
  bridge's back is recreated at the next check, from ``deliver_from`` again (or from the start of the stream).
* Removing a route never deletes its consumer (its position and pending messages survive a redeploy); delete it
  explicitly with :func:`delete_consumer` when an agent is undeployed for good.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, ConsumerInfo, DeliverPolicy
from nats.js.errors import NotFoundError

from soorma.subjects import STREAM

from .route import Route

log = logging.getLogger("soorma.functions.bridge")


def subject_covers(wide: str, narrow: str) -> bool:
    """True when every subject matched by ``narrow`` is also matched by ``wide`` (NATS wildcard rules)."""
    w, n = wide.split("."), narrow.split(".")
    for i, token in enumerate(w):
        if token == ">":
            return len(n) > i
        if i >= len(n):
            return False
        if token == "*":
            if n[i] == ">":
                return False
            continue
        if token != n[i]:
            return False
    return len(w) == len(n)


def normalize_filters(subjects: tuple[str, ...]) -> list[str]:
    """Sorted, de-duplicated filters with every filter that another one covers removed."""
    unique = sorted(set(subjects))
    return [s for s in unique if not any(o != s and subject_covers(o, s) for o in unique)]


@dataclass(frozen=True)
class ConsumerPolicy:
    """How routes become consumer settings (bridge-wide knobs)."""

    ack_margin_s: float = 10.0
    min_max_ack_pending: int = 1000
    ack_pending_factor: int = 2

    def ack_wait(self, route: Route) -> float:
        return route.timeout_s + self.ack_margin_s

    def max_ack_pending(self, route: Route) -> int:
        slots = route.batch_size * route.max_concurrency
        return max(slots, self.min_max_ack_pending, slots * self.ack_pending_factor)


def desired_config(route: Route, policy: ConsumerPolicy) -> ConsumerConfig:
    """The full configuration of a *new* consumer for ``route``."""
    config = ConsumerConfig(
        name=route.consumer_name,
        durable_name=route.consumer_name,
        description=f"soorma bridge: {route.agent} -> {route.function_name}",
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=policy.ack_wait(route),
        max_deliver=-1,
        filter_subjects=normalize_filters(route.filter_subjects),
        max_ack_pending=policy.max_ack_pending(route),
        deliver_policy=DeliverPolicy.ALL,
    )
    if route.deliver_from is not None:
        config.deliver_policy = DeliverPolicy.BY_START_TIME
        config.opt_start_time = route.deliver_from
    return config


def _editable(config: ConsumerConfig) -> tuple[object, ...]:
    filters = list(config.filter_subjects or ([config.filter_subject] if config.filter_subject else []))
    ack_wait = round(config.ack_wait or 0.0, 6)
    return (sorted(filters), ack_wait, config.max_deliver, config.max_ack_pending, config.description)


async def ensure_consumer(js: JetStreamContext, route: Route, policy: ConsumerPolicy) -> ConsumerInfo:
    """Create the route's durable consumer, or update the editable fields of the existing one.

    Raises ``nats.js.errors.APIError`` when JetStream refuses (e.g. overlapping filters, or a consumer of that name
    that is a push consumer).
    """
    wanted = desired_config(route, policy)
    try:
        info: ConsumerInfo = await js.consumer_info(STREAM, route.consumer_name)
    except NotFoundError:
        log.info("creating consumer %s on %s (filters %s)", route.consumer_name, STREAM, wanted.filter_subjects)
        created: ConsumerInfo = await js.add_consumer(STREAM, config=wanted)
        return created
    current = info.config
    if _editable(current) == _editable(wanted):
        return info
    updated = current.evolve(
        name=route.consumer_name,
        durable_name=route.consumer_name,
        description=wanted.description,
        ack_wait=wanted.ack_wait,
        max_deliver=wanted.max_deliver,
        filter_subject=None,
        filter_subjects=wanted.filter_subjects,
        max_ack_pending=wanted.max_ack_pending,
    )
    log.info("updating consumer %s (filters %s)", route.consumer_name, wanted.filter_subjects)
    replaced: ConsumerInfo = await js.add_consumer(STREAM, config=updated)
    return replaced


async def delete_consumer(js: JetStreamContext, consumer_name: str) -> bool:
    """Delete a route's durable consumer (its undelivered/unacked messages are forgotten by it). Not called by
    :class:`~soorma.functions.bridge.Bridge`; for undeploy tooling."""
    return await js.delete_consumer(STREAM, consumer_name)
