"""``soorma dlq list|replay``: see and recover the events that failed every delivery (stream ``SOORMA_DLQ``).

Connects to ``--nats-url``, else ``SOORMA_NATS_URL``, else the local stack's NATS (``nats_url`` in
``.soorma/secrets.json``, with the stack's NATS user and password). An unreachable or refusing server fails the
command at once (exit 1) with a message that never shows the URL's password. The work is done by :mod:`soorma.functions.bridge.dlq`: ``list`` reads without consuming;
``replay`` publishes each chosen event again to its original subject for the agent that failed it (a new message id,
so JetStream's de-duplication does not drop it) and then deletes its dead-letter entry.

On the SQS transport (``--transport sqs``, or a local stack started with it, or ``SOORMA_EVENT_TRANSPORT=sqs``) the
dead letters are the messages of each agent's parked queue (SQS's redrive policy moved them to the dead-letter queue
after ``maxReceiveCount`` receives; the dead-letter function told their goal and parked them) and any still in a
dead-letter queue, found by their queue tags at ``--aws-endpoint-url``, else ``AWS_ENDPOINT_URL``, else the local
stack's moto; ``replay`` moves them back to the agent's queue and sends the replay notice to the tracker's queue,
so their goal is ``running`` again (:mod:`soorma.local.sqs_transport`).

A replayed event gets a fresh delivery grant (:mod:`soorma.grants`) when the replayer has the platform's
``SOORMA_API_KEY_PEPPER`` (the environment, or the local stack's ``.soorma/secrets.json``): a dead letter replayed
after its grant expired can then act for its user again. Without it the event is replayed as it was.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from soorma.cli._output import EXIT_RUNTIME, EXIT_USAGE, error, fail
from soorma.cli.choices import Transport
from soorma.settings import NATS_URL

if TYPE_CHECKING:
    from nats.js import JetStreamContext

    from soorma.local.paths import StackPaths

app = typer.Typer(help="Dead letters: list the events that failed every delivery, replay them.", no_args_is_help=True)

NATS_URL_ENV = NATS_URL.name
T = TypeVar("T")

# The options both commands take: which dead letters (agent, tenant) and where the bus is (transport, endpoints)
AgentOption = Annotated[str | None, typer.Option("--agent", "-a", help="Only this agent's dead letters")]
TenantOption = Annotated[str | None, typer.Option("--tenant", help="Only this platform tenant's")]
NatsUrlOption = Annotated[str | None, typer.Option(
    "--nats-url", help=f"NATS URL (default ${NATS_URL_ENV} or the local stack)")]
TransportOption = Annotated[Transport | None, typer.Option(
    "--transport", help="How the bus carries events (default: the local stack's)")]
AwsEndpointOption = Annotated[str | None, typer.Option("--aws-endpoint-url", help="SQS endpoint for --transport sqs")]


def _stack_paths() -> StackPaths:
    from soorma.local.paths import StackPaths, default_home

    return StackPaths(default_home())


def _stack_state() -> dict[str, Any]:
    from soorma.local.paths import read_json

    return read_json(_stack_paths().state) or {}


def transport(explicit: Transport | None = None) -> Transport:
    """``explicit``, else the running local stack's transport, else ``SOORMA_EVENT_TRANSPORT``, else ``nats``;
    ``sns`` means ``sqs``. Exits with a message for anything else."""
    if explicit is not None:
        return explicit
    from soorma.local.settings import EVENT_TRANSPORT

    value = str(_stack_state().get("transport") or EVENT_TRANSPORT.get())
    value = value.strip().lower()
    if value in ("sqs", "sns"):
        return Transport.sqs
    if value != "nats":
        fail(f"unknown transport {value!r}: use --transport nats or --transport sqs", code=EXIT_USAGE)
    return Transport.nats


def sqs_client(explicit: str | None = None) -> Any:
    """A boto3 SQS client on ``explicit``, ``AWS_ENDPOINT_URL`` or the local stack's moto; exits when there is none."""
    from soorma.local import sqs as resources

    endpoint = explicit or os.environ.get("AWS_ENDPOINT_URL") or _stack_state().get("aws_endpoint_url")
    if not endpoint:
        fail("no SQS endpoint: pass --aws-endpoint-url, set AWS_ENDPOINT_URL, or start the local stack with "
             "`soorma local up --transport sqs`", code=EXIT_USAGE)
    return resources.clients(endpoint)[1]


def _sqs(work: Callable[[], T]) -> T:
    """Run ``work()`` (SQS calls), turning an unreachable endpoint into a clear error."""
    # botocore ships no type hints; the ignore stays harmless where a stubs package or a mypy override provides them
    from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped, unused-ignore]

    try:
        return work()
    except (BotoCoreError, ClientError) as exc:
        fail(f"SQS request failed: {type(exc).__name__}: {exc}")


