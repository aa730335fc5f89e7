"""Idempotency records on the real memory function and the session's real PostgreSQL (no mocks of our services):
the conditional create mirrors Powertools' DynamoDB condition (absent, expired, or INPROGRESS past its in-progress
expiry may be overwritten; otherwise 409 with the live record), concurrent creators of one key have exactly one
winner, identities never see or take over each other's records, and an agent function invoked twice with the same
event in two execution environments (two PlatformContexts, fresh per-environment caches) runs its handler once.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import psycopg
import pytest
from psycopg.rows import dict_row

from soorma import Agent, EventEnvelope, PlatformContext, testing
from soorma.functions.shared.service import ensure_event_loop
from soorma.settings import Settings

from .conftest import PEPPER, memory_transport

PREFIX = "/v1/memory/idempotency"


def now_s() -> int:
    return int(time.time())


def now_ms() -> int:
    return int(time.time() * 1000)


def key() -> str:
    # Powertools' key format, '#' and '.' included, so the path encoding is exercised too
    return f"soorma.test-{uuid.uuid4().hex[:8]}#{uuid.uuid4().hex}"


def path(k: str) -> str:
    from urllib.parse import quote

    return f"{PREFIX}/{quote(k, safe='')}"


def owner_rows(postgres: str, k: str) -> list[dict]:
    with psycopg.connect(postgres, row_factory=dict_row) as conn:
        return conn.execute("select * from memory.idempotency_records where key = %s order by platform_tenant_id,"
                            " service_tenant_id, service_user_id", (k,)).fetchall()


# -- the routes ----------------------------------------------------------------------------------------------------


def test_create_get_update_delete(api, make_identity):
    who, k = make_identity(), key()
    expiry = now_s() + 3600
    created = api.call("PUT", path(k), who, body={"status": "INPROGRESS", "expiry_timestamp": expiry,
                                                  "in_progress_expiry_timestamp": now_ms() + 30_000,
                                                  "payload_hash": "abc"})
    assert created.status == 201, created.body
    assert created.body["key"] == k and created.body["status"] == "INPROGRESS"
    assert created.body["expiryTimestamp"] == expiry and created.body["payloadHash"] == "abc"
    assert created.body["responseData"] == ""

    got = api.call("GET", path(k), who)
    assert got.status == 200 and got.body["inProgressExpiryTimestamp"] == created.body["inProgressExpiryTimestamp"]

    done = api.call("PATCH", path(k), who, body={"status": "COMPLETED", "expiryTimestamp": expiry + 5,
                                                 "responseData": json.dumps({"handlers": 1})})
    assert done.status == 200, done.body
    assert done.body["status"] == "COMPLETED" and json.loads(done.body["responseData"]) == {"handlers": 1}
    # the payload hash was not given: kept; the in-progress expiry is left as it is (DynamoDB's UpdateItem SET)
    assert done.body["payloadHash"] == "abc"
    assert done.body["inProgressExpiryTimestamp"] == created.body["inProgressExpiryTimestamp"]

    assert api.call("DELETE", path(k), who).status == 204
    assert api.call("GET", path(k), who).status == 404
    assert api.call("DELETE", path(k), who).status == 404


def test_live_record_answers_409_with_the_record(api, make_identity):
    who, k = make_identity(), key()
    body = {"expiry_timestamp": now_s() + 3600, "in_progress_expiry_timestamp": now_ms() + 60_000}
    assert api.call("PUT", path(k), who, body=body).status == 201
    again = api.call("PUT", path(k), who, body={**body, "payload_hash": "other"})
    assert again.status == 409
    record = again.body["detail"]["record"]
    assert record["key"] == k and record["status"] == "INPROGRESS" and record["payloadHash"] == ""

    # COMPLETED and live: still 409, whatever its in-progress expiry says (that only frees INPROGRESS records)
    api.call("PATCH", path(k), who, body={"status": "COMPLETED", "expiry_timestamp": now_s() + 3600})
    third = api.call("PUT", path(k), who, body={"expiry_timestamp": now_s() + 3600})
    assert third.status == 409 and third.body["detail"]["record"]["status"] == "COMPLETED"


def test_expired_record_is_overwritten(api, make_identity, postgres):
    who, k = make_identity(), key()
    # a COMPLETED record whose expiry (epoch seconds) has passed counts as absent
    old = api.call("PUT", path(k), who, body={"status": "COMPLETED", "expiry_timestamp": now_s() - 5,
                                              "response_data": "{\"handlers\": 1}"})
    assert old.status == 201
    fresh = api.call("PUT", path(k), who, body={"expiry_timestamp": now_s() + 3600,
                                                "in_progress_expiry_timestamp": now_ms() + 10_000})
    assert fresh.status == 201, fresh.body
    assert fresh.body["status"] == "INPROGRESS" and fresh.body["responseData"] == ""
    (row,) = owner_rows(postgres, k)
    assert row["status"] == "INPROGRESS" and row["expiry_timestamp"] > now_s()

    # a record expiring in a moment is still live (Powertools' `#expiry < :now`)
    k2 = key()
    assert api.call("PUT", path(k2), who, body={"status": "COMPLETED", "expiry_timestamp": now_s() + 2}).status == 201
    assert api.call("PUT", path(k2), who, body={"expiry_timestamp": now_s() + 3600}).status == 409


def test_in_progress_expiry_takeover(api, make_identity):
    who = make_identity()
    hour = now_s() + 3600

    # INPROGRESS, in-progress expiry (ms) passed: the invocation that wrote it is gone; taken over
    k = key()
    assert api.call("PUT", path(k), who, body={"expiry_timestamp": hour,
                                               "in_progress_expiry_timestamp": now_ms() - 1}).status == 201
    taken = api.call("PUT", path(k), who, body={"expiry_timestamp": hour,
                                                "in_progress_expiry_timestamp": now_ms() + 60_000})
    assert taken.status == 201 and taken.body["inProgressExpiryTimestamp"] > now_ms()

    # INPROGRESS, in-progress expiry still ahead: live
    assert api.call("PUT", path(k), who, body={"expiry_timestamp": hour}).status == 409

    # INPROGRESS without an in-progress expiry: live until its expiry
    k2 = key()
    assert api.call("PUT", path(k2), who, body={"expiry_timestamp": hour}).status == 201
    assert api.call("PUT", path(k2), who, body={"expiry_timestamp": hour}).status == 409

    # COMPLETED with a passed in-progress expiry: the in-progress expiry does not free a completed record
    k3 = key()
    assert api.call("PUT", path(k3), who, body={"status": "COMPLETED", "expiry_timestamp": hour,
                                                "in_progress_expiry_timestamp": now_ms() - 1000}).status == 201
    assert api.call("PUT", path(k3), who, body={"expiry_timestamp": hour}).status == 409


def test_concurrent_creates_have_exactly_one_winner(memory_db, counting_embedder, make_identity, app_dsn, postgres):
    """Eight creators of one key at the same moment, each on its own database connection: one 201, seven 409s
    that all name the winner's record."""
    from mangum import Mangum

    from soorma.functions.memory.app import create_app
    from soorma.functions.shared.db import Database
    from tests.integration.memory.conftest import MemoryApi

    db = Database(app_dsn, max_size=8)
    try:
        api = MemoryApi(Mangum(create_app(db=db, embedder=counting_embedder), lifespan="off"))
        who = make_identity()
        for _ in range(3):  # a few keys, to give a race a few chances to show
            k = key()
            barrier = threading.Barrier(8)

            def create(i: int, k: str = k, barrier: threading.Barrier = barrier):
                ensure_event_loop()
                barrier.wait()
                return api.call("PUT", path(k), who, body={
                    "expiry_timestamp": now_s() + 3600, "in_progress_expiry_timestamp": now_ms() + 60_000,
                    "payload_hash": f"creator-{i}"})

            with ThreadPoolExecutor(8) as pool:
                replies = list(pool.map(create, range(8)))
            assert sorted(r.status for r in replies) == [201] + [409] * 7, [(r.status, r.body) for r in replies]
            (winner,) = [r.body for r in replies if r.status == 201]
            assert {r.body["detail"]["record"]["payloadHash"] for r in replies if r.status == 409} == {
                winner["payloadHash"]}
            (row,) = owner_rows(postgres, k)
            assert row["payload_hash"] == winner["payloadHash"]

            # and when the record is free to take over (in-progress expiry passed), again exactly one wins
            with psycopg.connect(postgres, autocommit=True) as conn:
                conn.execute("update memory.idempotency_records set in_progress_expiry_timestamp = %s where key = %s",
                             (now_ms() - 1, k))
            barrier = threading.Barrier(8)
            with ThreadPoolExecutor(8) as pool:
                replies = list(pool.map(create, range(8)))
            assert sorted(r.status for r in replies) == [201] + [409] * 7, [(r.status, r.body) for r in replies]
    finally:
        db.close()


