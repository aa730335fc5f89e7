"""``soorma goal submit|status``: submit a goal over HTTP and read it back."""

from __future__ import annotations

import json
import time
from typing import Any, Optional

import httpx
import typer

from soorma.cli.config import api_config

app = typer.Typer(help="Submit goals and read their status.", no_args_is_help=True)


def _client() -> httpx.Client:
    config = api_config()
    return httpx.Client(base_url=config.url, headers={"authorization": f"Bearer {config.key}"}, timeout=30)


def _fail(response: httpx.Response) -> None:
    try:
        detail = response.json()
        detail = detail.get("detail", detail) if isinstance(detail, dict) else detail
    except ValueError:
        detail = response.text
    typer.secho(f"HTTP {response.status_code}: {detail}", fg="red", err=True)
    raise typer.Exit(1)


def _request(call, *args: Any, **kwargs: Any) -> httpx.Response:
    try:
        return call(*args, **kwargs)
    except httpx.TransportError as exc:
        typer.secho(f"cannot reach the API ({exc}); is the stack up? (`soorma local status`)", fg="red", err=True)
        raise typer.Exit(1) from None


def wait_for_goal(client: httpx.Client, goal_id: str, timeout_s: float) -> dict[str, Any]:
    """Poll ``GET /v1/goals/{id}`` until the goal is no longer running or ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    delay = 0.05
    while True:
        response = _request(client.get, f"/v1/goals/{goal_id}")
        if response.status_code != 200:
            _fail(response)
        goal = response.json()
        if goal.get("status") != "running" or time.monotonic() >= deadline:
            return goal
        time.sleep(delay)
        delay = min(delay * 1.5, 0.5)


@app.command()
def submit(
    goal_type: str = typer.Argument(..., help="The goal's event type, e.g. research.goal"),
    data: str = typer.Option("{}", "--data", "-d", help="The goal's data as a JSON object"),
    wait: bool = typer.Option(False, "--wait", "-w", help="Wait for the goal to end and print it as JSON"),
    timeout: float = typer.Option(120.0, "--timeout", help="Seconds to wait with --wait"),
    session_id: Optional[str] = typer.Option(None, "--session", help="Session the goal belongs to"),
) -> None:
    """Submit a goal; prints its id, and with --wait the final goal as JSON (exit 1 if it failed or timed out)."""
    try:
        payload = json.loads(data)
    except ValueError as exc:
        typer.secho(f"--data is not valid JSON: {exc}", fg="red", err=True)
        raise typer.Exit(2) from None
    if not isinstance(payload, dict):
        typer.secho("--data must be a JSON object", fg="red", err=True)
        raise typer.Exit(2)
    body: dict[str, Any] = {"goal_type": goal_type, "data": payload}
    if session_id:
        body["session_id"] = session_id
    with _client() as client:
        response = _request(client.post, "/v1/goals", json=body)
        if response.status_code >= 300:
            _fail(response)
        goal_id = response.json()["goal_id"]
        if not wait:
            typer.echo(goal_id)
            return
        typer.secho(f"goal {goal_id} submitted; waiting up to {timeout:.0f} s", err=True)
        goal = wait_for_goal(client, goal_id, timeout)
    typer.echo(json.dumps(goal, indent=2))
    if goal.get("status") == "running":
        typer.secho(f"goal {goal_id} still running after {timeout:.0f} s", fg="yellow", err=True)
        raise typer.Exit(1)
    if goal.get("status") != "completed":
        raise typer.Exit(1)


@app.command()
def status(goal_id: str = typer.Argument(..., help="The goal id printed by `soorma goal submit`")) -> None:
    """Print a goal (status, result, the tasks seen) as JSON."""
    with _client() as client:
        response = _request(client.get, f"/v1/goals/{goal_id}")
        if response.status_code != 200:
            _fail(response)
    typer.echo(json.dumps(response.json(), indent=2))
