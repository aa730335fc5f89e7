"""Traces across events, structured logs and metrics of the agent runtime (docs/observability.md).

**Traces** (OpenTelemetry, https://opentelemetry.io/docs/specs/otel/trace/api/): the gateway starts one trace per goal
(trace id = the goal's UUID as 32 hex digits) and stamps the W3C Trace Context ``traceparent``
(https://www.w3.org/TR/trace-context/#traceparent-header) on the goal's request envelope. In an agent, every event
delivered is a ``CONSUMER`` span ``process <event type>`` whose parent is the envelope's ``traceparent``
(:func:`traced_dispatch`), each handler run an ``INTERNAL`` span below it (:func:`traced_handler`), and each platform
HTTP call (:class:`soorma.clients._http.HttpClient`) or LLM call a ``CLIENT`` span below that (:func:`client_span`);
an event published while a handler runs carries that handler's span as its ``traceparent``, so the next agent's span
hangs below the span that caused its event and the span tree follows the events' ``parent_event_id`` chain. The spans
of one delivery are collected in memory while it runs and sent to the platform when it ends (``POST
/v1/tracker/spans``, under the event's identity with its delivery grant); ``GET /v1/goals/{id}/trace`` reads them.

On by default in a Lambda function and in ``agent.run()``; off elsewhere unless ``SOORMA_TRACING=on``. Off: no tracer is built and the hooks return at their first line (no span, no header, no
``traceparent``, no export call), so an agent pays one settings read per event.

**Logs**: :func:`structured_logging` puts Powertools' JSON formatter
(https://docs.powertools.aws.dev/lambda/python/latest/core/logger/) on the ``soorma`` loggers, with the keys of the
event being handled (``goal_id``, ``trace_id``, ``event_id``, ``event_type``, ``tenant``, ``agent``) on every record.

**Metrics**: :func:`emit_invocation_metrics` writes one CloudWatch embedded-metric-format record per (agent, event
type) and batch with Powertools Metrics (https://docs.powertools.aws.dev/lambda/python/latest/core/metrics/):
``Events``, ``EventErrors``, ``EventRetries`` (deliveries whose ``ApproximateReceiveCount`` is above 1: redeliveries
by the NATS bridge or SQS alike) (Count) and ``EventLatency`` (Milliseconds), dimensions ``agent`` and
``event_type``.
"""

from __future__ import annotations

import json
import logging
import os
import time
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Iterator, Mapping

from . import settings

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.trace import Span, Tracer

    from .agents.base import Agent
    from .events import EventEnvelope

log = logging.getLogger("soorma.telemetry")

#: The platform route agents send their spans to (served by the tracker, read back by ``GET /v1/goals/{id}/trace``).
SPANS_PATH = "/v1/tracker/spans"
#: Most spans one request takes, ``POST /v1/tracker/spans`` or a commit's ``spans`` (the platform's
#: ``soorma.functions.shared.traces.MAX_SPANS_PER_REQUEST`` reads it).
MAX_COMMIT_SPANS = 512
#: The span kinds as the platform stores them (OpenTelemetry's ``SpanKind`` names, lower case).
SPAN_KINDS = ("internal", "server", "client", "producer", "consumer")
METRICS_NAMESPACE = "Soorma"

# The spans finished during the delivery being handled in this context (None outside a traced delivery: no span is
# made then, e.g. for a script's platform calls or the export call itself).
_collected: ContextVar[list["ReadableSpan"] | None] = ContextVar("soorma_spans", default=None)
# The keys every log record of the delivery being handled gets (see structured_logging).
_log_keys: ContextVar[Mapping[str, str] | None] = ContextVar("soorma_log_keys", default=None)

# The deliveries of the invocation in progress whose spans wait to be sent together (see SpanBatch).
_pending: ContextVar[list[tuple["EventEnvelope", list["ReadableSpan"]]] | None] = ContextVar(
    "soorma_pending_spans", default=None)
#: The spans a commit stored (:func:`spans_committed`) in the invocation in progress, kept for the X-Ray export,
#: which sends every span of the invocation, not only those the platform still has to store.
_committed_sink: ContextVar[list["ReadableSpan"] | None] = ContextVar("soorma_committed_spans", default=None)

