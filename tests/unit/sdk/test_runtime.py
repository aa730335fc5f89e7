"""The Lambda entry: partial batch responses, malformed bodies, idempotency, one loop, deadlines."""

from __future__ import annotations

import asyncio
import json

import pytest

from soorma import Agent, EventEnvelope, Worker, runtime

from .fakes import FakePlatform, sqs_batch


def envelope(event_type: str, topic: str = "business-facts", **kw) -> str:
    return EventEnvelope(type=event_type, topic=topic, **kw).model_dump_json()


def make_agent(platform: FakePlatform | None = None) -> tuple[Agent, list[str]]:
    agent = Agent("probe", context=(platform or FakePlatform()).context())
    seen: list[str] = []

    @agent.on_event("ok.event", topic="business-facts")
    async def ok(event, context):
        seen.append(event.type)

    @agent.on_event("boom.event", topic="business-facts")
    async def boom(event, context):
        raise RuntimeError("handler broke")

    return agent, seen


def failures(response: dict) -> list[str]:
    return [f["itemIdentifier"] for f in response["batchItemFailures"]]


def test_only_raising_and_malformed_records_fail():
    agent, seen = make_agent()
    batch = sqs_batch(
        envelope("ok.event"),                                   # m0 ok
        envelope("boom.event"),                                 # m1 handler raises
        "{not json",                                            # m2 malformed JSON
        json.dumps({"type": "x.y", "topic": "no-such-topic"}),  # m3 not an envelope
        envelope("nobody.listens"),                             # m4 no handler: fine
        envelope("ok.event", topic="action-requests"),          # m5 other topic: no handler
    )
    response = agent(batch, None)
    assert failures(response) == ["m1", "m2", "m3"]
    assert seen == ["ok.event"]


def test_whole_batch_failing_still_answers_with_the_list():
    agent, _ = make_agent()
    response = agent(sqs_batch(envelope("boom.event"), "garbage"), None)
    assert failures(response) == ["m0", "m1"]


def test_empty_and_invalid_payloads():
    agent, _ = make_agent()
    assert agent({"Records": []}, None) == {"batchItemFailures": []}
    with pytest.raises(ValueError):
        agent({"hello": "world"}, None)


def test_bare_envelope_invocation():
    agent, seen = make_agent()
    assert agent(json.loads(envelope("ok.event")), None) == {"batchItemFailures": []}
    assert seen == ["ok.event"]
    with pytest.raises(RuntimeError, match="handler broke"):
        agent(json.loads(envelope("boom.event")), None)


def test_redelivered_event_runs_only_handlers_that_did_not_succeed():
    agent = Agent("multi", context=FakePlatform().context())
    calls = {"a": 0, "b": 0}
    broken = {"b": True}

    @agent.on_event("thing.happened", topic="business-facts")
    async def a(event, context):
        calls["a"] += 1

    @agent.on_event("*", topic="business-facts")
    async def b(event, context):
        calls["b"] += 1
        if broken["b"]:
            raise RuntimeError("transient")

    body = envelope("thing.happened")
    assert failures(agent(sqs_batch(body), None)) == ["m0"]
    broken["b"] = False
    assert failures(agent(sqs_batch(body), None)) == []
    assert failures(agent(sqs_batch(body), None)) == []  # a duplicate after success: nothing runs
    assert calls == {"a": 1, "b": 2}


def test_retried_handler_publishes_with_the_same_event_ids():
    """Ids generated inside a handler are deterministic, so JetStream de-duplicates a retry's publishes; delegated
    requests are only sent once the handler succeeded."""
    platform = FakePlatform()
    worker = Worker("w", context=platform.context())
    attempts = []

    @worker.on_task("job.split")
    async def split(task, context):
        await task.delegate("part.do", {"n": 1}, response_event="part.done")
        await context.bus.announce("job.split.started", {"n": 1})
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("crash after delegating")

    body = envelope("job.split", topic="action-requests", correlation_id="c", response_event="job.done")
    assert failures(worker(sqs_batch(body), None)) == ["m0"]
    assert platform.published_of("part.do") == []  # the failed run's delegation never went out
    assert failures(worker(sqs_batch(body), None)) == []
    first, second = platform.published_of("job.split.started")
    assert first["id"] == second["id"]  # same id: the stream keeps one copy
    [request] = platform.published_of("part.do")
    assert request["correlation_id"] == request["data"]["task_id"]
    assert len(platform.tasks) == 1  # the retry saved over the same task context


def test_one_event_loop_for_the_execution_environment():
    agent = Agent("loops", context=FakePlatform().context())
    loops = []

    @agent.on_event("tick", topic="system-events")
    async def tick(event, context):
        loops.append(asyncio.get_running_loop())

    for _ in range(3):
        agent(sqs_batch(envelope("tick", topic="system-events")), None)
    assert len(set(map(id, loops))) == 1 and loops[0] is runtime.event_loop()


