"""Decisions an LLM planner takes (soorma-core's ``soorma_common.decisions``).

``PlannerDecision(plan_id, current_state, next_action, alternative_actions=[], confidence=1.0, reasoning="")`` where
``next_action`` is one of :class:`PublishAction` (request an event that some agent consumes), :class:`CompleteAction`
(answer the goal), :class:`WaitAction` (pause for input) or :class:`DelegateAction` (hand the goal to another
planner), discriminated on ``action``. :class:`EventDecision` is :class:`~soorma.ai.selection.EventSelector`'s
choice of one event.
"""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field


class PlanAction(str, Enum):
    PUBLISH = "publish"
    COMPLETE = "complete"
    WAIT = "wait"
    DELEGATE = "delegate"

    def __str__(self) -> str:
        return self.value


class _Action(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="allow")


class PublishAction(_Action):
    action: Literal[PlanAction.PUBLISH] = PlanAction.PUBLISH
    event_type: str
    topic: str = "action-requests"
    data: dict[str, Any] = Field(default_factory=dict)
    response_event: Optional[str] = None
    response_topic: str = "action-results"
    correlation_id: Optional[str] = None
    reasoning: str = ""


class CompleteAction(_Action):
    action: Literal[PlanAction.COMPLETE] = PlanAction.COMPLETE
    result: Any = Field(default_factory=dict)
    reasoning: str = ""


class WaitAction(_Action):
    action: Literal[PlanAction.WAIT] = PlanAction.WAIT
    reason: str = "user_input_required"
    expected_event: Optional[str] = None
    timeout_seconds: int = 3600
    reasoning: str = ""


class DelegateAction(_Action):
    action: Literal[PlanAction.DELEGATE] = PlanAction.DELEGATE
    target_planner: str = ""
    goal_event: str
    goal_data: dict[str, Any] = Field(default_factory=dict)
    reasoning: str = ""


AnyAction = Annotated[Union[PublishAction, CompleteAction, WaitAction, DelegateAction], Field(discriminator="action")]


class PlannerDecision(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="allow")

    plan_id: str = ""
    current_state: str = "reasoning"
    next_action: AnyAction
    alternative_actions: list[AnyAction] = Field(default_factory=list)
    confidence: float = 1.0
    reasoning: str = ""


class EventDecision(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="allow")

    event_type: str
    topic: str = "action-requests"
    payload: dict[str, Any] = Field(default_factory=dict)
    reasoning: str = ""
    confidence: float = 1.0


def decision_from_llm(raw: Any, plan_id: str = "") -> PlannerDecision:
    """Read an LLM's answer leniently: a full ``PlannerDecision``, or just the action object
    (``{"action": "publish", "event_type": ..., "data": ...}``), with the action name in any case. Raises
    ``ValueError``/``pydantic.ValidationError``."""
    if not isinstance(raw, dict):
        raise ValueError(f"expected a JSON object, got {type(raw).__name__}")
    body = dict(raw)
    if "next_action" not in body:
        action = {k: v for k, v in body.items() if k not in ("plan_id", "current_state", "confidence")}
        body = {"next_action": action, "reasoning": action.get("reasoning", ""),
                **{k: raw[k] for k in ("current_state", "confidence") if k in raw}}
    action = dict(body["next_action"]) if isinstance(body["next_action"], dict) else body["next_action"]
    if isinstance(action, dict):
        kind = str(action.get("action", "")).lower()
        action["action"] = kind
        if kind == "publish" and "data" not in action and isinstance(action.get("payload"), dict):
            action["data"] = action.pop("payload")
        body["next_action"] = action
    body.setdefault("plan_id", plan_id)
    if not body.get("plan_id"):
        body["plan_id"] = plan_id
    return PlannerDecision.model_validate(body)


__all__ = [
    "CompleteAction",
    "DelegateAction",
    "EventDecision",
    "PlanAction",
    "PlannerDecision",
    "PublishAction",
    "WaitAction",
    "decision_from_llm",
]
