"""``soorma webhooks create|list|delete|deliveries|replay``: webhook subscriptions and their deliveries, through the
SDK's :class:`~soorma.clients.webhooks.WebhooksClient` (``/v1/webhooks…``).

The endpoint and key are the SDK's :class:`~soorma.settings.Settings` (``SOORMA_API_URL`` / ``SOORMA_API_KEY``, else
the local stack's ``.soorma/credentials.json``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from soorma.cli._api import call_api
from soorma.cli._output import EXIT_USAGE, fail, print_json, progress
from soorma.clients.webhooks import WebhooksClient

app = typer.Typer(help="Webhook subscriptions, deliveries and replay.", no_args_is_help=True)

T = TypeVar("T")
EVENT_KINDS = ("terminal", "progress")


def _call(work: Callable[[WebhooksClient], Awaitable[T]]) -> T:
    """Run ``work`` with a client on the SDK's settings (:func:`soorma.cli._api.call_api`)."""
    return call_api(WebhooksClient, work)


def _table(title: str, columns: tuple[str, ...], rows: list[dict[str, Any]]) -> None:
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*("" if row.get(c) is None else str(row.get(c)) for c in columns))
    Console(soft_wrap=True).print(table)


@app.command("create")
def create(
    url: Annotated[str, typer.Argument(help="The receiver's URL (https; http and loopback only on the local stack).")],
    events: Annotated[list[str] | None, typer.Option(
        "--event", help="terminal (default) and/or progress; repeat the option for both.")] = None,
    description: Annotated[str, typer.Option(help="A note of your own.")] = "",
    as_json: Annotated[bool, typer.Option("--json", help="Print the answer as JSON.")] = False,
) -> None:
    """Subscribe URL to every goal of your identity; prints the signing secret, this once."""
    kinds = events or ["terminal"]
    if any(kind not in EVENT_KINDS for kind in kinds):
        fail(f"--event must be one of {', '.join(EVENT_KINDS)}", code=EXIT_USAGE)
    created = _call(lambda c: c.create_webhook(url, kinds, description))
    if as_json:
        print_json(created)
        return
    typer.echo(f"webhook {created['id']} -> {created['url']} ({', '.join(created['events'])})")
    typer.echo(f"secret: {created['secret']}")
    progress("The secret is shown only now: verify deliveries with standardwebhooks.Webhook(secret).verify(...).")


@app.command("list")
def list_webhooks(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Your webhook subscriptions (tenant-wide and goals' own); never their secrets."""
    hooks = _call(lambda c: c.list_webhooks())
    if as_json:
        print_json(hooks)
        return
    _table("webhooks", ("id", "url", "events", "goal_id", "description", "created_at"),
           [{**h, "events": ",".join(h["events"])} for h in hooks])


@app.command("delete")
def delete(webhook_id: Annotated[str, typer.Argument(help="The subscription's id.")]) -> None:
    """Delete a subscription: nothing new is queued for it."""
    _call(lambda c: c.delete_webhook(webhook_id))
    typer.echo(f"deleted webhook {webhook_id}")


@app.command("deliveries")
def deliveries(
    failed: Annotated[bool, typer.Option("--failed", help="Only dead-lettered deliveries.")] = False,
    goal_id: Annotated[str | None, typer.Option("--goal", help="Only this goal's.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Your deliveries, newest first: state, attempts, the last answer."""
    rows = _call(lambda c: c.list_deliveries(state="dead" if failed else None, goal_id=goal_id, limit=limit))
    if as_json:
        print_json(rows)
        return
    _table("dead-lettered deliveries" if failed else "deliveries",
           ("id", "event_type", "goal_id", "state", "attempts", "last_status", "last_error", "url"), rows)


@app.command("replay")
def replay(delivery_id: Annotated[str, typer.Argument(help="The delivery's id (`soorma webhooks deliveries`).")],
           as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Send a dead-lettered (or delivered) delivery again: a new series of attempts, due now."""
    row = _call(lambda c: c.replay_delivery(delivery_id))
    if as_json:
        print_json(row)
        return
    typer.echo(f"delivery {row['id']} queued again ({row['event_type']} -> {row['url']})")
