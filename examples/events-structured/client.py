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

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from examples.shared.ask import ask, print_answer  # noqa: E402 (after the path above)
from examples.shared.auth import build_example_token_provider  # noqa: E402

EXAMPLE_NAME = "events-structured"

RESPONSE_EVENT = "support.ticket.routed"


async def submit_ticket(subject: str, body: str, timeout_s: float = 120.0) -> dict:
    """Submit one ticket and return the answer's data (raises ``TimeoutError`` without an answer)."""
    return await ask(build_example_token_provider(EXAMPLE_NAME, __file__), agent_id="ticket-client",
                     event_type="support.ticket.submitted",
                     data={"subject": subject, "body": body, "customer": "client-script"},
                     response_event=RESPONSE_EVENT, timeout_s=timeout_s)


def main() -> int:
    args = sys.argv[1:]
    subject = args[0] if args else "Wrong invoice"
    body = " ".join(args[1:]) or "Please refund the extra 20 on my March invoice"
    return print_answer(submit_ticket(subject, body),
                        "no answer: is the stack up (with SOORMA_LLM_* set) and examples/events-structured deployed?")


if __name__ == "__main__":
    sys.exit(main())
