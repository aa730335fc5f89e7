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

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from examples.shared.ask import ask, print_answer  # noqa: E402 (after the path above)
from examples.shared.auth import build_example_token_provider  # noqa: E402

EXAMPLE_NAME = "planner-basic"

RESPONSE_EVENT = "review.result"


async def send_research_goal(topic: str, timeout_s: float = 60.0) -> dict:
    """Send one review goal and return the answer's data (raises ``TimeoutError`` without an answer)."""
    return await ask(build_example_token_provider(EXAMPLE_NAME, __file__), agent_id="research-client",
                     event_type="review.goal",
                     data={"topic": topic},
                     response_event=RESPONSE_EVENT, timeout_s=timeout_s)


def main() -> int:
    topic = " ".join(sys.argv[1:]) or "AI agents"
    return print_answer(send_research_goal(topic), "no answer: is the stack up and examples/planner-basic deployed?")


if __name__ == "__main__":
    sys.exit(main())
