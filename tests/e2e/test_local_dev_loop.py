"""The developer loop on a running local stack (one `soorma local up` for the module, temp SOORMA_HOME, free
ports): boto3's `lambda.invoke` (RequestResponse and Event) at the stack's endpoint, `soorma local invoke`, and
`soorma local deploy --watch` picking up a changed handler."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from soorma.testing import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[2]
SOORMA = str(Path(sys.executable).with_name("soorma"))
FUNCTION = "devloop-app-devloop"  # <app folder>-<agent name>

AGENT = """
    import os

    from soorma.agents.base import Agent

    VERSION = {version}
    agent = Agent("devloop", description="dev loop test agent")


    @agent.on_event("devloop.ping", topic="business-facts")
    async def ping(event, context):
        if event.data.get("fail"):
            raise RuntimeError("asked to fail: " + str(event.data.get("marker")))
        print(f"devloop handler v{{VERSION}} pid={{os.getpid()}} marker={{event.data.get('marker')}} "
              f"api={{os.environ.get('SOORMA_API_URL')}}", flush=True)
"""


def ping(marker: str, **extra) -> bytes:
    """A bare event envelope: the agent's Lambda entry dispatches it directly (and raises if the handler fails)."""
    return json.dumps({"type": "devloop.ping", "topic": "business-facts", "source": "test",
                       "data": {"marker": marker, **extra}}).encode()


def write_agent(folder: Path, version: int) -> None:
    path = folder / "agents.py"
    path.write_text(textwrap.dedent(AGENT.format(version=version)))
    st = path.stat()  # a visibly newer mtime even on coarse-timestamp file systems
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


@pytest.fixture(scope="module")
def stack():
    base = Path(tempfile.mkdtemp(prefix="soorma-devloop-"))
    home = base / "s"
    app_dir = base / "devloop-app"
    app_dir.mkdir()
    write_agent(app_dir, 1)
    env = {
        **os.environ,
        "SOORMA_HOME": str(home),
        "SOORMA_LOCAL_PORT": str(free_port()),
        "SOORMA_NATS_PORT": str(free_port()),
    }
    for key in ("SOORMA_API_URL", "SOORMA_API_KEY", "SOORMA_DATABASE_URL", "SOORMA_NATS_URL"):
        env.pop(key, None)

    def run(*args: str, timeout: float = 300, input: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([SOORMA, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                              input=input)

    up = run("local", "up")
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        deploy = run("local", "deploy", str(app_dir))
        assert deploy.returncode == 0, deploy.stdout + deploy.stderr
        credentials = json.loads((home / "credentials.json").read_text())
        yield {"run": run, "env": env, "home": home, "app_dir": app_dir, "url": credentials["api_url"],
               "credentials": credentials, "secrets": json.loads((home / "secrets.json").read_text())}
    finally:
        down = run("local", "down", timeout=120)
        print(down.stdout, down.stderr)
        if down.returncode == 0:
            shutil.rmtree(base, ignore_errors=True)


def lambda_client(url: str, secrets: dict):
    """boto3's Lambda client on the stack, signing with the stack's access key (``secrets.json``)."""
    return boto3.client("lambda", endpoint_url=url, region_name="us-east-1",
                        aws_access_key_id=secrets["aws_access_key_id"],
                        aws_secret_access_key=secrets["aws_secret_access_key"],
                        config=Config(retries={"max_attempts": 1}, read_timeout=120, connect_timeout=10))


def invoke_tail(client, payload: bytes) -> tuple[dict, str, dict]:
    out = client.invoke(FunctionName=FUNCTION, Payload=payload, LogType="Tail")
    return out, base64.b64decode(out.get("LogResult", "")).decode(), json.loads(out["Payload"].read())


def test_boto3_invoke_request_response_and_event(stack):
    client = lambda_client(stack["url"], stack["secrets"])

    out, log, body = invoke_tail(client, ping("sync-1"))
    assert out["StatusCode"] == 200 and "FunctionError" not in out, body
    assert body == {"batchItemFailures": []}
    assert "devloop handler v1" in log and "marker=sync-1" in log and "REPORT RequestId: " in log

    out = client.invoke(FunctionName=FUNCTION, Payload=ping("boom", fail=True))
    assert out["StatusCode"] == 200 and out["FunctionError"] == "Unhandled"
    error = json.loads(out["Payload"].read())
    assert error["errorType"] == "RuntimeError" and "asked to fail: boom" in error["errorMessage"]

    # asynchronous: 202 at once; the invocation runs in the background and writes to the function's log
    out = client.invoke(FunctionName=FUNCTION, InvocationType="Event", Payload=ping("async-1"))
    assert out["StatusCode"] == 202
    log_file = stack["home"] / "logs" / f"{FUNCTION}.log"
    deadline = time.monotonic() + 60
    while "marker=async-1" not in log_file.read_text():
        assert time.monotonic() < deadline, "the Event invocation never ran"
        time.sleep(0.1)

    # by ARN; and the platform's own functions are there through the same API
    arn = f"arn:aws:lambda:us-east-1:000000000000:function:{FUNCTION}"
    out = client.invoke(FunctionName=arn, Payload=ping("arn-1"))
    assert json.loads(out["Payload"].read()) == {"batchItemFailures": []}
    names = {f["FunctionName"] for f in client.list_functions()["Functions"]}
    assert {FUNCTION, "soorma-gateway", "soorma-authorizer", "soorma-tracker"} <= names
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.invoke(FunctionName="no-such-function", Payload=b"{}")


def test_cli_invoke(stack, tmp_path):
    run = stack["run"]
    done = run("local", "invoke", FUNCTION, "--payload", ping("cli-1").decode(), "--log")
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout) == {"batchItemFailures": []}
    assert "marker=cli-1" in done.stderr  # --log: the log tail goes to stderr

    payload_file = tmp_path / "event.json"
    payload_file.write_bytes(ping("cli-file"))
    done = run("local", "invoke", FUNCTION, "--payload", f"@{payload_file}")
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout) == {"batchItemFailures": []}

    done = run("local", "invoke", FUNCTION, "--payload", "@-", input=ping("cli-stdin").decode())
    assert done.returncode == 0, done.stdout + done.stderr

    failed = run("local", "invoke", FUNCTION, "--payload", ping("cli-boom", fail=True).decode())
    assert failed.returncode == 1
    assert json.loads(failed.stdout)["errorType"] == "RuntimeError"  # the error object is the response payload
    assert "function error (Unhandled" in failed.stderr and "asked to fail: cli-boom" in failed.stderr

    queued = run("local", "invoke", FUNCTION, "--event", "--payload", ping("cli-async").decode())
    assert queued.returncode == 0 and "queued" in queued.stderr, queued.stderr

    missing = run("local", "invoke", "no-such-function")
    assert missing.returncode == 1 and "ResourceNotFoundException" in missing.stderr
    bad = run("local", "invoke", FUNCTION, "--payload", "{nope")
    assert bad.returncode == 2 and "not valid JSON" in bad.stderr


