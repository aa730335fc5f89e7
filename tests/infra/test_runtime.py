"""The run-time glue the CDK app deploys (boot, SNS publisher, bridge fetch, registrar) and `soorma deploy`'s
command line. No AWS: fakes stand in for boto3 clients, botocore's own signer checks our SigV4."""

from __future__ import annotations

import datetime
import json
import shlex
import sys

import pytest

from soorma.events import EventEnvelope
from soorma.infra.runtime import boot, fetch
from soorma.infra.runtime.sns import SnsPublisher


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
    SnsPublisher("arn:aws:sns:eu-west-1:123456789012:events", client).publish(_envelope())
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
        SnsPublisher("arn", FakeSns(fail=True)).publish(_envelope())
    with pytest.raises(PayloadTooLarge):
        SnsPublisher("arn", FakeSns()).publish(_envelope(data={"blob": "x" * 300_000}))
    with pytest.raises(InvalidSubjectToken):
        SnsPublisher("arn", FakeSns()).publish(_envelope(platform_tenant_id="bad tenant"))


def test_bridge_fetch_signature_matches_botocore(monkeypatch):
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    creds = {"AccessKeyId": "AKIDEXAMPLE", "SecretAccessKey": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
             "Token": "session-token"}
    now = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
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