def nats_url(explicit: str | None = None) -> str:
    """``explicit``, ``SOORMA_NATS_URL``, or the local stack's NATS (with its credentials, from ``secrets.json``);
    exits with a message when there is none."""
    if explicit:
        return explicit
    if NATS_URL.get():
        return str(NATS_URL.get())
    from soorma.local.paths import read_json

    paths = _stack_paths()
    url = (read_json(paths.secrets) or {}).get("nats_url") or (read_json(paths.state) or {}).get("nats_url")
    if url:
        return str(url)
    fail(f"no NATS to connect to: set {NATS_URL_ENV}, pass --nats-url, or start the local stack "
         "(`soorma local up`)", code=EXIT_USAGE)


def _grant_key(local_stack: bool) -> bytes | None:
    """The delivery-grant key (:mod:`soorma.grants`) of the platform whose bus the replay goes to, so replayed events
    get fresh grants that platform's functions accept: the local stack's pepper (``.soorma/secrets.json``, readable by
    its owner only) when ``local_stack``, else ``SOORMA_API_KEY_PEPPER``. Never the other one: a pepper of another
    platform in the environment would stamp grants the local agents refuse. ``None`` (events replayed as they were:
    one whose grant expired cannot act for its user) when the key is not available."""
    from soorma.grants import KEY_SOURCE_ENV, derive_key
    from soorma.settings import API_KEY_PEPPER

    if local_stack:
        from soorma.local.paths import read_json

        try:
            pepper = (read_json(_stack_paths().secrets) or {}).get("api_key_pepper")
        except OSError:
            pepper = None
        source = "the local stack's secrets.json"
    else:
        pepper = API_KEY_PEPPER.get()
        source = KEY_SOURCE_ENV
    if not pepper:
        typer.secho(f"note: {source} is not available, so replayed events keep their delivery grants; an expired "
                    "grant stops the agent from acting for the event's user", err=True)
        return None
    return derive_key(pepper)


#: Seconds ``soorma dlq`` waits for NATS in all (each attempt is also bounded by ``connect_timeout=3``).
CONNECT_DEADLINE_S = 10.0


async def _quiet(_exc: Exception) -> None:
    """nats-py's error callback: the failure is reported once, by :func:`_with_js`, not logged per attempt."""


async def _with_js(url: str, work: Callable[[JetStreamContext], Awaitable[T]]) -> T:
    """Connect to NATS at ``url``, run ``work(jetstream)``, close. A server that is unreachable or refuses the
    credentials exits 1 with one message, within :data:`CONNECT_DEADLINE_S` seconds.

    In nats-py (2.x, ``Client._select_next_server``) ``max_reconnect_attempts=0`` does not mean "no retries": only a
    positive value is ever compared, so 0 retries the initial connection forever, whatever ``allow_reconnect`` says
    (that flag is checked only after a TCP connection was made). ``max_reconnect_attempts=1`` makes it give up after
    the second attempt (``NoServersError``), and the overall deadline bounds it whatever the library does.
    """
    import nats

    from soorma.urls import redact_url

    try:
        nc = await asyncio.wait_for(
            nats.connect(url, connect_timeout=3, allow_reconnect=False, max_reconnect_attempts=1,
                         reconnect_time_wait=0.2, error_cb=_quiet),
            CONNECT_DEADLINE_S)
    except Exception as exc:  # noqa: BLE001 - any connection failure is reported the same way
        reason = "no answer" if isinstance(exc, asyncio.TimeoutError) else f"{type(exc).__name__}: {exc}"
        fail(f"cannot connect to NATS at {redact_url(url)}: {reason} (is the local stack running? "
             "`soorma local status`)")
    try:
        return await work(nc.jetstream())
    finally:
        await nc.close()


def _run_on_nats(url: str | None, work: Callable[[JetStreamContext], Awaitable[T]]) -> T:
    """``work(jetstream)`` on the NATS of ``url`` (as :func:`nats_url` finds it); a ``ValueError`` of the dead-letter
    functions (an option they refuse) exits as a usage error."""
    try:
        return asyncio.run(_with_js(nats_url(url), work))
    except ValueError as exc:
        fail(str(exc), code=EXIT_USAGE)


def _print_table(entries: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"dead letters ({len(entries)})")
    for column in ("seq", "event id", "event type", "tenant", "agent", "deliveries", "dead-lettered at", "error"):
        table.add_column(column, overflow="fold")  # wrap, never cut: ids are copied from here into --id
    for e in entries:
        table.add_row(str(e["seq"]), str(e["event_id"]), str(e["event_type"]), str(e["platform_tenant_id"]),
                      str(e["agent"]), str(e["deliveries"]), str(e["dead_lettered_at"]), str(e["error"]))
    console = Console()
    if not console.is_terminal:
        console = Console(width=max(console.width, 200))
    console.print(table)


