"""The bridge's pure rules (no server): response interpretation, backoff, filters, routes, DLQ headers."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from soorma.delivery.consumer import ConsumerPolicy, subject_covers
from soorma.functions.bridge import (
    ExponentialBackoff,
    InvokeResult,
    Route,
    consumer_name_for,
    desired_config,
    dlq_headers,
    interpret,
    normalize_filters,
)

IDS = ["11", "12", "13"]


@pytest.mark.parametrize("payload", [b"", b"null", b"{}", b'{"batchItemFailures": []}',
                                     b'{"batchItemFailures": null}', b'  {"batchItemFailures": [], "x": 1} '])
def test_success_responses(payload):
    outcome = interpret(InvokeResult(payload), IDS)
    assert outcome.failed == frozenset() and outcome.error is None


def test_partial_response_names_the_failed_items():
    body = {"batchItemFailures": [{"itemIdentifier": "12"}, {"itemIdentifier": "12"}]}
    outcome = interpret(InvokeResult(json.dumps(body).encode()), IDS)
    assert outcome.failed == {"12"} and not outcome.all_failed


@pytest.mark.parametrize("payload", [
    b"not json", b'"ok"', b"[]", b"42", b'{"statusCode": 200}', b'{"batchItemFailures": "12"}',
    b'{"batchItemFailures": [{"itemIdentifier": ""}]}', b'{"batchItemFailures": [{"id": "12"}]}',
    b'{"batchItemFailures": [null]}', b'{"batchItemFailures": [{"itemIdentifier": "99"}]}',
])
def test_malformed_responses_fail_the_whole_batch(payload):
    outcome = interpret(InvokeResult(payload), IDS)
    assert outcome.all_failed and outcome.error


def test_function_error_fails_the_whole_batch_even_with_a_valid_body():
    error = json.dumps({"errorMessage": "bad\nthing", "errorType": "KeyError", "stackTrace": []}).encode()
    outcome = interpret(InvokeResult(error, "Unhandled"), IDS)
    assert outcome.all_failed and outcome.error == "Unhandled: KeyError: bad thing"
    outcome = interpret(InvokeResult(b"{}", "Handled"), IDS)
    assert outcome.all_failed and outcome.error.startswith("Handled")


def test_backoff_is_capped_full_jitter():
    backoff = ExponentialBackoff(base_s=1.0, cap_s=60.0, rng=random.Random(7))
    assert [backoff.ceiling(n) for n in (1, 2, 3, 6, 7, 50, 10_000)] == [1, 2, 4, 32, 60, 60, 60]
    delays = [backoff(3) for _ in range(2000)]
    assert 0 <= min(delays) < 0.2 and 3.8 < max(delays) <= 4
    pauses = [backoff.pause(3) for _ in range(2000)]
    assert min(pauses) >= 2 and max(pauses) <= 4


def test_filters_covered_by_another_are_dropped():
    assert subject_covers("soorma.t.a.>", "soorma.t.a.x.y")
    assert subject_covers("soorma.t.*.x", "soorma.t.a.x")
    assert not subject_covers("soorma.t.a.x", "soorma.t.a.>")
    assert not subject_covers("soorma.t.a.>", "soorma.t.a")
    assert not subject_covers("soorma.t.*", "soorma.t.a.b")
    assert normalize_filters(("soorma.t.a.x", "soorma.t.a.>", "soorma.t.b.y", "soorma.t.b.y")) == [
        "soorma.t.a.>", "soorma.t.b.y"]


def test_route_validation_and_normalisation():
    route = Route("c1", "fn", ["soorma.t.a.x"], "t", "agent", deliver_from=datetime(2026, 1, 1))
    assert route.filter_subjects == ("soorma.t.a.x",)
    assert route.deliver_from.tzinfo is UTC
    assert hash(route) == hash(Route("c1", "fn", ("soorma.t.a.x",), "t", "agent",
                                     deliver_from=datetime(2026, 1, 1, tzinfo=UTC)))
    bad = [
        dict(consumer_name="a.b"), dict(consumer_name=""), dict(function_name=""), dict(filter_subjects=()),
        dict(filter_subjects=("other.t.a.x",)), dict(filter_subjects=("soorma.t..x",)),
        dict(filter_subjects=("soorma.>.x",)), dict(platform_tenant_id="a.b"), dict(agent="x y"),
        dict(batch_size=0), dict(max_concurrency=0), dict(max_deliveries=0), dict(timeout_s=0),
    ]
    base = dict(consumer_name="c1", function_name="fn", filter_subjects=("soorma.t.a.x",),
                platform_tenant_id="t", agent="agent")
    for change in bad:
        with pytest.raises(ValueError):
            Route(**{**base, **change})


def test_consumer_names_are_unambiguous():
    assert consumer_name_for("acme", "planner") == "acme__planner"
    assert consumer_name_for("a__b", "c") != consumer_name_for("a", "b__c")
    assert consumer_name_for("a_", "b") != consumer_name_for("a", "_b")
    assert len(consumer_name_for("t" * 64, "a" * 64)) <= 255


def test_consumer_config_for_a_route():
    start = datetime(2026, 1, 1, tzinfo=UTC)
    route = Route("c1", "fn", ("soorma.t.a.x", "soorma.t.a.>"), "t", "agent", batch_size=50,
                  max_concurrency=40, timeout_s=20, deliver_from=start)
    config = desired_config(route, ConsumerPolicy(ack_margin_s=5))
    assert config.durable_name == "c1" and config.ack_policy == "explicit"
    assert config.filter_subjects == ["soorma.t.a.>"]
    assert config.ack_wait == 25 and config.max_deliver == -1
    assert config.max_ack_pending == 4000  # 50 × 40 × 2 (head-room for delayed NAKs)
    assert config.deliver_policy == "by_start_time" and config.opt_start_time == start
    assert desired_config(Route("c2", "fn", ("soorma.t.a.x",), "t", "a"), ConsumerPolicy()).deliver_policy == "all"


def test_dlq_headers_are_single_line():
    meta = SimpleNamespace(consumer="c1", stream="SOORMA_EVENTS", num_delivered=5,
                           sequence=SimpleNamespace(stream=42))
    msg = SimpleNamespace(metadata=meta, subject="soorma.t.a.x", headers={"Nats-Msg-Id": "t:ev-1"})
    route = Route("c1", "fn", ("soorma.t.a.x",), "t", "agent")
    headers = dlq_headers(msg, route, "line one\r\nline two " + "x" * 5000)
    assert headers["Soorma-Dlq-Error"].startswith("line one line two")
    assert len(headers["Soorma-Dlq-Error"]) <= 1000
    assert all("\n" not in v and "\r" not in v for v in headers.values())
    assert headers["Nats-Msg-Id"] == "c1:42" and headers["Soorma-Event-Id"] == "ev-1"
