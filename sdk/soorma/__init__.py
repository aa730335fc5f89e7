"""Soorma Serverless SDK: event-driven agents (Planners, Workers, Tools) that run as AWS Lambda functions, or as
local processes (``agent.run()``) against ``soorma local``.

An agent object is its function's handler::

    from soorma import Worker

    worker = Worker("order-worker")

    @worker.on_task("order.process")
    async def process(task, context):
        await task.complete({"ok": True})

    # Lambda handler: "app.worker"; local process: worker.run()

The names soorma-core's SDK exports are here, and its call forms are accepted (MIGRATING.md: what runs unchanged,
what differs and why; ``tests/unit/test_soorma_core_compat.py`` calls each the soorma-core way). Several take more
options than soorma-core's, some behave differently by design (delivery is at-least-once, agents are functions with
no event stream of their own), and a few soorma-core names are absent (MIGRATING.md lists them). Importing
``soorma`` itself loads nothing: each name loads its module on first use (PEP 562), so ``from soorma import Worker``
loads the agent runtime and pydantic, while HTTP, the AI helpers, A2A and the workflow helpers wait until named.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, TypeVar

from ._lazy import lazy_exports

if TYPE_CHECKING:  # for type checkers and IDEs; at run time every name below loads on first use
    # ``X as X``: the explicit re-export form (PEP 484), as __all__ is built from _LAZY at run time
    from .agents import Agent as Agent, Planner as Planner, Tool as Tool, Worker as Worker
    from .context import PlatformContext as PlatformContext
    from .errors import (
        ConflictError as ConflictError,
        PlatformError as PlatformError,
        SoormaError as SoormaError,
        TaskNotFoundError as TaskNotFoundError,
    )
    from .events import EventDefinition as EventDefinition, EventEnvelope as EventEnvelope, EventTopic as EventTopic
    from .identity.client import IdentityClient as IdentityClient
    from .task_context import (
        DelegationSpec as DelegationSpec,
        GoalContext as GoalContext,
        InvocationContext as InvocationContext,
        ResultContext as ResultContext,
        SubTaskInfo as SubTaskInfo,
        TaskContext as TaskContext,
    )

__version__ = "0.1.0"

# Every public name loads on first use: an agent module pays for what it names, and a platform function that only
# needs a submodule (``soorma.functions.shared.db``, ``soorma.functions.registry``) does not load the agent runtime at all.
_LAZY = {
    "Agent": ".agents",
    "Planner": ".agents",
    "Tool": ".agents",
    "Worker": ".agents",
    "PlatformContext": ".context",
    "ConflictError": ".errors",
    "PlatformError": ".errors",
    "SoormaError": ".errors",
    "TaskNotFoundError": ".errors",
    "EventDefinition": ".events",
    "EventEnvelope": ".events",
    "EventTopic": ".events",
    "DelegationSpec": ".task_context",
    "GoalContext": ".task_context",
    "InvocationContext": ".task_context",
    "ResultContext": ".task_context",
    "SubTaskInfo": ".task_context",
    "TaskContext": ".task_context",
    "BusClient": ".clients",
    "GatewayClient": ".clients",
    "MemoryClient": ".clients",
    "RegistryClient": ".clients",
    "TrackerClient": ".clients",
    "IdentityClient": ".identity.client",
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


__getattr__ = lazy_exports(__name__, _LAZY)


def hello() -> str:
    """soorma-core's smoke test."""
    return f"Hello from Soorma Serverless {__version__}"


_Function = TypeVar("_Function", bound=Callable[..., Any])


def event_handler(event_type: str) -> Callable[[_Function], _Function]:
    """soorma-core's legacy decorator: marks a function with ``_soorma_event_type`` (nothing consumes it there
    either); use ``agent.on_event(event_type, topic=...)``."""

    def mark(func: _Function) -> _Function:
        func._soorma_event_type = event_type  # type: ignore[attr-defined]  # a marker on the function object
        return func

    return mark


__all__ = [
    "__version__",
    "event_handler",
    "hello",
    *sorted(_LAZY),
]
