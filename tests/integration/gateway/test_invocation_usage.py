"""Function GB-seconds per goal in AWS (issue 18 item 3): the usage recorder
(:mod:`soorma.functions.tracker.invocation_usage`) fed with real-shaped CloudWatch Logs subscription payloads
(``{"awslogs": {"data": base64(gzip(JSON))}}``) of an agent function's log group in Lambda's JSON log format, on the
session's PostgreSQL as ``soorma_app`` (RLS applies), read back through ``GET /v1/goals/{id}/usage``.

The agent's own code writes to the same log group, so the test also prints what it could print: a smaller report
before the real one, a report for another platform tenant's goal, an oversized report, and records of a log group
the recorder was not configured for. None of them lowers a real invocation's figures or reaches another tenant.
"""

from __future__ import annotations

import base64
import gzip
import json
import uuid

import pytest

from soorma.events import EventEnvelope
from soorma.functions.tracker import invocation_usage
from soorma.telemetry import invocation_line
from soorma.testing import sqs_batch

LOG_GROUP = "/aws/lambda/soorma-agent-worker"
FOREIGN_GROUP = "/aws/lambda/someone-else"
MEMORY_MB, TIMEOUT_S = 1024, 30


def subscription(log_group: str, *messages: str) -> dict:
    """What CloudWatch Logs hands a Lambda destination
    (https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/SubscriptionFilters.html#LambdaFunctionExample)."""
    data = {"messageType": "DATA_MESSAGE", "owner": "123456789012", "logGroup": log_group,
            "logStream": "2026/12/04/[$LATEST]0123456789abcdef0123456789abcdef",
            "subscriptionFilters": ["soorma-usage"],
            "logEvents": [{"id": str(36_000_000 + i), "timestamp": 1_764_892_800_000 + i, "message": m}
                          for i, m in enumerate(messages)]}
    return {"awslogs": {"data": base64.b64encode(gzip.compress(json.dumps(data).encode())).decode()}}


def report(request_id: str, billed_ms: int, memory_mb: int = MEMORY_MB) -> str:
    """Lambda's ``platform.report`` record in the JSON log format
    (https://docs.aws.amazon.com/lambda/latest/dg/telemetry-schema-reference.html#platform-report)."""
    return json.dumps({"time": "2026-12-04T23:00:00.000Z", "type": "platform.report",
                       "record": {"requestId": request_id, "status": "success",
                                  "metrics": {"durationMs": billed_ms - 0.4, "billedDurationMs": billed_ms,
                                              "memorySizeMB": memory_mb, "maxMemoryUsedMB": 90}}})


class Context:
    def __init__(self, request_id: str) -> None:
        self.aws_request_id = request_id


def goals_line(request_id: str, tenant, *goals: str) -> str:
    """The SDK runtime's own line for a batch delivering one event of each goal (not hand-written: the real one)."""
    envelopes = [EventEnvelope(source="gw", type="usage.goal", topic="action-requests", goal_id=goal,
                               platform_tenant_id=tenant.id, tenant_id=tenant.service_tenant,
                               user_id=f"su_user_{tenant.id}") for goal in goals]
    line = invocation_line(sqs_batch(*envelopes), Context(request_id))
    assert line is not None
    return line


def _submit(api, gx, key: str) -> str:
    reply = api.post("/v1/goals", headers=gx.bearer(key), json={"goal_type": "usage.goal", "data": {}})
    assert reply.status_code == 202, reply.text
    return reply.json()["goal_id"]


def _usage(api, gx, key: str, goal: str) -> dict:
    reply = api.get(f"/v1/goals/{goal}/usage", headers=gx.bearer(key))
    assert reply.status_code == 200, reply.text
    return reply.json()["usage"]


