"""``soorma schedule create|list|show|pause|resume|delete``: scheduled goals (``/v1/schedules``) through the SDK's
:class:`~soorma.clients.schedules.ScheduleClient`.

The endpoint and key are the SDK's :class:`~soorma.settings.Settings` (``SOORMA_API_URL`` / ``SOORMA_API_KEY``, else
the local stack's ``.soorma/credentials.json``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer

from soorma.cli._api import call_api
from soorma.cli._output import print_json
from soorma.cli.goal import json_object
from soorma.clients.schedules import ScheduleClient

app = typer.Typer(help="Run goals on a schedule (EventBridge cron/rate expressions).", no_args_is_help=True)

T = TypeVar("T")


def _call(work: Callable[[ScheduleClient], Awaitable[T]]) -> T:
    return call_api(ScheduleClient, work)


@app.command()
def create(
    expression: Annotated[str, typer.Argument(help="cron(min hour day-of-month month day-of-week year) or "
                                                   "rate(N minutes|hours|days), e.g. 'cron(0 9 ? * MON *)'")],
    goal_type: Annotated[str, typer.Argument(help="the goal each run submits")],
    data: Annotated[str, typer.Option("--data", help="the goal's data, a JSON object")] = "{}",
    timezone: Annotated[str, typer.Option("--timezone", "--tz", help="IANA time zone of a cron expression")] = "UTC",
    session_id: Annotated[str | None, typer.Option("--session", help="the session every run belongs to")] = None,
) -> None:
    """Create a schedule; prints it (with its first run) as JSON."""
    body = json_object(data)
    print_json(_call(lambda c: c.create(expression, goal_type, body, timezone=timezone, session_id=session_id)))


@app.command("list")
def list_() -> None:
    """List your schedules as JSON."""
    print_json(_call(lambda c: c.list()))


@app.command()
def show(schedule_id: str) -> None:
    """One schedule with its next runs."""
    print_json(_call(lambda c: c.get(schedule_id)))


@app.command()
def pause(schedule_id: str) -> None:
    """Stop a schedule's runs until resumed."""
    print_json(_call(lambda c: c.pause(schedule_id)))


@app.command()
def resume(schedule_id: str) -> None:
    """Resume a paused schedule."""
    print_json(_call(lambda c: c.resume(schedule_id)))


@app.command()
def delete(schedule_id: str) -> None:
    """Delete a schedule (the goals it ran stay)."""
    _call(lambda c: c.delete(schedule_id))
    typer.echo(f"deleted {schedule_id}")
