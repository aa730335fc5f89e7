"""Benchmark of the local Lambda runtime (soorma.local.runtime): prints one JSON line.

- warm invocation overhead: sequential invocations of a no-op handler on one warm environment, timed around
  ``LocalLambda.invoke`` (p50 / p99 / mean, ms);
- cold start: a fresh environment per sample (spawn, interpreter + awslambdaric start, handler import, first
  response): wall time of the cold ``invoke`` and the INIT duration the runtime reports (medians, ms);
- throughput: invocations/s of the no-op handler across 4 warm environments with 4 and 8 concurrent callers.

Targets (issue 8): warm overhead p50 <= 1 ms; at least 1,000 invocations/s across 4 environments (2-core machine);
``targets_met`` says whether this run met them.

Usage: ``python bench/local_runtime.py [--warm N] [--cold N] [--seconds S]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

from soorma.local.runtime import FunctionConfig, LocalLambda

NOOP = "def handler(event, context):\n    return {}\n"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


async def warm_overhead(lam: LocalLambda, code: str, n: int) -> dict:
    lam.register(FunctionConfig("noop-warm", "noop.handler", code, {}, max_concurrency=1))
    for _ in range(200):
        await lam.invoke("noop-warm", b"{}")
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        result = await lam.invoke("noop-warm", b"{}")
        samples.append((time.perf_counter() - started) * 1000)
        assert result.function_error is None
    return {
        "warm_p50_ms": round(statistics.median(samples), 3),
        "warm_p99_ms": round(percentile(samples, 99), 3),
        "warm_mean_ms": round(statistics.fmean(samples), 3),
        "single_env_sequential_per_s": round(1000 / statistics.fmean(samples)),
        "warm_samples": n,
    }


async def cold_start(lam: LocalLambda, code: str, n: int) -> dict:
    walls, inits = [], []
    for i in range(n):
        name = f"noop-cold-{i}"
        lam.register(FunctionConfig(name, "noop.handler", code, {}))
        started = time.perf_counter()
        result = await lam.invoke(name, b"{}")
        walls.append((time.perf_counter() - started) * 1000)
        assert result.function_error is None and result.init_duration_ms is not None
        inits.append(result.init_duration_ms)
        lam.unregister(name)
    return {
        "cold_invoke_p50_ms": round(statistics.median(walls), 1),
        "cold_init_duration_p50_ms": round(statistics.median(inits), 1),
        "cold_invoke_max_ms": round(max(walls), 1),
        "cold_samples": n,
    }


async def throughput(lam: LocalLambda, code: str, callers: int, seconds: float) -> float:
    name = f"noop-tp-{callers}"
    lam.register(FunctionConfig(name, "noop.handler", code, {}, max_concurrency=4))
    await asyncio.gather(*(lam.invoke(name, b"{}") for _ in range(4)))  # four cold starts: four environments
    assert lam.stats()[name]["environments"] == 4
    count = 0
    stop = time.perf_counter() + seconds

    async def caller() -> None:
        nonlocal count
        while time.perf_counter() < stop:
            result = await lam.invoke(name, b"{}")
            assert result.function_error is None
            count += 1

    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(callers)))
    elapsed = time.perf_counter() - started
    assert lam.stats()[name]["environments"] == 4
    lam.unregister(name)
    return round(count / elapsed)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--warm", type=int, default=3000)
    parser.add_argument("--cold", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="soorma-bench-rt-") as tmp:
        code = Path(tmp) / "code"
        code.mkdir()
        (code / "noop.py").write_text(NOOP)
        lam = LocalLambda(logs_dir=Path(tmp) / "logs")
        try:
            figures: dict = {"bench": "local_runtime"}
            figures.update(await warm_overhead(lam, str(code), args.warm))
            figures.update(await cold_start(lam, str(code), args.cold))
            figures["throughput_4env_4callers_per_s"] = await throughput(lam, str(code), 4, args.seconds)
            figures["throughput_4env_8callers_per_s"] = await throughput(lam, str(code), 8, args.seconds)
        finally:
            await lam.close()
    figures["targets_met"] = {
        "warm_p50_le_1ms": figures["warm_p50_ms"] <= 1.0,
        "ge_1000_per_s_4env": max(figures["throughput_4env_4callers_per_s"],
                                  figures["throughput_4env_8callers_per_s"]) >= 1000,
    }
    figures.update({
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "awslambdaric": metadata.version("awslambdaric"),
        "platform": sys.platform,
    })
    print(json.dumps(figures))


if __name__ == "__main__":
    asyncio.run(main())
