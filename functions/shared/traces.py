"""A goal's trace on the platform side (docs/observability.md): its W3C ids, its root span, and the span store.

One trace per goal: its trace id is the goal's UUID as 32 lower-case hex digits and its root span id the first 16 hex
digits of SHA-256 of the goal id, so the gateway needs to store nothing to know them, and every publish of the goal's
request (the first, a retry with the same ``Idempotency-Key``, a queued goal's start) carries the same ``traceparent``
(W3C Trace Context, https://www.w3.org/TR/trace-context/#traceparent-header). Spans are rows of
``gateway.goal_spans`` (migration 0060), owned by the identity that wrote them (row-level security): the gateway writes
the root span ``goal <type>`` at submit, agents their spans through ``POST /v1/tracker/spans``
(:mod:`soorma.functions.tracker.app`), and ``GET /v1/goals/{id}/trace`` reads the goal's spans in start order.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime
from typing import Any, Iterable, Literal, Mapping

from psycopg.types.json import Jsonb
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from soorma import telemetry
from soorma.identity import Identity

#: Most spans one ``POST /v1/tracker/spans`` (or one commit's ``spans``) takes (an agent sends one delivery's: a
#: handful).
MAX_SPANS_PER_REQUEST = telemetry.MAX_COMMIT_SPANS
SpanKindName = Literal["internal", "server", "client", "producer", "consumer"]
SpanStatus = Literal["unset", "ok", "error"]
AttributeValue = str | int | float | bool | list[str] | list[int] | list[float] | list[bool]


def tracing_enabled() -> bool:
    """Whether the gateway stamps ``traceparent`` and records root spans: ``SOORMA_TRACING`` (read now), by default on
    in a Lambda function (:func:`soorma.telemetry.tracing_enabled`)."""
    return telemetry.tracing_enabled()


def goal_trace_id(goal_id: str) -> str:
    """The W3C trace id of goal ``goal_id`` (a UUID): its 128 bits as 32 lower-case hex digits."""
    return uuid.UUID(goal_id).hex


def goal_root_span_id(goal_id: str) -> str:
    """The span id of goal ``goal_id``'s root span (16 hex digits, from SHA-256 of the id: stable across retries)."""
    return hashlib.sha256(goal_id.encode()).hexdigest()[:16]


def goal_traceparent(goal_id: str) -> str | None:
    """The ``traceparent`` of goal ``goal_id``'s request (root span, sampled), or ``None`` when tracing is off (or
    the id is not a UUID: no trace of its own then)."""
    if not tracing_enabled():
        return None
    try:
        uuid.UUID(goal_id)
    except ValueError:
        return None
    return f"00-{goal_trace_id(goal_id)}-{goal_root_span_id(goal_id)}-01"


class SpanIn(BaseModel):
    """One finished span as agents send it (:func:`soorma.telemetry.span_record`)."""

    model_config = ConfigDict(extra="forbid")

    trace_id: str = Field(pattern=r"^[0-9a-f]{32}$")
    span_id: str = Field(pattern=r"^[0-9a-f]{16}$")
    parent_span_id: str | None = Field(None, pattern=r"^[0-9a-f]{16}$")
    name: str = Field(min_length=1, max_length=256)
    kind: SpanKindName = "internal"
    start_time: AwareDatetime
    end_time: AwareDatetime
    status: SpanStatus = "unset"
    attributes: dict[str, AttributeValue] = Field(default_factory=dict, max_length=64)
    goal_id: str | None = Field(None, max_length=255)

    @field_validator("trace_id", "span_id", "parent_span_id")
    @classmethod
    def _not_all_zeros(cls, value: str | None) -> str | None:
        if value is not None and not value.strip("0"):
            raise ValueError("an all-zero id is invalid (W3C Trace Context)")
        return value


class SpansIn(BaseModel):
    """``POST /v1/tracker/spans``: ``{"spans": [span, ...]}`` (1 to :data:`MAX_SPANS_PER_REQUEST`)."""

    model_config = ConfigDict(extra="forbid")

    spans: list[SpanIn] = Field(min_length=1, max_length=MAX_SPANS_PER_REQUEST)


class TraceSpan(BaseModel):
    """One span of ``GET /v1/goals/{id}/trace`` (times ISO 8601 UTC, ``duration_ms`` = end - start)."""

    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    kind: str
    start_time: str
    end_time: str
    duration_ms: float
    status: str
    attributes: dict[str, Any]


