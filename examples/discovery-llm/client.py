"""Research client: soorma-core's ``11-discovery-llm`` client on this port's discovery planner (``agents.py``).

It listens on ``action-results``, publishes one ``discovery.research.goal`` action request with its own
``correlation_id`` and ``response_event`` ``research.completed`` (soorma-core's), waits for the planner's answer with
that correlation id and prints its data as JSON. The client speaks only the planner's API: the planner discovers the
worker, has the LLM write its payload from the registered schema, and shapes the answer to ``research_result_v1``
or to the client's own ``response_schema`` (``--headline-schema`` sends the README's)::

    python examples/discovery-llm/client.py "Serverless NATS in depth"
    # → {"status": "completed", "response_schema": "research_result_v1", "result": {"topic": …, "summary": …,
    #    "sources": [...]}, "request": {"topic": …, "max_results": 5, "depth": "deep"}}

soorma-core's goal is ``research.goal``; this port's planner handles ``discovery.research.goal``. The stack needs an
LLM (``SOORMA_LLM_*``, README "Run it"). It authenticates with a 15-minute token from the identity service
(``examples/shared/auth.py``), as soorma-core's examples do. Exit code 1 if no answer came in time.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from examples.shared.ask import ask, print_answer  # noqa: E402 (after the path above)
from examples.shared.auth import build_example_token_provider  # noqa: E402

EXAMPLE_NAME = "discovery-llm"

RESPONSE_EVENT = "research.completed"

#: A client-owned response schema (the README's): the planner shapes the findings to it.
HEADLINE_SCHEMA = {
    "type": "object",
    "properties": {"headline": {"type": "string"}, "count": {"type": "integer"},
                   "links": {"type": "array", "items": {"type": "string"}}},
    "required": ["headline", "count", "links"],
    "additionalProperties": False,
}


async def send_research_goal(description: str, response_schema: dict | None = None, timeout_s: float = 120.0) -> dict:
    """Send one research goal and return the answer's data (raises ``TimeoutError`` without an answer)."""
    return await ask(build_example_token_provider(EXAMPLE_NAME, __file__), agent_id="discovery-llm-client",
                     event_type="discovery.research.goal",
                     data={"description": description,
                           **({"response_schema": response_schema} if response_schema else {})},
                     response_event=RESPONSE_EVENT, timeout_s=timeout_s)


def main() -> int:
    args = sys.argv[1:]
    schema = HEADLINE_SCHEMA if "--headline-schema" in args else None
    description = " ".join(a for a in args if a != "--headline-schema") or "Latest advances in quantum computing"
    return print_answer(send_research_goal(description, schema),
                        "no answer: is the stack up (with SOORMA_LLM_* set) and examples/discovery-llm deployed?")


if __name__ == "__main__":
    sys.exit(main())
