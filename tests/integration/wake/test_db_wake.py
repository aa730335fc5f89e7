"""Waking up (issue 16, item 3): the functions' database access outlasts a database that refuses or holds
connections for a while (a paused Aurora Serverless v2 resuming), on the real embedded PostgreSQL behind the local
stack's pausable proxy (:mod:`soorma.local.dbpause`)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from tempfile import mkdtemp
from typing import Any

import psycopg
import pytest

from soorma.functions.shared.db import Database, DatabaseUnavailable, is_unavailable
from soorma.local.dbpause import PausableDatabase, Upstream


class ProxyThread:
    """The proxy on an event loop of its own thread (the code under test is synchronous)."""

    def __init__(self, dsn: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        # a short folder: a Unix socket path has at most 107 bytes
        self.proxy = PausableDatabase(Upstream.from_dsn(dsn), Path(mkdtemp(prefix="sw-")))
        self.call(self.proxy.start())
        self.dsn = self.proxy.dsn(dsn)

    def call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def pause(self, seconds: float, mode: str = "refuse") -> dict[str, Any]:
        async def go() -> dict[str, Any]:
            return self.proxy.pause(seconds, mode)

        return dict(self.call(go()))

    def close(self) -> None:
        self.call(self.proxy.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture
def proxied(app_dsn: str) -> Iterator[ProxyThread]:
    proxy = ProxyThread(app_dsn)
    yield proxy
    proxy.close()


def _one(db: Database) -> int:
    with db.transaction() as conn:
        row = conn.execute("select 1 as one").fetchone()
    assert row is not None
    return int(row["one"])


@pytest.mark.parametrize("mode", ["refuse", "hold"])
def test_a_transaction_waits_out_a_pause_shorter_than_its_wait(proxied: ProxyThread, mode: str) -> None:
    db = Database(proxied.dsn, connect_wait_s=10)
    try:
        assert _one(db) == 1  # a pooled connection, which the pause cuts
        proxied.pause(3, mode)
        started = time.monotonic()
        assert _one(db) == 1
        waited = time.monotonic() - started
        assert 2.5 <= waited < 6, waited  # connected soon after the pause ended, not on the pool's 1-2-4-8 s schedule
        status = proxied.proxy.status()
        assert status["cut"] >= 1
        assert (status["refused"] if mode == "refuse" else status["held"]) >= 1
    finally:
        db.close()


def test_a_pause_longer_than_the_wait_raises_database_unavailable_with_retry_after(proxied: ProxyThread) -> None:
    db = Database(proxied.dsn, connect_wait_s=1.5)
    try:
        proxied.pause(4)
        started = time.monotonic()
        with pytest.raises(DatabaseUnavailable) as raised:
            _one(db)
        assert time.monotonic() - started < 3
        assert raised.value.retry_after_s >= 1
        assert is_unavailable(raised.value)
        time.sleep(3)  # the pool's connection attempt is still retrying: it connects once the pause is over
        started = time.monotonic()
        assert _one(db) == 1
        assert time.monotonic() - started < 2
    finally:
        db.close()


def test_an_http_function_answers_503_with_retry_after_during_a_pause(proxied: ProxyThread) -> None:
    from mangum import Mangum

    from soorma import testing
    from soorma.functions.shared.service import ensure_event_loop, function_app

    db = Database(proxied.dsn, connect_wait_s=1)
    app = function_app("Soorma wake")

    @app.get("/v1/ping")
    def ping() -> dict[str, int]:
        return {"one": _one(db)}

    handler = Mangum(app, lifespan="off")
    event = testing.http_api_event("GET", "/v1/ping", identity=testing.new_identity("developer"),
                                   headers={"host": "api.local"})
    ensure_event_loop()
    try:
        proxied.pause(3)
        answer = handler(event, None)
        assert answer["statusCode"] == 503, answer
        headers = {k.lower(): v for k, v in answer["headers"].items()}
        assert int(headers["retry-after"]) >= 1
        time.sleep(2.5)
        answer = handler(event, None)
        assert answer["statusCode"] == 200, answer
    finally:
        db.close()


PEPPER = "wake-pepper"


def _api_key(owner_dsn: str) -> tuple[str, Any]:
    import psycopg

    from soorma import testing
    from soorma.functions.gateway.keys import create_api_key

    me = testing.new_identity("developer")
    with psycopg.connect(owner_dsn, autocommit=True) as conn:
        key = create_api_key(conn, platform_tenant_id=me.platform_tenant_id, service_tenant_id=me.service_tenant_id,
                             service_user_id=me.service_user_id, role="developer", name="wake", pepper=PEPPER)
    return key, me


def test_the_authorizer_defers_instead_of_failing_while_the_database_is_unavailable(
        proxied: ProxyThread, postgres: str) -> None:
    from soorma import testing
    from soorma.functions.gateway import authorizer

    key, me = _api_key(postgres)
    db = Database(proxied.dsn, connect_wait_s=10)

    def ask(headers: dict[str, str]) -> dict[str, Any]:
        event = testing.authorizer_event(testing.http_api_event("GET", "/v1/ping", headers=headers))
        return authorizer.authorize(event, db, pepper=PEPPER, wait_s=0.5)

    try:
        assert ask({"authorization": f"Bearer {key}"})["context"]["platform_tenant_id"] == me.platform_tenant_id
        proxied.pause(3)
        started = time.monotonic()
        deferred = ask({"authorization": f"Bearer {key}"})
        assert time.monotonic() - started < 2
        assert deferred == {"isAuthorized": True, "context": {authorizer.DEFERRED: authorizer.DEFER_CREDENTIAL}}
        assert ask({"authorization": "Basic abc"}) == authorizer.DENY  # refused without the database, as always
    finally:
        db.close()


def test_a_function_checks_a_deferred_credential_itself(
        proxied: ProxyThread, postgres: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from mangum import Mangum

    from soorma import testing
    from soorma.functions.gateway.authorizer import DEFER_CREDENTIAL, DEFERRED
    from soorma.functions.shared.service import current_identity, ensure_event_loop, function_app
    from soorma.identity import Identity

    monkeypatch.setenv("SOORMA_API_KEY_PEPPER", PEPPER)
    key, me = _api_key(postgres)
    db = Database(proxied.dsn, connect_wait_s=1)
    app = function_app("Soorma wake")
    app.state.db = db

    from fastapi import Depends

    @app.get("/v1/whoami")
    def whoami(identity: Identity = Depends(current_identity)) -> dict[str, str]:
        return {"tenant": identity.platform_tenant_id, "user": identity.service_user_id}

    handler = Mangum(app, lifespan="off")

    def call(credential: str) -> dict[str, Any]:
        event = testing.http_api_event("GET", "/v1/whoami", headers={"host": "api.local",
                                                                     "authorization": f"Bearer {credential}"})
        event["requestContext"]["authorizer"] = {"lambda": {DEFERRED: DEFER_CREDENTIAL}}
        return dict(handler(event, None))

    ensure_event_loop()
    try:
        proxied.pause(3)
        answer = call(key)
        assert answer["statusCode"] == 503, answer
        assert int({k.lower(): v for k, v in answer["headers"].items()}["retry-after"]) >= 1
        time.sleep(2.5)
        answer = call(key)
        assert answer["statusCode"] == 200, answer
        assert json.loads(answer["body"]) == {"tenant": me.platform_tenant_id, "user": me.service_user_id}
        assert call(key + "x")["statusCode"] == 401
        assert call("not-a-key")["statusCode"] == 401
    finally:
        db.close()


def test_the_tracker_reports_a_batch_retry_later_after_one_wait(proxied: ProxyThread) -> None:
    from soorma import EventEnvelope
    from soorma.functions.bridge import InvokeResult, interpret
    from soorma.functions.tracker.recording import process_batch
    from soorma.payload import RETRY_LATER_FIELD
    from soorma.testing import sqs_batch

    db = Database(proxied.dsn, connect_wait_s=1)
    envelopes = [EventEnvelope(type="x.happened", topic="business-facts", goal_id=f"g{i}", platform_tenant_id="t",
                               tenant_id="t", user_id="u").model_dump_json() for i in range(3)]
    event = sqs_batch(*envelopes)
    ids = [r["messageId"] for r in event["Records"]]
    try:
        proxied.pause(5)
        started = time.monotonic()
        response = process_batch(db, event)
        assert time.monotonic() - started < 2.5  # one wait for the database, not one per record
        assert [item["itemIdentifier"] for item in response[RETRY_LATER_FIELD]] == ids
        outcome = interpret(InvokeResult(json.dumps(response).encode()), ids)
        assert outcome.failed == frozenset(ids) and set(outcome.retry_later) == set(ids)
    finally:
        db.close()


def test_the_proxy_carries_large_answers_and_many_connections_both_ways(proxied: ProxyThread) -> None:
    """Each chunk is forwarded in the reading side's callback, with the transports' flow control: a result far larger
    than a socket buffer, and a request as large, arrive whole; connections that end leave nothing open."""
    big = "x" * 4_000_000
    for _ in range(3):
        with psycopg.connect(proxied.dsn) as conn:
            assert conn.execute("select repeat('y', 8000000) as y").fetchone()[0] == "y" * 8_000_000
            assert conn.execute("select length(%s) as n", (big,)).fetchone()[0] == len(big)
    for _ in range(50):  # many short connections
        with psycopg.connect(proxied.dsn) as conn:
            assert conn.execute("select 1").fetchone()[0] == 1
    deadline = time.monotonic() + 5
    while proxied.proxy.status()["open"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proxied.proxy.status()["open"] == 0