class GoalTrace(BaseModel):
    """``GET /v1/goals/{id}/trace``: the goal's trace id and its spans in start order."""

    goal_id: str
    trace_id: str
    spans: list[TraceSpan]


_SPAN_COLUMNS = ("platform_tenant_id, service_tenant_id, service_user_id, trace_id, span_id, parent_span_id, goal_id,"
                 " name, kind, start_time, end_time, status, attributes")


def _insert_spans_statement(identity: Identity, spans: list[SpanIn]) -> tuple[str, list[Any]]:
    """One ``insert ... on conflict do nothing`` of every span of ``spans`` (at least one), under ``identity``."""
    params: list[Any] = []
    for span in spans:
        params += [identity.platform_tenant_id, identity.service_tenant_id, identity.service_user_id, span.trace_id,
                   span.span_id, span.parent_span_id, span.goal_id, span.name, span.kind, span.start_time,
                   max(span.end_time, span.start_time), span.status, Jsonb(span.attributes)]
    row = "(" + ", ".join(["%s"] * 13) + ")"
    statement = (f"insert into gateway.goal_spans ({_SPAN_COLUMNS}) values {', '.join([row] * len(spans))}"
                 " on conflict do nothing")
    return statement, params


def insert_spans(conn: Any, identity: Identity, spans: Iterable[SpanIn]) -> int:
    """Store ``spans`` under ``identity`` (its platform tenant, service tenant and user: never the body's) in the
    caller's transaction, in one statement; a span already stored (same trace and span id) is kept as it was. Returns
    how many were new."""
    spans = list(spans)
    if not spans:
        return 0
    statement, params = _insert_spans_statement(identity, spans)
    return len(conn.execute(statement + " returning span_id", params).fetchall())


def send_spans(conn: Any, identity: Identity, spans: Iterable[SpanIn]) -> None:
    """What :func:`insert_spans` does, without reading the result: in a pipelined transaction
    (:meth:`soorma.functions.shared.db.Database.transaction` with ``pipeline=True``) the statement goes with the
    next round trip instead of making one of its own."""
    spans = list(spans)
    if spans:
        conn.execute(*_insert_spans_statement(identity, spans))


def root_span(goal_id: str, goal_type: str, started: datetime, ended: datetime, *, ok: bool,
              attributes: Mapping[str, AttributeValue] | None = None) -> SpanIn:
    """The root span ``goal <type>`` (kind ``server``) of goal ``goal_id``: the gateway's handling of its submit."""
    return SpanIn(trace_id=goal_trace_id(goal_id), span_id=goal_root_span_id(goal_id), name=f"goal {goal_type}"[:256],
                  kind="server", start_time=started, end_time=ended, status="ok" if ok else "error",
                  attributes={"soorma.goal_id": goal_id, "soorma.event_type": goal_type, **(attributes or {})},
                  goal_id=goal_id)


def read_trace(conn: Any, goal_id: str) -> GoalTrace:
    """Goal ``goal_id``'s trace as the caller's identity sees it (row-level security), spans in start order."""
    rows = conn.execute(
        "select trace_id, span_id, parent_span_id, name, kind, start_time, end_time, status, attributes"
        " from gateway.goal_spans where goal_id = %s order by start_time, end_time desc, span_id limit 10000",
        (goal_id,),
    ).fetchall()
    spans = [TraceSpan(
        trace_id=row["trace_id"], span_id=row["span_id"], parent_span_id=row["parent_span_id"], name=row["name"],
        kind=row["kind"], start_time=row["start_time"].astimezone(UTC).isoformat(),
        end_time=row["end_time"].astimezone(UTC).isoformat(),
        duration_ms=round((row["end_time"] - row["start_time"]).total_seconds() * 1000.0, 3), status=row["status"],
        attributes=row["attributes"] or {},
    ) for row in rows]
    return GoalTrace(goal_id=goal_id, trace_id=goal_trace_id(goal_id), spans=spans)


__all__ = ["GoalTrace", "SpanIn", "SpansIn", "TraceSpan", "goal_root_span_id", "goal_trace_id", "goal_traceparent",
           "insert_spans", "read_trace", "root_span", "send_spans", "tracing_enabled"]
