"""Memory client: every CoALA memory type of the memory function (prefix ``/v1/memory``) — working memory,
semantic memory (knowledge), episodic memory (interaction history), procedural memory (skills), task context, plan
context, plans and sessions.

Memory is scoped by service tenant and user. Every method takes optional ``tenant_id``/``user_id``; when omitted,
the ones of the event being handled are used (sent as ``X-Soorma-Service-Tenant`` / ``X-Soorma-Service-User``),
and outside handlers the API key's own identity applies. Method names and argument orders follow soorma-core's
``context.memory``; results are wire models that read like objects or dicts (``record.plan_id``,
``record["plan_id"]``). A 409 (a versioned write that lost a race) raises :class:`soorma.errors.ConflictError`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, TypeVar
from urllib.parse import quote

from pydantic import Field

from .._current import pending_commit
from ..errors import ConflictError
from ..models import KnowledgeItem, TaskContextRecord, WireModel
from ._http import HttpClient

DEFAULT_PLAN_ID = "default"
_PREFIX = "/v1/memory"

#: Working-memory key (in plan ``correlation_id``) of a goal's routing metadata, as soorma-core stores it (written by
#: :class:`soorma.agents.planner.Planner`, read by :meth:`MemoryClient.get_goal_metadata`).
GOAL_METADATA_KEY = "_soorma:goal:{correlation_id}"


def goal_metadata_key(correlation_id: str) -> str:
    """The working-memory key of the goal ``correlation_id``'s routing metadata (:data:`GOAL_METADATA_KEY`)."""
    return GOAL_METADATA_KEY.format(correlation_id=correlation_id)


def _path(*segments: str) -> str:
    """``/v1/memory/<segment>/...``, each segment made path-safe (``/`` and ``%`` in an id are escaped)."""
    return _PREFIX + "".join("/" + quote(str(segment), safe="") for segment in segments)


def _given(**fields: Any) -> dict[str, Any]:
    """The fields that are not ``None`` (what an optional part of a request body sends)."""
    return {name: value for name, value in fields.items() if value is not None}


class InteractionRecord(WireModel):
    """An episodic-memory entry (``/episodic``); ``score`` (1 - cosine distance) on search results."""

    id: str
    agent_id: str
    role: str
    content: str
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: str | None = None
    score: float | None = None


class ProcedureRecord(KnowledgeItem):
    """A procedural-memory entry (skill, prompt, rule): a :class:`~soorma.models.KnowledgeItem` of one agent (the
    server answers both from the same embedded, optionally public row shape); ``score`` on ``get_relevant_skills``
    results."""

    agent_id: str
    procedure_type: str = "system_prompt"
    trigger_condition: str | None = None


class PlanContextRecord(WireModel):
    """A planner's saved state (``/plan-context``), with ``version`` for optimistic concurrency."""

    plan_id: str
    session_id: str | None = None
    goal_event: str = ""
    goal_data: dict[str, Any] = Field(default_factory=dict)
    response_event: str | None = None
    state: dict[str, Any] = Field(default_factory=dict)
    current_state: str | None = None
    correlation_ids: list[str] = Field(default_factory=list)
    version: int | None = None
    created_at: str | None = None
    updated_at: str | None = None


class PlanSummary(WireModel):
    """A plan summary (``/plans``): ``status`` is pending, running, completed, failed, paused or cancelled."""

    plan_id: str
    session_id: str | None = None
    goal_event: str = ""
    goal_data: dict[str, Any] = Field(default_factory=dict)
    response_event: str | None = None
    status: str = "running"
    parent_plan_id: str | None = None
    created_at: str | None = None
    updated_at: str | None = None


class SessionSummary(WireModel):
    """A session (``/sessions``)."""

    session_id: str
    name: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: str | None = None
    last_interaction: str | None = None


class KnowledgePage(WireModel):
    """One page of ``list_knowledge``: ``items`` and the ``next_cursor`` for the next page (``None`` at the end)."""

    items: list[KnowledgeItem] = Field(default_factory=list)
    count: int = 0
    next_cursor: str | None = None


