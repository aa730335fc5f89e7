"""Calculator client: soorma-core's ``01-hello-tool`` client on this port's calculator (``calculator.py``).

It listens on ``action-results``, publishes one ``calculate.<operation>`` action request with its own
``correlation_id`` and ``response_event`` (``calculate.done``, not the tool's default ``calculate.result``: the tool
answers whatever event the caller names), waits for the answer with that correlation id and prints its data as
JSON::

    python examples/hello-tool/client.py --operation add --a 10 --b 5
    # → {"request_id": "…", "success": true, "result": {"operation": "add", "value": 15.0}}
    python examples/hello-tool/client.py --operation divide --a 100 --b 0
    # → {"request_id": "…", "success": false, "error": "cannot divide by zero"}

soorma-core's calculator takes ``{"a", "b"}`` on ``math.<operation>.requested``; this port's takes the payloads
of its registered event definitions (``{"numbers"}``, ``{"dividend", "divisor"}``, ``{"value"}``), so the script
maps ``--a``/``--b`` onto them. It authenticates as soorma-core's examples do, with a 15-minute token from the
identity service (``examples/shared/auth.py``), and publishes and listens through the gateway
(docs/event-client.md). Exit code 1 if no answer came in time; a failed result is an answer (exit code 0).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from examples.shared.ask import ask, print_answer  # noqa: E402 (after the path above)
from examples.shared.auth import build_example_token_provider  # noqa: E402

EXAMPLE_NAME = "hello-tool"

RESPONSE_EVENT = "calculate.done"

OPERATIONS = ("add", "multiply", "divide", "sqrt")


def request_data(operation: str, a: float, b: float | None) -> dict[str, Any]:
    """The payload of ``calculate.<operation>`` for the operands ``a`` and ``b`` (``b`` unused by ``sqrt``)."""
    if operation == "sqrt":
        return {"value": a}
    if b is None:
        raise ValueError(f"--operation {operation} needs --b")
    if operation == "divide":
        return {"dividend": a, "divisor": b}
    return {"numbers": [a, b]}


async def send_calculation_request(operation: str, a: float, b: float | None, timeout_s: float = 30.0) -> dict:
    """Send one calculation request and return the answer's data (raises ``TimeoutError`` without an answer,
    ``ValueError`` for operands the operation cannot take)."""
    data = request_data(operation, a, b)
    return await ask(build_example_token_provider(EXAMPLE_NAME, __file__), agent_id="calculator-client",
                     event_type=f"calculate.{operation}", data=data, response_event=RESPONSE_EVENT,
                     timeout_s=timeout_s)


def main() -> int:
    parser = argparse.ArgumentParser(description="Send one calculation request to the calculator tool")
    parser.add_argument("--operation", required=True, choices=OPERATIONS)
    parser.add_argument("--a", type=float, required=True, help="first operand (the value for sqrt)")
    parser.add_argument("--b", type=float, help="second operand (not for sqrt)")
    args = parser.parse_args()
    try:
        return print_answer(send_calculation_request(args.operation, args.a, args.b),
                            "no answer: is the stack up and examples/hello-tool deployed?")
    except ValueError as exc:
        parser.error(str(exc))


if __name__ == "__main__":
    sys.exit(main())
