"""``POST /v1/events/commit`` (issue 19, the fast path) through the gateway's Mangum handler on the real PostgreSQL
(role soorma_app, row-level security) and the real NATS JetStream: one handler run's events, task-context writes and
idempotency record in one transaction, the events relayed from the outbox after the commit."""

from __future__ import annotations

import json
import socket
import time
import uuid

import nats.js.errors
import pytest
from mangum import Mangum

from soorma.functions.gateway.app import create_app
from soorma.functions.gateway.publisher import NatsPublisher


@pytest.fixture
def call(fx, gateway):
    def _call(method, path, identity, body=None, app=None):
        return fx.invoke(app or gateway, fx.http_event(method, path, identity=identity, body=body))

    return _call


def commit_body(key: str, *, events=(), tasks=(), deleted=()) -> dict:
    return {"key": key, "expiry_timestamp": int(time.time()) + 3600, "events": list(events),
            "task_contexts": list(tasks), "deleted_task_contexts": list(deleted)}


def event(event_type: str, topic: str = "business-facts", **data) -> dict:
    return {"id": str(uuid.uuid4()), "type": event_type, "topic": topic, "data": data}


def task(task_id: str, version: int | None = None, **state) -> dict:
    body = {"task_id": task_id, "event_type": "order.process.requested", "sub_tasks": [f"{task_id}-sub"],
            "state": state}
    if version is not None:
        body["version"] = version
    return body


def outbox_rows(db, identity, key: str) -> int:
    with db.transaction(identity) as conn:
        return conn.execute("select count(*) as n from gateway.event_outbox where commit_key = %s",
                            (key,)).fetchone()["n"]


def task_row(db, identity, task_id: str):
    with db.transaction(identity) as conn:
        return conn.execute("select version, state from memory.task_context where task_id = %s",
                            (task_id,)).fetchone()


def subject_of(identity, envelope: dict) -> str:
    return f"soorma.{identity.platform_tenant_id}.{envelope['topic']}.{envelope['type']}"


def test_commit_applies_everything_at_once_and_publishes_from_the_outbox(fx, call, db, nats_url):
    me = fx.new_identity(role="agent")
    request = event(f"t{uuid.uuid4().hex[:8]}.sub.requested", "action-requests", order="o-1")
    progress = event(f"t{uuid.uuid4().hex[:8]}.progress", "task-events", progress=0.1)
    key = f"soorma.commit.worker#{uuid.uuid4().hex}"
    reply = call("POST", "/v1/events/commit", me, commit_body(key, events=[request, progress],
                                                                tasks=[task("task-1", pending="g1")]))
    assert reply.status == 200, reply.body
    assert reply.body == {"replayed": False, "event_ids": [request["id"], progress["id"]],
                          "task_versions": {"task-1": 1}}
    for sent in (request, progress):  # on the bus with their own ids, stamped with the caller's identity and a grant
        stored = json.loads(fx.last_message(nats_url, subject_of(me, sent)).data)
        assert stored["id"] == sent["id"] and stored["data"] == sent["data"]
        assert (stored["tenant_id"], stored["user_id"]) == (me.service_tenant_id, me.service_user_id)
        assert stored["delivery_grant"]
    assert outbox_rows(db, me, key) == 0  # relayed, then removed
    row = task_row(db, me, "task-1")
    assert row["version"] == 1 and row["state"] == {"pending": "g1"}
    with db.transaction(me) as conn:
        record = conn.execute("select status from memory.idempotency_records where key = %s", (key,)).fetchone()
    assert record["status"] == "COMPLETED"


def test_a_repeated_commit_changes_nothing_and_publishes_nothing_new(fx, call, db, nats_url):
    me = fx.new_identity(role="agent")
    first = event(f"t{uuid.uuid4().hex[:8]}.done")
    key = f"k-{uuid.uuid4()}"
    assert call("POST", "/v1/events/commit", me, commit_body(key, events=[first], tasks=[task("t-r", n=1)])).status \
        == 200
    seq = fx.last_message(nats_url, subject_of(me, first)).seq
    # The same run again (a redelivery, another execution environment): other ids, other state; none of it applied.
    again = {**first, "id": str(uuid.uuid4())}
    reply = call("POST", "/v1/events/commit", me, commit_body(key, events=[again], tasks=[task("t-r", n=2)]))
    assert reply.status == 200 and reply.body == {"replayed": True, "event_ids": [], "task_versions": {}}
    assert fx.last_message(nats_url, subject_of(me, first)).seq == seq
    assert task_row(db, me, "t-r")["state"] == {"n": 1}


