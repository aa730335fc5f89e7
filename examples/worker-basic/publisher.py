"""Order publisher: soorma-core's ``08-worker-basic`` publisher on this port's order workers (``agents.py``).

It listens on ``action-results``, publishes one ``order.process.requested`` action request with its own
``correlation_id`` and ``response_event`` ``order.process.completed``, waits for the order processor's answer with
that correlation id (the processor answers after both delegated sub-tasks came back, with the caller's correlation
id, which soorma-core's lost after a delegation) and prints its data as JSON::

    python examples/worker-basic/publisher.py ORD-001 widget gadget
    # → {"task_id": "…", "action_id": null, "status": "completed", "result": {"order_id": "ORD-001",
    #    "status": "confirmed", "inventory": {"reserved": true, "items": ["widget", "gadget"]},
    #    "payment": {"charged": true, "amount": 12.5}}}

The total is the sum of the items' prices (``PRICES`` in ``agents.py``; soorma-core's ``laptop``/``mouse`` are not
in this port's catalogue, and an unknown item is answered with a failed result). It authenticates with a
15-minute token from the identity service (``examples/shared/auth.py``) and, as soorma-core's publisher does, names
the example's tenant and principal as the request's ``tenant_id``/``user_id`` (the gateway checks they are the
token's own). Exit code 1 if no answer came in time.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from examples.shared.ask import ask, print_answer  # noqa: E402 (after the path above)
from examples.shared.auth import build_example_token_provider  # noqa: E402

EXAMPLE_NAME = "worker-basic"

RESPONSE_EVENT = "order.process.completed"

#: The order processor's price list (``agents.PRICES``), repeated here: the script does not import the agents.
PRICES = {"widget": 2.5, "gadget": 10.0, "gizmo": 7.25}


async def publish_order_request(order_id: str, items: list[str], timeout_s: float = 60.0) -> dict:
    """Send one order and return the answer's data (raises ``TimeoutError`` without an answer)."""
    token_provider = build_example_token_provider(EXAMPLE_NAME, __file__)
    await token_provider.get_token()
    tenant_id = await token_provider.get_platform_tenant_id()
    user_id = await token_provider.get_bootstrap_admin_principal_id()
    return await ask(token_provider, agent_id="order-service", event_type="order.process.requested",
                     data={"order_id": order_id, "customer": "Alice", "items": items,
                           "total": sum(PRICES.get(item, 0.0) for item in items)},
                     response_event=RESPONSE_EVENT, timeout_s=timeout_s,
                     publish_options={"tenant_id": tenant_id, "user_id": user_id})


def main() -> int:
    args = sys.argv[1:]
    order_id = args[0] if args else "ORD-001"
    items = args[1:] or ["widget", "gadget"]
    return print_answer(publish_order_request(order_id, items),
                        "no answer: is the stack up and examples/worker-basic deployed?")


if __name__ == "__main__":
    sys.exit(main())
