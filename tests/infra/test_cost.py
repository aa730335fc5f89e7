"""bench/cost.py on the synthesized templates of both transports (the session's synths, see conftest.py): every
resource type of the template is priced or named free while idle, every idle-billing resource has its line, the
floor is the sum of its lines, nats costs more than sqs while idle, and the default deployment's platform (sqs,
IPv6 egress) stays under the issue's $5 a month."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest

from .conftest import REPO

pytestmark = pytest.mark.timeout(1200)  # the first synth bundles the layers (see test_synth.py)

# Resource types that bill while idle whatever their properties: each resource of these gets at least one line.
ALWAYS_BILLING = {
    "AWS::EC2::NatGateway": "NAT gateway",
    "AWS::EC2::EIP": "public IPv4 address",
    "AWS::KMS::Key": "KMS key",
    "AWS::SecretsManager::Secret": "Secrets Manager secret",
    "AWS::CloudWatch::Alarm": "CloudWatch alarm",
    "AWS::ECS::Service": "Fargate task (always on)",
    "AWS::RDS::DBCluster": "Aurora storage",
}


@pytest.fixture(scope="module")
def cost():
    spec = importlib.util.spec_from_file_location("bench_cost", REPO / "bench" / "cost.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def reports(cost, synthesized) -> dict[str, dict]:
    """transport → bench/cost.py's report of that transport's template, run as a user would (``--template``)."""
    out = {}
    for transport in ("sqs", "nats"):
        synth = synthesized(transport)
        result = subprocess.run([sys.executable, str(REPO / "bench" / "cost.py"), "--template",
                                 str(synth.template_path)], cwd=REPO, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stdout + result.stderr
        line = json.loads(result.stdout.strip().splitlines()[-1])
        out[transport] = line["transports"][transport]
        print(result.stderr)  # the table, for the log (-s)
    return out


@pytest.mark.parametrize("transport", ["sqs", "nats"])
def test_every_resource_type_is_classified(reports, transport):
    assert reports[transport]["unclassified"] == []


@pytest.mark.parametrize("transport", ["sqs", "nats"])
def test_every_idle_billing_resource_has_its_line(reports, synthesized, transport):
    synth = synthesized(transport)
    lines = reports[transport]["idle"]
    # RDS creates the secret of a managed master password outside the template: priced on its cluster.
    managed = {lid for lid, res in synth.of_type("AWS::RDS::DBCluster").items()
               if res["Properties"].get("ManageMasterUserPassword")}
    assert bool(managed) == (synth.context.get("soorma:network", "ipv6") == "ipv6")
    for kind, label in ALWAYS_BILLING.items():
        ids = set(synth.of_type(kind)) | (managed if kind == "AWS::SecretsManager::Secret" else set())
        priced = {line["resource"].split(" ")[0] for line in lines if line["kind"] == label}
        assert ids == priced, (kind, ids ^ priced)
    endpoints = {lid for lid, res in synth.of_type("AWS::EC2::VPCEndpoint").items()
                 if res["Properties"].get("VpcEndpointType") == "Interface"}
    assert endpoints == {line["resource"].split(" ")[0] for line in lines if line["kind"] == "interface VPC endpoint"}
    queues_polled = {line["resource"].split(" ")[0] for line in lines if line["kind"] == "SQS idle polling"}
    assert queues_polled == set(synth.of_type("AWS::Lambda::EventSourceMapping"))


@pytest.mark.parametrize("transport", ["sqs", "nats"])
def test_the_floor_is_the_sum_of_its_lines(reports, transport):
    report = reports[transport]
    lines = report["idle"]
    assert report["idle_usd_month"] == pytest.approx(sum(line["usd_month"] for line in lines), abs=0.01)
    assert report["idle_usd_month"] == pytest.approx(
        report["idle_platform_usd_month"] + report["idle_agents_usd_month"], abs=0.011)
    for key in ("per_1000_goals", "per_million_events"):
        figures = report[key]
        assert figures["usd"] == pytest.approx(sum(figures["items"].values()), abs=0.001)
        assert figures["lambda_gb_seconds"] > 0


def test_nats_costs_more_than_sqs_while_idle(reports, cost):
    sqs, nats = reports["sqs"]["idle_usd_month"], reports["nats"]["idle_usd_month"]
    print(f"idle floor: sqs ${sqs:.2f}/month, nats ${nats:.2f}/month")
    assert nats > sqs


def test_the_default_platform_idles_under_the_target(reports, cost, synthesized):
    """The sqs synth is the default deployment (IPv6 egress, Bedrock embeddings) plus a generated JWT secret: its
    platform floor, that secret included, is at most $5 a month, and no interface endpoint or NAT gateway bills."""
    report = reports["sqs"]
    assert synthesized("sqs").context.get("soorma:network", "ipv6") == "ipv6"
    print(f"default platform idle floor: ${report['idle_platform_usd_month']:.2f}/month "
          f"(target <= ${cost.IDLE_TARGET_USD:.2f})")
    assert report["idle_platform_usd_month"] <= cost.IDLE_TARGET_USD
    assert not [line for line in report["idle"] if line["kind"] in ("interface VPC endpoint", "NAT gateway")]
