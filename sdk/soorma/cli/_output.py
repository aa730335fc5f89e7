"""How every ``soorma`` command reports: results on stdout, errors (and with ``--json`` all progress) on stderr.

Exit codes: 0 done, :data:`EXIT_RUNTIME` (1) when the work failed (the stack is down, a goal failed, an HTTP error),
:data:`EXIT_USAGE` (2) when the command line cannot be carried out as given (bad arguments, nothing configured to talk
to), always before the stack is contacted.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stdout
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.text import Text

EXIT_RUNTIME = 1
EXIT_USAGE = 2


def stderr_console() -> Console:
    """A rich console on the current ``sys.stderr``. Made per call, not once at import: rich decides on colours when
    a console is created, and the stream may have been replaced since (a test runner, a redirect)."""
    return Console(stderr=True, highlight=False, soft_wrap=True)


def error(message: str) -> None:
    """Print ``message`` in red on stderr (the command goes on; :func:`fail` to stop)."""
    stderr_console().print(Text(message, style="red"))


def fail(message: str, *, code: int = EXIT_RUNTIME) -> NoReturn:
    """Print ``message`` in red on stderr and exit with ``code`` (raises :class:`typer.Exit`)."""
    error(message)
    raise typer.Exit(code)


def warn(message: str) -> None:
    """Print ``message`` in yellow on stderr (the command goes on)."""
    stderr_console().print(Text(message, style="yellow"))


def progress(message: str) -> None:
    """Print a progress line on stderr (never mixed into a command's result on stdout)."""
    stderr_console().print(Text(message))


def print_json(value: Any) -> None:
    """Print ``value`` as indented JSON on stdout (values JSON does not know, e.g. paths, as their ``str``)."""
    typer.echo(json.dumps(value, indent=2, default=str))


@contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Send everything written to stdout while the block runs to stderr: Python's ``print`` and, when stdout is a
    real file descriptor, child processes too (a deploy's setup step). ``--json`` keeps stdout for the result alone.
    """
    sys.stdout.flush()
    try:
        stdout_fd = sys.stdout.fileno()
        stderr_fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # not a real file (a test runner's buffer): Python output only
        with redirect_stdout(sys.stderr):
            yield
        return
    saved = os.dup(stdout_fd)
    try:
        os.dup2(stderr_fd, stdout_fd)
        with redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved, stdout_fd)
        os.close(saved)
