"""bench/delivery.py reports an incomplete run as such: a timed-out wait is visible, the row and the line are
marked incomplete, and no target counts as met."""

from __future__ import annotations

import asyncio
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_delivery", ROOT / "bench" / "delivery.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fast_rows(bench, *, handled: int = 100, count: int = 100, timed_out: bool = False) -> dict:
    def row(**extra):
        return {"events": count, "handled": handled, "complete": handled >= count and not timed_out,
                "timed_out": timed_out, "events_per_s": 9000.0, "latency_p99_ms": 5.0, **extra}

    return {"batch_1": {"drain": row(), "live": row()}, "batch_10": {"drain": row(), "live": row()},
            "steady_batch_10": row(rate_per_s=500.0)}


async def test_wait_done_reports_a_timeout(capsys):
    bench = load_bench()
    fn = bench.NoopFunction()
    fn.reset(10)
    payload = b'{"Records":[{"body":"{\\"data\\":{\\"t\\":0}}"}]}'
    await fn.invoke("noop", payload)  # 1 of 10
    started = 0.0
    assert await bench.wait_done(fn, 0.05) is False
    assert "timed out" in capsys.readouterr().err
    row = bench.summary(fn, started, 10)
    assert row["handled"] == 1 and row["complete"] is False and row["timed_out"] is True


async def test_wait_done_true_when_everything_arrived():
    bench = load_bench()
    fn = bench.NoopFunction()
    fn.reset(1)
    await fn.invoke("noop", b'{"Records":[{"body":"{\\"data\\":{\\"t\\":0}}"}]}')
    assert await asyncio.wait_for(bench.wait_done(fn, 5), 6) is True
    assert bench.summary(fn, 0.0, 1)["complete"] is True


def test_targets_met_only_when_every_event_was_handled():
    bench = load_bench()
    good = fast_rows(bench)
    assert bench.targets_met(good, None) == {"bridge_batch_10_events_per_s": True, "bridge_steady_500_p99_ms": True}
    assert bench.incomplete_rows({"bridge": good, "sqs": None}) == []

    partial = fast_rows(bench)
    partial["steady_batch_10"] = {**partial["steady_batch_10"], "handled": 4000, "events": 5000, "complete": False}
    assert bench.targets_met(partial, None) == {"bridge_batch_10_events_per_s": False,
                                                "bridge_steady_500_p99_ms": False}
    assert bench.incomplete_rows({"bridge": partial}) == ["bridge.steady_batch_10"]

    # an SQS row that lost events makes the run incomplete too
    sqs = fast_rows(bench, handled=499, count=500)
    assert not any(bench.targets_met(good, sqs).values())
    assert "sqs.batch_1.drain" in bench.incomplete_rows({"bridge": good, "sqs": sqs})
