"""``soorma local up|down|status|deploy|invoke|logs``: the whole platform on this machine, no cloud account, no
Docker (``up --docker`` is the Compose alternative)."""

from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import httpx
import typer

from soorma.cli._output import (
    EXIT_USAGE,
    fail,
    print_json,
    progress,
    stdout_to_stderr,
    warn,
)
from soorma.cli.choices import Transport

if TYPE_CHECKING:
    from soorma.local.paths import StackPaths

app = typer.Typer(help="Run the platform locally: embedded PostgreSQL and NATS, functions, API.", no_args_is_help=True)


def _paths() -> StackPaths:
    from soorma.local.paths import StackPaths, default_home

    return StackPaths(default_home())


def _read_state() -> dict[str, Any]:
    from soorma.local.paths import read_json

    return read_json(_paths().state) or {}


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _secrets() -> dict[str, str]:
    from soorma.local.paths import read_json

    return read_json(_paths().secrets) or {}


def _credentials() -> dict[str, Any]:
    from soorma.local.paths import read_json

    return read_json(_paths().credentials) or {}


def _ready(state: dict[str, Any], *, already_running: bool = False) -> dict[str, Any]:
    """What ``soorma local up`` reports about a ready stack (``--json`` prints it as is). Never a password: the NATS
    URL with credentials and the Lambda API's secret key stay in ``secrets_file`` (owner-only)."""
    ready: dict[str, Any] = {
        "status": "ready",
        "already_running": already_running,
        "ready_seconds": state.get("ready_seconds"),
        "api_url": state.get("api_url"),
        "api_key": _credentials().get("api_key"),
        "transport": state.get("transport", Transport.nats.value),
        "home": state.get("home"),
        "secrets_file": str(_paths().secrets),
        "credentials_file": str(_paths().credentials),
        "lambda_api_url": f"{state.get('api_url')}/2015-03-31/functions/",
        "lambda_access_key_id": state.get("lambda_access_key_id"),
    }
    if ready["transport"] == Transport.sqs.value:
        ready |= {"aws_endpoint_url": state.get("aws_endpoint_url"), "sns_topic_arn": state.get("sns_topic_arn")}
    else:
        ready["nats_url"] = state.get("nats_url")
    return ready


def _print_ready(ready: dict[str, Any]) -> None:
    seconds = "?" if ready["ready_seconds"] is None else ready["ready_seconds"]
    typer.secho(f"soorma local stack ready in {seconds} s", fg="green", bold=True)
    typer.echo(f"  API endpoint : {ready['api_url']}")
    typer.echo(f"  API key      : {ready['api_key']}")
    secrets_file = ready["secrets_file"]
    if ready["transport"] == Transport.sqs.value:
        typer.echo(f"  transport    : sqs (SNS/SQS at {ready['aws_endpoint_url']}, topic {ready['sns_topic_arn']})")
    else:
        typer.echo(f"  NATS         : {ready['nats_url']} (user and password: nats_url in {secrets_file})")
    typer.echo(f"  state        : {ready['home']}")
    typer.echo(f"  Lambda API   : {ready['lambda_api_url']} (AWS SigV4, region us-east-1, "
               f"access key {ready['lambda_access_key_id']}; secret: aws_secret_access_key in {secrets_file})")
    typer.echo(f"  identity     : {ready['api_url']}/v1/identity (the identity client reads its superuser key "
               f"admin_api_key and tenant admin key tenant_admin_api_key from {ready['credentials_file']})")
    typer.echo("  use it from a shell:")
    typer.echo(f"    export SOORMA_API_URL={ready['api_url']} SOORMA_API_KEY={ready['api_key']}")