_on_by_default: ContextVar[bool] = ContextVar("soorma_traced_by_default", default=False)

_tracer: "Tracer | None" = None


def in_function() -> bool:
    """Whether this process is a Lambda function's (``AWS_LAMBDA_RUNTIME_API``, set by Lambda and by the local
    stack's runtime): JSON logs and EMF metrics are written there only, where the log stream is what reads them."""
    return bool(os.environ.get("AWS_LAMBDA_RUNTIME_API"))


def tracing_enabled() -> bool:
    """Whether traces are on: ``SOORMA_TRACING`` (read now) when set, else on in a Lambda function
    (:func:`in_function`) and in an agent's local process (:func:`traced_by_default`), off elsewhere (a script or a
    test calling an agent directly sends no spans it did not ask for)."""
    configured = settings.TRACING.get()
    if configured is not None:
        return configured
    return _on_by_default.get() or in_function()


@contextmanager
def traced_by_default() -> Iterator[None]:
    """Within the block (and the tasks it starts), traces are on unless ``SOORMA_TRACING=off``: ``agent.run()``,
    an agent consuming its events as a local process, is a deployment of its own."""
    token = _on_by_default.set(True)
    try:
        yield
    finally:
        _on_by_default.reset(token)


def _get_tracer() -> "Tracer":
    """This process's tracer: a private ``TracerProvider`` (the global one stays the application's) whose only span
    processor collects finished spans for the delivery in progress."""
    global _tracer
    if _tracer is None:
        from opentelemetry.sdk.trace import SpanProcessor, TracerProvider

        class _Collect(SpanProcessor):
            def on_end(self, span: "ReadableSpan") -> None:
                spans = _collected.get()
                if spans is not None:
                    spans.append(span)

        provider = TracerProvider()
        provider.add_span_processor(_Collect())
        _tracer = provider.get_tracer("soorma")
    return _tracer


def traceparent_context(traceparent: str | None) -> Any:
    """The OpenTelemetry context whose remote parent is ``traceparent`` (W3C), or ``None`` for none or a malformed
    one (a new trace starts then, as the W3C specification asks)."""
    if not traceparent:
        return None
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    return TraceContextTextMapPropagator().extract({"traceparent": traceparent})


def current_traceparent() -> str | None:
    """The W3C ``traceparent`` of the span active in this context (``None`` outside a traced delivery or when off)."""
    if _collected.get() is None:
        return None
    from opentelemetry import trace

    span_context = trace.get_current_span().get_span_context()
    if not span_context.is_valid:
        return None
    return f"00-{span_context.trace_id:032x}-{span_context.span_id:016x}-{int(span_context.trace_flags):02x}"


def event_attributes(agent: str, envelope: "EventEnvelope") -> dict[str, str]:
    """The attributes of an event's spans: ``soorma.agent``, ``soorma.event_type``, ``soorma.event_id``,
    ``soorma.topic``, and when the envelope has them ``soorma.parent_event_id``, ``soorma.goal_id``,
    ``soorma.platform_tenant_id``, ``soorma.tenant_id`` (the service tenant)."""
    attributes = {"soorma.agent": agent, "soorma.event_type": envelope.type, "soorma.event_id": envelope.id,
                  "soorma.topic": str(envelope.topic)}
    for name in ("parent_event_id", "goal_id", "platform_tenant_id", "tenant_id"):
        value = getattr(envelope, name)
        if value:
            attributes[f"soorma.{name}"] = str(value)
    return attributes


def _log_keys_for(agent: str, envelope: "EventEnvelope") -> dict[str, str]:
    keys = {"agent": agent, "event_id": envelope.id, "event_type": envelope.type}
    for key, value in (("goal_id", envelope.goal_id), ("trace_id", envelope.trace_id),
                       ("tenant", envelope.platform_tenant_id), ("service_tenant", envelope.tenant_id)):
        if value:
            keys[key] = str(value)
    return keys


@contextmanager
def event_log_keys(agent: str, envelope: "EventEnvelope") -> Iterator[None]:
    """Within the block, every ``soorma`` log record carries ``envelope``'s keys (``agent``, ``event_id``,
    ``event_type``, ``goal_id``, ``trace_id``, ``tenant``, ``service_tenant``: see :func:`structured_logging`)."""
    token = _log_keys.set(_log_keys_for(agent, envelope))
    try:
        yield
    finally:
        _log_keys.reset(token)