@app.command("list")
def list_(
    agent: AgentOption = None,
    tenant: TenantOption = None,
    event_id: Annotated[str | None, typer.Option("--id", help="Only the entry of this event id")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="At most this many entries (oldest first)")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line")] = False,
    url: NatsUrlOption = None,
    via: TransportOption = None,
    aws_url: AwsEndpointOption = None,
) -> None:
    """List dead letters, oldest first: event, agent, delivery count and the last error."""
    entries: list[dict[str, Any]]
    if transport(via) is Transport.sqs:
        from soorma.local.sqs_transport import list_sqs_dead_letters

        client = sqs_client(aws_url)
        entries = [e.summary() for e in _sqs(lambda: list_sqs_dead_letters(
            client, platform_tenant_id=tenant, agent=agent, event_id=event_id, limit=limit))]
    else:
        from soorma.functions.bridge.dlq import list_dead_letters

        async def work(js: JetStreamContext) -> list[dict[str, Any]]:
            found = await list_dead_letters(js, platform_tenant_id=tenant, agent=agent, event_id=event_id,
                                            limit=limit)
            return [e.summary() for e in found]

        entries = _run_on_nats(url, work)
    if as_json:
        for entry in entries:
            typer.echo(json.dumps(entry, sort_keys=True))
        return
    if not entries:
        typer.echo("no dead letters")
        return
    _print_table(entries)


@app.command()
def replay(
    agent: AgentOption = None,
    tenant: TenantOption = None,
    event_id: Annotated[str | None, typer.Option("--id", help="Replay the entry of this event id")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Replay every entry that matches --agent/--tenant")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per replayed entry")] = False,
    url: NatsUrlOption = None,
    via: TransportOption = None,
    aws_url: AwsEndpointOption = None,
) -> None:
    """Deliver dead letters again to the agent that failed them, then remove them from the dead-letter stream.

    Needs --id EVENT_ID or --all (with --agent/--tenant to narrow it). Fix the function first."""
    if not event_id and not all_:
        fail("say which: --id EVENT_ID, or --all (narrowed by --agent/--tenant)", code=EXIT_USAGE)
    from soorma.functions.bridge.dlq import list_dead_letters, replay as replay_entry

    via_sqs = transport(via) is Transport.sqs
    # the bus is the local stack's unless an endpoint was named (flag or environment, as nats_url/sqs_client read them)
    named = (aws_url or os.environ.get("AWS_ENDPOINT_URL")) if via_sqs else (url or NATS_URL.get())
    key = _grant_key(local_stack=not named)

    Outcome = tuple[list[dict[str, Any]], list[dict[str, Any]]]

    async def work(js: JetStreamContext) -> Outcome:
        entries = await list_dead_letters(js, platform_tenant_id=tenant, agent=agent, event_id=event_id, limit=None)
        done: list[dict[str, Any]] = []
        failed: list[dict[str, Any]] = []
        for entry in entries:
            try:
                await replay_entry(js, entry, grant_key=key)
            except Exception as exc:  # noqa: BLE001 - report and go on with the others
                failed.append({**entry.summary(), "replay_error": f"{type(exc).__name__}: {exc}"})
            else:
                done.append(entry.summary())
        return done, failed

    if via_sqs:
        from soorma.local.sqs_transport import replay_sqs_dead_letters

        client = sqs_client(aws_url)
        outcome: Outcome = _sqs(lambda: replay_sqs_dead_letters(client, platform_tenant_id=tenant, agent=agent,
                                                             event_id=event_id, grant_key=key))
    else:
        outcome = _run_on_nats(url, work)
    done, failed = outcome
    if as_json:
        for entry in done:
            typer.echo(json.dumps({**entry, "replayed": True}, sort_keys=True))
        for entry in failed:
            typer.echo(json.dumps({**entry, "replayed": False}, sort_keys=True))
    else:
        for entry in done:
            typer.echo(f"replayed {entry['event_id']} ({entry['event_type']}) to {entry['agent']} "
                       f"[tenant {entry['platform_tenant_id']}, dead letter {entry['seq']}]")
        for entry in failed:
            error(f"could not replay dead letter {entry['seq']}: {entry['replay_error']}")
    if event_id and not done and not failed:
        fail(f"no dead letter with event id {event_id}")
    if not as_json and not done and not failed:
        typer.echo("nothing to replay")
    if failed:
        raise typer.Exit(EXIT_RUNTIME)