def test_a_version_conflict_applies_nothing_and_the_rerun_commits(fx, call, db, nats_url):
    me = fx.new_identity(role="agent")
    assert call("POST", "/v1/events/commit", me, commit_body(f"k-{uuid.uuid4()}", tasks=[task("t-c", a=1)])).status \
        == 200
    # Two results of one parent: the first commit moves the task to version 2 ...
    assert call("POST", "/v1/events/commit", me, commit_body(f"k-{uuid.uuid4()}", tasks=[task("t-c", 1, a=1, b=1)])
                ).body["task_versions"] == {"t-c": 2}
    # ... the second, which read version 1, is refused whole: no event, no outbox row, no idempotency record.
    late = event(f"t{uuid.uuid4().hex[:8]}.answered")
    key = f"k-{uuid.uuid4()}"
    reply = call("POST", "/v1/events/commit", me, commit_body(key, events=[late], tasks=[task("t-c", 1, a=1, c=1)]))
    assert reply.status == 409, reply.body
    assert "version 2" in reply.body["detail"]
    assert outbox_rows(db, me, key) == 0
    with pytest.raises(nats.js.errors.NotFoundError):  # nothing on the bus under that subject
        fx.last_message(nats_url, subject_of(me, late))
    # Its re-run (same key, fresh read) commits: the key was never taken.
    reply = call("POST", "/v1/events/commit", me, commit_body(key, events=[late], tasks=[task("t-c", 2, a=1, b=1, c=1)]))
    assert reply.status == 200 and reply.body["replayed"] is False and reply.body["task_versions"] == {"t-c": 3}
    assert json.loads(fx.last_message(nats_url, subject_of(me, late)).data)["id"] == late["id"]


def test_deleting_a_task_context_in_a_commit(fx, call, db):
    me = fx.new_identity(role="agent")
    call("POST", "/v1/events/commit", me, commit_body(f"k-{uuid.uuid4()}", tasks=[task("t-d")]))
    assert task_row(db, me, "t-d") is not None
    reply = call("POST", "/v1/events/commit", me, commit_body(f"k-{uuid.uuid4()}", deleted=["t-d"]))
    assert reply.status == 200 and task_row(db, me, "t-d") is None


def test_tenants_commit_apart(fx, call, db, nats_url):
    """Tenant B's commit with tenant A's key, task id and identity: B gets its own rows; A's are untouched; B cannot
    publish as A."""
    a = fx.new_identity(role="agent")
    b_same_platform = fx.new_identity(role="agent", pt=a.platform_tenant_id)
    b_other_platform = fx.new_identity(role="agent")
    key = f"k-{uuid.uuid4()}"
    assert call("POST", "/v1/events/commit", a, commit_body(key, tasks=[task("shared-id", owner="a")])).status == 200
    for b in (b_same_platform, b_other_platform):
        reply = call("POST", "/v1/events/commit", b, commit_body(key, tasks=[task("shared-id", owner="b")]))
        assert reply.status == 200 and reply.body["replayed"] is False  # A's key does not make B's run a replay
        # a versioned write naming A's task id and version writes B's own row, never A's
        reply = call("POST", "/v1/events/commit", b, commit_body(f"k-{uuid.uuid4()}",
                                                                 tasks=[task("shared-id", 1, owner="b2")]))
        assert reply.status == 200 and reply.body["task_versions"] == {"shared-id": 2}
        assert task_row(db, b, "shared-id")["state"] == {"owner": "b2"}
        forged = {**event("x.forged"), "tenant_id": a.service_tenant_id, "user_id": a.service_user_id}
        reply = call("POST", "/v1/events/commit", b, commit_body(f"k-{uuid.uuid4()}", events=[forged]))
        assert reply.status == 403, reply.body
        call("POST", "/v1/events/commit", b, commit_body(f"k-{uuid.uuid4()}", deleted=["shared-id"]))
    assert task_row(db, a, "shared-id")["state"] == {"owner": "a"} and task_row(db, a, "shared-id")["version"] == 1
    with db.transaction(a) as conn:  # and A's key is still A's single record
        assert conn.execute("select count(*) as n from memory.idempotency_records where key = %s",
                            (key,)).fetchone()["n"] == 1


