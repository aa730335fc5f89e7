"""An agent that always fails (tests/e2e/test_console.py): its task is dead-lettered after one delivery
(``max_deliveries = 1`` in ``soorma.toml``), so the console has a dead letter to show and replay."""

from soorma import Worker

worker = Worker("console-breaker", description="Fails every task, so its events are dead-lettered")


@worker.on_task("console.break")
async def always_fails(task, context):
    raise RuntimeError(f"console.break always fails (task {task.task_id})")
