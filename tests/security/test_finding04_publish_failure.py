"""Issue 12, finding 4 — a transient publish failure fails a goal for good.

The fault: when the publish of a goal's action request failed, the goal was marked ``failed`` and the client got
503; the SDK's automatic retry with the same ``Idempotency-Key`` was answered 202 ``status: failed`` and nothing was
ever published; and a publish whose acknowledgement was lost left the goal ``failed`` while agents ran it.

Now a goal is ``pending`` until the event bus acknowledges its publish; a failed publish answers 503 with
``Retry-After`` and leaves it pending; the retry with the same key republishes the same envelope (same event id, so
the tenant-scoped ``Nats-Msg-Id`` de-duplicates a publish whose ack was lost) and the goal becomes ``running``.
A goal sent without an Idempotency-Key cannot be retried, so it never hangs ``pending``: a publish that is not
acknowledged fails it with the reason (503), and the tracker revives it if its request reached the bus after all.
Black-box: the real gateway function and the real tracker logic on the session's PostgreSQL, and a real nats-server
of this module's own that the test stops and starts again.
"""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import tempfile
from pathlib import Path

import psycopg
import pytest
from mangum import Mangum

from soorma import testing
from soorma.events import EventEnvelope
from soorma.functions.shared.db import Database

pytestmark = pytest.mark.timeout(180)


def new_bus():
    """A real nats-server with JetStream on a free port that the test stops and starts again (same store and port)."""
    import socket

    from soorma.local.nats import EmbeddedNats

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return EmbeddedNats(Path(tempfile.mkdtemp(prefix="soorma-f4-nats-")), port=port)


@pytest.fixture(scope="module")
def bus():
    server = new_bus()
    server.start()
    yield server
    server.stop()
    shutil.rmtree(server.store_dir, ignore_errors=True)


