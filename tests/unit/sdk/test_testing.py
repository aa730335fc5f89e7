"""``soorma.testing``: the event builders agent authors test handlers with, and their agreement with the real ones."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from aws_lambda_powertools.utilities.parser.models import SqsModel

from soorma import EventEnvelope
from soorma.identity import ROLES, Identity, from_event
from soorma.payload import EVENT_SOURCE
from soorma.subjects import STREAM
from soorma.testing import authorizer_event, http_api_event, new_identity, sqs_batch


def test_sqs_batch_is_the_function_payload():
    envelope = EventEnvelope(type="order.placed", topic="business-facts", data={"n": 1})
    batch = sqs_batch(envelope, {"type": "x.y", "topic": "business-facts"}, "{not json", b"raw", receive_count=3)
    records = batch["Records"]
    assert [r["messageId"] for r in records] == ["m0", "m1", "m2", "m3"]
    assert [r["body"] for r in records] == [envelope.to_json(), '{"type": "x.y", "topic": "business-facts"}',
                                            "{not json", "raw"]
    assert EventEnvelope.from_json(records[0]["body"]) == envelope
    for record in records:
        assert record["attributes"]["ApproximateReceiveCount"] == "3"
        assert record["eventSource"] == EVENT_SOURCE == "soorma:nats"
        assert record["eventSourceARN"] == f"{STREAM}/test"
        assert record["messageAttributes"] == {}
        assert int(record["attributes"]["SentTimestamp"]) > 1_700_000_000_000
    # every field Powertools' SqsModel requires (its eventSource literal is "aws:sqs", ours "soorma:nats")
    SqsModel.model_validate({"Records": [{**r, "eventSource": "aws:sqs"} for r in records]})
    assert sqs_batch() == {"Records": []}
    assert sqs_batch("x", consumer="tracker")["Records"][0]["eventSourceARN"] == f"{STREAM}/tracker"
    with pytest.raises(TypeError):
        sqs_batch(42)


def test_sqs_batch_has_the_bridges_record_shape():
    from soorma.functions.bridge.payload import build_record

    meta = SimpleNamespace(sequence=SimpleNamespace(stream=7), stream=STREAM, consumer="c", num_delivered=2,
                           timestamp=datetime(2025, 1, 1, tzinfo=UTC))
    bridge = build_record(SimpleNamespace(metadata=meta), "{}", sender="bridge", region="local", now_ms=1)
    ours = sqs_batch("{}")["Records"][0]

    def shape(value):
        return {k: shape(v) for k, v in value.items()} if isinstance(value, dict) else type(value)

    assert shape(ours) == shape(bridge)
    assert bridge["messageId"] == "7" and bridge["receiptHandle"] == f"{STREAM}/c/7/2"
    assert bridge["attributes"]["SentTimestamp"] == str(int(meta.timestamp.timestamp() * 1000))
    assert bridge["md5OfBody"] == ours["md5OfBody"]


def test_the_usage_example_runs():
    """The first example of ``soorma.testing``'s docstring (an agent invoked with ``sqs_batch``) runs as written."""
    import soorma.testing

    doc = soorma.testing.__doc__
    block = doc.split("::\n", 1)[1].split("\nAn HTTP function", 1)[0]
    assert "worker(sqs_batch(request), None)" in block
    exec(compile(textwrap.dedent(block), "soorma.testing example", "exec"), {})


def test_http_api_event_carries_identity_body_and_query():
    me = new_identity("agent")
    event = http_api_event("POST", "/v1/memory/semantic/query", identity=me, body={"x": 1},
                           query={"query": "a b", "tag": ["1", "2"]}, headers={"X-Trace": "t", "Host": "api.test"})
    assert event["version"] == "2.0" and event["rawPath"] == "/v1/memory/semantic/query"
    assert from_event(event) == me
    assert json.loads(event["body"]) == {"x": 1} and not event["isBase64Encoded"]
    assert event["headers"] == {"x-trace": "t", "host": "api.test", "content-type": "application/json"}
    assert event["rawQueryString"] == "query=a+b&tag=1&tag=2"
    assert event["queryStringParameters"] == {"query": "a b", "tag": "1,2"}
    assert event["requestContext"]["http"]["method"] == "POST"
    assert event["requestContext"]["domainName"] == "api.test"

    anonymous = http_api_event("GET", "/v1/agents")
    assert "authorizer" not in anonymous["requestContext"] and "body" not in anonymous
    assert "queryStringParameters" not in anonymous and anonymous["headers"] == {}
    assert http_api_event("GET", "/", identity={"role": "x"})["requestContext"]["authorizer"] == {
        "lambda": {"role": "x"}}

    raw = http_api_event("PUT", "/", raw_body="{oops", headers={"content-type": "text/plain"})
    assert raw["body"] == "{oops" and raw["headers"] == {"content-type": "text/plain"}
    binary = http_api_event("PUT", "/", raw_body=b"\xff\x00")
    assert binary["isBase64Encoded"] and base64.b64decode(binary["body"]) == b"\xff\x00"
    with pytest.raises(ValueError):
        http_api_event("POST", "/", body={}, raw_body="{}")


def test_authorizer_event_has_identity_sources_and_no_body():
    http = http_api_event("POST", "/v1/goals", body={"a": 1},
                          headers={"Authorization": "Bearer k", "X-Soorma-Service-Tenant": "t", "X-Other": "o"})
    event = authorizer_event(http)
    # the credential alone: the service tenant/user headers are applied by the functions (soorma.identity.act_for)
    assert event["type"] == "REQUEST" and event["identitySource"] == ["Bearer k"]
    assert "body" not in event and event["headers"] == http["headers"] and event["routeArn"].startswith("arn:")


def test_new_identity_is_fresh_unless_given():
    a, b = new_identity(), new_identity("user", platform_tenant_id="pt_shared", service_user_id="su_x")
    assert isinstance(a, Identity) and a.role == "developer"
    assert len({a.platform_tenant_id, a.service_tenant_id, b.service_tenant_id}) == 3
    assert (b.role, b.platform_tenant_id, b.service_user_id) == ("user", "pt_shared", "su_x")
    assert Identity.from_context(b.as_context()) == b
    assert {new_identity(role).role for role in ROLES} == set(ROLES)
    with pytest.raises(ValueError):
        new_identity("root")


def test_imports_stay_light():
    code = (
        "import sys, soorma, soorma.testing\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'fastapi', 'starlette', 'mangum', 'psycopg', 'nats'})\n"
        "assert not heavy, heavy\n"
        "assert 'soorma.functions.shared.service' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
