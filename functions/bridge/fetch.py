"""Fetch what is ready now, without waiting for a batch to fill.

nats-py's ``PullSubscription.fetch(n)`` keeps waiting, once its first lingering pull has delivered one message, for
the other ``n - 1`` until the fetch timeout, so on a quiet stream a message can sit in the client for up to the whole
timeout. Lambda's SQS event source mapping instead hands over what is available as soon as there is something
(``MaximumBatchingWindowInSeconds`` defaults to 0:
https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-configure.html#events-sqs-batching). This does the same:
a lingering pull for ONE message (wakes on the first arrival), then a no-wait probe for whatever else is already
stored, up to the batch size. Under load both return at once with full batches; on a quiet stream the cost is the
probe's round trip (bounded by ``probe_s``).

The probe is a pull request ``{"batch": n, "no_wait": true}`` *without* ``expires``: the server answers at once with
the messages it has and a ``404 No Messages`` status when it has fewer than ``n`` (JetStream pull request semantics,
ADR-13). nats-py's own ``fetch(n)`` adds ``expires`` to its first request whenever its pending queue is empty, and
the server then treats the request as a lingering pull and holds it open until it expires — so ``fetch(n,
timeout=probe_s)`` would cost the whole ``probe_s`` on every quiet batch. The probe therefore publishes its request on
the pull subscription's own request subject and inbox (``_nms``, ``_deliver``, ``_sub``: nats-py 2.x internals; if
they are missing the probe falls back to ``fetch(n, timeout=probe_s)``).

A probe that is cut short leaves nothing behind: a late answer lands in the subscription's pending queue and the
next fetch takes it from there first (nats-py drains that queue before it asks the server, and so does the probe).
"""

from __future__ import annotations

import json
import time

import nats.errors
from nats.aio.msg import Msg
from nats.js.client import JetStreamContext

PROBE_S = 0.005


async def fetch_ready(sub, batch: int, *, timeout_s: float, probe_s: float = PROBE_S) -> list[Msg]:
    """Up to ``batch`` messages from pull subscription ``sub``: block up to ``timeout_s`` for the first one, then
    take the rest only if they are already there. Raises ``asyncio.TimeoutError`` (nats' ``TimeoutError``) when
    nothing arrives within ``timeout_s``."""
    first = await sub.fetch(1, timeout=timeout_s)
    if batch <= 1:
        return first
    return [*first, *await probe(sub, batch - 1, timeout_s=probe_s)]


async def probe(sub, count: int, *, timeout_s: float = PROBE_S) -> list[Msg]:
    """The messages of ``sub`` that are stored and deliverable now, at most ``count`` (see the module docstring)."""
    inner = getattr(sub, "_sub", None)
    subject, inbox, nc = getattr(sub, "_nms", None), getattr(sub, "_deliver", None), getattr(sub, "_nc", None)
    if inner is None or not subject or not inbox or nc is None or not hasattr(inner, "_pending_queue"):
        try:
            return await sub.fetch(count, timeout=timeout_s)
        except (TimeoutError, nats.errors.TimeoutError):
            return []
    msgs: list[Msg] = []
    queue = inner._pending_queue
    while not queue.empty() and len(msgs) < count:  # late answers of an earlier request come first
        msg = queue.get_nowait()
        inner._pending_size -= len(msg.data)
        if not JetStreamContext.is_status_msg(msg):
            msgs.append(msg)
    if len(msgs) >= count:
        return msgs
    await nc.publish(subject, json.dumps({"batch": count - len(msgs), "no_wait": True}).encode(), inbox)
    deadline = time.monotonic() + timeout_s
    while len(msgs) < count:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        try:
            msg = await inner.next_msg(timeout=remaining)
        except (TimeoutError, nats.errors.TimeoutError):
            break
        status = JetStreamContext.is_status_msg(msg)
        if status:
            if JetStreamContext._is_heartbeat(status):
                continue
            break  # 404 no messages (or 408/409): nothing more right now
        msgs.append(msg)
    return msgs
