"""Memory client: working memory, semantic memory and task contexts (prefix ``/v1/memory``).

Memory is scoped by service tenant and user. Every method takes optional ``tenant_id``/``user_id``; when omitted,
the ones of the event being handled are used (sent as ``X-Soorma-Service-Tenant`` / ``X-Soorma-Service-User``),
and outside handlers the API key's own identity applies.
"""

from __future__ import annotations

from typing import Any, Mapping
from urllib.parse import quote

from ..models import KnowledgeItem, TaskContextRecord
from ._http import HttpClient

DEFAULT_PLAN_ID = "default"
_PREFIX = "/v1/memory"


def _seg(value: str) -> str:
    return quote(str(value), safe="")


class MemoryClient(HttpClient):
    """soorma-core's ``context.memory`` over the memory routes of docs/architecture.md.

    ``MemoryClient(base_url, api_key=None, *, timeout=30, transport=None, auth_token_provider=None)``.
    Raises :class:`soorma.errors.PlatformError` on error statuses other than the documented 404 cases.
    """

    # --- working memory (plan-scoped key/value) ------------------------------------------------------------------
    async def store(
        self, key: str, value: Any, plan_id: str | None = None, tenant_id: str | None = None, user_id: str | None = None
    ) -> bool:
        """Set ``key`` in plan ``plan_id`` (default ``"default"``) to a JSON value. Returns ``True``."""
        path = f"{_PREFIX}/working/{_seg(plan_id or DEFAULT_PLAN_ID)}/{_seg(key)}"
        await self._request("PUT", path, json={"value": value}, tenant_id=tenant_id, user_id=user_id)
        return True

    async def retrieve(
        self, key: str, plan_id: str | None = None, tenant_id: str | None = None, user_id: str | None = None
    ) -> Any:
        """The stored value, or ``None`` when the key is not set."""
        path = f"{_PREFIX}/working/{_seg(plan_id or DEFAULT_PLAN_ID)}/{_seg(key)}"
        body = await self._request("GET", path, tenant_id=tenant_id, user_id=user_id, not_found=None)
        return body.get("value") if isinstance(body, dict) else None

    async def delete_key(
        self, plan_id: str, tenant_id: str | None = None, user_id: str | None = None, key: str | None = None
    ) -> bool:
        """Delete one key (soorma-core's argument order); ``False`` if it was not set."""
        if key is None:
            raise ValueError("delete_key needs key=...; use cleanup_plan(plan_id) to drop a whole plan")
        path = f"{_PREFIX}/working/{_seg(plan_id)}/{_seg(key)}"
        return await self._request("DELETE", path, tenant_id=tenant_id, user_id=user_id, not_found=False) is not False

    async def cleanup_plan(self, plan_id: str, tenant_id: str | None = None, user_id: str | None = None) -> bool:
        """Delete every key of a plan (``DELETE /working/{plan_id}``); ``False`` if the plan had none."""
        path = f"{_PREFIX}/working/{_seg(plan_id)}"
        return await self._request("DELETE", path, tenant_id=tenant_id, user_id=user_id, not_found=False) is not False

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
        body = {"content": content, "metadata": dict(metadata or {}), "is_public": is_public}
        if external_id is not None:
            body["external_id"] = external_id
        result = await self._request("POST", f"{_PREFIX}/semantic", json=body, tenant_id=tenant_id, user_id=user_id)
        return str(result["id"])

    async def store_knowledge_batch(
        self,
        items: list[str | Mapping[str, Any]],
        tenant_id: str | None = None,
        user_id: str | None = None,
    ) -> list[str]:
        """Upsert many facts in one call (``POST /semantic/batch``). Each item is a string or a dict
        ``{content, external_id?, is_public?, metadata?}``. Returns the ids in input order."""
        payload = [{"content": i} if isinstance(i, str) else dict(i) for i in items]
        result = await self._request(
            "POST", f"{_PREFIX}/semantic/batch", json={"items": payload}, tenant_id=tenant_id, user_id=user_id
        )
        return [str(i) for i in (result or {}).get("ids", [])]

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
        rows = await self._request(
            "POST", f"{_PREFIX}/semantic/query", params=params, tenant_id=tenant_id, user_id=user_id
        )
        return [KnowledgeItem.model_validate(r).model_dump() for r in rows or []]

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
    ) -> TaskContextRecord:
        """Upsert a task context (``POST /task-context``); returns the stored record (with ``version``)."""
        body = {
            "task_id": task_id,
            "plan_id": plan_id,
            "event_type": event_type,
            "response_event": response_event,
            "response_topic": response_topic,
            "data": dict(data or {}),
            "sub_tasks": list(sub_tasks or []),
            "state": dict(state or {}),
            "correlation_id": correlation_id,
            "session_id": session_id,
            "goal_id": goal_id,
            "trace_id": trace_id,
        }
        result = await self._request(
            "POST", f"{_PREFIX}/task-context", json=body, tenant_id=tenant_id, user_id=user_id
        )
        return TaskContextRecord.model_validate(result or body)

    async def get_task_context(
        self, task_id: str, tenant_id: str | None = None, user_id: str | None = None
    ) -> TaskContextRecord | None:
        """The saved context of ``task_id``, or ``None``."""
        path = f"{_PREFIX}/task-context/{_seg(task_id)}"
        result = await self._request("GET", path, tenant_id=tenant_id, user_id=user_id, not_found=None)
        return TaskContextRecord.model_validate(result) if result else None

    async def update_task_context(
        self,
        task_id: str,
        sub_tasks: list[str] | None = None,
        state: Mapping[str, Any] | None = None,
        tenant_id: str | None = None,
        user_id: str | None = None,
    ) -> TaskContextRecord | None:
        """Replace ``sub_tasks`` and/or ``state`` of a saved context; ``None`` if there is none."""
        body: dict[str, Any] = {}
        if sub_tasks is not None:
            body["sub_tasks"] = list(sub_tasks)
        if state is not None:
            body["state"] = dict(state)
        path = f"{_PREFIX}/task-context/{_seg(task_id)}"
        result = await self._request("PUT", path, json=body, tenant_id=tenant_id, user_id=user_id, not_found=None)
        return TaskContextRecord.model_validate(result) if result else None

    async def delete_task_context(self, task_id: str, tenant_id: str | None = None, user_id: str | None = None) -> bool:
        """Delete a saved context; ``False`` if there was none."""
        path = f"{_PREFIX}/task-context/{_seg(task_id)}"
        return await self._request("DELETE", path, tenant_id=tenant_id, user_id=user_id, not_found=False) is not False

    async def get_task_by_subtask(
        self, sub_task_id: str, tenant_id: str | None = None, user_id: str | None = None
    ) -> TaskContextRecord | None:
        """The saved context that delegated ``sub_task_id``, or ``None``."""
        path = f"{_PREFIX}/task-context/by-subtask/{_seg(sub_task_id)}"
        result = await self._request("GET", path, tenant_id=tenant_id, user_id=user_id, not_found=None)
        return TaskContextRecord.model_validate(result) if result else None