def test_identities_never_see_or_take_over_each_others_records(api, make_identity, postgres):
    a = make_identity()
    others = [make_identity(role="admin"), make_identity(platform=a.platform_tenant_id),
              make_identity(platform=a.platform_tenant_id, service=a.service_tenant_id, role="user")]
    k = key()
    hour = now_s() + 3600
    assert api.call("PUT", path(k), a, body={"status": "COMPLETED", "expiry_timestamp": hour,
                                             "response_data": "{\"secret\": 4711}", "payload_hash": "a"}).status == 201
    before = owner_rows(postgres, k)

    for b in others:
        assert api.call("GET", path(k), b).status == 404
        assert api.call("DELETE", path(k), b).status == 404
        # B's create of the same key makes B's own record: no 409, nothing of A's in the answer
        mine = api.call("PUT", path(k), b, body={"expiry_timestamp": hour, "in_progress_expiry_timestamp": 0})
        assert mine.status == 201 and "4711" not in json.dumps(mine.body) and mine.body["payloadHash"] == ""
        patched = api.call("PATCH", path(k), b, body={"status": "COMPLETED", "expiry_timestamp": hour,
                                                      "response_data": "hijacked"})
        assert patched.status == 200 and patched.body["responseData"] == "hijacked"
        assert api.call("DELETE", path(k), b).status == 204

    assert owner_rows(postgres, k) == before  # A's row byte-for-byte unchanged, and the only one left
    assert api.call("GET", path(k), a).body["responseData"] == "{\"secret\": 4711}"
    assert api.call("PUT", path(k), a, body={"expiry_timestamp": hour}).status == 409


