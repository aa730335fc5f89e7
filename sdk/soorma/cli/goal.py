"""``soorma goal submit|status|follow|inputs|answer``: submit a goal, read it back, follow it live, list its input
requests and answer them, through the SDK's :class:`GatewayClient` (``follow`` and ``submit --follow``: its live goal
stream, :meth:`GatewayClient.follow_goal`).

The endpoint and key are the SDK's :class:`~soorma.settings.Settings` (``SOORMA_API_URL`` / ``SOORMA_API_KEY``, else
the local stack's ``.soorma/credentials.json``).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.text import Text

from soorma.cli._api import api_settings, call_api
from soorma.cli._output import (
    EXIT_USAGE,
    fail,
    print_json,
    progress,
    stderr_console,
    warn,
)
from soorma.cli.choices import MultitaskStrategy
from soorma.clients.gateway import GatewayClient
from soorma.clients.streams import GoalStreamEnd, GoalStreamEvent
from soorma.models import GoalStatus
from soorma.settings import Settings

app = typer.Typer(help="Submit goals and read their status.", no_args_is_help=True)

T = TypeVar("T")


def json_object(value: str | dict[str, Any]) -> dict[str, Any]:
    """``--data``: the text as a JSON object (a dict, the default, is one already). Raises
    :class:`typer.BadParameter`, a usage error (exit 2) before the command runs, for anything else."""
    if isinstance(value, dict):
        return value
    try:
        parsed = json.loads(value)
    except ValueError as exc:
        raise typer.BadParameter(f"not valid JSON: {exc}") from None
    if not isinstance(parsed, dict):
        raise typer.BadParameter("must be a JSON object")
    return parsed


def _call(settings: Settings, work: Callable[[GatewayClient], Awaitable[T]]) -> T:
    """Run ``work`` with a gateway client on ``settings`` (:func:`soorma.cli._api.call_api`)."""
    return call_api(GatewayClient, work, settings)


def _goal_json(goal: GoalStatus) -> dict[str, Any]:
    """The goal as the gateway sent it (its own keys; nothing the answer left out)."""
    return goal.model_dump(mode="json", exclude_unset=True)


async def _final_goal(client: GatewayClient, goal_id: str, timeout: float) -> GoalStatus:
    """The goal once it ended, or as it is after ``timeout`` seconds (then still ``running``)."""
    try:
        return await client.wait_for_goal(goal_id, timeout=timeout)
    except TimeoutError:
        goal = await client.get_goal(goal_id)
    if goal is None:
        fail(f"goal {goal_id} not found")
    return goal


@app.command()
def submit(
    goal_type: Annotated[str, typer.Argument(help="The goal's event type, e.g. research.goal")],
    data: Annotated[dict[str, Any], typer.Option(
        "--data", "-d", parser=json_object, metavar="JSON", default_factory=dict, show_default="{}",
        help="The goal's data as a JSON object")],
    wait: Annotated[bool, typer.Option("--wait", "-w", help="Wait for the goal to end and print it as JSON")] = False,
    timeout: Annotated[float, typer.Option("--timeout", min=0, help="Seconds to wait with --wait")] = 120.0,
    session_id: Annotated[str | None, typer.Option("--session", help="Session the goal belongs to")] = None,
    strategy: Annotated[MultitaskStrategy | None, typer.Option(
        "--strategy", help="What to do when the session already has an active goal (overrides the session's policy)")
    ] = None,
    as_json: Annotated[bool, typer.Option(
        "--json", help="Print the submitted goal ({goal_id, status, goal_type}) as JSON, not only its id")] = False,
    follow_: Annotated[bool, typer.Option(
        "--follow", "-f", help="Print the goal's events live until it ends (exit 1 if it did not complete)")] = False,
) -> None:
    """Submit a goal; prints its id, with --follow its events as they happen, and with --wait the final goal as JSON
    (exit 1 if it failed or timed out)."""
    settings = api_settings()
    submitted = _call(settings, lambda client: client.submit_goal(goal_type, data, session_id,
                                                                  multitask_strategy=strategy.value if strategy else None))
    goal_id = str(submitted["goal_id"])
    if follow_:
        progress(f"goal {goal_id} submitted; following it")
        _follow(settings, goal_id, after=0, as_json=as_json)
        return
    if not wait:
        if as_json:
            print_json(submitted)
        else:
            typer.echo(goal_id)
        return
    message = f"goal {goal_id} submitted; waiting up to {timeout:.0f} s"
    if sys.stderr.isatty():
        with stderr_console().status(message):
            goal = _call(settings, lambda client: _final_goal(client, goal_id, timeout))
    else:
        progress(message)
        goal = _call(settings, lambda client: _final_goal(client, goal_id, timeout))
    print_json(_goal_json(goal))
    if goal.status == "completed":
        return
    if goal.status in ("queued", "pending", "running", "input-required"):
        warn(f"goal {goal_id} still {goal.status} after {timeout:.0f} s")
        raise typer.Exit(1)
    fail(f"goal {goal_id} {goal.status}" + (f": {goal.error}" if goal.error else ""))


@app.command()
def status(goal_id: Annotated[str, typer.Argument(help="The goal id printed by `soorma goal submit`")]) -> None:
    """Print a goal (status, result, the tasks seen) as JSON."""
    goal = _call(api_settings(), lambda client: client.get_goal(goal_id))
    if goal is None:
        fail(f"HTTP 404: goal {goal_id} not found")
    print_json(_goal_json(goal))


def _show(item: GoalStreamEvent | GoalStreamEnd) -> None:
    """One streamed item as a line on stdout: the seq, time, event type, source and a short data summary."""
    console = Console(highlight=False, soft_wrap=True)
    if isinstance(item, GoalStreamEnd):
        style = "green" if item.status == "completed" else "red"
        text = Text(f"goal {item.status}", style=f"bold {style}")
        if item.error:
            text.append(f": {item.error}")
        console.print(text)
        return
    event = item.event
    data = json.dumps(event.get("data"), default=str, separators=(",", ":"))
    line = Text(f"{item.seq:>4} ", style="dim")
    line.append(str(event.get("time", ""))[11:23] + " ", style="dim")
    line.append(str(event.get("type")), style="bold cyan")
    line.append(f"  {event.get('source') or ''}  ", style="magenta")
    line.append(data if len(data) <= 160 else data[:157] + "...")
    console.print(line)


def _follow(settings: Settings, goal_id: str, *, after: int, as_json: bool) -> None:
    """Print the goal's stream until its end; exit 1 unless it completed."""

    async def stream(client: GatewayClient) -> GoalStreamEnd | None:
        end = None
        # Read to the generator's own end (it returns right after the end frame), so its socket closes there.
        async for item in client.follow_goal(goal_id, after=after, max_reconnects=10):
            if as_json:
                typer.echo(json.dumps({"type": item.kind, **item.model_dump(mode="json", exclude={"kind"})}))
            else:
                _show(item)
            if isinstance(item, GoalStreamEnd):
                end = item
        return end

    try:
        end = _call(settings, stream)
    except ImportError:
        fail("following a goal needs the websockets package: pip install 'soorma[stream]'", code=EXIT_USAGE)
    if end is None or end.status != "completed":
        raise typer.Exit(1)


