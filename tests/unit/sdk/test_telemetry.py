"""The agent runtime's traces (soorma.telemetry): a delivered event is a span below its envelope's ``traceparent``,
each handler a span below it, platform and LLM calls client spans below that; what a handler publishes carries its
span as ``traceparent``; the delivery's spans go to ``POST /v1/tracker/spans`` for the event's tenant and user; with
``SOORMA_TRACING=off`` nothing of it happens. The platform is an in-process httpx transport."""

from __future__ import annotations

import io
import json
import uuid
from contextlib import redirect_stdout

import httpx
import pytest

from soorma import Agent, EventEnvelope, PlatformContext, telemetry
from soorma.ai.llm import OpenAICompatibleProvider
from soorma.settings import Settings
from soorma.testing import sqs_batch

TRACE = uuid.uuid4().hex
PARENT = "00f067aa0ba902b7"


class Platform:
    """Answers the calls an agent makes: publishes (200), span batches (202), an OpenAI-compatible chat (200)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, dict, httpx.Headers]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else {}
        self.calls.append((request.method, request.url.path, body, request.headers))
        if request.url.path == "/v1/events/publish":
            return httpx.Response(200, json={"success": True, "event_id": body["event"]["id"]})
        if request.url.path == "/v1/tracker/spans":
            return httpx.Response(202, json={"accepted": len(body["spans"]), "stored": len(body["spans"])})
        if request.url.path.endswith("/chat/completions"):
            return httpx.Response(200, json={"model": "m", "choices": [{"message": {"content": "hi"}}],
                                             "usage": {"prompt_tokens": 7, "completion_tokens": 3}})
        return httpx.Response(404, json={"detail": "not here"})

    def bodies(self, path: str) -> list[dict]:
        return [body for _, called, body, _ in self.calls if called == path]


def _agent(platform: Platform, *, fail: bool = False) -> Agent:
    context = PlatformContext(settings=Settings(api_url="http://platform.invalid", api_key="sk_t_x"),
                              transport=httpx.MockTransport(platform))
    agent = Agent("tracer", context=context)
    llm = OpenAICompatibleProvider(model="m", base_url="http://llm.invalid/v1", transport=httpx.MockTransport(platform))

    @agent.on_event("order.placed", topic="business-facts")
    async def placed(event, context):
        await llm.complete([{"role": "user", "content": "hello"}])
        await context.bus.publish("business-facts", "order.checked", {"ok": True})
        if fail:
            raise RuntimeError("boom")

    return agent


def _event(**extra) -> EventEnvelope:
    return EventEnvelope(type="order.placed", topic="business-facts", data={}, goal_id=str(uuid.uuid4()),
                         trace_id="t-1", platform_tenant_id="pt", tenant_id="st", user_id="su",
                         traceparent=f"00-{TRACE}-{PARENT}-01", **extra)


@pytest.fixture(autouse=True)
def _local_idempotency(monkeypatch):
    monkeypatch.setenv("SOORMA_IDEMPOTENCY", "local")
    monkeypatch.setenv("SOORMA_TRACING", "on")
    monkeypatch.delenv("AWS_LAMBDA_RUNTIME_API", raising=False)


def test_a_delivery_is_a_span_tree_below_the_envelope_and_its_publishes_carry_the_handler_span():
    platform = Platform()
    event = _event()
    assert _agent(platform)(sqs_batch(event)) == {"batchItemFailures": []}

    [exported] = platform.bodies("/v1/tracker/spans")
    spans = {span["name"]: span for span in exported["spans"]}
    assert set(spans) == {"process order.placed", "handler placed", "chat m", "POST /v1/events/publish"}, spans
    process, handler = spans["process order.placed"], spans["handler placed"]
    assert {span["trace_id"] for span in spans.values()} == {TRACE}  # one trace: the goal's
    assert process["parent_span_id"] == PARENT and process["kind"] == "consumer"
    assert handler["parent_span_id"] == process["span_id"] and handler["kind"] == "internal"
    for client in ("chat m", "POST /v1/events/publish"):
        assert spans[client]["parent_span_id"] == handler["span_id"] and spans[client]["kind"] == "client"
    assert spans["chat m"]["attributes"]["gen_ai.usage.input_tokens"] == 7
    assert spans["POST /v1/events/publish"]["attributes"]["http.response.status_code"] == 200
    assert process["attributes"] == {
        "soorma.agent": "tracer", "soorma.event_type": "order.placed", "soorma.event_id": event.id,
        "soorma.topic": "business-facts", "soorma.goal_id": event.goal_id, "soorma.platform_tenant_id": "pt",
        "soorma.tenant_id": "st"}
    assert all(span["goal_id"] == event.goal_id for span in spans.values())
    assert process["start_time"] <= handler["start_time"] and handler["end_time"] <= process["end_time"]

    [published] = platform.bodies("/v1/events/publish")
    assert published["event"]["traceparent"] == f"00-{TRACE}-{handler['span_id']}-01"
    assert published["event"]["parent_event_id"] == event.id
    publish_headers = next(h for _, path, _, h in platform.calls if path == "/v1/events/publish")
    assert publish_headers["traceparent"] == f"00-{TRACE}-{spans['POST /v1/events/publish']['span_id']}-01"
    # the spans are sent for the event's tenant and user (stored under the goal's identity)
    span_headers = next(h for _, path, _, h in platform.calls if path == "/v1/tracker/spans")
    assert span_headers["X-Soorma-Service-Tenant"] == "st" and span_headers["X-Soorma-Service-User"] == "su"
    assert "traceparent" not in span_headers  # sending the spans makes no span


def test_an_envelope_without_traceparent_starts_a_trace_of_its_own():
    platform = Platform()
    _agent(platform)(sqs_batch(_event().model_copy(update={"traceparent": None})))
    [exported] = platform.bodies("/v1/tracker/spans")
    process = next(s for s in exported["spans"] if s["name"] == "process order.placed")
    assert process["parent_span_id"] is None and process["trace_id"] != TRACE


def test_a_failing_handler_is_an_error_span_and_its_spans_are_still_sent():
    platform = Platform()
    response = _agent(platform, fail=True)(sqs_batch(_event()))
    assert len(response["batchItemFailures"]) == 1
    [exported] = platform.bodies("/v1/tracker/spans")
    status = {span["name"]: span["status"] for span in exported["spans"]}
    assert status["process order.placed"] == "error" and status["handler placed"] == "error"


def test_tracing_off_makes_no_span_header_or_traceparent(monkeypatch):
    monkeypatch.setenv("SOORMA_TRACING", "off")
    platform = Platform()
    assert _agent(platform)(sqs_batch(_event())) == {"batchItemFailures": []}
    assert platform.bodies("/v1/tracker/spans") == []
    [published] = platform.bodies("/v1/events/publish")
    assert "traceparent" not in published["event"]
    assert all("traceparent" not in headers for *_, headers in platform.calls)


def test_a_span_store_that_fails_never_fails_the_event():
    class Down(Platform):
        def __call__(self, request):
            if request.url.path == "/v1/tracker/spans":
                return httpx.Response(400, json={"detail": "no"})
            return super().__call__(request)

    assert _agent(Down())(sqs_batch(_event())) == {"batchItemFailures": []}


def test_in_a_function_each_batch_writes_emf_metrics_per_agent_and_event_type(monkeypatch):
    monkeypatch.setenv("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9")
    monkeypatch.setenv("SOORMA_TRACING", "off")
    monkeypatch.setattr(telemetry, "_logging_installed", True)  # keep this test session's logging as it is
    agent = _agent(Platform(), fail=False)
    out = io.StringIO()
    with redirect_stdout(out):
        agent(sqs_batch(_event(), _event()))
    records = [json.loads(line) for line in out.getvalue().splitlines() if '"_aws"' in line]
    [record] = [r for r in records if "Events" in r]
    assert record["agent"] == "tracer" and record["event_type"] == "order.placed"
    assert (record["Events"], record["EventErrors"], record["EventRetries"]) == ([2.0], [0.0], [0.0])
    assert len(record["EventLatency"]) == 2
    directive = record["_aws"]["CloudWatchMetrics"][0]
    assert directive["Namespace"] == "Soorma" and directive["Dimensions"] == [["agent", "event_type"]]


def test_traces_are_on_by_default_in_a_function_only(monkeypatch):
    monkeypatch.delenv("SOORMA_TRACING")
    platform = Platform()
    _agent(platform)(sqs_batch(_event()))  # a test calling the agent directly: nothing it did not ask for
    assert platform.bodies("/v1/tracker/spans") == []
    monkeypatch.setenv("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9")
    monkeypatch.setattr(telemetry, "_logging_installed", True)
    with redirect_stdout(io.StringIO()):
        _agent(platform)(sqs_batch(_event()))
    assert len(platform.bodies("/v1/tracker/spans")) == 1
    with telemetry.traced_by_default():  # agent.run()
        monkeypatch.delenv("AWS_LAMBDA_RUNTIME_API")
        assert telemetry.tracing_enabled()
        monkeypatch.setenv("SOORMA_TRACING", "off")
        assert not telemetry.tracing_enabled()


def test_a_malformed_traceparent_is_refused_by_the_envelope():
    with pytest.raises(ValueError, match="traceparent"):
        _event().model_validate({**_event().model_dump(), "traceparent": f"00-{'0' * 32}-{PARENT}-01"})


LOGGING_PROBE = """
import logging, httpx
from soorma import Agent, EventEnvelope, PlatformContext
from soorma.settings import Settings
from soorma.testing import sqs_batch

