"""``WorkflowState``: plan-scoped working memory with a small API (reference §1.10).

``WorkflowState(memory_client, plan_id, tenant_id=None, user_id=None)``: ``set``/``get``/``has``/``delete``/
``cleanup`` over ``/v1/memory/working/{plan_id}/{key}``, and the read-modify-write helpers ``increment``,
``append``, ``extend``, ``update_dict``, ``record_action``.

Unlike soorma-core, the helpers are **atomic on the server**: each is one request to an operation route of the
memory function, applied in one SQL statement, so two agents incrementing the same counter (or appending to the
same list) at once never lose an update:

* ``POST /v1/memory/working/{plan_id}/{key}/increment`` ``{"delta": n}`` — a missing key or a non-number counts as 0;
* ``POST /v1/memory/working/{plan_id}/{key}/append`` ``{"items": [...]}`` — a missing key or a non-list counts as
  ``[]``;
* ``POST /v1/memory/working/{plan_id}/{key}/merge`` ``{"updates": {...}}`` — shallow merge; a missing key or a
  non-object counts as ``{}``;

each answering ``{"planId", "key", "value"}`` with the new value. If the memory function does not serve these routes
(404/405), the helper falls back to read-then-write (not atomic) and logs a warning once.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Callable
from urllib.parse import quote

from .errors import PlatformError

if TYPE_CHECKING:
    from .clients.memory import MemoryClient

log = logging.getLogger("soorma.workflow")

ACTION_HISTORY_KEY = "_action_history"
_PREFIX = "/v1/memory/working"


def _seg(value: str) -> str:
    return quote(str(value), safe="")


class WorkflowState:
    """Plan-scoped state. ``tenant_id``/``user_id`` default to the event being handled."""

    _warned = False

    def __init__(self, memory_client: MemoryClient, plan_id: str, tenant_id: str | None = None,
                 user_id: str | None = None) -> None:
        self.memory = memory_client
        self.plan_id = plan_id
        self.tenant_id = tenant_id
        self.user_id = user_id
        self._action_history_key = ACTION_HISTORY_KEY

    def _ids(self) -> dict[str, Any]:
        return {"tenant_id": self.tenant_id, "user_id": self.user_id}

    # --- plain keys ----------------------------------------------------------------------------------------------
    async def set(self, key: str, value: Any) -> None:
        await self.memory.store(key, value, plan_id=self.plan_id, **self._ids())

    async def get(self, key: str, default: Any = None) -> Any:
        value = await self.memory.retrieve(key, plan_id=self.plan_id, **self._ids())
        return default if value is None else value

    async def has(self, key: str) -> bool:
        return await self.memory.retrieve(key, plan_id=self.plan_id, **self._ids()) is not None

    async def delete(self, key: str) -> bool:
        """Delete ``key``; ``False`` if it was not set."""
        return await self.memory.delete_key(self.plan_id, key=key, **self._ids())

    async def cleanup(self) -> bool:
        """Delete every key of the plan."""
        return await self.memory.cleanup_plan(self.plan_id, **self._ids())

    # --- atomic helpers ------------------------------------------------------------------------------------------
    async def increment(self, key: str, delta: int | float = 1) -> int | float:
        """Add ``delta`` to the number at ``key`` (atomically); returns the new value."""
        return _number(await self._op(key, "increment", {"delta": delta}, lambda cur: _number(cur) + delta))

    async def append(self, key: str, item: Any) -> list[Any]:
        """Append ``item`` to the list at ``key`` (atomically); returns the new list."""
        return _list(await self._op(key, "append", {"items": [item]}, lambda cur: [*_list(cur), item]))

    async def extend(self, key: str, items: list[Any]) -> list[Any]:
        """Append ``items`` to the list at ``key`` (atomically); returns the new list."""
        items = list(items)
        return _list(await self._op(key, "append", {"items": items}, lambda cur: [*_list(cur), *items]))

    async def update_dict(self, key: str, updates: dict[str, Any]) -> dict[str, Any]:
        """Merge ``updates`` into the object at ``key`` (shallow, atomically); returns the new object."""
        updates = dict(updates)
        return _dict(await self._op(key, "merge", {"updates": updates}, lambda cur: {**_dict(cur), **updates}))

    async def record_action(self, event_name: str) -> None:
        """Append ``event_name`` to the plan's action history (atomically)."""
        await self.append(self._action_history_key, event_name)

    async def get_action_history(self) -> list[str]:
        """The recorded actions, oldest first."""
        history = await self.get(self._action_history_key)
        if isinstance(history, dict):  # soorma-core stored {"actions": [...]}
            history = history.get("actions")
        return list(history) if isinstance(history, list) else []

    async def _op(self, key: str, op: str, body: dict[str, Any], fallback: Callable[[Any], Any]) -> Any:
        """The new value at ``key`` after the server applied ``op``, or after ``fallback(current value)`` was written
        where the server has no such route; the callers coerce it as the server does (``_number``, ``_list``,
        ``_dict``), so a value of the wrong kind reads as its kind's empty value."""
        path = f"{_PREFIX}/{_seg(self.plan_id)}/{_seg(key)}/{op}"
        try:
            result = await self.memory._request("POST", path, json=body, **self._ids())
        except PlatformError as exc:
            if exc.status not in (404, 405):
                raise
            if not WorkflowState._warned:
                WorkflowState._warned = True
                log.warning("the memory function has no %s route (HTTP %s): WorkflowState falls back to "
                            "read-then-write, which is NOT atomic", path.rsplit("/", 1)[-1], exc.status)
            value = fallback(await self.get(key))
            await self.set(key, value)
            return value
        return result.get("value") if isinstance(result, dict) else result


def _number(value: Any) -> int | float:
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else 0


def _list(value: Any) -> list[Any]:
    if isinstance(value, dict) and isinstance(value.get("actions"), list):
        return list(value["actions"])
    return list(value) if isinstance(value, list) else []


def _dict(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, dict) else {}


__all__ = ["WorkflowState"]
