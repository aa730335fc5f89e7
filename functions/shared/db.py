"""Database access shared by the platform functions: a lazily opened pool and tenant-scoped transactions.

Row-level security does the tenant isolation (DESIGN.md "Database"): the functions connect as the non-superuser role
``soorma_app`` and every transaction first sets ``soorma.platform_tenant_id``, ``soorma.service_tenant_id`` and
``soorma.service_user_id`` with ``set_config(..., true)`` (transaction-local, so a pooled connection never carries a
previous caller's identity; https://www.postgresql.org/docs/current/functions-admin.html#FUNCTIONS-ADMIN-SET).
The policies compare the rows' identity columns with ``current_setting('soorma.…', true)``.

Every connection also gets a ``statement_timeout`` and an ``idle_in_transaction_session_timeout``
(https://www.postgresql.org/docs/current/runtime-config-client.html#GUC-STATEMENT-TIMEOUT), set as libpq startup
``options`` so they cost no round trip and survive ``RESET ALL``: a statement that runs longer is cancelled by the
server (``psycopg.errors.QueryCanceled``, SQLSTATE 57014, answered 503 by :mod:`soorma.functions.shared.service`) instead of holding
a connection and the function until Lambda kills it, and a session left idle inside a transaction (an execution
environment frozen mid-request) is ended so its locks are released. Settings (milliseconds; ``0`` turns a limit off,
as in PostgreSQL): ``SOORMA_DB_STATEMENT_TIMEOUT_MS`` (default :data:`DEFAULT_STATEMENT_TIMEOUT_MS`, under API
Gateway's 30 s integration limit) and ``SOORMA_DB_IDLE_IN_TRANSACTION_TIMEOUT_MS`` (default
:data:`DEFAULT_IDLE_IN_TRANSACTION_TIMEOUT_MS`).

**Waking up.** Aurora Serverless v2 paused at 0 ACU takes about 15 s (longer after a day) to accept its first
connection, and a database restarting refuses connections for a while. Two things make a function outlast that:

* connecting retries (:class:`WakingConnection`): a refused or dropped connection attempt is tried again after a short
  pause (0.1 s doubling to 1 s) for up to :data:`CONNECT_RETRY_S`, instead of psycopg-pool's own reconnection schedule
  (1 s doubling: 1, 3, 7, 15, 31 s), which would find a database that came back after 16 s only at 31 s;
* a caller waits at most ``SOORMA_DB_CONNECT_WAIT_S`` (default 20 s, under the HTTP functions' 29 s) for a
  connection, then gets :class:`DatabaseUnavailable` (an ``OperationalError``), which
  :mod:`soorma.functions.shared.service` answers 503 with ``Retry-After: SOORMA_DB_RETRY_AFTER_S`` and the event
  consumers report as "retry later" instead of burning a delivery attempt.

A connection the pause killed is found by the pool's check on checkout and replaced. The check is a round trip
(an empty query): work of several transactions in a row takes one connection for all of them
(:meth:`Database.connection`, then ``transaction(connection=...)``), checked once.

**Round trips.** Each statement is one round trip to the database; :meth:`Database.transaction` with
``pipeline=True`` sends them in psycopg's pipeline mode
(https://www.psycopg.org/psycopg3/docs/advanced/pipeline.html): ``BEGIN``, the identity's ``set_config`` and every
statement whose result is not read yet go together, and a round trip happens only when a result is read (or at the
end, with ``COMMIT``).

Requires the ``functions`` extra (psycopg, psycopg-pool).
"""

from __future__ import annotations

import logging
import threading
import time
from contextlib import contextmanager, nullcontext, suppress
from typing import Any, Iterator

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from soorma.functions.shared import settings
from soorma.functions.shared.capacity import POOL_MAX_SIZE
from soorma.identity import Identity