def test_reports_are_joined_with_the_runtime_line_and_forgeries_do_not_count(api, platform_admin, gx, gw_db):
    a = gx.onboard(api, platform_admin)
    b = gx.onboard(api, platform_admin)
    goal_a, other_a = _submit(api, gx, a.keys["user"]), _submit(api, gx, a.keys["user"])
    goal_b = _submit(api, gx, b.keys["user"])
    limits = {LOG_GROUP: {"platform_tenant_id": a.id, "memory_mb": MEMORY_MB, "timeout_s": TIMEOUT_S}}

    def feed(*messages: str, log_group: str = LOG_GROUP) -> int:
        return invocation_usage.record(gw_db, invocation_usage.decode(subscription(log_group, *messages)), limits)

    # 1. a real invocation: the report arrives before the runtime's line, in another delivery; 1.5 s at 1 GB
    first = str(uuid.uuid4())
    assert feed(report(first, 1500)) == 0
    assert feed(json.dumps({"level": "INFO", "message": "handled"}), goals_line(first, a, goal_a)) == 1
    assert _usage(api, gx, a.keys["user"], goal_a)["gb_seconds"] == pytest.approx(1.5)
    assert _usage(api, gx, a.keys["user"], goal_a)["invocations"] == 1
    # CloudWatch Logs redelivers both: nothing is counted twice
    assert feed(report(first, 1500), goals_line(first, a, goal_a)) == 0

    # 2. the agent prints a smaller report before Lambda writes the real one: the real (greater) figure counts, and
    # the invocation once; a batch of two goals shares it
    second = str(uuid.uuid4())
    feed(goals_line(second, a, goal_a, other_a), report(second, 2))
    feed(report(second, 1000))
    usage_a = _usage(api, gx, a.keys["user"], goal_a)
    assert usage_a["gb_seconds"] == pytest.approx(1.5 + 0.5) and usage_a["invocations"] == 2
    other = _usage(api, gx, a.keys["user"], other_a)
    assert other["gb_seconds"] == pytest.approx(0.5) and other["invocations"] == 1

    # 3. tenant A's agent names tenant B's goal: B's usage does not move (nor does A's: no goal of A was named)
    forged = str(uuid.uuid4())
    assert feed(json.dumps({"type": "soorma.invocation", "requestId": forged, "goals": [goal_b]}),
                report(forged, 9000)) == 0
    assert _usage(api, gx, b.keys["user"], goal_b)["gb_seconds"] == 0
    assert _usage(api, gx, b.keys["user"], goal_b)["invocations"] == 0

    # 4. an oversized forged report is capped at the function's timeout and memory (30 s x 1 GB)
    huge = str(uuid.uuid4())
    feed(goals_line(huge, a, other_a), report(huge, 900_000, memory_mb=10240))
    assert _usage(api, gx, a.keys["user"], other_a)["gb_seconds"] == pytest.approx(0.5 + 30.0)

    # 5. records of a log group the recorder was not configured for, and junk, count for nobody
    stray = str(uuid.uuid4())
    assert feed(goals_line(stray, a, goal_a), report(stray, 5000), log_group=FOREIGN_GROUP) == 0
    assert feed("START RequestId: x Version: $LATEST", "{not json", json.dumps({"type": "platform.report"})) == 0
    assert _usage(api, gx, a.keys["user"], goal_a)["gb_seconds"] == pytest.approx(2.0)

    # the owner of a goal is read from the goals table: another user of tenant A does not see it either
    assert api.get(f"/v1/goals/{goal_a}/usage", headers=gx.bearer(a.keys["developer"])).status_code == 404


def test_subscription_payloads_other_than_data_are_not_recorded(gw_db):
    control = {"messageType": "CONTROL_MESSAGE", "logGroup": "", "logEvents": []}
    data = base64.b64encode(gzip.compress(json.dumps(control).encode())).decode()
    payload = invocation_usage.decode({"awslogs": {"data": data}})
    assert invocation_usage.record(gw_db, payload, {}) == 0
    for bad in ({}, {"awslogs": {"data": "not base64 gzip"}}, {"Records": []}):
        with pytest.raises(ValueError):
            invocation_usage.decode(bad)
    assert invocation_usage.handler({"awslogs": {"data": "@@@"}}, None) == {"shares": 0}
