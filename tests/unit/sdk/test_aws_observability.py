"""The agent runtime's AWS side of issue 18's observability (docs/observability.md, docs/usage-and-llm.md):

* in a Lambda function each batch writes the line naming its request id and goals, which the platform's usage
  recorder joins with Lambda's ``platform.report`` (soorma.functions.tracker.invocation_usage);
* with ``SOORMA_TRACES_EXPORT=xray`` the invocation's spans also go, as OTLP/JSON signed with Signature Version 4
  (service ``xray``), to X-Ray's OTLP endpoint: here a real HTTP server on loopback named by
  ``AWS_ENDPOINT_URL_XRAY``, which receives exactly the spans the platform stored, with their W3C ids.
"""

from __future__ import annotations

import io
import json
import threading
import uuid
from contextlib import redirect_stdout
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from soorma import Agent, EventEnvelope, PlatformContext, telemetry
from soorma.settings import Settings
from soorma.testing import sqs_batch

TRACE = uuid.uuid4().hex
PARENT = "00f067aa0ba902b7"


class Platform:
    """Answers an agent's publishes and span batches, keeping what it was sent."""

    def __init__(self) -> None:
        self.spans: list[dict] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else {}
        if request.url.path == "/v1/tracker/spans":
            self.spans += body["spans"]
            return httpx.Response(202, json={"accepted": len(body["spans"]), "stored": len(body["spans"])})
        if request.url.path == "/v1/events/publish":
            return httpx.Response(200, json={"success": True, "event_id": body["event"]["id"]})
        return httpx.Response(404, json={"detail": "not here"})


def _agent(platform: Platform) -> Agent:
    context = PlatformContext(settings=Settings(api_url="http://platform.invalid", api_key="sk_t_x"),
                              transport=httpx.MockTransport(platform))
    agent = Agent("tracer", context=context)

    @agent.on_event("order.placed", topic="business-facts")
    async def placed(event, context):
        await context.bus.publish("business-facts", "order.checked", {"ok": True})

    return agent


def _event(goal: str) -> EventEnvelope:
    return EventEnvelope(type="order.placed", topic="business-facts", data={}, goal_id=goal, platform_tenant_id="pt",
                         tenant_id="st", user_id="su", traceparent=f"00-{TRACE}-{PARENT}-01")


class LambdaContext:
    aws_request_id = "8f507cfc-xmpl-4697-b07a-ac58fc914c95"


@pytest.fixture(autouse=True)
def _function(monkeypatch):
    monkeypatch.setenv("SOORMA_IDEMPOTENCY", "local")
    monkeypatch.setenv("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9")
    monkeypatch.setattr(telemetry, "_logging_installed", True)  # keep this test session's logging as it is


def test_each_batch_names_its_request_id_and_goals_for_the_usage_recorder(monkeypatch):
    monkeypatch.setenv("SOORMA_TRACING", "off")
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    out = io.StringIO()
    with redirect_stdout(out):
        _agent(Platform())(sqs_batch(_event(first), _event(second), _event(first)), LambdaContext())
    lines = [json.loads(line) for line in out.getvalue().splitlines() if '"soorma.invocation"' in line]
    assert lines == [{"type": "soorma.invocation", "requestId": LambdaContext.aws_request_id,
                      "goals": [first, second]}]
    # without a request id (a direct call, a test) there is nothing to join: no line
    out = io.StringIO()
    with redirect_stdout(out):
        _agent(Platform())(sqs_batch(_event(first)))
    assert '"soorma.invocation"' not in out.getvalue()


class _Receiver(BaseHTTPRequestHandler):
    received: list[tuple[str, dict, dict]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((self.path, dict(self.headers), json.loads(body)))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args) -> None:
        pass


@pytest.fixture()
def xray():
    _Receiver.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _Receiver.received
    server.shutdown()
    server.server_close()


