"""A calculator ``Tool``: it answers each request at once, with a result or a failed result.

``soorma local deploy examples/hello-tool`` deploys the module-level ``tool`` object as one function. Every
``on_invoke`` handler returns a dict; the SDK answers the caller's ``response_event`` (or ``calculate.result``, the
tool's default) with ``{"request_id", "success": true, "result": <dict>}``, checked against the handler's
``response_schema``. A handler that raises (division by zero, bad input) is answered with
``{"request_id", "success": false, "error": "..."}``: a failed result, not a retry.

Each request is described (``events_consumed``: its description and payload schema), so the registry can tell
callers what to send: the LLM planners' discovery and the gateway's MCP server (``/v1/mcp``: each request becomes
an MCP tool whose ``inputSchema`` is the payload schema) read it.
"""

from __future__ import annotations

import math

from soorma import EventDefinition, Tool
from soorma.agents.tool import InvocationContext
from soorma.context import PlatformContext

NUMBERS = {
    "type": "object",
    "properties": {"numbers": {"type": "array", "items": {"type": "number"}, "minItems": 1}},
    "required": ["numbers"],
}
REQUESTS = [
    EventDefinition(event_name="calculate.add", description="Add numbers", payload_schema=NUMBERS),
    EventDefinition(event_name="calculate.multiply", description="Multiply numbers", payload_schema=NUMBERS),
    EventDefinition(event_name="calculate.divide", description="Divide a dividend by a divisor", payload_schema={
        "type": "object",
        "properties": {"dividend": {"type": "number"}, "divisor": {"type": "number"}},
        "required": ["dividend", "divisor"],
    }),
    EventDefinition(event_name="calculate.sqrt", description="Take the square root of a number", payload_schema={
        "type": "object", "properties": {"value": {"type": "number"}}, "required": ["value"],
    }),
]

tool = Tool(
    name="calculator",
    description="Adds, multiplies, divides numbers and takes square roots",
    default_response_event="calculate.result",
    events_consumed=REQUESTS,
)

NUMBER_RESULT = {
    "type": "object",
    "properties": {"operation": {"type": "string"}, "value": {"type": "number"}},
    "required": ["operation", "value"],
}


def _numbers(request: InvocationContext) -> list[float]:
    numbers = request.data.get("numbers")
    if not isinstance(numbers, list) or not numbers or not all(isinstance(n, (int, float)) for n in numbers):
        raise ValueError('expected {"numbers": [<number>, ...]} with at least one number')
    return numbers


@tool.on_invoke("calculate.add", response_schema=NUMBER_RESULT)
async def add(request: InvocationContext, context: PlatformContext) -> dict:
    return {"operation": "add", "value": sum(_numbers(request))}


@tool.on_invoke("calculate.multiply", response_schema=NUMBER_RESULT)
async def multiply(request: InvocationContext, context: PlatformContext) -> dict:
    return {"operation": "multiply", "value": math.prod(_numbers(request))}


@tool.on_invoke("calculate.divide", response_schema=NUMBER_RESULT)
async def divide(request: InvocationContext, context: PlatformContext) -> dict:
    dividend, divisor = request.data.get("dividend"), request.data.get("divisor")
    if divisor == 0:
        raise ZeroDivisionError("cannot divide by zero")
    return {"operation": "divide", "value": dividend / divisor}


@tool.on_invoke("calculate.sqrt", response_schema=NUMBER_RESULT)
async def square_root(request: InvocationContext, context: PlatformContext) -> dict:
    value = request.data.get("value")
    if not isinstance(value, (int, float)) or value < 0:
        raise ValueError("sqrt needs a number >= 0")
    return {"operation": "sqrt", "value": math.sqrt(value)}


if __name__ == "__main__":  # a local process against `soorma local` (breakpoints welcome)
    tool.run()
