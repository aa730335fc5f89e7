import json
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.routing import Route
from starlette.testclient import TestClient

from soorma.local.apigw import LocalApiGateway, authorizer_event, http_event, response_from_result


@dataclass
class Result:
    payload: bytes
    function_error: str | None = None


class FakeInvoker:
    """Records invocations; the authorizer accepts only the key "good"."""

    def __init__(self):
        self.calls = []

    async def invoke(self, name, payload):
        event = json.loads(payload)
        self.calls.append((name, event))
        if name == "authorizer":
            ok = event["headers"].get("authorization") == "Bearer good"
            return Result(json.dumps({"isAuthorized": ok, "context": {"role": "developer"} if ok else {}}).encode())
        if name == "broken":
            return Result(b'{"errorMessage": "boom"}', "Unhandled")
        return Result(json.dumps({"statusCode": 201, "headers": {"x-seen": name}, "body": json.dumps(event)}).encode())


def _client(invoker, **kwargs):
    gateway = LocalApiGateway(invoker, **kwargs)
    app = Starlette(routes=[Route("/{path:path}", gateway.handle, methods=["GET", "POST"])])
    return TestClient(app)


def test_http_event_has_payload_format_2_shape():
    event = http_event("POST", "/v1/goals", query="a=1&a=2&b=x%20y", headers={"Host": "h"}, body=b'{"x":1}')
    assert event["version"] == "2.0"
    assert event["queryStringParameters"] == {"a": "1,2", "b": "x y"}
    assert event["requestContext"]["http"]["method"] == "POST"
    assert event["headers"] == {"host": "h"} and event["body"] == '{"x":1}' and not event["isBase64Encoded"]
    binary = http_event("POST", "/", body=b"\xff\xfe")
    assert binary["isBase64Encoded"]


def test_authorizer_event_carries_identity_source_not_body():
    event = authorizer_event(http_event("GET", "/", headers={"Authorization": "Bearer k"}, body=b"x"))
    assert event["type"] == "REQUEST" and event["identitySource"] == ["Bearer k"] and "body" not in event


def test_routes_authorize_and_pass_context():
    invoker = FakeInvoker()
    client = _client(invoker)
    response = client.post("/v1/goals", headers={"Authorization": "Bearer good"}, json={"x": 1})
    assert response.status_code == 201 and response.headers["x-seen"] == "gateway"
    event = response.json()
    assert event["requestContext"]["authorizer"]["lambda"] == {"role": "developer"}
    assert client.get("/v1/memory/x", headers={"Authorization": "Bearer good"}).headers["x-seen"] == "memory"
    assert client.get("/v1/agents", headers={"Authorization": "Bearer good"}).headers["x-seen"] == "registry"
    assert client.post("/v1/events/publish", headers={"Authorization": "Bearer good"}).headers["x-seen"] == "gateway"


def test_missing_key_401_refused_403_unknown_404_error_500():
    invoker = FakeInvoker()
    client = _client(invoker)
    assert client.get("/v1/goals").status_code == 401
    assert client.get("/v1/goals", headers={"Authorization": "Bearer bad"}).status_code == 403
    assert client.get("/nothing", headers={"Authorization": "Bearer good"}).status_code == 404
    client = _client(invoker, function_names=lambda name: "broken" if name == "gateway" else name)
    assert client.get("/v1/goals", headers={"Authorization": "Bearer good"}).status_code == 500


def test_authorizer_answers_are_cached_per_identity_source():
    invoker = FakeInvoker()
    client = _client(invoker, authorizer_ttl_s=60)
    for _ in range(3):
        client.get("/v1/goals", headers={"Authorization": "Bearer good"})
    assert sum(1 for name, _ in invoker.calls if name == "authorizer") == 1
    uncached = FakeInvoker()
    client = _client(uncached, authorizer_ttl_s=0)
    for _ in range(3):
        client.get("/v1/goals", headers={"Authorization": "Bearer good"})
    assert sum(1 for name, _ in uncached.calls if name == "authorizer") == 3


def test_plain_json_result_is_a_200():
    response = response_from_result(b'{"hello": "world"}')
    assert response.status_code == 200 and json.loads(response.body) == {"hello": "world"}
    assert response_from_result(b"not json").status_code == 500


def test_routes_as_api_gateway_selects_them():
    """The local API Gateway routes by the same table and precedence as the cloud one: a path no route of
    soorma.functions.http_api.ROUTES matches is API Gateway's own 404, before the authorizer runs."""
    invoker = FakeInvoker()
    client = _client(invoker)
    good = {"Authorization": "Bearer good"}
    assert client.get("/v1/events/publish", headers=good).status_code == 404  # only POST is routed (to the gateway)
    assert client.get("/v1/memory", headers=good).json() == {"message": "Not Found"}  # memory routes are below it
    assert invoker.calls == []
    public = client.get("/.well-known/agent-card.json")
    assert public.status_code == 201 and public.headers["x-seen"] == "protocols"
    assert [name for name, _ in invoker.calls] == ["protocols"]  # a public route skips the authorizer


def test_the_access_log_has_one_line_per_request_and_no_credentials(tmp_path):
    log = tmp_path / "api.log"
    client = _client(FakeInvoker(), access_log=log)
    client.post("/v1/events/commit?secret=q", headers={"Authorization": "Bearer good"}, json={"token": "sk_body"})
    client.get("/v1/goals/g-1", headers={"Authorization": "Bearer bad"})
    client.get("/nothing", headers={"Authorization": "Bearer good"})
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(line["routeKey"], line["function"], line["status"]) for line in lines] == [
        ("POST /v1/events/commit", "gateway", 201), ("ANY /v1/goals/{proxy+}", "gateway", 403),
        ("$default", None, 404)]
    assert all(line["responseLatency"] >= 0 and line["requestTime"] > 0 for line in lines)
    text = log.read_text()
    assert "good" not in text and "bad" not in text and "sk_body" not in text and "secret" not in text
