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

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from examples.shared.ask import ask, print_answer  # noqa: E402 (after the path above)
from examples.shared.auth import build_example_token_provider  # noqa: E402

EXAMPLE_NAME = "choreography-basic"

RESPONSE_EVENT = "feedback.report.completed"


async def request_report(product: str, timeout_s: float = 120.0) -> dict:
    """Ask for one feedback report and return the answer's data (raises ``TimeoutError`` without an answer)."""
    return await ask(build_example_token_provider(EXAMPLE_NAME, __file__), agent_id="feedback-client",
                     event_type="feedback.report.requested",
                     data={"product": product},
                     response_event=RESPONSE_EVENT, timeout_s=timeout_s)


def main() -> int:
    product = " ".join(sys.argv[1:]) or "Acme Notes"
    return print_answer(request_report(product),
                        "no answer: is the stack up (with SOORMA_LLM_* set) and examples/choreography-basic deployed?")


if __name__ == "__main__":
    sys.exit(main())
