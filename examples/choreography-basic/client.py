"""Report client: soorma-core's ``10-choreography-basic`` client on this port's choreography (``agents.py``).

It listens on ``action-results``, publishes one ``feedback.report.requested`` action request with its own
``correlation_id`` (the plan id) and ``response_event`` ``feedback.report.completed``, waits for the
``ChoreographyPlanner``'s answer with that correlation id (after the LLM chained the discovered fetcher, analyzer
and reporter) and prints its data as JSON::

    python examples/choreography-basic/client.py "Acme Notes"
    # → {"plan_id": "…", "result": {"report": "Acme Notes: 2 positive, 2 negative, 1 neutral; feedback is mixed.",
    #    "sentiment": {"positive": 2, "negative": 2, "neutral": 1}}}

The stack needs an LLM (``SOORMA_LLM_*``, README "Run it"). It authenticates with a 15-minute token from the identity
service (``examples/shared/auth.py``), as soorma-core's examples do. Exit code 1 if no answer came in time.
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

EXAMPLE_NAME = "choreography-basic"

RESPONSE_EVENT = "feedback.report.completed"


async def request_report(product: str, timeout_s: float = 120.0) -> dict:
    """Ask for one feedback report and return the answer's data (raises ``TimeoutError`` without an answer)."""
    token_provider = build_example_token_provider(EXAMPLE_NAME, __file__)
    client = EventClient(agent_id="feedback-client", source="feedback-client", auth_token_provider=token_provider)
    correlation_id = str(uuid.uuid4())
    response: asyncio.Future[dict] = asyncio.get_running_loop().create_future()

    @client.on_event(RESPONSE_EVENT, topic=EventTopic.ACTION_RESULTS)
    async def on_response(event: EventEnvelope) -> None:
        if event.correlation_id == correlation_id and not response.done():  # another request's answer: not ours
            response.set_result(event.data or {})

    await client.connect(topics=[EventTopic.ACTION_RESULTS])  # listen before asking
    try:
        await client.publish(
            event_type="feedback.report.requested",
            topic=EventTopic.ACTION_REQUESTS,
            data={"product": product},
            correlation_id=correlation_id,
            response_event=RESPONSE_EVENT,
            response_topic="action-results",
        )
        return await asyncio.wait_for(response, timeout_s)
    finally:
        await client.disconnect()


def main() -> int:
    product = " ".join(sys.argv[1:]) or "Acme Notes"
    try:
        data = asyncio.run(request_report(product))
    except TimeoutError:
        print("no answer: is the stack up (with SOORMA_LLM_* set) and examples/choreography-basic deployed?", file=sys.stderr)
        return 1
    print(json.dumps(data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
