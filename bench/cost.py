"""What the deployed platform costs: the idle floor and the marginal cost of work, priced from the CloudFormation
template that ``cdk synth`` writes. Prints one JSON line and a table per transport.

* **Idle floor**: every resource that bills while nothing runs, found by its type and properties in the template
  (interface VPC endpoints per zone-hour, NAT gateways and their public IPv4 addresses, KMS keys, Secrets Manager
  secrets, CloudWatch alarms, Aurora storage and minimum capacity, always-on Fargate tasks, Container Insights
  metrics, SnapStart snapshots, and the ReceiveMessage requests of each SQS event source mapping's idle long
  polling). A resource type the script does not know fails the run (``unclassified``): a new kind of resource must
  be priced or named free while idle in :data:`FREE_WHILE_IDLE`, never silently skipped.
* **Marginal cost** per 1,000 goals of the research-advisor example and per 1 million events delivered: Lambda
  requests and GB-seconds (each function's configured MemorySize from the template times the billed durations of
  :data:`WORKLOAD`), HTTP API requests, SNS publishes and SQS requests (send, receive, delete) under sqs, NAT
  gateway data under nats, Aurora capacity while the work runs, Bedrock embeddings; and the price of one Aurora
  resume after a pause. The NATS server of ``transport=nats`` is outside the template and not priced.

Prices are list prices of us-east-1 without free tiers, in one table shared with the platform's usage metering
(:data:`soorma.functions.shared.prices.PRICES`), each with its pricing page and the date it was read. A month is 730
hours.

Usage::

    python bench/cost.py                      # synthesizes both transports (pinned CDK CLI, offline, no Docker)
    python bench/cost.py --template T.json    # prices one template (transport read from its resources)
    python bench/cost.py --durations-from .soorma/logs --goals N   # the workload from a local stack's REPORT lines

The target, an idle floor of at most $5 a month for the default deployment (the platform as ``cdk deploy`` makes it,
``network=ipv6``; the user's agents are priced beside it), is printed on the platform's line and checked by
tests/infra/test_cost.py.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from soorma.functions.shared.prices import PRICES_READ, price

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "research-advisor"
CDK_CLI = ROOT / "infra" / "node_modules" / ".bin" / "cdk"
STACK = "Soorma"
HOURS_PER_MONTH = 730
SECONDS_PER_MONTH = HOURS_PER_MONTH * 3600
IDLE_TARGET_USD = 5.0  # issue 16: the default deployment's idle floor; printed, not asserted


# ------------------------------------------------------------------------------------------------ idle floor

# SQS event source mappings long-poll each queue continuously (20-second ReceiveMessage waits) with 5 pollers; with
# a low rate of messages Lambda may go down to 2 pollers, but not when MaximumConcurrency is set.
# https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-scaling.html
SQS_POLLERS = 5
SQS_POLLERS_LOW_TRAFFIC = 2
SQS_LONG_POLL_SECONDS = 20

# Container Insights (standard) on an ECS cluster publishes metrics per dimension set: cluster, each service and
# each task definition family; the counts are the author's reading of the metrics list (not confirmed with the
# search tool): https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/Container-Insights-metrics-ECS.html
CONTAINER_INSIGHTS_METRICS = {"cluster": 11, "service": 13, "task_family": 8}

# Resource types that bill nothing while idle (only by use, or never), with why. Anything neither here nor in
# pricers() is unclassified, and the run fails.
FREE_WHILE_IDLE: dict[str, str] = {
    "AWS::ApiGatewayV2::Api": "HTTP API: per request",
    "AWS::ApiGatewayV2::Authorizer": "per invocation of its function",
    "AWS::ApiGatewayV2::Integration": "no charge",
    "AWS::ApiGatewayV2::Route": "no charge",
    "AWS::ApiGatewayV2::Stage": "no charge",
    "AWS::CDK::Metadata": "not deployed as a resource",
    "AWS::CloudFormation::CustomResource": "runs a function at deploy only",
    "AWS::EC2::EgressOnlyInternetGateway": "no hourly charge; data out to the internet per GB (to AWS services in "
                                           "the region: free)",
    "AWS::EC2::FlowLog": "vended log ingestion per GB of traffic",
    "AWS::EC2::InternetGateway": "no charge",
    "AWS::EC2::Route": "no charge",
    "AWS::EC2::RouteTable": "no charge",
    "AWS::EC2::SecurityGroup": "no charge",
    "AWS::EC2::SecurityGroupEgress": "no charge",
    "AWS::EC2::SecurityGroupIngress": "no charge",
    "AWS::EC2::Subnet": "no charge (public IPs are priced where they are created)",
    "AWS::EC2::SubnetRouteTableAssociation": "no charge",
    "AWS::EC2::VPC": "no charge",
    "AWS::EC2::VPCCidrBlock": "no charge (an Amazon-provided IPv6 block)",
    "AWS::EC2::VPCGatewayAttachment": "no charge",
    "AWS::ECS::TaskDefinition": "priced through the service that runs it",
    "AWS::IAM::Policy": "no charge",
    "AWS::IAM::Role": "no charge",
    "AWS::KMS::Alias": "no charge",
    "AWS::Lambda::Alias": "no charge (provisioned concurrency would be priced: see _price_alias)",
    "AWS::Lambda::LayerVersion": "storage within Lambda's free 75 GB of code",
    "AWS::Lambda::Permission": "no charge",
    "AWS::Lambda::Version": "no charge (SnapStart is priced on the function)",
    "AWS::Logs::LogGroup": "per GB ingested and stored",
    "AWS::Logs::SubscriptionFilter": "no charge of its own: it forwards records already ingested (the usage "
                                     "recorder's invocations are per agent invocation, never while idle)",
    "AWS::RDS::DBClusterParameterGroup": "no charge",
    "AWS::RDS::DBSubnetGroup": "no charge",
    "AWS::SNS::Subscription": "deliveries to SQS are free",
    "AWS::SNS::Topic": "per publish",
    "AWS::SNS::TopicPolicy": "no charge",
    "AWS::SQS::Queue": "per request (idle polling is priced on its event source mapping)",
    "AWS::SQS::QueuePolicy": "no charge",
    "AWS::Scheduler::ScheduleGroup": "no charge (EventBridge Scheduler bills per invocation of a due timer: 14 "
                                     "million a month free)",
    "AWS::SecretsManager::RotationSchedule": "runs the rotation function monthly",
    "AWS::SecretsManager::SecretTargetAttachment": "no charge",
    "AWS::SecretsManager::ResourcePolicy": "no charge",
    "AWS::Serverless::Application": "the rotation function's nested stack: invoked monthly",
}


@dataclass
class Line:
    """One idle-billing line: ``usd_month`` for ``resource`` (a logical id) of ``kind``, ``part`` platform/agents."""

    kind: str
    resource: str
    quantity: str
    usd_month: float
    part: str = "platform"


def _part(logical_id: str) -> str:
    return "agents" if logical_id.startswith("Agents") else "platform"


def _ref(value: Any) -> str | None:
    if isinstance(value, dict):
        if isinstance(value.get("Ref"), str):
            return value["Ref"]
        if "Fn::GetAtt" in value:
            return value["Fn::GetAtt"][0]
    return None


def _price_endpoint(lid: str, res: dict, resources: dict) -> list[Line]:
    props = res["Properties"]
    if props.get("VpcEndpointType", "Gateway") != "Interface":
        return []  # gateway endpoints (S3, DynamoDB) are free
    zones = len(props.get("SubnetIds") or [])
    service = json.dumps(props.get("ServiceName"))
    name = re.search(r"com\.amazonaws\.[^\"]*?\.?([a-z-]+(?:\.[a-z-]+)*)\"", service)
    label = name.group(1) if name else lid
    return [Line("interface VPC endpoint", f"{lid} ({label})", f"{zones} AZ x {HOURS_PER_MONTH} h",
                 zones * HOURS_PER_MONTH * price("interface_endpoint_hour"), _part(lid))]


def _price_nat(lid: str, res: dict, resources: dict) -> list[Line]:
    return [Line("NAT gateway", lid, f"{HOURS_PER_MONTH} h", HOURS_PER_MONTH * price("nat_gateway_hour"), _part(lid))]


def _price_eip(lid: str, res: dict, resources: dict) -> list[Line]:
    return [Line("public IPv4 address", lid, f"{HOURS_PER_MONTH} h", HOURS_PER_MONTH * price("public_ipv4_hour"),
                 _part(lid))]


def _price_kms(lid: str, res: dict, resources: dict) -> list[Line]:
    return [Line("KMS key", lid, "1 key (first year)", price("kms_key_month"), _part(lid))]


def _price_secret(lid: str, res: dict, resources: dict) -> list[Line]:
    return [Line("Secrets Manager secret", lid, "1 secret", price("secret_month"), _part(lid))]


def _price_alarm(lid: str, res: dict, resources: dict) -> list[Line]:
    metrics = res["Properties"].get("Metrics")
    count = sum(1 for m in metrics if "MetricStat" in m) if metrics else 1
    return [Line("CloudWatch alarm", lid, f"{count} metric", count * price("alarm_metric_month"), _part(lid))]


def _price_cluster(lid: str, res: dict, resources: dict, storage_gb: float) -> list[Line]:
    props = res["Properties"]
    lines = [Line("Aurora storage", lid, f"{storage_gb:g} GB", storage_gb * price("aurora_storage_gb_month"),
                  _part(lid))]
    if props.get("ManageMasterUserPassword"):
        # RDS keeps the master password in a Secrets Manager secret it creates, outside the template.
        lines.append(Line("Secrets Manager secret", lid, "1 secret (the RDS-managed master password)",
                          price("secret_month"), _part(lid)))
    scaling = props.get("ServerlessV2ScalingConfiguration")
    if scaling is not None:
        writers = [r for r in resources.values() if r["Type"] == "AWS::RDS::DBInstance"
                   and _ref(r["Properties"].get("DBClusterIdentifier")) == lid]
        minimum = float(scaling.get("MinCapacity", 0.5))
        acu_hours = minimum * HOURS_PER_MONTH * max(1, len(writers))
        note = f"{minimum:g} ACU min x {max(1, len(writers))} instance" + (" (paused)" if minimum == 0 else "")
        lines.append(Line("Aurora capacity minimum", lid, note, acu_hours * price("aurora_acu_hour"), _part(lid)))
    return lines


def _price_db_instance(lid: str, res: dict, resources: dict) -> list[Line]:
    cls = res["Properties"].get("DBInstanceClass")
    if cls != "db.serverless":
        raise Unpriced(f"{lid}: provisioned instance class {cls} has no price here")
    return []  # capacity is priced on the cluster (its ServerlessV2ScalingConfiguration)


def _price_ecs_service(lid: str, res: dict, resources: dict) -> list[Line]:
    props = res["Properties"]
    task = resources[_ref(props["TaskDefinition"])]["Properties"]
    count = int(props.get("DesiredCount", 1))
    if props.get("LaunchType", "FARGATE") != "FARGATE" and not props.get("CapacityProviderStrategy"):
        raise Unpriced(f"{lid}: only Fargate services are priced")
    arch = ((task.get("RuntimePlatform") or {}).get("CpuArchitecture") or "X86_64").upper()
    key = "arm" if arch == "ARM64" else "x86"
    vcpu = int(task["Cpu"]) / 1024
    gb = int(task["Memory"]) / 1024
    usd = count * HOURS_PER_MONTH * (vcpu * price(f"fargate_{key}_vcpu_hour") + gb * price(f"fargate_{key}_gb_hour"))
    lines = [Line("Fargate task (always on)", lid, f"{count} x {vcpu:g} vCPU/{gb:g} GB {arch}", usd, _part(lid))]
    network = (props.get("NetworkConfiguration") or {}).get("AwsvpcConfiguration") or {}
    if network.get("AssignPublicIp") == "ENABLED":
        lines.append(Line("public IPv4 address", f"{lid} (task)", f"{count} x {HOURS_PER_MONTH} h",
                          count * HOURS_PER_MONTH * price("public_ipv4_hour"), _part(lid)))
    return lines


def _price_ecs_cluster(lid: str, res: dict, resources: dict) -> list[Line]:
    settings = res["Properties"].get("ClusterSettings") or []
    insights = {s.get("Value") for s in settings if s.get("Name") == "containerInsights"}
    if not insights & {"enabled", "enhanced"}:
        return []
    if "enhanced" in insights:
        raise Unpriced(f"{lid}: Container Insights with enhanced observability is not priced here")
    services = [r for r in resources.values()
                if r["Type"] == "AWS::ECS::Service" and _ref(r["Properties"].get("Cluster")) == lid]
    families = {_ref(s["Properties"]["TaskDefinition"]) for s in services}
    metrics = (CONTAINER_INSIGHTS_METRICS["cluster"] + CONTAINER_INSIGHTS_METRICS["service"] * len(services)
               + CONTAINER_INSIGHTS_METRICS["task_family"] * len(families))
    return [Line("Container Insights metrics", lid, f"{metrics} metrics", metrics * price("custom_metric_month"),
                 _part(lid))]


def _price_event_source_mapping(lid: str, res: dict, resources: dict) -> list[Line]:
    props = res["Properties"]
    source = _ref(props.get("EventSourceArn"))
    if source is None or resources.get(source, {}).get("Type") != "AWS::SQS::Queue":
        raise Unpriced(f"{lid}: only SQS event source mappings are priced")
    pollers = SQS_POLLERS if (props.get("ScalingConfig") or {}).get("MaximumConcurrency") else SQS_POLLERS_LOW_TRAFFIC
    receives = pollers * SECONDS_PER_MONTH / SQS_LONG_POLL_SECONDS
    # The queue's owner pays: the dead-letter function's mappings poll the agents' dead-letter queues.
    return [Line("SQS idle polling", f"{lid} ({source})", f"{pollers} pollers: {receives / 1e6:.3f}M receives",
                 receives / 1e6 * price("sqs_request_million"), _part(source))]


def _price_function(lid: str, res: dict, resources: dict) -> list[Line]:
    props = res["Properties"]
    if (props.get("SnapStart") or {}).get("ApplyOn") != "PublishedVersions":
        return []  # a function bills per invocation only
    gb = int(props.get("MemorySize", 128)) / 1024
    return [Line("SnapStart snapshot cache", lid, f"{gb:g} GB x {HOURS_PER_MONTH} h",
                 gb * SECONDS_PER_MONTH * price("snapstart_cache_gb_second"), _part(lid))]


def _price_alias(lid: str, res: dict, resources: dict) -> list[Line]:
    if res["Properties"].get("ProvisionedConcurrencyConfig"):
        raise Unpriced(f"{lid}: provisioned concurrency is not priced here")
    return []


class Unpriced(Exception):
    """A resource of a known type configured in a way this script cannot price."""


Pricer = Callable[[str, dict, dict], list[Line]]


def pricers(storage_gb: float) -> dict[str, Pricer]:
    """Resource type → the function that prices one such resource's idle lines (maybe none)."""
    return {
        "AWS::EC2::VPCEndpoint": _price_endpoint,
        "AWS::EC2::NatGateway": _price_nat,
        "AWS::EC2::EIP": _price_eip,
        "AWS::KMS::Key": _price_kms,
        "AWS::SecretsManager::Secret": _price_secret,
        "AWS::CloudWatch::Alarm": _price_alarm,
        "AWS::RDS::DBCluster": lambda lid, res, resources: _price_cluster(lid, res, resources, storage_gb),
        "AWS::RDS::DBInstance": _price_db_instance,
        "AWS::ECS::Service": _price_ecs_service,
        "AWS::ECS::Cluster": _price_ecs_cluster,
        "AWS::Lambda::EventSourceMapping": _price_event_source_mapping,
        "AWS::Lambda::Function": _price_function,
        "AWS::Lambda::Alias": _price_alias,
    }