context = PlatformContext(settings=Settings(api_url="http://platform.invalid", api_key="sk_t_x"),
                          transport=httpx.MockTransport(lambda request: httpx.Response(202, json={})))
agent = Agent("logger", context=context)

@agent.on_event("order.placed", topic="business-facts")
async def placed(event, context):
    logging.getLogger("soorma.app").warning("placed %s", event.data["n"])

agent(sqs_batch(EventEnvelope(type="order.placed", topic="business-facts", data={"n": 7}, goal_id="g-1",
                              trace_id="g-1", platform_tenant_id="pt", tenant_id="st", id="e-1")))
logging.getLogger("soorma.app").warning("after")
"""


def test_in_a_function_soorma_log_records_are_json_with_the_event_keys(tmp_path):
    import os
    import subprocess
    import sys

    env = {**os.environ, "AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9", "SOORMA_IDEMPOTENCY": "local"}
    done = subprocess.run([sys.executable, "-c", LOGGING_PROBE], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    inside, after = records
    assert inside["message"] == "placed 7" and inside["level"] == "WARNING" and inside["service"] == "logger"
    assert {k: inside[k] for k in ("agent", "event_id", "event_type", "goal_id", "trace_id", "tenant",
                                   "service_tenant")} == {
        "agent": "logger", "event_id": "e-1", "event_type": "order.placed", "goal_id": "g-1", "trace_id": "g-1",
        "tenant": "pt", "service_tenant": "st"}
    assert after["message"] == "after" and "goal_id" not in after  # the keys are the delivery's only


class CommittingPlatform(Platform):
    """:class:`Platform` that also answers ``POST /v1/events/commit`` (``status``: its answer's status)."""

    def __init__(self, status: int = 200) -> None:
        super().__init__()
        self.status = status

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/events/commit":
            body = json.loads(request.content)
            self.calls.append((request.method, request.url.path, body, request.headers))
            if self.status != 200:
                return httpx.Response(self.status, json={"detail": "bus down"})
            return httpx.Response(200, json={"replayed": False, "event_ids": [e["id"] for e in body["events"]],
                                             "task_versions": {}})
        return super().__call__(request)


def test_in_commit_mode_the_spans_ride_the_commit_and_the_process_span_ends_when_it_is_built(monkeypatch):
    monkeypatch.setenv("SOORMA_IDEMPOTENCY", "commit")
    platform = CommittingPlatform()
    event = _event()
    assert _agent(platform)(sqs_batch(event)) == {"batchItemFailures": []}
    assert platform.bodies("/v1/tracker/spans") == []  # no request of their own
    [commit] = platform.bodies("/v1/events/commit")
    spans = {span["name"]: span for span in commit["spans"]}
    # the commit itself makes no client span: the gateway records its server span below the process span
    assert set(spans) == {"process order.placed", "handler placed", "chat m"}, spans
    process = spans["process order.placed"]
    assert spans["handler placed"]["parent_span_id"] == process["span_id"]
    assert all(span["goal_id"] == event.goal_id and span["trace_id"] == TRACE for span in spans.values())
    [headers] = [h for _, path, _, h in platform.calls if path == "/v1/events/commit"]
    assert headers["traceparent"] == f"00-{TRACE}-{process['span_id']}-01"
    assert headers["x-soorma-service-tenant"] == "st" and headers["x-soorma-service-user"] == "su"
    [published] = commit["events"]
    assert published["traceparent"].split("-")[2] == spans["handler placed"]["span_id"]


def test_a_commit_that_fails_leaves_its_spans_to_the_spans_route(monkeypatch):
    monkeypatch.setenv("SOORMA_IDEMPOTENCY", "commit")
    platform = CommittingPlatform(status=422)
    response = _agent(platform)(sqs_batch(_event()))
    assert len(response["batchItemFailures"]) == 1
    [exported] = platform.bodies("/v1/tracker/spans")  # what the failed commit carried is sent after all
    names = {span["name"] for span in exported["spans"]}
    assert {"process order.placed", "handler placed", "chat m"} <= names


def test_a_run_that_commits_nothing_still_sends_its_spans(monkeypatch):
    monkeypatch.setenv("SOORMA_IDEMPOTENCY", "commit")
    platform = CommittingPlatform()
    context = PlatformContext(settings=Settings(api_url="http://platform.invalid", api_key="sk_t_x"),
                              transport=httpx.MockTransport(platform))
    agent = Agent("idle", context=context)

    @agent.on_event("order.placed", topic="business-facts")
    async def placed(event, context):
        return None

    assert agent(sqs_batch(_event())) == {"batchItemFailures": []}
    assert platform.bodies("/v1/events/commit") == []
    [exported] = platform.bodies("/v1/tracker/spans")
    assert {span["name"] for span in exported["spans"]} == {"process order.placed",
                                                            "handler placed"}


def test_with_two_handlers_the_process_span_ends_with_the_last_ones_commit(monkeypatch):
    monkeypatch.setenv("SOORMA_IDEMPOTENCY", "commit")
    platform = CommittingPlatform()
    context = PlatformContext(settings=Settings(api_url="http://platform.invalid", api_key="sk_t_x"),
                              transport=httpx.MockTransport(platform))
    agent = Agent("two", context=context)

    @agent.on_event("order.placed", topic="business-facts")
    async def first(event, context):
        await context.bus.publish("business-facts", "order.first", {})

    @agent.on_event("order.placed", topic="business-facts")
    async def second(event, context):
        await context.bus.publish("business-facts", "order.second", {})

    assert agent(sqs_batch(_event())) == {"batchItemFailures": []}
    commits = platform.bodies("/v1/events/commit")
    assert [{span["name"] for span in commit["spans"]} for commit in commits] == [
        {"handler first"}, {"handler second", "process order.placed"}]
    assert platform.bodies("/v1/tracker/spans") == []
