"""soorma-core's ``soorma_common.tracker``: the tracker's read models, as the SDK's tracker client defines them.

Every name is looked up in :mod:`soorma.clients.tracker` (an alias, never a second model): ``PlanProgress`` is there;
``TaskExecution``, ``EventTimelineEntry``, ``EventTimeline``, ``AgentMetrics``, ``PlanExecution`` and
``DelegationGroup`` resolve once the tracker client defines them with its reads (``query_agent_metrics``,
``get_sub_plans``, ``get_session_plans``, ``get_delegation_group``).
"""

from __future__ import annotations

from typing import Any

from soorma.clients.tracker import PlanProgress

_READ_MODELS = ("TaskExecution", "EventTimelineEntry", "EventTimeline", "AgentMetrics", "PlanExecution",
                "DelegationGroup")


def __getattr__(name: str) -> Any:
    """soorma-core's other tracker models, from :mod:`soorma.clients.tracker` (PEP 562). Raises ``AttributeError``
    for any other name, or one the tracker client does not define."""
    if name in _READ_MODELS:
        from soorma.clients import tracker

        if hasattr(tracker, name):
            return getattr(tracker, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["PlanProgress"]
