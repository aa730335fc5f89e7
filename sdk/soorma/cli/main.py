"""Entry point of the ``soorma`` console script."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version as package_version
from typing import Annotated

import typer

from soorma.cli import dlq, goal, local, schedule
from soorma.cli.deploy import deploy
from soorma.cli.init import init

app = typer.Typer(
    help="Soorma Serverless: event-driven agents (Planners, Workers, Tools) as functions.",
    no_args_is_help=True,
)
app.add_typer(local.app, name="local")
app.add_typer(goal.app, name="goal")
app.add_typer(dlq.app, name="dlq")
app.add_typer(schedule.app, name="schedule")
app.command("init")(init)
app.command("deploy")(deploy)


def installed_version() -> str:
    """The version of the installed ``soorma`` distribution (its package metadata); the SDK's own
    ``soorma.__version__`` when the code runs from a source tree that was never installed."""
    try:
        return package_version("soorma")
    except PackageNotFoundError:
        from soorma import __version__

        return __version__


def _print_version(requested: bool) -> None:
    if requested:
        typer.echo(installed_version())
        raise typer.Exit()


@app.callback()
def _root(
    _version: Annotated[bool, typer.Option(
        "--version", callback=_print_version, is_eager=True, help="Print the installed version and exit.")] = False,
) -> None:
    """Soorma Serverless: event-driven agents (Planners, Workers, Tools) as functions."""


@app.command()
def version() -> None:
    """Print the installed version (same as --version)."""
    typer.echo(installed_version())


def main() -> None:
    """Run the ``soorma`` command line (the console script's entry point)."""
    app()


if __name__ == "__main__":
    main()