def resource_type(res: dict) -> str:
    kind = res["Type"]
    return "AWS::CloudFormation::CustomResource" if kind.startswith("Custom::") else kind


def idle_lines(template: dict, storage_gb: float) -> tuple[list[Line], list[str]]:
    """The idle-billing lines of ``template`` and the resources it could not classify (``"id: Type"``, or why a known
    type could not be priced)."""
    resources = template["Resources"]
    table = pricers(storage_gb)
    lines: list[Line] = []
    unclassified: list[str] = []
    for lid, res in resources.items():
        kind = resource_type(res)
        if kind in table:
            try:
                lines += table[kind](lid, res, resources)
            except Unpriced as exc:
                unclassified.append(str(exc))
        elif kind not in FREE_WHILE_IDLE:
            unclassified.append(f"{lid}: {kind}")
    return lines, unclassified


# ------------------------------------------------------------------------------------------------ marginal cost


@dataclass
class Invocation:
    """``count`` invocations of a function per unit of work, each billed ``billed_ms`` milliseconds."""

    count: float
    billed_ms: float


# Platform functions that answer the HTTP API (one API request each); the tracker records every event (one
# delivery per event published, its filter policy takes all); these and the authorizer hold a database connection
# while they run. Every other function of a workload is an agent (one event delivery per invocation).
HTTP_ROLES = ("gateway", "memory", "registry")
EVENT_RECORDER = "tracker"
DB_ROLES = ("gateway", "memory", "registry", "tracker", "authorizer")
PLATFORM_ROLES = (*DB_ROLES, "dead-letters", "migrate", "registrar")


