"""The bridge process is killed with SIGKILL in the middle of 20,000 events and started again: every event is handled
at least once, none is lost, and the only duplicates are events that were in flight (delivered, not yet acked) when
the process died."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest

from soorma.subjects import STREAM

pytestmark = pytest.mark.timeout(150)

TOTAL = 20_000
KILL_AFTER = 5_000


async def test_sigkill_mid_stream_loses_nothing(js, nats_url, dk, tmp_path):
    tenant = dk.new_id("k")
    route = dk.make_route(tenant, "worker", "job", batch_size=20, max_concurrency=4, timeout_s=1.0)
    out = tmp_path / "handled.txt"
    bridge_kw = dict(ack_margin_s=1.0)  # ack wait 2 s: what was in flight comes back 2 s after the kill
    first = dk.BridgeProcess(nats_url, route, out, name="kill-1", log=tmp_path / "bridge-1.log", **bridge_kw)
    second = dk.BridgeProcess(nats_url, route, out, name="kill-2", log=tmp_path / "bridge-2.log", **bridge_kw)
    try:
        first.start()
        envelopes = [dk.envelope(tenant, "job", n=i) for i in range(TOTAL)]
        all_ids = {e.id for e in envelopes}
        started = time.monotonic()
        publishing = asyncio.create_task(dk.publish_all(js, envelopes))

        await dk.wait_until(lambda: len(dk.read_deliveries(out)) >= KILL_AFTER, timeout_s=60, interval_s=0.05,
                            what=f"{KILL_AFTER} events handled by the first bridge")
        first.kill()
        before = dk.read_deliveries(out)
        info = await js.consumer_info(STREAM, route.consumer_name)
        in_flight = info.num_ack_pending  # delivered to the dead process, never acknowledged
        assert KILL_AFTER <= len(before) < TOTAL, "the kill must land in the middle of the stream"

        second.start()
        await publishing
        await dk.wait_until(lambda: {e for e, _ in dk.read_deliveries(out)} >= all_ids, timeout_s=90,
                            interval_s=0.1, what="every event handled after the restart")
        await dk.wait_until(lambda: True)
        for _ in range(100):
            if await dk.consumer_settled(js, route.consumer_name):
                break
            await asyncio.sleep(0.05)
        assert await dk.consumer_settled(js, route.consumer_name)
        elapsed = time.monotonic() - started
    finally:
        first.terminate()
        assert second.terminate() in (0, None)

    deliveries = dk.read_deliveries(out)
    counts = Counter(event_id for event_id, _ in deliveries)
    assert set(counts) == all_ids  # none lost, nothing else delivered
    duplicates = {event_id for event_id, n in counts.items() if n > 1}
    redelivered = {event_id for event_id, receive_count in deliveries if receive_count >= 2}
    handled_before_kill = {event_id for event_id, _ in before}
    # Every duplicate was handled by the killed process and then redelivered (receive count >= 2) because its
    # acknowledgement never reached the server: it was in flight. Nothing else came twice.
    assert duplicates <= handled_before_kill
    assert duplicates <= redelivered
    assert all(counts[event_id] == 2 for event_id in duplicates)
    assert len(redelivered) <= in_flight <= 2 * route.batch_size * route.max_concurrency
    print(f"\n{TOTAL} events, killed after {len(before)} handled, {in_flight} in flight, "
          f"{len(duplicates)} duplicates, {elapsed:.1f}s")
