"""``EventToolkit``: what an LLM needs to know about the events it may choose from (reference §1.9, "LLM discovery").

``EventToolkit(registry_url=None, registry_client=None)`` reads the registry (``GET /v1/events``, ``GET /v1/agents``)
through a :class:`~soorma.clients.registry.RegistryClient` (the agent's ``context.registry`` when built by
``PlatformContext``):

* :meth:`discover_events` — registered event definitions (optionally one topic, and names matching a pattern);
* :meth:`discover_actionable_events` — events that some registered agent actually consumes (its handlers'
  events, from its definition and capabilities), described by their registered definition when there is one: what
  a planner may request with a reasonable hope of an answer;
* :meth:`format_for_llm` / :meth:`format_as_prompt_text` — compact descriptions (name, description, topic,
  required and optional payload fields, an example payload, response fields);
* :meth:`create_payload` / :meth:`validate_response` — check data against the event's registered JSON schemas
  (``jsonschema`` when installed).

Every discovery returns plain dicts ``{name, description, topic, required_fields, payload_fields, example_payload,
has_response, response_fields?, consumers}``.
"""

from __future__ import annotations

import fnmatch
import logging
from typing import Any, Mapping, Sequence

log = logging.getLogger("soorma.ai")

ACTION_REQUESTS = "action-requests"


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)


def _field(obj: Any, name: str, default: Any = None) -> Any:
    """``obj[name]`` or ``obj.name``, also under its camelCase name (the registry answers in camelCase)."""
    for key in (name, _camel(name)):
        if isinstance(obj, Mapping):
            if key in obj:
                return obj[key]
        elif hasattr(obj, key):
            return getattr(obj, key)
    return default


def _as_dict(obj: Any) -> dict[str, Any]:
    if hasattr(obj, "model_dump"):  # a pydantic model, or anything shaped like one
        dumped: dict[str, Any] = obj.model_dump(exclude_none=True)
        return dumped
    return dict(obj)


def _example(schema: Mapping[str, Any] | None) -> dict[str, Any]:
    examples = {"string": "...", "integer": 0, "number": 0.0, "boolean": False, "array": [], "object": {}}
    out: dict[str, Any] = {}
    for name, prop in ((schema or {}).get("properties") or {}).items():
        if not isinstance(prop, Mapping):
            continue
        if "example" in prop:
            out[name] = prop["example"]
        elif prop.get("examples"):
            out[name] = prop["examples"][0]
        elif "default" in prop:
            out[name] = prop["default"]
        elif prop.get("enum"):
            out[name] = prop["enum"][0]
        else:
            kind = prop.get("type")
            kind = kind[0] if isinstance(kind, list) else kind
            out[name] = examples.get(kind) if isinstance(kind, str) else None
    return out


def _fields(schema: Mapping[str, Any] | None) -> tuple[list[str], dict[str, dict[str, Any]]]:
    schema = schema or {}
    props = {}
    for name, prop in (schema.get("properties") or {}).items():
        if isinstance(prop, Mapping):
            props[name] = {k: prop[k] for k in ("type", "description", "enum", "default") if k in prop}
    return list(schema.get("required") or []), props


