"""A poison event reaches SOORMA_DLQ after the maximum deliveries while the events behind it keep flowing; after a
fix, replaying it (library and `soorma dlq` CLI) delivers it to the agent that failed it, and only to that agent."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest

from soorma.functions.bridge import dlq, list_dead_letters, replay
from soorma.subjects import DLQ_STREAM

pytestmark = pytest.mark.timeout(60)

SOORMA = str(Path(sys.executable).with_name("soorma"))


class Poisoned:
    """Fails the poison event until ``fixed``; remembers when things happened."""

    def __init__(self, poison_id: str) -> None:
        self.poison_id = poison_id
        self.fixed = False
        self.poison_attempts: list[int] = []  # per failed delivery: how many other events were handled by then
        self.progress = lambda: 0

    def __call__(self, event_id: str, record: dict) -> None:
        if event_id == self.poison_id and not self.fixed:
            self.poison_attempts.append(self.progress())
            raise ValueError("cannot parse order 42")


async def test_poison_dead_lettered_while_others_flow_then_replayed(js, make_bridge, dk):
    tenant = dk.new_id("p")
    worker = dk.make_route(tenant, "worker", "order.placed", batch_size=10, max_deliveries=4)
    auditor = dk.make_route(tenant, "auditor", "order.placed")  # a second subscriber of the same events
    poison = dk.envelope(tenant, "order.placed", n="poison")
    behind = [dk.envelope(tenant, "order.placed", n=i) for i in range(300)]
    fn = Poisoned(poison.id)
    worker_fn, auditor_fn = dk.RecordingInvoker(fn), dk.RecordingInvoker()
    behind_ids = {e.id for e in behind}
    fn.progress = lambda: len(worker_fn.handled_ids() & behind_ids)

    class Route:  # one invoker per function name
        async def invoke(self, name, payload):
            return await (worker_fn if name == worker.function_name else auditor_fn).invoke(name, payload)

    # A fixed 0.3 s between deliveries: the poison needs ~0.9 s to use its 4 deliveries.
    bridge = await make_bridge([worker, auditor], Route(), backoff=lambda attempt: 0.3)
    await dk.publish_all(js, [poison, *behind])

    await dk.wait_until(lambda: bridge.stats()[worker.consumer_name]["dead_lettered"] == 1, timeout_s=15)
    assert len(fn.poison_attempts) == 4
    # Every event behind the poison was handled (once) before its second delivery: no head-of-line blocking.
    assert fn.poison_attempts[1:] == [300, 300, 300]
    assert len([1 for e, _ in worker_fn.handled if e in behind_ids]) == 300
    await dk.wait_until(lambda: len(auditor_fn.handled) == 301)
    assert poison.id not in worker_fn.handled_ids()

    entries = await list_dead_letters(js, platform_tenant_id=tenant)
    assert [e.event_id for e in entries] == [poison.id]
    entry = entries[0]
    assert (entry.agent, entry.platform_tenant_id, entry.consumer) == ("worker", tenant, worker.consumer_name)
    assert entry.deliveries == 4
    assert "function reported the item in batchItemFailures" in entry.error
    assert entry.original_subject == f"soorma.{tenant}.action-requests.order.placed"
    assert json.loads(entry.data)["id"] == poison.id
    assert await list_dead_letters(js, platform_tenant_id=tenant, agent="auditor") == []
    assert [e.seq for e in await list_dead_letters(js, agent="worker", event_id=poison.id)] == [entry.seq]

    fn.fixed = True
    await replay(js, entry)
    await dk.wait_until(lambda: poison.id in worker_fn.handled_ids(), timeout_s=10)
    await asyncio.sleep(0.5)
    # A new message (receive count 1), handled once, by the worker only; the auditor skipped it unseen.
    assert [(e, n) for e, n in worker_fn.handled if e == poison.id] == [(poison.id, 1)]
    assert [e for e, _ in auditor_fn.seen].count(poison.id) == 1
    assert bridge.stats()[auditor.consumer_name]["replays_skipped"] == 1
    assert await list_dead_letters(js, platform_tenant_id=tenant) == []
    assert await dk.consumer_settled(js, worker.consumer_name)
    assert await dk.consumer_settled(js, auditor.consumer_name)


async def run_cli(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        SOORMA, *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    return proc.returncode, out.decode(), err.decode()


async def test_dlq_cli_lists_and_replays(js, nats_url, make_bridge, dk, tmp_path):
    tenant = dk.new_id("c")
    route = dk.make_route(tenant, "billing", "invoice.due", max_deliveries=2)
    broken: set[str] = set()

    def handler(event_id, record):
        if event_id in broken:
            raise RuntimeError("billing backend down")

    invoker = dk.RecordingInvoker(handler)
    bridge = await make_bridge([route], invoker)
    events = [dk.envelope(tenant, "invoice.due", n=i) for i in range(3)]
    broken.update(e.id for e in events)
    await dk.publish_all(js, events)
    await dk.wait_until(lambda: bridge.stats()[route.consumer_name]["dead_lettered"] == 3, timeout_s=15)

    env = {**os.environ, "SOORMA_NATS_URL": nats_url, "SOORMA_HOME": str(tmp_path / "nohome")}
    code, out, err = await run_cli("dlq", "list", "--tenant", tenant, "--json", env=env)
    assert code == 0, err
    listed = [json.loads(line) for line in out.splitlines()]
    assert sorted(e["event_id"] for e in listed) == sorted(e.id for e in events)
    assert [e["seq"] for e in listed] == sorted(e["seq"] for e in listed)  # oldest first
    assert {e["agent"] for e in listed} == {"billing"} and {e["deliveries"] for e in listed} == {2}
    assert all("batchItemFailures" in e["error"] for e in listed)  # a partial batch response names no reason
    code, out, _ = await run_cli("dlq", "list", "--tenant", tenant, "--limit", "1", "--json", env=env)
    assert len(out.splitlines()) == 1
    code, out, _ = await run_cli("dlq", "list", "--tenant", tenant, env=env)  # the table
    assert code == 0 and "invoice.due" in out and "billing" in out

    # No NATS URL in the environment: the local stack's state.json says where NATS is.
    home = tmp_path / "stack"
    home.mkdir()
    (home / "state.json").write_text(json.dumps({"status": "ready", "nats_url": nats_url}))
    env_home = {k: v for k, v in env.items() if k != "SOORMA_NATS_URL"} | {"SOORMA_HOME": str(home)}
    code, out, _ = await run_cli("dlq", "list", "--tenant", tenant, "--agent", "billing", "--json", env=env_home)
    assert code == 0 and len(out.splitlines()) == 3

    code, _, err = await run_cli("dlq", "replay", "--tenant", tenant, env=env)
    assert code == 2 and "--id" in err  # refuses to guess
    code, _, err = await run_cli("dlq", "replay", "--tenant", tenant, "--id", "no-such-event", env=env)
    assert code == 1 and "no dead letter" in err

    broken.clear()  # the fix
    code, out, err = await run_cli("dlq", "replay", "--tenant", tenant, "--agent", "billing", "--id", events[0].id,
                                   env=env)
    assert code == 0 and f"replayed {events[0].id}" in out, err
    await dk.wait_until(lambda: events[0].id in invoker.handled_ids(), timeout_s=10)
    code, out, _ = await run_cli("dlq", "list", "--tenant", tenant, "--json", env=env)
    assert sorted(json.loads(line)["event_id"] for line in out.splitlines()) == sorted(e.id for e in events[1:])

    code, out, err = await run_cli("dlq", "replay", "--tenant", tenant, "--all", "--json", env=env)
    assert code == 0, err
    assert sorted(json.loads(line)["event_id"] for line in out.splitlines()) == sorted(e.id for e in events[1:])
    await dk.wait_until(lambda: invoker.handled_ids() >= {e.id for e in events}, timeout_s=10)
    code, out, _ = await run_cli("dlq", "list", "--tenant", tenant, env=env)
    assert code == 0 and "no dead letters" in out
    info = await js.stream_info(DLQ_STREAM)
    assert info.state.messages >= 0  # the stream itself stays


async def test_replay_needs_bridge_headers(js, dk):
    tenant = dk.new_id("h")
    await js.publish(f"soorma-dlq.{tenant}.x", b"{}", stream=DLQ_STREAM)
    (entry,) = await list_dead_letters(js, platform_tenant_id=tenant)
    with pytest.raises(ValueError):
        await replay(js, entry)
    assert dlq.dlq_filter(tenant) == f"soorma-dlq.{tenant}.*"
    assert dlq.dlq_filter(agent="a") == "soorma-dlq.*.a"
    with pytest.raises(ValueError):
        dlq.dlq_filter("bad.tenant")