def test_bad_commits_are_4xx(fx, call):
    me = fx.new_identity(role="agent")
    bad = [
        {"key": "", "expiry_timestamp": 1},
        {"key": "k", "expiry_timestamp": -1},
        {"key": "k\x00", "expiry_timestamp": 1},
        {"key": "k", "expiry_timestamp": 1, "events": [{**event("a.b"), "id": "has space"}]},
        {"key": "k", "expiry_timestamp": 1, "events": [event("a.b")] * 101},
        {"key": "k", "expiry_timestamp": 1, "task_contexts": [{"task_id": "t"}]},  # no event_type
        {"key": "k", "expiry_timestamp": 1, "unknown": 1},
    ]
    for body in bad:
        reply = call("POST", "/v1/events/commit", me, body)
        assert reply.status == 422, (body, reply.body)
    twice = event("a.b")
    reply = call("POST", "/v1/events/commit", me, commit_body(f"k-{uuid.uuid4()}", events=[twice, twice]))
    assert reply.status == 422
    reserved = call("POST", "/v1/events/commit", me, commit_body(f"k-{uuid.uuid4()}",
                                                                  events=[event("soorma.event.dead-lettered")]))
    assert reserved.status == 403


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_commit_whose_publish_failed_is_relayed_by_its_repeat(fx, call, db, nats_url, pepper):
    me = fx.new_identity(role="agent")
    sent = event(f"t{uuid.uuid4().hex[:8]}.relayed")
    key = f"k-{uuid.uuid4()}"
    broken = NatsPublisher(f"nats://127.0.0.1:{closed_port()}", connect_timeout_s=0.5, publish_timeout_s=0.5)
    try:
        down = Mangum(create_app(db, broken), lifespan="off")
        reply = call("POST", "/v1/events/commit", me, commit_body(key, events=[sent], tasks=[task("t-o")]), app=down)
        assert reply.status == 503 and reply.raw["headers"].get("retry-after") == "1", reply.body
    finally:
        broken.close()
    assert outbox_rows(db, me, key) == 1 and task_row(db, me, "t-o") is not None  # committed, waiting in the outbox
    # The SDK's retry of the same request (or the handled event's redelivery re-running the handler): a replay that
    # publishes what was left.
    reply = call("POST", "/v1/events/commit", me, commit_body(key, events=[{**sent, "id": str(uuid.uuid4())}]))
    assert reply.status == 200 and reply.body == {"replayed": True, "event_ids": [sent["id"]], "task_versions": {}}
    assert json.loads(fx.last_message(nats_url, subject_of(me, sent)).data)["id"] == sent["id"]
    assert outbox_rows(db, me, key) == 0


def test_a_goal_answer_in_a_commit_ends_the_goal_when_the_tracker_records_it(fx, call, db):
    """The commit only publishes the answer: the goal ends when the tracker records it from the bus, in bus order
    after the goal's earlier events; another tenant's answer with the same goal id changes nothing."""
    from soorma.events import EventEnvelope
    from soorma.functions.tracker.recording import RECORDED, record_envelope

    user = fx.new_identity(role="user")
    goal_id = call("POST", "/v1/goals", user, {"goal_type": "order.process.requested"}).body["goal_id"]
    agent = fx.new_identity(role="agent", pt=user.platform_tenant_id, st=user.service_tenant_id,
                            su=user.service_user_id)
    stranger = fx.new_identity(role="agent", pt=user.platform_tenant_id)

    def answer(status: str) -> dict:
        return {**event("soorma.goal.result", "action-results", status=status), "correlation_id": goal_id,
                "goal_id": goal_id}

    assert call("POST", "/v1/events/commit", stranger, commit_body(f"k-{uuid.uuid4()}", events=[answer("failed")])
                ).status == 200
    assert call("GET", f"/v1/goals/{goal_id}", user).body["status"] == "running"
    sent = answer("completed")
    assert call("POST", "/v1/events/commit", agent, commit_body(f"k-{uuid.uuid4()}", events=[sent])).status == 200
    assert call("GET", f"/v1/goals/{goal_id}", user).body["status"] == "running"  # published, not yet recorded
    stamped = EventEnvelope.model_validate({**sent, "platform_tenant_id": user.platform_tenant_id,
                                            "tenant_id": user.service_tenant_id, "user_id": user.service_user_id})
    assert record_envelope(db, stamped) == RECORDED  # the tracker's delivery of it
    goal = call("GET", f"/v1/goals/{goal_id}", user).body
    assert goal["status"] == "completed" and goal["result"]["status"] == "completed", goal