class EventToolkit:
    """See the module docstring. ``registry_client`` wins over ``registry_url`` (which builds a client with the
    environment's API key)."""

    def __init__(self, registry_url: str | None = None, registry_client: Any = None) -> None:
        # A client built here is the toolkit's own, closed by close() / ``async with``; a given one is the caller's.
        self._owns_registry = registry_client is None
        if registry_client is None:
            from ..clients.registry import RegistryClient
            from ..settings import Settings

            settings = Settings.from_env()
            registry_client = RegistryClient(registry_url or settings.registry_base, settings.api_key,
                                             timeout=settings.timeout)
        self.registry = registry_client

    async def close(self) -> None:
        """Close the registry client if this toolkit built it (one passed as ``registry_client`` stays open)."""
        if self._owns_registry:
            await self.registry.close()

    async def __aenter__(self) -> "EventToolkit":
        """soorma-core's ``async with EventToolkit(url) as toolkit:``; :meth:`close` on exit."""
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # --- discovery -----------------------------------------------------------------------------------------------
    async def discover_events(self, topic: str | None = None, event_name_pattern: str | None = None) -> list[dict[str, Any]]:
        """Registered event definitions (``topic``: only that topic; ``event_name_pattern``: a glob such as
        ``"research.*"``, or a substring), formatted by :meth:`format_for_llm`."""
        if topic:
            events = await self.registry.get_events_by_topic(str(topic))
        else:
            events = await self.registry.get_all_events()
        if event_name_pattern:
            pattern = event_name_pattern
            events = [e for e in events if fnmatch.fnmatch(e.event_name, pattern) or pattern in e.event_name]
        return self.format_for_llm(events)

    async def discover_actionable_events(
        self, topic: str | None = ACTION_REQUESTS, *, exclude_agents: set[str] | None = None
    ) -> list[dict[str, Any]]:
        """Events on ``topic`` that a registered agent consumes (each with ``consumers``: the agents' names).
        ``exclude_agents``: agent names whose events are left out (a planner leaves out its own goals)."""
        agents = await self.registry.query_agents()
        definitions = {e.event_name: e for e in await self.registry.get_all_events()}
        consumers: dict[str, list[str]] = {}
        described: dict[str, dict[str, Any]] = {}
        for agent in agents:
            name = str(_field(agent, "name", ""))
            if exclude_agents and (name in exclude_agents or name.split(":")[0] in exclude_agents):
                continue
            for event in _field(agent, "consumed_events", []) or []:
                event_name = event if isinstance(event, str) else str(_field(event, "event_name", ""))
                if event_name:
                    consumers.setdefault(event_name, []).append(name)
            for cap in _field(agent, "capabilities", []) or []:
                consumed = _field(cap, "consumed_event")
                if not consumed:
                    continue
                event_name = str(_field(consumed, "event_name", "") or "")
                if not event_name:
                    continue
                if name not in consumers.setdefault(event_name, []):
                    consumers[event_name].append(name)
                info = {k: _field(consumed, k) for k in ("topic", "description", "payload_schema", "response_schema")}
                info["description"] = info.get("description") or _field(cap, "description", "")
                described.setdefault(event_name, {k: v for k, v in info.items() if v})
        found = []
        for event_name, names in sorted(consumers.items()):
            definition = definitions.get(event_name)
            if definition is not None:
                entry = self.format_for_llm([definition])[0]
            else:
                extra = described.get(event_name)
                if extra is None:
                    if topic:  # a bare name in consumed_events: its topic is unknown (maybe a result it awaits)
                        continue
                    extra = {}
                entry = self._describe(event_name, extra.get("topic") or ACTION_REQUESTS, extra.get("description", ""),
                                       extra.get("payload_schema"), extra.get("response_schema"))
            if topic and entry["topic"] != str(topic):
                continue
            entry["consumers"] = sorted(set(names))
            found.append(entry)
        return found

    async def get_event_info(self, event_name: str) -> dict[str, Any] | None:
        """The formatted definition of ``event_name``, or ``None``."""
        definition = await self.registry.get_event(event_name)
        return self.format_for_llm([definition])[0] if definition is not None else None

    # --- formatting ----------------------------------------------------------------------------------------------
    def _describe(self, name: str, topic: str, description: str, payload_schema: Mapping[str, Any] | None,
                  response_schema: Mapping[str, Any] | None) -> dict[str, Any]:
        required, props = _fields(payload_schema)
        entry: dict[str, Any] = {
            "name": name,
            "description": description or "",
            "topic": str(topic or ACTION_REQUESTS),
            "required_fields": required,
            "payload_fields": props,
            "example_payload": _example(payload_schema),
            "has_response": bool(response_schema),
        }
        if response_schema:
            entry["response_fields"] = _fields(response_schema)[1]
        return entry

    def format_for_llm(self, events: list[Any]) -> list[dict[str, Any]]:
        """Event definitions (models or dicts) as compact dicts for a prompt."""
        out = []
        for event in events:
            raw = _as_dict(event) if not isinstance(event, Mapping) else dict(event)
            name = _field(raw, "event_name") or raw.get("name")
            if not name:
                continue
            out.append(self._describe(
                str(name), _field(raw, "topic") or ACTION_REQUESTS, _field(raw, "description") or "",
                _field(raw, "payload_schema"), _field(raw, "response_schema"),
            ))
        return out

    @staticmethod
    def format_as_prompt_text(events: Sequence[Mapping[str, Any]], include_metadata: bool = True,
                              numbered: bool = True) -> str:
        """One block of text per event: name and description, then (``include_metadata``) topic, fields and an
        example payload."""
        lines = []
        for i, event in enumerate(events, 1):
            head = f"{i}. " if numbered else "- "
            lines.append(f"{head}{event['name']}: {event.get('description') or '(no description)'}")
            if include_metadata:
                lines.append(f"   topic: {event.get('topic', ACTION_REQUESTS)}")
                fields = event.get("payload_fields") or {}
                if fields:
                    required = set(event.get("required_fields") or [])
                    described = ", ".join(
                        f"{k}{'*' if k in required else ''} ({v.get('type', 'any')})"
                        + (f" - {v['description']}" if v.get("description") else "")
                        for k, v in fields.items()
                    )
                    lines.append(f"   payload fields (* = required): {described}")
                if event.get("example_payload"):
                    import json

                    lines.append(f"   example payload: {json.dumps(event['example_payload'])}")
                if event.get("response_fields"):
                    lines.append(f"   response fields: {', '.join(event['response_fields'])}")
        return "\n".join(lines)

    # --- schemas -------------------------------------------------------------------------------------------------
    async def create_payload(self, event_name: str, data: Mapping[str, Any]) -> dict[str, Any]:
        """``data`` checked against the event's registered payload schema (``ValueError`` naming the problem);
        returned as a plain dict. Without a schema (or without ``jsonschema``) the data is returned as is."""
        definition = await self.registry.get_event(event_name)
        schema = _field(definition, "payload_schema") if definition is not None else None
        payload = dict(data)
        problems = _validate(payload, schema)
        if problems:
            raise ValueError(f"payload for {event_name} does not match its schema: {'; '.join(problems)}")
        return payload

    async def validate_response(self, event_name: str, data: Mapping[str, Any]) -> dict[str, Any]:
        """``{"valid": bool, "errors": [...]}`` for ``data`` against the event's registered response schema."""
        definition = await self.registry.get_event(event_name)
        schema = _field(definition, "response_schema") if definition is not None else None
        problems = _validate(dict(data), schema)
        return {"valid": not problems, "errors": problems}


def _validate(data: Any, schema: Mapping[str, Any] | None) -> list[str]:
    if not schema:
        return []
    try:
        import jsonschema
    except ImportError:
        return []
    validator = jsonschema.Draft202012Validator(schema)
    return [f"{'/'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message}" for e in validator.iter_errors(data)]


__all__ = ["EventToolkit"]