async def traced_dispatch(agent: "Agent", envelope: "EventEnvelope", dispatch: Callable[[], Awaitable[int]]) -> int:
    """Run ``dispatch()`` (the handlers of one delivered event) as the span ``process <event type>`` (kind
    ``CONSUMER``, parent: the envelope's ``traceparent``, attributes: :func:`event_attributes`), with the event's
    log keys bound, then send the delivery's spans to the platform (:func:`export_spans`). Returns what ``dispatch``
    returns; its exception propagates (the span records it, status ``error``)."""
    with event_log_keys(agent.name, envelope):
        if not tracing_enabled():
            return await dispatch()
        from opentelemetry.trace import SpanKind, Status, StatusCode, use_span

        spans: list[ReadableSpan] = []
        token = _collected.set(spans)
        process = _get_tracer().start_span(
            f"process {envelope.type}", context=traceparent_context(envelope.traceparent), kind=SpanKind.CONSUMER,
            attributes=event_attributes(agent.name, envelope),
        )
        delivery = _Delivery(process, spans, envelope.goal_id)
        delivery_token = _delivery.set(delivery)
        try:
            # ended by hand: the last handler's commit may end it first (commit_spans)
            with use_span(process, end_on_exit=False, record_exception=False, set_status_on_exception=False):
                return await dispatch()
        except BaseException as exc:
            if not delivery.ended:
                process.record_exception(exc)
                process.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
            raise
        finally:
            if not delivery.ended:
                delivery.ended = True
                process.end()
            _delivery.reset(delivery_token)
            _collected.reset(token)
            pending = _pending.get()
            if pending is not None:
                pending.append((envelope, spans))  # sent with the batch's (SpanBatch.send)
            else:
                await export_spans(agent, envelope, spans)


@dataclass
class _Delivery:
    """The traced delivery in progress: its ``process`` span, the spans finished so far, its goal."""

    process: "Span"
    spans: list["ReadableSpan"]
    goal_id: str | None
    ended: bool = False


_delivery: ContextVar[_Delivery | None] = ContextVar("soorma_traced_delivery", default=None)


def commit_spans(*, last: bool) -> list[dict[str, Any]] | None:
    """The finished spans of the delivery in progress as ``POST /v1/events/commit`` carries them (its ``spans`` field,
    :func:`span_record` records), so they are stored with the handler run's commit instead of in a request of their
    own. ``last``: the run is the delivery's last handler run, so its ``process`` span ends now, when the commit is
    built (the commit's time is the gateway's ``POST /v1/events/commit`` server span below it; see
    docs/observability.md). ``None`` outside a traced delivery, or when there are more spans than a commit carries
    (they are sent with ``POST /v1/tracker/spans`` then). Call :func:`spans_committed` with the same list once the
    commit succeeded; until then the spans stay with the delivery."""
    delivery = _delivery.get()
    if delivery is None or _collected.get() is not delivery.spans:
        return None
    if last and not delivery.ended:
        delivery.ended = True
        delivery.process.end()  # appended to delivery.spans by the collecting processor
    if not delivery.spans or len(delivery.spans) > MAX_COMMIT_SPANS:
        return None
    return [span_record(span, delivery.goal_id) for span in delivery.spans]


def spans_committed(records: list[dict[str, Any]] | None) -> None:
    """Forget the spans of ``records`` (from :func:`commit_spans`): the commit stored them."""
    delivery = _delivery.get()
    if not records or delivery is None:
        return
    committed = {record["span_id"] for record in records}
    sink = _committed_sink.get()
    if sink is not None:
        sink.extend(span for span in delivery.spans
                    if f"{span.get_span_context().span_id:016x}" in committed)  # type: ignore[union-attr]
    delivery.spans[:] = [span for span in delivery.spans
                         if f"{span.get_span_context().span_id:016x}" not in committed]  # type: ignore[union-attr]


def commit_traceparent() -> str | None:
    """The ``traceparent`` a commit request carries instead of a client span of its own (the gateway records the
    commit's server span below it): the delivery's ``process`` span; ``None`` outside a traced delivery."""
    delivery = _delivery.get()
    if delivery is None:
        return None
    context = delivery.process.get_span_context()
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


