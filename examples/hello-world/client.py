"""The hello-world client: soorma-core's ``EventClient`` request/response pattern.

It listens on ``action-results``, publishes one ``greeting.requested`` with its own ``correlation_id`` and
``response_event``, waits for the answer with that correlation id and prints its data as JSON::

    python examples/hello-world/client.py Ada
    # → {"message": "Hello, Ada!", "greeted_by": "hello-worker"}

It authenticates as soorma-core's examples do, with a 15-minute token from the identity service
(``examples/shared/auth.py``: a principal of the local tenant, kept in ``.soorma/hello-world-identity.json``, tokens
issued and refreshed), not with an API key. Publishing and listening both go through the gateway: listening is the
live stream's event subscription, so the script runs on any machine that reaches the platform
(docs/event-client.md). Exit code 1 if no answer came in time.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from examples.shared.ask import ask, print_answer  # noqa: E402 (after the path above)
from examples.shared.auth import build_example_token_provider  # noqa: E402

EXAMPLE_NAME = "hello-world"

RESPONSE_EVENT = "greeting.done"


async def greet(name: str, timeout_s: float = 30.0) -> dict:
    """Send one greeting request and return the answer's data (raises ``TimeoutError`` without an answer)."""
    token_provider = build_example_token_provider(EXAMPLE_NAME, __file__)
    await token_provider.get_token()  # bootstrap now: the client listens in the token's platform tenant
    return await ask(token_provider, agent_id="hello-client", event_type="greeting.requested", data={"name": name},
                     response_event=RESPONSE_EVENT, timeout_s=timeout_s,
                     client_options={"platform_tenant_id": token_provider.platform_tenant_id})


def main() -> int:
    name = " ".join(sys.argv[1:]) or "World"
    return print_answer(greet(name), "no answer: is the stack up and examples/hello-world deployed?")


if __name__ == "__main__":
    sys.exit(main())