class IdempotencyRecord(WireModel):
    """An idempotency record (``/idempotency/{key}``), Powertools' ``DataRecord`` on the wire: ``status``
    ``INPROGRESS`` or ``COMPLETED``; ``expiry_timestamp`` in epoch seconds; ``in_progress_expiry_timestamp`` in epoch
    milliseconds (or ``None``); ``response_data`` JSON text (``""`` until completed); ``payload_hash`` (``""`` when
    payload validation is off)."""

    key: str
    status: str
    expiry_timestamp: int
    in_progress_expiry_timestamp: int | None = None
    response_data: str = ""
    payload_hash: str = ""
    created_at: str | None = None
    updated_at: str | None = None


class IdempotencyRecordExists(ConflictError):
    """409 from ``create_idempotency_record``: a live record holds the key. ``record`` is that record
    (:class:`IdempotencyRecord`), or ``None`` if it vanished before the service could read it."""

    def __init__(self, error: ConflictError, record: IdempotencyRecord | None) -> None:
        super().__init__(error.status, error.detail, method=error.method, url=error.url)
        self.record = record


_Model = TypeVar("_Model", bound=WireModel)


class MemoryClient(HttpClient):
    """soorma-core's ``context.memory`` over the memory routes of docs/architecture.md.

    ``MemoryClient(base_url=None, api_key=None, auth_token=None, auth_token_provider=None, *, timeout=30, transport=None)``.
    Raises :class:`soorma.errors.PlatformError` on error statuses other than the documented 404 cases.
    """

    settings_base = "memory_base"

    # --- one helper per shape of answer ----------------------------------------------------------------------------
    async def _one(
        self,
        model: type[_Model],
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        tenant_id: str | None,
        user_id: str | None,
    ) -> _Model:
        """The answer as ``model`` (an empty answer as ``{}``); every error status raises (404 included)."""
        result = await self._request(method, path, json=json, params=params, tenant_id=tenant_id, user_id=user_id)
        return model.model_validate(result or {})

    async def _optional(
        self, model: type[_Model], method: str, path: str, *, json: Any = None, tenant_id: str | None,
        user_id: str | None,
    ) -> _Model | None:
        """The answer as ``model``, or ``None`` on 404 (or an empty answer)."""
        result = await self._request(method, path, json=json, tenant_id=tenant_id, user_id=user_id, not_found=None)
        return model.model_validate(result) if result else None

    async def _list(
        self, model: type[_Model], method: str, path: str, params: Mapping[str, Any], *, tenant_id: str | None,
        user_id: str | None,
    ) -> list[_Model]:
        """The answer, a JSON array, as a list of ``model`` (``params`` that are ``None`` are not sent)."""
        rows = await self._request(method, path, params=params, tenant_id=tenant_id, user_id=user_id)
        return [model.model_validate(row) for row in rows or []]

    async def _delete(self, path: str, *, tenant_id: str | None, user_id: str | None) -> bool:
        """``DELETE path``: ``True`` when something was deleted, ``False`` on 404."""
        result = await self._request("DELETE", path, tenant_id=tenant_id, user_id=user_id, not_found=False)
        return result is not False

    # --- working memory (plan-scoped key/value) ------------------------------------------------------------------
    async def store(
        self, key: str, value: Any, plan_id: str | None = None, tenant_id: str | None = None, user_id: str | None = None
    ) -> bool:
        """Set ``key`` in plan ``plan_id`` (default ``"default"``) to a JSON value. Returns ``True``."""
        path = _path("working", plan_id or DEFAULT_PLAN_ID, key)
        await self._request("PUT", path, json={"value": value}, tenant_id=tenant_id, user_id=user_id)
        return True

    async def retrieve(
        self, key: str, plan_id: str | None = None, tenant_id: str | None = None, user_id: str | None = None
    ) -> Any:
        """The stored value, or ``None`` when the key is not set."""
        path = _path("working", plan_id or DEFAULT_PLAN_ID, key)
        body = await self._request("GET", path, tenant_id=tenant_id, user_id=user_id, not_found=None)
        return body.get("value") if isinstance(body, dict) else None

    async def delete_key(
        self, plan_id: str, tenant_id: str | None = None, user_id: str | None = None, key: str | None = None
    ) -> bool:
        """Delete one key (soorma-core's argument order); ``False`` if it was not set."""
        if key is None:
            raise ValueError("delete_key needs key=...; use cleanup_plan(plan_id) to drop a whole plan")
        return await self._delete(_path("working", plan_id, key), tenant_id=tenant_id, user_id=user_id)

    async def cleanup_plan(self, plan_id: str, tenant_id: str | None = None, user_id: str | None = None) -> bool:
        """Delete every key of a plan (``DELETE /working/{plan_id}``); ``False`` if the plan had none."""
        return await self._delete(_path("working", plan_id), tenant_id=tenant_id, user_id=user_id)

    # --- semantic memory -----------------------------------------------------------------------------------------
    async def store_knowledge(
        self,
        content: str,
        tenant_id: str | None = None,
        user_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        *,
        external_id: str | None = None,
        is_public: bool = False,
    ) -> str:
        """Upsert one fact (embedded server side); returns its id."""
        body = {"content": content, "metadata": dict(metadata or {}), "is_public": is_public,
                **_given(external_id=external_id)}
        stored = await self._request("POST", _path("semantic"), json=body, tenant_id=tenant_id, user_id=user_id)
        return str(stored["id"])

    async def store_knowledge_batch(
        self,
        items: list[str | Mapping[str, Any]],
        tenant_id: str | None = None,
        user_id: str | None = None,
    ) -> list[str]:
        """Upsert many facts in one call (``POST /semantic/batch``). Each item is a string or a dict
        ``{content, external_id?, is_public?, metadata?}``. Returns the ids in input order."""
        payload = [{"content": i} if isinstance(i, str) else dict(i) for i in items]
        stored = await self._request("POST", _path("semantic", "batch"), json={"items": payload}, tenant_id=tenant_id,
                                     user_id=user_id)
        return [str(i) for i in (stored or {}).get("ids", [])]

    async def search_knowledge(
        self,
        query: str,
        tenant_id: str | None = None,
        user_id: str | None = None,
        limit: int = 5,
        *,
        include_public: bool = True,
    ) -> list[dict[str, Any]]:
        """Nearest facts to ``query``, best first: dicts ``{id, content, external_id, is_public, metadata,
        created_at, updated_at, score}`` (score = 1 - cosine distance)."""
        params = {"query": query, "limit": limit, "include_public": str(include_public).lower()}
        found = await self._list(KnowledgeItem, "POST", _path("semantic", "query"), params, tenant_id=tenant_id,
                                 user_id=user_id)
        return [item.model_dump() for item in found]

    async def query_knowledge(
        self,
        query: str,
        tenant_id: str | None = None,
        user_id: str | None = None,
        limit: int = 5,
        include_public: bool = True,
    ) -> list[KnowledgeItem]:
        """soorma-core's ``MemoryServiceClient.query_knowledge``: :meth:`search_knowledge` (the same route,
        ``POST /semantic/query``) answering :class:`~soorma.models.KnowledgeItem` models, best first, instead of
        dicts."""
        params = {"query": query, "limit": limit, "include_public": str(include_public).lower()}
        return await self._list(KnowledgeItem, "POST", _path("semantic", "query"), params, tenant_id=tenant_id,
                                user_id=user_id)

    async def list_knowledge(
        self,
        tenant_id: str | None = None,
        user_id: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> KnowledgePage:
        """One page of the caller's own knowledge, oldest first (``GET /semantic``); pass ``page.next_cursor``
        back as ``cursor`` for the next page."""
        return await self._one(KnowledgePage, "GET", _path("semantic"), params={"limit": limit, "cursor": cursor},
                               tenant_id=tenant_id, user_id=user_id)

    async def delete_knowledge(
        self, memory_id: str, tenant_id: str | None = None, user_id: str | None = None
    ) -> bool:
        """Delete one of the caller's own facts; ``False`` if there was none (or it is not the caller's)."""
        return await self._delete(_path("semantic", memory_id), tenant_id=tenant_id, user_id=user_id)

    # --- task context (worker state across delegations) --------------------------------------------------------
    async def store_task_context(
        self,
        task_id: str,
        plan_id: str | None,
        event_type: str,
        response_event: str | None = None,
        response_topic: str = "action-results",
        data: Mapping[str, Any] | None = None,
        sub_tasks: list[str] | None = None,
        state: Mapping[str, Any] | None = None,
        tenant_id: str | None = None,
        user_id: str | None = None,
        *,
        correlation_id: str | None = None,
        session_id: str | None = None,
        goal_id: str | None = None,
        trace_id: str | None = None,
        version: int | None = None,
    ) -> TaskContextRecord:
        """Upsert a task context (``POST /task-context``); returns the stored record (with ``version``). With
        ``version`` (the one last read) an existing record is overwritten only if unchanged since, else
        :class:`~soorma.errors.ConflictError`."""
        body = {
            "task_id": task_id, "plan_id": plan_id, "event_type": event_type, "response_event": response_event,
            "response_topic": response_topic, "data": dict(data or {}), "sub_tasks": list(sub_tasks or []),
            "state": dict(state or {}), "correlation_id": correlation_id, "session_id": session_id,
            "goal_id": goal_id, "trace_id": trace_id, **_given(version=version),
        }
        unit = pending_commit()
        if unit is not None and unit.takes_task(task_id, tenant_id, user_id):
            # Inside a handler whose effects are committed at once: written with the others when it returns (a
            # JSON copy, as it would have been sent now, so later changes to the objects do not leak into it).
            fields = json.loads(json.dumps({k: v for k, v in body.items() if k != "version"}))
            return TaskContextRecord.model_validate({**fields, "version": unit.store_task(fields, version)})
        stored = await self._request("POST", _path("task-context"), json=body, tenant_id=tenant_id, user_id=user_id)
        return TaskContextRecord.model_validate(stored or body)

    async def get_task_context(
        self, task_id: str, tenant_id: str | None = None, user_id: str | None = None
    ) -> TaskContextRecord | None:
        """The saved context of ``task_id``, or ``None`` (what the running handler wrote of it, if it did)."""
        unit = pending_commit()
        if unit is not None and unit.covers(tenant_id, user_id):
            known, fields = unit.task(task_id)
            if known:
                return TaskContextRecord.model_validate(fields) if fields is not None else None
        return await self._optional(TaskContextRecord, "GET", _path("task-context", task_id), tenant_id=tenant_id,
                                    user_id=user_id)

    async def update_task_context(
        self,
        task_id: str,
        sub_tasks: list[str] | None = None,
        state: Mapping[str, Any] | None = None,
        tenant_id: str | None = None,
        user_id: str | None = None,
        *,
        version: int | None = None,
    ) -> TaskContextRecord | None:
        """Replace ``sub_tasks`` and/or ``state`` of a saved context; ``None`` if there is none. With ``version``:
        only if unchanged since (else :class:`~soorma.errors.ConflictError`)."""
        body = _given(
            version=version,
            sub_tasks=list(sub_tasks) if sub_tasks is not None else None,
            state=dict(state) if state is not None else None,
        )
        return await self._optional(TaskContextRecord, "PUT", _path("task-context", task_id), json=body,
                                    tenant_id=tenant_id, user_id=user_id)

    async def delete_task_context(self, task_id: str, tenant_id: str | None = None, user_id: str | None = None) -> bool:
        """Delete a saved context; ``False`` if there was none. Inside a handler whose effects are committed at once
        it is deleted with them (and ``True`` is returned)."""
        unit = pending_commit()
        if unit is not None and unit.takes_task(task_id, tenant_id, user_id):
            unit.delete_task(task_id)
            return True
        return await self._delete(_path("task-context", task_id), tenant_id=tenant_id, user_id=user_id)

    async def get_task_by_subtask(
        self, sub_task_id: str, tenant_id: str | None = None, user_id: str | None = None
    ) -> TaskContextRecord | None:
        """The saved context that delegated ``sub_task_id``, or ``None`` (what the running handler wrote, if so)."""
        unit = pending_commit()
        if unit is not None and unit.covers(tenant_id, user_id):
            known, fields = unit.task(sub_task_id=sub_task_id)
            if known and fields is not None:
                return TaskContextRecord.model_validate(fields)
        return await self._optional(TaskContextRecord, "GET", _path("task-context", "by-subtask", sub_task_id),
                                    tenant_id=tenant_id, user_id=user_id)

    # --- episodic memory (interaction history) -------------------------------------------------------------------
    async def log_interaction(
        self,
        agent_id: str,
        role: str,
        content: str,
        tenant_id: str | None = None,
        user_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> InteractionRecord:
        """Record one turn (``role``: user, assistant, system or tool) of ``agent_id``'s conversation with the
        user (``POST /episodic``); it is embedded server side for :meth:`search_interactions`."""
        body = {"agent_id": agent_id, "role": role, "content": content, "metadata": dict(metadata or {})}
        return await self._one(InteractionRecord, "POST", _path("episodic"), json=body, tenant_id=tenant_id,
                               user_id=user_id)

    async def get_recent_history(
        self, agent_id: str, tenant_id: str | None = None, user_id: str | None = None, limit: int = 10
    ) -> list[InteractionRecord]:
        """The ``limit`` (1-100) most recent turns with ``agent_id``, newest first."""
        return await self._list(InteractionRecord, "GET", _path("episodic", "recent"),
                                {"agent_id": agent_id, "limit": limit}, tenant_id=tenant_id, user_id=user_id)

    async def search_interactions(
        self,
        agent_id: str,
        query: str,
        tenant_id: str | None = None,
        user_id: str | None = None,
        limit: int = 5,
        *,
        ef_search: int | None = None,
    ) -> list[InteractionRecord]:
        """The turns with ``agent_id`` nearest to ``query`` (1-50), best first, with ``score``."""
        params = {"agent_id": agent_id, "q": query, "limit": limit, "ef_search": ef_search}
        return await self._list(InteractionRecord, "GET", _path("episodic", "search"), params, tenant_id=tenant_id,
                                user_id=user_id)

    # --- procedural memory (skills, prompts, rules) --------------------------------------------------------------
    async def store_procedure(
        self,
        agent_id: str,
        content: str,
        trigger_condition: str | None = None,
        procedure_type: str = "system_prompt",
        tenant_id: str | None = None,
        user_id: str | None = None,
        *,
        external_id: str | None = None,
        is_public: bool = False,
        metadata: Mapping[str, Any] | None = None,
    ) -> ProcedureRecord:
        """Upsert a skill of ``agent_id`` (``POST /procedural``): ``trigger_condition`` describes when it applies
        and is what :meth:`get_relevant_skills` matches. Upserts by ``external_id``, else by (type, trigger,
        content). ``is_public`` shares it with the whole platform tenant (roles admin, developer, agent)."""
        body = {
            "agent_id": agent_id, "content": content, "trigger_condition": trigger_condition,
            "procedure_type": procedure_type, "is_public": is_public, "metadata": dict(metadata or {}),
            **_given(external_id=external_id),
        }
        return await self._one(ProcedureRecord, "POST", _path("procedural"), json=body, tenant_id=tenant_id,
                               user_id=user_id)

    #: A shorter name for :meth:`store_procedure`.
    store_skill = store_procedure

    async def get_relevant_skills(
        self,
        agent_id: str,
        context: str,
        tenant_id: str | None = None,
        user_id: str | None = None,
        limit: int = 3,
        *,
        ef_search: int | None = None,
    ) -> list[ProcedureRecord]:
        """The procedures of ``agent_id`` whose trigger best matches ``context`` (1-20), best first."""
        params = {"agent_id": agent_id, "q": context, "limit": limit, "ef_search": ef_search}
        return await self._list(ProcedureRecord, "GET", _path("procedural", "context"), params, tenant_id=tenant_id,
                                user_id=user_id)

    async def delete_procedure(
        self, procedure_id: str, tenant_id: str | None = None, user_id: str | None = None
    ) -> bool:
        """Delete one of the caller's procedures; ``False`` if there was none."""
        return await self._delete(_path("procedural", procedure_id), tenant_id=tenant_id, user_id=user_id)

    # --- plan context (planner state) ---------------------------------------------------------------------------
    async def store_plan_context(
        self,
        plan_id: str,
        session_id: str | None = None,
        goal_event: str = "",
        goal_data: Mapping[str, Any] | None = None,
        response_event: str | None = None,
        state: Mapping[str, Any] | None = None,
        current_state: str | None = None,
        correlation_ids: list[str] | None = None,
        tenant_id: str | None = None,
        user_id: str | None = None,
        *,
        version: int | None = None,
    ) -> PlanContextRecord:
        """Upsert a plan context (``POST /plan-context``); each of ``correlation_ids`` then finds it through
        :meth:`get_plan_by_correlation`. With ``version`` (the one last read) an existing context is overwritten only
        if unchanged since, else :class:`~soorma.errors.ConflictError`."""
        body = {
            "plan_id": plan_id, "session_id": session_id, "goal_event": goal_event,
            "goal_data": dict(goal_data or {}), "response_event": response_event, "state": dict(state or {}),
            "current_state": current_state, "correlation_ids": list(correlation_ids or []),
            **_given(version=version),
        }
        return await self._one(PlanContextRecord, "POST", _path("plan-context"), json=body, tenant_id=tenant_id,
                               user_id=user_id)

    async def get_plan_context(
        self, plan_id: str, tenant_id: str | None = None, user_id: str | None = None
    ) -> PlanContextRecord | None:
        """The saved context of ``plan_id``, or ``None``."""
        return await self._optional(PlanContextRecord, "GET", _path("plan-context", plan_id), tenant_id=tenant_id,
                                    user_id=user_id)

    async def update_plan_context(
        self,
        plan_id: str,
        state: Mapping[str, Any] | None = None,
        current_state: str | None = None,
        correlation_ids: list[str] | None = None,
        tenant_id: str | None = None,
        user_id: str | None = None,
        *,
        version: int | None = None,
    ) -> PlanContextRecord | None:
        """Change some fields of a saved plan context (``PUT``); ``None`` if there is none."""
        body = _given(
            state=dict(state) if state is not None else None,
            current_state=current_state,
            correlation_ids=list(correlation_ids) if correlation_ids is not None else None,
            version=version,
        )
        return await self._optional(PlanContextRecord, "PUT", _path("plan-context", plan_id), json=body,
                                    tenant_id=tenant_id, user_id=user_id)

    async def delete_plan_context(
        self, plan_id: str, tenant_id: str | None = None, user_id: str | None = None
    ) -> bool:
        """Delete a saved plan context; ``False`` if there was none."""
        return await self._delete(_path("plan-context", plan_id), tenant_id=tenant_id, user_id=user_id)

    # soorma-core's plan state: the ``state`` of the plan context (thin adapters over the three methods above)
    async def get_plan_state(
        self, plan_id: str, tenant_id: str | None = None, user_id: str | None = None
    ) -> dict[str, Any] | None:
        """The ``state`` of plan ``plan_id``'s saved context, or ``None`` when there is no context."""
        record = await self.get_plan_context(plan_id, tenant_id=tenant_id, user_id=user_id)
        return dict(record.state) if record is not None else None

    async def set_plan_state(
        self, plan_id: str, state: Mapping[str, Any], tenant_id: str | None = None, user_id: str | None = None,
        *, version: int | None = None,
    ) -> PlanContextRecord | None:
        """Replace the ``state`` of plan ``plan_id``'s saved context (:meth:`update_plan_context`); ``None`` when
        there is no context (create one with :meth:`store_plan_context`). With ``version`` (the one last read) a
        context changed since raises :class:`~soorma.errors.ConflictError`."""
        return await self.update_plan_context(plan_id, state=state, tenant_id=tenant_id, user_id=user_id,
                                              version=version)

    async def delete_plan_state(self, plan_id: str, tenant_id: str | None = None, user_id: str | None = None) -> bool:
        """Delete plan ``plan_id``'s saved context with its state (:meth:`delete_plan_context`); ``False`` if there
        was none."""
        return await self.delete_plan_context(plan_id, tenant_id=tenant_id, user_id=user_id)

    async def get_plan_by_correlation(
        self, correlation_id: str, tenant_id: str | None = None, user_id: str | None = None
    ) -> PlanContextRecord | None:
        """The plan context that lists ``correlation_id``, or ``None`` (an indexed lookup)."""
        return await self._optional(PlanContextRecord, "GET", _path("plan-context", "by-correlation", correlation_id),
                                    tenant_id=tenant_id, user_id=user_id)

    async def get_goal_metadata(
        self, correlation_id: str, tenant_id: str | None = None, user_id: str | None = None
    ) -> dict[str, Any] | None:
        """The routing metadata a planner's ``on_goal`` stored for the goal ``correlation_id`` (working memory key
        :func:`goal_metadata_key` of plan ``correlation_id``), or ``None``."""
        value = await self.retrieve(goal_metadata_key(correlation_id), plan_id=correlation_id, tenant_id=tenant_id,
                                    user_id=user_id)
        return value if isinstance(value, dict) else None

    # --- plans and sessions --------------------------------------------------------------------------------------
    async def create_plan(
        self,
        plan_id: str,
        goal_event: str,
        goal_data: Mapping[str, Any] | None = None,
        tenant_id: str | None = None,
        user_id: str | None = None,
        session_id: str | None = None,
        parent_plan_id: str | None = None,
        *,
        response_event: str | None = None,
        status: str | None = None,
    ) -> PlanSummary:
        """Create a plan summary (``POST /plans``, 201). A plan id the caller already has raises
        :class:`~soorma.errors.ConflictError`."""
        body = {
            "plan_id": plan_id, "goal_event": goal_event, "goal_data": dict(goal_data or {}),
            "session_id": session_id, "parent_plan_id": parent_plan_id, "response_event": response_event,
            **_given(status=status),
        }
        return await self._one(PlanSummary, "POST", _path("plans"), json=body, tenant_id=tenant_id, user_id=user_id)

    async def get_plan(self, plan_id: str, tenant_id: str | None = None, user_id: str | None = None) -> PlanSummary | None:
        """The plan summary ``plan_id``, or ``None``."""
        return await self._optional(PlanSummary, "GET", _path("plans", plan_id), tenant_id=tenant_id, user_id=user_id)

    async def list_plans(
        self,
        status: str | None = None,
        tenant_id: str | None = None,
        user_id: str | None = None,
        limit: int = 20,
        *,
        session_id: str | None = None,
    ) -> list[PlanSummary]:
        """The caller's plans, newest first, optionally of one ``status`` or ``session_id`` (``limit`` 1-100)."""
        params = {"status": status, "session_id": session_id, "limit": limit}
        return await self._list(PlanSummary, "GET", _path("plans"), params, tenant_id=tenant_id, user_id=user_id)

    async def update_plan(
        self,
        plan_id: str,
        status: str | None = None,
        tenant_id: str | None = None,
        user_id: str | None = None,
        *,
        goal_data: Mapping[str, Any] | None = None,
        session_id: str | None = None,
    ) -> PlanSummary | None:
        """Change a plan's ``status`` (and/or ``goal_data``, ``session_id``); ``None`` if there is no such plan."""
        body = _given(status=status, goal_data=dict(goal_data) if goal_data is not None else None,
                      session_id=session_id)
        return await self._optional(PlanSummary, "PUT", _path("plans", plan_id), json=body, tenant_id=tenant_id,
                                    user_id=user_id)

    async def delete_plan(self, plan_id: str, tenant_id: str | None = None, user_id: str | None = None) -> bool:
        """Delete a plan summary; ``False`` if there was none."""
        return await self._delete(_path("plans", plan_id), tenant_id=tenant_id, user_id=user_id)

    async def create_session(
        self,
        session_id: str,
        name: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        tenant_id: str | None = None,
        user_id: str | None = None,
    ) -> SessionSummary:
        """Create a session, or touch an existing one (its ``last_interaction``; ``name``/``metadata`` replaced when
        given)."""
        body = {"session_id": session_id,
                **_given(name=name, metadata=dict(metadata) if metadata is not None else None)}
        return await self._one(SessionSummary, "POST", _path("sessions"), json=body, tenant_id=tenant_id,
                               user_id=user_id)

    async def get_session(
        self, session_id: str, tenant_id: str | None = None, user_id: str | None = None
    ) -> SessionSummary | None:
        """The session ``session_id``, or ``None``."""
        return await self._optional(SessionSummary, "GET", _path("sessions", session_id), tenant_id=tenant_id,
                                    user_id=user_id)

    async def list_sessions(
        self, tenant_id: str | None = None, user_id: str | None = None, limit: int = 20
    ) -> list[SessionSummary]:
        """The caller's sessions, most recent interaction first."""
        return await self._list(SessionSummary, "GET", _path("sessions"), {"limit": limit}, tenant_id=tenant_id,
                                user_id=user_id)

    async def delete_session(self, session_id: str, tenant_id: str | None = None, user_id: str | None = None) -> bool:
        """Delete a session; ``False`` if there was none."""
        return await self._delete(_path("sessions", session_id), tenant_id=tenant_id, user_id=user_id)

    # --- idempotency records (Powertools' persistence layer; soorma.idempotency) --------------------------------
    async def health(self) -> dict[str, Any]:
        """soorma-core's ``health()``: ``{"status": "ok", "service": "memory"}`` from ``GET /v1/memory/health``
        (with this client's credential). Raises :class:`~soorma.errors.PlatformError` when the platform answers
        otherwise."""
        return dict(await self._request("GET", _path("health")) or {})

    async def create_idempotency_record(
        self,
        key: str,
        *,
        expiry_timestamp: int,
        status: str = "INPROGRESS",
        in_progress_expiry_timestamp: int | None = None,
        payload_hash: str = "",
        response_data: str = "",
        tenant_id: str | None = None,
        user_id: str | None = None,
    ) -> IdempotencyRecord:
        """``PUT /idempotency/{key}``: create the record unless a live one exists (none, expired, or INPROGRESS past
        its in-progress expiry may be overwritten; Powertools' conditional put). Returns the stored record.

        Raises :class:`IdempotencyRecordExists` (a :class:`~soorma.errors.ConflictError`, ``.record`` = the live
        record) on 409, :class:`~soorma.errors.PlatformError` on other errors."""
        body = {
            "status": status, "expiry_timestamp": expiry_timestamp,
            "in_progress_expiry_timestamp": in_progress_expiry_timestamp,
            **_given(payload_hash=payload_hash or None, response_data=response_data or None),
        }
        try:
            return await self._one(IdempotencyRecord, "PUT", _path("idempotency", key), json=body,
                                   tenant_id=tenant_id, user_id=user_id)
        except ConflictError as exc:
            found = exc.detail.get("record") if isinstance(exc.detail, dict) else None
            raise IdempotencyRecordExists(exc, IdempotencyRecord.model_validate(found) if found else None) from None

    async def get_idempotency_record(
        self, key: str, tenant_id: str | None = None, user_id: str | None = None
    ) -> IdempotencyRecord | None:
        """``GET /idempotency/{key}``: the record (expired ones too), or ``None``."""
        return await self._optional(IdempotencyRecord, "GET", _path("idempotency", key), tenant_id=tenant_id,
                                    user_id=user_id)

    async def update_idempotency_record(
        self,
        key: str,
        *,
        status: str,
        expiry_timestamp: int,
        response_data: str = "",
        payload_hash: str | None = None,
        tenant_id: str | None = None,
        user_id: str | None = None,
    ) -> IdempotencyRecord:
        """``PATCH /idempotency/{key}``: set status, expiry, response data (and the payload hash when given); creates
        the record when absent (like DynamoDB's ``UpdateItem``). Returns the stored record."""
        body = {"status": status, "expiry_timestamp": expiry_timestamp, "response_data": response_data,
                **_given(payload_hash=payload_hash)}
        return await self._one(IdempotencyRecord, "PATCH", _path("idempotency", key), json=body, tenant_id=tenant_id,
                               user_id=user_id)

    async def delete_idempotency_record(self, key: str, tenant_id: str | None = None, user_id: str | None = None) -> bool:
        """``DELETE /idempotency/{key}``; ``False`` when there was no record."""
        return await self._delete(_path("idempotency", key), tenant_id=tenant_id, user_id=user_id)
