"""Issue 12, finding 10 (the ``statement_timeout`` part) — the functions' database connections had no
``statement_timeout``: one slow or blocked statement (a lock held by another session, a runaway query a caller can
provoke) held its connection and the function until Lambda killed it, and a session left idle inside a transaction
held its locks for good.

Performed against the real functions' :class:`soorma.functions.shared.db.Database` on the real embedded PostgreSQL: a statement that
runs, or waits for a lock, longer than the limit is cancelled by the server with a clean error (and a function
answers 503 with ``Retry-After``, not a hang or a 500), a transaction left idle is ended, and ordinary statements on
the same pool keep working.
"""

from __future__ import annotations

import time
import uuid

import psycopg
import pytest
from mangum import Mangum

from soorma.functions.shared.db import DEFAULT_STATEMENT_TIMEOUT_MS, Database
from soorma.testing import http_api_event, new_identity


def test_a_slow_statement_is_cancelled_and_the_pool_keeps_working(app_dsn):
    db = Database(app_dsn, statement_timeout_ms=300, idle_in_transaction_timeout_ms=500)
    try:
        started = time.monotonic()
        with pytest.raises(psycopg.errors.QueryCanceled, match="statement timeout"):
            with db.transaction() as conn:
                conn.execute("select pg_sleep(10)")
        assert time.monotonic() - started < 5  # cancelled at the limit, not after the statement's 10 s
        with db.transaction() as conn:  # the legitimate use, on the same pool
            assert conn.execute("select 1 as one").fetchone()["one"] == 1
            assert conn.execute("show statement_timeout").fetchone()["statement_timeout"] == "300ms"
            assert conn.execute("show idle_in_transaction_session_timeout").fetchone()[
                "idle_in_transaction_session_timeout"] == "500ms"

        # a transaction left idle (an environment frozen mid-request) is ended by the server, releasing its locks
        with pytest.raises(psycopg.errors.IdleInTransactionSessionTimeout):
            with db.transaction() as conn:
                conn.execute("select 1")
                time.sleep(1.5)
                conn.execute("select 1")
        with db.transaction() as conn:  # the pool replaces the ended connection
            assert conn.execute("select 2 as two").fetchone()["two"] == 2
    finally:
        db.close()


def test_the_default_and_the_setting(app_dsn, monkeypatch):
    monkeypatch.delenv("SOORMA_DB_STATEMENT_TIMEOUT_MS", raising=False)
    db = Database(app_dsn)
    try:
        with db.transaction() as conn:
            assert conn.execute("show statement_timeout").fetchone()["statement_timeout"] == \
                f"{DEFAULT_STATEMENT_TIMEOUT_MS // 1000}s"
    finally:
        db.close()
    monkeypatch.setenv("SOORMA_DB_STATEMENT_TIMEOUT_MS", "2500")
    monkeypatch.setenv("SOORMA_DB_IDLE_IN_TRANSACTION_TIMEOUT_MS", "0")
    db = Database(app_dsn)
    try:
        with db.transaction() as conn:
            assert conn.execute("show statement_timeout").fetchone()["statement_timeout"] == "2500ms"
            assert conn.execute("show idle_in_transaction_session_timeout").fetchone()[
                "idle_in_transaction_session_timeout"] == "0"
    finally:
        db.close()
    monkeypatch.setenv("SOORMA_DB_STATEMENT_TIMEOUT_MS", "soon")
    with pytest.raises(ValueError, match="SOORMA_DB_STATEMENT_TIMEOUT_MS"):
        Database(app_dsn)


def test_a_function_blocked_by_a_lock_answers_503_instead_of_hanging(app_dsn, postgres):
    """The registry function behind its Lambda handler: another session holds a lock on the table a request writes;
    the request's statement is cancelled at the limit and the function answers a clean 503 with Retry-After."""
    from soorma.functions.registry.app import create_app
    from soorma.functions.shared.service import ensure_event_loop

    db = Database(app_dsn, statement_timeout_ms=500)
    handler = Mangum(create_app(db), lifespan="off")
    me = new_identity("developer")

    def register(agent_id: str) -> dict:
        ensure_event_loop()
        event = http_api_event("POST", "/v1/agents", identity=me, body={"agent": {"agent_id": agent_id,
                                                                                   "name": agent_id}},
                               headers={"content-type": "application/json"})
        return handler(event, None)

    try:
        with psycopg.connect(postgres) as locker:
            locker.execute("lock table registry.agents in access exclusive mode")  # held until the block ends
            started = time.monotonic()
            blocked = register(f"blocked-{uuid.uuid4().hex[:6]}")
            assert time.monotonic() - started < 5
            assert blocked["statusCode"] == 503, blocked
            assert blocked["headers"].get("retry-after") == "1"
            assert "took too long" in blocked["body"] and "registry.agents" not in blocked["body"]
            locker.rollback()
        ok = register(f"fine-{uuid.uuid4().hex[:6]}")  # the legitimate use, once the lock is gone
        assert ok["statusCode"] == 200, ok
    finally:
        db.close()
