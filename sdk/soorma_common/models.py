"""soorma-core's ``soorma_common.models``: its registry and memory DTOs, as aliases of this platform's own models.

Nothing is defined twice: each name below is the model this platform already uses for that wire shape.

* :data:`BaseDTO` — :class:`soorma.models.WireModel` (camelCase or snake_case in, camelCase aliases; unlike
  soorma-core's it keeps unknown fields instead of dropping them, so a newer server's answer survives).
* Registry: the request models are the registry function's (:mod:`soorma.functions.registry.models`, pydantic only);
  the agent and event definitions are the SDK's (:mod:`soorma.models`, :mod:`soorma.events`), which its
  :class:`~soorma.clients.registry.RegistryClient` returns.
* Memory: answers are the SDK client's models (:mod:`soorma.clients.memory`, :mod:`soorma.models`); request bodies
  are the memory function's (:mod:`soorma.functions.memory.resources`), imported when first named because that
  module needs the ``functions`` extra (FastAPI, psycopg), which an agent does not otherwise install.

Query-parameter DTOs (``AgentQueryRequest``, ``EventQueryRequest``) are the clients' keyword arguments here
(``query_agents(name=, consumed_event=, produced_event=)``, ``get_events_by_topic(topic)``); identity DTOs come with
:mod:`soorma.identity`'s client.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from pydantic import BaseModel, model_validator

from soorma.clients.memory import InteractionRecord, PlanContextRecord, PlanSummary, ProcedureRecord, SessionSummary
from soorma.events import EventDefinition
from soorma.functions.registry.models import (
    AgentList as AgentQueryResponse,
    AgentRegistrationRequest,
    AgentWriteResult as AgentRegistrationResponse,
    Capability,
    EventList as EventQueryResponse,
    EventRegistrationRequest,
    EventWriteResult as EventRegistrationResponse,
    PayloadSchema,
    PayloadSchemaList as PayloadSchemaListResponse,
    PayloadSchemaRegistrationRequest,
    PayloadSchemaWriteResult as PayloadSchemaResponse,
)
from soorma.models import AgentDefinition, DiscoveredAgent, KnowledgeItem, TaskContextRecord, WireModel

BaseDTO = WireModel


class AgentCapability(Capability):  # type: ignore[misc]  # mypy does not see soorma.functions (pyproject)
    """soorma-core's ``AgentCapability(task_name, description, consumed_event, produced_events)``: the registry's
    :class:`~soorma.functions.registry.models.Capability`, also taking SDK :class:`~soorma.events.EventDefinition`
    objects (or any pydantic model) for its events, as soorma-core's examples pass them."""

    @model_validator(mode="before")
    @classmethod
    def _events_as_dicts(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        plain = dict(value)
        for key in ("consumed_event", "consumedEvent"):
            if isinstance(plain.get(key), BaseModel):
                plain[key] = plain[key].model_dump(exclude_none=True)
        for key in ("produced_events", "producedEvents"):
            if isinstance(plain.get(key), list):
                plain[key] = [e.model_dump(exclude_none=True) if isinstance(e, BaseModel) else e for e in plain[key]]
        return plain

#: soorma-core's name for a schema to register; the registry takes the same :class:`PayloadSchema`.
PayloadSchemaRegistration = PayloadSchema

SemanticMemoryResponse = KnowledgeItem
EpisodicMemoryResponse = InteractionRecord
ProceduralMemoryResponse = ProcedureRecord
TaskContextResponse = TaskContextRecord
PlanContextResponse = PlanContextRecord

# soorma-core name -> "module:attribute" of the memory function's request/answer body (loaded on first use).
_MEMORY_BODIES = {
    "SemanticMemoryCreate": "soorma.functions.memory.resources.semantic:SemanticCreate",
    "EpisodicMemoryCreate": "soorma.functions.memory.resources.episodic:EpisodicCreate",
    "WorkingMemorySet": "soorma.functions.memory.resources.working:WorkingSet",
    "WorkingMemoryResponse": "soorma.functions.memory.resources.working:WorkingValue",
    "WorkingMemoryDeleteKeyResponse": "soorma.functions.memory.resources.working:KeyDeleted",
    "WorkingMemoryDeletePlanResponse": "soorma.functions.memory.resources.working:PlanKeysDeleted",
    "TaskContextCreate": "soorma.functions.memory.resources.task_context:TaskContextCreate",
    "TaskContextUpdate": "soorma.functions.memory.resources.task_context:TaskContextUpdate",
    "PlanContextCreate": "soorma.functions.memory.resources.plan_context:PlanContextCreate",
    "PlanContextUpdate": "soorma.functions.memory.resources.plan_context:PlanContextUpdate",
    "PlanCreate": "soorma.functions.memory.resources.plans:PlanCreate",
    "PlanUpdate": "soorma.functions.memory.resources.plans:PlanUpdate",
    "SessionCreate": "soorma.functions.memory.resources.sessions:SessionCreate",
}


def __getattr__(name: str) -> Any:
    """The memory function's request bodies under soorma-core's names (PEP 562, https://peps.python.org/pep-0562/).

    Raises
    ------
    AttributeError
        Not one of them.
    ImportError
        The ``functions`` extra is not installed (``pip install 'soorma[functions]'``).
    """
    target = _MEMORY_BODIES.get(name)
    if target is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module, attribute = target.split(":")
    value = getattr(import_module(module), attribute)
    globals()[name] = value
    return value


__all__ = [
    "AgentCapability", "AgentDefinition", "AgentQueryResponse", "AgentRegistrationRequest", "AgentRegistrationResponse",
    "BaseDTO", "DiscoveredAgent", "EpisodicMemoryResponse", "EventDefinition", "EventQueryResponse",
    "EventRegistrationRequest", "EventRegistrationResponse", "PayloadSchema", "PayloadSchemaListResponse",
    "PayloadSchemaRegistration", "PayloadSchemaRegistrationRequest", "PayloadSchemaResponse", "PlanContextResponse",
    "PlanSummary", "ProceduralMemoryResponse", "SemanticMemoryResponse", "SessionSummary", "TaskContextResponse",
]  # the memory bodies are left out, so ``import *`` works without the functions extra