@dataclass
class Workload:
    """One unit of work as function invocations by role (``gateway``, ``memory``, ``tracker``..., or an agent's
    name; a local function name such as ``research-advisor-researcher`` or ``soorma-gateway`` works too).

    Derived (see :data:`HTTP_ROLES`): ``http_requests`` = invocations of the HTTP functions (the client's submit and
    result polls, the agents' publishes and memory calls); ``events`` = the tracker's invocations (one SNS publish
    each under sqs); ``deliveries`` = the tracker's and the agents' invocations (under sqs one SendMessage, one
    ReceiveMessage and one DeleteMessage each); ``db_seconds`` = billed seconds of the functions that hold a
    database connection, billed as Aurora capacity at ``db_acu`` (the lowest capacity of a resumed cluster).
    ``embedding_tokens``: Bedrock input tokens (the researcher's one query).
    """

    invocations: dict[str, Invocation]
    embedding_tokens: float = 0
    db_acu: float = 0.5
    source: str = ""

    def _count(self, pred: Callable[[str], bool]) -> float:
        return sum(inv.count for name, inv in self.invocations.items() if pred(role_of(name, PLATFORM_ROLES)))

    @property
    def http_requests(self) -> float:
        return self._count(lambda role: role in HTTP_ROLES)

    @property
    def events(self) -> float:
        return self._count(lambda role: role == EVENT_RECORDER)

    @property
    def deliveries(self) -> float:
        return self._count(lambda role: role == EVENT_RECORDER or role not in PLATFORM_ROLES)

    @property
    def db_seconds(self) -> float:
        return sum(inv.count * inv.billed_ms / 1000 for name, inv in self.invocations.items()
                   if role_of(name, PLATFORM_ROLES) in DB_ROLES)


