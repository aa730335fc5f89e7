"""Soorma Serverless SDK: event-driven agents (Planners, Workers, Tools) that run as AWS Lambda functions.

An agent object is its function's handler::

    from soorma import Worker

    worker = Worker("order-worker")

    @worker.on_task("order.process")
    async def process(task, context):
        await task.complete({"ok": True})

    # Lambda handler: "app.worker"

Importing ``soorma`` loads pydantic and httpx only (no FastAPI, no database driver).
"""

from .agents import Agent, Planner, Tool, Worker
from .clients import BusClient, GatewayClient, MemoryClient, RegistryClient, TrackerClient
from .context import PlatformContext
from .errors import PlatformError, SoormaError, TaskNotFoundError
from .events import EventDefinition, EventEnvelope, EventTopic
from .task_context import (
    DelegationSpec,
    GoalContext,
    InvocationContext,
    ResultContext,
    SubTaskInfo,
    TaskContext,
)

__version__ = "0.1.0"

__all__ = [
    "Agent",
    "BusClient",
    "DelegationSpec",
    "EventDefinition",
    "EventEnvelope",
    "EventTopic",
    "GatewayClient",
    "GoalContext",
    "InvocationContext",
    "MemoryClient",
    "PlatformContext",
    "PlatformError",
    "Planner",
    "RegistryClient",
    "ResultContext",
    "SoormaError",
    "SubTaskInfo",
    "TaskContext",
    "TaskNotFoundError",
    "Tool",
    "TrackerClient",
    "Worker",
    "__version__",
]
