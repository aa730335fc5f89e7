"""Event subscriptions on the live stream (soorma.functions.gateway.event_streams; issue 17, soorma-core's
EventClient from outside the platform) on the real PostgreSQL as role soorma_app (RLS applies): events the tracker
records from many invocations at once reach every subscriber once and in order; topic and type filters; resume
after a seq; the delivery grant is never streamed; another identity (another platform tenant, or another user of
the same tenant) never receives an event, even through a row written past RLS or a foreign connection id; bad
subscriptions are 400 error frames."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

from soorma.events import EventEnvelope, EventTopic
from soorma.functions.gateway import event_streams, streams
from soorma.functions.tracker.recording import process_batch
from soorma.identity import Identity
from soorma.testing import sqs_batch

from .test_goal_streams_push import FakeConnections, connect


def subscribe(db, api, identity: Identity, connection_id: str, **fields: Any) -> None:
    answer = streams.handle_event({"body": json.dumps({"action": "subscribe", **fields}),
                                   "requestContext": {"eventType": "MESSAGE", "connectionId": connection_id,
                                                      "authorizer": identity.as_context()}}, db, api)
    assert answer["statusCode"] == 200, answer


def fact(identity: Identity, n: int, *, type_: str = "order.placed", topic: EventTopic = EventTopic.BUSINESS_FACTS,
         **fields: Any) -> EventEnvelope:
    return EventEnvelope(source="test-client", type=type_, topic=topic, data={"n": n},
                         platform_tenant_id=identity.platform_tenant_id, tenant_id=identity.service_tenant_id,
                         user_id=identity.service_user_id, **fields)


def record(db, *envelopes: EventEnvelope, api: FakeConnections) -> None:
    """The tracker's batch, with its push going to ``api``."""
    streams._api[:] = [api]
    try:
        assert process_batch(db, sqs_batch(*envelopes, consumer="tracker")) == {"batchItemFailures": []}
    finally:
        streams._api.clear()