# Measured on the local stack (`soorma local up`, `soorma local deploy examples/research-advisor`, one warm-up goal,
# then 5 goals submitted with `soorma goal submit research.goal --wait`): REPORT lines of those 5 goals per function,
# divided by 5, mean billed duration without INIT. Taken on a 2-core x86 machine shared with other work, the local
# memory function embedding with the local model (the default deployment calls Bedrock instead): durations are
# indicative. Reproduce with --durations-from LOGS --goals N.
WORKLOAD = Workload(
    invocations={
        "gateway": Invocation(13.2, 20.2), "memory": Invocation(23.0, 26.0), "registry": Invocation(0, 0),
        "authorizer": Invocation(0.2, 2.0), "tracker": Invocation(8.0, 11.9),
        "research-planner": Invocation(4.0, 133.0), "researcher": Invocation(1.0, 317.2),
        "advisor": Invocation(1.0, 70.2), "validator": Invocation(1.0, 64.4),
    },
    embedding_tokens=30,
    source="REPORT lines of 5 research-advisor goals on the local stack (2026-12-04)",
)
# One event delivered to one subscriber, for the per-million-events figure: the gateway publishes it (one HTTP
# request), one agent handles it, the tracker records it; durations from WORKLOAD (gateway, tracker, validator).
EVENT_WORKLOAD = Workload(
    invocations={"gateway": Invocation(1, 20.2), "tracker": Invocation(1, 11.9), "agent": Invocation(1, 64.4)},
    source="one publish, one agent delivery (64 ms at 512 MB), one tracker delivery",
)
AGENT_MEMORY_MB = 512
EVENT_KB = 1.0  # an event envelope on the wire (the research-advisor's carry passages: a few KB; an estimate)


