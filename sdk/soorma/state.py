"""State-machine definitions of a :class:`~soorma.plan_context.PlanContext` (soorma-core's ``soorma_common.state``).

``StateConfig(state_name, description, action=None, transitions=[], default_next=None, is_terminal=False)``: a state;
its optional ``action`` (``StateAction(event_type, response_event, data=None)``) is requested when the plan enters
it; ``transitions`` (``StateTransition(on_event, to_state, condition=None)``) name the state a result event leads to;
``default_next`` is where the plan goes on without an event. ``condition`` is kept for soorma-core compatibility and
not evaluated (as there).
"""

from __future__ import annotations

from typing import Any, Optional

from pydantic import BaseModel, ConfigDict, Field


class _Model(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="allow")


class StateAction(_Model):
    """The request a state sends when the plan enters it. ``data`` may hold ``{{goal_data.<field>}}`` and
    ``{{results.<event_type>.<field>}}`` placeholders (a value that is exactly one placeholder keeps its type)."""

    event_type: str
    response_event: str
    data: Optional[dict[str, Any]] = None


class StateTransition(_Model):
    """``on_event`` (a result event type) moves the plan to ``to_state``."""

    on_event: str
    to_state: str
    condition: Optional[str] = None


class StateConfig(_Model):
    state_name: str
    description: str = ""
    action: Optional[StateAction] = None
    transitions: list[StateTransition] = Field(default_factory=list)
    default_next: Optional[str] = None
    is_terminal: bool = False


__all__ = ["StateAction", "StateConfig", "StateTransition"]
