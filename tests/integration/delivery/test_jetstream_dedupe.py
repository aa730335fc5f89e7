"""Publishing is idempotent: ``publish_envelope`` sets ``Nats-Msg-Id`` to ``<platform tenant>:<envelope id>``, so
JetStream's duplicate window ("Message Deduplication" in the JetStream model deep dive) stores a retried publish once,
and never drops one tenant's event because another tenant used the same id. Real nats-server (the session's)."""

from __future__ import annotations

import pytest
from nats.js.api import ConsumerConfig, DeliverPolicy

from soorma.jetstream import DUPLICATE_WINDOW_S, publish_envelope
from soorma.subjects import STREAM, filter_subject, subject

pytestmark = pytest.mark.timeout(30)


async def stored_on(js, subj: str) -> list[bytes]:
    """Every message the stream holds on ``subj`` (an ephemeral pull consumer reads them; nothing is acked away)."""
    sub = await js.pull_subscribe(subj, stream=STREAM,
                                  config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL, inactive_threshold=5))
    out: list[bytes] = []
    try:
        while True:
            try:
                batch = await sub.fetch(100, timeout=0.5)
            except TimeoutError:
                break
            out.extend(m.data for m in batch)
            for m in batch:
                await m.ack()
    finally:
        await sub.unsubscribe()
    return out


async def test_same_envelope_twice_is_stored_once(js, dk):
    tenant = dk.new_id("dup")
    event = dk.envelope(tenant, "order.placed", n=1)
    first = await publish_envelope(js, event)
    second = await publish_envelope(js, event)  # a retried publish: same envelope id
    assert not first.duplicate and second.duplicate
    assert second.seq == first.seq  # JetStream answers with the sequence of the one stored copy

    other = dk.envelope(tenant, "order.placed", n=1)  # same content, new id: a different event
    third = await publish_envelope(js, other)
    assert not third.duplicate and third.seq > first.seq

    stored = await stored_on(js, filter_subject(tenant, "action-requests", "order.placed"))
    assert len(stored) == 2
    assert stored[0] == event.to_json().encode()
    assert subject(tenant, "action-requests", "order.placed").startswith(f"soorma.{tenant}.")
    info = await js.stream_info(STREAM)
    assert info.config.duplicate_window == DUPLICATE_WINDOW_S


async def test_same_id_in_two_tenants_is_stored_twice(js, dk):
    one, two = dk.new_id("dupa"), dk.new_id("dupb")
    first = dk.envelope(one, "order.placed", n=1)
    second = first.model_copy(update={"platform_tenant_id": two})  # the same event id, another tenant
    assert not (await publish_envelope(js, first)).duplicate
    assert not (await publish_envelope(js, second)).duplicate
    assert len(await stored_on(js, filter_subject(two, "action-requests", "order.placed"))) == 1