async def traced_handler(agent: str, handler: str, envelope: "EventEnvelope", run: Awaitable[Any]) -> Any:
    """Await ``run`` (one handler run) as the span ``handler <function name>`` (attribute ``soorma.handler``: its
    qualified name) below the delivery's span; just awaits it outside a traced delivery."""
    if _collected.get() is None:
        return await run
    with _get_tracer().start_as_current_span(
        # the event's attributes are on the delivery's span, its parent: only what is the handler's own here
        f"handler {handler.rsplit('.', 1)[-1]}", attributes={"soorma.handler": handler},
    ):
        return await run


@contextmanager
def client_span(name: str, attributes: Mapping[str, Any], headers: dict[str, str] | None = None
                ) -> Iterator["Span | None"]:
    """A ``CLIENT`` span ``name`` for an outgoing call (a platform request, an LLM call) below the active span, with
    ``traceparent`` added to ``headers`` (when given) so the callee can join the trace. Yields ``None`` (and does
    nothing) outside a traced delivery."""
    if _collected.get() is None:
        yield None
        return
    from opentelemetry.trace import SpanKind

    with _get_tracer().start_as_current_span(name, kind=SpanKind.CLIENT, attributes=dict(attributes)) as span:
        if headers is not None:
            parent = current_traceparent()
            if parent:
                headers["traceparent"] = parent
        yield span


def llm_usage(span: "Span | None", response: Any) -> None:
    """Put an OpenAI-compatible chat answer's status and token counts on its span (OpenTelemetry's GenAI attributes
    ``gen_ai.usage.input_tokens``/``output_tokens``, https://opentelemetry.io/docs/specs/semconv/gen-ai/gen-ai-spans/);
    nothing when there is no span or the body is not such an answer."""
    if span is None:
        return
    span.set_attribute("http.response.status_code", response.status_code)
    try:
        usage = response.json().get("usage") or {}
    except (ValueError, AttributeError):
        return
    for ours, theirs in (("input_tokens", "prompt_tokens"), ("output_tokens", "completion_tokens")):
        if isinstance(usage.get(theirs), int):
            span.set_attribute(f"gen_ai.usage.{ours}", usage[theirs])


def _iso(nanoseconds: int | None) -> str:
    return datetime.fromtimestamp((nanoseconds or 0) / 1e9, UTC).isoformat()


def span_record(span: "ReadableSpan", goal_id: str | None) -> dict[str, Any]:
    """One finished span as ``POST /v1/tracker/spans`` takes it: ``trace_id`` (32 hex), ``span_id`` (16 hex),
    ``parent_span_id`` (16 hex or ``None``), ``name``, ``kind`` (:data:`SPAN_KINDS`), ``start_time``/``end_time``
    (ISO 8601 UTC), ``status`` (``unset``/``ok``/``error``), ``attributes`` (scalars as they are, sequences as lists),
    ``goal_id``."""
    context = span.get_span_context()
    assert context is not None  # a finished SDK span always has one
    return {
        "trace_id": f"{context.trace_id:032x}",
        "span_id": f"{context.span_id:016x}",
        "parent_span_id": f"{span.parent.span_id:016x}" if span.parent is not None else None,
        "name": span.name[:256],
        "kind": span.kind.name.lower(),
        "start_time": _iso(span.start_time),
        "end_time": _iso(span.end_time),
        "status": span.status.status_code.name.lower(),
        "attributes": {k: list(v) if isinstance(v, tuple) else v for k, v in (span.attributes or {}).items()},
        "goal_id": goal_id,
    }


