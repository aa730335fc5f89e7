"""Alias of :mod:`soorma.workflow` (``WorkflowState``)."""

from .workflow import ACTION_HISTORY_KEY, WorkflowState

__all__ = ["ACTION_HISTORY_KEY", "WorkflowState"]
