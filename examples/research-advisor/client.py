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

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from examples.shared.ask import ask, print_answer  # noqa: E402 (after the path above)
from examples.shared.auth import build_example_token_provider  # noqa: E402

EXAMPLE_NAME = "research-advisor"

RESPONSE_EVENT = "research.answered"


async def send_research_goal(question: str, timeout_s: float = 120.0) -> dict:
    """Ask one question and return the answer's data (raises ``TimeoutError`` without an answer)."""
    return await ask(build_example_token_provider(EXAMPLE_NAME, __file__), agent_id="client",
                     event_type="research.goal",
                     data={"question": question},
                     response_event=RESPONSE_EVENT, timeout_s=timeout_s)


def main() -> int:
    question = " ".join(sys.argv[1:]) or "How do I read a gzip-compressed file?"
    return print_answer(send_research_goal(question),
                        "no answer: is the stack up and examples/research-advisor deployed?")


if __name__ == "__main__":
    sys.exit(main())