class SpanBatch:
    """The spans of one invocation's deliveries, sent together when it ends: one request per (service tenant, user)
    instead of one per event. ``SpanBatch.begin()`` (``None`` when traces are off) in the invocation's context,
    ``close()`` in that same context when the records are done, then ``await send(agent)`` on its event loop."""

    def __init__(self) -> None:
        self.deliveries: list[tuple[EventEnvelope, list[ReadableSpan]]] = []
        self.committed: list[ReadableSpan] = []
        self._token = _pending.set(self.deliveries)
        self._sink_token = _committed_sink.set(self.committed if settings.TRACES_EXPORT.get() == "xray" else None)

    @classmethod
    def begin(cls) -> "SpanBatch | None":
        """Start collecting this context's deliveries' spans; ``None`` when traces are off."""
        return cls() if tracing_enabled() else None

    def close(self) -> None:
        """Stop collecting (deliveries after this send their spans at once)."""
        _pending.reset(self._token)
        _committed_sink.reset(self._sink_token)

    async def send(self, agent: "Agent") -> None:
        """Send the collected spans, one :func:`export_spans` per (service tenant, user) of their events."""
        groups: dict[tuple[str | None, str | None], list[tuple[EventEnvelope, list[ReadableSpan]]]] = {}
        for envelope, spans in self.deliveries:
            if spans:
                groups.setdefault((envelope.tenant_id, envelope.user_id), []).append((envelope, spans))
        for deliveries in groups.values():
            await export_spans(agent, deliveries[0][0], [], deliveries)
        if settings.TRACES_EXPORT.get() == "xray":
            await export_to_xray(self.committed + [span for _, spans in self.deliveries for span in spans],
                                 agent.name)


async def export_spans(agent: "Agent", envelope: "EventEnvelope", spans: list["ReadableSpan"],
                       deliveries: list[tuple["EventEnvelope", list["ReadableSpan"]]] | None = None) -> None:
    """Send ``spans`` (one delivery's; or ``deliveries``: several deliveries of ``envelope``'s tenant and user) to the
    platform: ``POST /v1/tracker/spans`` ``{"spans": [...]}`` through the agent's tracker client, acting for the
    event's service tenant and user with its delivery grant, so they are stored under the goal's identity. Best
    effort: a failure is logged, never raised (a trace must not fail an event)."""
    deliveries = deliveries if deliveries is not None else [(envelope, spans)]
    records = [span_record(span, event.goal_id) for event, spans_ in deliveries for span in spans_]
    if not records:
        return
    try:
        # the tracker's client (its own URL when SOORMA_TRACKER_URL is set), else the platform's base URL
        client = agent.context.tracker or agent.context.gateway
    except Exception:  # noqa: BLE001 - no platform context: nowhere to send them
        client = None
    if client is None:
        return
    from ._current import delivering

    body = {"spans": records}
    try:
        with delivering(envelope):
            await client._request("POST", SPANS_PATH, json=body, tenant_id=envelope.tenant_id,
                                  user_id=envelope.user_id)
    except Exception as exc:  # noqa: BLE001 - telemetry is best effort
        log.warning("agent %s: the %d spans of event %s (and %d more) were not recorded: %s", agent.name,
                    len(records), envelope.id, len(deliveries) - 1, exc)


# ---------------------------------------------------------------------------------------- AWS X-Ray (OTLP export)

# OpenTelemetry's Python SpanKind counts from INTERNAL = 0; OTLP's enum has SPAN_KIND_UNSPECIFIED = 0 first.
_OTLP_KIND_OFFSET = 1


def _otlp_value(value: Any) -> dict[str, Any]:
    """An attribute value as OTLP/JSON's ``AnyValue`` (int64 as a decimal string, as the JSON mapping requires)."""
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, (list, tuple)):
        return {"arrayValue": {"values": [_otlp_value(v) for v in value]}}
    return {"stringValue": str(value)}


def otlp_json(spans: "list[ReadableSpan]", service: str) -> dict[str, Any]:
    """``spans`` as one OTLP/JSON ``ExportTraceServiceRequest`` (https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding:
    trace and span ids as hex strings, times as decimal nanoseconds since the epoch), resource ``service.name`` =
    ``service``: ``{"resourceSpans": [{"resource", "scopeSpans": [{"scope", "spans": [...]}]}]}``."""
    out = []
    for span in spans:
        context = span.get_span_context()
        assert context is not None  # a finished SDK span always has one
        record: dict[str, Any] = {
            "traceId": f"{context.trace_id:032x}", "spanId": f"{context.span_id:016x}", "name": span.name,
            "kind": span.kind.value + _OTLP_KIND_OFFSET,
            "startTimeUnixNano": str(span.start_time or 0), "endTimeUnixNano": str(span.end_time or 0),
            "attributes": [{"key": k, "value": _otlp_value(v)} for k, v in (span.attributes or {}).items()],
            "status": {"code": span.status.status_code.value},
        }
        if span.parent is not None:
            record["parentSpanId"] = f"{span.parent.span_id:016x}"
        out.append(record)
    resource = [{"key": "service.name", "value": {"stringValue": service}},
                {"key": "cloud.provider", "value": {"stringValue": "aws"}}]
    return {"resourceSpans": [{"resource": {"attributes": resource},
                               "scopeSpans": [{"scope": {"name": "soorma"}, "spans": out}]}]}