def test_concurrent_recorders_reach_every_subscriber_once_and_in_order(db, fx):
    identity = fx.new_identity()
    api = FakeConnections()
    subscribers = [connect(db, identity) for _ in range(3)]
    for connection_id in subscribers:
        subscribe(db, api, identity, connection_id)

    def recorder(worker: int) -> None:
        for n in range(10):
            assert event_streams.record(db, identity, fact(identity, worker * 10 + n))
            event_streams.push(db, identity, api)

    threads = [threading.Thread(target=recorder, args=(w,)) for w in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with db.transaction(identity) as conn:
        expected = [r["seq"] for r in conn.execute("select seq from gateway.stream_events order by seq").fetchall()]
    assert len(expected) == 60
    for connection_id in subscribers:
        assert api.frames[connection_id][0]["type"] == "subscribed"
        assert [f["seq"] for f in api.events(connection_id)] == expected
        assert sorted(f["envelope"]["data"]["n"] for f in api.events(connection_id)) == list(range(60))


def test_filters_resume_and_no_grant(db, fx):
    identity = fx.new_identity()
    api = FakeConnections()
    by_type, by_topic, everything = (connect(db, identity) for _ in range(3))
    subscribe(db, api, identity, by_type, event_types=["order.placed"])
    subscribe(db, api, identity, by_topic, topics=["action-results"])
    subscribe(db, api, identity, everything)
    placed = fact(identity, 1, delivery_grant="secret-grant")
    other = fact(identity, 2, type_="order.cancelled")
    answer = fact(identity, 3, type_="order.done", topic=EventTopic.ACTION_RESULTS, correlation_id="c-1")
    record(db, placed, other, answer, placed, api=api)  # placed twice: a redelivery streams once
    assert [f["envelope"]["id"] for f in api.events(by_type)] == [placed.id]
    assert [f["envelope"]["id"] for f in api.events(by_topic)] == [answer.id]
    assert [f["envelope"]["id"] for f in api.events(everything)] == [placed.id, other.id, answer.id]
    assert "secret-grant" not in json.dumps(api.frames)
    got = api.events(everything)[0]["envelope"]
    assert EventEnvelope.model_validate(got).type == "order.placed" and got["data"] == {"n": 1}
    # a new connection resumes after the first event: the two later ones, nothing before
    again = connect(db, identity)
    subscribe(db, api, identity, again, after=api.events(everything)[0]["seq"])
    assert [f["envelope"]["id"] for f in api.events(again)] == [other.id, answer.id]
    # no "after": from now on only
    fresh = connect(db, identity)
    subscribe(db, api, identity, fresh)
    assert api.events(fresh) == [] and api.frames[fresh][0]["last_seq"] == api.events(everything)[-1]["seq"]


@pytest.mark.parametrize("other", ["platform tenant", "user of the same tenant"])
def test_another_identity_never_receives_the_events(db, fx, owner, other):
    alice = fx.new_identity()
    mallory = (fx.new_identity() if other == "platform tenant" else
               fx.new_identity(pt=alice.platform_tenant_id, st=alice.service_tenant_id))
    api = FakeConnections()
    mallory_connection = connect(db, mallory)
    subscribe(db, api, mallory, mallory_connection, after=0)
    alice_connection = connect(db, alice)
    subscribe(db, api, alice, alice_connection, after=0)
    # Even a row of hers rewritten past RLS to look like alice's subscription gets nothing: pushes run as the
    # events' identity and her row keeps her identity columns.
    owner.execute("update gateway.stream_connections set event_cursor = 0, topics = null where connection_id = %s",
                  (mallory_connection,))
    secret = fact(alice, 42)
    record(db, secret, api=api)
    assert [f["envelope"]["id"] for f in api.events(alice_connection)] == [secret.id]
    assert api.events(mallory_connection) == []
    # Her own event does reach her: the silence above is the isolation, not a dead stream.
    own = fact(mallory, 7)
    record(db, own, api=api)
    assert [f["envelope"]["id"] for f in api.events(mallory_connection)] == [own.id]
    assert own.id not in json.dumps(api.frames[alice_connection])
    if other == "platform tenant":
        # Nor can she subscribe alice's connection (connection ids are API Gateway's, but if one leaked): it is
        # looked up within her platform tenant, 410.
        subscribe(db, api, mallory, alice_connection, after=0)
        assert api.frames[alice_connection][-1] == {"type": "error", "status": 410,
                                                    "message": "the connection is not registered; reconnect"}


@pytest.mark.parametrize("message,status", [
    ({"topics": 5}, 400), ({"topics": [""]}, 400), ({"event_types": ["x" * 300]}, 400),
    ({"topics": [f"t{i}" for i in range(51)]}, 400), ({"after": -1}, 400), ({"after": "1"}, 400),
    ({"after": True}, 400), ({"after": 10**9}, 400)])
def test_bad_subscriptions_are_error_frames(db, fx, message, status):
    identity = fx.new_identity()
    api = FakeConnections()
    connection_id = connect(db, identity)
    subscribe(db, api, identity, connection_id, **message)
    frame = api.frames[connection_id][-1]
    assert frame["type"] == "error" and frame["status"] == status, frame


def test_a_gone_subscriber_is_dropped(db, fx):
    identity = fx.new_identity()
    connection_id = connect(db, identity)
    subscribe(db, FakeConnections(), identity, connection_id)
    record(db, fact(identity, 1), api=FakeConnections(gone={connection_id}))
    with db.transaction(identity) as conn:
        assert conn.execute("select 1 from gateway.stream_connections where connection_id = %s",
                            (connection_id,)).fetchone() is None


def test_an_unknown_action_names_both(db, fx):
    identity = fx.new_identity()
    api = FakeConnections()
    connection_id = connect(db, identity)
    subscribe(db, api, identity, connection_id)
    streams.handle_event({"body": json.dumps({"action": "listen"}), "requestContext": {
        "eventType": "MESSAGE", "connectionId": connection_id, "authorizer": identity.as_context()}}, db, api)
    assert api.frames[connection_id][-1]["status"] == 400 and "subscribe" in api.frames[connection_id][-1]["message"]


def test_a_push_is_due_only_when_the_identity_has_a_subscriber(db, fx):
    identity, bystander = fx.new_identity(), fx.new_identity()
    assert event_streams.record(db, identity, fact(identity, 1)) is False  # nobody listens: the tracker skips push
    connection_id = connect(db, bystander)
    subscribe(db, FakeConnections(), bystander, connection_id)
    assert event_streams.record(db, identity, fact(identity, 2)) is False  # another identity's subscriber is none
    mine = connect(db, identity)
    api = FakeConnections()
    subscribe(db, api, identity, mine, after=0)  # the backlog kept while nobody listened
    assert [f["envelope"]["data"]["n"] for f in api.events(mine)] == [1, 2]
    again = fact(identity, 3)
    assert event_streams.record(db, identity, again) is True
    assert event_streams.record(db, identity, again) is False  # a redelivery is stored once
