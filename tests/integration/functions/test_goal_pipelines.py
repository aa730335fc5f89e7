"""The two database transactions at a goal's end send their statements in libpq's pipeline mode (seen per statement
as ``PQpipelineStatus``), so statements travel together instead of one round trip each: the tracker's recording of
the goal's answer (which ends the goal and wakes the long-poll) and the goal read that answers the long-poll
(``GET /v1/goals/{id}``, :meth:`Goals.get`); and the tracker ends a goal before it stores its answer for the event
subscriptions. On the real PostgreSQL as role soorma_app."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

import psycopg
import pytest
from fastapi import HTTPException
from psycopg import pq

from soorma.events import EventEnvelope
from soorma.functions.gateway import event_streams
from soorma.functions.gateway.goals import Goals
from soorma.functions.tracker.app import process_batch
from soorma.functions.tracker.recording import DUPLICATE, RECORDED, record_envelope
from soorma.testing import sqs_batch


@pytest.fixture(autouse=True)
def _grants(pepper):
    """The gateway stamps a delivery grant on the goals' requests, keyed on the pepper."""


class Recorder:
    def publish(self, envelope: EventEnvelope) -> None:
        pass


class WatchedDatabase:
    """The real :class:`Database`; ``statements`` lists (SQL, sent in pipeline mode) for its transactions."""

    def __init__(self, db) -> None:
        self._db = db
        self.statements: list[tuple[str, bool]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)

    @contextmanager
    def transaction(self, identity=None, **kwargs) -> Iterator[Any]:
        with self._db.transaction(identity, **kwargs) as conn:
            execute = conn.execute

            def watched(query: Any, *args: Any, **kw: Any) -> Any:
                piped = conn.pgconn.pipeline_status != pq.PipelineStatus.OFF
                self.statements.append((str(query), piped))
                return execute(query, *args, **kw)

            conn.execute = watched
            try:
                yield conn
            finally:
                del conn.execute


def test_the_goal_and_its_tasks_events_and_inputs_are_read_in_one_pipeline(db, fx):
    identity = fx.new_identity()
    goal_id = Goals(db, Recorder()).submit(identity, "read.goal", {}).goal_id
    request = EventEnvelope(source="worker", type="sub.task", topic="action-requests", data={}, correlation_id="t-1",
                            goal_id=goal_id, trace_id=goal_id, platform_tenant_id=identity.platform_tenant_id,
                            tenant_id=identity.service_tenant_id, user_id=identity.service_user_id)
    assert process_batch(db, sqs_batch(request, consumer="tracker")) == {"batchItemFailures": []}
    watched = WatchedDatabase(db)
    goal = Goals(watched, Recorder()).get(identity, goal_id)
    assert goal["status"] == "running" and goal["events"] == 1 and goal["input_requests"] == []
    assert [task["task_id"] for task in goal["tasks"]] == ["t-1"]
    reads = [(query.split(" from ")[1].split()[0], piped) for query, piped in watched.statements]
    assert reads == [("gateway.goals", True), ("gateway.goal_tasks", True), ("gateway.goal_events", True),
                     ("gateway.goal_input_requests", True)], watched.statements


def test_a_goal_the_caller_cannot_see_is_still_404(db, fx):
    owner, other = fx.new_identity(), fx.new_identity()
    goal_id = Goals(db, Recorder()).submit(owner, "read.goal", {}).goal_id
    with pytest.raises(HTTPException) as refused:
        Goals(db, Recorder()).get(other, goal_id)
    assert refused.value.status_code == 404


def test_the_tracker_records_a_goal_answer_in_one_pipeline(db, fx):
    identity = fx.new_identity()
    goal_id = Goals(db, Recorder()).submit(identity, "read.goal", {}).goal_id
    answer = EventEnvelope(source="worker", type="soorma.goal.result", topic="action-results", data={"ok": True},
                           correlation_id=goal_id, goal_id=goal_id, trace_id=goal_id,
                           platform_tenant_id=identity.platform_tenant_id, tenant_id=identity.service_tenant_id,
                           user_id=identity.service_user_id)
    watched = WatchedDatabase(db)
    assert record_envelope(watched, answer) == RECORDED
    assert watched.statements and all(piped for _, piped in watched.statements), watched.statements
    goal = Goals(db, Recorder()).get(identity, goal_id)
    assert goal["status"] == "completed" and goal["result"] == {"ok": True} and goal["events"] == 1
    assert record_envelope(watched, answer) == DUPLICATE  # a redelivery changes nothing


def test_the_tracker_ends_the_goal_before_it_stores_the_event_for_subscriptions(db, fx, monkeypatch):
    """The goal's answer is recorded (and the goal ended, which wakes the long-poll) before the event subscriptions'
    store; when that second store fails the record is redelivered, and the redelivery completes it without ending
    the goal a second time."""
    identity = fx.new_identity()
    goal_id = Goals(db, Recorder()).submit(identity, "read.goal", {}).goal_id
    answer = EventEnvelope(source="worker", type="soorma.goal.result", topic="action-results", data={"ok": True},
                           correlation_id=goal_id, goal_id=goal_id, trace_id=goal_id,
                           platform_tenant_id=identity.platform_tenant_id, tenant_id=identity.service_tenant_id,
                           user_id=identity.service_user_id)
    store = event_streams.record
    monkeypatch.setattr(event_streams, "record", lambda *args: (_ for _ in ()).throw(
        psycopg.OperationalError("the database went away (test)")))
    batch = sqs_batch(answer, consumer="tracker")
    failed = process_batch(db, batch)["batchItemFailures"]
    assert len(failed) == 1  # redelivered...
    goal = Goals(db, Recorder()).get(identity, goal_id)
    assert goal["status"] == "completed" and goal["events"] == 1  # ... but the goal had ended already
    monkeypatch.setattr(event_streams, "record", store)
    assert process_batch(db, batch) == {"batchItemFailures": []}  # the redelivery
    with db.transaction(identity) as conn:
        stored = conn.execute("select event_id from gateway.stream_events where event_id = %s",
                              (answer.id,)).fetchall()
    assert len(stored) == 1
    assert Goals(db, Recorder()).get(identity, goal_id)["events"] == 1
