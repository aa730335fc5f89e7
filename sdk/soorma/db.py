"""Database access shared by the platform functions: a lazily opened pool and tenant-scoped transactions.

Row-level security does the tenant isolation (DESIGN.md "Database"): the functions connect as the non-superuser role
``soorma_app`` and every transaction first sets ``soorma.platform_tenant_id``, ``soorma.service_tenant_id`` and
``soorma.service_user_id`` with ``set_config(..., true)`` (transaction-local, so a pooled connection never carries a
previous caller's identity; https://www.postgresql.org/docs/current/functions-admin.html#FUNCTIONS-ADMIN-SET).
The policies compare the rows' identity columns with ``current_setting('soorma.…', true)``.

Requires the ``functions`` extra (psycopg, psycopg-pool).
"""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from typing import Iterator

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from soorma.identity import Identity

APP_DATABASE_URL = "SOORMA_APP_DATABASE_URL"

_SET_IDENTITY = (
    "select set_config('soorma.platform_tenant_id', %s, true),"
    " set_config('soorma.service_tenant_id', %s, true),"
    " set_config('soorma.service_user_id', %s, true)"
)


class Database:
    """A small connection pool (``psycopg_pool.ConnectionPool``), opened on first use.

    ``max_size`` defaults to 2: a Lambda execution environment serves one request at a time, and Aurora's connection
    limit is shared by every environment, so each keeps at most a couple of connections.
    """

    def __init__(self, dsn: str, *, max_size: int = 2) -> None:
        self.dsn = dsn
        self._max_size = max_size
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
                        kwargs={"row_factory": dict_row, "autocommit": False},
                        check=ConnectionPool.check_connection,
                        open=True,
                    )
        return self._pool

    @contextmanager
    def transaction(self, identity: Identity | None = None) -> Iterator[psycopg.Connection]:
        """One transaction, committed on success and rolled back on an exception.

        With ``identity`` the three tenancy settings are set first, so RLS policies see the caller; without it no
        tenant-owned row is visible (the policies compare with an unset setting).
        """
        with self.pool.connection() as conn:
            with conn.transaction():
                if identity is not None:
                    conn.execute(
                        _SET_IDENTITY,
                        (identity.platform_tenant_id, identity.service_tenant_id, identity.service_user_id),
                    )
                yield conn

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
                dsn = os.environ.get(APP_DATABASE_URL)
                if not dsn:
                    raise RuntimeError(f"{APP_DATABASE_URL} is not set: the function cannot reach its database")
                _shared = Database(dsn)
    return _shared
