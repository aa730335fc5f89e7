"""Function logs: one file per function under ``logs_dir`` (what CloudWatch's ``/aws/lambda/<name>`` group holds),
Lambda's START / END / REPORT platform lines, and the 4 KB log tail of an invocation."""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable
from pathlib import Path

from soorma.local.runtime.types import LOG_TAIL_BYTES

logger = logging.getLogger("soorma.local.runtime")

#: Called with (function name, text of one or more complete lines) for everything written to a function's log.
LogCallback = Callable[[str, str], None]


def billed_ms(duration_ms: float, init_duration_ms: float | None) -> int:
    """Lambda's Billed Duration in milliseconds: rounded up to the millisecond and, as Lambda has done for managed
    runtimes since August 2025, including the INIT phase of a cold start."""
    return math.ceil(duration_ms + (init_duration_ms or 0.0))


def report_line(request_id: str, duration_ms: float, memory_mb: int, max_memory_mb: int,
                init_duration_ms: float | None, status: str | None = None, error_type: str | None = None) -> str:
    """Lambda's REPORT line (tab-separated fields, as CloudWatch shows them); Billed Duration: :func:`billed_ms`."""
    billed = billed_ms(duration_ms, init_duration_ms)
    parts = [
        f"REPORT RequestId: {request_id}",
        f"Duration: {duration_ms:.2f} ms",
        f"Billed Duration: {billed} ms",
        f"Memory Size: {memory_mb} MB",
        f"Max Memory Used: {max_memory_mb} MB",
    ]
    if init_duration_ms is not None:
        parts.append(f"Init Duration: {init_duration_ms:.2f} ms")
    if status:
        parts.append(f"Status: {status}")
    if error_type:
        parts.append(f"Error Type: {error_type}")
    return "\t".join(parts) + "\t"


def timestamp() -> str:
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z"


def clean(data: bytes) -> bytes:
    """awslambdaric separates the lines of one multi-line record with ``\\r`` (one CloudWatch event); a local
    log file is read in a terminal, so those become newlines."""
    return data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")


def tail(*parts: bytes) -> str:
    data = b"".join(parts)
    if len(data) > LOG_TAIL_BYTES:
        data = data[-LOG_TAIL_BYTES:]
    return data.decode("utf-8", "replace")


class FunctionLogs:
    """Where one function's log lines go: ``<logs_dir>/<name>.log`` (appended, line-buffered) and ``on_log``."""

    def __init__(self, name: str, logs_dir: Path | None, on_log: LogCallback | None) -> None:
        self.name = name
        self.on_log = on_log
        self.path: Path | None = None
        self._fd: int | None = None
        if logs_dir is not None:
            logs_dir.mkdir(parents=True, exist_ok=True)
            self.path = logs_dir / f"{name}.log"
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def write(self, data: bytes) -> None:
        """Write complete lines (bytes ending in a newline)."""
        if not data:
            return
        if self._fd is not None:
            try:
                os.write(self._fd, data)
            except OSError:  # disk full or closed: logs must never fail an invocation
                pass
        if self.on_log is not None:
            try:
                self.on_log(self.name, data.decode("utf-8", "replace"))
            except Exception:  # noqa: BLE001 - a broken callback must not break the runtime
                logger.exception("on_log callback failed")

    def platform(self, line: str) -> None:
        self.write(line.encode() + b"\n")

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
