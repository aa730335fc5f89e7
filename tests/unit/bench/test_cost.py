"""bench/cost.py on small hand-written templates: each idle-billing resource is priced from its properties, an unknown
resource type fails the run, and the marginal cost follows the workload (no synth, no network)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def cost():
    spec = importlib.util.spec_from_file_location("bench_cost", ROOT / "bench" / "cost.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is created
    spec.loader.exec_module(module)
    return module


def template(**resources) -> dict:
    return {"Resources": resources}


QUEUE = {"Type": "AWS::SQS::Queue", "Properties": {}}


def test_interface_endpoint_bills_per_zone_and_gateway_endpoint_is_free(cost):
    lines, unclassified = cost.idle_lines(template(
        Sm={"Type": "AWS::EC2::VPCEndpoint", "Properties": {"VpcEndpointType": "Interface",
                                                             "SubnetIds": [{"Ref": "A"}, {"Ref": "B"}]}},
        S3={"Type": "AWS::EC2::VPCEndpoint", "Properties": {"VpcEndpointType": "Gateway"}},
    ), storage_gb=1)
    assert unclassified == []
    assert [(line.resource.split(" ")[0], round(line.usd_month, 2)) for line in lines] == [("Sm", 14.60)]


def test_event_source_mapping_polls_with_5_pollers_under_maximum_concurrency_else_2(cost):
    mapping = {"Type": "AWS::Lambda::EventSourceMapping",
               "Properties": {"EventSourceArn": {"Fn::GetAtt": ["Q", "Arn"]}}}
    capped = {**mapping, "Properties": {**mapping["Properties"], "ScalingConfig": {"MaximumConcurrency": 2}}}
    lines, unclassified = cost.idle_lines(template(Q=QUEUE, Plain=mapping, Capped=capped), storage_gb=1)
    assert unclassified == []
    by_id = {line.resource.split(" ")[0]: line.usd_month for line in lines}
    # 20-second long polls for 730 hours: 131,400 receives per poller, $0.40 per million
    assert by_id["Plain"] == pytest.approx(2 * 131_400 * 0.40 / 1e6)
    assert by_id["Capped"] == pytest.approx(5 * 131_400 * 0.40 / 1e6)


def test_fargate_service_and_paused_aurora(cost):
    lines, unclassified = cost.idle_lines(template(
        Task={"Type": "AWS::ECS::TaskDefinition", "Properties": {
            "Cpu": "256", "Memory": "512", "RuntimePlatform": {"CpuArchitecture": "ARM64"}}},
        Svc={"Type": "AWS::ECS::Service", "Properties": {"TaskDefinition": {"Ref": "Task"}, "DesiredCount": 1}},
        Db={"Type": "AWS::RDS::DBCluster", "Properties": {"ServerlessV2ScalingConfiguration": {"MinCapacity": 0}}},
        Writer={"Type": "AWS::RDS::DBInstance", "Properties": {"DBInstanceClass": "db.serverless",
                                                               "DBClusterIdentifier": {"Ref": "Db"}}},
    ), storage_gb=2)
    assert unclassified == []
    by_kind = {line.kind: line.usd_month for line in lines}
    assert by_kind["Fargate task (always on)"] == pytest.approx(730 * (0.25 * 0.03238 + 0.5 * 0.00356))
    assert by_kind["Aurora capacity minimum"] == 0
    assert by_kind["Aurora storage"] == pytest.approx(0.20)


def test_an_unknown_resource_type_fails_the_run(cost, tmp_path, capsys):
    path = tmp_path / "t.json"
    path.write_text(json.dumps(template(Box={"Type": "AWS::EC2::Instance", "Properties": {}})))
    assert cost.main(["--template", str(path), "--no-table"]) == 1
    report = json.loads(capsys.readouterr().out)["transports"]["sqs"]
    assert report["unclassified"] == ["Box: AWS::EC2::Instance"]


def test_a_known_type_configured_beyond_the_price_table_fails_too(cost):
    _, unclassified = cost.idle_lines(template(
        Db={"Type": "AWS::RDS::DBInstance", "Properties": {"DBInstanceClass": "db.r6g.large"}}), storage_gb=1)
    assert unclassified and "db.r6g.large" in unclassified[0]


def test_workload_counts_derive_from_the_invocations(cost):
    workload = cost.Workload({"soorma-gateway": cost.Invocation(3, 100), "soorma-tracker": cost.Invocation(2, 50),
                              "research-advisor-researcher": cost.Invocation(1, 400)})
    assert (workload.http_requests, workload.events, workload.deliveries) == (3, 2, 3)
    assert workload.db_seconds == pytest.approx(0.4)


def test_durations_from_report_lines_leave_out_init(cost, tmp_path):
    from soorma.local.runtime.logs import report_line  # what the local stack writes

    cold = report_line("a", 10.0, 512, 60, init_duration_ms=500.0)  # billed 510 ms, 500 of them INIT
    warm = report_line("b", 29.5, 512, 60, init_duration_ms=None)  # billed 30 ms
    (tmp_path / "soorma-gateway.log").write_text(f"START RequestId: a\n{cold}\n{warm}\n")
    # the stack's own log repeats every function's lines after a timestamp: not a function's log
    (tmp_path / "stack.log").write_text(f"12:00 INFO soorma-gateway {warm}\n")
    assert cost.durations_from_logs(tmp_path) == {"soorma-gateway": cost.Invocation(2, 20.0)}


def test_marginal_cost_uses_the_template_memory_size(cost):
    memory = {"gateway": (1024, "arm64")}
    one_second = cost.Workload({"gateway": cost.Invocation(1, 1000)})
    figures = cost.marginal_cost(one_second, memory, "nats", 1_000_000)
    assert figures["lambda_gb_seconds"] == 1_000_000
    assert figures["items"]["lambda_compute"] == pytest.approx(1_000_000 * 0.0000133334, rel=1e-3)
    assert figures["usd"] == pytest.approx(sum(figures["items"].values()), abs=1e-3)


def test_every_price_names_its_page(cost):
    from soorma.functions.shared.prices import DEFAULT_MODEL_PRICE, MODEL_PRICES, PRICES

    # one table, read by the benchmark and by the usage metering
    assert cost.price("lambda_arm_gb_second") == PRICES["lambda_arm_gb_second"].usd
    for key, entry in PRICES.items():
        assert entry.url.startswith("https://aws.amazon.com/"), key
        assert entry.usd > 0, key
    for model, prices in MODEL_PRICES.items():
        assert all(p.usd > 0 and p.url.startswith("https://") for p in prices), model
    assert DEFAULT_MODEL_PRICE in MODEL_PRICES.values()
