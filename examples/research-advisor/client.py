"""Question client: soorma-core's ``research-advisor`` client on this port's research advisor (``agents.py``).

It listens on ``action-results``, publishes one ``research.goal`` action request ``{"question"}`` with its own
``correlation_id`` and ``response_event`` ``research.answered``, waits for the planner's answer with that
correlation id (after the researcher retrieved passages from semantic memory, the advisor answered from them and
the validator checked the citations) and prints its data as JSON::

    python examples/research-advisor/client.py How do I read a gzip-compressed file?
    # → {"task_id": "…", "status": "completed", "result": {"question": "…", "answer": "Use `gzip.open` to …",
    #    "sources": [{"name": "gzip.open", ...}, ...], "validated": true, "unsupported": [], "method": "extractive"}}

soorma-core's client is an interactive loop on its own events (``research.goal`` of its ``events.py``, answered by
a ``fulfilled`` event) and needs an LLM and web search; this port answers offline from the standard library's
documentation, so the script asks one question per run. It authenticates with a 15-minute token from the identity
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

EXAMPLE_NAME = "research-advisor"

RESPONSE_EVENT = "research.answered"


async def send_research_goal(question: str, timeout_s: float = 120.0) -> dict:
    """Ask one question and return the answer's data (raises ``TimeoutError`` without an answer)."""
    token_provider = build_example_token_provider(EXAMPLE_NAME, __file__)
    client = EventClient(agent_id="client", source="client", auth_token_provider=token_provider)
    correlation_id = str(uuid.uuid4())
    response: asyncio.Future[dict] = asyncio.get_running_loop().create_future()

    @client.on_event(RESPONSE_EVENT, topic=EventTopic.ACTION_RESULTS)
    async def on_response(event: EventEnvelope) -> None:
        if event.correlation_id == correlation_id and not response.done():  # another request's answer: not ours
            response.set_result(event.data or {})

    await client.connect(topics=[EventTopic.ACTION_RESULTS])  # listen before asking
    try:
        await client.publish(
            event_type="research.goal",
            topic=EventTopic.ACTION_REQUESTS,
            data={"question": question},
            correlation_id=correlation_id,
            response_event=RESPONSE_EVENT,
            response_topic="action-results",
        )
        return await asyncio.wait_for(response, timeout_s)
    finally:
        await client.disconnect()


def main() -> int:
    question = " ".join(sys.argv[1:]) or "How do I read a gzip-compressed file?"
    try:
        data = asyncio.run(send_research_goal(question))
    except TimeoutError:
        print("no answer: is the stack up and examples/research-advisor deployed?", file=sys.stderr)
        return 1
    print(json.dumps(data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