def function_memory(template: dict) -> dict[str, tuple[int, str]]:
    """Function role → (MemorySize in MB, architecture) from the template. Roles come from the functions'
    descriptions (``Soorma registry``, ``Soorma agent researcher``, ``Soorma dead letters ...``)."""
    out: dict[str, tuple[int, str]] = {}
    for res in template["Resources"].values():
        if res["Type"] != "AWS::Lambda::Function":
            continue
        props = res["Properties"]
        description = str(props.get("Description", ""))
        match = re.match(r"Soorma (?:agent )?([\w-]+)", description)
        if not match:
            continue
        role = "dead-letters" if description.startswith("Soorma dead letters") else match.group(1)
        arch = (props.get("Architectures") or ["x86_64"])[0]
        out[role] = (int(props.get("MemorySize", 128)), arch)
    return out


def role_of(name: str, roles) -> str:
    """The function role a workload entry or log file names: ``research-advisor-researcher`` (an agent's local
    function, ``<app>-<agent>``) and ``soorma-gateway`` (a platform function) are ``researcher`` and ``gateway``."""
    if name in roles:
        return name
    suffixes = [role for role in roles if name.endswith(f"-{role}")]
    return max(suffixes, key=len) if suffixes else name


def marginal_cost(workload: Workload, memory: dict[str, tuple[int, str]], transport: str, units: float) -> dict:
    """USD for ``units`` repetitions of ``workload`` under ``transport``, by item. A role the template has no
    function for is priced at :data:`AGENT_MEMORY_MB` arm64 (the bench's generic agent)."""
    items: dict[str, float] = {}
    gb_seconds = 0.0
    compute = 0.0
    requests = 0.0
    for name, inv in workload.invocations.items():
        mb, arch = memory.get(role_of(name, memory), (AGENT_MEMORY_MB, "arm64"))
        seconds = inv.count * units * inv.billed_ms / 1000
        gbs = seconds * mb / 1024
        gb_seconds += gbs
        compute += gbs * price("lambda_arm_gb_second" if arch == "arm64" else "lambda_x86_gb_second")
        requests += inv.count * units
    items["lambda_compute"] = compute
    items["lambda_requests"] = requests / 1e6 * price("lambda_request_million")
    items["http_api_requests"] = workload.http_requests * units / 1e6 * price("http_api_million")
    if transport == "sqs":
        items["sns_publishes"] = workload.events * units / 1e6 * price("sns_publish_million")
        # SendMessage (from SNS), ReceiveMessage and DeleteMessage per delivery: at a low rate a batch holds one
        # message, so receives are not shared (the busy-hour figure would be lower)
        items["sqs_requests"] = 3 * workload.deliveries * units / 1e6 * price("sqs_request_million")
    else:
        # The gateway's publish to the NATS server, the bridge's fetch of each delivery and its Invoke call with the
        # event leave the VPC through the NAT gateway (the NATS server is outside the template and not priced).
        gb = (workload.events + 2 * workload.deliveries) * units * EVENT_KB / 1024 / 1024
        items["nat_gateway_data"] = gb * price("nat_gateway_gb")
    items["aurora_capacity"] = workload.db_seconds * units / 3600 * workload.db_acu * price("aurora_acu_hour")
    items["bedrock_embeddings"] = workload.embedding_tokens * units / 1000 * price("bedrock_titan_embed_1k_tokens")
    total = sum(items.values())
    return {"usd": round(total, 4), "items": {k: round(v, 4) for k, v in items.items()},
            "lambda_gb_seconds": round(gb_seconds, 1), "lambda_requests": round(requests)}