APP_DATABASE_URL = settings.APP_DATABASE_URL.name
STATEMENT_TIMEOUT_ENV = settings.DB_STATEMENT_TIMEOUT_MS.name
IDLE_IN_TRANSACTION_TIMEOUT_ENV = settings.DB_IDLE_IN_TRANSACTION_TIMEOUT_MS.name
#: Default ``statement_timeout``: 15 s, well under the HTTP API's 30 s integration timeout (and the functions' 29 s),
#: so a runaway statement ends with a clean 503 while the function can still answer.
DEFAULT_STATEMENT_TIMEOUT_MS = settings.DB_STATEMENT_TIMEOUT_MS.default
#: Default ``idle_in_transaction_session_timeout``: 60 s.
DEFAULT_IDLE_IN_TRANSACTION_TIMEOUT_MS = settings.DB_IDLE_IN_TRANSACTION_TIMEOUT_MS.default


def _with_timeouts(dsn: str, statement_timeout_ms: int, idle_ms: int) -> dict[str, str]:
    """The connection keyword ``options`` (libpq startup options) with both timeouts appended to any the DSN has."""
    from psycopg.conninfo import conninfo_to_dict

    existing = str(conninfo_to_dict(dsn).get("options") or "").strip()
    ours = f"-c statement_timeout={int(statement_timeout_ms)} -c idle_in_transaction_session_timeout={int(idle_ms)}"
    return {"options": f"{existing} {ours}".strip()}

logger = logging.getLogger("soorma.functions.db")

#: How long one connection attempt of the pool keeps retrying a refused connection (seconds): longer than an Aurora
#: resume, so the attempt that started while the database slept is the one that gets the first connection.
CONNECT_RETRY_S = 60.0
_FIRST_PAUSE_S = 0.1
_MAX_PAUSE_S = 1.0


