"""A worker whose goal lasts a while and records many events: ``stream.tick.requested`` ``{"steps": n, "delay_s": s}``
reports progress ``n`` times, ``s`` seconds apart, then completes with ``{"ticks": n}``. The live goal stream tests
(tests/e2e/test_goal_streams.py) and bench/stream.py follow its goals."""

import asyncio

from soorma import Worker
from soorma.context import PlatformContext
from soorma.task_context import TaskContext

worker = Worker(name="stream-ticker", description="Reports progress a number of times, then completes")


@worker.on_task("stream.tick.requested")
async def tick(task: TaskContext, context: PlatformContext) -> None:
    steps = max(1, min(int(task.data.get("steps", 5)), 200))
    delay_s = max(0.0, min(float(task.data.get("delay_s", 0.2)), 5.0))
    for step in range(1, steps + 1):
        await task.report_progress(step / steps, f"tick {step}")
        await asyncio.sleep(delay_s)
    await task.complete({"ticks": steps})
