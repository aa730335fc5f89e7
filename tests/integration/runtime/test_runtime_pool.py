"""Pool behaviour: concurrent environments, queueing beyond max_concurrency, idle reaping, logs and REPORT."""

from __future__ import annotations

import asyncio
import os
import re
import time

import pytest

from soorma.local.runtime import FunctionConfig, LocalLambda

SLOW = """
    import os, time

    def handler(event, context):
        time.sleep(event.get("sleep", 0))
        print("slept", event.get("sleep", 0))
        return {"pid": os.getpid()}
"""

REPORT = re.compile(
    r"REPORT RequestId: (?P<id>[0-9a-f-]{36})\tDuration: (?P<duration>[\d.]+) ms\tBilled Duration: (?P<billed>\d+) ms"
    r"\tMemory Size: (?P<memory>\d+) MB\tMax Memory Used: (?P<used>\d+) MB\t(?:Init Duration: (?P<init>[\d.]+) ms\t)?")


@pytest.mark.timeout(60)
async def test_parallel_invocations_use_separate_environments(runtime, write_module, code_dir):
    write_module("fn", SLOW)
    runtime.register(FunctionConfig("par", "fn.handler", str(code_dir), {}, max_concurrency=2))
    # warm both environments so the measurement below is about execution, not INIT
    warm = await asyncio.gather(*(runtime.invoke("par", b'{"sleep": 0.3}') for _ in range(2)))
    assert len({r.json()["pid"] for r in warm}) == 2

    started = time.perf_counter()
    results = await asyncio.gather(*(runtime.invoke("par", b'{"sleep": 1.0}') for _ in range(2)))
    elapsed = time.perf_counter() - started
    assert all(r.function_error is None and r.init_duration_ms is None for r in results)
    assert len({r.json()["pid"] for r in results}) == 2
    assert 1.0 <= elapsed < 1.7, elapsed  # ~1x, not 2x

    # a third concurrent invocation waits for a free environment instead of failing or starting a third one
    started = time.perf_counter()
    results = await asyncio.gather(*(runtime.invoke("par", b'{"sleep": 0.5}') for _ in range(3)))
    elapsed = time.perf_counter() - started
    assert all(r.function_error is None for r in results)
    assert len({r.json()["pid"] for r in results}) == 2
    assert 1.0 <= elapsed < 2.5, elapsed  # the third one ran after one of the first two
    stats = runtime.stats()["par"]
    assert stats["environments"] == 2 and stats["cold_starts"] == 2 and stats["waiting"] == 0


@pytest.mark.timeout(60)
async def test_idle_environments_are_reaped(runtime, write_module, code_dir):
    write_module("fn", SLOW)
    runtime.register(FunctionConfig("idle", "fn.handler", str(code_dir), {}, idle_timeout_s=0.5))
    pid = (await runtime.invoke("idle", b"{}")).json()["pid"]
    await asyncio.sleep(0.3)
    again = await runtime.invoke("idle", b"{}")  # used before the deadline: stays warm, the clock restarts
    assert again.json()["pid"] == pid and again.init_duration_ms is None
    assert runtime.stats()["idle"]["environments"] == 1
    deadline = time.perf_counter() + 5
    while runtime.stats()["idle"]["environments"] and time.perf_counter() < deadline:
        await asyncio.sleep(0.05)
    assert runtime.stats()["idle"]["environments"] == 0
    await asyncio.sleep(0.3)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    cold = await runtime.invoke("idle", b"{}")
    assert cold.init_duration_ms is not None and cold.json()["pid"] != pid


@pytest.mark.timeout(60)
async def test_report_lines_and_log_files(tmp_path, write_module, code_dir):
    write_module("fn", SLOW)
    seen: list[tuple[str, str]] = []
    lam = LocalLambda(logs_dir=tmp_path / "logs", on_log=lambda name, text: seen.append((name, text)))
    try:
        lam.register(FunctionConfig("logged", "fn.handler", str(code_dir), {}, memory_mb=1024))
        cold = await lam.invoke("logged", b'{"sleep": 0.05}')
        warm = await lam.invoke("logged", b'{"sleep": 0}')
    finally:
        await lam.close()

    cold_report = REPORT.search(cold.log_tail)
    assert cold_report and cold_report["id"] == cold.request_id
    assert float(cold_report["duration"]) >= 50 and cold_report["memory"] == "1024"
    assert int(cold_report["used"]) > 0
    assert cold_report["init"] is not None and abs(float(cold_report["init"]) - cold.init_duration_ms) < 0.01
    assert int(cold_report["billed"]) >= int(float(cold_report["duration"]))
    warm_report = REPORT.search(warm.log_tail)
    assert warm_report and warm_report["init"] is None
    assert warm.log_tail.startswith(f"START RequestId: {warm.request_id} Version: $LATEST\n")
    assert f"slept 0\nEND RequestId: {warm.request_id}\n" in warm.log_tail

    log = (tmp_path / "logs" / "logged.log").read_text()
    assert log.startswith("INIT_START ")
    ids = [m["id"] for m in REPORT.finditer(log)]
    assert ids == [cold.request_id, warm.request_id]
    assert log.index(f"START RequestId: {warm.request_id}") < log.index("slept 0\n") < log.index(
        f"END RequestId: {warm.request_id}")
    streamed = "".join(text for name, text in seen if name == "logged")
    assert streamed == log
