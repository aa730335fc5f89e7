"""Issue 16, "waking up": an agent's record that failed because the platform was unavailable is reported "retry
later" (``soormaRetryLater``), the records after it are not started, and the bridge's reader takes the extension."""

from __future__ import annotations

import json

import httpx
import pytest

from soorma import Agent, EventEnvelope
from soorma.clients._http import HttpClient
from soorma.errors import (
    PlatformConnectionError,
    PlatformError,
    PlatformUnavailableError,
    retry_later_seconds,
)
from soorma.functions.bridge import InvokeResult, interpret
from soorma.payload import RETRY_LATER_FIELD, with_retry_later
from soorma.testing import sqs_batch


def test_the_runtime_reports_platform_unavailable_records_as_retry_later_and_skips_the_rest():
    agent = Agent("sleepy")
    ran: list[str] = []

    @agent.on_event("ok.event", topic="business-facts")
    async def ok(event, context):
        ran.append(event.type)

    @agent.on_event("wake.event", topic="business-facts")
    async def wake(event, context):
        ran.append(event.type)
        raise PlatformUnavailableError("database unavailable, retry later", retry_after_s=7)

    envelopes = [EventEnvelope(type=t, topic="business-facts").model_dump_json()
                 for t in ("ok.event", "wake.event", "ok.event")]
    event = sqs_batch(*envelopes)
    response = agent(event, None)
    ids = [r["messageId"] for r in event["Records"]]
    assert ran == ["ok.event", "wake.event"]  # the third record was not started
    assert [f["itemIdentifier"] for f in response["batchItemFailures"]] == ids[1:]
    assert response[RETRY_LATER_FIELD] == [{"itemIdentifier": ids[1], "retryAfterSeconds": 7.0},
                                           {"itemIdentifier": ids[2], "retryAfterSeconds": 7.0}]
    outcome = interpret(InvokeResult(json.dumps(response).encode()), ids)
    assert outcome.failed == frozenset(ids[1:]) and outcome.retry_later == {ids[1]: 7.0, ids[2]: 7.0}
    assert "unavailable" in (outcome.error or "")


def test_a_startup_that_needed_the_platform_is_retry_later():
    agent = Agent("drowsy")
    calls: list[int] = []

    @agent.on_startup
    async def warm() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise PlatformUnavailableError("database unavailable, retry later", retry_after_s=3)

    @agent.on_event("ok.event", topic="business-facts")
    async def ok(event, context):
        pass

    event = sqs_batch(EventEnvelope(type="ok.event", topic="business-facts").model_dump_json())
    response = agent(event, None)
    ident = event["Records"][0]["messageId"]
    assert response[RETRY_LATER_FIELD] == [{"itemIdentifier": ident, "retryAfterSeconds": 3.0}]
    assert agent(event, None) == {"batchItemFailures": []}  # started on the next invocation


def test_an_ordinary_failure_is_not_retry_later():
    agent = Agent("grumpy")

    @agent.on_event("boom.event", topic="business-facts")
    async def boom(event, context):
        raise PlatformError(500, "boom")

    response = agent(sqs_batch(EventEnvelope(type="boom.event", topic="business-facts").model_dump_json()), None)
    assert len(response["batchItemFailures"]) == 1 and RETRY_LATER_FIELD not in response


def test_retry_later_seconds_classifies_the_cause_chain():
    assert retry_later_seconds(PlatformUnavailableError("x", retry_after_s=3)) == 3.0
    assert retry_later_seconds(PlatformUnavailableError("x")) == 5.0
    assert retry_later_seconds(PlatformConnectionError("refused")) == 5.0
    assert retry_later_seconds(PlatformError(500, "boom")) is None
    assert retry_later_seconds(ValueError("x")) is None
    try:
        try:
            raise PlatformUnavailableError("x", retry_after_s=2)
        except PlatformError as inner:
            raise RuntimeError("wrapped by a handler") from inner
    except RuntimeError as outer:
        assert retry_later_seconds(outer) == 2.0


def test_a_malformed_retry_later_entry_leaves_an_ordinary_failure():
    ids = ["1", "2"]
    body = {"batchItemFailures": [{"itemIdentifier": "1"}, {"itemIdentifier": "2"}],
            RETRY_LATER_FIELD: [{"itemIdentifier": "1", "retryAfterSeconds": "soon"}, {"itemIdentifier": "2"}]}
    outcome = interpret(InvokeResult(json.dumps(body).encode()), ids)
    assert outcome.failed == {"1", "2"} and outcome.retry_later == {"2": 0.0}
    assert with_retry_later({"batchItemFailures": []}, {}) == {"batchItemFailures": []}


async def test_the_client_does_not_retry_a_503_with_retry_after():
    calls: list[int] = []

    def answer(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(503, json={"detail": "database unavailable, retry later"}, headers={"Retry-After": "4"})

    client = HttpClient("http://platform", "sk_x", transport=httpx.MockTransport(answer))
    with pytest.raises(PlatformUnavailableError) as raised:
        await client._request("GET", "/v1/ping")
    assert calls == [1] and raised.value.retry_after_s == 4.0 and raised.value.status == 503
    await client.close()
