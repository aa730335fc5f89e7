"""soorma-core's ``soorma.ai.tools``: the event registry as OpenAI function-calling tools for an LLM.

An adapter over :class:`~soorma.ai.event_toolkit.EventToolkit` (no second implementation of discovery or
validation): :data:`AI_FUNCTION_TOOLS` describes four tools in the OpenAI function-calling format
(https://platform.openai.com/docs/guides/function-calling), :func:`execute_ai_tool` runs the one an LLM chose
against the registry, and :func:`format_tool_result_for_llm` turns the result into the text sent back as the tool's
answer.

============================ ============================================ =================================================
tool                          arguments                                     runs
============================ ============================================ =================================================
``discover_events``           ``topic?``, ``event_name_pattern?``           :meth:`EventToolkit.discover_events`
``get_event_schema``          ``event_name``                                :meth:`EventToolkit.get_event_info`
``create_event_payload``      ``event_name``, ``payload_data``              :meth:`EventToolkit.create_payload`
``validate_event_response``   ``event_name``, ``response_data``             :meth:`EventToolkit.validate_response`
============================ ============================================ =================================================
"""

from __future__ import annotations

import copy
import json
from typing import Any, Mapping

from .event_toolkit import EventToolkit


def _function(name: str, description: str, properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    parameters: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        parameters["required"] = required
    return {"type": "function", "function": {"name": name, "description": description, "parameters": parameters}}


_EVENT_NAME = {"type": "string", "description": "The event's full name, e.g. 'web.search.request' "
                                                 "(discover_events lists them)."}

#: The four registry tools, as OpenAI ``tools`` entries (``{"type": "function", "function": {name, description,
#: parameters (a JSON Schema)}}``).
AI_FUNCTION_TOOLS: list[dict[str, Any]] = [
    _function(
        "discover_events",
        "List the events registered on the platform: name, description, topic, required fields and an example "
        "payload of each. Optionally only one topic, or names matching a pattern.",
        {
            "topic": {"type": "string", "description": "Only events on this topic, e.g. 'action-requests' (requests "
                                                       "an agent acts on) or 'business-facts' (announcements)."},
            "event_name_pattern": {"type": "string", "description": "Only events whose name contains this text or "
                                                                    "matches this glob, e.g. 'search' or 'order.*'."},
        },
        [],
    ),
    _function(
        "get_event_schema",
        "Describe one event: its payload fields (types, descriptions, which are required), an example payload, and "
        "whether it has a response.",
        {"event_name": _EVENT_NAME},
        ["event_name"],
    ),
    _function(
        "create_event_payload",
        "Check a payload for an event against the event's registered schema and return it ready to publish; a "
        "payload that does not match comes back as an error naming each problem.",
        {"event_name": _EVENT_NAME,
         "payload_data": {"type": "object", "description": "The payload's fields as a JSON object."}},
        ["event_name", "payload_data"],
    ),
    _function(
        "validate_event_response",
        "Check the data of a response to an event against the event's registered response schema.",
        {"event_name": _EVENT_NAME,
         "response_data": {"type": "object", "description": "The response's data as a JSON object."}},
        ["event_name", "response_data"],
    ),
]

_SUGGESTION = "check the arguments (discover_events lists the events and get_event_schema their fields)"


def get_tool_definitions() -> list[dict[str, Any]]:
    """The tool definitions to pass as an LLM request's ``tools`` (a copy of :data:`AI_FUNCTION_TOOLS`).

    Returns
    -------
    list[dict]
        OpenAI function-calling tool entries (https://platform.openai.com/docs/guides/function-calling).
    """
    return copy.deepcopy(AI_FUNCTION_TOOLS)  # a caller that edits its copy leaves the module's alone


async def execute_ai_tool(
    tool_name: str,
    tool_args: Mapping[str, Any],
    registry_url: str | None = None,
    *,
    registry_client: Any = None,
) -> dict[str, Any]:
    """Run the registry tool an LLM called, as soorma-core does; never raises for the LLM's mistakes.

    Parameters
    ----------
    tool_name:
        One of the names in :data:`AI_FUNCTION_TOOLS`.
    tool_args:
        The call's arguments (the JSON object the LLM produced, decoded).
    registry_url:
        The registry's base URL; default ``SOORMA_REGISTRY_URL``, else ``SOORMA_API_URL``.
    registry_client:
        A :class:`~soorma.clients.registry.RegistryClient` to use instead (e.g. ``context.registry``); it is left
        open.

    Returns
    -------
    dict
        ``{"success": True, ...}`` with ``events`` and ``count`` (``discover_events``), ``event``
        (``get_event_schema``), ``payload`` (``create_event_payload``) or ``validated_response``
        (``validate_event_response``: ``{"valid", "errors"}``); ``{"success": False, "error", "suggestion"}`` for an
        unknown tool or event, missing arguments, a payload that does not match, or a registry error
        (plus ``available_tools`` for an unknown tool).
    """
    async with EventToolkit(registry_url, registry_client=registry_client) as toolkit:
        try:
            if tool_name == "discover_events":
                events = await toolkit.discover_events(topic=tool_args.get("topic"),
                                                       event_name_pattern=tool_args.get("event_name_pattern"))
                return {"success": True, "events": events, "count": len(events)}
            if tool_name == "get_event_schema":
                event = await toolkit.get_event_info(str(tool_args["event_name"]))
                if event is None:
                    return {"success": False, "error": f"event {tool_args['event_name']!r} is not registered",
                            "suggestion": "call discover_events to see the registered events"}
                return {"success": True, "event": event}
            if tool_name == "create_event_payload":
                payload = await toolkit.create_payload(str(tool_args["event_name"]), tool_args["payload_data"])
                return {"success": True, "payload": payload}
            if tool_name == "validate_event_response":
                checked = await toolkit.validate_response(str(tool_args["event_name"]), tool_args["response_data"])
                return {"success": True, "validated_response": checked}
        except KeyError as missing:
            return {"success": False, "error": f"{tool_name}: missing argument {missing}", "suggestion": _SUGGESTION}
        except Exception as exc:  # noqa: BLE001 - the LLM gets the problem as the tool's answer, as in soorma-core
            return {"success": False, "error": str(exc), "suggestion": _SUGGESTION}
    return {"success": False, "error": f"unknown tool {tool_name!r}", "suggestion": _SUGGESTION,
            "available_tools": [tool["function"]["name"] for tool in AI_FUNCTION_TOOLS]}


def format_tool_result_for_llm(result: Mapping[str, Any]) -> str:
    """The text to send back to the LLM as the tool's answer.

    Parameters
    ----------
    result:
        What :func:`execute_ai_tool` returned.

    Returns
    -------
    str
        A failure as JSON ``{"status": "error", "message", "suggestion"}``; a discovery as one block per event (name,
        topic, description, required fields); any other result as indented JSON.
    """
    if not result.get("success"):
        return json.dumps({"status": "error", "message": result.get("error", "unknown error"),
                           "suggestion": result.get("suggestion", "")}, indent=2, ensure_ascii=False)
    if "events" in result:
        events = result["events"]
        if not events:
            return "No registered event matches."
        lines = [f"{len(events)} event(s):"]
        for event in events:
            lines.append(f"- {event['name']} (topic {event.get('topic') or 'unknown'})")
            lines.append(f"  description: {event.get('description') or ''}")
            lines.append(f"  required fields: {', '.join(event.get('required_fields') or []) or 'none'}")
            if event.get("has_response"):
                lines.append("  has a response: yes")
        return "\n".join(lines)
    answer = {key: value for key, value in result.items() if key != "success"}
    return json.dumps({"status": "success", **answer}, indent=2, ensure_ascii=False, default=str)


__all__ = ["AI_FUNCTION_TOOLS", "execute_ai_tool", "format_tool_result_for_llm", "get_tool_definitions"]
