"""The usage recorder in AWS: agent functions' GB-seconds and invocations per goal (issue 18 item 3;
docs/usage-and-llm.md "GB-seconds in AWS"). Entry point ``soorma.functions.tracker.invocation_usage.handler``.

A CloudWatch Logs subscription filter on every agent function's log group (JSON log format) invokes this function
with the records of two kinds, in any order and possibly split over several invocations
(https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/SubscriptionFilters.html#LambdaFunctionExample: the
payload ``{"awslogs": {"data": base64(gzip(JSON))}}``):

* Lambda's ``platform.report`` record
  (https://docs.aws.amazon.com/lambda/latest/dg/telemetry-schema-reference.html#platform-report):
  ``{"type": "platform.report", "record": {"requestId", "metrics": {"billedDurationMs", "memorySizeMB", ...}}}``;
* the SDK runtime's line naming the goals of the events the invocation handled
  (:func:`soorma.telemetry.invocation_line`): ``{"type": "soorma.invocation", "requestId", "goals": [uuid, ...]}``.

Both halves are kept in ``gateway.invocation_reports`` (migration 0065) until they meet; then the invocation's
billed duration × memory size is shared equally among its goals and added to ``gateway.goal_usage`` under each
goal's own identity (:func:`soorma.functions.shared.usage.add`), each goal counting the invocation once.

Trust: the agent's own code writes to the same log group, and a line it prints on stdout reaches CloudWatch Logs as
is (Lambda's JSON format wraps only what goes through the runtime's logging handler), so it *can* print a line that
looks exactly like a ``platform.report``. What such a line can do is bounded, not trusted:

* the platform tenant is the log group's, from the deployment (:data:`~soorma.functions.shared.settings.USAGE_LOG_GROUPS`),
  and only goals of that platform tenant count (owners read from ``gateway.goals``): never another tenant's goals;
* the greatest billed duration reported for a request id counts (Lambda always writes the real one), so a forged
  report cannot lower an invocation's figures, and the memory size and billed duration are capped at the function's
  configured memory and timeout;
* what stays open: an agent's code can make its own platform tenant's usage *higher* (a fabricated request id with
  a report and a goals line: at most timeout × memory per line) or move its invocations among its own tenant's
  goals, and by not writing the goals line (or naming no goal) leave an invocation unattributed.
"""

from __future__ import annotations

import base64
import gzip
import json
import logging
import uuid
from dataclasses import dataclass
from typing import Any, Mapping

from soorma.functions.shared import settings, usage
from soorma.functions.shared.db import Database, database_from_env, set_identity
from soorma.identity import Identity
from soorma.telemetry import INVOCATION_LINE_TYPE

log = logging.getLogger("soorma.functions.tracker.invocation_usage")

#: The ``type`` of Lambda's report record in the JSON log format.
REPORT_TYPE = "platform.report"
#: The ``type`` of the SDK runtime's per-invocation line (:func:`soorma.telemetry.invocation_line`).
GOALS_TYPE = INVOCATION_LINE_TYPE
#: The subscription filter's pattern: only these two kinds of records are delivered.
FILTER_PATTERN = f'{{ ($.type = "{REPORT_TYPE}") || ($.type = "{GOALS_TYPE}") }}'
_MAX_GOALS = 100  # a batch holds at most 10,000 records but an invocation's line naming more goals is not believable


@dataclass(frozen=True)
class Report:
    """A ``platform.report``: ``billed_ms`` (billed duration, ms) and ``memory_mb`` (configured memory, MB)."""

    request_id: str
    billed_ms: int
    memory_mb: int


@dataclass(frozen=True)
class Goals:
    """A ``soorma.invocation`` line: the goals of the events the invocation handled."""

    request_id: str
    goals: tuple[uuid.UUID, ...]


def decode(event: Mapping[str, Any]) -> dict[str, Any]:
    """The CloudWatch Logs subscription payload ``{"awslogs": {"data": ...}}`` decoded (base64, gzip, JSON):
    ``{"messageType", "owner", "logGroup", "logStream", "subscriptionFilters", "logEvents": [{"id", "timestamp",
    "message"}]}``. Raises ``ValueError`` for anything else."""
    try:
        data = event["awslogs"]["data"]
        decoded = json.loads(gzip.decompress(base64.b64decode(data)))
    except (KeyError, TypeError, OSError, EOFError, ValueError) as exc:
        raise ValueError(f"not a CloudWatch Logs subscription payload: {exc}") from None
    if not isinstance(decoded, dict):
        raise ValueError("not a CloudWatch Logs subscription payload: not an object")
    return decoded


