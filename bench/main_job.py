"""Benchmark of the main job on the local stack. Prints one JSON line:

* ``up_seconds``: wall time of ``soorma local up`` on a fresh state folder (embedded PostgreSQL, NATS, migrations,
  functions, API, bridge) until it reports ready;
* ``deploy_seconds`` and ``ingested_per_second`` (from the example's setup step output);
* goal latency (submit over HTTP → completed, polled every 20 ms) p50/p95/max over the 20 questions of
  ``examples/research-advisor/questions.json``, sequentially, after one warm-up goal; ``cited_expected`` counts
  the goals whose sources include an expected module.

Run: ``.venv/bin/python bench/main_job.py``. Timings on shared machines are noisy: compare runs made together.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from soorma.testing import free_port  # below the ephemeral range (soorma.testing.ports)

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "research-advisor"
SOORMA = str(Path(sys.executable).with_name("soorma"))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def main() -> None:
    home = Path(tempfile.mkdtemp(prefix="soorma-bench-")) / "s"
    env = {**os.environ, "SOORMA_HOME": str(home), "SOORMA_LOCAL_PORT": str(free_port()),
           "SOORMA_NATS_PORT": str(free_port())}

    def run(*args: str) -> subprocess.CompletedProcess:
        result = subprocess.run([SOORMA, *args], env=env, cwd=ROOT, capture_output=True, text=True)
        if result.returncode != 0:
            raise SystemExit(f"soorma {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result

    started = time.monotonic()
    run("local", "up")
    up_seconds = time.monotonic() - started
    try:
        started = time.monotonic()
        deploy = run("local", "deploy", str(EXAMPLE))
        deploy_seconds = time.monotonic() - started
        rate = re.search(r"([\d.]+)\s+passages?/s", deploy.stdout + deploy.stderr)
        credentials = json.loads((home / "credentials.json").read_text())
        questions = json.loads((EXAMPLE / "questions.json").read_text())
        latencies: list[float] = []
        cited = 0
        with httpx.Client(base_url=credentials["api_url"], timeout=60,
                          headers={"authorization": f"Bearer {credentials['api_key']}"}) as client:
            for index, item in enumerate([questions[0], *questions]):
                t0 = time.monotonic()
                goal_id = client.post("/v1/goals", json={"goal_type": "research.goal",
                                                          "data": {"question": item["question"]}}).json()["goal_id"]
                while True:
                    goal = client.get(f"/v1/goals/{goal_id}").json()
                    if goal["status"] != "running" or time.monotonic() - t0 > 120:
                        break
                    time.sleep(0.02)
                elapsed = time.monotonic() - t0
                if index == 0:
                    continue  # warm-up: first use of each execution environment
                latencies.append(elapsed)
                payload = (goal.get("result") or {}).get("result") or goal.get("result") or {}
                modules = {s.get("module") for s in payload.get("sources", [])}
                cited += bool(set(item["expect_modules"]) & modules) and goal["status"] == "completed"
    finally:
        run("local", "down")
    print(json.dumps({
        "benchmark": "main_job",
        "up_seconds": round(up_seconds, 2),
        "deploy_seconds": round(deploy_seconds, 2),
        "ingested_per_second": float(rate.group(1)) if rate else None,
        "goals": len(latencies),
        "goal_latency_p50_s": round(statistics.median(latencies), 3),
        "goal_latency_p95_s": round(percentile(latencies, 0.95), 3),
        "goal_latency_max_s": round(max(latencies), 3),
        "cited_expected": cited,
    }))


if __name__ == "__main__":
    main()
