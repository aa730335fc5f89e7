"""Ticket client: soorma-core's ``03-events-structured`` client on this port's ticket router (``agents.py``).

It listens on ``action-results``, publishes one ``support.ticket.submitted`` action request (a support ticket) with
its own ``correlation_id`` and ``response_event`` ``support.ticket.routed``, waits for the router's answer with that
correlation id (after the LLM picked a team's event from the registry and the team answered) and prints its data as
JSON::

    python examples/events-structured/client.py "Wrong invoice" "Please refund the extra 20 on my March invoice"
    # → {"task_id": "…", "status": "completed", "result": {"ticket_id": "…", "routed_to": "ticket.billing.requested",
    #    "payload": {...}, "reasoning": "…", "handled_by": "billing", "resolution": "refund of 20.00 issued"}}

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

EXAMPLE_NAME = "events-structured"

RESPONSE_EVENT = "support.ticket.routed"


async def submit_ticket(subject: str, body: str, timeout_s: float = 120.0) -> dict:
    """Submit one ticket and return the answer's data (raises ``TimeoutError`` without an answer)."""
    token_provider = build_example_token_provider(EXAMPLE_NAME, __file__)
    client = EventClient(agent_id="ticket-client", source="ticket-client", auth_token_provider=token_provider)
    correlation_id = str(uuid.uuid4())
    response: asyncio.Future[dict] = asyncio.get_running_loop().create_future()

    @client.on_event(RESPONSE_EVENT, topic=EventTopic.ACTION_RESULTS)
    async def on_response(event: EventEnvelope) -> None:
        if event.correlation_id == correlation_id and not response.done():  # another request's answer: not ours
            response.set_result(event.data or {})

    await client.connect(topics=[EventTopic.ACTION_RESULTS])  # listen before asking
    try:
        await client.publish(
            event_type="support.ticket.submitted",
            topic=EventTopic.ACTION_REQUESTS,
            data={"subject": subject, "body": body, "customer": "client-script"},
            correlation_id=correlation_id,
            response_event=RESPONSE_EVENT,
            response_topic="action-results",
        )
        return await asyncio.wait_for(response, timeout_s)
    finally:
        await client.disconnect()


def main() -> int:
    args = sys.argv[1:]
    subject = args[0] if args else "Wrong invoice"
    body = " ".join(args[1:]) or "Please refund the extra 20 on my March invoice"
    try:
        data = asyncio.run(submit_ticket(subject, body))
    except TimeoutError:
        print("no answer: is the stack up (with SOORMA_LLM_* set) and examples/events-structured deployed?", file=sys.stderr)
        return 1
    print(json.dumps(data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
