"""The run-time glue the CDK app deploys (boot, SNS publisher, bridge fetch, registrar) and `soorma deploy`'s
command line. No AWS: fakes stand in for boto3 clients, botocore's own signer checks our SigV4."""

from __future__ import annotations

import datetime
import json
import shlex
import sys

import pytest

from soorma.events import EventEnvelope
from soorma.functions.gateway.publisher import SnsPublisher
from soorma.infra.runtime import boot, fetch


def test_boot_resolves_secrets_into_the_variables_handlers_read():
    secrets = {
        "app": json.dumps({"username": "soorma_app", "password": "p@ss/word", "host": "db.example", "port": 5432,
                           "dbname": "soorma"}),
        "owner": json.dumps({"username": "soorma_owner", "password": "o", "host": "db.example", "port": 5432}),
        "pepper": "pepper-value\n",
        "nats": json.dumps({"url": "nats://u:p@nats.example:4222"}),
        "key": json.dumps({"api_key": "sk_abc_def"}),
    }
    env = {"SOORMA_APP_DB_SECRET_ARN": "app", "SOORMA_OWNER_DB_SECRET_ARN": "owner",
           "SOORMA_API_KEY_PEPPER_SECRET_ARN": "pepper", "SOORMA_NATS_SECRET_ARN": "nats",
           "SOORMA_API_KEY_SECRET_ARN": "key"}
    boot.resolve_environment(env, read=secrets.__getitem__)
    assert env["SOORMA_APP_DATABASE_URL"] == (
        "postgresql://soorma_app:p%40ss%2Fword@db.example:5432/soorma?sslmode=require&connect_timeout=10")
    assert env["SOORMA_DATABASE_URL"].startswith("postgresql://soorma_owner:o@db.example:5432/soorma?")
    assert env["SOORMA_APP_DB_PASSWORD"] == "p@ss/word"
    assert env["SOORMA_API_KEY_PEPPER"] == "pepper-value"
    assert env["SOORMA_NATS_URL"] == "nats://u:p@nats.example:4222"
    assert env["SOORMA_API_KEY"] == "sk_abc_def"


def test_boot_waits_for_an_agent_key_the_registrar_has_not_written():
    env = {"SOORMA_API_KEY_SECRET_ARN": "key"}
    with pytest.raises(boot.SecretNotReady):
        boot.resolve_environment(env, read=lambda arn: "generated-placeholder")
    assert "SOORMA_API_KEY" not in env


def test_boot_loads_the_target_handler():
    assert boot.load_handler("json.dumps") is json.dumps
    with pytest.raises(ValueError):
        boot.load_handler("nodots")


class FakeSns:
    def __init__(self, fail: bool = False) -> None:
        self.calls = []
        self.fail = fail

    def publish(self, **kwargs):
        if self.fail:
            raise RuntimeError("endpoint unreachable")
        self.calls.append(kwargs)
        return {"MessageId": "1"}


def _envelope(**kw) -> EventEnvelope:
    data = dict(source="test", type="research.retrieve", topic="action-requests", data={"q": 1},
                platform_tenant_id="acme")
    data.update(kw)
    return EventEnvelope(**data)


def test_sns_publisher_sets_the_filter_attributes():
    client = FakeSns()
    SnsPublisher("arn:aws:sns:eu-west-1:123456789012:events", client=client).publish(_envelope())
    (call,) = client.calls
    assert call["TopicArn"].endswith(":events")
    assert json.loads(call["Message"])["type"] == "research.retrieve"
    assert call["MessageAttributes"] == {
        "platform_tenant_id": {"DataType": "String", "StringValue": "acme"},
        "topic": {"DataType": "String", "StringValue": "action-requests"},
        "event_type": {"DataType": "String", "StringValue": "research.retrieve"},
    }


def test_sns_publisher_errors_map_to_the_gateways_answers():
    from soorma.functions.gateway.publisher import PayloadTooLarge, PublishError
    from soorma.subjects import InvalidSubjectToken

    with pytest.raises(PublishError):
        SnsPublisher("arn", client=FakeSns(fail=True)).publish(_envelope())
    with pytest.raises(PayloadTooLarge):
        SnsPublisher("arn", client=FakeSns()).publish(_envelope(data={"blob": "x" * 300_000}))
    with pytest.raises(InvalidSubjectToken):
        SnsPublisher("arn", client=FakeSns()).publish(_envelope(platform_tenant_id="bad tenant"))