class DatabaseUnavailable(psycopg.OperationalError):
    """No database connection could be had within the wait (``SOORMA_DB_CONNECT_WAIT_S``): the database is paused,
    resuming, restarting or unreachable. ``retry_after_s``: whole seconds a caller should wait before trying again.

    A subclass of ``psycopg.OperationalError``, so code that already treats that as "database down" keeps doing so."""

    def __init__(self, message: str, *, retry_after_s: int | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s if retry_after_s is not None else settings.DB_RETRY_AFTER_S.get()


def is_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` means "the database cannot be reached now" (retry later) rather than a fault of the request:
    :class:`DatabaseUnavailable`, a pool timeout, or a connection-level ``OperationalError``. A statement cancelled by
    ``statement_timeout`` (``QueryCanceled``) is not: it is the request's own doing."""
    return isinstance(exc, (PoolTimeout, psycopg.OperationalError)) and not isinstance(
        exc, psycopg.errors.QueryCanceled)


def _worth_retrying(exc: psycopg.OperationalError) -> bool:
    """A refused, dropped or unanswered connection (no SQLSTATE), a server starting up or shutting down (class 57P),
    or too many connections (53300); not a wrong password or an unknown database, which no wait fixes."""
    state = exc.sqlstate
    return state is None or state.startswith("57P") or state == "53300"


class WakingConnection(psycopg.Connection[Any]):
    """A ``psycopg.Connection`` whose :meth:`connect` retries a refused attempt for up to :data:`CONNECT_RETRY_S`
    (see the module docstring; a wrong password or database is raised at once); the pool opens its connections with
    it (``connection_class``)."""

    @classmethod
    def connect(cls, conninfo: str = "", **kwargs: Any) -> "WakingConnection":  # type: ignore[override]
        give_up_at = time.monotonic() + CONNECT_RETRY_S
        pause = _FIRST_PAUSE_S
        while True:
            try:
                return super().connect(conninfo, **kwargs)  # type: ignore[return-value]
            except psycopg.OperationalError as exc:
                if not _worth_retrying(exc) or time.monotonic() + pause >= give_up_at:
                    raise
                logger.info("database not accepting connections (%s); retrying in %.1f s",
                            str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__, pause)
                time.sleep(pause)
                pause = min(pause * 2, _MAX_PAUSE_S)


_SET_IDENTITY = (
    "select set_config('soorma.platform_tenant_id', %s, true),"
    " set_config('soorma.service_tenant_id', %s, true),"
    " set_config('soorma.service_user_id', %s, true)"
)


def set_identity(conn: psycopg.Connection, identity: Identity) -> None:
    """Make ``identity`` the caller of the rest of ``conn``'s current transaction (transaction-local settings that
    the RLS policies compare with): for work that acts for several identities in one transaction."""
    conn.execute(_SET_IDENTITY, (identity.platform_tenant_id, identity.service_tenant_id, identity.service_user_id))


@contextmanager
def _pipelined(conn: psycopg.Connection) -> Iterator[None]:
    """One transaction on ``conn`` in pipeline mode: ``BEGIN`` and ``COMMIT`` are sent as statements of the pipeline,
    so the only round trips are the reads of results and the final sync. (psycopg's own ``conn.transaction()`` syncs
    after its ``BEGIN`` and after its ``COMMIT``: two round trips more.) On an exception nothing is committed: the
    pipeline is synced without ``COMMIT`` and the transaction rolled back. ``conn.transaction()`` must not be used
    inside (the connection is in autocommit mode meanwhile, so it would open a transaction of its own)."""
    conn.autocommit = True  # the transaction is our BEGIN ... COMMIT
    try:
        with conn.pipeline():
            conn.execute("begin")
            yield
            conn.execute("commit")
    finally:
        with suppress(psycopg.Error):  # a broken connection is discarded by the pool when given back
            if conn.pgconn.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                conn.execute("rollback")
            conn.autocommit = False


class Database:
    """A small connection pool (``psycopg_pool.ConnectionPool``), opened on first use.

    ``max_size`` defaults to :data:`POOL_MAX_SIZE` (2): a Lambda execution environment serves one request at a time,
    and Aurora's connection limit is shared by every environment, so each keeps at most a couple of connections.

    ``statement_timeout_ms`` / ``idle_in_transaction_timeout_ms`` (milliseconds, ``0`` = no limit; default from
    ``SOORMA_DB_STATEMENT_TIMEOUT_MS`` / ``SOORMA_DB_IDLE_IN_TRANSACTION_TIMEOUT_MS``, see the module docstring) are
    set on every connection. ``connect_wait_s``: how long :meth:`transaction` waits for a connection (default
    ``SOORMA_DB_CONNECT_WAIT_S``). Raises ``ValueError`` for a malformed setting.
    """

    def __init__(self, dsn: str, *, max_size: int = POOL_MAX_SIZE, statement_timeout_ms: int | None = None,
                 idle_in_transaction_timeout_ms: int | None = None, connect_wait_s: float | None = None) -> None:
        self.dsn = dsn
        self._max_size = max_size
        self.connect_wait_s = settings.DB_CONNECT_WAIT_S.get() if connect_wait_s is None else float(connect_wait_s)
        self.statement_timeout_ms = (settings.DB_STATEMENT_TIMEOUT_MS.get()
                                     if statement_timeout_ms is None else int(statement_timeout_ms))
        self.idle_in_transaction_timeout_ms = (
            settings.DB_IDLE_IN_TRANSACTION_TIMEOUT_MS.get()
            if idle_in_transaction_timeout_ms is None else int(idle_in_transaction_timeout_ms))
        self._pool: ConnectionPool | None = None
        self._lock = threading.Lock()

    @property
    def pool(self) -> ConnectionPool:
        if self._pool is None:
            with self._lock:
                if self._pool is None:
                    self._pool = ConnectionPool(
                        self.dsn,
                        min_size=0,
                        max_size=self._max_size,
                        kwargs={"row_factory": dict_row, "autocommit": False,
                                **_with_timeouts(self.dsn, self.statement_timeout_ms,
                                                 self.idle_in_transaction_timeout_ms)},
                        check=ConnectionPool.check_connection,
                        connection_class=WakingConnection,
                        timeout=self.connect_wait_s,
                        open=True,
                    )
        return self._pool

    @contextmanager
    def connection(self, *, wait_s: float | None = None) -> Iterator[psycopg.Connection]:
        """A connection of the pool (checked, as on every checkout) for several :meth:`transaction` blocks in a row
        (``transaction(connection=conn)``): one checkout and one check for all of them. Waits up to ``wait_s``
        (default :attr:`connect_wait_s`), then raises :class:`DatabaseUnavailable`. Given back on exit."""
        wait = self.connect_wait_s if wait_s is None else max(0.0, wait_s)
        pool = self.pool
        try:
            conn = pool.getconn(timeout=wait)
        except PoolTimeout as exc:
            raise DatabaseUnavailable(f"no database connection within {wait:g} s: {exc}") from exc
        try:
            yield conn
        finally:
            pool.putconn(conn)  # a connection that broke meanwhile is discarded and replaced by the pool

    @contextmanager
    def transaction(self, identity: Identity | None = None, *, wait_s: float | None = None,
                    pipeline: bool = False, connection: psycopg.Connection | None = None
                    ) -> Iterator[psycopg.Connection]:
        """One transaction, committed on success and rolled back on an exception.

        With ``identity`` the three tenancy settings are set first, so RLS policies see the caller; without it no
        tenant-owned row is visible (the policies compare with an unset setting). Waits up to ``wait_s`` (default
        :attr:`connect_wait_s`) for a connection, then raises :class:`DatabaseUnavailable`; ``connection``: run on
        this one instead (from :meth:`connection`, not in a transaction).

        ``pipeline``: in psycopg's pipeline mode (see the module docstring). A statement's error is raised when a
        result is next read or when the block ends, not by its ``execute``, so code that catches the error of one
        statement to carry on must not use it; nor ``conn.transaction()`` inside.
        """
        with nullcontext(connection) if connection is not None else self.connection(wait_s=wait_s) as conn:
            with _pipelined(conn) if pipeline else conn.transaction():
                if identity is not None:
                    set_identity(conn, identity)
                yield conn

    @contextmanager
    def listen(self, channel: str) -> Iterator[psycopg.Connection]:
        """A new connection subscribed (``LISTEN``) to ``channel``, for ``conn.notifies(timeout=...)``
        (https://www.psycopg.org/psycopg3/docs/advanced/async.html#asynchronous-notifications); closed on exit,
        however the block ends.

        Outside the pool, with the same timeouts: a listener holds its connection for as long as it waits, which
        would leave the pool's other users (``max_size`` 2 in a function) one connection or none. So an execution
        environment that waits holds up to ``max_size`` + 1 connections. Autocommit: a notification is delivered
        between transactions only. Raises ``psycopg.Error`` when it cannot connect or subscribe.
        """
        conn = psycopg.connect(self.dsn, autocommit=True,
                               **_with_timeouts(self.dsn, self.statement_timeout_ms,
                                                self.idle_in_transaction_timeout_ms))
        try:  # not ``with conn``: its exit would first try to commit on a connection that may be broken
            conn.execute(sql.SQL("listen {}").format(sql.Identifier(channel)))
            yield conn
        finally:
            conn.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None


_shared: Database | None = None
_shared_lock = threading.Lock()


def database_from_env() -> Database:
    """The execution environment's :class:`Database`, from ``SOORMA_APP_DATABASE_URL`` (created once per process).

    Raises ``RuntimeError`` naming the variable when it is not set.
    """
    global _shared
    if _shared is None:
        with _shared_lock:
            if _shared is None:
                dsn = settings.APP_DATABASE_URL.get()
                if not dsn:
                    raise RuntimeError(f"{APP_DATABASE_URL} is not set: the function cannot reach its database")
                _shared = Database(dsn)
    return _shared
