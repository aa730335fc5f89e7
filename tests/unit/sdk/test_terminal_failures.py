"""The terminal-failure extension of the partial batch response: the SDK entry writes it for malformed envelopes,
the bridge's reader takes it only when well formed, and the response stays a valid SQS partial batch response."""

from __future__ import annotations

import json

import pytest

from soorma import Agent, EventEnvelope
from soorma.functions.bridge import InvokeResult, interpret
from soorma.payload import TERMINAL_FAILURES_FIELD, with_terminal_failures
from soorma.testing import sqs_batch


def test_sdk_entry_reports_malformed_envelopes_as_terminal():
    agent = Agent("probe")

    @agent.on_event("ok.event", topic="business-facts")
    async def ok(event, context):
        pass

    @agent.on_event("boom.event", topic="business-facts")
    async def boom(event, context):
        raise RuntimeError("retry me")

    good = EventEnvelope(type="ok.event", topic="business-facts").model_dump_json()
    bad = EventEnvelope(type="boom.event", topic="business-facts").model_dump_json()
    response = agent(sqs_batch(good, bad, "{not json"), None)
    ids = [f["itemIdentifier"] for f in response["batchItemFailures"]]
    terminal = response[TERMINAL_FAILURES_FIELD]
    assert len(ids) == 2 and len(terminal) == 1
    assert terminal[0]["itemIdentifier"] == ids[1] and "MalformedEventError" in terminal[0]["reason"]
    records = sqs_batch(good, bad, "{not json")["Records"]
    outcome = interpret(InvokeResult(json.dumps(response).encode()), [r["messageId"] for r in records])
    assert outcome.failed == frozenset(ids) and set(outcome.terminal) == {ids[1]}


def test_no_terminal_failures_keeps_the_plain_shape():
    agent = Agent("probe2")
    response = agent(sqs_batch(EventEnvelope(type="x.y", topic="business-facts").model_dump_json()), None)
    assert response == {"batchItemFailures": []}
    assert with_terminal_failures({"batchItemFailures": []}, {}) == {"batchItemFailures": []}


def test_reader_rules():
    ids = ["1", "2", "3"]

    def outcome(body):
        return interpret(InvokeResult(json.dumps(body).encode()), ids)

    # terminal ids count as failed even when batchItemFailures forgot them
    got = outcome({"batchItemFailures": [], TERMINAL_FAILURES_FIELD: [{"itemIdentifier": "2", "reason": "bad"}]})
    assert got.failed == {"2"} and got.terminal == {"2": "terminal failure: bad"}
    got = outcome(with_terminal_failures({"batchItemFailures": [{"itemIdentifier": "1"}]}, {"3": "x"}))
    assert got.failed == {"1", "3"} and set(got.terminal) == {"3"}
    # a malformed extension is ignored as a whole: the items are retried, not dead-lettered
    for broken in ("nope", [{"itemIdentifier": 2}], [{"itemIdentifier": "9"}], [{"itemIdentifier": "2"}, "x"]):
        got = outcome({"batchItemFailures": [{"itemIdentifier": "2"}], TERMINAL_FAILURES_FIELD: broken})
        assert got.failed == {"2"} and got.terminal == {}


def test_an_envelope_of_another_platform_tenant_is_refused_unhandled_and_terminal(monkeypatch):
    """Issue 12, finding 3 (defence in depth): a function deployed for tenant ``acme`` never handles another platform
    tenant's event, whatever binding sent it there; it is a terminal failure (dead-lettered at once)."""
    monkeypatch.setenv("SOORMA_PLATFORM_TENANT_ID", "acme")
    agent = Agent("guarded")
    handled = []

    @agent.on_event("order.placed", topic="business-facts")
    async def placed(event, context):
        handled.append(event.platform_tenant_id)

    own = EventEnvelope(type="order.placed", topic="business-facts", platform_tenant_id="acme").model_dump_json()
    foreign = EventEnvelope(type="order.placed", topic="business-facts", platform_tenant_id="rival").model_dump_json()
    response = agent(sqs_batch(own, foreign), None)
    assert handled == ["acme"]
    assert response["batchItemFailures"] == [{"itemIdentifier": "m1"}]
    [terminal] = response[TERMINAL_FAILURES_FIELD]
    assert terminal["itemIdentifier"] == "m1" and "ForeignTenantEventError" in terminal["reason"]


def test_a_direct_invocation_names_the_functions_own_tenant_or_none_and_never_another(monkeypatch):
    """A bare envelope (``aws lambda invoke``, ``soorma local invoke``: a principal allowed to invoke the function)
    that names no platform tenant is handled as the function's own tenant's; one naming another tenant is refused."""
    from soorma.errors import ForeignTenantEventError

    monkeypatch.setenv("SOORMA_PLATFORM_TENANT_ID", "acme")
    agent = Agent("direct")
    handled = []

    @agent.on_event("order.placed", topic="business-facts")
    async def placed(event, context):
        handled.append(event.platform_tenant_id)

    assert agent({"type": "order.placed", "topic": "business-facts", "data": {}}, None) == {"batchItemFailures": []}
    assert handled == ["acme"]
    with pytest.raises(ForeignTenantEventError):
        agent({"type": "order.placed", "topic": "business-facts", "platform_tenant_id": "rival"}, None)
    assert handled == ["acme"]