def test_erase_removes_idempotency_records(api, make_identity, postgres):
    a = make_identity()
    admin = replace(make_identity(platform=a.platform_tenant_id, role="admin"))
    k = key()
    assert api.call("PUT", path(k), a, body={"expiry_timestamp": now_s() + 3600}).status == 201
    reply = api.call("DELETE", f"/v1/memory/admin/tenant/{a.platform_tenant_id}/{a.service_tenant_id}", admin)
    assert reply.status == 200 and reply.body["deleted"]["idempotency_records"] == 1
    assert owner_rows(postgres, k) == []


def test_expired_records_are_purged_by_later_creates(api, make_identity, postgres):
    who = make_identity()
    stale = [key() for _ in range(3)]
    for k in stale:
        assert api.call("PUT", path(k), who, body={"status": "COMPLETED", "expiry_timestamp": now_s() - 60}).status \
            == 201
    assert api.call("PUT", path(key()), who, body={"expiry_timestamp": now_s() + 3600}).status == 201
    assert all(owner_rows(postgres, k) == [] for k in stale)


@pytest.mark.parametrize("body", [
    {},
    {"expiry_timestamp": -1},
    {"expiry_timestamp": "soon"},
    {"expiry_timestamp": 10**13},
    {"expiry_timestamp": 1, "status": "EXPIRED"},
    {"expiry_timestamp": 1, "status": "done"},
    {"expiry_timestamp": 1, "in_progress_expiry_timestamp": -5},
    {"expiry_timestamp": 1, "payload_hash": "x" * 513},
    {"expiry_timestamp": 1, "payload_hash": "a\u0000b"},
    {"expiry_timestamp": 1, "response_data": "x" * (256 * 1024 + 1)},
])
def test_bad_create_bodies_are_422(api, make_identity, body):
    reply = api.call("PUT", path(key()), make_identity(), body=body)
    assert reply.status == 422, reply.body


