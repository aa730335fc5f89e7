"""A bridge process for the kill tests: ``python bridge_proc.py '<config JSON>'`` (see ``conftest.BridgeProcess``).

Its function is in-process and records ``<event id> <receive count>`` for every record with one ``write(2)`` per
batch to an append-only file *before* it returns success, so what a SIGKILL leaves on disk is exactly what the
function handled; the bridge acknowledges only after that. SIGTERM stops the bridge cleanly (drain).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys

from soorma.functions.bridge import Bridge, ExponentialBackoff, InvokeResult, Route


class FileRecordingInvoker:
    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    async def invoke(self, function_name: str, payload: bytes) -> InvokeResult:
        lines = []
        for record in json.loads(payload)["Records"]:
            event_id = json.loads(record["body"])["id"]
            lines.append(f"{event_id} {record['attributes']['ApproximateReceiveCount']}\n")
        os.write(self.fd, "".join(lines).encode())
        return InvokeResult(b'{"batchItemFailures": []}')


async def main(config: dict) -> None:
    route = Route(**{**config["route"], "filter_subjects": tuple(config["route"]["filter_subjects"])})

    async def routes() -> list[Route]:
        return [route]

    kw = dict(config.get("bridge") or {})
    bridge = Bridge(
        config["nats_url"], routes, FileRecordingInvoker(config["out"]), name=config["name"],
        backoff=ExponentialBackoff(base_s=0.02, cap_s=0.1), metrics_interval_s=None,
        fetch_timeout_s=kw.pop("fetch_timeout_s", 0.5), refresh_interval_s=kw.pop("refresh_interval_s", 1.0), **kw,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    await bridge.start()
    print("bridge started", flush=True)
    await stop.wait()
    await bridge.stop(drain_timeout_s=10)
    print("bridge stopped", flush=True)


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
