"""Trip client: soorma-core's ``04-memory-working`` client on this port's trip workflow (``planner.py``,
``worker.py``).

It listens on ``action-results``, publishes one ``trip.plan`` action request with its own ``correlation_id`` (the
plan id: the planner keys the plan's ``WorkflowState`` on it) and ``response_event`` ``trip.planned``, waits for
the planner's answer with that correlation id and prints its data as JSON::

    python examples/memory-working/client.py Lisbon 2
    # → {"status": "completed", "plan_id": "…", "destination": "Lisbon", "days": 2, "itinerary": [...],
    #    "budget": {..., "total": 310, "currency": "EUR"}, "steps_done": 2, "actions": ["trip.plan", ...]}

soorma-core's workflow is ``workflow.start`` → ``workflow.completed``; this port's is ``trip.plan`` answered on the
caller's ``response_event``. soorma-core's client sent a fixed ``tenant_id``/``user_id``; here the gateway stamps
the caller's identity from the token (15 minutes, from the identity service: ``examples/shared/auth.py``), and
the agents' state is that identity's. Exit code 1 if no answer came in time.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from examples.shared.ask import ask, print_answer  # noqa: E402 (after the path above)
from examples.shared.auth import build_example_token_provider  # noqa: E402

EXAMPLE_NAME = "memory-working"

RESPONSE_EVENT = "trip.planned"


async def start_workflow(destination: str, days: int, timeout_s: float = 60.0) -> dict:
    """Ask for one trip plan and return the answer's data (raises ``TimeoutError`` without an answer)."""
    return await ask(build_example_token_provider(EXAMPLE_NAME, __file__), agent_id="workflow-client",
                     event_type="trip.plan",
                     data={"destination": destination, "days": days},
                     response_event=RESPONSE_EVENT, timeout_s=timeout_s)


def main() -> int:
    args = sys.argv[1:]
    destination = args[0] if args else "Lisbon"
    try:
        days = int(args[1]) if len(args) > 1 else 2
    except ValueError:
        print("usage: python examples/memory-working/client.py [destination] [days 1..14]", file=sys.stderr)
        return 2
    return print_answer(start_workflow(destination, days),
                        "no answer: is the stack up and examples/memory-working deployed?")


if __name__ == "__main__":
    sys.exit(main())
