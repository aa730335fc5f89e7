"""The goal long-poll (``GET /v1/goals/{id}?wait=``, :meth:`Goals.wait_until_final`) wakes on the goal's completion:
the ``soorma_goal_done`` notification of migration 0019, on the real PostgreSQL as role soorma_app (RLS applies).

A wait is shown by the goal reads it makes (counted) rather than by timings: the goal is completed right after the
waiter's read that follows its ``LISTEN``; with a re-check interval longer than the test, a wait that ends with the
goal completed without another status read, long before its deadline, was woken by the notification (the goal's own
notification ends the wait at once: :meth:`Goals.get` then reads the goal it answers with)."""

from __future__ import annotations

import time
from typing import Any, Callable

import psycopg
import pytest
from fastapi import HTTPException

from soorma.events import EventEnvelope
from soorma.functions.gateway.goals import GOAL_DONE_CHANNEL, GOAL_RESULT_EVENT, Goals
from soorma.functions.tracker.app import process_batch
from soorma.identity import Identity
from soorma.testing import sqs_batch

#: Longer than any test here runs: a wait that ends sooner was not ended by a re-check or its deadline.
NEVER_S = 60.0
#: The waits' deadline; one that ends before half of it did not end at its deadline.
DEADLINE_S = NEVER_S / 2
#: The waiter's reads: 1 before it listens (a goal already final is answered without a listener), 2 once it listens.
LISTENING = 2


@pytest.fixture(autouse=True)
def _grants(pepper):
    """The gateway stamps a delivery grant on the goals' requests, keyed on the pepper."""


class Recorder:
    """A publisher that accepts everything (the goals' requests are not consumed here)."""

    def __init__(self) -> None:
        self.published: list[EventEnvelope] = []

    def publish(self, envelope: EventEnvelope) -> None:
        self.published.append(envelope)


class CountingGoals(Goals):
    """:class:`Goals` counting its status reads; ``after_read[n]()`` runs once the n-th read (1-based) returned."""

    def __init__(self, *args: Any, after_read: dict[int, Callable[[], Any]] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reads = 0
        self.after_read = after_read or {}

    def status(self, identity: Identity, goal_id: str) -> str | None:
        state = super().status(identity, goal_id)
        self.reads += 1
        if self.reads in self.after_read:
            self.after_read[self.reads]()
        return state


class NoListener:
    """The real :class:`Database` except that ``listen`` cannot connect."""

    def __init__(self, db) -> None:
        self._db = db

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)

    def listen(self, channel: str):
        raise psycopg.OperationalError("connection refused (test)")


def submit(db, identity: Identity) -> str:
    submitted = Goals(db, Recorder()).submit(identity, "poll.goal", {})
    assert submitted.status == "running", submitted
    return submitted.goal_id


def complete(db, identity: Identity, goal_id: str, data: dict[str, Any] | None = None) -> None:
    """Record the goal's result as the tracker does when the bridge delivers it."""
    result = EventEnvelope(source="worker", type=GOAL_RESULT_EVENT, topic="action-results",
                           data={"answer": 42} if data is None else data, correlation_id=goal_id,
                           goal_id=goal_id, trace_id=goal_id, platform_tenant_id=identity.platform_tenant_id,
                           tenant_id=identity.service_tenant_id, user_id=identity.service_user_id)
    assert process_batch(db, sqs_batch(result, consumer="tracker")) == {"batchItemFailures": []}


def listeners(owner) -> int:
    """Open connections of soorma_app whose last statement was the LISTEN (a waiting long-poll's)."""
    return owner.execute(
        "select count(*) as n from pg_stat_activity where usename = 'soorma_app' and query ilike %s",
        (f"listen%{GOAL_DONE_CHANNEL}%",),
    ).fetchone()[0]


def no_listener_left(owner) -> bool:
    """Whether every listener connection is gone (a closed backend leaves pg_stat_activity a moment later)."""
    for _ in range(100):
        if listeners(owner) == 0:
            return True
        time.sleep(0.05)
    return False


def test_a_waiter_wakes_on_the_completion_itself(db, owner, fx):
    identity = fx.new_identity()
    goal_id = submit(db, identity)
    goals = CountingGoals(db, Recorder(), recheck_s=NEVER_S,
                          after_read={LISTENING: lambda: complete(db, identity, goal_id)})
    started = time.monotonic()
    goal = goals.get(identity, goal_id, wait_s=DEADLINE_S)
    assert time.monotonic() - started < DEADLINE_S / 2  # not at the deadline
    assert goal["status"] == "completed" and goal["result"] == {"answer": 42}
    assert goals.reads == LISTENING  # no status read after the notification; the next re-check was NEVER_S away
    assert no_listener_left(owner)


