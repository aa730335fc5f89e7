"""Review client: soorma-core's ``09-planner-basic`` client on this port's review planner (``planner.py``,
``worker.py``).

It listens on ``action-results``, publishes one ``review.goal`` action request with its own ``correlation_id``
(the plan id: ``PlanContext.create_from_goal`` keys the plan on it) and ``response_event`` ``review.result``, waits
for ``plan.finalize``'s answer with that correlation id and prints its data as JSON::

    python examples/planner-basic/client.py event-driven agents
    # → {"plan_id": "…", "result": {"topic": "event-driven agents", "summary": "Found 3 papers on event-driven
    #    agents", "papers_found": 3, "papers": [...], "states": ["start", "search", "complete"]}}

soorma-core's goal is ``research.goal`` answered with ``research.result``; this port's planner handles
``review.goal``. soorma-core's client sent a fixed ``tenant_id``/``user_id``; here the gateway stamps the identity
of the caller's token (15 minutes, from the identity service: ``examples/shared/auth.py``). Exit code 1 if no
answer came in time.
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

EXAMPLE_NAME = "planner-basic"

RESPONSE_EVENT = "review.result"


async def send_research_goal(topic: str, timeout_s: float = 60.0) -> dict:
    """Send one review goal and return the answer's data (raises ``TimeoutError`` without an answer)."""
    token_provider = build_example_token_provider(EXAMPLE_NAME, __file__)
    client = EventClient(agent_id="research-client", source="research-client", auth_token_provider=token_provider)
    correlation_id = str(uuid.uuid4())
    response: asyncio.Future[dict] = asyncio.get_running_loop().create_future()

    @client.on_event(RESPONSE_EVENT, topic=EventTopic.ACTION_RESULTS)
    async def on_response(event: EventEnvelope) -> None:
        if event.correlation_id == correlation_id and not response.done():  # another request's answer: not ours
            response.set_result(event.data or {})

    await client.connect(topics=[EventTopic.ACTION_RESULTS])  # listen before asking
    try:
        await client.publish(
            event_type="review.goal",
            topic=EventTopic.ACTION_REQUESTS,
            data={"topic": topic},
            correlation_id=correlation_id,
            response_event=RESPONSE_EVENT,
            response_topic="action-results",
        )
        return await asyncio.wait_for(response, timeout_s)
    finally:
        await client.disconnect()


def main() -> int:
    topic = " ".join(sys.argv[1:]) or "AI agents"
    try:
        data = asyncio.run(send_research_goal(topic))
    except TimeoutError:
        print("no answer: is the stack up and examples/planner-basic deployed?", file=sys.stderr)
        return 1
    print(json.dumps(data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
