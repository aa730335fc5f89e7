"""``POST /v1/events/commits`` (issue 19): the handler runs of one batch committed in one request and one
transaction, through the gateway's Mangum handler on the real PostgreSQL (row-level security) and NATS JetStream."""

from __future__ import annotations

import json
import uuid

import nats.js.errors
import pytest

from soorma._current import MAX_BATCH_COMMITS
from tests.integration.functions.test_handler_commit import (  # the single commit's helpers: one body shape
    commit_body,
    event,
    outbox_rows,
    subject_of,
    task,
    task_row,
)


@pytest.fixture
def call(fx, gateway):
    def _call(method, path, identity, body=None):
        return fx.invoke(gateway, fx.http_event(method, path, identity=identity, body=body))

    return _call


def key() -> str:
    return f"soorma.commit.order-processor#{uuid.uuid4().hex}"


def test_two_result_runs_commit_in_order_in_one_request(fx, call, db, nats_url):
    """The two results of one parent: the second run expects the version the first one's write will have."""
    me = fx.new_identity(role="agent")
    assert call("POST", "/v1/events/commit", me, commit_body(key(), tasks=[task("t-b", pending=2)])).status == 200
    progress = event(f"t{uuid.uuid4().hex[:8]}.progress", "task-events", progress=0.5)
    answer = event(f"t{uuid.uuid4().hex[:8]}.completed", "action-results", done=True)
    first, second = key(), key()
    reply = call("POST", "/v1/events/commits", me, {"commits": [
        commit_body(first, events=[progress], tasks=[task("t-b", 1, pending=1)]),
        commit_body(second, events=[answer], deleted=["t-b"]),
    ]})
    assert reply.status == 200, reply.body
    assert reply.body == {"results": [
        {"replayed": False, "event_ids": [progress["id"]], "task_versions": {"t-b": 2}},
        {"replayed": False, "event_ids": [answer["id"]], "task_versions": {}},
    ]}
    assert task_row(db, me, "t-b") is None
    for sent in (progress, answer):
        assert json.loads(fx.last_message(nats_url, subject_of(me, sent)).data)["id"] == sent["id"]
    assert outbox_rows(db, me, first) == outbox_rows(db, me, second) == 0
    # The same request again (the SDK's retry): every commit is a replay, nothing is published again.
    seq = fx.last_message(nats_url, subject_of(me, answer)).seq
    again = call("POST", "/v1/events/commits", me, {"commits": [commit_body(first, events=[progress]),
                                                                 commit_body(second, events=[answer])]})
    assert again.status == 200 and [r["replayed"] for r in again.body["results"]] == [True, True]
    assert fx.last_message(nats_url, subject_of(me, answer)).seq == seq


def test_a_conflict_in_a_later_commit_applies_nothing_of_the_batch(fx, call, db, nats_url):
    me = fx.new_identity(role="agent")
    assert call("POST", "/v1/events/commit", me, commit_body(key(), tasks=[task("t-x", a=1)])).status == 200
    early = event(f"t{uuid.uuid4().hex[:8]}.first")
    first, second = key(), key()
    reply = call("POST", "/v1/events/commits", me, {"commits": [
        commit_body(first, events=[early], tasks=[task("t-x", 1, a=2)]),
        commit_body(second, tasks=[task("t-x", 1, a=3)]),  # read version 1, but the first moved it to 2
    ]})
    assert reply.status == 409, reply.body
    assert reply.body["detail"].startswith("commits[1]: ")
    assert task_row(db, me, "t-x")["version"] == 1 and task_row(db, me, "t-x")["state"] == {"a": 1}
    assert outbox_rows(db, me, first) == 0
    with pytest.raises(nats.js.errors.NotFoundError):
        fx.last_message(nats_url, subject_of(me, early))
    with db.transaction(me) as conn:  # the first run's key was not taken: its re-run commits
        assert conn.execute("select count(*) as n from memory.idempotency_records where key = %s",
                            (first,)).fetchone()["n"] == 0


def test_a_batch_cannot_act_for_another_tenant(fx, call, db):
    """Tenant B's batch naming A's task id and forging A's identity on an event: B's own rows, or 403, nothing of A's."""
    a = fx.new_identity(role="agent")
    b = fx.new_identity(role="agent", pt=a.platform_tenant_id)
    assert call("POST", "/v1/events/commit", a, commit_body(key(), tasks=[task("mine", owner="a")])).status == 200
    forged = {**event("x.forged"), "tenant_id": a.service_tenant_id, "user_id": a.service_user_id}
    reply = call("POST", "/v1/events/commits", b, {"commits": [commit_body(key(), deleted=["mine"]),
                                                               commit_body(key(), events=[forged])]})
    assert reply.status == 403 and reply.body["detail"].startswith("commits[1]: ")
    reply = call("POST", "/v1/events/commits", b, {"commits": [commit_body(key(), tasks=[task("mine", 1, owner="b")])]})
    assert reply.status == 409, reply.body  # B has no such task (A's is invisible): a versioned write is refused
    assert task_row(db, a, "mine")["state"] == {"owner": "a"} and task_row(db, a, "mine")["version"] == 1


def test_bad_batches_are_4xx(fx, call):
    me = fx.new_identity(role="agent")
    same = key()
    for body in ({"commits": []}, {"commits": [commit_body(same), commit_body(same)]}, {},
                 {"commits": [commit_body(key()) for _ in range(MAX_BATCH_COMMITS + 1)]},
                 {"commits": [{"key": "k"}]}, {"commits": "x"}):
        reply = call("POST", "/v1/events/commits", me, body)
        assert reply.status == 422, (body, reply.status, reply.body)
