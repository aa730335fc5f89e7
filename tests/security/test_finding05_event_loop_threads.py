"""Issue 12, finding 5: ``sdk/soorma/runtime.py`` shared one event loop across threads, so two threads running
batches at once, or a handler calling the entry from ``asyncio.to_thread``, failed with ``RuntimeError: This event
loop is already running`` (seen failing a whole batch in tests/integration/delivery/test_delivery_terminal.py, whose
harness runs each of the bridge's concurrent invocations in a worker thread).

Now each thread runs its own loop, and the platform clients keep one connection pool per loop. Here the real Lambda
entry (``agent(event, context)``) runs in ``platform`` idempotency mode, so every record makes real HTTP calls through
the SDK's clients to the real memory function on PostgreSQL (the idempotency record's PUT and PATCH, plus the
handler's own working-memory write): many threads at once, and a handler that calls the entry of another agent from
``asyncio.to_thread``. Every record is handled, none fails; the same-thread misuse (the entry called inside a
running loop) is still refused with its clear message.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from soorma import Agent, EventEnvelope, PlatformContext, testing
from soorma.settings import Settings
from soorma.testing.grants import acting_headers, granted

pytestmark = pytest.mark.timeout(180)

THREADS = 12
BATCHES_PER_THREAD = 4
RECORDS_PER_BATCH = 5


class LambdaContext:
    function_name = "agent"
    aws_request_id = "test"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


@pytest.fixture
def platform_mode(monkeypatch):
    monkeypatch.setenv("SOORMA_IDEMPOTENCY", "platform")


def context_for(memory_api, memory_helpers, who) -> PlatformContext:
    """One execution environment's clients, sent to the real memory function as identity ``who`` (role agent)."""
    return PlatformContext(settings=Settings(api_url="http://platform.test", api_key="sk_agent_x"),
                           transport=memory_helpers.memory_transport(memory_api, who))


def envelope(who, pepper: str, tenant: str, user: str, n: int, event_type: str = "order.placed") -> EventEnvelope:
    """An event of ``who``'s platform tenant for (``tenant``, ``user``), with the delivery grant the gateway would
    stamp on it: the agent's idempotency records and handler calls act for that user under it."""
    return granted(EventEnvelope(type=event_type, topic="business-facts", data={"n": n}, tenant_id=tenant,
                                 user_id=user, platform_tenant_id=who.platform_tenant_id), pepper)


def test_many_threads_run_batches_through_the_real_entry_at_once(memory_api, memory_helpers, platform_mode, gx):
    who = memory_helpers.new_identity()
    tenant, user = f"st-{uuid.uuid4().hex[:6]}", "alice"
    agent = Agent(f"orders-{uuid.uuid4().hex[:6]}", context=context_for(memory_api, memory_helpers, who))
    handled: list[tuple[str, int]] = []
    loops: set[int] = set()
    lock = threading.Lock()

    @agent.on_event("order.placed", topic="business-facts")
    async def placed(event, context):
        # a real platform call on this thread's loop, through the shared clients' per-loop pool
        await context.memory.store("seen", {"n": event.data["n"]}, plan_id=f"plan-{event.id}")
        await asyncio.sleep(0.01)  # hand the loop over mid-handler: other threads' loops run meanwhile
        with lock:
            handled.append((event.id, threading.get_ident()))
            loops.add(id(asyncio.get_running_loop()))

    batches = [[envelope(who, gx.PEPPER, tenant, user, t * 1000 + b * 10 + r) for r in range(RECORDS_PER_BATCH)]
               for t in range(THREADS) for b in range(BATCHES_PER_THREAD)]
    start = threading.Barrier(THREADS)

    def run_thread(t: int) -> list[dict]:
        start.wait()  # every thread enters the entry at the same moment
        return [agent(testing.sqs_batch(*batch), LambdaContext())
                for batch in batches[t * BATCHES_PER_THREAD:(t + 1) * BATCHES_PER_THREAD]]

    with ThreadPoolExecutor(THREADS) as pool:
        responses = [r for rs in pool.map(run_thread, range(THREADS)) for r in rs]

    assert all(r == {"batchItemFailures": []} for r in responses), [r for r in responses if r["batchItemFailures"]]
    expected = {e.id for batch in batches for e in batch}
    assert {event_id for event_id, _ in handled} == expected and len(handled) == len(expected)
    assert len({thread for _, thread in handled}) == THREADS and len(loops) == THREADS  # one loop per thread
    # every event's idempotency record is COMPLETED in PostgreSQL: the records really went through the platform
    guard = agent._runtime.idempotency
    store = guard.persistence_store
    for batch in batches[:3]:
        for event in batch:
            key = store._get_hashed_idempotency_key(guard.payload(event))
            reply = memory_api.call("GET", f"/v1/memory/idempotency/{key}", who,
                                    headers=acting_headers(gx.PEPPER, who.platform_tenant_id, tenant, user))
            assert reply.status == 200 and reply.body["status"] == "COMPLETED", (reply.status, reply.body)


def test_a_handler_calls_the_entry_from_asyncio_to_thread(memory_api, memory_helpers, platform_mode, gx):
    who = memory_helpers.new_identity()
    tenant, user = f"st-{uuid.uuid4().hex[:6]}", "bob"
    context = context_for(memory_api, memory_helpers, who)
    inner = Agent(f"inner-{uuid.uuid4().hex[:6]}", context=context)
    outer = Agent(f"outer-{uuid.uuid4().hex[:6]}", context=context)
    inner_handled: list[str] = []
    answers: list[dict] = []

    @inner.on_event("order.audit", topic="business-facts")
    async def audit(event, ctx):
        inner_handled.append(event.id)

    @outer.on_event("order.placed", topic="business-facts")
    async def placed(event, ctx):
        nested = envelope(who, gx.PEPPER, tenant, user, event.data["n"], "order.audit")
        # synchronous code (a library, a legacy helper) that drives another agent's entry, run off the loop
        answers.append(await asyncio.to_thread(inner, testing.sqs_batch(nested), LambdaContext()))

    events = [envelope(who, gx.PEPPER, tenant, user, n) for n in range(8)]
    assert outer(testing.sqs_batch(*events), LambdaContext()) == {"batchItemFailures": []}
    assert answers == [{"batchItemFailures": []}] * len(events) and len(inner_handled) == len(events)


async def test_the_entry_is_still_refused_inside_a_running_loop_of_the_same_thread():
    agent = Agent("refuser")
    batch = testing.sqs_batch(EventEnvelope(type="x.y", topic="business-facts"))
    with pytest.raises(RuntimeError, match="cannot run inside a running event loop; await agent.dispatch"):
        agent(batch, None)