def xray_traces_url() -> str:
    """X-Ray's OTLP traces endpoint of this function's region (``AWS_REGION``), or ``AWS_ENDPOINT_URL_XRAY`` (the AWS
    SDKs' service-specific endpoint variable, https://docs.aws.amazon.com/sdkref/latest/guide/feature-ss-endpoints.html)
    followed by ``/v1/traces``: https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch-OTLPEndpoint.html"""
    base = os.environ.get("AWS_ENDPOINT_URL_XRAY") or f"https://xray.{os.environ.get('AWS_REGION', 'us-east-1')}.amazonaws.com"
    return base.rstrip("/") + "/v1/traces"


async def export_to_xray(spans: "list[ReadableSpan]", service: str) -> bool:
    """POST ``spans`` (:func:`otlp_json`) to :func:`xray_traces_url`, signed with Signature Version 4 (service
    ``xray``) with the function's own credentials through botocore, which the Lambda runtime ships (no layer, no
    collector). The endpoint takes W3C trace ids, so a goal's spans keep the trace id they have in the platform.
    Returns whether X-Ray accepted them; best effort: failures are logged, never raised."""
    if not spans:
        return True
    import httpx
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.session import get_session

    url = xray_traces_url()
    body = json.dumps(otlp_json(spans, service), separators=(",", ":")).encode()
    try:
        credentials = get_session().get_credentials()
        if credentials is None:
            raise RuntimeError("no AWS credentials")
        request = AWSRequest(method="POST", url=url, data=body, headers={"Content-Type": "application/json"})
        SigV4Auth(credentials.get_frozen_credentials(), "xray", os.environ.get("AWS_REGION", "us-east-1")).add_auth(request)
        async with httpx.AsyncClient(timeout=5.0) as client:
            reply = await client.post(url, content=body, headers=dict(request.headers.items()))
        if reply.status_code >= 300:
            raise RuntimeError(f"HTTP {reply.status_code}: {reply.text[:300]}")
    except Exception as exc:  # noqa: BLE001 - telemetry is best effort
        log.warning("agent %s: %d spans not exported to X-Ray: %s", service, len(spans), exc)
        return False
    return True


# ------------------------------------------------------------------------------------------------------ logs


class _EventKeys(logging.Filter):
    """Adds the keys of the delivery being handled (see :func:`structured_logging`) to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        keys = _log_keys.get()
        if keys:
            for key, value in keys.items():
                setattr(record, key, value)
        return True


_logging_installed = False


def structured_logging(service: str, level: int | str = logging.INFO) -> None:
    """Make the ``soorma`` loggers write one JSON object per record with Powertools' ``LambdaPowertoolsFormatter``
    (``level``, ``location``, ``message``, ``timestamp``, ``service``, plus ``goal_id``, ``trace_id``,
    ``event_id``, ``event_type``, ``tenant``, ``service_tenant`` and ``agent`` while an event is handled, see
    :func:`event_log_keys`), at ``level``. Called once per process by the agent runtime and the platform functions in
    a Lambda function, and by the NATS bridge's container; idempotent."""
    global _logging_installed
    if _logging_installed:
        return
    _logging_installed = True
    from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

    handler = logging.StreamHandler()
    handler.setFormatter(LambdaPowertoolsFormatter(service=service))
    handler.addFilter(_EventKeys())
    root = logging.getLogger("soorma")
    root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False  # Lambda's own root handler would print every record a second time, as plain text


# ------------------------------------------------------------------------------------------ usage (AWS GB-seconds)

#: The ``type`` of :func:`invocation_line`'s record, which the platform's usage recorder reads
#: (``soorma.functions.tracker.invocation_usage``).
INVOCATION_LINE_TYPE = "soorma.invocation"


