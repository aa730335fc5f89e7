"""soorma-core's ``soorma_common.state``: the plan state machine's models are this SDK's (:mod:`soorma.state`);
:class:`PlanDefinition`, :class:`PlanRegistrationRequest` and :class:`PlanInstanceRequest` are soorma-core's models of
a plan *type*, which soorma-core defines but no route of its uses, and neither does this platform (a planner passes
its state machine to ``PlanContext.create_from_goal``). They are here so code that builds them imports; a
:class:`PlanDefinition`'s ``states`` is the dict ``create_from_goal(state_machine=...)`` takes.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from soorma.state import StateAction, StateConfig, StateTransition


class PlanDefinition(BaseModel):
    """A plan type's state machine: ``plan_type`` (e.g. ``research.plan``), ``description``, ``initial_state``,
    ``states`` (state name → :class:`~soorma.state.StateConfig`)."""

    plan_type: str
    description: str
    initial_state: str = "start"
    states: dict[str, StateConfig]


class PlanRegistrationRequest(BaseModel):
    """``{"plan": PlanDefinition}``."""

    plan: PlanDefinition


class PlanInstanceRequest(BaseModel):
    """A request for a plan of ``plan_type`` with ``goal_data``."""

    plan_type: str
    goal_data: dict[str, Any] = Field(default_factory=dict)
    session_id: str | None = None
    parent_plan_id: str | None = None


__all__ = ["PlanDefinition", "PlanInstanceRequest", "PlanRegistrationRequest", "StateAction", "StateConfig",
           "StateTransition"]