class FlakyDb:
    """The real database, except that the next transaction can be made to fail (a commit lost after a publish)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.fail_next = False

    def transaction(self, *args, **kwargs):
        if self.fail_next:
            self.fail_next = False
            raise psycopg.OperationalError("server closed the connection unexpectedly")
        return self.db.transaction(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.db, name)


class Faults:
    """The real NATS publisher, with two injectable faults after a successful publish: the ack is lost (the call
    raises as on a timeout), or the database fails the next transaction (the status update)."""

    def __init__(self, publisher, db: FlakyDb) -> None:
        self.publisher = publisher
        self.db = db
        self.lose_ack = False
        self.fail_commit = False
        self.published = 0

    def check_size(self, envelope):
        return self.publisher.check_size(envelope)

    def publish(self, envelope):
        from soorma.functions.gateway.publisher import PublishError

        result = self.publisher.publish(envelope)  # raises while NATS is down
        self.published += 1
        if self.lose_ack:
            self.lose_ack = False
            raise PublishError("event bus unavailable: no acknowledgement in time")
        if self.fail_commit:
            self.fail_commit = False
            self.db.fail_next = True
        return result


@pytest.fixture(scope="module")
def gateway(app_dsn, bus, gw_env):
    """The real gateway function (with the functions' environment: the pepper it mints delivery grants with) on the
    session's PostgreSQL and this module's own NATS, with fault switches on its publisher and database."""
    from soorma.functions.gateway.app import create_app
    from soorma.functions.gateway.publisher import NatsPublisher

    db = Database(app_dsn, max_size=2)
    flaky = FlakyDb(db)
    publisher = NatsPublisher(bus.url, connect_timeout_s=0.5, publish_timeout_s=1.0)
    faults = Faults(publisher, flaky)
    handler = Mangum(create_app(flaky, faults), lifespan="off")
    handler.faults = faults  # type: ignore[attr-defined]
    handler.db = db  # type: ignore[attr-defined]
    yield handler
    publisher.close()
    db.close()


def call(handler, method: str, path: str, identity, body=None, headers=None) -> tuple[int, dict, dict]:
    from soorma.functions.shared.service import ensure_event_loop

    ensure_event_loop()
    event = testing.http_api_event(method, path, identity=identity, body=body,
                                   headers={"host": "api.local", **(headers or {})})
    out = handler(event, None)
    text = base64.b64decode(out["body"]).decode() if out.get("isBase64Encoded") else out.get("body") or ""
    return out["statusCode"], json.loads(text) if text else {}, {k.lower(): v for k, v in
                                                                  (out.get("headers") or {}).items()}


async def _stored(url: str, subject: str) -> list:
    import nats
    from nats.js.api import ConsumerConfig, DeliverPolicy

    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        sub = await js.pull_subscribe(subject, stream="SOORMA_EVENTS",
                                      config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL, inactive_threshold=5))
        out = []
        while True:
            try:
                batch = await sub.fetch(50, timeout=0.5)
            except (TimeoutError, nats.errors.TimeoutError):
                break
            out.extend(batch)
        await sub.unsubscribe()
        return [(m.headers or {}, json.loads(m.data)) for m in out]
    finally:
        await nc.close()


def stored(url: str, subject: str) -> list:
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(_stored(url, subject))
    finally:
        loop.close()


def goal_of(gateway, me, goal_id: str) -> dict:
    status, body, _ = call(gateway, "GET", f"/v1/goals/{goal_id}", me)
    assert status == 200, body
    return body


def test_goal_submitted_while_the_bus_is_down_stays_pending_and_the_retry_publishes_it_once(gateway, bus):
    me = testing.new_identity("developer")
    request = {"goal_type": "f4.research", "data": {"topic": "bees"}}
    key = {"Idempotency-Key": "f4-outage-1"}

    bus.stop()  # NATS unreachable
    try:
        status, body, headers = call(gateway, "POST", "/v1/goals", me, request, key)
        assert status == 503, body
        assert headers.get("retry-after") == "1"
        assert body["status"] == "pending" and "Idempotency-Key" in body["detail"]
        goal_id = body["goal_id"]
        goal = goal_of(gateway, me, goal_id)
        assert goal["status"] == "pending" and goal["completed_at"] is None  # not failed for good

        status, body, _ = call(gateway, "POST", "/v1/goals", me, request, key)  # the SDK's automatic retry
        assert status == 503 and body["goal_id"] == goal_id and body["status"] == "pending"
    finally:
        bus.start()

    # NATS is back: the same retry publishes the goal, once, and it is accepted.
    status, body, headers = call(gateway, "POST", "/v1/goals", me, request, key)
    assert status == 202, body
    assert body == {"goal_id": goal_id, "status": "running", "goal_type": "f4.research"}
    assert headers.get("idempotent-replayed") == "true"
    copies = stored(bus.url, f"soorma.{me.platform_tenant_id}.action-requests.f4.research")
    assert len(copies) == 1
    msg_headers, envelope = copies[0]
    assert envelope["goal_id"] == goal_id and envelope["data"] == {"topic": "bees"}
    assert msg_headers["Nats-Msg-Id"] == f"{me.platform_tenant_id}:{envelope['id']}"

    # ... and runs to completion: the tracker records the request and the agent's result.
    from soorma.functions.tracker.recording import record_envelope

    record_envelope(gateway.db, EventEnvelope.model_validate(envelope))
    result = EventEnvelope(type="soorma.goal.result", topic="action-results", source="agent",
                           data={"answer": 42}, correlation_id=goal_id, goal_id=goal_id,
                           platform_tenant_id=me.platform_tenant_id, tenant_id=me.service_tenant_id,
                           user_id=me.service_user_id)
    record_envelope(gateway.db, result)
    goal = goal_of(gateway, me, goal_id)
    assert goal["status"] == "completed" and goal["result"] == {"answer": 42}

    # A replay of the finished goal publishes nothing more; the same key with another body is still a 409.
    status, body, _ = call(gateway, "POST", "/v1/goals", me, request, key)
    assert status == 202 and body["status"] == "completed"
    status, _, _ = call(gateway, "POST", "/v1/goals", me, {**request, "data": {"topic": "wasps"}}, key)
    assert status == 409
    assert len(stored(bus.url, f"soorma.{me.platform_tenant_id}.action-requests.f4.research")) == 1


@pytest.mark.parametrize("fault", ["lose_ack", "fail_commit"])
def test_a_lost_ack_or_commit_is_published_exactly_once_by_the_retry(gateway, bus, fault):
    me = testing.new_identity("developer")
    goal_type = f"f4.{fault.replace('_', '-')}"
    request = {"goal_type": goal_type, "data": {"n": 1}}
    key = {"Idempotency-Key": f"f4-{fault}"}
    setattr(gateway.faults, fault, True)  # the publish is stored, then the ack (or the status update) is lost

    status, body, headers = call(gateway, "POST", "/v1/goals", me, request, key)
    assert status == 503 and headers.get("retry-after") == "1", body
    goal_id = body["goal_id"]
    assert goal_of(gateway, me, goal_id)["status"] == "pending"

    status, body, _ = call(gateway, "POST", "/v1/goals", me, request, key)  # the retry republishes the same event
    assert status == 202 and body["status"] == "running" and body["goal_id"] == goal_id, body
    copies = stored(bus.url, f"soorma.{me.platform_tenant_id}.action-requests.{goal_type}")
    assert len(copies) == 1  # JetStream dropped the republish: same tenant-scoped message id


def test_the_tracker_revives_a_keyless_goal_whose_request_reached_the_stream(gateway, bus):
    """No Idempotency-Key and a lost acknowledgement: the gateway cannot tell it from a lost publish, so the goal is
    failed (its client cannot retry it); the publish was stored, and the tracker's record of the goal's own request
    brings it back to ``running`` (agents are running it), without the error."""
    me = testing.new_identity("developer")
    gateway.faults.lose_ack = True
    status, body, _ = call(gateway, "POST", "/v1/goals", me, {"goal_type": "f4.noretry", "data": {}})
    assert status == 503, body  # no Idempotency-Key: this client will not retry
    assert body["status"] == "failed" and "send an Idempotency-Key" in body["detail"], body
    goal_id = body["goal_id"]
    goal = goal_of(gateway, me, goal_id)
    assert goal["status"] == "failed" and goal["error"].startswith("not published: "), goal
    [(_, envelope)] = stored(bus.url, f"soorma.{me.platform_tenant_id}.action-requests.f4.noretry")

    from soorma.functions.tracker.recording import record_envelope

    record_envelope(gateway.db, EventEnvelope.model_validate(envelope))  # the tracker consumes every event
    goal = goal_of(gateway, me, goal_id)
    assert goal["status"] == "running" and not goal.get("error") and goal["completed_at"] is None, goal
    result = EventEnvelope(type="soorma.goal.result", topic="action-results", source="agent", data={"ok": True},
                           correlation_id=goal_id, goal_id=goal_id, platform_tenant_id=me.platform_tenant_id,
                           tenant_id=me.service_tenant_id, user_id=me.service_user_id)
    record_envelope(gateway.db, result)
    assert goal_of(gateway, me, goal_id)["status"] == "completed"


def test_a_keyless_goal_submitted_while_the_bus_is_down_fails_with_the_reason_not_pending(gateway, bus):
    """No Idempotency-Key while NATS is down: nothing can ever publish this goal (its client cannot retry it), so it
    ends ``failed`` with the reason at once instead of hanging ``pending``; a new submission once NATS is back is a
    new goal and runs; and an agent's own failure is never undone by the revival rule (only the platform's)."""
    me = testing.new_identity("developer")
    request = {"goal_type": "f4.keyless", "data": {"topic": "ants"}}
    bus.stop()
    try:
        status, body, headers = call(gateway, "POST", "/v1/goals", me, request)
    finally:
        bus.start()
    assert status == 503 and headers.get("retry-after") == "1", body
    assert body["status"] == "failed", body
    assert "not published: the event bus did not acknowledge it" in body["detail"]
    assert "send an Idempotency-Key to make submissions retryable" in body["detail"]
    failed_id = body["goal_id"]
    goal = goal_of(gateway, me, failed_id)
    assert goal["status"] == "failed" and goal["completed_at"] and "send an Idempotency-Key" in goal["error"], goal
    assert stored(bus.url, f"soorma.{me.platform_tenant_id}.action-requests.f4.keyless") == []  # never published

    status, body, _ = call(gateway, "POST", "/v1/goals", me, request)  # bus back: a new goal, accepted
    assert status == 202 and body["status"] == "running" and body["goal_id"] != failed_id, body
    assert goal_of(gateway, me, failed_id)["status"] == "failed"  # the first one stays what it was: it never ran

    # the revival rule applies to the platform's failures only: an agent-reported failure stays failed
    from soorma.functions.tracker.recording import record_envelope

    [(_, envelope)] = stored(bus.url, f"soorma.{me.platform_tenant_id}.action-requests.f4.keyless")
    goal_id = body["goal_id"]
    record_envelope(gateway.db, EventEnvelope(
        type="soorma.goal.result", topic="action-results", source="agent", data={"status": "failed", "error": "no"},
        correlation_id=goal_id, goal_id=goal_id, platform_tenant_id=me.platform_tenant_id,
        tenant_id=me.service_tenant_id, user_id=me.service_user_id))
    record_envelope(gateway.db, EventEnvelope.model_validate(envelope))  # its request recorded late
    goal = goal_of(gateway, me, goal_id)
    assert goal["status"] == "failed" and goal["error"] == "no", goal


def test_oversized_goal_is_refused_before_it_is_stored(gateway):
    me = testing.new_identity("developer")
    status, body, _ = call(gateway, "POST", "/v1/goals", me, {"goal_type": "f4.big", "data": {"x": "y" * 1_100_000}})
    assert status == 413 and "maximum payload" in body["detail"]
    status, body, _ = call(gateway, "GET", "/v1/goals", me)
    assert body["count"] == 0  # finding 10: nothing (and no data) was stored
