"""The webhooks' pure parts: which URLs may be called (the SSRF guard), the derived secret and the Standard Webhooks
signature (checked with the ``standardwebhooks`` package a receiver uses), the retry schedule, and one attempt's
outcome against a real HTTP exchange (httpx's MockTransport answers as a receiver would)."""

from __future__ import annotations

import json
import random

import httpx
import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from soorma.functions.shared import settings
from soorma.functions.webhooks.sender import attempt, next_delay
from soorma.functions.webhooks.signing import signed_headers, subscription_secret
from soorma.functions.webhooks.urls import UrlRefused, check_url

ENV = {"SOORMA_API_KEY_PEPPER": "unit-pepper"}


@pytest.mark.parametrize("url", [
    "http://example.com/hook",  # plain http in a deployment
    "https://127.0.0.1/hook", "https://localhost/hook", "https://[::1]/hook",
    "https://10.1.2.3/hook", "https://192.168.0.1/", "https://172.16.0.1/",
    "https://169.254.169.254/latest/meta-data/", "https://[fd00:ec2::254]/", "https://[::ffff:10.0.0.1]/",
    "https://100.64.0.1/", "https://0.0.0.0/", "https://224.0.0.1/",
    "https://intranet/hook",  # a single-label name resolves inside a network
    "https://user:pw@example.com/", "ftp://example.com/", "", "https://", "https://example.com:0/",
])
def test_refused_in_a_deployment(url):
    with pytest.raises(UrlRefused):
        check_url(url, allow_loopback=False)


@pytest.mark.parametrize("url", ["https://example.com/hook", "https://8.8.8.8/x", "https://[2606:4700::1111]/"])
def test_public_https_accepted(url):
    assert check_url(url, allow_loopback=False) == url


def test_the_local_stack_allows_loopback_and_http_but_not_private():
    assert check_url("http://127.0.0.1:9000/hook", allow_loopback=True)
    assert check_url("http://localhost:9000/hook", allow_loopback=True)
    with pytest.raises(UrlRefused):
        check_url("http://10.0.0.1/hook", allow_loopback=True)
    with pytest.raises(UrlRefused):
        check_url("http://169.254.169.254/", allow_loopback=True)


def test_secret_is_derived_per_subscription_and_per_pepper():
    first = subscription_secret("11111111-1111-1111-1111-111111111111", ENV)
    assert first.startswith("whsec_") and first == subscription_secret("11111111-1111-1111-1111-111111111111", ENV)
    assert first != subscription_secret("22222222-2222-2222-2222-222222222222", ENV)
    assert first != subscription_secret("11111111-1111-1111-1111-111111111111", {"SOORMA_API_KEY_PEPPER": "other"})
    with pytest.raises(RuntimeError):
        subscription_secret("x", {})


def test_signature_verifies_with_the_standardwebhooks_package():
    secret = subscription_secret("sub", ENV)
    body = json.dumps({"type": "goal.completed", "data": {"goal_id": "g"}})
    headers = signed_headers(secret, "msg-1", body)
    assert Webhook(secret).verify(body, headers)["type"] == "goal.completed"
    with pytest.raises(WebhookVerificationError):
        Webhook(subscription_secret("other", ENV)).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body.replace("completed", "failed"), headers)


def test_retry_schedule_and_jitter():
    schedule = settings.WEBHOOK_RETRY_SCHEDULE.default
    assert schedule[:4] == (0.0, 5.0, 300.0, 1800.0)
    rng = random.Random(7)
    for attempts in range(1, len(schedule)):
        delay = next_delay(schedule, attempts, rng)
        assert delay is not None and 0.8 * schedule[attempts] <= delay <= 1.2 * schedule[attempts]
    assert next_delay(schedule, len(schedule)) is None
    assert settings.WEBHOOK_RETRY_SCHEDULE.get({"SOORMA_WEBHOOK_RETRY_SCHEDULE": "0, 1,2"}) == (0.0, 1.0, 2.0)
    for bad in ("a,b", "-1", ","):
        with pytest.raises(ValueError):
            settings.WEBHOOK_RETRY_SCHEDULE.get({"SOORMA_WEBHOOK_RETRY_SCHEDULE": bad})


def _send(status: int | Exception, url: str = "http://127.0.0.1:9/hook"):
    seen = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if isinstance(status, Exception):
            raise status
        return httpx.Response(status, headers={"location": "http://169.254.169.254/"})

    with httpx.Client(transport=httpx.MockTransport(answer)) as client:
        outcome = attempt(client, delivery_id="d1", subscription_id="s1", url=url,
                          payload={"type": "goal.completed", "data": {}}, allow_loopback=True, env=ENV)
    return outcome, seen


@pytest.mark.parametrize(("status", "delivered", "retry"), [
    (200, True, False), (204, True, False), (500, False, True), (503, False, True), (429, False, True),
    (408, False, True), (400, False, False), (410, False, False), (302, False, False),
    (httpx.ConnectError("refused"), False, True), (httpx.ReadTimeout("slow"), False, True),
])
def test_attempt_outcomes(status, delivered, retry):
    outcome, seen = _send(status)
    assert outcome.delivered is delivered and outcome.retry is retry
    assert len(seen) == 1  # a redirect is never followed
    request = seen[0]
    secret = subscription_secret("s1", ENV)
    assert Webhook(secret).verify(request.content, dict(request.headers))["type"] == "goal.completed"
    assert request.headers["webhook-id"] == "d1"


def test_attempt_refuses_a_private_address_without_sending():
    outcome, seen = _send(200, url="http://10.0.0.7/hook")
    assert not outcome.delivered and not outcome.retry and not seen
