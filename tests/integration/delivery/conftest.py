"""Fixtures of the delivery fault tests: real nats-server (the session's, or a private one that a test restarts),
bridges in-process or in a subprocess that a test kills, and the local Lambda runtime.

Every test uses fresh platform tenant ids, so tests sharing the session's server never see each other's events. The
suite runs with ``--import-mode=importlib``: helpers reach the tests through the ``dk`` fixture, not an import;
``js`` and ``make_bridge`` are the shared ones of ``tests/integration/conftest.py``.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from soorma.events import EventEnvelope
from soorma.functions.bridge import Route
from soorma.jetstream import publish_envelope
from soorma.subjects import STREAM

BRIDGE_PROC = Path(__file__).with_name("bridge_proc.py")


async def publish_all(js, envelopes: list[EventEnvelope], *, window: int = 256) -> None:
    """Publish with up to ``window`` acknowledgements outstanding (each awaited: nothing unstored is counted)."""
    for start in range(0, len(envelopes), window):
        await asyncio.gather(*(publish_envelope(js, e) for e in envelopes[start:start + window]))


async def consumer_settled(js, consumer: str) -> bool:
    info = await js.consumer_info(STREAM, consumer)
    return info.num_ack_pending == 0 and info.num_pending == 0


class BridgeProcess:
    """A bridge in its own process (``bridge_proc.py``) whose function appends ``<event id> <receive count>`` lines
    to ``out`` before it returns success — so a SIGKILL leaves exactly what the function saw on disk."""

    def __init__(self, nats_url: str, route: Route, out: Path, *, name: str, log: Path, **bridge_kw) -> None:
        self.config = {
            "nats_url": nats_url,
            "name": name,
            "out": str(out),
            "bridge": bridge_kw,
            "route": {
                "consumer_name": route.consumer_name, "function_name": route.function_name,
                "filter_subjects": list(route.filter_subjects), "platform_tenant_id": route.platform_tenant_id,
                "agent": route.agent, "batch_size": route.batch_size, "max_concurrency": route.max_concurrency,
                "max_deliveries": route.max_deliveries, "timeout_s": route.timeout_s,
            },
        }
        self.log = log
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen([sys.executable, str(BRIDGE_PROC), json.dumps(self.config)],
                                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def kill(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def terminate(self) -> int | None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                return self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode if self.process else None


def read_deliveries(path: Path) -> list[tuple[str, int]]:
    """``(event id, receive count)`` per complete line of a :class:`BridgeProcess` output file."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    out = []
    for line in text.splitlines(keepends=True):
        if line.endswith("\n"):
            event_id, count = line.split()
            out.append((event_id, int(count)))
    return out


@pytest.fixture
def dk(bus_kit) -> SimpleNamespace:
    """The shared helpers (``tests/integration/conftest.py``), ``dk.RecordingInvoker`` (the shared recording
    function) and the ones above."""
    return SimpleNamespace(
        **vars(bus_kit), RecordingInvoker=bus_kit.RecordingFunction, publish_all=publish_all,
        consumer_settled=consumer_settled, BridgeProcess=BridgeProcess, read_deliveries=read_deliveries,
    )
