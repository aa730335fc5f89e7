"""soorma.idempotency without a platform: the SOORMA_IDEMPOTENCY setting, PlatformPersistenceLayer over a fake
transport (soorma.testing.idempotency, the routes' semantics in memory), and the Lambda entry in each mode. The real
routes on PostgreSQL are tested in tests/integration/memory/test_memory_idempotency.py."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import httpx
import pytest

from soorma import Agent, EventEnvelope, PlatformContext
from soorma.idempotency import idempotency_mode
from soorma.settings import Settings
from soorma.testing import sqs_batch
from soorma.testing.idempotency import FakeIdempotencyStore


class _LambdaContext:
    def __init__(self, remaining_ms: int = 30_000) -> None:
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def context_for(store: FakeIdempotencyStore) -> PlatformContext:
    return PlatformContext(settings=Settings(api_url="http://platform.test", api_key="sk_test_x"),
                           transport=httpx.MockTransport(store.handle))


def agent_on(store: FakeIdempotencyStore, runs: list, name: str = "orders", fail: list | None = None) -> Agent:
    agent = Agent(name, context=context_for(store))

    @agent.on_event("order.placed", topic="business-facts")
    async def placed(event, ctx):
        runs.append(event.id)
        if fail:
            fail.pop()
            raise RuntimeError("boom")

    return agent


def event(**fields) -> EventEnvelope:
    return EventEnvelope(type="order.placed", topic="business-facts", data={"n": 1}, tenant_id="t1", user_id="u1",
                         **fields)


OK = {"batchItemFailures": []}
FAILED = {"batchItemFailures": [{"itemIdentifier": "m0"}]}


# -- the setting ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("env,mode", [
    ({}, "local"),
    ({"SOORMA_API_URL": "http://x"}, "local"),  # a script next to the platform: not a function
    ({"AWS_LAMBDA_FUNCTION_NAME": "f"}, "local"),  # a function with no platform to keep records in
    ({"AWS_LAMBDA_FUNCTION_NAME": "f", "SOORMA_API_URL": "http://x"}, "commit"),
    ({"AWS_LAMBDA_FUNCTION_NAME": "f", "SOORMA_MEMORY_URL": "http://x"}, "commit"),
    ({"AWS_LAMBDA_FUNCTION_NAME": "f", "SOORMA_API_URL": "http://x", "SOORMA_IDEMPOTENCY": "local"}, "local"),
    ({"SOORMA_IDEMPOTENCY": "PLATFORM"}, "platform"),
    ({"SOORMA_IDEMPOTENCY": " off "}, "off"),
    ({"SOORMA_IDEMPOTENCY": "Commit"}, "commit"),
])
def test_mode_from_environment(env, mode):
    assert idempotency_mode(env) == mode


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="SOORMA_IDEMPOTENCY"):
        idempotency_mode({"SOORMA_IDEMPOTENCY": "dynamodb"})


def test_unknown_mode_fails_the_invocation(monkeypatch):
    monkeypatch.setenv("SOORMA_IDEMPOTENCY", "sometimes")
    agent = agent_on(FakeIdempotencyStore(), [])
    with pytest.raises(ValueError, match="SOORMA_IDEMPOTENCY"):
        agent(sqs_batch(event()), _LambdaContext())


def test_expiry_setting(monkeypatch):
    from soorma.idempotency import expiry_from_env

    assert expiry_from_env({}) == 3600
    assert expiry_from_env({"SOORMA_IDEMPOTENCY_EXPIRES_SECONDS": "60"}) == 60
    with pytest.raises(ValueError):
        expiry_from_env({"SOORMA_IDEMPOTENCY_EXPIRES_SECONDS": "0"})


# -- the persistence layer -------------------------------------------------------------------------------------------


def test_layer_maps_powertools_operations_to_the_routes():
    from aws_lambda_powertools.utilities.idempotency.exceptions import (
        IdempotencyItemAlreadyExistsError,
        IdempotencyItemNotFoundError,
    )
    from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import DataRecord

    from soorma.idempotency import PlatformPersistenceLayer

    store = FakeIdempotencyStore()
    layer = PlatformPersistenceLayer(context_for(store))
    now = int(time.time())
    layer._put_record(DataRecord("k#1", status="INPROGRESS", expiry_timestamp=now + 60,
                                 in_progress_expiry_timestamp=now * 1000 + 5000))
    with pytest.raises(IdempotencyItemAlreadyExistsError) as caught:
        layer._put_record(DataRecord("k#1", status="INPROGRESS", expiry_timestamp=now + 60))
    old = caught.value.old_data_record
    assert old.status == "INPROGRESS" and old.in_progress_expiry_timestamp == now * 1000 + 5000

    layer._update_record(DataRecord("k#1", status="COMPLETED", expiry_timestamp=now + 60, response_data='{"a": 1}'))
    got = layer._get_record("k#1")
    assert got.status == "COMPLETED" and got.response_json_as_dict() == {"a": 1}
    layer._delete_record(DataRecord("k#1"))
    layer._delete_record(DataRecord("k#1"))  # already gone: fine
    with pytest.raises(IdempotencyItemNotFoundError):
        layer._get_record("k#1")
    assert [m for m, _ in store.calls] == ["PUT", "PUT", "PATCH", "GET", "DELETE", "DELETE", "GET"]


def test_layer_validates_the_payload_of_the_live_record():
    from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig
    from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyValidationError
    from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import DataRecord

    from soorma.idempotency import PlatformPersistenceLayer

    layer = PlatformPersistenceLayer(context_for(FakeIdempotencyStore()))
    layer.configure(IdempotencyConfig(event_key_jmespath="id", payload_validation_jmespath="body"), key_prefix="p")
    now = int(time.time())
    layer._put_record(DataRecord("p#1", status="INPROGRESS", expiry_timestamp=now + 60, payload_hash="h1"))
    with pytest.raises(IdempotencyValidationError):
        layer._put_record(DataRecord("p#1", status="INPROGRESS", expiry_timestamp=now + 60, payload_hash="h2"))


def test_records_are_scoped_to_the_identity_acted_for():
    from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import DataRecord

    from soorma.idempotency import PlatformPersistenceLayer

    store = FakeIdempotencyStore()
    layer = PlatformPersistenceLayer(context_for(store))
    now = int(time.time())
    with layer.acting_for("t1", "u1"):
        layer._put_record(DataRecord("k", status="INPROGRESS", expiry_timestamp=now + 60))
    with layer.acting_for("t2", "u1"):
        layer._put_record(DataRecord("k", status="INPROGRESS", expiry_timestamp=now + 60))  # no conflict
    assert set(store.records) == {("t1", "u1", "k"), ("t2", "u1", "k")}


# -- the Lambda entry --------------------------------------------------------------------------------------------------


def test_platform_mode_runs_an_event_once_across_environments(monkeypatch):
    monkeypatch.setenv("SOORMA_IDEMPOTENCY", "platform")
    store, runs = FakeIdempotencyStore(), []
    first, second = agent_on(store, runs), agent_on(store, runs)
    e = event()
    assert first(sqs_batch(e), _LambdaContext()) == OK
    assert [m for m, _ in store.calls] == ["PUT", "PATCH"]  # two round trips for a new event
    assert second(sqs_batch(e), _LambdaContext()) == OK  # the 409 carries the COMPLETED record: no GET
    assert [m for m, _ in store.calls] == ["PUT", "PATCH", "PUT"]
    assert first(sqs_batch(e), _LambdaContext()) == OK  # this environment handled it: Powertools' local cache
    assert len(store.calls) == 3 and runs == [e.id]

    (record,) = store.records.values()
    assert record["key"].startswith("soorma.orders#") and record["status"] == "COMPLETED"
    assert json.loads(record["responseData"]) == {"handlers": 1}
    assert set(store.records) == {("t1", "u1", record["key"])}  # for the event's service tenant and user
    # in-progress expiry = now + the invocation's remaining time (ms), as Powertools sets it
    assert abs(record["inProgressExpiryTimestamp"] - (time.time() * 1000 + 30_000)) < 5_000


def test_platform_mode_deletes_the_record_when_a_handler_fails(monkeypatch):
    monkeypatch.setenv("SOORMA_IDEMPOTENCY", "platform")
    store, runs = FakeIdempotencyStore(), []
    first, second = agent_on(store, runs, fail=[True]), agent_on(store, runs)
    e = event()
    assert first(sqs_batch(e), _LambdaContext()) == FAILED
    assert store.records == {} and [m for m, _ in store.calls] == ["PUT", "DELETE"]
    assert second(sqs_batch(e, receive_count=2), _LambdaContext()) == OK
    assert runs == [e.id, e.id]


def test_platform_mode_in_progress_elsewhere_and_its_expiry(monkeypatch):
    monkeypatch.setenv("SOORMA_IDEMPOTENCY", "platform")
    clock = [time.time()]
    store, runs = FakeIdempotencyStore(clock=lambda: clock[0]), []
    busy = agent_on(store, runs)
    e = event()
    from soorma.idempotency import AgentIdempotency

    guard = AgentIdempotency(busy)
    guard.persistence_store.configure(guard.config, key_prefix=guard.key_prefix)
    key = guard.persistence_store._get_hashed_idempotency_key(guard.payload(e))
    # another environment's record, written with 10 s left in its invocation
    store.records[("t1", "u1", key)] = {"key": key, "status": "INPROGRESS", "expiryTimestamp": int(clock[0]) + 3600,
                                        "inProgressExpiryTimestamp": int(clock[0] * 1000) + 10_000,
                                        "responseData": "", "payloadHash": ""}
    assert busy(sqs_batch(e), _LambdaContext()) == FAILED and runs == []
    clock[0] += 11  # that invocation timed out: its record may be taken over
    assert busy(sqs_batch(e, receive_count=2), _LambdaContext()) == OK and runs == [e.id]


def test_no_lambda_context_uses_the_fallback_in_progress_expiry(monkeypatch):
    from soorma.idempotency.agent import FALLBACK_IN_PROGRESS_MS

    monkeypatch.setenv("SOORMA_IDEMPOTENCY", "platform")
    store, runs = FakeIdempotencyStore(), []
    assert agent_on(store, runs)(sqs_batch(event()), None) == OK
    (record,) = store.records.values()
    assert abs(record["inProgressExpiryTimestamp"] - (time.time() * 1000 + FALLBACK_IN_PROGRESS_MS)) < 5_000


def test_platform_store_unreachable_fails_the_record(monkeypatch):
    monkeypatch.setenv("SOORMA_IDEMPOTENCY", "platform")

    def down(request: httpx.Request) -> httpx.Response:
        return httpx.Response(500, json={"detail": "down"})

    runs: list = []
    agent = Agent("orders", context=PlatformContext(settings=Settings(api_url="http://p.test", api_key="sk_x"),
                                                    transport=httpx.MockTransport(down)))
    agent.on_event("order.placed", topic="business-facts")(lambda ev, ctx: runs.append(ev.id))
    assert agent(sqs_batch(event()), _LambdaContext()) == FAILED and runs == []


def test_local_mode_remembers_per_environment_only(monkeypatch):
    monkeypatch.setenv("SOORMA_IDEMPOTENCY", "local")
    store, runs = FakeIdempotencyStore(), []
    first, second = agent_on(store, runs), agent_on(store, runs)
    e = event()
    assert first(sqs_batch(e), _LambdaContext()) == OK
    assert first(sqs_batch(e), _LambdaContext()) == OK
    assert second(sqs_batch(e), _LambdaContext()) == OK
    assert runs == [e.id, e.id] and store.calls == []


def test_off_mode_runs_every_delivery(monkeypatch):
    monkeypatch.setenv("SOORMA_IDEMPOTENCY", "off")
    store, runs = FakeIdempotencyStore(), []
    agent = agent_on(store, runs)
    e = event()
    assert agent(sqs_batch(e), _LambdaContext()) == OK
    assert agent(sqs_batch(e), _LambdaContext()) == OK
    assert runs == [e.id, e.id] and store.calls == []


def test_bare_envelope_invocation_is_guarded_too(monkeypatch):
    monkeypatch.setenv("SOORMA_IDEMPOTENCY", "platform")
    store, runs = FakeIdempotencyStore(), []
    e = event()
    agent_on(store, runs)(e.model_dump(mode="json"), _LambdaContext())
    agent_on(store, runs)(e.model_dump(mode="json"), _LambdaContext())
    assert runs == [e.id]


def test_importing_the_layer_does_not_import_boto3():
    code = (
        "import sys\n"
        "from soorma.idempotency import PlatformPersistenceLayer, AgentIdempotency\n"
        "from aws_lambda_powertools.utilities.idempotency import idempotent_function, IdempotencyConfig\n"
        "assert 'boto3' not in sys.modules, 'boto3 imported'\n"
        "from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer, BasePersistenceLayer\n"
        "from aws_lambda_powertools.utilities.idempotency.persistence.dynamodb import DynamoDBPersistenceLayer as D\n"
        "assert D is DynamoDBPersistenceLayer and issubclass(D, BasePersistenceLayer) and 'boto3' in sys.modules\n"
        "import aws_lambda_powertools.utilities.idempotency as pkg\n"
        "assert pkg.IdempotentHookFunction is not None\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


# -- issue 12, finding 11: a record whose release failed must not block its retries ------------------------------


def test_release_is_retried_after_429_then_the_retry_runs(monkeypatch):
    """The handler fails; the DELETE that releases the record is throttled twice (429 with Retry-After: 0): the SDK
    retries it, the record is gone, and the next delivery runs the event."""
    monkeypatch.setenv("SOORMA_IDEMPOTENCY", "platform")
    store, runs = FakeIdempotencyStore(), []
    throttled = [2]

    def handle(request: httpx.Request) -> httpx.Response:
        if request.method == "DELETE" and throttled[0]:
            throttled[0] -= 1
            return httpx.Response(429, headers={"Retry-After": "0"}, json={"detail": "rate limit exceeded"})
        return store.handle(request)

    agent = Agent("orders", context=PlatformContext(settings=Settings(api_url="http://platform.test",
                                                                         api_key="sk_test_x"),
                                                    transport=httpx.MockTransport(handle)))
    fail = [1]

    @agent.on_event("order.placed", topic="business-facts")
    async def placed(event, ctx):
        runs.append(event.id)
        if fail:
            fail.pop()
            raise RuntimeError("boom")

    e = event()
    assert agent(sqs_batch(e), _LambdaContext()) == FAILED
    assert throttled == [0] and store.records == {}
    assert agent(sqs_batch(e, receive_count=2), _LambdaContext()) == OK and runs == [e.id, e.id]


def _two_environments_whose_release_fails():
    """(store, runs, first, second): two execution environments of agent ``orders`` on one idempotency store whose
    DELETE (the release after a failed handler) always fails; the handler fails its first run, then succeeds."""
    store, runs = FakeIdempotencyStore(), []

    def handle(request: httpx.Request) -> httpx.Response:
        if request.method == "DELETE":
            return httpx.Response(500, json={"detail": "down"})
        return store.handle(request)

    context = PlatformContext(settings=Settings(api_url="http://platform.test", api_key="sk_test_x"),
                              transport=httpx.MockTransport(handle))
    first, second = Agent("orders", context=context), Agent("orders", context=context)
    fail = [1]
    for agent in (first, second):
        @agent.on_event("order.placed", topic="business-facts")
        async def placed(event, ctx):
            runs.append(event.id)
            if fail:
                fail.pop()
                raise RuntimeError("boom")
    return store, runs, first, second


def test_a_record_left_in_progress_is_waited_for_not_a_spent_delivery(monkeypatch):
    """The release fails for good (the store refuses every DELETE): the record stays INPROGRESS until its owner
    invocation's deadline (4 s left; its release attempts take about 1.4 s of them). The redelivery, with 30 s left, waits for that expiry inside its invocation
    and then runs the event: no delivery is spent on "already in progress"."""
    monkeypatch.setenv("SOORMA_IDEMPOTENCY", "platform")
    store, runs, first, second = _two_environments_whose_release_fails()

    e = event()
    assert first(sqs_batch(e), _LambdaContext(4000)) == FAILED
    (record,) = store.records.values()
    assert record["status"] == "INPROGRESS"
    expiry_s = record["inProgressExpiryTimestamp"] / 1000
    assert expiry_s - time.time() > 1.0  # still held by the ended invocation when the redelivery comes
    assert second(sqs_batch(e, receive_count=2), _LambdaContext(30_000)) == OK
    assert runs == [e.id, e.id] and time.time() >= expiry_s
    assert next(iter(store.records.values()))["status"] == "COMPLETED"


def test_a_live_owner_beyond_the_budget_still_fails_the_record_at_once(monkeypatch):
    """An INPROGRESS record whose owner has more time left than this invocation could wait is not waited for."""
    monkeypatch.setenv("SOORMA_IDEMPOTENCY", "platform")
    store, runs, first, second = _two_environments_whose_release_fails()

    e = event()
    assert first(sqs_batch(e), _LambdaContext(600_000)) == FAILED
    started = time.monotonic()
    assert second(sqs_batch(e, receive_count=2), _LambdaContext(3_000)) == FAILED
    assert runs == [e.id] and time.monotonic() - started < 2