def test_bad_keys_and_update_bodies_are_4xx(api, make_identity):
    who = make_identity()
    assert api.call("PUT", f"{PREFIX}/{'k' * 256}", who, body={"expiry_timestamp": 1}).status == 422
    assert api.call("PUT", f"{PREFIX}/a%00b", who, body={"expiry_timestamp": 1}).status == 422
    assert api.call("PATCH", path(key()), who, body={"expiry_timestamp": 1}).status == 422  # status is required
    assert api.call("PATCH", path(key()), who, raw_body="{not json").status == 422
    assert api.call("PUT", path(key()), None, body={"expiry_timestamp": 1}).status == 401


# -- Powertools on the platform layer, and the agent runtime ---------------------------------------------------------


def environment(api, who) -> PlatformContext:
    """One execution environment's PlatformContext."""
    return PlatformContext(settings=Settings(api_url="http://platform.test", api_key="sk_agent_x"),
                           transport=memory_transport(api, who))


class _LambdaContext:
    function_name = "agent"
    aws_request_id = "test"

    def __init__(self, remaining_ms: int = 30_000) -> None:
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def make_agent(name: str, context: PlatformContext, runs: list, fail: list | None = None) -> Agent:
    agent = Agent(name, context=context)

    @agent.on_event("order.placed", topic="business-facts")
    async def placed(event, ctx):
        runs.append((name, event.id))
        if fail:
            fail.pop()
            raise RuntimeError("handler failed")

    return agent


@pytest.fixture
def platform_mode(monkeypatch):
    monkeypatch.setenv("SOORMA_IDEMPOTENCY", "platform")


def order_event(who, tenant: str = "st-1", user: str = "su-1") -> EventEnvelope:
    """An event of ``who``'s platform tenant for (``tenant``, ``user``), with the delivery grant the gateway stamps
    on it (the agent acts for that user only with it)."""
    event = EventEnvelope(type="order.placed", topic="business-facts", data={"order": 7}, tenant_id=tenant,
                          user_id=user, platform_tenant_id=who.platform_tenant_id)
    return testing.granted(event, PEPPER)


def test_same_event_in_two_environments_runs_once(api, make_identity, postgres, platform_mode):
    who = make_identity()  # role agent
    name = f"orders-{uuid.uuid4().hex[:6]}"
    runs: list = []
    first, second = make_agent(name, environment(api, who), runs), make_agent(name, environment(api, who), runs)
    event = order_event(who, tenant=f"st-{uuid.uuid4().hex[:6]}", user="alice")
    batch = testing.sqs_batch(event)

    assert first(batch, _LambdaContext()) == {"batchItemFailures": []}
    assert second(batch, _LambdaContext()) == {"batchItemFailures": []}  # a redelivery to another environment
    assert first(testing.sqs_batch(event, receive_count=3), _LambdaContext()) == {"batchItemFailures": []}
    assert runs == [(name, event.id)]

    # the record is COMPLETED, keyed by agent name and event id, and owned by the event's service tenant and user
    with psycopg.connect(postgres, row_factory=dict_row) as conn:
        (row,) = conn.execute("select * from memory.idempotency_records where key like %s", (f"soorma.{name}#%",)
                              ).fetchall()
    assert row["status"] == "COMPLETED" and json.loads(row["response_data"]) == {"handlers": 1}
    assert (row["platform_tenant_id"], row["service_tenant_id"], row["service_user_id"]) == (
        who.platform_tenant_id, event.tenant_id, "alice")
    assert row["in_progress_expiry_timestamp"] is not None and row["payload_hash"]

    # another agent handles the same event on its own: its key differs
    other = make_agent(f"{name}-audit", environment(api, who), runs)
    assert other(batch, _LambdaContext()) == {"batchItemFailures": []}
    assert runs == [(name, event.id), (f"{name}-audit", event.id)]


