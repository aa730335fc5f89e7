"""A pausable proxy in front of the local stack's PostgreSQL, to simulate a paused Aurora Serverless v2 cluster.

The platform functions (and the bridge's route source) reach the database through :class:`PausableDatabase`, a byte
proxy on a Unix socket (the embedded server's own listens only on one) or, for an external server, on a TCP port of
127.0.0.1. ``pause(seconds, mode)`` makes the database unavailable for that long:

* every connection open through the proxy is cut (a paused cluster has none: Aurora pauses only without connections,
  and a function's pooled connection does not survive a pause);
* a new connection is, while paused, either **refused** (``mode="refuse"``: accepted and closed at once, which libpq
  reports as "server closed the connection unexpectedly", an ``OperationalError``) or **held** (``mode="hold"``:
  kept waiting and connected once the pause ends, which is what Aurora does while it resumes).

``soorma local db pause --seconds 20`` and ``POST /_local/db/pause`` (:mod:`soorma.local.server`) drive it; the
wake-up test (``tests/e2e/test_db_wake.py``) pauses the database while goals and events are in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from psycopg.conninfo import conninfo_to_dict, make_conninfo

log = logging.getLogger("soorma.local.dbpause")

MODES = ("refuse", "hold")
#: Longest pause accepted (seconds): a simulation, not a way to stop the stack's database.
MAX_PAUSE_S = 600.0
_CHUNK = 64 * 1024


@dataclass(frozen=True)
class Upstream:
    """Where the real server listens: a Unix socket ``path``, or ``host``:``port``."""

    path: str | None = None
    host: str | None = None
    port: int = 5432

    @classmethod
    def from_dsn(cls, dsn: str) -> "Upstream":
        """The server of ``dsn`` (a URL or key/value DSN); a ``host`` starting with ``/`` is a socket folder."""
        params = conninfo_to_dict(dsn)
        host = str(params.get("host") or "/tmp")
        port = int(str(params.get("port") or 5432))
        if host.startswith("/"):
            return cls(path=f"{host}/.s.PGSQL.{port}", port=port)
        return cls(host=host, port=port)


class PausableDatabase:
    """The proxy (``await start()``, ``await stop()``); :meth:`dsn` rewrites a DSN to go through it.

    ``socket_dir``: the folder of the proxy's Unix socket (used when the upstream is a Unix socket); keep its path
    short, a Unix socket path has at most 107 bytes."""

    def __init__(self, upstream: Upstream, socket_dir: Path) -> None:
        self.upstream = upstream
        self.socket_dir = Path(socket_dir)
        self._server: asyncio.AbstractServer | None = None
        self._tcp_port = 0
        self._paused_until = 0.0
        self._mode = "refuse"
        self._resumed = asyncio.Event()
        self._resumed.set()
        self._links: set[asyncio.StreamWriter] = set()
        self._resume_task: asyncio.Task[None] | None = None
        self.refused = 0
        self.held = 0
        self.cut = 0
        self.pauses = 0

    async def start(self) -> None:
        """Listen. Raises ``ValueError`` when ``socket_dir`` is the server's own socket folder."""
        if self.upstream.path is not None:
            path = self._socket_path()
            if str(path) == self.upstream.path:
                raise ValueError(f"the proxy's socket folder {self.socket_dir} is the database server's own")
            self.socket_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            self._server = await asyncio.start_unix_server(self._accept, path=str(path))
            path.chmod(0o600)
        else:
            self._server = await asyncio.start_server(self._accept, host="127.0.0.1", port=0)
            self._tcp_port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._resume_task is not None:
            self._resume_task.cancel()
        self._resumed.set()
        if self._server is not None:
            self._server.close()
            self._cut_all()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), timeout=2)
            self._server = None

    def _socket_path(self) -> Path:
        return self.socket_dir / f".s.PGSQL.{self.upstream.port}"

    def dsn(self, dsn: str) -> str:
        """``dsn`` with its server replaced by this proxy (same database, role and options)."""
        params = conninfo_to_dict(dsn)
        if self.upstream.path is not None:
            params.update(host=str(self.socket_dir), port=str(self.upstream.port))
        else:
            params.update(host="127.0.0.1", port=str(self._tcp_port))
        return make_conninfo(**params)

    # -- pausing --------------------------------------------------------------------------------------------------
    @property
    def paused(self) -> bool:
        return time.monotonic() < self._paused_until

    def pause(self, seconds: float, mode: str = "refuse") -> dict[str, Any]:
        """Make the database unavailable for ``seconds`` (see the module docstring); a pause during a pause replaces
        it. Raises ``ValueError`` for a mode other than ``refuse``/``hold`` or seconds outside ``0 < s <=``
        :data:`MAX_PAUSE_S`. Returns :meth:`status`."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
        if not 0 < seconds <= MAX_PAUSE_S:
            raise ValueError(f"seconds must be > 0 and <= {MAX_PAUSE_S:g}")
        self._mode = mode
        self._paused_until = time.monotonic() + seconds
        self._resumed.clear()
        self.pauses += 1
        self._cut_all()
        if self._resume_task is not None:
            self._resume_task.cancel()
        self._resume_task = asyncio.get_running_loop().create_task(self._resume_later(seconds))
        log.warning("database paused for %.1f s (%s new connections)", seconds, mode)
        return self.status()

    def resume(self) -> dict[str, Any]:
        """End a pause now."""
        self._paused_until = 0.0
        self._resumed.set()
        if self._resume_task is not None:
            self._resume_task.cancel()
            self._resume_task = None
        return self.status()

    async def _resume_later(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        self._paused_until = 0.0
        self._resumed.set()
        log.warning("database resumed")

    def status(self) -> dict[str, Any]:
        """``paused``, ``seconds_left``, ``mode``, and counters: ``pauses``, connections ``refused``, ``held`` and
        ``cut``, ``open`` connections."""
        return {"paused": self.paused, "seconds_left": round(max(0.0, self._paused_until - time.monotonic()), 3),
                "mode": self._mode, "pauses": self.pauses, "refused": self.refused, "held": self.held,
                "cut": self.cut, "open": len(self._links) // 2}

    def _cut_all(self) -> None:
        if self._links:
            self.cut += len(self._links) // 2
        for writer in list(self._links):
            with contextlib.suppress(Exception):
                writer.transport.abort()
        self._links.clear()

    # -- proxying -------------------------------------------------------------------------------------------------
    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.paused:
            if self._mode == "refuse":
                self.refused += 1
                writer.transport.abort()
                return
            self.held += 1
            await self._resumed.wait()
        try:
            if self.upstream.path is not None:
                up_reader, up_writer = await asyncio.open_unix_connection(self.upstream.path)
            else:
                up_reader, up_writer = await asyncio.open_connection(self.upstream.host, self.upstream.port)
        except OSError as exc:
            log.warning("database proxy: upstream unreachable: %s", exc)
            writer.transport.abort()
            return
        self._links.update((writer, up_writer))
        try:
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        finally:
            for end in (writer, up_writer):
                self._links.discard(end)
                with contextlib.suppress(Exception):
                    end.close()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(_CHUNK):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError, asyncio.IncompleteReadError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()