# ------------------------------------------------------------------------------------------------ measured durations

REPORT = re.compile(r"^REPORT RequestId: \S+\tDuration: [\d.]+ ms\tBilled Duration: (?P<billed>\d+) ms"
                    r"(?:.*?Init Duration: (?P<init>[\d.]+) ms)?", re.MULTILINE)


def durations_from_logs(logs: Path) -> dict[str, Invocation]:
    """Per function log file ``<role>.log`` (or ``<app>-<role>.log``) of a local stack: the number of REPORT lines
    and their mean billed duration without INIT (warm)."""
    out: dict[str, Invocation] = {}
    for path in sorted(logs.glob("*.log")):
        billed = []
        for match in REPORT.finditer(path.read_text(errors="replace")):
            init = float(match["init"] or 0)
            billed.append(max(1.0, int(match["billed"]) - init))
        if billed:
            out[path.stem] = Invocation(len(billed), round(sum(billed) / len(billed), 1))
    return out


# ------------------------------------------------------------------------------------------------ synth


def synthesize(transport: str, outdir: Path) -> Path:
    """``cdk synth`` of the default deployment (platform and the research-advisor agents, us-east-1) through the
    pinned CLI in infra/node_modules (``npm ci --prefix infra`` installs it); offline: fixed account, zones from the
    region. Returns the stack template's path; raises ``RuntimeError`` with the CLI's output when it fails."""
    if not CDK_CLI.exists():
        raise RuntimeError(f"{CDK_CLI} is missing: run `npm ci --prefix infra`")
    env = {**os.environ, "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1", "CDK_DISABLE_VERSION_CHECK": "1"}
    env.pop("CDK_DEFAULT_ACCOUNT", None)
    env.pop("CDK_DEFAULT_REGION", None)
    cmd = [str(CDK_CLI), "synth", "--app", f"{sys.executable} -m soorma.infra.app", "--output", str(outdir),
           "--context", f"soorma:transport={transport}", "--context", f"soorma:agents={EXAMPLE}",
           "--context", "soorma:deploy-nonce=cost", "--context", "soorma:account=123456789012",
           "--no-notices", "--no-version-reporting", "--quiet"]
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    if result.returncode != 0:
        raise RuntimeError(f"cdk synth ({transport}) failed:\n{(result.stdout + result.stderr)[-4000:]}")
    return outdir / f"{STACK}.template.json"


