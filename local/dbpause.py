"""A pausable proxy in front of the local stack's PostgreSQL, to simulate a paused Aurora Serverless v2 cluster.

The platform functions (and the bridge's route source) reach the database through :class:`PausableDatabase`, a byte
proxy on a Unix socket (the embedded server's own listens only on one) or, for an external server, on a TCP port of
127.0.0.1. ``pause(seconds, mode)`` makes the database unavailable for that long:

* every connection open through the proxy is cut (a paused cluster has none: Aurora pauses only without connections,
  and a function's pooled connection does not survive a pause);
* a new connection is, while paused, either **refused** (``mode="refuse"``: accepted and closed at once, which libpq
  reports as "server closed the connection unexpectedly", an ``OperationalError``) or **held** (``mode="hold"``:
  kept waiting and connected once the pause ends, which is what Aurora does while it resumes).

Bytes are forwarded by protocol callbacks (``asyncio.Protocol``): a chunk read from one side is written to the other in
the same callback, with no task to wake in between. The proxy shares the local stack's event loop with the API
Gateway, the Lambda runtime and the bridge, and every database round trip of every function crosses it twice, so a
stream reader/writer pair per direction (a task switch, i.e. a loop iteration, per chunk) cost each round trip
about 0.1 ms when idle and 0.4 ms at p90 under load; flow control is the transports' own (a side whose peer's
write buffer is full stops reading until it drains).

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
        self._links: set[asyncio.BaseTransport] = set()  # both transports of every open connection
        self._resume_task: asyncio.Task[None] | None = None
        self.refused = 0
        self.held = 0
        self.cut = 0
        self.pauses = 0

    async def start(self) -> None:
        """Listen. Raises ``ValueError`` when ``socket_dir`` is the server's own socket folder."""
        loop = asyncio.get_running_loop()
        if self.upstream.path is not None:
            path = self._socket_path()
            if str(path) == self.upstream.path:
                raise ValueError(f"the proxy's socket folder {self.socket_dir} is the database server's own")
            self.socket_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            self._server = await loop.create_unix_server(lambda: _Link(self), path=str(path))
            path.chmod(0o600)
        else:
            self._server = await loop.create_server(lambda: _Link(self), host="127.0.0.1", port=0)
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
        for transport in list(self._links):
            with contextlib.suppress(Exception):
                transport.abort()  # type: ignore[attr-defined]
        self._links.clear()

    # -- proxying -------------------------------------------------------------------------------------------------
    async def _connect(self, client: "_Link") -> None:
        """Connect ``client`` (reading paused since it was accepted) to the server: refused or held while paused
        (module docstring), then joined to an upstream connection, both ends counted in ``_links``."""
        if self.paused:
            if self._mode == "refuse":
                self.refused += 1
                client.abort()
                return
            self.held += 1
            await self._resumed.wait()
        if client.closed:
            return
        loop = asyncio.get_running_loop()
        try:
            if self.upstream.path is not None:
                _, upstream = await loop.create_unix_connection(lambda: _Link(None), self.upstream.path)
            else:
                _, upstream = await loop.create_connection(lambda: _Link(None), self.upstream.host, self.upstream.port)
        except OSError as exc:
            log.warning("database proxy: upstream unreachable: %s", exc)
            client.abort()
            return
        if client.closed or upstream.closed:  # either side left (or a pause cut it) while the server was dialled
            upstream.abort()
            client.abort()
            return
        client.join(upstream)


class _Link(asyncio.Protocol):
    """One end of a proxied connection: what it reads is written to its ``peer`` at once (module docstring). The
    client end (``proxy`` set) asks the proxy to connect it and reads nothing until then."""

    def __init__(self, proxy: PausableDatabase | None) -> None:
        self.proxy = proxy
        self.transport: asyncio.Transport | None = None
        self.peer: _Link | None = None
        self.closed = False
        self._task: asyncio.Task[None] | None = None
        self._early = bytearray()  # what the server end read before it was joined (PostgreSQL speaks second)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        if self.proxy is not None:
            transport.pause_reading()  # nothing is read before there is a server to write it to
            self._task = asyncio.get_running_loop().create_task(self.proxy._connect(self))

    def join(self, upstream: "_Link") -> None:
        assert self.proxy is not None and self.transport is not None and upstream.transport is not None
        self.peer, upstream.peer = upstream, self
        upstream.proxy = self.proxy
        self.proxy._links.update((self.transport, upstream.transport))
        if upstream._early:
            self.transport.write(bytes(upstream._early))
            upstream._early.clear()
        self.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        peer = self.peer
        if peer is None:
            self._early += data
        elif peer.transport is not None and not peer.closed:
            peer.transport.write(data)

    def eof_received(self) -> bool:
        if self.peer is not None:
            self.peer.close()
        return False  # closes this end too

    def pause_writing(self) -> None:  # our write buffer is full: stop reading what fills it
        if self.peer is not None and self.peer.transport is not None and not self.peer.closed:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None and not self.peer.closed:
            self.peer.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.proxy is not None and self.transport is not None:
            self.proxy._links.discard(self.transport)
        if self.peer is not None:
            self.peer.close()

    def close(self) -> None:
        """Close after what is buffered was written (the peer ended)."""
        if not self.closed and self.transport is not None:
            self.closed = True
            if self.proxy is not None:
                self.proxy._links.discard(self.transport)
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.closed = True
            self.transport.abort()
