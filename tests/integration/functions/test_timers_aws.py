"""The AWS path of durable timers: a timer arms an EventBridge Scheduler one-time schedule (moto) that targets the
gateway at its due time and deletes itself; a failed arm rolls the timer back with the caller's transaction; and the
gateway's entry point, invoked with the scheduler's input, fires the due timers onto the real JetStream."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from moto import mock_aws

from soorma.functions.shared import timers

from .conftest import last_message, new_identity

ACCOUNT_FUNCTIONS = "arn:aws:lambda:us-east-1:123456789012:function:"
ROLE = "arn:aws:iam::123456789012:role/soorma-timers"


@pytest.fixture
def scheduler(monkeypatch, pepper):
    """moto's EventBridge Scheduler with the timers' group, and the gateway's settings as the CDK app sets them."""
    monkeypatch.setenv("SOORMA_SCHEDULER_TARGET_ARN", ACCOUNT_FUNCTIONS)
    monkeypatch.setenv("SOORMA_SCHEDULER_ROLE_ARN", ROLE)
    monkeypatch.setenv("SOORMA_SCHEDULER_GROUP", "soorma-timers")
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "soorma-gateway")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    with mock_aws():
        client = boto3.client("scheduler", region_name="us-east-1")
        client.create_schedule_group(Name="soorma-timers")
        monkeypatch.setattr(timers, "_scheduler_client", lambda: client)
        yield client


def test_a_timer_arms_a_one_time_schedule_that_invokes_the_gateway(db, scheduler):
    me = new_identity()
    due = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=30)
    with db.transaction(me) as conn:
        tid = timers.schedule_event(conn, identity=me, due_at=due, key="aws-1",
                                    envelope={"type": "reminder.due", "topic": "business-facts"})
    schedule = scheduler.get_schedule(Name=f"soorma-timer-{tid}", GroupName="soorma-timers")
    assert schedule["ScheduleExpression"] == f"at({due.replace(tzinfo=None).isoformat()})"
    assert schedule["ScheduleExpressionTimezone"] == "UTC"
    assert schedule["Target"]["Arn"] == ACCOUNT_FUNCTIONS + "soorma-gateway"
    assert schedule["Target"]["RoleArn"] == ROLE
    assert json.loads(schedule["Target"]["Input"]) == {"soorma_fire_timers": True}
    assert schedule.get("ActionAfterCompletion", "DELETE") == "DELETE"


def test_a_timer_whose_schedule_cannot_be_created_is_not_stored(db, scheduler, monkeypatch):
    me = new_identity()

    class Refusing:
        def create_schedule(self, **_):
            raise RuntimeError("AccessDenied")

    monkeypatch.setattr(timers, "_scheduler_client", lambda: Refusing())
    with pytest.raises(RuntimeError):
        with db.transaction(me) as conn:
            timers.schedule_event(conn, identity=me, due_at=datetime.now(UTC), key="aws-2",
                                  envelope={"type": "reminder.due", "topic": "business-facts"})
    with db.transaction(me) as conn:
        assert conn.execute("select count(*) as n from scheduler.timers").fetchone()["n"] == 0


def test_the_gateway_fires_due_timers_when_the_scheduler_invokes_it(db, app_env, nats_url, monkeypatch):
    from soorma.functions.gateway.handler import handler

    for name in ("SOORMA_SCHEDULER_TARGET_ARN", "SOORMA_SCHEDULER_ROLE_ARN"):
        monkeypatch.delenv(name, raising=False)
    me = new_identity()
    event_type = f"reminder.fired{uuid.uuid4().hex[:6]}"
    event_id = str(uuid.uuid4())
    with db.transaction(me) as conn:
        timers.schedule_event(conn, identity=me, due_at=datetime.now(UTC), key="aws-3",
                              envelope={"id": event_id, "type": event_type, "topic": "business-facts"})
    answer = handler({"soorma_fire_timers": True}, None)
    assert answer["fired"] >= 1 and answer["failed"] == 0
    stored = last_message(nats_url, f"soorma.{me.platform_tenant_id}.business-facts.{event_type}")
    assert json.loads(stored.data)["id"] == event_id


def test_an_event_that_satisfies_a_wait_arms_its_timer_now(db, scheduler):
    from soorma.events import EventEnvelope
    from soorma.functions.tracker.recording import record_envelope

    me = new_identity()
    correlation = str(uuid.uuid4())
    with db.transaction(me) as conn:
        wait = timers.register_wait(conn, identity=me, correlation_id=correlation, event_type="approval.given",
                                    timeout_s=3600, resume={"type": "approval.resume", "topic": "business-facts"})
    timeout = scheduler.get_schedule(Name=f"soorma-timer-{wait.timer_id}", GroupName="soorma-timers")
    assert timeout["ScheduleExpression"] > f"at({(datetime.now(UTC) + timedelta(minutes=59)):%Y-%m-%dT%H:%M}"
    before = datetime.now(UTC)
    record_envelope(db, EventEnvelope(type="approval.given", topic="action-results", correlation_id=correlation,
                                      goal_id=str(uuid.uuid4()), platform_tenant_id=me.platform_tenant_id,
                                      tenant_id=me.service_tenant_id, user_id=me.service_user_id))
    now = scheduler.get_schedule(Name=f"soorma-timer-{wait.timer_id}-satisfied", GroupName="soorma-timers")
    at = datetime.fromisoformat(now["ScheduleExpression"][3:-1]).replace(tzinfo=UTC)
    assert before < at <= before + timedelta(seconds=timers.ARM_LEAD_S + 2)