def transport_of(template: dict) -> str:
    kinds = {res["Type"] for res in template["Resources"].values()}
    return "nats" if "AWS::ECS::Service" in kinds else "sqs"


# ------------------------------------------------------------------------------------------------ report


def price_template(template: dict, *, storage_gb: float = 1.0, workload: Workload = WORKLOAD,
                   event_workload: Workload = EVENT_WORKLOAD) -> dict:
    """The figures of one template: ``idle`` lines, ``idle_usd_month`` (their sum), the platform/agents split,
    ``unclassified`` resources, ``per_1000_goals`` and ``per_million_events`` (see :func:`marginal_cost`)."""
    transport = transport_of(template)
    lines, unclassified = idle_lines(template, storage_gb)
    memory = function_memory(template)
    total = sum(line.usd_month for line in lines)
    clusters = [res for res in template["Resources"].values() if res["Type"] == "AWS::RDS::DBCluster"]
    pause = max([int((c["Properties"].get("ServerlessV2ScalingConfiguration") or {}).get("SecondsUntilAutoPause", 300))
                 for c in clusters] or [0])
    return {
        "transport": transport,
        "idle": [{**asdict(line), "usd_month": round(line.usd_month, 4)} for line in lines],
        "idle_usd_month": round(total, 2),
        "idle_platform_usd_month": round(sum(ln.usd_month for ln in lines if ln.part == "platform"), 2),
        "idle_agents_usd_month": round(sum(ln.usd_month for ln in lines if ln.part == "agents"), 2),
        "unclassified": unclassified,
        "function_memory_mb": {role: mb for role, (mb, _) in sorted(memory.items())},
        "per_1000_goals": marginal_cost(workload, memory, transport, 1000),
        "per_million_events": marginal_cost(event_workload, memory, transport, 1e6),
        # A paused cluster resumes at its lowest non-zero capacity (0.5 ACU) and bills at least until it pauses
        # again, SecondsUntilAutoPause after the last connection: the price of one wake after idleness.
        "aurora_per_wake_usd": round(pause / 3600 * 0.5 * price("aurora_acu_hour"), 4),
    }


