"""``Tool``: answers an action request at once, with a result or a failed result."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Callable, Mapping

from ..events import EventEnvelope, EventTopic
from ..task_context import InvocationContext
from .base import Agent, _maybe_await

if TYPE_CHECKING:
    from ..context import PlatformContext

log = logging.getLogger("soorma.agent")

InvokeHandler = Callable[[InvocationContext, "PlatformContext"], Any]

ACTION_REQUESTS = EventTopic.ACTION_REQUESTS.value
ACTION_RESULTS = EventTopic.ACTION_RESULTS.value


class Tool(Agent):
    """A tool (reference §1.5): ``Tool(name, description="", version="0.1.0", capabilities=None,
    default_response_event=None, **agent_kwargs)``.

    ``@tool.on_invoke(event_type, response_schema=None)`` → ``async handler(request: InvocationContext, context)
    -> dict``. The SDK answers to ``request.response_event or default_response_event or f"{event_type}.completed"``
    on ``request.response_topic`` (default ``action-results``) with the caller's ``correlation_id``:
    ``{"request_id", "success": True, "result": <returned dict>}``, or, when the handler raises (or the result
    breaks ``response_schema``), ``{"request_id", "success": False, "error": str(e)}``. A handler failure is a
    failed *result* (not retried); only a failure to publish the answer fails the record.
    """

    agent_type = "tool"

    def __init__(self, name: str, description: str = "", version: str = "0.1.0", capabilities: list[Any] | None = None,
                 default_response_event: str | None = None, **agent_kwargs: Any) -> None:
        super().__init__(name, description, version, capabilities=capabilities, **agent_kwargs)
        self.default_response_event = default_response_event
        self._invokers: dict[str, tuple[InvokeHandler, dict[str, Any] | None]] = {}

    def on_invoke(
        self, event_type: str, response_schema: Mapping[str, Any] | None = None
    ) -> Callable[[InvokeHandler], InvokeHandler]:
        """Handle ``event_type`` on ``action-requests``; ``response_schema`` (JSON Schema) validates the returned
        dict when ``jsonschema`` is installed."""

        self._checked(ACTION_REQUESTS, event_type)
        schema = dict(response_schema) if response_schema is not None else None

        def decorate(func: InvokeHandler) -> InvokeHandler:
            async def call(event: EventEnvelope, context: "PlatformContext") -> None:
                request = InvocationContext.from_event(event)
                answer = await self._answer(func, schema, request, context)
                await context.bus.respond(
                    self._response_event(request),
                    answer,
                    request.correlation_id or request.request_id,
                    topic=request.response_topic or ACTION_RESULTS,
                )

            self._add_handler(ACTION_REQUESTS, event_type, call, func)
            self._invokers[event_type] = (func, schema)
            if event_type not in self._capability_names():
                self.capabilities.append(event_type)
            self._register_produced_event(self.default_response_event or f"{event_type}.completed")
            return func

        return decorate

    def _response_event(self, request: InvocationContext) -> str:
        return request.response_event or self.default_response_event or f"{request.event_type}.completed"

    async def _answer(
        self,
        func: InvokeHandler,
        schema: dict[str, Any] | None,
        request: InvocationContext,
        context: "PlatformContext",
    ) -> dict[str, Any]:
        try:
            result = await _maybe_await(func(request, context))
            if schema is not None:
                _validate(result, schema)
        except Exception as exc:
            log.warning("tool %s: %s %s failed: %s", self.name, request.event_type, request.request_id, exc)
            return {"request_id": request.request_id, "success": False, "error": str(exc)}
        return {"request_id": request.request_id, "success": True, "result": result}

    async def invoke(
        self, event_type: str, data: Mapping[str, Any], response_event: str | None = None
    ) -> dict[str, Any]:
        """Call an ``on_invoke`` handler in-process (no bus); returns the answer it would publish.
        Raises ``KeyError`` if no handler serves ``event_type``."""
        if event_type not in self._invokers:
            raise KeyError(f"tool {self.name!r} has no on_invoke handler for {event_type!r}")
        func, schema = self._invokers[event_type]
        event = EventEnvelope(
            type=event_type, topic=EventTopic.ACTION_REQUESTS, data=dict(data), response_event=response_event
        )
        return await self._answer(func, schema, InvocationContext.from_event(event), self.context)


def _validate(result: Any, schema: dict[str, Any]) -> None:
    try:
        import jsonschema
    except ImportError:  # optional, as in soorma-core: no validator installed, no validation
        return
    jsonschema.validate(result, schema)