def invocation_line(event: Mapping[str, Any], lambda_context: Any) -> str | None:
    """The JSON line naming the goals of the event envelopes in an SQS-shaped batch ``event``, for the invocation
    ``lambda_context.aws_request_id``: ``{"type": "soorma.invocation", "requestId": ..., "goals": [uuid, ...]}``
    (distinct, in order; records without an envelope naming a goal are skipped). None without a request id or a
    goal. In AWS the platform joins it with Lambda's ``platform.report`` of the same request id to put the
    invocation's GB-seconds on those goals (docs/usage-and-llm.md)."""
    request_id = getattr(lambda_context, "aws_request_id", None)
    records = event.get("Records")
    if not isinstance(request_id, str) or not request_id or not isinstance(records, list):
        return None
    goals: list[str] = []
    for record in records:
        body = record.get("body") if isinstance(record, Mapping) else None
        try:
            envelope = json.loads(body) if isinstance(body, str) else None
        except ValueError:
            continue
        goal = envelope.get("goal_id") if isinstance(envelope, dict) else None
        if isinstance(goal, str) and goal and goal not in goals:
            goals.append(goal)
    if not goals:
        return None
    return json.dumps({"type": INVOCATION_LINE_TYPE, "requestId": request_id, "goals": goals})


def write_invocation_line(event: Mapping[str, Any], lambda_context: Any) -> None:
    """Print :func:`invocation_line` on stdout (the function's log stream), when there is one."""
    line = invocation_line(event, lambda_context)
    if line is not None:
        print(line, flush=True)


# ------------------------------------------------------------------------------------------------------ metrics


@dataclass
class InvocationMetrics:
    """What one batch did, per event type: deliveries, failures, redeliveries and latency in milliseconds."""

    agent: str
    counts: dict[str, list[float]] = field(default_factory=dict)  # event type -> latencies (ms)
    errors: dict[str, int] = field(default_factory=dict)
    retries: dict[str, int] = field(default_factory=dict)

    def record(self, event_type: str, started: float, failed: bool, receive_count: Any = 1) -> None:
        """Count one delivery of ``event_type`` that started at ``started`` (``time.perf_counter()``);
        ``receive_count``: the record's ``ApproximateReceiveCount`` (above 1: a retry, on either transport)."""
        self.counts.setdefault(event_type, []).append((time.perf_counter() - started) * 1000.0)
        if failed:
            self.errors[event_type] = self.errors.get(event_type, 0) + 1
        if str(receive_count).isdigit() and int(receive_count) > 1:
            self.retries[event_type] = self.retries.get(event_type, 0) + 1

    def emit(self) -> None:
        """Write one EMF record per event type (see the module docstring) to stdout, where Lambda's log stream makes
        them metrics with no API call
        (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html)."""
        if not self.counts:
            return
        from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

        for event_type, latencies in self.counts.items():
            metrics = EphemeralMetrics(namespace=METRICS_NAMESPACE)
            metrics.add_dimension("agent", self.agent)
            metrics.add_dimension("event_type", event_type[:250])
            metrics.add_metric("Events", MetricUnit.Count, len(latencies))
            metrics.add_metric("EventErrors", MetricUnit.Count, self.errors.get(event_type, 0))
            metrics.add_metric("EventRetries", MetricUnit.Count, self.retries.get(event_type, 0))
            for latency in latencies[:100]:  # EMF takes at most 100 values per metric and record
                metrics.add_metric("EventLatency", MetricUnit.Milliseconds, round(latency, 3))
            metrics.flush_metrics()


__all__ = ["INVOCATION_LINE_TYPE", "InvocationMetrics", "MAX_COMMIT_SPANS", "SPANS_PATH", "SpanBatch", "client_span",
           "commit_spans", "commit_traceparent", "current_traceparent", "event_attributes", "event_log_keys",
           "export_spans", "export_to_xray", "in_function", "invocation_line", "llm_usage", "otlp_json",
           "span_record", "spans_committed", "structured_logging", "traced_by_default", "traced_dispatch",
           "traced_handler", "traceparent_context", "tracing_enabled", "write_invocation_line", "xray_traces_url"]