def print_table(report: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(stderr=True, width=130)
    table = Table(title=f"Idle floor, transport={report['transport']} (us-east-1, list prices {PRICES_READ}, "
                        f"{HOURS_PER_MONTH} h/month)")
    for name, justify in (("kind", "left"), ("resource", "left"), ("part", "left"), ("quantity", "left"),
                          ("$/month", "right")):
        table.add_column(name, justify=justify)
    grouped: dict[tuple[str, str, str], list[dict]] = {}
    for line in report["idle"]:
        grouped.setdefault((line["kind"], line["part"], line["quantity"]), []).append(line)
    for (kind, part, _), lines in grouped.items():
        resource = lines[0]["resource"] if len(lines) == 1 else f"{len(lines)} resources"
        quantity = lines[0]["quantity"] if len(lines) == 1 else f"{len(lines)} x {lines[0]['quantity']}"
        table.add_row(kind, resource, part, quantity, f"{sum(ln['usd_month'] for ln in lines):.2f}")
    table.add_section()
    table.add_row("[bold]idle floor", "[bold]platform", "", f"target <= {IDLE_TARGET_USD:.2f}",
                  f"[bold]{report['idle_platform_usd_month']:.2f}")
    table.add_row("idle floor", "agents (research-advisor)", "", "", f"{report['idle_agents_usd_month']:.2f}")
    table.add_row("idle floor", "total", "", "", f"{report['idle_usd_month']:.2f}")
    for key, label in (("per_1000_goals", "per 1,000 research-advisor goals"),
                       ("per_million_events", "per 1 million events delivered")):
        figures = report[key]
        detail = ", ".join(f"{k} {v:.3f}" for k, v in figures["items"].items() if v)
        table.add_row("marginal", label, "", detail, f"{figures['usd']:.2f}")
    table.add_row("marginal", "one Aurora resume after a pause", "", "0.5 ACU until it pauses again",
                  f"{report['aurora_per_wake_usd']:.3f}")
    if report["unclassified"]:
        table.add_row("[red]unclassified", ", ".join(report["unclassified"]), "", "", "?")
    console.print(table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--template", action="append", type=Path,
                        help="price this template instead of synthesizing (repeatable)")
    parser.add_argument("--transport", action="append", choices=("sqs", "nats"),
                        help="transports to synthesize (default both)")
    parser.add_argument("--aurora-storage-gb", type=float, default=1.0,
                        help="Aurora volume of an idle platform, GB (billed per GB used; default 1)")
    parser.add_argument("--durations-from", type=Path,
                        help="a local stack's logs folder: invocations and warm billed durations from its REPORT "
                             "lines replace the defaults (counts are per goal when --goals says how many ran)")
    parser.add_argument("--goals", type=float, default=1, help="goals the --durations-from logs cover")
    parser.add_argument("--no-table", action="store_true", help="print the JSON line only")
    args = parser.parse_args(argv)

    workload = WORKLOAD
    if args.durations_from:
        measured = durations_from_logs(args.durations_from)
        invocations = {role: Invocation(inv.count / args.goals, inv.billed_ms) for role, inv in measured.items()}
        workload = Workload(invocations, embedding_tokens=WORKLOAD.embedding_tokens,
                            source=f"REPORT lines of {args.durations_from} ({args.goals:g} goals)")

    templates: list[dict] = []
    if args.template:
        templates = [json.loads(path.read_text()) for path in args.template]
    else:
        with tempfile.TemporaryDirectory(prefix="soorma-cost-") as tmp:
            for transport in args.transport or ["sqs", "nats"]:
                path = synthesize(transport, Path(tmp) / transport)
                templates.append(json.loads(path.read_text()))

    reports = [price_template(t, storage_gb=args.aurora_storage_gb, workload=workload) for t in templates]
    line = {
        "region": "us-east-1", "prices_read": PRICES_READ, "hours_per_month": HOURS_PER_MONTH,
        "idle_target_usd_month": IDLE_TARGET_USD,
        "workload_per_goal": {"source": workload.source, "http_requests": round(workload.http_requests, 2),
                              "events": workload.events, "deliveries": workload.deliveries,
                              "db_seconds": round(workload.db_seconds, 3),
                              "invocations": {k: asdict(v) for k, v in workload.invocations.items()}},
        "transports": {r["transport"]: r for r in reports},
    }
    if not args.no_table:
        for report in reports:
            print_table(report)
    print(json.dumps(line, separators=(",", ":")))
    return 1 if any(r["unclassified"] for r in reports) else 0


if __name__ == "__main__":
    sys.exit(main())