def test_startup_runs_once_and_a_failed_startup_fails_the_batch():
    agent = Agent("starter", context=FakePlatform().context())
    starts = []

    @agent.on_startup
    async def start():
        starts.append(1)
        if len(starts) == 1:
            raise RuntimeError("cold start failed")

    @agent.on_event("tick", topic="system-events")
    async def tick(event, context):
        pass

    body = envelope("tick", topic="system-events")
    assert failures(agent(sqs_batch(body, body), None)) == ["m0", "m1"]
    assert failures(agent(sqs_batch(body), None)) == []
    assert failures(agent(sqs_batch(body), None)) == []
    assert len(starts) == 2


class FakeLambdaContext:
    def __init__(self, remaining_ms: int):
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def test_records_are_left_for_redelivery_when_time_runs_out():
    agent, seen = make_agent()
    response = agent(sqs_batch(envelope("ok.event")), FakeLambdaContext(500))
    assert failures(response) == ["m0"] and seen == []

    slow = Agent("slow", context=FakePlatform().context())

    @slow.on_event("slow.event", topic="business-facts")
    async def sleepy(event, context):
        await asyncio.sleep(5)

    response = slow(sqs_batch(envelope("slow.event")), FakeLambdaContext(1200))
    assert failures(response) == ["m0"]


async def test_sync_entry_refuses_to_run_inside_a_running_loop():
    agent, seen = make_agent()
    with pytest.raises(RuntimeError, match="running event loop"):
        agent(sqs_batch(envelope("ok.event")), None)
    # the async path works there
    assert await agent.dispatch(EventEnvelope(type="ok.event", topic="business-facts")) == 1
    assert seen == ["ok.event"]


def test_subscriptions_and_definition():
    platform = FakePlatform()
    worker = Worker("order-worker", description="orders", version="1.2.0",
                    events_produced=[{"event_name": "order.processed", "topic": "action-results",
                                      "description": "done"}],
                    context=platform.context())

    @worker.on_task("order.process")
    async def process(task, context):
        pass

    @worker.on_result("payment.charged")
    async def charged(result, context):
        pass

    @worker.on_event("*", topic="system-events")
    async def anything(event, context):
        pass

    @worker.on_event("tick", topic="system-events")  # absorbed by the catch-all on the same topic
    async def tick(event, context):
        pass

    assert worker.subscriptions() == [
        ("action-requests", "order.process"),
        ("action-results", "payment.charged"),
        ("system-events", "*"),
    ]
    definition = worker.definition()
    assert definition == {
        "agent_id": "order-worker",
        "name": "order-worker",
        "description": "orders",
        "version": "1.2.0",
        "capabilities": [{
            "task_name": "order.process",
            "description": "",
            "produced_events": [],
            "consumed_event": {"event_name": "order.process", "topic": "action-requests", "description": ""},
        }],
        "consumed_events": ["order.process", "payment.charged", "tick"],
        "produced_events": ["order.processed"],
    }
    deployment = worker.deployment("order-worker-fn", max_deliveries=3)
    assert deployment["subscriptions"][2] == {"topic": "system-events", "event_type": "*"}
    assert deployment["max_deliveries"] == 3 and deployment["batch_size"] == 10
    assert worker.definition(deployment)["deployment"]["function_name"] == "order-worker-fn"
    assert worker.event_definitions() == [
        {"event_name": "order.processed", "topic": "action-results", "description": "done"}
    ]

    # register() does what the deployer does, through the registry routes
    runtime.run(worker.register(deployment))
    assert platform.agents["order-worker"]["deployment"]["transport"] == "nats"
    assert "order.processed" in platform.events


def test_bad_declarations_are_rejected():
    agent = Agent("a")
    with pytest.raises(ValueError, match="unknown topic"):
        agent.on_event("x", topic="no-such-topic")
    with pytest.raises(ValueError):
        agent.on_event("bad type!", topic="business-facts")
    with pytest.raises(RuntimeError, match="no handlers"):
        agent.run()


def test_records_with_minimal_fields_and_positional_constructor_order():
    platform = FakePlatform()
    worker = Worker("w", "does work", "2.0.0", ["extra-skill"], context=platform.context())
    assert worker.capabilities == ["extra-skill"] and worker.agent_type == "worker"
    seen = []

    @worker.on_task("job.run")
    async def run(task, context):
        seen.append(task.task_id)

    minimal = {"Records": [{"messageId": "only", "body": envelope("job.run", topic="action-requests")}]}
    assert worker(minimal, None) == {"batchItemFailures": []}
    assert len(seen) == 1
