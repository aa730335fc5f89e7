"""Durable timers and waits (:mod:`soorma.functions.shared.timers`, migration 0030) on the real PostgreSQL as role
soorma_app (row-level security applies): fired once, idempotent by key, cancellable only by their owner, claimed by
one of two concurrent firers, and waits that are satisfied by an event recorded before or after they were registered.
"""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from soorma.events import EventEnvelope
from soorma.functions.shared import timers
from soorma.functions.tracker.recording import record_envelope

from .conftest import new_identity


@pytest.fixture(autouse=True)
def _grants(pepper):
    """Firing stamps a delivery grant, keyed on the pepper."""


class Recorder:
    def __init__(self, fail: bool = False) -> None:
        self.published: list[EventEnvelope] = []
        self.fail = fail
        self.lock = threading.Lock()

    def publish(self, envelope: EventEnvelope) -> None:
        if self.fail:
            raise RuntimeError("bus down")
        with self.lock:
            self.published.append(envelope)


def _envelope(event_type: str = "reminder.due", **data) -> dict:
    return {"type": event_type, "topic": "business-facts", "data": data}


def _fire_all(db, publisher) -> list[str]:
    fired: list[str] = []
    while True:
        report = timers.fire_due(db, publisher)
        fired += [t for t, _, _ in report.fired]
        if not report.more:
            return fired


def test_a_due_timer_fires_once_with_its_fixed_event_id(db):
    me = new_identity()
    key = f"k-{uuid.uuid4()}"
    with db.transaction(me) as conn:
        tid = timers.schedule_event(conn, identity=me, due_at=datetime.now(UTC) - timedelta(seconds=1),
                                    envelope={**_envelope(n=1), "id": "evt-fixed-1"}, key=key)
        again = timers.schedule_event(conn, identity=me, due_at=datetime.now(UTC), envelope=_envelope(n=2), key=key)
    assert again == tid  # the same key is the same timer
    bus = Recorder()
    assert tid in _fire_all(db, bus)
    mine = [e for e in bus.published if e.platform_tenant_id == me.platform_tenant_id]
    assert [(e.id, e.data, e.tenant_id, e.user_id) for e in mine] == [
        ("evt-fixed-1", {"n": 1}, me.service_tenant_id, me.service_user_id)]
    assert mine[0].delivery_grant  # a fresh grant for the stored identity
    assert tid not in _fire_all(db, bus)  # fired: never again


def test_a_future_timer_waits_and_a_failed_publish_is_retried(db):
    me = new_identity()
    with db.transaction(me) as conn:
        later = timers.schedule_event(conn, identity=me, due_at=datetime.now(UTC) + timedelta(hours=1),
                                      envelope=_envelope(), key="later")
        now = timers.schedule_event(conn, identity=me, due_at=datetime.now(UTC), envelope=_envelope(), key="now")
    assert now in timers.fire_due(db, Recorder(fail=True)).failed
    fired = _fire_all(db, Recorder())
    assert now in fired and later not in fired
    assert timers.next_due(db) is not None


def test_another_tenant_cannot_cancel_or_see_a_timer(db):
    a, b = new_identity(), new_identity()
    with db.transaction(a) as conn:
        tid = timers.schedule_event(conn, identity=a, due_at=datetime.now(UTC) + timedelta(seconds=1),
                                    envelope=_envelope(), key="shared-name")
    with db.transaction(b) as conn:
        assert timers.cancel_timer(conn, identity=b, key="shared-name") is False
        assert conn.execute("select count(*) as n from scheduler.timers").fetchone()["n"] == 0
        # b's envelope may not claim a's identity either
        with pytest.raises(ValueError):
            timers.schedule_event(conn, identity=b, due_at=datetime.now(UTC),
                                  envelope={**_envelope(), "platform_tenant_id": a.platform_tenant_id}, key="x")
    with db.transaction(a) as conn:
        assert timers.cancel_timer(conn, identity=a, key="shared-name") is True
        assert timers.cancel_timer(conn, identity=a, key="shared-name") is False
    assert tid not in _fire_all(db, Recorder())


