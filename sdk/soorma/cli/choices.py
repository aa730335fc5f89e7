"""The fixed sets of values ``soorma`` options take, as enums: typer lists them in ``--help``, completes them in the
shell, and refuses anything else as a usage error (exit 2) before a command runs."""

from __future__ import annotations

from enum import Enum


class Transport(str, Enum):
    """How events reach the agents: ``nats`` (NATS JetStream and the bridge) or ``sqs`` (SNS topic, one SQS queue
    per agent, Lambda event source mappings)."""

    nats = "nats"
    sqs = "sqs"


class AgentType(str, Enum):
    """The kind of agent ``soorma init`` scaffolds."""

    worker = "worker"
    tool = "tool"
    planner = "planner"


class RequireApproval(str, Enum):
    """``cdk deploy --require-approval``: which changes wait for a yes."""

    never = "never"
    any_change = "any-change"
    broadening = "broadening"


class MultitaskStrategy(str, Enum):
    """A session's double-texting policy (LangGraph's names): what a goal arriving while another goal of the session
    is active does."""

    reject = "reject"
    enqueue = "enqueue"
    interrupt = "interrupt"
    rollback = "rollback"