def test_bridge_fetch_signature_matches_botocore(monkeypatch):
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    creds = {"AccessKeyId": "AKIDEXAMPLE", "SecretAccessKey": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
             "Token": "session-token"}
    now = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
    host = "cdk-assets-123456789012-eu-west-1.s3.eu-west-1.amazonaws.com"
    path = "/abc123.zip"
    ours = fetch.signed_get_headers(host, path, "eu-west-1", creds, now=now)

    request = AWSRequest(method="GET", url=f"https://{host}{path}")
    signer = S3SigV4Auth(Credentials(creds["AccessKeyId"], creds["SecretAccessKey"], creds["Token"]), "s3",
                         "eu-west-1")
    monkeypatch.setattr("botocore.auth.get_current_datetime", lambda: now.replace(tzinfo=None))
    request.headers["X-Amz-Content-SHA256"] = ours["x-amz-content-sha256"]
    signer.add_auth(request)
    theirs = request.headers["Authorization"]
    assert ours["authorization"].split("Signature=")[1] == theirs.split("Signature=")[1], (ours, theirs)


def test_agent_filter_policy():
    from soorma.infra.agent import filter_policy

    assert filter_policy("t", [("action-requests", "a.b")]) == {
        "platform_tenant_id": ["t"], "topic": ["action-requests"], "event_type": ["a.b"]}
    assert filter_policy("t", [("business-facts", "*")]) == {"platform_tenant_id": ["t"], "topic": ["business-facts"]}
    policy = filter_policy("t", [("action-requests", "x"), ("action-results", "y"), ("action-requests", "z")])
    assert policy == {"platform_tenant_id": ["t"], "$or": [
        {"topic": ["action-requests"], "event_type": ["x", "z"]},
        {"topic": ["action-results"], "event_type": ["y"]}]}
    with pytest.raises(ValueError):
        filter_policy("t", [])


def test_registrar_restores_integer_properties():
    from soorma.infra.runtime.registrar import _numbers

    assert _numbers({"batch_size": "10", "max_concurrency": "2", "max_deliveries": "5", "timeout_seconds": "30",
                     "transport": "sqs"}) == {"batch_size": 10, "max_concurrency": 2, "max_deliveries": 5,
                                              "timeout_seconds": 30, "transport": "sqs"}


# ------------------------------------------------------------------------------------------------ soorma deploy


def test_deploy_command_runs_the_pinned_cdk_cli(tmp_path):
    from soorma.cli.deploy import build_command

    agent = tmp_path / "agent.py"
    agent.write_text("")
    cmd = build_command(agent, transport="nats", stack_name="Mine", region="eu-west-1", profile="dev",
                        deletion_protection=False, python="/usr/bin/python3")
    assert cmd[:5] == ["npx", "--yes", "aws-cdk@2.1148.1", "deploy", "Mine"]
    assert cmd[cmd.index("--app") + 1] == "/usr/bin/python3 -m soorma.infra.app"
    contexts = [cmd[i + 1] for i, part in enumerate(cmd) if part == "--context"]
    assert f"soorma:agents={agent.resolve()}" in contexts
    assert {"soorma:transport=nats", "soorma:stack-name=Mine", "soorma:region=eu-west-1",
            "soorma:deletion-protection=false"} <= set(contexts)
    assert cmd[cmd.index("--profile") + 1] == "dev"
    assert cmd[cmd.index("--require-approval") + 1] == "broadening"


def test_deploy_command_refuses_bad_arguments(tmp_path):
    from soorma.cli.deploy import DeployCommandError, build_command

    with pytest.raises(DeployCommandError):
        build_command(tmp_path / "missing.py")
    with pytest.raises(DeployCommandError):
        build_command(None, transport="kafka")


