"""Research client: soorma-core's ``11-discovery-llm`` client on this port's discovery planner (``agents.py``).

It listens on ``action-results``, publishes one ``discovery.research.goal`` action request with its own
``correlation_id`` and ``response_event`` ``research.completed`` (soorma-core's), waits for the planner's answer with
that correlation id and prints its data as JSON. The client speaks only the planner's API: the planner discovers the
worker, has the LLM write its payload from the registered schema, and shapes the answer to ``research_result_v1``
or to the client's own ``response_schema`` (``--headline-schema`` sends the README's)::

    python examples/discovery-llm/client.py "Serverless NATS in depth"
    # → {"status": "completed", "response_schema": "research_result_v1", "result": {"topic": …, "summary": …,
    #    "sources": [...]}, "request": {"topic": …, "max_results": 5, "depth": "deep"}}

soorma-core's goal is ``research.goal``; this port's planner handles ``discovery.research.goal``. The stack needs an
LLM (``SOORMA_LLM_*``, README "Run it"). It authenticates with a 15-minute token from the identity service
(``examples/shared/auth.py``), as soorma-core's examples do. Exit code 1 if no answer came in time.
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from examples.shared.auth import build_example_token_provider  # noqa: E402 (after the path above)
from soorma import EventClient, EventEnvelope, EventTopic  # noqa: E402

EXAMPLE_NAME = "discovery-llm"

RESPONSE_EVENT = "research.completed"

#: A client-owned response schema (the README's): the planner shapes the findings to it.
HEADLINE_SCHEMA = {
    "type": "object",
    "properties": {"headline": {"type": "string"}, "count": {"type": "integer"},
                   "links": {"type": "array", "items": {"type": "string"}}},
    "required": ["headline", "count", "links"],
    "additionalProperties": False,
}


async def send_research_goal(description: str, response_schema: dict | None = None, timeout_s: float = 120.0) -> dict:
    """Send one research goal and return the answer's data (raises ``TimeoutError`` without an answer)."""
    token_provider = build_example_token_provider(EXAMPLE_NAME, __file__)
    client = EventClient(agent_id="discovery-llm-client", source="discovery-llm-client", auth_token_provider=token_provider)
    correlation_id = str(uuid.uuid4())
    response: asyncio.Future[dict] = asyncio.get_running_loop().create_future()

    @client.on_event(RESPONSE_EVENT, topic=EventTopic.ACTION_RESULTS)
    async def on_response(event: EventEnvelope) -> None:
        if event.correlation_id == correlation_id and not response.done():  # another request's answer: not ours
            response.set_result(event.data or {})

    await client.connect(topics=[EventTopic.ACTION_RESULTS])  # listen before asking
    try:
        await client.publish(
            event_type="discovery.research.goal",
            topic=EventTopic.ACTION_REQUESTS,
            data={"description": description, **({"response_schema": response_schema} if response_schema else {})},
            correlation_id=correlation_id,
            response_event=RESPONSE_EVENT,
            response_topic="action-results",
        )
        return await asyncio.wait_for(response, timeout_s)
    finally:
        await client.disconnect()


def main() -> int:
    args = sys.argv[1:]
    schema = HEADLINE_SCHEMA if "--headline-schema" in args else None
    description = " ".join(a for a in args if a != "--headline-schema") or "Latest advances in quantum computing"
    try:
        data = asyncio.run(send_research_goal(description, schema))
    except TimeoutError:
        print("no answer: is the stack up (with SOORMA_LLM_* set) and examples/discovery-llm deployed?", file=sys.stderr)
        return 1
    print(json.dumps(data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