def test_two_concurrent_firers_publish_each_timer_once(db):
    me = new_identity()
    with db.transaction(me) as conn:
        ids = {timers.schedule_event(conn, identity=me, due_at=datetime.now(UTC), envelope=_envelope(i=i),
                                     key=f"c{i}") for i in range(60)}
    bus = Recorder()
    results: list[list[str]] = [[], []]

    def firer(slot: int) -> None:
        results[slot] = _fire_all(db, bus)

    threads = [threading.Thread(target=firer, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    mine = [e.data["i"] for e in bus.published if e.platform_tenant_id == me.platform_tenant_id]
    assert sorted(mine) == list(range(60))
    assert ids <= set(results[0]) | set(results[1]) and not set(results[0]) & set(results[1])


def _goal_event(me, event_type: str, correlation_id: str, **data) -> EventEnvelope:
    return EventEnvelope(type=event_type, topic="action-results", data=data, correlation_id=correlation_id,
                         goal_id=str(uuid.uuid4()), platform_tenant_id=me.platform_tenant_id,
                         tenant_id=me.service_tenant_id, user_id=me.service_user_id)


def _outcome(bus: Recorder, wait_id: str) -> list[dict]:
    return [e.data["wait"] for e in bus.published if e.data.get("wait", {}).get("wait_id") == wait_id]


def test_a_wait_is_satisfied_by_an_event_recorded_before_it(db):
    me = new_identity()
    corr = str(uuid.uuid4())
    assert record_envelope(db, _goal_event(me, "approval.given", corr, ok=True)) == "recorded"
    with db.transaction(me) as conn:
        wait = timers.register_wait(conn, identity=me, correlation_id=corr, event_type="approval.given",
                                    timeout_s=3600, resume=_envelope("approval.resume"))
    assert wait.status == "satisfied"
    bus = Recorder()
    _fire_all(db, bus)
    [outcome] = _outcome(bus, wait.wait_id)
    assert outcome["status"] == "satisfied" and outcome["event_data"] == {"ok": True}


def test_a_wait_is_satisfied_by_an_event_recorded_after_it_and_fires_once(db):
    me, other = new_identity(), new_identity()
    corr = str(uuid.uuid4())
    with db.transaction(me) as conn:
        wait = timers.register_wait(conn, identity=me, correlation_id=corr, event_type="approval.given",
                                    timeout_s=3600, resume=_envelope("approval.resume"))
    assert wait.status == "waiting"
    record_envelope(db, _goal_event(other, "approval.given", corr))  # another tenant's event satisfies nothing
    bus = Recorder()
    _fire_all(db, bus)
    assert _outcome(bus, wait.wait_id) == []
    record_envelope(db, _goal_event(me, "approval.given", corr, ok=1))
    record_envelope(db, _goal_event(me, "approval.given", corr, ok=2))  # a second match changes nothing
    _fire_all(db, bus)
    [outcome] = _outcome(bus, wait.wait_id)
    assert outcome["status"] == "satisfied" and outcome["event_data"] == {"ok": 1}


def test_a_wait_times_out_and_a_late_event_changes_nothing(db):
    me = new_identity()
    corr = str(uuid.uuid4())
    with db.transaction(me) as conn:
        wait = timers.register_wait(conn, identity=me, correlation_id=corr, event_type="approval.given",
                                    timeout_s=0.01, resume=_envelope("approval.resume"))
    import time

    time.sleep(0.05)
    bus = Recorder()
    _fire_all(db, bus)
    record_envelope(db, _goal_event(me, "approval.given", corr))
    _fire_all(db, bus)
    assert [o["status"] for o in _outcome(bus, wait.wait_id)] == ["timed_out"]
    with db.transaction(me) as conn:
        assert conn.execute("select status from scheduler.waits where wait_id = %s",
                            (wait.wait_id,)).fetchone()["status"] == "timed_out"
