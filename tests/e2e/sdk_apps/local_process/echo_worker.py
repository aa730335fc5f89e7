"""An agent the e2e test runs as a local process (``python echo_worker.py``): ``worker.run()`` consumes its events
from the local stack's NATS."""

import os

from soorma import Worker

worker = Worker("process-echo", description="Echoes what it gets, from a local process")


@worker.on_task("process.echo")
async def echo(task, context):
    await task.report_progress(0.5, "echoing")
    await task.complete({"echo": task.data, "pid": os.getpid()})


if __name__ == "__main__":
    worker.run()