def test_soorma_deploy_dry_run_prints_without_running(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from soorma.cli.main import app

    called = []
    monkeypatch.setattr("subprocess.call", lambda *a, **k: called.append(a) or 0)
    agent = tmp_path / "agent.py"
    agent.write_text("")
    result = CliRunner().invoke(app, ["deploy", str(agent), "--dry-run"])
    assert result.exit_code == 0, result.output
    printed = shlex.split(result.output.strip().splitlines()[-1])
    assert printed[:4] == ["npx", "--yes", "aws-cdk@2.1148.1", "deploy"]
    assert f"{sys.executable} -m soorma.infra.app" in printed
    assert not called


# ------------------------------------------------------------------------------------------------ identity bootstrap


def test_boot_reads_the_hs256_jwt_secret_plain_or_json():
    env = {"SOORMA_JWT_SECRET_ARN": "jwt"}
    boot.resolve_environment(env, read=lambda arn: "s3cret-value\n")
    assert env["SOORMA_JWT_SECRET"] == "s3cret-value"
    env = {"SOORMA_JWT_SECRET_ARN": "jwt"}
    boot.resolve_environment(env, read=lambda arn: json.dumps({"secret": "from-json"}))
    assert env["SOORMA_JWT_SECRET"] == "from-json"
    with pytest.raises(boot.SecretNotReady):
        boot.resolve_environment({"SOORMA_JWT_SECRET_ARN": "jwt"}, read=lambda arn: "{}")


class FakeSecrets:
    """Secrets Manager's get/put for the registrar (a generated placeholder until a key is written)."""

    class exceptions:  # noqa: N801 - boto3's attribute name
        class ResourceNotFoundException(Exception):
            pass

    def __init__(self, **values: str) -> None:
        self.values = dict(values)
        self.puts: list[str] = []

    def get_secret_value(self, SecretId):  # noqa: N803 - boto3's argument names
        if SecretId not in self.values:
            raise self.exceptions.ResourceNotFoundException(SecretId)
        return {"SecretString": self.values[SecretId]}

    def put_secret_value(self, SecretId, SecretString):  # noqa: N803
        self.values[SecretId] = SecretString
        self.puts.append(SecretId)


@pytest.mark.timeout(300)
def test_registrar_onboards_the_platform_tenant_and_issues_the_admin_key_once(app_dsn, monkeypatch):
    """Against the real database: the bootstrap platform admin (AWS's counterpart of LocalStack._ensure_credentials)
    resolves to role admin of the platform-operator tenant, whose row exists; a second deploy issues nothing."""
    from soorma.functions.gateway.keys import resolve_api_key
    from soorma.functions.shared.db import Database
    from soorma.identity import is_platform_admin
    from soorma.infra.runtime.registrar import on_event

    monkeypatch.setenv("SOORMA_API_KEY_PEPPER", "test-pepper")
    monkeypatch.setenv("SOORMA_PLATFORM_ADMIN_TENANT", "operator-t")
    secrets = FakeSecrets(admin="GeneratedPlaceholder123", dev="GeneratedPlaceholder456")
    db = Database(app_dsn)
    try:
        admin_event = {"RequestType": "Create", "ResourceType": "Custom::SoormaPlatformAdmin",
                       "ResourceProperties": {"AdminTenantId": "operator-t", "SecretArn": "admin"}}
        assert on_event(admin_event, db=db, secrets=secrets) == {"PhysicalResourceId": "platform-admin/operator-t"}
        dev_event = {"RequestType": "Create", "ResourceType": "Custom::SoormaBootstrapKey",
                     "ResourceProperties": {"PlatformTenantId": "tenant-dev", "SecretArn": "dev", "Revision": "2"}}
        on_event(dev_event, db=db, secrets=secrets)
        stored = json.loads(secrets.values["admin"])
        assert stored["platform_tenant_id"] == "operator-t" and stored["role"] == "admin"
        with db.transaction() as conn:
            identity = resolve_api_key(conn, stored["api_key"])
            developer = resolve_api_key(conn, json.loads(secrets.values["dev"])["api_key"])
        assert identity is not None and identity.role == "admin" and is_platform_admin(identity)
        assert developer is not None and developer.role == "developer" and not is_platform_admin(developer)
        for tenant in ("operator-t", "tenant-dev"):
            with db.transaction() as conn:
                row = conn.execute("select gateway.tenant_status(%s) as status", (tenant,)).fetchone()
            assert (row["status"] if isinstance(row, dict) else row[0]) == "active", tenant
        # Update (a later deploy): the key in the secret stays, nothing new is issued.
        on_event({**admin_event, "RequestType": "Update"}, db=db, secrets=secrets)
        on_event({**dev_event, "RequestType": "Update"}, db=db, secrets=secrets)
        assert secrets.puts == ["admin", "dev"]
        assert json.loads(secrets.values["admin"])["api_key"] == stored["api_key"]
        # Delete leaves tenants and keys alone.
        on_event({**admin_event, "RequestType": "Delete", "PhysicalResourceId": "platform-admin/operator-t"},
                 db=db, secrets=secrets)
        with db.transaction() as conn:
            assert resolve_api_key(conn, stored["api_key"]) is not None
    finally:
        db.close()


def test_settings_go_only_where_they_are_read_and_never_carry_a_secret():
    from soorma.infra.app import _settings
    from soorma.infra.platform import split_settings

    assert _settings('{"SOORMA_RATE_KEY_RPS": 5}') == {"SOORMA_RATE_KEY_RPS": "5"}
    assert _settings("SOORMA_A2A_BLOCKING_SECONDS=10, SOORMA_JWT_LEEWAY_SECONDS=30") == {
        "SOORMA_A2A_BLOCKING_SECONDS": "10", "SOORMA_JWT_LEEWAY_SECONDS": "30"}
    split = split_settings({"SOORMA_RATE_KEY_RPS": "5", "SOORMA_A2A_BLOCKING_SECONDS": "10",
                            "SOORMA_JWT_DEFAULT_ROLE": "developer"})
    assert split == {
        **{fn: {"SOORMA_RATE_KEY_RPS": "5"} for fn in ("registry", "memory", "gateway", "identity", "tracker")},
        "protocols": {"SOORMA_RATE_KEY_RPS": "5", "SOORMA_A2A_BLOCKING_SECONDS": "10"},
        "authorizer": {"SOORMA_JWT_DEFAULT_ROLE": "developer"},
    }
    for bad in ({"SOORMA_JWT_SECRET": "x"}, {"SOORMA_API_KEY_PEPPER": "x"}, {"SOORMA_DATABASE_URL": "x"},
                {"lower_case": "x"}):
        with pytest.raises(ValueError):
            split_settings(bad)


@pytest.mark.timeout(300)
def test_registrar_registers_an_agent_with_its_events_issues_its_key_once_and_unregisters(app_dsn, monkeypatch):
    """``Custom::SoormaAgent`` against the real database: the event definitions (JSON text, so the schema's numbers
    and booleans survive CloudFormation) and the agent with its deployment binding are registered, an agent key is
    written to the secret once, a definition the registry refuses is skipped, and Delete unregisters the agent."""
    from soorma.functions.gateway.keys import resolve_api_key
    from soorma.functions.registry.app import query_agents
    from soorma.functions.shared.db import Database
    from soorma.infra.runtime.registrar import _identity, on_event

    monkeypatch.setenv("SOORMA_API_KEY_PEPPER", "test-pepper")
    schema = {"type": "object", "properties": {"n": {"type": "integer", "minimum": 0}},
              "additionalProperties": False}
    events = [{"event_name": "count.requested", "topic": "action-requests", "description": "count things",
               "payload_schema": schema},
              {"event_name": "bad.topic", "topic": "action-responses"}]  # soorma-core's unknown topic: skipped
    props = {
        "PlatformTenantId": "tenant-agents",
        "Agent": {"agent_id": "counter", "name": "counter", "consumed_events": ["count.requested"]},
        "Events": json.dumps(events),
        "Deployment": {"function_name": "Soorma-counter", "transport": "sqs", "batch_size": "10",
                       "max_concurrency": "2", "max_deliveries": "5", "timeout_seconds": "30",
                       "subscriptions": [{"topic": "action-requests", "event_type": "count.requested"}]},
        "KeySecretArn": "agent-key",
    }
    secrets = FakeSecrets(**{"agent-key": "GeneratedPlaceholder789"})
    db = Database(app_dsn)
    try:
        event = {"RequestType": "Create", "ResourceType": "Custom::SoormaAgent", "ResourceProperties": props}
        assert on_event(event, db=db, secrets=secrets) == {"PhysicalResourceId": "tenant-agents/counter"}
        with db.transaction(_identity("tenant-agents")) as conn:
            (agent,) = query_agents(conn, agent_id="counter")
            stored = conn.execute("select event_name, payload_schema from registry.events").fetchall()
        assert agent["deployment"]["function_name"] == "Soorma-counter" and agent["deployment"]["batch_size"] == 10
        assert [(r["event_name"], r["payload_schema"]) for r in stored] == [("count.requested", schema)]
        key = json.loads(secrets.values["agent-key"])["api_key"]
        with db.transaction() as conn:
            identity = resolve_api_key(conn, key)
        assert identity is not None and identity.role == "agent" and identity.platform_tenant_id == "tenant-agents"
        on_event({**event, "RequestType": "Update"}, db=db, secrets=secrets)
        assert secrets.puts == ["agent-key"]  # the key is issued once
        on_event({"RequestType": "Delete", "ResourceType": "Custom::SoormaAgent",
                  "PhysicalResourceId": "tenant-agents/counter", "ResourceProperties": props}, db=db, secrets=secrets)
        with db.transaction(_identity("tenant-agents")) as conn:
            assert query_agents(conn, agent_id="counter") == []
    finally:
        db.close()


class _Extension:
    """A stand-in for the AWS Parameters and Secrets Lambda Extension on 127.0.0.1: ``GET /secretsmanager/get``."""

    def __init__(self, secrets: dict[str, str]) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from urllib.parse import parse_qs, urlsplit

        seen = self.requests = []

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                url = urlsplit(self.path)
                arn = parse_qs(url.query).get("secretId", [""])[0]
                seen.append((url.path, arn, self.headers.get("X-Aws-Parameters-Secrets-Token")))
                if self.headers.get("X-Aws-Parameters-Secrets-Token") != "session-token" or arn not in secrets:
                    self.send_error(400 if arn in secrets else 404)
                    return
                body = json.dumps({"ARN": arn, "SecretString": secrets[arn]}).encode()
                self.send_response(200)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def extension():
    ext = _Extension({"arn:aws:secretsmanager:eu-west-1:123456789012:secret:soorma/app-AbCd": "pepper-value"})
    yield ext
    ext.server.shutdown()


def test_boot_reads_secrets_through_the_extension_without_boto3(extension, monkeypatch):
    """With PARAMETERS_SECRETS_EXTENSION_HTTP_PORT (the CDK app sets it) a secret is one GET on localhost, the ARN
    quoted and the session token in X-Aws-Parameters-Secrets-Token; boto3 is never asked."""
    arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:soorma/app-AbCd"
    monkeypatch.setenv(boot.EXTENSION_PORT_ENV, str(extension.port))
    monkeypatch.setenv("AWS_SESSION_TOKEN", "session-token")
    monkeypatch.setitem(sys.modules, "boto3", None)  # an import of boto3 would raise
    assert boot._read_secret(arn) == "pepper-value"
    assert extension.requests == [("/secretsmanager/get", arn, "session-token")]


def test_boot_falls_back_to_boto3_when_the_extension_refuses_or_is_absent(extension, monkeypatch):
    """A refusing extension (here a wrong token) or none on the port: the read goes to Secrets Manager with boto3
    (moto here), with one warning; without a session token (SnapStart's container credentials) the extension is
    not even asked."""
    import boto3
    from moto import mock_aws

    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        arn = boto3.client("secretsmanager").create_secret(Name="soorma/pepper", SecretString="from-sm")["ARN"]
        monkeypatch.setenv(boot.EXTENSION_PORT_ENV, str(extension.port))
        monkeypatch.setenv("AWS_SESSION_TOKEN", "session-token")
        assert boot._read_secret(arn) == "from-sm"  # the extension answers 404: not its secret
        assert [r[1] for r in extension.requests] == [arn]
        monkeypatch.delenv("AWS_SESSION_TOKEN")
        assert boot._read_secret(arn) == "from-sm"
        assert len(extension.requests) == 1  # not asked without a token
        monkeypatch.setenv("AWS_SESSION_TOKEN", "session-token")
        monkeypatch.setenv(boot.EXTENSION_PORT_ENV, "1")  # nothing listens there
        assert boot._read_secret(arn) == "from-sm"


def test_prepare_snapshot_prewarms_the_lazy_app_and_its_warm_hook():
    """SnapStart's init (boot.prepare_snapshot) builds the lazy Mangum app and runs its warm hook once; the first
    request then reuses that app."""
    from fastapi import FastAPI

    from soorma.functions.shared.service import lazy_mangum_handler

    built, warmed = [], []

    def factory() -> FastAPI:
        app = FastAPI()
        built.append(app)

        @app.get("/ping")
        def ping():
            return {"ok": True}

        return app

    handler = lazy_mangum_handler(factory, warm=warmed.append)
    assert boot.prepare_snapshot(handler) is True
    assert len(built) == 1 and warmed == built
    from soorma.local.apigw import http_event

    reply = handler(http_event("GET", "/ping"), None)
    assert reply["statusCode"] == 200 and json.loads(reply["body"]) == {"ok": True}
    assert len(built) == 1 and len(warmed) == 1
    assert boot.prepare_snapshot(lambda event, context: None) is False  # a plain handler: nothing to prewarm


def test_boot_reads_the_migrators_database_secrets_again_on_every_run():
    """A rotated app secret reaches the migrator even in a warm environment, so its run sets the role's new
    password (soorma.functions.migrate), and a rotated owner secret is used for the connection."""
    secrets = {
        "app": json.dumps({"username": "soorma_app", "password": "old", "host": "db.example"}),
        "owner": json.dumps({"username": "soorma_owner", "password": "o1", "host": "db.example"}),
    }
    env = {"SOORMA_APP_DB_SECRET_ARN": "app", "SOORMA_OWNER_DB_SECRET_ARN": "owner"}
    boot.resolve_environment(env, read=secrets.__getitem__)
    assert env["SOORMA_APP_DB_PASSWORD"] == "old"
    secrets["app"] = json.dumps({"username": "soorma_app", "password": "new", "host": "db.example"})
    secrets["owner"] = json.dumps({"username": "soorma_owner", "password": "o2", "host": "db.example"})
    assert boot.refresh_database_secrets(env, read=secrets.__getitem__)
    assert env["SOORMA_APP_DB_PASSWORD"] == "new" and ":o2@" in env["SOORMA_DATABASE_URL"]
    assert not boot.refresh_database_secrets({"SOORMA_APP_DB_SECRET_ARN": "app"}, read=secrets.__getitem__)


def test_boot_takes_the_host_of_an_rds_managed_owner_secret_from_the_environment():
    """The master-user secret RDS manages (``network=ipv6``) holds only ``username`` and ``password``: the host and
    port come from ``SOORMA_DB_HOST``/``SOORMA_DB_PORT`` (set by the CDK app), a secret's own host still wins, and
    without any host the read is refused as not ready rather than producing a DSN that points nowhere."""
    secrets = {
        "owner": json.dumps({"username": "soorma_owner", "password": "p/w"}),
        "app": json.dumps({"username": "soorma_app", "password": "a", "host": "attached.example", "port": 5433}),
    }
    env = {"SOORMA_OWNER_DB_SECRET_ARN": "owner", "SOORMA_APP_DB_SECRET_ARN": "app",
           "SOORMA_DB_HOST": "cluster.example", "SOORMA_DB_PORT": "6543"}
    boot.resolve_environment(env, read=secrets.__getitem__)
    assert env["SOORMA_DATABASE_URL"].startswith("postgresql://soorma_owner:p%2Fw@cluster.example:6543/soorma?")
    assert "@attached.example:5433/" in env["SOORMA_APP_DATABASE_URL"]
    with pytest.raises(boot.SecretNotReady, match="host"):
        boot.resolve_environment({"SOORMA_OWNER_DB_SECRET_ARN": "owner"}, read=secrets.__getitem__)