def test_a_versioned_write_of_a_deleted_task_is_a_conflict_not_a_new_task(fx, call, db):
    """A run that read a task at version 1 (e.g. from the SDK's cache of what it committed) after another run answered
    and deleted it must not bring it back: 409, nothing written."""
    me = fx.new_identity(role="agent")
    call("POST", "/v1/events/commit", me, commit_body(f"k-{uuid.uuid4()}", tasks=[task("t-gone")]))
    call("POST", "/v1/events/commit", me, commit_body(f"k-{uuid.uuid4()}", deleted=["t-gone"]))
    late = event(f"t{uuid.uuid4().hex[:8]}.answered")
    reply = call("POST", "/v1/events/commit", me, commit_body(f"k-{uuid.uuid4()}", events=[late],
                                                               tasks=[task("t-gone", 1, revived=True)]))
    assert reply.status == 409 and "no longer exists" in reply.body["detail"], reply.body
    assert task_row(db, me, "t-gone") is None


def test_a_commits_events_reach_the_bus_in_the_commits_order(fx, call, nats_url):
    """The relay sends a commit's events at once with one wait for the acks: the stream stores them in the order of
    the commit (their JetStream sequence numbers rise in that order)."""
    me = fx.new_identity(role="agent")
    prefix = f"t{uuid.uuid4().hex[:8]}"
    events = [event(f"{prefix}.step{i}", "action-requests", step=i) for i in range(6)]
    reply = call("POST", "/v1/events/commit", me, commit_body(f"k-{uuid.uuid4()}", events=events))
    assert reply.status == 200 and reply.body["event_ids"] == [e["id"] for e in events], reply.body
    stored = [fx.last_message(nats_url, subject_of(me, e)) for e in events]
    assert [json.loads(m.data)["id"] for m in stored] == [e["id"] for e in events]
    sequences = [m.seq for m in stored]
    assert sequences == sorted(sequences) and len(set(sequences)) == len(sequences), sequences


class FailsAfter:
    """A publisher that stores the first ``stored`` envelopes of each batch through ``inner`` and then fails, as a
    bus failing midway does (:class:`PublishError` with ``published``)."""

    def __init__(self, inner, stored: int) -> None:
        self.inner, self.stored = inner, stored

    def check_size(self, envelope) -> None:
        self.inner.check_size(envelope)

    def publish(self, envelope):
        raise AssertionError("the relay publishes a commit's events together")

    def publish_many(self, envelopes):
        from soorma.functions.gateway.publisher import PublishError

        self.inner.publish_many(envelopes[:self.stored])
        error = PublishError("event bus unavailable: connection lost")
        error.published = self.stored
        raise error


