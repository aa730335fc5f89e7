"""Entry point of the ``soorma`` console script."""

from __future__ import annotations

import typer

from soorma import __version__
from soorma.cli import dlq, goal, local
from soorma.cli.init import init

app = typer.Typer(
    help="Soorma Serverless: event-driven agents (Planners, Workers, Tools) as functions.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(local.app, name="local")
app.add_typer(goal.app, name="goal")
app.add_typer(dlq.app, name="dlq")
app.command("init")(init)
app.command("deploy")(__import__("soorma.cli.deploy", fromlist=["deploy"]).deploy)


@app.command()
def version() -> None:
    """Print the installed version."""
    typer.echo(__version__)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
