"""The live goal streams' pure parts: the authorizer's WebSocket answer (an IAM policy, as API Gateway's WebSocket
API requires), the ``follow`` message's validation (each mistake its status), WebSocket event detection, the
SDK's stream URL, and a browser's credential offered as a ``Sec-WebSocket-Protocol`` entry."""

from __future__ import annotations

import base64
import json

import pytest

from soorma.clients.streams import stream_url
from soorma.functions.gateway.authorizer import authorize, websocket_answer
from soorma.functions.gateway.credentials import handshake_headers, presented_key
from soorma.functions.gateway.streams import FollowRefused, _accept, _follow_request, is_websocket_event
from soorma.functions.http_api import STREAM_BEARER_PROTOCOL_PREFIX, STREAM_SUBPROTOCOL

ARN = "arn:aws:execute-api:eu-west-1:123456789012:abc123/v1/$connect"


def test_an_allowed_handshake_is_an_allow_policy_on_the_method_with_the_context():
    context = {"platform_tenant_id": "pt", "service_tenant_id": "st", "service_user_id": "su",
               "principal_id": "alice", "role": "user"}
    answer = websocket_answer({"methodArn": ARN}, {"isAuthorized": True, "context": context})
    assert answer == {"principalId": "alice", "context": context, "policyDocument": {
        "Version": "2012-10-17",
        "Statement": [{"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": ARN}]}}


def test_a_refused_handshake_is_a_deny_policy_without_context():
    answer = websocket_answer({"methodArn": ARN}, {"isAuthorized": False})
    assert answer["policyDocument"]["Statement"][0]["Effect"] == "Deny" and "context" not in answer


@pytest.mark.parametrize(("body", "status"), [
    ("", 400), ("not json", 400), ("[1]", 400), ('{"action": "dance"}', 400),
    ('{"action": "follow"}', 404), ('{"action": "follow", "goal_id": "x"}', 404),
    ('{"action": "follow", "goal_id": "6f1c0a52-2a55-4a43-9c55-6a4f7f9d1a11", "after": -1}', 400),
    ('{"action": "follow", "goal_id": "6f1c0a52-2a55-4a43-9c55-6a4f7f9d1a11", "after": 1.5}', 400),
    ('{"action": "follow", "goal_id": "6f1c0a52-2a55-4a43-9c55-6a4f7f9d1a11", "after": true}', 400),
    ('{"action": "follow", "goal_id": "6f1c0a52-2a55-4a43-9c55-6a4f7f9d1a11", "after": "3"}', 400),
])
def test_a_bad_follow_is_refused_with_its_status(body, status):
    with pytest.raises(FollowRefused) as refused:
        _follow_request(body)
    assert refused.value.status == status


def test_a_good_follow_names_the_goal_and_the_cursor():
    goal = "6F1C0A52-2A55-4A43-9C55-6A4F7F9D1A11"
    assert _follow_request(json.dumps({"action": "follow", "goal_id": goal, "after": 7})) == (goal.lower(), 7)
    assert _follow_request(json.dumps({"action": "follow", "goal_id": goal})) == (goal.lower(), 0)


def test_websocket_events_are_told_from_http_events():
    assert is_websocket_event({"requestContext": {"eventType": "MESSAGE", "connectionId": "c"}})
    assert not is_websocket_event({"requestContext": {"http": {"method": "GET"}}, "rawPath": "/v1/goals"})
    assert not is_websocket_event({"Records": []})


def test_the_stream_url_follows_the_api_url_unless_set(monkeypatch):
    monkeypatch.delenv("SOORMA_STREAM_URL", raising=False)
    assert stream_url("http://127.0.0.1:8787") == "ws://127.0.0.1:8787/v1/stream"
    assert stream_url("https://api.example.com/base/") == "wss://api.example.com/base/v1/stream"
    monkeypatch.setenv("SOORMA_STREAM_URL", "wss://abc.execute-api.eu-west-1.amazonaws.com/v1")
    assert stream_url("https://x") == "wss://abc.execute-api.eu-west-1.amazonaws.com/v1"
    assert stream_url("https://x", "wss://explicit/v1") == "wss://explicit/v1"


def _entry(credential: str) -> str:
    return STREAM_BEARER_PROTOCOL_PREFIX + base64.urlsafe_b64encode(credential.encode()).decode().rstrip("=")


def test_a_browsers_credential_in_the_subprotocol_becomes_the_bearer_header():
    key = "sk_0123456789abcdef_secret"
    moved = handshake_headers({"host": "h", "sec-websocket-protocol": f"{STREAM_SUBPROTOCOL}, {_entry(key)}"})
    assert moved == {"host": "h", "authorization": f"Bearer {key}", "sec-websocket-protocol": STREAM_SUBPROTOCOL}
    assert presented_key(moved) == key
    # the credential's entry is gone, so the selected protocol can only be the stream's own
    assert _accept(moved)["headers"] == {"Sec-WebSocket-Protocol": STREAM_SUBPROTOCOL}
    assert "headers" not in _accept({"authorization": f"Bearer {key}"})  # nothing offered: nothing selected


def test_a_handshake_without_a_subprotocol_credential_is_unchanged():
    headers = {"authorization": "Bearer sk_x", "sec-websocket-protocol": "soorma.stream.v1"}
    assert handshake_headers(headers) == headers


@pytest.mark.parametrize("headers", [
    {"sec-websocket-protocol": f"{_entry('sk_a')}, {_entry('sk_b')}"},  # two credentials
    {"sec-websocket-protocol": _entry("sk_a"), "authorization": "Bearer sk_b"},  # and the header
    {"sec-websocket-protocol": _entry("sk_a"), "x-api-key": "sk_b"},
    {"sec-websocket-protocol": STREAM_BEARER_PROTOCOL_PREFIX + "c2s+a2V5/w=="},  # not base64url
    {"sec-websocket-protocol": STREAM_BEARER_PROTOCOL_PREFIX},  # empty
    {"sec-websocket-protocol": _entry("sk a")},  # a space: not one credential
    {"sec-websocket-protocol": _entry("sk\nx")},  # not printable
    {"sec-websocket-protocol": STREAM_BEARER_PROTOCOL_PREFIX + "_-8"},  # not ASCII once decoded
    {"sec-websocket-protocol": _entry("k" * 5000)},  # longer than any credential
])
def test_a_bad_subprotocol_credential_refuses_the_handshake(headers):
    assert handshake_headers(headers) is None


def test_the_authorizer_reads_the_subprotocol_on_websocket_handshakes_only():
    """The HTTP API caches the authorizer's answer keyed on Authorization: there the subprotocol header must name
    nothing (no database is reached: the request is refused before any lookup)."""
    headers = {"sec-websocket-protocol": f"{STREAM_SUBPROTOCOL}, {_entry('sk_0000000000000000_nope')}"}
    assert authorize({"headers": headers}, db=None) == {"isAuthorized": False}  # type: ignore[arg-type]
    twice = {**headers, "authorization": "Bearer sk_0000000000000000_nope"}
    assert authorize({"headers": twice, "methodArn": ARN}, db=None) == {"isAuthorized": False}  # type: ignore[arg-type]