def test_with_xray_export_the_spans_go_to_the_otlp_endpoint_signed_with_the_functions_role(monkeypatch, xray):
    url, received = xray
    monkeypatch.setenv("SOORMA_TRACING", "on")
    monkeypatch.setenv("SOORMA_TRACES_EXPORT", "xray")
    monkeypatch.setenv("AWS_ENDPOINT_URL_XRAY", url)
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "session-token")
    platform = Platform()
    goal = str(uuid.uuid4())
    with redirect_stdout(io.StringIO()):
        assert _agent(platform)(sqs_batch(_event(goal)), LambdaContext()) == {"batchItemFailures": []}

    [(path, headers, body)] = received
    assert path == "/v1/traces" and headers["Content-Type"] == "application/json"
    authorization = headers["Authorization"]
    assert authorization.startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    assert "/eu-west-1/xray/aws4_request" in authorization and "Signature=" in authorization
    assert headers["X-Amz-Security-Token"] == "session-token" and headers["X-Amz-Date"]
    [resource] = body["resourceSpans"]
    assert {"key": "service.name", "value": {"stringValue": "tracer"}} in resource["resource"]["attributes"]
    spans = resource["scopeSpans"][0]["spans"]
    # the same spans as the platform stored, with the goal's W3C trace id and the same parents
    assert {(s["spanId"], s.get("parentSpanId")) for s in spans} == {
        (s["span_id"], s["parent_span_id"]) for s in platform.spans}
    assert {s["traceId"] for s in spans} == {TRACE}
    process = next(s for s in spans if s["name"] == "process order.placed")
    assert process["parentSpanId"] == PARENT and process["kind"] == 5  # OTLP SPAN_KIND_CONSUMER
    assert int(process["endTimeUnixNano"]) >= int(process["startTimeUnixNano"]) > 0
    assert {"key": "soorma.goal_id", "value": {"stringValue": goal}} in process["attributes"]


def test_an_xray_endpoint_that_refuses_never_fails_the_event(monkeypatch):
    monkeypatch.setenv("SOORMA_TRACING", "on")
    monkeypatch.setenv("SOORMA_TRACES_EXPORT", "xray")
    monkeypatch.setenv("AWS_ENDPOINT_URL_XRAY", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    platform = Platform()
    with redirect_stdout(io.StringIO()):
        assert _agent(platform)(sqs_batch(_event(str(uuid.uuid4())))) == {"batchItemFailures": []}
    assert platform.spans  # the platform still got them


def test_a_bad_export_setting_is_refused():
    from soorma.settings import TRACES_EXPORT

    assert TRACES_EXPORT.get({"SOORMA_TRACES_EXPORT": "XRay"}) == "xray"
    assert TRACES_EXPORT.get({"SOORMA_TRACES_EXPORT": "off"}) is None
    with pytest.raises(ValueError, match="SOORMA_TRACES_EXPORT='jaeger' must be `xray` or `off`"):
        TRACES_EXPORT.get({"SOORMA_TRACES_EXPORT": "jaeger"})


class CommittingPlatform(Platform):
    """Also answers ``POST /v1/events/commit``, keeping the spans the commits carried."""

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/events/commit":
            body = json.loads(request.content)
            self.spans += body.get("spans") or []
            return httpx.Response(200, json={"replayed": False, "event_ids": [e["id"] for e in body["events"]],
                                             "task_versions": {}})
        return super().__call__(request)


def test_with_xray_export_the_spans_a_commit_stored_are_exported_too(monkeypatch, xray):
    url, received = xray
    monkeypatch.setenv("SOORMA_IDEMPOTENCY", "commit")  # the spans ride the commit, not the spans route
    monkeypatch.setenv("SOORMA_TRACING", "on")
    monkeypatch.setenv("SOORMA_TRACES_EXPORT", "xray")
    monkeypatch.setenv("AWS_ENDPOINT_URL_XRAY", url)
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    platform = CommittingPlatform()
    with redirect_stdout(io.StringIO()):
        assert _agent(platform)(sqs_batch(_event(str(uuid.uuid4()))), LambdaContext()) == {"batchItemFailures": []}
    assert {s["name"] for s in platform.spans} >= {"process order.placed", "handler placed"}
    [(_, _, body)] = received
    exported = body["resourceSpans"][0]["scopeSpans"][0]["spans"]
    assert {s["spanId"] for s in exported} == {s["span_id"] for s in platform.spans}