def _report_ready(ready: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(ready)
    else:
        _print_ready(ready)


@app.command()
def up(
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the stack to be ready")] = 180.0,
    foreground: Annotated[bool, typer.Option("--foreground", help="Run in this terminal (Ctrl-C stops it)")] = False,
    docker: Annotated[bool, typer.Option("--docker", help="Use Docker Compose (local/compose.yaml) instead")] = False,
    transport: Annotated[Transport | None, typer.Option(
        "--transport",
        help="How events reach agents: nats (JetStream bridge) or sqs (SNS/SQS on moto + local event source "
             "mapping). Default: $SOORMA_EVENT_TRANSPORT, else nats")] = None,
    as_json: Annotated[bool, typer.Option(
        "--json", help="Print the endpoints and key as one JSON object on stdout (progress on stderr)")] = False,
) -> None:
    """Start the local stack in the background and print its endpoint and API key."""
    if as_json and foreground:
        fail("--json and --foreground do not go together: a foreground stack runs until Ctrl-C", code=EXIT_USAGE)
    if docker:
        if as_json:
            with stdout_to_stderr():
                endpoints = _up_docker()
            print_json(endpoints)
        else:
            _print_docker(_up_docker())
        return
    from soorma.local.settings import EVENT_TRANSPORT
    from soorma.local.stack import transport_from_env

    try:
        chosen = transport_from_env(transport.value if transport is not None
                                    else EVENT_TRANSPORT.raw())
    except ValueError as exc:
        fail(f"{exc} (--transport nats|sqs)", code=EXIT_USAGE)
    # progress goes where the result does not: stdout for people, stderr when stdout is JSON
    say = progress if as_json else typer.echo
    paths = _paths()
    paths.ensure()
    state = _read_state()
    if _alive(state.get("pid")) and state.get("status") in ("ready", "starting"):
        running = state.get("transport", "nats")
        if running != chosen:
            fail(f"the local stack is already running with transport {running}; stop it first "
                 f"(`soorma local down`) to start it with {chosen}")
        if state.get("status") == "ready":
            say("already running")
            _report_ready(_ready(state, already_running=True), as_json)
            return
    os.environ[EVENT_TRANSPORT.name] = chosen  # the daemon (and --foreground) read it from the environment
    if foreground:
        from soorma.local.stack import main as stack_main

        raise typer.Exit(stack_main([str(paths.home)]))
    paths.state.unlink(missing_ok=True)
    log_path = paths.logs / "stack.log"
    started = time.monotonic()
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "soorma.local.stack", str(paths.home)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    say(f"starting the local stack (pid {process.pid}, log {log_path})")
    last_phase = None
    while time.monotonic() - started < timeout:
        state = _read_state()
        phase = state.get("phase")
        if state.get("pid") == process.pid and phase != last_phase and phase:
            say(f"  [{time.monotonic() - started:5.1f}s] {phase}")
            last_phase = phase
        if state.get("pid") == process.pid and state.get("status") == "ready":
            _report_ready(_ready(state), as_json)
            return
        if state.get("status") == "failed" or process.poll() is not None:
            typer.echo(_tail(log_path), err=True)
            fail(f"the local stack failed to start: {state.get('error', 'see the log')}")
        time.sleep(0.1)
    fail(f"the local stack was not ready after {timeout:.0f} s; see {log_path}")


def _up_docker() -> dict[str, str]:
    """``docker compose up`` of local/compose.yaml; returns the servers' endpoints (``compose.endpoints()``)."""
    from soorma.local import compose

    try:
        code = compose.up()
    except compose.DockerUnavailable as exc:
        fail(str(exc))
    if code != 0:
        fail(f"`docker compose up` failed (exit {code})", code=code)
    endpoints: dict[str, str] = compose.endpoints()
    return endpoints


def _print_docker(ends: dict[str, str]) -> None:
    typer.secho("the Compose stack is up (docker compose -p soorma ps)", fg="green", bold=True)
    typer.echo(f"  NATS        : {ends['nats_url']}")
    typer.echo(f"  PostgreSQL  : {ends['database_url']}")
    for key, url in ends.items():
        if key.startswith("function:"):
            typer.echo(f"  {key[9:]:<12}: {url}")
    if "aws_endpoint_url" in ends:
        typer.echo(f"  LocalStack  : {ends['aws_endpoint_url']} (AWS_ENDPOINT_URL)")
    typer.echo("  the API Gateway and the bridge over these servers:")
    typer.echo(f"    SOORMA_DATABASE_URL={ends['database_url']} SOORMA_NATS_URL={ends['nats_url']} soorma local up")


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return ""


@app.command()
def down(
    timeout: Annotated[float, typer.Option(help="Seconds to wait for a clean stop before killing")] = 60.0,
    docker: Annotated[bool, typer.Option(
        "--docker", help="Stop the Compose stack (local/compose.yaml) instead")] = False,
) -> None:
    """Stop the local stack (in-flight events are drained first); data stays in .soorma/."""
    if docker:
        from soorma.local import compose

        try:
            code = compose.down()
        except compose.DockerUnavailable as exc:
            fail(str(exc))
        raise typer.Exit(code)
    state = _read_state()
    pid = state.get("pid")
    if not isinstance(pid, int) or not _alive(pid):
        typer.echo("the local stack is not running")
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _alive(pid):
        os.killpg(pid, signal.SIGKILL)
        warn("the local stack did not stop in time and was killed")
    else:
        typer.echo("the local stack stopped")


@app.command()
def status(as_json: Annotated[bool, typer.Option("--json", help="Print the raw status as JSON")] = False) -> None:
    """Show whether the stack runs, its functions and the bridge's delivery figures."""
    state = _read_state()
    if not _alive(state.get("pid")):
        fail("the local stack is not running (start it with `soorma local up`)")
    try:
        response = httpx.get(
            f"{state['api_url']}/_local/status",
            headers={"x-soorma-control-token": _secrets().get("control_token", "")},
            timeout=10,
        )
        details = response.json()
    except (httpx.TransportError, ValueError) as exc:
        fail(f"status: {state.get('status')} (API not answering: {exc})")
    if as_json:
        typer.echo(json.dumps(details, indent=2, default=str))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:  # piped: wide enough that the figures are not cut
        console = Console(width=max(console.width, 240))
    events = (f"[bold]SQS[/]: {state.get('aws_endpoint_url')}" if state.get("transport") == "sqs"
              else f"[bold]NATS[/]: {state.get('nats_url')}")
    console.print(f"[bold]status[/]: {state.get('status')}  [bold]API[/]: {state.get('api_url')}  {events}")
    functions = details.get("functions") or {}
    if functions:
        table = Table("function", *sorted({k for v in functions.values() for k in v}), title="functions")
        for name, stats in sorted(functions.items()):
            table.add_row(name, *(str(stats.get(k, "")) for k in sorted({k for v in functions.values() for k in v})))
        console.print(table)
    bridge = details.get("bridge") or {}
    consumers = bridge.get("consumers", bridge) if isinstance(bridge, dict) else {}
    if consumers:
        keys = sorted({k for v in consumers.values() if isinstance(v, dict) for k in v})
        table = Table("consumer", *keys, title="bridge")
        for name, stats in sorted(consumers.items()):
            if isinstance(stats, dict):
                table.add_row(name, *(str(stats.get(k, "")) for k in keys))
        console.print(table)
    esm = details.get("esm") or {}
    if esm:
        keys = ["function_name", "received", "succeeded", "failed", "throttled", "abandoned", "invocations",
                "failed_invocations", "in_flight", "delivery_latency_p50_ms", "delivery_latency_p99_ms", "last_error"]
        table = Table("mapping", *keys, title="event source mappings (SQS)")
        for column in table.columns:
            column.overflow = "fold"
        for name, stats in sorted(esm.items()):
            table.add_row(name, *(str(stats.get(k, "")) for k in keys))
        console.print(table)


#: Where the local stack serves its console (:mod:`soorma.local.console`), below its API address.
CONSOLE_PATH = "/console/"


@app.command()
def console(
    no_browser: Annotated[bool, typer.Option("--no-browser", help="Only print the console's address")] = False,
) -> None:
    """Open the local console (goals, timelines, agents, dead letters, memory, input requests) in a browser.

    The address carries no key (a browser's command line is visible to every user of the machine in the process
    list): sign in on the page with the stack's API key, which ``soorma local up`` prints (``api_key`` in
    ``credentials.json``)."""
    state = _require_stack()
    url = f"{state['api_url']}{CONSOLE_PATH}"
    typer.echo(f"console: {url}")
    typer.echo(f"  sign in with the stack's API key (api_key in {_paths().credentials})")
    if no_browser:
        return
    import webbrowser

    if not webbrowser.open(url):
        warn("no browser could be started: open the address above")


@app.command()
def deploy(
    path: Annotated[Path, typer.Argument(exists=True, help="A Python file or a folder of agents")],
    setup: Annotated[bool, typer.Option("--setup/--no-setup", help="Run the folder's setup step (once)")] = True,
    force_setup: Annotated[bool, typer.Option(
        "--force-setup", help="Run the setup step even if it ran before")] = False,
    watch: Annotated[bool, typer.Option(
        "--watch", "-w", help="Keep watching the files and redeploy on change")] = False,
    interval: Annotated[float, typer.Option(
        "--interval", min=0.1, help="Seconds between two looks at the files (--watch)")] = 1.0,
    as_json: Annotated[bool, typer.Option(
        "--json",
        help="Print {path, deployed: [{agent, function_name, consumer}]} as JSON on stdout "
             "(progress and the setup step's output on stderr)")] = False,
) -> None:
    """Deploy the module-level agents of a file or folder as functions, register them, run the setup step.

    With --watch, a change to a file of the app deploys it again: the functions get new execution environments,
    so the next invocation runs the new code. Ctrl-C stops watching (the functions stay deployed)."""
    from soorma.local.deploy import Deployer, DeployError

    if as_json and watch:
        fail("--json and --watch do not go together: --json prints the result of one deploy", code=EXIT_USAGE)
    state = _require_stack()
    creds = _credentials()
    paths = _paths()
    deployer = Deployer(
        api_url=state["api_url"],
        api_key=creds["api_key"],
        control_token=_secrets()["control_token"],
        platform_tenant_id=creds.get("platform_tenant_id", "local"),
        setup_dir=paths.setup,
        transport=state.get("transport", "nats"),
    )
    if force_setup:
        from soorma.local.deploy import load_app

        try:
            (paths.setup / f"{load_app(path).name}.sha256").unlink(missing_ok=True)
        except DeployError:
            pass
    def deploy_once() -> list[dict[str, Any]]:
        try:
            deployed: list[dict[str, Any]] = deployer.deploy(path, run_setup=setup)
            return deployed
        except httpx.HTTPError as exc:
            raise DeployError(f"the local stack did not answer at {state['api_url']}: {exc}") from None

    if as_json:
        try:
            with stdout_to_stderr():
                deployed = deploy_once()
        except DeployError as exc:
            fail(f"deploy failed: {exc}")
        print_json({"path": str(path.resolve()), "deployed": deployed})
        return
    try:
        deployed = deploy_once()
    except DeployError as exc:
        if not watch:
            fail(f"deploy failed: {exc}")
        warn(f"deploy failed: {exc}")
    else:
        typer.secho(f"{len(deployed)} agent(s) deployed", fg="green")
    if watch:
        from soorma.local.deploy import watch as watch_files

        def redeploy() -> None:
            done = deploy_once()
            typer.secho(f"{len(done)} agent(s) redeployed at {time.strftime('%H:%M:%S')}", fg="green")

        typer.echo(f"watching {path.resolve()} for changes (Ctrl-C stops)")
        try:
            watch_files(path, redeploy, interval_s=interval, echo=typer.echo)
        except KeyboardInterrupt:
            typer.echo("stopped watching")


def _require_stack() -> dict[str, Any]:
    """The state of the running, ready stack; exits with a message otherwise."""
    state = _read_state()
    if not (_alive(state.get("pid")) and state.get("status") == "ready"):
        fail("the local stack is not running: start it with `soorma local up`")
    return state


def _read_payload(payload: str) -> bytes:
    """``--payload``: JSON text, ``@file.json`` or ``@-`` (standard input); checked to be JSON."""
    if payload.startswith("@"):
        source = payload[1:]
        try:
            data = sys.stdin.buffer.read() if source == "-" else Path(source).expanduser().read_bytes()
        except OSError as exc:
            fail(f"cannot read the payload file {source}: {exc.strerror or exc}", code=EXIT_USAGE)
    else:
        data = payload.encode()
    if not data.strip():
        return b"{}"
    try:
        json.loads(data)
    except ValueError as exc:
        fail(f"the payload is not valid JSON: {exc}", code=EXIT_USAGE)
    return data


def _show_payload(body: bytes) -> str:
    try:
        return json.dumps(json.loads(body), indent=2, ensure_ascii=False)
    except ValueError:
        return body.decode("utf-8", "replace")


@app.command()
def invoke(
    function: Annotated[str, typer.Argument(help="Function name or ARN (see `soorma local status`)")],
    payload: Annotated[str, typer.Option(
        "--payload", "-p", help="The event: JSON, @file.json, or @- for stdin")] = "{}",
    event: Annotated[bool, typer.Option(
        "--event", help="Invoke asynchronously (Lambda's Event type): do not wait")] = False,
    log: Annotated[bool, typer.Option(
        "--log", help="Also print the invocation's log tail (last 4 KB) to stderr")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the response")] = 960.0,
) -> None:
    """Invoke a function and print its response payload (a function error also exits 1).

    The call goes through the stack's Lambda Invoke API, the same way in as boto3's `lambda.invoke`."""
    import base64
    from urllib.parse import quote

    from soorma.local.sigv4 import LocalAwsCredentials, sign

    body = _read_payload(payload)
    state = _require_stack()
    headers = {"X-Amz-Invocation-Type": "Event" if event else "RequestResponse", "Content-Type": "application/json"}
    if log and not event:
        headers["X-Amz-Log-Type"] = "Tail"
    url = f"{state['api_url']}/2015-03-31/functions/{quote(function, safe=':$')}/invocations"
    secrets = _secrets()
    if not secrets.get("aws_access_key_id") or not secrets.get("aws_secret_access_key"):
        fail(f"no Lambda API credentials in {_paths().secrets}: restart the stack (`soorma local down`, "
                    "`soorma local up`) to create them")
    # the Invoke API takes only requests signed with the stack's access key (AWS Signature Version 4)
    headers = sign("POST", url, headers, body,
                   LocalAwsCredentials(secrets["aws_access_key_id"], secrets["aws_secret_access_key"]))
    try:
        response = httpx.post(url, content=body, headers=headers, timeout=timeout)
    except httpx.TransportError as exc:
        fail(f"the local stack did not answer at {state['api_url']}: {exc}")
    if response.status_code >= 300:
        try:
            detail = response.json()
            message = f"{detail.get('__type') or detail.get('Type', 'Error')}: {detail.get('message', detail)}"
        except ValueError:
            message = response.text
        fail(f"invoke failed (HTTP {response.status_code}): {message}")
    request_id = response.headers.get("x-amzn-requestid", "")
    if event:
        typer.echo(f"queued (asynchronous invocation {request_id}); its output goes to `soorma local logs {function}`",
                   err=True)
        return
    if log and response.headers.get("x-amz-log-result"):
        typer.echo(base64.b64decode(response.headers["x-amz-log-result"]).decode("utf-8", "replace"), err=True)
    typer.echo(_show_payload(response.content))
    function_error = response.headers.get("x-amz-function-error")
    if function_error:
        try:
            error = json.loads(response.content)
            summary = f"{error.get('errorType', 'Error')}: {error.get('errorMessage', '')}"
        except (ValueError, AttributeError):
            summary = response.text[:500]
        fail(f"function error ({function_error}, request {request_id}): {summary}")


def _log_path(function: str) -> Path:
    """The log file of ``function``: its exact name, else the one function whose name starts with it.

    Exits with a message naming the problem for a name that is not a plain function name, no match, or an ambiguous
    prefix (``research`` when both ``research-advisor-planner`` and ``research-advisor-researcher`` exist).
    """
    logs_dir: Path = _paths().logs
    if not function or "/" in function or function.startswith("."):
        fail(f"{function!r} is not a function name", code=EXIT_USAGE)
    exact = logs_dir / f"{function}.log"
    if exact.is_file():
        return exact
    candidates = sorted(logs_dir.glob(f"{glob.escape(function)}*.log"))
    if not candidates:
        fail(f"no log for function {function!r} in {logs_dir}")
    if len(candidates) > 1:
        names = ", ".join(p.stem for p in candidates)
        fail(f"{function!r} matches several functions ({names}); give the whole name", code=EXIT_USAGE)
    return candidates[0]


@app.command()
def logs(
    function: Annotated[str, typer.Argument(help="Function name (see `soorma local status`)")],
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines")] = False,
    lines: Annotated[int, typer.Option("--lines", "-n", help="Lines to show first")] = 50,
) -> None:
    """Print a function's log (its execution environments' output and REPORT lines)."""
    path = _log_path(function)
    typer.echo(_tail(path, lines))
    if follow:
        with open(path, errors="replace") as handle:
            handle.seek(0, 2)
            try:
                while True:
                    line = handle.readline()
                    if line:
                        typer.echo(line.rstrip("\n"))
                    else:
                        time.sleep(0.2)
            except KeyboardInterrupt:
                pass