def test_a_failed_handler_is_retried_by_the_next_delivery_anywhere(api, make_identity, platform_mode):
    who = make_identity()
    name = f"orders-{uuid.uuid4().hex[:6]}"
    runs: list = []
    first = make_agent(name, environment(api, who), runs, fail=[True])
    second = make_agent(name, environment(api, who), runs)
    event = order_event(who)
    batch = testing.sqs_batch(event)

    assert first(batch, _LambdaContext()) == {"batchItemFailures": [{"itemIdentifier": "m0"}]}
    assert second(batch, _LambdaContext()) == {"batchItemFailures": []}  # the record was deleted: runs again
    assert first(batch, _LambdaContext()) == {"batchItemFailures": []}  # and now it is done, everywhere
    assert [r[1] for r in runs] == [event.id, event.id]


def test_in_progress_elsewhere_fails_the_record_until_its_in_progress_expiry(api, make_identity, platform_mode):
    """A live INPROGRESS record (another environment is on it) fails the record without running the handler; once
    its in-progress expiry has passed (that invocation crashed or timed out), the next delivery takes it over."""
    from soorma.idempotency import AgentIdempotency

    who = make_identity()
    name = f"orders-{uuid.uuid4().hex[:6]}"
    runs: list = []
    agent = make_agent(name, environment(api, who), runs)
    event = order_event(who, tenant="st-crash", user="bob")
    guard = AgentIdempotency(agent)
    guard.persistence_store.configure(guard.config, key_prefix=guard.key_prefix)  # as Powertools does, to learn the key
    k = guard.persistence_store._get_hashed_idempotency_key(guard.payload(event))
    assert k.startswith(f"soorma.{name}#")
    crashed = make_identity(platform=who.platform_tenant_id, service="st-crash", user="bob")

    # the "crashed" environment's record: INPROGRESS, in-progress expiry 2 s ahead
    reply = api.call("PUT", path(k), crashed, body={"expiry_timestamp": now_s() + 3600,
                                                    "in_progress_expiry_timestamp": now_ms() + 2000})
    assert reply.status == 201
    assert agent(testing.sqs_batch(event), _LambdaContext()) == {"batchItemFailures": [{"itemIdentifier": "m0"}]}
    assert runs == []

    time.sleep(2.2)
    assert agent(testing.sqs_batch(event, receive_count=2), _LambdaContext()) == {"batchItemFailures": []}
    assert runs == [(name, event.id)]
    assert api.call("GET", path(k), crashed).body["status"] == "COMPLETED"


def test_payload_mismatch_is_refused(api, make_identity, platform_mode):
    """An event reusing a handled id with another type is refused (a failed record), not silently skipped."""
    who = make_identity()
    name = f"orders-{uuid.uuid4().hex[:6]}"
    runs: list = []
    agent = make_agent(name, environment(api, who), runs)

    @agent.on_event("order.cancelled", topic="business-facts")
    async def cancelled(event, ctx):
        runs.append(("cancelled", event.id))

    event = order_event(who)
    assert agent(testing.sqs_batch(event), _LambdaContext()) == {"batchItemFailures": []}
    clash = event.model_copy(update={"type": "order.cancelled"})
    other = make_agent(name, environment(api, who), runs)  # another environment (no local cache)
    other.on_event("order.cancelled", topic="business-facts")(cancelled)
    assert other(testing.sqs_batch(clash), _LambdaContext()) == {"batchItemFailures": [{"itemIdentifier": "m0"}]}
    assert runs == [(name, event.id)]


def test_powertools_idempotent_function_on_the_platform_layer(api, make_identity):
    """The layer serves Powertools' own decorator for any function: second call replays the first response."""
    from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig, idempotent_function

    from soorma.idempotency import PlatformPersistenceLayer

    context = environment(api, make_identity())
    layer = PlatformPersistenceLayer(context)
    calls = []

    @idempotent_function(data_keyword_argument="order", persistence_store=layer,
                         config=IdempotencyConfig(event_key_jmespath="order_id"), key_prefix=f"test-{uuid.uuid4()}")
    def process(order: dict) -> dict:
        calls.append(order["order_id"])
        return {"charged": order["amount"]}

    assert process(order={"order_id": "o-1", "amount": 5}) == {"charged": 5}
    assert process(order={"order_id": "o-1", "amount": 5}) == {"charged": 5}
    assert process(order={"order_id": "o-2", "amount": 9}) == {"charged": 9}
    assert calls == ["o-1", "o-2"]
