"""``Database.transaction(pipeline=True)`` and ``Database.connection()`` (issue 19, the handler commit's round trips)
on the real PostgreSQL as role soorma_app: a pipelined transaction commits all or nothing like any other, and leaves
its connection as the pool expects it (out of pipeline mode, not in autocommit, no transaction open)."""

from __future__ import annotations

import uuid

import psycopg
import pytest

INSERT = ("insert into gateway.event_outbox (platform_tenant_id, service_tenant_id, service_user_id, commit_key,"
          " position, event_id, envelope) values (%s, %s, %s, %s, %s, %s, '{}')")


def insert(conn, identity, key: str, position: int) -> None:
    conn.execute(INSERT, (identity.platform_tenant_id, identity.service_tenant_id, identity.service_user_id, key,
                          position, f"e{position}"))


def positions(db, identity, key: str) -> list[int]:
    with db.transaction(identity) as conn:
        rows = conn.execute("select position from gateway.event_outbox where commit_key = %s order by position",
                            (key,)).fetchall()
    return [row["position"] for row in rows]


def assert_reusable(conn) -> None:
    assert conn.pgconn.transaction_status == psycopg.pq.TransactionStatus.IDLE
    assert not conn.autocommit and conn._pipeline is None


def test_a_pipelined_transaction_commits_everything(fx, db):
    me = fx.new_identity(role="agent")
    key = f"k-{uuid.uuid4()}"
    with db.transaction(me, pipeline=True) as conn:
        insert(conn, me, key, 0)
        insert(conn, me, key, 1)
        # a read inside sees the transaction's own rows and the caller's identity (set in the same pipeline)
        assert conn.execute("select count(*) as n from gateway.event_outbox where commit_key = %s",
                            (key,)).fetchone()["n"] == 2
    assert_reusable(conn)
    assert positions(db, me, key) == [0, 1]


def test_a_failing_statement_in_a_pipelined_transaction_commits_nothing(fx, db):
    me = fx.new_identity(role="agent")
    key = f"k-{uuid.uuid4()}"
    with pytest.raises(psycopg.errors.UniqueViolation):
        with db.transaction(me, pipeline=True) as conn:
            insert(conn, me, key, 0)
            insert(conn, me, key, 0)  # the same primary key: fails when the pipeline is synced, at the end
    assert_reusable(conn)
    assert positions(db, me, key) == []


def test_an_exception_in_a_pipelined_transaction_rolls_it_back(fx, db):
    me = fx.new_identity(role="agent")
    key = f"k-{uuid.uuid4()}"
    with pytest.raises(RuntimeError, match="handler refused"):
        with db.transaction(me, pipeline=True) as conn:
            insert(conn, me, key, 0)
            assert conn.execute("select 1 as one").fetchone()["one"] == 1  # the insert reached the server
            raise RuntimeError("handler refused")
    assert_reusable(conn)
    assert positions(db, me, key) == []


def test_transactions_on_one_connection_share_its_checkout(fx, db):
    """``Database.connection()``: the transactions given it run on that connection, one after the other, each
    committed on its own."""
    me = fx.new_identity(role="agent")
    key = f"k-{uuid.uuid4()}"
    with db.connection() as connection:
        pid = connection.info.backend_pid
        with db.transaction(me, pipeline=True, connection=connection) as conn:
            assert conn is connection
            insert(conn, me, key, 0)
        with pytest.raises(psycopg.errors.UniqueViolation):
            with db.transaction(me, connection=connection) as conn:
                insert(conn, me, key, 0)
        with db.transaction(me, pipeline=True, connection=connection) as conn:
            insert(conn, me, key, 1)
            assert conn.info.backend_pid == pid
    assert positions(db, me, key) == [0, 1]