def parse(message: str) -> Report | Goals | None:
    """One log event's ``message`` as a :class:`Report` or :class:`Goals`, or None (another record, or one whose
    fields are missing or out of range)."""
    try:
        record = json.loads(message)
    except ValueError:
        return None
    if not isinstance(record, dict):
        return None
    kind = record.get("type")
    if kind == REPORT_TYPE:
        body = record.get("record")
        metrics = body.get("metrics") if isinstance(body, dict) else None
        if not isinstance(metrics, dict):
            return None
        request_id, billed, memory = body.get("requestId"), metrics.get("billedDurationMs"), metrics.get("memorySizeMB")
        if not (isinstance(request_id, str) and 0 < len(request_id) <= 128 and _count(billed) and _count(memory)):
            return None
        return Report(request_id, int(billed), int(memory))
    if kind == GOALS_TYPE:
        request_id, goals = record.get("requestId"), record.get("goals")
        if not (isinstance(request_id, str) and 0 < len(request_id) <= 128 and isinstance(goals, list)):
            return None
        parsed = tuple(dict.fromkeys(g for g in (usage.goal_key(str(goal)) for goal in goals[:_MAX_GOALS])
                                     if g is not None and g != usage.NO_GOAL))
        return Goals(request_id, parsed)
    return None


def _count(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < 2**31


def record(db: Database, payload: Mapping[str, Any], limits: Mapping[str, Mapping[str, Any]]) -> int:
    """Note the records of one decoded subscription ``payload`` and add what became complete to the goals' usage;
    returns how many (goal, invocation) shares were added. ``limits``: per log group ``{"platform_tenant_id",
    "memory_mb", "timeout_s"}`` (payloads of other log groups are ignored)."""
    if payload.get("messageType") != "DATA_MESSAGE":
        return 0  # CONTROL_MESSAGE: CloudWatch Logs checking that the destination is reachable
    log_group = payload.get("logGroup")
    bounds = limits.get(log_group) if isinstance(log_group, str) else None
    if bounds is None:
        log.warning("records of log group %r ignored: not an agent function's log group of this platform", log_group)
        return 0
    tenant = str(bounds["platform_tenant_id"])
    max_ms, max_mb = int(bounds["timeout_s"]) * 1000, int(bounds["memory_mb"])
    touched: list[str] = []
    events = payload.get("logEvents")
    with db.transaction() as conn:
        for event in events if isinstance(events, list) else []:
            parsed = parse(event.get("message", "")) if isinstance(event, dict) else None
            if isinstance(parsed, Report):
                conn.execute("select gateway.note_invocation_report(%s, %s, %s, %s, %s)",
                             (tenant, log_group, parsed.request_id, min(parsed.billed_ms, max_ms),
                              min(parsed.memory_mb, max_mb)))
            elif isinstance(parsed, Goals):
                conn.execute("select gateway.note_invocation_goals(%s, %s, %s, %s)",
                             (tenant, log_group, parsed.request_id, list(parsed.goals)))
            else:
                continue
            if parsed.request_id not in touched:
                touched.append(parsed.request_id)
        added = 0
        for request_id in touched:
            rows = conn.execute("select * from gateway.claim_invocation_usage(%s, %s)",
                                (log_group, request_id)).fetchall()
            for row in rows:
                identity = Identity(platform_tenant_id=row["platform_tenant_id"],
                                    service_tenant_id=row["service_tenant_id"],
                                    service_user_id=row["service_user_id"], principal_id="runtime", role="agent")
                set_identity(conn, identity)  # goal_usage's RLS: each goal's row under its own identity
                usage.add(conn, identity, row["goal_id"],
                          gb_seconds=usage.gb_seconds(row["billed_ms"], row["memory_mb"]) / max(1, row["sharing"]),
                          invocations=1 if row["count_invocation"] else 0)
                added += 1
        conn.execute("select gateway.purge_invocation_reports()")
    return added


def handler(event: dict[str, Any], context: Any) -> dict[str, int]:
    """Lambda entry point: ``{"shares": n}``. A payload that is no subscription payload is logged and dropped (a
    retry could not fix it); a database failure raises, so Lambda's asynchronous retries redeliver it."""
    try:
        payload = decode(event)
    except ValueError as exc:
        log.warning("%s; dropped", exc)
        return {"shares": 0}
    return {"shares": record(database_from_env(), payload, settings.USAGE_LOG_GROUPS.get())}


__all__ = ["FILTER_PATTERN", "GOALS_TYPE", "REPORT_TYPE", "Goals", "Report", "decode", "handler", "parse", "record"]
