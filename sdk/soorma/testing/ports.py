"""A TCP port for a server a test starts a moment later.

The usual trick (bind port 0, read the port, close, start the server on it) takes the port from the kernel's
ephemeral range, and that port is free only until the kernel hands it out again: every outgoing connection's local
port and every listener bound to port 0 (the local Lambda runtime binds one per execution environment) come from the
same range, so a server started on it a moment later can fail with ``EADDRINUSE``. Ports below the ephemeral range
are never handed out by the kernel; only a process that names one can take it.

Source: the Linux ``ip_local_port_range`` setting (ip(7), ``/proc/sys/net/ipv4/ip_local_port_range``, default
32768-60999); macOS and the BSDs use 49152-65535 (``net.inet.ip.portrange.first``), above the ports chosen here.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

#: The lowest port handed out (well above the registered services most machines run).
LOWEST = 20000
_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def ephemeral_range() -> tuple[int, int]:
    """The kernel's ephemeral port range ``(first, last)``; Linux's default where it cannot be read."""
    try:
        first, last = (int(v) for v in _RANGE_FILE.read_text().split())
        return first, last
    except (OSError, ValueError):
        return 32768, 60999


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that is free now and below the kernel's ephemeral range (module docstring), chosen at
    random so that test sessions running side by side rarely try the same one.

    Raises ``RuntimeError`` when no port between :data:`LOWEST` and the ephemeral range is free (or the range starts
    below :data:`LOWEST`)."""
    first, _ = ephemeral_range()
    candidates = list(range(LOWEST, first))
    random.shuffle(candidates)
    for port in candidates[:2000]:
        with socket.socket() as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free TCP port between {LOWEST} and {first} on {host}")
