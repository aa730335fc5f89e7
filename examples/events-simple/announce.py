"""Start the chain from a script: announce ``order.placed`` on ``business-facts`` with a correlation id and a
session id, and listen for the ``order.shipped`` that ends the chain (same correlation id)::

    python examples/events-simple/announce.py o-42
    # → {"order_id": "o-42", "tracking": "TRK-o-42", "metadata": {"correlation_id": "…", "session_id": "…", ...}}

It authenticates with a 15-minute token from the identity service (``examples/shared/auth.py``, as soorma-core's
examples do). Publishing and listening both go through the gateway (listening is the live stream's event
subscription, docs/event-client.md), so the script runs on any machine that reaches the platform. Exit code 1 if
the chain did not finish in time.
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

EXAMPLE_NAME = "events-simple"


async def place(order_id: str, timeout_s: float = 30.0) -> dict:
    """Announce one order and return the data of the ``order.shipped`` it leads to."""
    session_id = f"session-{uuid.uuid4().hex[:8]}"
    token_provider = build_example_token_provider(EXAMPLE_NAME, __file__)
    await token_provider.get_token()  # bootstrap now: the client listens in the token's platform tenant
    client = EventClient(agent_id="events-simple-client", source="events-simple-client", session_id=session_id,
                         auth_token_provider=token_provider, platform_tenant_id=token_provider.platform_tenant_id)
    correlation_id = str(uuid.uuid4())
    shipped: asyncio.Future[dict] = asyncio.get_running_loop().create_future()

    @client.on_event("order.shipped", topic=EventTopic.BUSINESS_FACTS)
    async def on_shipped(event: EventEnvelope) -> None:
        if event.correlation_id == correlation_id and not shipped.done():
            shipped.set_result({**event.data, "session_id": event.session_id})

    await client.connect(topics=[EventTopic.BUSINESS_FACTS])
    try:
        await client.publish(event_type="order.placed", topic=EventTopic.BUSINESS_FACTS,
                             data={"order_id": order_id, "items": ["widget"], "customer": "script"},
                             correlation_id=correlation_id)
        data = await asyncio.wait_for(shipped, timeout_s)
    finally:
        await client.disconnect()
    return {**data, "sent": {"correlation_id": correlation_id, "session_id": session_id}}


def main() -> int:
    try:
        data = asyncio.run(place((sys.argv[1:] or ["o-1"])[0]))
    except TimeoutError:
        print("no order.shipped: is the stack up and examples/events-simple deployed?", file=sys.stderr)
        return 1
    print(json.dumps(data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
