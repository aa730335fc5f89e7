"""Faults on the way to a function, on real nats-server: a function that times out (the real local Lambda runtime
kills it), a throttled function, and a NATS server restart in the middle of a stream. Nothing is lost."""

from __future__ import annotations

import asyncio
import textwrap
from collections import Counter

import nats
import pytest

from soorma.jetstream import ensure_streams, publish_envelope
from soorma.local.nats import EmbeddedNats
from soorma.local.runtime import FunctionConfig, LocalLambda

pytestmark = pytest.mark.timeout(90)

RECORDING_FUNCTION = """
    import json, os, time

    def handler(event, context):
        lines = []
        for record in event["Records"]:
            body = json.loads(record["body"])
            count = record["attributes"]["ApproximateReceiveCount"]
            if body["data"].get("slow") and count == "1":
                time.sleep(5)  # far beyond the function's 1 s timeout: the runtime kills the environment
            lines.append(f"{body['id']} {count}\\n")
        fd = os.open(os.environ["OUT"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        os.write(fd, "".join(lines).encode())
        os.close(fd)
        return {"batchItemFailures": []}
"""


async def test_function_timeout_is_retried_and_nothing_lost(js, make_bridge, dk, tmp_path):
    tenant = dk.new_id("t")
    code = tmp_path / "code"
    code.mkdir()
    (code / "fn.py").write_text(textwrap.dedent(RECORDING_FUNCTION))
    out = tmp_path / "handled.txt"
    function = f"slowpoke-{tenant}"
    runtime = LocalLambda(logs_dir=tmp_path / "logs")
    try:
        runtime.register(FunctionConfig(function, "fn.handler", str(code), {"OUT": str(out)}, timeout_s=1.0,
                                        max_concurrency=2))
        route = dk.make_route(tenant, "slowpoke", "job", function_name=function, batch_size=5, max_concurrency=2,
                              max_deliveries=5, timeout_s=1.0)
        bridge = await make_bridge([route], runtime)
        events = [dk.envelope(tenant, "job", n=i, slow=(i in (3, 17, 31))) for i in range(40)]
        await dk.publish_all(js, events)
        ids = {e.id for e in events}
        await dk.wait_until(lambda: {e for e, _ in dk.read_deliveries(out)} >= ids, timeout_s=60,
                            what="every event handled")
        await dk.wait_until(lambda: bridge.stats()[route.consumer_name]["in_flight"] == 0)
        stats = bridge.stats()[route.consumer_name]
        assert stats["failed_invocations"] >= 1 and stats["dead_lettered"] == 0
        assert "Sandbox.Timedout" in (stats["last_error"] or "") or stats["retried"] >= 1
        deliveries = dk.read_deliveries(out)
        slow = {e.id for e in events if e.data["slow"]}
        # Handled only after a timeout: on the retry, or later when the retry shared a batch with another slow
        # event's first delivery (that batch timed out too). Never on the first delivery, which was killed.
        slow_counts = {e: n for e, n in deliveries if e in slow}
        assert set(slow_counts) == slow and min(slow_counts.values()) >= 2, slow_counts
        assert set(Counter(e for e, _ in deliveries).values()) == {1}  # a timed-out batch left nothing behind
        log = (tmp_path / "logs" / f"{function}.log").read_text()
        assert "Task timed out after 1.00 seconds" in log
        assert await dk.consumer_settled(js, route.consumer_name)
    finally:
        await runtime.close()


async def test_throttled_function_loses_nothing_and_never_dead_letters(js, make_bridge, dk):
    tenant = dk.new_id("r")
    # Four fetch workers against a function that runs one invocation at a time; max_deliveries 2 would
    # dead-letter at once if throttling counted as a failure.
    route = dk.make_route(tenant, "busy", "job", batch_size=10, max_concurrency=4, max_deliveries=2)
    recording = dk.RecordingInvoker()
    function = dk.ThrottledFunction(recording, limit=1)
    bridge = await make_bridge([route], function)
    events = [dk.envelope(tenant, "job", n=i) for i in range(200)]
    await dk.publish_all(js, events)
    await dk.wait_until(lambda: recording.handled_ids() >= {e.id for e in events}, timeout_s=45,
                        what="every event handled")
    stats = bridge.stats()[route.consumer_name]
    assert function.throttles > 0 and stats["throttled"] > 0
    assert stats["dead_lettered"] == 0 and stats["retried"] == 0
    assert max(n for _, n in recording.handled) >= 2  # throttled messages came back and were handled
    await dk.wait_until(lambda: bridge.stats()[route.consumer_name]["in_flight"] == 0)
    assert await dk.consumer_settled(js, route.consumer_name)


async def publish_until_stored(js, envelope, *, attempts: int = 200) -> None:
    """A client that keeps trying until JetStream acknowledges (same envelope id, so a retry is de-duplicated)."""
    for _ in range(attempts):
        try:
            await publish_envelope(js, envelope, timeout_s=1.0)
            return
        except Exception:  # noqa: BLE001 - server down / restarting: try again
            await asyncio.sleep(0.1)
    raise AssertionError(f"event {envelope.id} never stored")


async def test_nats_server_restart_mid_stream_loses_nothing(make_bridge, dk, tmp_path):
    """The test runs its own nats-server so it can stop it (SIGTERM) and start it again on the same port and store
    while events are being published and delivered."""
    server = EmbeddedNats(tmp_path / "nats", port=dk.free_port())
    url = server.start()
    nc = await nats.connect(url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
    bridge = None
    try:
        js = nc.jetstream()
        await ensure_streams(js)
        tenant = dk.new_id("n")
        route = dk.make_route(tenant, "steady", "job", batch_size=10, max_concurrency=2, timeout_s=1.0)
        recording = dk.RecordingInvoker()
        bridge = await make_bridge([route], recording, url=url, ack_margin_s=1.0)
        events = [dk.envelope(tenant, "job", n=i) for i in range(3000)]
        ids = {e.id for e in events}

        async def produce() -> None:
            for start in range(0, len(events), 50):
                await asyncio.gather(*(publish_until_stored(js, e) for e in events[start:start + 50]))
                await asyncio.sleep(0.005)  # a steady stream, not one burst

        producer = asyncio.create_task(produce())
        await dk.wait_until(lambda: len(recording.handled_ids()) >= 1000, timeout_s=30, what="1000 handled")
        await asyncio.to_thread(server.stop)  # SIGTERM: nats-server shuts down cleanly, its store stays
        handled_at_stop = len(recording.handled_ids())
        await asyncio.sleep(1.0)
        await asyncio.to_thread(server.start)  # same port, same store directory
        await producer
        await dk.wait_until(lambda: recording.handled_ids() >= ids, timeout_s=60, what="every event handled")
        assert handled_at_stop < len(ids), "the restart must land in the middle of the stream"
        assert bridge.stats()[route.consumer_name]["dead_lettered"] == 0
        for _ in range(100):
            if await dk.consumer_settled(js, route.consumer_name):
                break
            await asyncio.sleep(0.1)
        assert await dk.consumer_settled(js, route.consumer_name)
        assert recording.handled_ids() == ids
        duplicates = len(recording.handled) - len(ids)
        print(f"\nrestart after {handled_at_stop} of {len(ids)} handled; {duplicates} duplicate deliveries")
    finally:
        if bridge is not None:
            await bridge.stop(drain_timeout_s=5)
        await nc.close()
        await asyncio.to_thread(server.stop)