@app.command()
def follow(
    goal_id: Annotated[str, typer.Argument(help="The goal id printed by `soorma goal submit`")],
    after: Annotated[int, typer.Option("--after", min=0, help="Start after this event number (seq)")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print each frame as a JSON line")] = False,
) -> None:
    """Print the goal's events live, from the first (or after --after) until it ends, reconnecting by itself
    (exit 1 if it did not complete)."""
    _follow(api_settings(), goal_id, after=after, as_json=as_json)


def json_value(value: str) -> Any:
    """``--data`` of ``answer``: any JSON value. Raises :class:`typer.BadParameter` (exit 2) for text that is no
    JSON."""
    try:
        return json.loads(value)
    except ValueError as exc:
        raise typer.BadParameter(f"not valid JSON: {exc}") from None


@app.command()
def inputs(
    goal_id: Annotated[str, typer.Argument(help="The goal id")],
    pending: Annotated[bool, typer.Option("--pending", help="Only the requests awaiting an answer")] = False,
) -> None:
    """Print the goal's input requests (id, prompt, JSON Schema, status, answer) as JSON."""
    requests = _call(api_settings(), lambda client: client.input_requests(goal_id,
                                                                        status="pending" if pending else None))
    print_json(requests)


@app.command()
def answer(
    goal_id: Annotated[str, typer.Argument(help="The goal id")],
    request_id: Annotated[str, typer.Argument(help="The input request's id (`soorma goal inputs GOAL_ID`)")],
    data: Annotated[str, typer.Option("--data", "-d", metavar="JSON",
                                      help="The answer: any JSON value, checked against the request's schema")],
) -> None:
    """Answer one input request of a goal; prints the answered request as JSON (exit 1 with the reason when the
    answer does not satisfy the request's schema, or the request is no longer pending)."""
    value = json_value(data)
    print_json(_call(api_settings(), lambda client: client.answer_input(goal_id, request_id, value)))
