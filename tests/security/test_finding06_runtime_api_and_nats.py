"""Finding 6 of issue 12: the local Runtime API and NATS had no authentication.

A second poller of an execution environment's ``GET /next`` took its invocation (an authorizer event carries the
caller's API key) and could post a forged result (``isAuthorized: true``); any local process could publish into any
tenant's subjects or delete dead letters. Against a real ``soorma local up`` stack (and a real local Lambda runtime
with awslambdaric): without the environment's capability the Runtime API answers 403 and changes nothing, one poll at a
time, results only for the request handed out; NATS refuses a connection without the stack's credentials, while the
stack, ``soorma dlq`` and a client with the credentials keep working, and no listing or log shows the password.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
from pathlib import Path
from urllib.parse import urlsplit

import nats
import pytest

from soorma.local.runtime import FunctionConfig, LocalLambda

from .conftest import ECHO, lambda_client

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


def _children(pid: int) -> list[int]:
    """Every descendant of ``pid`` (Linux /proc)."""
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text()
                except OSError:
                    continue
                if int(stat.rsplit(")", 1)[1].split()[1]) == parent:
                    found.append(int(entry.name))
                    frontier.append(int(entry.name))
    return found


def _environment_of(stack, function: str) -> tuple[int, dict[str, str]]:
    """(pid, environment) of a warm execution environment of ``function`` in the running stack."""
    pid = json.loads((stack["home"] / "state.json").read_text())["pid"]
    for child in _children(pid):
        try:
            raw = Path(f"/proc/{child}/environ").read_bytes()
        except OSError:
            continue
        env = dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item)
        if env.get("AWS_LAMBDA_FUNCTION_NAME") == function and "AWS_LAMBDA_RUNTIME_API" in env:
            return child, env
    raise AssertionError(f"no execution environment of {function}")


def _request(port: int, method: str, path: str, body: bytes = b"", timeout: float = 3.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body or None)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="finds the environment through Linux /proc")
def test_a_poller_without_the_capability_gets_nothing_and_cannot_post_a_result(stack):
    client = lambda_client(stack)
    assert client.invoke(FunctionName=ECHO, Payload=b'{"warm": 1}')["StatusCode"] == 200
    pid, env = _environment_of(stack, ECHO)
    address = env["AWS_LAMBDA_RUNTIME_API"]
    host_port, _, token = address.partition("/")
    port = int(host_port.rsplit(":", 1)[1])  # the port is no secret: any user can list listening sockets
    assert len(token) >= 40
    assert token.encode() not in Path(f"/proc/{pid}/cmdline").read_bytes()  # never on a command line (ps)

    # the attack: poll the environment's next, guess a token, post a forged authorizer answer
    for path in ("/2018-06-01/runtime/invocation/next", "/x/2018-06-01/runtime/invocation/next",
                 f"/{token[:-1]}{'B' if token.endswith('A') else 'A'}/2018-06-01/runtime/invocation/next"):
        status, body = _request(port, "GET", path)
        assert status == 403, body
    forged = json.dumps({"isAuthorized": True, "context": {"role": "admin"}}).encode()
    for request_id in ("00000000-0000-0000-0000-000000000000", "anything"):
        status, _ = _request(port, "POST", f"/2018-06-01/runtime/invocation/{request_id}/response", forged)
        assert status == 403
        status, _ = _request(port, "POST", "/2018-06-01/runtime/init/error", b"{}")
        assert status == 403

    # the environment was not disturbed: the next invocation goes to it and answers for real
    out = client.invoke(FunctionName=ECHO, Payload=b'{"after": "attack"}')
    assert json.loads(out["Payload"].read())["event"] == {"after": "attack"}
    assert _environment_of(stack, ECHO)[0] == pid


@contextlib.asynccontextmanager
async def _warm_function(tmp_path):
    """A local runtime with function ``one`` (answers ``{"real": event}``) invoked once, so its warm environment is
    parked on ``next``; yields (runtime, that environment's Runtime API port, its capability token)."""
    code = tmp_path / "code"
    code.mkdir()
    (code / "fn.py").write_text("def handler(event, context):\n    return {'real': event}\n")
    async with LocalLambda(logs_dir=tmp_path / "logs") as runtime:
        runtime.register(FunctionConfig("one", "fn.handler", str(code), {}))
        assert (await runtime.invoke("one", b'{"n": 1}')).json() == {"real": {"n": 1}}
        env = next(iter(runtime._functions["one"].envs))
        host_port, _, token = env.server.address.partition("/")
        yield runtime, int(host_port.rsplit(":", 1)[1]), token


async def test_even_with_the_capability_one_poll_at_a_time_and_results_only_for_the_handed_request(tmp_path):
    """On the local runtime itself (real awslambdaric): while the runtime is parked on next, a second poller is
    409; a result for another request id is 400; the runtime's own result is the one the caller gets."""
    async with _warm_function(tmp_path) as (runtime, port, token):
        await asyncio.sleep(0.2)
        status, body = await asyncio.to_thread(_request, port, "GET", f"/{token}/2018-06-01/runtime/invocation/next")
        assert status == 409, body
        status, body = await asyncio.to_thread(
            _request, port, "POST", f"/{token}/2018-06-01/runtime/invocation/not-the-request/response", b'{"x": 1}')
        assert status == 400 and b"InvalidRequestID" in body
        assert (await runtime.invoke("one", b'{"n": 2}')).json() == {"real": {"n": 2}}


def _raw(port: int, request: bytes, timeout: float = 3.0) -> bytes:
    """Send ``request`` as raw bytes on a fresh connection; the answer's bytes until the server closes."""
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


async def test_a_body_is_never_read_without_the_capability_and_a_bad_chunk_size_cannot_hang_the_stack(tmp_path):
    """The head is checked first: a caller without the capability gets 403 before any body is buffered or parsed.
    A chunk size that is not plain hex (``-6`` made the old decoder walk backwards forever, on the event loop every
    function and API shares) is a 400, and the runtime keeps answering."""
    async with _warm_function(tmp_path) as (runtime, port, token):
        poison = b"-6\r\nabcdef\r\n0\r\n\r\n"
        for prefix, status in (("", b"403"), (f"/{token}", b"400")):
            head = (f"POST {prefix}/2018-06-01/runtime/init/error HTTP/1.1\r\nHost: x\r\n"
                    "Transfer-Encoding: chunked\r\n\r\n").encode()
            answer = await asyncio.wait_for(asyncio.to_thread(_raw, port, head + poison), timeout=10)
            assert answer.split(b" ", 2)[1] == status, answer[:200]
        assert (await runtime.invoke("one", b'{"n": 2}')).json() == {"real": {"n": 2}}


async def _try_connect(url: str):
    return await nats.connect(url, connect_timeout=2, allow_reconnect=False, max_reconnect_attempts=1,
                              reconnect_time_wait=0.1, error_cb=_quiet)


async def _quiet(_exc):
    pass


def test_nats_refuses_connections_without_the_stacks_credentials(stack):
    url = stack["secrets"]["nats_url"]
    parts = urlsplit(url)
    assert parts.password, "the stack's NATS URL carries its credentials"
    anonymous = f"nats://{parts.hostname}:{parts.port}"
    wrong = f"nats://{parts.username}:wrong-password@{parts.hostname}:{parts.port}"

    async def attack() -> None:
        for candidate in (anonymous, wrong, f"nats://{parts.password}@{parts.hostname}:{parts.port}"):
            with pytest.raises(Exception) as info:
                nc = await _try_connect(candidate)
                # had it connected: publishing into a tenant's subject and deleting dead letters
                await nc.publish("soorma.local.business-facts.evil", b"{}")
                await nc.jetstream().purge_stream("SOORMA_DLQ")
            assert "Authorization" in str(info.value) or "NoServers" in type(info.value).__name__

        nc = await _try_connect(url)  # the stack's own credentials
        try:
            js = nc.jetstream()
            assert (await js.stream_info("SOORMA_EVENTS")).config.name == "SOORMA_EVENTS"
            await nc.publish("soorma-test.probe", b"ok")
        finally:
            await nc.close()

    asyncio.run(attack())


def test_the_stack_and_its_clients_use_the_credentials_and_never_show_them(stack):
    password = urlsplit(stack["secrets"]["nats_url"]).password
    # the CLI's dead-letter commands connect with the stack's credentials
    listed = stack["run"]("dlq", "list", "--json", timeout=60)
    assert listed.returncode == 0, listed.stdout + listed.stderr
    # the bridge runs (it is connected): a status shows it, and nowhere the password
    status = stack["run"]("local", "status", "--json", timeout=60)
    assert status.returncode == 0, status.stderr
    plain = stack["run"]("local", "status", timeout=60)
    state = (stack["home"] / "state.json").read_text()
    for text in (status.stdout, plain.stdout, state, stack["up"].stdout, stack["up"].stderr, listed.stderr):
        assert password not in text
    assert json.loads(state)["nats_url"].startswith("nats://soorma:***@127.0.0.1:")  # redacted
    logs = stack["home"] / "logs"
    for log in logs.glob("*.log"):
        assert password not in log.read_text(errors="replace"), log.name
    nats_log = stack["home"] / "nats" / "nats-server.log"
    assert password not in nats_log.read_text(errors="replace")
    assert oct((stack["home"] / "nats" / "nats-server.conf").stat().st_mode & 0o777) == "0o600"