def test_a_goal_already_final_is_answered_without_a_listener(db, fx):
    identity = fx.new_identity()
    goal_id = submit(db, identity)
    complete(db, identity, goal_id)
    goals = CountingGoals(NoListener(db), Recorder(), recheck_s=NEVER_S)
    assert goals.get(identity, goal_id, wait_s=DEADLINE_S)["status"] == "completed"
    assert goals.reads == 1


def test_another_tenants_completion_neither_wakes_nor_reaches_the_waiter(db, owner, fx):
    waiter, other = fx.new_identity(), fx.new_identity()
    mine, theirs = submit(db, waiter), submit(db, other)
    with db.listen(GOAL_DONE_CHANNEL) as witness:  # shows that the other goal's notification was sent meanwhile
        goals = CountingGoals(db, Recorder(), recheck_s=NEVER_S,
                              after_read={LISTENING: lambda: complete(db, other, theirs)})
        goal = goals.get(waiter, mine, wait_s=1.0)
        heard = [notice.payload for notice in witness.notifies(timeout=5, stop_after=1)]
    assert heard == [theirs]  # sent while the waiter listened, and the payload is the bare goal id
    assert goal["status"] == "running"  # its own goal never ended: the wait ran to its deadline...
    assert goals.reads == LISTENING + 1  # ... where it read once more; the other goal's notice caused no read
    with pytest.raises(HTTPException) as refused:  # and that id gives the waiter's tenant nothing
        goals.get(waiter, theirs)
    assert refused.value.status_code == 404
    assert no_listener_left(owner)


def test_a_missed_notification_is_caught_by_the_re_check(db, owner, fx):
    identity = fx.new_identity()
    goal_id = submit(db, identity)

    def complete_silently() -> None:  # as if the notification were lost: the owner ends it with triggers off
        with owner.transaction():
            owner.execute("set local session_replication_role = replica")
            owner.execute("update gateway.goals set status = 'completed', completed_at = now() where goal_id = %s",
                          (goal_id,))

    goals = CountingGoals(db, Recorder(), recheck_s=0.2, after_read={LISTENING: complete_silently})
    started = time.monotonic()
    assert goals.get(identity, goal_id, wait_s=DEADLINE_S)["status"] == "completed"
    assert time.monotonic() - started < DEADLINE_S / 2
    assert goals.reads == LISTENING + 1  # the first re-check, long before the deadline
    assert no_listener_left(owner)


def test_without_a_listener_the_re_check_still_ends_the_wait(db, fx):
    identity = fx.new_identity()
    goal_id = submit(db, identity)
    goals = CountingGoals(NoListener(db), Recorder(), recheck_s=0.2,
                          after_read={LISTENING: lambda: complete(db, identity, goal_id)})
    started = time.monotonic()
    assert goals.get(identity, goal_id, wait_s=DEADLINE_S)["status"] == "completed"
    assert time.monotonic() - started < DEADLINE_S / 2
    assert goals.reads == LISTENING + 1


def test_the_listener_is_closed_when_the_wait_fails(db, owner, fx):
    identity = fx.new_identity()
    goal_id = submit(db, identity)

    def fail() -> None:
        assert listeners(owner) == 1  # it was listening
        raise RuntimeError("the database went away (test)")

    goals = CountingGoals(db, Recorder(), recheck_s=NEVER_S, after_read={LISTENING: fail})
    with pytest.raises(RuntimeError):
        goals.get(identity, goal_id, wait_s=DEADLINE_S)
    assert no_listener_left(owner)


def test_each_final_state_is_announced_once_with_the_goal_id_only(db, fx):
    identity = fx.new_identity()
    with db.listen(GOAL_DONE_CHANNEL) as witness:
        cancelled, failed, completed = submit(db, identity), submit(db, identity), submit(db, identity)
        Goals(db, Recorder()).cancel(identity, cancelled)
        complete(db, identity, failed, {"success": False, "error": "out of stock"})
        complete(db, identity, completed)
        complete(db, identity, completed, {"answer": 43})  # a duplicate result changes nothing: no second notice
        heard = [(n.channel, n.payload) for n in witness.notifies(timeout=1)]
    # submitting (pending → running) announced nothing
    assert heard == [(GOAL_DONE_CHANNEL, cancelled), (GOAL_DONE_CHANNEL, failed), (GOAL_DONE_CHANNEL, completed)]
