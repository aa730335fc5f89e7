"""The live goal streams' push (soorma.functions.gateway.streams) on the real PostgreSQL as role soorma_app (RLS
applies): events recorded by many tracker invocations at once reach every follower once and in order; another
identity's connection never receives a goal's events, even one whose row names that goal; a gone connection is
dropped; a redelivered event (which takes a number and records nothing) does not hold back the end frame."""

from __future__ import annotations

import json
import threading
import uuid
from typing import Any

import pytest

from soorma.events import EventEnvelope, EventTopic
from soorma.functions.gateway import streams
from soorma.functions.gateway.goals import GOAL_RESULT_EVENT, Goals
from soorma.functions.tracker.recording import record_envelope
from soorma.identity import Identity


@pytest.fixture(autouse=True)
def _grants(pepper):
    """The gateway stamps a delivery grant on the goals' requests, keyed on the pepper."""


class Recorder:
    def publish(self, envelope: EventEnvelope) -> None:
        pass


class FakeConnections:
    """The @connections API: frames per connection; ids in ``gone`` answer 410."""

    def __init__(self, gone: set[str] | None = None) -> None:
        self.frames: dict[str, list[dict[str, Any]]] = {}
        self.gone = gone or set()
        self.lock = threading.Lock()

    def post(self, connection_id: str, data: bytes) -> None:
        if connection_id in self.gone:
            raise streams.ConnectionGone(connection_id)
        with self.lock:
            self.frames.setdefault(connection_id, []).append(json.loads(data))

    def events(self, connection_id: str) -> list[dict[str, Any]]:
        return [f for f in self.frames.get(connection_id, []) if f["type"] == "event"]


def connect(db, identity: Identity) -> str:
    connection_id = uuid.uuid4().hex
    answer = streams.handle_event({"headers": {}, "requestContext": {
        "eventType": "CONNECT", "connectionId": connection_id, "authorizer": identity.as_context()}}, db)
    assert answer["statusCode"] == 200, answer
    return connection_id


def follow(db, api, identity: Identity, connection_id: str, goal_id: str, after: int = 0) -> None:
    answer = streams.handle_event({"body": json.dumps({"action": "follow", "goal_id": goal_id, "after": after}),
                                   "requestContext": {"eventType": "MESSAGE", "connectionId": connection_id,
                                                      "authorizer": identity.as_context()}}, db, api)
    assert answer["statusCode"] == 200, answer


def event(identity: Identity, goal_id: str, n: int, **fields: Any) -> EventEnvelope:
    values: dict[str, Any] = dict(source="test-agent", type="task.progress", topic=EventTopic.TASK_EVENTS,
                                  data={"progress": n / 100, "message": f"step {n}"}, correlation_id=goal_id,
                                  goal_id=goal_id, platform_tenant_id=identity.platform_tenant_id,
                                  tenant_id=identity.service_tenant_id, user_id=identity.service_user_id)
    values.update(fields)
    return EventEnvelope(**values)


def new_goal(db, identity: Identity) -> str:
    return Goals(db, Recorder()).submit(identity, "stream.test.requested", {}).goal_id


def recorded_seqs(db, identity: Identity, goal_id: str) -> list[int]:
    with db.transaction(identity) as conn:
        rows = conn.execute("select seq from gateway.goal_events where goal_id = %s and seq is not null"
                            " order by seq", (goal_id,)).fetchall()
    return [r["seq"] for r in rows]


def test_concurrent_recorders_reach_every_follower_once_and_in_order(db, fx):
    identity = fx.new_identity()
    goal_id = new_goal(db, identity)
    api = FakeConnections()
    followers = [connect(db, identity) for _ in range(3)]
    for connection_id in followers:
        follow(db, api, identity, connection_id, goal_id)

    def recorder(worker: int) -> None:
        for n in range(10):
            assert record_envelope(db, event(identity, goal_id, worker * 10 + n)) == "recorded"
            streams.push(db, identity, goal_id, api)

    threads = [threading.Thread(target=recorder, args=(w,)) for w in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    expected = recorded_seqs(db, identity, goal_id)
    assert len(expected) == 60
    for connection_id in followers:
        assert api.frames[connection_id][0]["type"] == "following"
        assert [f["seq"] for f in api.events(connection_id)] == expected


def test_another_identity_never_receives_the_goals_events(db, fx, owner):
    alice, mallory = fx.new_identity(), fx.new_identity()
    goal_id = new_goal(db, alice)
    api = FakeConnections()
    mallory_connection = connect(db, mallory)
    follow(db, api, mallory, mallory_connection, goal_id)
    assert api.frames[mallory_connection] == [
        {"type": "error", "status": 404, "message": f"goal {goal_id} not found"}]
    # Even a row of hers that names the goal (written past RLS by the owner) gets nothing: pushes run as the goal's
    # identity, and her row is invisible to it.
    owner.execute("update gateway.stream_connections set goal_id = %s where connection_id = %s",
                  (goal_id, mallory_connection))
    alice_connection = connect(db, alice)
    follow(db, api, alice, alice_connection, goal_id)
    record_envelope(db, event(alice, goal_id, 1))
    streams.push(db, alice, goal_id, api)
    assert len(api.events(alice_connection)) == 1
    assert api.frames[mallory_connection] == [
        {"type": "error", "status": 404, "message": f"goal {goal_id} not found"}]
    # And she cannot follow it by naming the connection of another identity: the connection is looked up as hers.
    answer = streams.handle_event({"body": json.dumps({"action": "follow", "goal_id": goal_id}), "requestContext": {
        "eventType": "MESSAGE", "connectionId": alice_connection, "authorizer": mallory.as_context()}}, db, api)
    assert answer["statusCode"] == 200
    assert api.frames[alice_connection][-1]["status"] == 410


def test_a_gone_connection_is_dropped(db, fx):
    identity = fx.new_identity()
    goal_id = new_goal(db, identity)
    api = FakeConnections()
    connection_id = connect(db, identity)
    follow(db, api, identity, connection_id, goal_id)
    api.gone.add(connection_id)
    record_envelope(db, event(identity, goal_id, 1))
    streams.push(db, identity, goal_id, api)
    with db.transaction(identity) as conn:
        assert conn.execute("select 1 from gateway.stream_connections where connection_id = %s",
                            (connection_id,)).fetchone() is None


def test_a_redelivered_event_does_not_hold_back_the_end(db, fx):
    identity = fx.new_identity()
    goal_id = new_goal(db, identity)
    api = FakeConnections()
    connection_id = connect(db, identity)
    follow(db, api, identity, connection_id, goal_id)
    result = event(identity, goal_id, 0, type=GOAL_RESULT_EVENT, topic=EventTopic.ACTION_RESULTS,
                   data={"status": "completed", "result": {"ok": True}})
    assert record_envelope(db, result) == "recorded"
    assert record_envelope(db, result) == "duplicate"  # takes the next number, records nothing
    streams.push(db, identity, goal_id, api)
    frames = list(api.frames[connection_id])
    assert frames[-1]["type"] == "end" and frames[-1]["status"] == "completed"
    assert frames[-1]["last_seq"] == api.events(connection_id)[-1]["seq"]
    # a client resuming from its last seq gets the end again, and nothing else
    follow(db, api, identity, connection_id, goal_id, after=frames[-1]["last_seq"])
    assert [f["type"] for f in api.frames[connection_id][len(frames):]] == ["following", "end"]