def test_deploy_watch_picks_up_a_changed_handler(stack):
    """The watch loop of `soorma local deploy --watch`, run in-process and bounded by a stop event."""
    from soorma.local.deploy import Deployer, watch

    app_dir = stack["app_dir"]
    client = lambda_client(stack["url"], stack["secrets"])
    _out, log, _body = invoke_tail(client, ping("before"))
    match = re.search(r"devloop handler v1 pid=(\d+) marker=before", log)
    assert match, log
    old_pid = int(match[1])

    lines: list[str] = []
    deployer = Deployer(api_url=stack["url"], api_key=stack["credentials"]["api_key"],
                        control_token=stack["secrets"]["control_token"],
                        platform_tenant_id=stack["credentials"].get("platform_tenant_id", "local"),
                        setup_dir=stack["home"] / "setup", echo=lines.append)
    stop = threading.Event()
    redeploys: list[int] = []
    thread = threading.Thread(target=lambda: redeploys.append(
        watch(app_dir, lambda: deployer.deploy(app_dir), interval_s=0.2, stop=stop, echo=lines.append)))
    thread.start()
    try:
        time.sleep(0.5)
        write_agent(app_dir, 2)
        deadline = time.monotonic() + 60
        while True:
            _out, log, body = invoke_tail(client, ping("after"))
            if "devloop handler v2" in log:
                break
            assert "devloop handler v1" in log, log
            assert time.monotonic() < deadline, f"the new handler was not deployed: {lines}"
            time.sleep(0.2)
        assert body == {"batchItemFailures": []}
        match = re.search(r"devloop handler v2 pid=(\d+) marker=after", log)
        assert match and int(match[1]) != old_pid  # a new execution environment runs the new code
        assert "Init Duration" in log  # ... which was a cold start
    finally:
        stop.set()
        thread.join(30)
    assert not thread.is_alive()
    assert redeploys == [1], lines
    assert any("change in agents.py: redeploying" in line for line in lines), lines
    assert any(f"as function {FUNCTION}" in line for line in lines), lines


def test_restart_on_another_port_keeps_deployed_functions_working(stack):
    """Last in the module: deployed functions come back after `down`/`up`, pointed at the stack's new endpoint."""
    run = stack["run"]
    down = run("local", "down", timeout=120)
    assert down.returncode == 0, down.stdout + down.stderr
    stack["env"]["SOORMA_LOCAL_PORT"] = str(free_port())
    up = run("local", "up")
    assert up.returncode == 0, up.stdout + up.stderr
    url = json.loads((stack["home"] / "state.json").read_text())["api_url"]
    assert url.endswith(f":{stack['env']['SOORMA_LOCAL_PORT']}") and url != stack["url"]
    done = run("local", "invoke", FUNCTION, "--payload", ping("restarted").decode(), "--log")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "marker=restarted" in done.stderr and f"api={url}" in done.stderr
