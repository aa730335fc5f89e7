"""soorma-core's ``soorma_common.tracker``: the tracker's read models, aliases of :mod:`soorma.tracker_models`
(never second models): ``PlanProgress``, ``TaskExecution``, ``EventTimelineEntry``, ``EventTimeline``,
``AgentMetrics``, ``PlanExecution``, ``DelegationGroup``.
"""

from __future__ import annotations

from soorma.tracker_models import (
    AgentMetrics,
    DelegationGroup,
    EventTimeline,
    EventTimelineEntry,
    PlanExecution,
    PlanProgress,
    TaskExecution,
)

__all__ = ["AgentMetrics", "DelegationGroup", "EventTimeline", "EventTimelineEntry", "PlanExecution", "PlanProgress",
           "TaskExecution"]
