"""Hello world: a ``Worker`` with a plain ``@on_event`` handler on ``action-requests`` that answers with
``context.bus.respond``.

``soorma local deploy examples/hello-world`` deploys the module-level ``worker`` as one function. Every
``greeting.requested`` request ``{"name": ...}`` is answered on ``action-results`` with the request's
``response_event`` (``greeting.completed`` when it names none) and the request's ``correlation_id``:
``{"message": "Hello, <name>!", "greeted_by": "hello-worker"}``.
"""

from __future__ import annotations

from soorma import Worker
from soorma.context import PlatformContext
from soorma.events import EventEnvelope, EventTopic

worker = Worker(
    name="hello-worker",
    description="Greets whoever is named in the request",
    capabilities=["greeting"],
    events_consumed=["greeting.requested"],
    events_produced=["greeting.completed"],
)


@worker.on_event("greeting.requested", topic=EventTopic.ACTION_REQUESTS)
async def greet(event: EventEnvelope, context: PlatformContext) -> None:
    """Answer the request's ``response_event`` with a greeting (a failure when no name is given)."""
    name = event.data.get("name")
    if isinstance(name, str) and name.strip():
        data = {"message": f"Hello, {name.strip()}!", "greeted_by": worker.name}
    else:
        data = {"status": "failed", "error": 'greeting.requested needs {"name": "..."}'}
    await context.bus.respond(
        event_type=event.response_event or "greeting.completed",
        data=data,
        correlation_id=event.correlation_id,
        topic=event.response_topic or EventTopic.ACTION_RESULTS,
    )


if __name__ == "__main__":  # a local process against `soorma local` (breakpoints welcome)
    worker.run()