def test_a_publish_failing_midway_leaves_the_unpublished_rows_and_the_repeat_publishes_them(fx, call, db, nats_url,
                                                                                             gateway_publisher):
    me = fx.new_identity(role="agent")
    prefix = f"t{uuid.uuid4().hex[:8]}"
    events = [event(f"{prefix}.step{i}", "action-requests", step=i) for i in range(3)]
    key = f"k-{uuid.uuid4()}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SOORMA_API_KEY_PEPPER", fx.PEPPER)
        midway = Mangum(create_app(db, FailsAfter(gateway_publisher, 1)), lifespan="off")
    reply = call("POST", "/v1/events/commit", me, commit_body(key, events=events), app=midway)
    assert reply.status == 503 and reply.raw["headers"].get("retry-after") == "1", reply.body
    first = fx.last_message(nats_url, subject_of(me, events[0]))
    assert json.loads(first.data)["id"] == events[0]["id"]
    for unpublished in events[1:]:
        with pytest.raises(nats.js.errors.NotFoundError):
            fx.last_message(nats_url, subject_of(me, unpublished))
    with db.transaction(me) as conn:  # the stored event's row is gone, the two others wait in the outbox
        rows = conn.execute("select position, event_id from gateway.event_outbox where commit_key = %s"
                            " order by position", (key,)).fetchall()
    assert [(row["position"], row["event_id"]) for row in rows] == [(1, events[1]["id"]), (2, events[2]["id"])]
    # The repeat (the SDK's retry, or the redelivered event's re-run) publishes the rest, in the commit's order.
    reply = call("POST", "/v1/events/commit", me, commit_body(key, events=events))
    assert reply.status == 200 and reply.body == {"replayed": True, "event_ids": [e["id"] for e in events[1:]],
                                                  "task_versions": {}}
    stored = [fx.last_message(nats_url, subject_of(me, e)) for e in events]
    assert [json.loads(m.data)["id"] for m in stored] == [e["id"] for e in events]
    assert [m.seq for m in stored] == sorted(m.seq for m in stored)
    assert outbox_rows(db, me, key) == 0


def test_publish_many_stores_in_order_with_one_wait_and_reports_duplicates(fx, nats_url, gateway_publisher):
    from soorma.events import EventEnvelope
    from soorma.functions.gateway.publisher import PublishError

    me = fx.new_identity(role="agent")
    prefix = f"t{uuid.uuid4().hex[:8]}"
    envelopes = [EventEnvelope.model_validate({**event(f"{prefix}.e{i}", "action-requests"),
                                               "platform_tenant_id": me.platform_tenant_id}) for i in range(5)]
    assert [r.duplicate for r in gateway_publisher.publish_many(envelopes)] == [False] * 5
    sequences = [fx.last_message(nats_url, subject_of(me, e.model_dump(mode="json"))).seq for e in envelopes]
    assert sequences == sorted(sequences)
    # the same events again: JetStream's duplicate window drops them, and says so for each
    assert [r.duplicate for r in gateway_publisher.publish_many(envelopes)] == [True] * 5
    assert [fx.last_message(nats_url, subject_of(me, e.model_dump(mode="json"))).seq for e in envelopes] == sequences
    broken = NatsPublisher(f"nats://127.0.0.1:{closed_port()}", connect_timeout_s=0.3, publish_timeout_s=0.3)
    try:
        with pytest.raises(PublishError) as failed:
            broken.publish_many(envelopes)
        assert failed.value.published == 0
    finally:
        broken.close()


def test_a_commit_is_held_to_the_tenants_policy_and_a_refusal_applies_nothing(fx, call, db, owner, nats_url):
    """The policy read travels with the idempotency record's create (pipelined): a refused event (type not allowed,
    one action request past the plan's limit) refuses the whole commit, 403 naming the rule, and the rerun of an
    allowed commit is applied."""
    me = fx.new_identity(role="agent")
    owner.execute("insert into gateway.tenants (platform_tenant_id, allowed_event_types, max_actions_per_plan)"
                  " values (%s, %s, 2)", (me.platform_tenant_id, ["work.*"]))
    other = event("other.fact")
    key = f"k-{uuid.uuid4()}"
    reply = call("POST", "/v1/events/commit", me, commit_body(key, events=[event("work.fact"), other],
                                                              tasks=[task("t-p")]))
    assert reply.status == 403 and reply.body["rule"] == "allowed_event_types", reply.body
    assert outbox_rows(db, me, key) == 0 and task_row(db, me, "t-p") is None
    step = {**event("work.step", "action-requests"), "plan_id": "plan-1"}
    reply = call("POST", "/v1/events/commit", me, commit_body(key, events=[step, {**step, "id": str(uuid.uuid4())},
                                                                           {**step, "id": str(uuid.uuid4())}]))
    assert reply.status == 403 and reply.body["rule"] == "max_actions_per_plan", reply.body
    reply = call("POST", "/v1/events/commit", me, commit_body(key, events=[step], tasks=[task("t-p")]))
    assert reply.status == 200 and reply.body["replayed"] is False and reply.body["event_ids"] == [step["id"]]
    assert json.loads(fx.last_message(nats_url, subject_of(me, step)).data)["id"] == step["id"]
