"""Soorma Serverless SDK: event-driven agents (Planners, Workers, Tools) that run as AWS Lambda functions, or as
local processes (``agent.run()``) against ``soorma local``.

An agent object is its function's handler::

    from soorma import Worker

    worker = Worker("order-worker")

    @worker.on_task("order.process")
    async def process(task, context):
        await task.complete({"ok": True})

    # Lambda handler: "app.worker"; local process: worker.run()

The names soorma-core's SDK exports are here with the same signatures (see the reference, section 1). Importing
``soorma`` loads pydantic only; HTTP, the AI helpers, A2A and the workflow helpers load on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from .agents import Agent, Planner, Tool, Worker
from .context import PlatformContext
from .errors import ConflictError, PlatformError, SoormaError, TaskNotFoundError
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

# Loaded on first use (keeps the cold start of an agent module small).
_LAZY = {
    "BusClient": ".clients",
    "GatewayClient": ".clients",
    "MemoryClient": ".clients",
    "RegistryClient": ".clients",
    "TrackerClient": ".clients",
    "PlanContext": ".plan_context",
    "StateAction": ".state",
    "StateConfig": ".state",
    "StateTransition": ".state",
    "WorkflowState": ".workflow",
    "EventSelector": ".ai.selection",
    "EventSelectionError": ".ai.selection",
    "EventToolkit": ".ai.event_toolkit",
    "ChoreographyPlanner": ".ai.choreography",
    "A2AGatewayHelper": ".a2a",
    "EventClient": ".event_client",
    "Goal": ".agents.planner",
    "Plan": ".agents.planner",
    "Task": ".agents.planner",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'soorma' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def hello() -> str:
    """soorma-core's smoke test."""
    return f"Hello from Soorma Serverless {__version__}"


def event_handler(event_type: str):
    """soorma-core's legacy decorator: marks a function with ``_soorma_event_type`` (nothing consumes it there
    either); use ``agent.on_event(event_type, topic=...)``."""

    def mark(func):
        func._soorma_event_type = event_type
        return func

    return mark


__all__ = [
    "Agent",
    "ConflictError",
    "DelegationSpec",
    "EventDefinition",
    "EventEnvelope",
    "EventTopic",
    "GoalContext",
    "InvocationContext",
    "Planner",
    "PlatformContext",
    "PlatformError",
    "ResultContext",
    "SoormaError",
    "SubTaskInfo",
    "TaskContext",
    "TaskNotFoundError",
    "Tool",
    "Worker",
    "__version__",
    "event_handler",
    "hello",
    *sorted(_LAZY),
]
