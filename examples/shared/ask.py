"""What every example client script does: ask the deployed agents one thing over the SDK's ``EventClient`` and
print their answer, as soorma-core's client scripts do.

:func:`ask` listens on ``action-results`` first, then publishes one action request with a fresh ``correlation_id``
and a ``response_event``, and returns the data of the first answer of that type carrying that correlation id (an
answer to another request is not ours). :func:`print_answer` runs it and prints the data as JSON, or the script's
hint on stderr with exit code 1 when no answer came in time.
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from collections.abc import Coroutine
from typing import Any

from soorma import EventClient, EventEnvelope, EventTopic


async def ask(token_provider: Any, *, agent_id: str, event_type: str, data: dict[str, Any], response_event: str,
              timeout_s: float, client_options: dict[str, Any] | None = None,
              publish_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Publish ``event_type`` with ``data`` on ``action-requests`` as ``agent_id`` (``token_provider``: the script's
    :class:`examples.shared.auth.ExampleTokenProvider`) and return the data of its ``response_event`` answer.
    ``client_options`` / ``publish_options``: more keyword arguments of ``EventClient`` / ``EventClient.publish``.
    Raises ``TimeoutError`` when no answer came within ``timeout_s`` seconds."""
    client = EventClient(agent_id=agent_id, source=agent_id, auth_token_provider=token_provider,
                         **(client_options or {}))
    correlation_id = str(uuid.uuid4())
    answer: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

    @client.on_event(response_event, topic=EventTopic.ACTION_RESULTS)
    async def on_answer(event: EventEnvelope) -> None:
        if event.correlation_id == correlation_id and not answer.done():  # another request's answer: not ours
            answer.set_result(event.data or {})

    await client.connect(topics=[EventTopic.ACTION_RESULTS])  # listen before asking
    try:
        await client.publish(event_type=event_type, topic=EventTopic.ACTION_REQUESTS, data=data,
                             correlation_id=correlation_id, response_event=response_event,
                             response_topic="action-results", **(publish_options or {}))
        return await asyncio.wait_for(answer, timeout_s)
    finally:
        await client.disconnect()


def print_answer(request: Coroutine[Any, Any, dict[str, Any]], hint: str) -> int:
    """Run ``request`` (an :func:`ask`), print its answer as JSON and return 0; print ``hint`` on stderr and return 1
    when no answer came in time."""
    try:
        data = asyncio.run(request)
    except TimeoutError:
        print(hint, file=sys.stderr)
        return 1
    print(json.dumps(data))
    return 0
