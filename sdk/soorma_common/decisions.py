"""soorma-core's ``soorma_common.decisions``."""

from soorma.ai.decisions import (
    CompleteAction,
    DelegateAction,
    EventDecision,
    PlanAction,
    PlannerDecision,
    PublishAction,
    WaitAction,
)

__all__ = ["CompleteAction", "DelegateAction", "EventDecision", "PlanAction", "PlannerDecision", "PublishAction",
           "WaitAction"]
