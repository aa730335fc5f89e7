"""Ticket client: soorma-core's ``12-event-selector`` client on this port's ticket router (``agents.py``).

It listens on ``action-results``, publishes one ``support.ticket.created`` action request with its own
``correlation_id`` and ``response_event`` ``support.ticket.routed``, waits for the router's answer with that
correlation id (after ``EventSelector`` had the LLM pick a specialist and the specialist answered) and prints its
data as JSON::

    python examples/event-selector/client.py T-1 "Charged twice" "I was charged twice for March"
    # → {"task_id": "…", "status": "completed", "result": {"routed_to": "support.billing.requested",
    #    "fallback": false, "handled_by": "billing-worker", "resolution": "duplicate charge refunded", ...}}

The stack needs an LLM (``SOORMA_LLM_*``, README "Run it"). It authenticates with a 15-minute token from the identity
service (``examples/shared/auth.py``), as soorma-core's examples do. Exit code 1 if no answer came in time.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from examples.shared.ask import ask, print_answer  # noqa: E402 (after the path above)
from examples.shared.auth import build_example_token_provider  # noqa: E402

EXAMPLE_NAME = "event-selector"

RESPONSE_EVENT = "support.ticket.routed"


async def create_ticket(ticket_id: str, subject: str, description: str, timeout_s: float = 120.0) -> dict:
    """Create one ticket and return the answer's data (raises ``TimeoutError`` without an answer)."""
    return await ask(build_example_token_provider(EXAMPLE_NAME, __file__), agent_id="support-client",
                     event_type="support.ticket.created",
                     data={"ticket_id": ticket_id, "customer": "client-script", "subject": subject,
                           "description": description},
                     response_event=RESPONSE_EVENT, timeout_s=timeout_s)


def main() -> int:
    args = sys.argv[1:]
    ticket_id = args[0] if args else "T-1"
    subject = args[1] if len(args) > 1 else "Charged twice"
    description = " ".join(args[2:]) or "I was charged twice for March"
    return print_answer(create_ticket(ticket_id, subject, description),
                        "no answer: is the stack up (with SOORMA_LLM_* set) and examples/event-selector deployed?")


if __name__ == "__main__":
    sys.exit(main())
