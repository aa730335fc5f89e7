"""Registry client: event definitions and agents (``/v1/events``, ``/v1/agents``, ``/v1/schemas``)."""

from __future__ import annotations

from typing import Any, Mapping
from urllib.parse import quote

from ..events import EventDefinition, EventTopic
from ..models import AgentDefinition, DiscoveredAgent
from ._http import HttpClient, snake_keys


def _as_dict(obj: Any) -> dict[str, Any]:
    if hasattr(obj, "model_dump"):  # a pydantic model, or anything shaped like one
        dumped: dict[str, Any] = obj.model_dump(exclude_none=True)
        return dumped
    if isinstance(obj, Mapping):
        return dict(obj)
    raise TypeError(f"expected a pydantic model or a dict, got {type(obj).__name__}")


def _event(raw: Mapping[str, Any]) -> EventDefinition:
    return EventDefinition.model_validate(snake_keys(raw))


class RegistryClient(HttpClient):
    """soorma-core's ``RegistryClient`` over the registry routes of docs/architecture.md.

    ``RegistryClient(base_url=None, api_key=None, auth_token=None, auth_token_provider=None, *, timeout=30, transport=None)``.
    Every method raises :class:`soorma.errors.PlatformError` on an error status. Registry data is scoped by the
    platform tenant of the API key.
    """

    settings_base = "registry_base"

    # --- events ------------------------------------------------------------------------------------------------
    async def register_event(self, event_definition: EventDefinition | Mapping[str, Any]) -> dict[str, Any]:
        """Upsert an event definition (``POST /v1/events``); returns the response with snake_case keys."""
        body = await self._request("POST", "/v1/events", json={"event": _as_dict(event_definition)})
        return snake_keys(body or {})

    async def get_event(self, event_name: str) -> EventDefinition | None:
        """The definition named ``event_name``, or ``None``."""
        events = await self._events(event_name=event_name)
        return next((e for e in events if e.event_name == event_name), None)

    async def get_events_by_topic(self, topic: str | EventTopic) -> list[EventDefinition]:
        """Every definition on ``topic``."""
        return await self._events(topic=str(topic))

    async def get_all_events(self) -> list[EventDefinition]:
        return await self._events()

    async def _events(self, **params: Any) -> list[EventDefinition]:
        body = await self._request("GET", "/v1/events", params=params) or {}
        return [_event(e) for e in body.get("events", [])]

    # --- agents ------------------------------------------------------------------------------------------------
    async def register_agent(self, agent: AgentDefinition | Mapping[str, Any]) -> dict[str, Any]:
        """Upsert an agent (``POST /v1/agents``); returns ``{"agent_id", "success", "message"}``."""
        body = await self._request("POST", "/v1/agents", json={"agent": _as_dict(agent)})
        return snake_keys(body or {})

    async def get_agent(self, agent_id: str) -> AgentDefinition | None:
        agents = await self._agents(agent_id=agent_id)
        return next((a for a in agents if a.agent_id == agent_id), None)

    async def query_agents(
        self, name: str | None = None, consumed_event: str | None = None, produced_event: str | None = None
    ) -> list[AgentDefinition]:
        """Agents matching every given filter (``GET /v1/agents``)."""
        return await self._agents(name=name, consumed_event=consumed_event, produced_event=produced_event)

    async def discover_agents(self, consumed_event: str | None = None) -> list[DiscoveredAgent]:
        """Deployed agents that consume ``consumed_event`` (all agents when ``None``)."""
        return await self._agents(consumed_event=consumed_event)

    async def discover(self, requirements: list[str], include_schemas: bool = True) -> list[DiscoveredAgent]:
        """Agents having a capability whose task name contains any requirement (case-insensitive, client side)."""
        wanted = [r.lower() for r in requirements]
        found = []
        for agent in await self._agents():
            names = [_capability_name(c).lower() for c in agent.capabilities]
            if any(w in n for w in wanted for n in names):
                found.append(agent)
        return found

    async def deregister_agent(self, agent_id: str) -> bool:
        """Delete an agent; ``False`` if it did not exist."""
        result = await self._request("DELETE", f"/v1/agents/{quote(agent_id, safe='')}", not_found=False)
        return result is not False

    async def refresh_heartbeat(self, agent_id: str) -> bool:
        """Always ``True``: serverless agents are live while deployed, there is no heartbeat (kept for soorma-core code)."""
        return True

    async def _agents(self, **params: Any) -> list[AgentDefinition]:
        body = await self._request("GET", "/v1/agents", params=params) or {}
        return [AgentDefinition.model_validate(a) for a in body.get("agents", [])]

    # --- payload schemas (soorma-core routes; see the report for server status) --------------------------------
    async def register_schema(self, schema: Mapping[str, Any] | Any) -> dict[str, Any] | None:
        """Register a payload schema version (``POST /v1/schemas``); ``None`` if that version already exists (409)."""
        try:
            body = await self._request("POST", "/v1/schemas", json={"schema": _as_dict(schema)})
        except Exception as exc:  # 409 = immutable version already registered, which is what the caller wanted
            if getattr(exc, "status", None) == 409:
                return None
            raise
        return snake_keys(body or {})

    async def get_schema(self, schema_name: str, version: str | None = None) -> dict[str, Any] | None:
        """The payload schema ``schema_name`` (its latest version, or ``version``), ``None`` if unknown
        (``GET /v1/schemas/{schema_name}[/versions/{version}]``)."""
        path = f"/v1/schemas/{quote(schema_name, safe='')}"
        if version:
            path += f"/versions/{quote(version, safe='')}"
        body = await self._request("GET", path, not_found=None)
        return snake_keys(body) if body else None

    async def list_schemas(self, owner_agent_id: str | None = None) -> list[dict[str, Any]]:
        body = await self._request("GET", "/v1/schemas", params={"owner_agent_id": owner_agent_id}) or {}
        return [snake_keys(s) for s in body.get("schemas", [])]


def _capability_name(cap: Any) -> str:
    if isinstance(cap, str):
        return cap
    if isinstance(cap, Mapping):
        return str(cap.get("task_name") or cap.get("taskName") or "")
    return str(getattr(cap, "task_name", "") or "")
