"""``SoormaPlatform``: the whole Soorma platform in one CDK construct.

What it creates (README "Deploy to AWS"):

* **Network** — a VPC whose private subnets have no route to the IPv4 internet and no NAT gateway, an S3 gateway
  endpoint and flow logs. The functions reach the AWS APIs they call (Secrets Manager, SNS, Bedrock) in one of two
  ways (``network``): ``"ipv6"`` (default) — the VPC is dual-stack and the subnets route ``::/0`` to an egress-only
  internet gateway, so the functions call the services' dual-stack endpoints over IPv6, outbound only, for no hourly
  charge; ``"endpoints"`` — interface VPC endpoints (PrivateLink) for those services, about $7.30 a month per
  endpoint and zone, for deployments that must keep every API call on AWS's private network. With
  ``transport="nats"`` it adds public subnets, ``nat_gateways`` NAT gateways (default 1) and private subnets with
  egress for the two parts that must reach the NATS server (the gateway function and the bridge); the database
  stays in the isolated subnets either way.
* **Database** — Aurora Serverless v2 PostgreSQL (17.9 by default: pgvector 0.8 with HNSW) scaling to zero (minimum
  0 ACU, auto-pause after 5 minutes; both configurable), storage encrypted with a customer-managed KMS key, IAM
  authentication enabled, owner credentials generated into Secrets Manager (rotated every 30 days), the functions'
  role ``soorma_app`` with its own generated secret (with ``network="ipv6"`` the owner password is managed by RDS
  in Secrets Manager and rotated by RDS itself, as no rotation function could reach Secrets Manager over IPv4); a
  custom resource runs ``soorma.functions.migrate`` on every
  deploy.
* **Functions** — registry, memory, gateway, protocols (A2A, MCP, chat), identity (``/v1/identity``), authorizer and
  tracker on Lambda (arm64, Python 3.12), their
  dependencies in layers built locally (``layers/*.txt``: each function gets only the layers it imports from), each
  with its own role that reads only its own secrets, a log group with a retention, Powertools settings and a
  reserved concurrency that bounds database connections. The memory function embeds with Amazon Bedrock (Titan Text
  Embeddings v2, ``bedrock:InvokeModel`` on that model only, through a VPC endpoint) unless
  ``embedding_provider="local"`` selects the packaged ONNX model (and its layer).
* **Identity** — the API key pepper (read by the authorizer, the registrar and every HTTP function: the gateway hashes
  new keys with it, and the delivery grants of :mod:`soorma.grants` are signed with a key derived from it), the
  optional HS256 JWT
  secret (authorizer only; RS256 tokens are checked against a JWKS URL, which puts the authorizer in egress subnets),
  and two bootstrap credentials that the registrar custom resource issues once into Secrets Manager: the first
  ``developer`` key of ``platform_tenant_id`` and the platform-admin key of ``platform_admin_tenant`` (which onboards
  tenants), with both tenants onboarded. The stack outputs the secrets' ARNs, never a key.
* **HTTP API** — the routes of :data:`soorma.functions.http_api.ROUTES` (the table the local API Gateway reads too)
  behind the Lambda authorizer (payload 2.0, simple responses); the OpenAPI documents and
  the A2A agent card are public. Access logs and throttling on the stage.
* **Events** — ``transport="sqs"``: an SNS topic that the gateway publishes to, and per consumer (the tracker, each
  agent) an SQS queue with a dead-letter queue, an alarm on the dead-letter queue's depth and an event source
  mapping with partial batch responses. ``transport="nats"``: the NATS URL from Secrets Manager and the bridge as a
  Fargate service (see README for why Fargate rather than a scheduled Lambda poller).
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from pathlib import Path
from typing import Any, Literal, Sequence

import aws_cdk as cdk
from aws_cdk import (
    aws_apigatewayv2 as apigw,
    aws_apigatewayv2_authorizers as authorizers,
    aws_apigatewayv2_integrations as integrations,
    aws_cloudwatch as cloudwatch,
    aws_cloudwatch_actions as cw_actions,
    aws_ec2 as ec2,
    aws_ecs as ecs,
    aws_iam as iam,
    aws_kms as kms,
    aws_lambda as lambda_,
    aws_lambda_event_sources as event_sources,
    aws_logs as logs,
    aws_rds as rds,
    aws_secretsmanager as secretsmanager,
    aws_sns as sns,
    aws_sns_subscriptions as subscriptions,
    aws_sqs as sqs,
    custom_resources as cr,
)
from cdk_nag import NagPackSuppression, NagSuppressions, RegexAppliesTo
from constructs import Construct

from soorma.functions.http_api import HTTP_FUNCTIONS, ROUTES
from soorma.functions.shared.capacity import RESERVED_CONCURRENCY
from soorma.functions.shared.settings import JWT_AUDIENCE, JWT_JWKS_URL
from soorma.functions.tracker.dead_letters import (
    TAG_AGENT,
    TAG_MAX_DELIVERIES,
    TAG_NOTICES,
    TAG_PARKED,
    TAG_ROLE,
    TAG_TENANT,
)
from soorma.infra import bundling, packaging
from soorma.infra.webhooks import add_webhooks

Transport = Literal["sqs", "nats"]
#: How the functions in the VPC reach AWS APIs (Secrets Manager, SNS, Bedrock): ``"ipv6"`` over IPv6 through an
#: egress-only internet gateway to the services' dual-stack endpoints (no hourly charge), or ``"endpoints"`` through
#: interface VPC endpoints (AWS PrivateLink: traffic never leaves AWS's network, about $7.30 a month per endpoint and
#: zone). See :class:`SoormaPlatform`.
Network = Literal["ipv6", "endpoints"]
#: Where traces go (docs/observability.md): ``platform`` (the platform's own table, ``GET /v1/goals/{id}/trace``) or
#: ``xray`` (that, and the agents' spans to AWS X-Ray's OTLP endpoint too).
Tracing = Literal["platform", "xray"]
TRACING_MODES: tuple[str, ...] = ("platform", "xray")
NETWORKS: tuple[Network, ...] = ("ipv6", "endpoints")

BOOT_HANDLER = "soorma.infra.runtime.boot.handler"
SECRETS_EXTENSION_PORT = 2773  # the extension's default; written to PARAMETERS_SECRETS_EXTENSION_HTTP_PORT
DB_NAME = "soorma"
OWNER_USER = "soorma_owner"
APP_USER = "soorma_app"
TOKENIZER_PATH = "/opt/" + packaging.TOKENIZER_LAYER_PATH
# The same CPython as the functions (packaging.LAMBDA_PYTHON): the bridge bundle has its wheels and bytecode.
BRIDGE_IMAGE = f"public.ecr.aws/docker/library/python:{packaging.LAMBDA_PYTHON}-slim"
# Characters kept out of generated passwords: they would need quoting in a DSN or a shell.
PASSWORD_EXCLUDE = " %+~`#$&*()|[]{}:;<>?!'/@\"\\,=^"

# Default reserved concurrency (soorma.functions.shared.capacity): every execution environment holds at most
# CONNECTIONS_PER_ENVIRONMENT connections, so these bound the platform at connections_needed() connections, inside
# Aurora's limit at its smallest maximum capacity (tests/infra/test_connections.py). Set ``reserved_concurrency=None``
# for an account whose concurrency quota is still 10 (new accounts).
DEFAULT_RESERVED_CONCURRENCY = dict(RESERVED_CONCURRENCY)
#: The functions that publish events onto the stream: the gateway (goals, POST /v1/events/publish), the protocols
#: function (goals from A2A, MCP and chat requests) and the tracker (a session's next queued goal, double-texting).
PUBLISHERS = ("gateway", "protocols", "tracker")

# Settings passed through to the functions that read them, as the local stack passes them (local/stack.py
# ``_platform_env``): prefix -> functions. ``SOORMA_RATE_*`` default rate limits (soorma.functions.shared.service.Admission, in every
# HTTP function); ``SOORMA_A2A_*`` the gateway's A2A options; ``SOORMA_JWT_*`` the authorizer's token checks.
SETTING_PREFIXES: dict[str, tuple[str, ...]] = {
    "SOORMA_RATE_": ("registry", "memory", "gateway", "protocols", "identity", "tracker"),
    "SOORMA_A2A_": ("protocols",),
    "SOORMA_CHAT_": ("protocols",),
    "SOORMA_JWT_": ("authorizer",),
    # the platform's own tokens (soorma.functions.identity signs, the authorizer verifies)
    "SOORMA_IDENTITY_": ("identity", "authorizer"),
    # the delivery grants' lifetime (soorma.grants): the gateway mints them
    "SOORMA_GRANT_": ("gateway", "protocols"),
    # statement_timeout / idle_in_transaction_session_timeout of every function's connections (soorma.functions.shared.db)
    "SOORMA_DB_": ("registry", "memory", "gateway", "protocols", "identity", "tracker", "authorizer"),
    # webhooks: the retry schedule and attempt timeout (soorma.infra.webhooks)
    "SOORMA_WEBHOOK_": ("webhooks",),
}
_SETTING_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")


def split_settings(settings: dict[str, Any] | None) -> dict[str, dict[str, str]]:
    """``{function: {variable: value}}`` for :data:`SETTING_PREFIXES`; refuses other names and any secret value."""
    out: dict[str, dict[str, str]] = {}
    for name, value in (settings or {}).items():
        if not _SETTING_NAME.match(name):
            raise ValueError(f"setting {name!r} is not an environment variable name")
        if name in ("SOORMA_JWT_SECRET", "SOORMA_API_KEY_PEPPER") or name.endswith(("_PASSWORD", "_SECRET")):
            raise ValueError(f"{name} is a secret: pass a Secrets Manager secret (jwt_secret=...), never a value "
                             "that would be written into the template")
        prefix = next((p for p in SETTING_PREFIXES if name.startswith(p)), None)
        if prefix is None:
            raise ValueError(f"setting {name} is not one of {', '.join(p + '*' for p in SETTING_PREFIXES)}")
        for fn in SETTING_PREFIXES[prefix]:
            out.setdefault(fn, {})[name] = str(value)
    return out


def suppress(construct: Construct, *rules: tuple[str, str] | tuple[str, str, Sequence[str]]) -> None:
    """cdk-nag suppressions on ``construct`` and its children; each is (rule id, reason[, applies_to])."""
    items = []
    for rule in rules:
        rule_id, reason, *rest = rule
        applies = [RegexAppliesTo(regex=a) if a.startswith("/") else a for a in rest[0]] if rest else None
        items.append(NagPackSuppression(id=rule_id, reason=reason, applies_to=applies))
    NagSuppressions.add_resource_suppressions(construct, items, apply_to_children=True)


def migrations_fingerprint() -> str:
    from soorma.functions.migrate.app import migrations

    digest = hashlib.sha256()
    for migration in migrations():
        digest.update(migration.path.name.encode() + b"\0" + migration.path.read_bytes())
    return digest.hexdigest()[:16]


class QueueWithDlq(Construct):
    """An SQS queue with its dead-letter queue, alarmed; for an agent (``parked=True``) also its parked queue.

    Every queue is encrypted (SQS-managed keys, so SNS can deliver without a key grant) and refuses plain HTTP.
    ``max_receive_count`` is the number of deliveries before SQS's redrive policy moves a message to the
    dead-letter queue (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/
    sqs-dead-letter-queues.html).

    Without ``parked`` (the tracker's queue) the alarm is on the dead-letter queue's depth: its messages stay there.
    With ``parked`` the dead-letter queue is drained by the dead-letter function
    (:mod:`soorma.functions.tracker.dead_letters`: goal notice, then the message moves to ``parked_queue``), so the
    depth alarm (``DlqDepth``: events that failed every delivery) is on the parked queue, where dead letters rest
    until ``soorma dlq replay``, and a second alarm (``DlqAge``) fires when a message waits in the dead-letter queue
    itself for ``dlq_age_alarm`` (the dead-letter function is failing: goals are not being told). The dead-letter
    queue is tagged for that function (tenant, agent, parked and notice queue URLs, maximum deliveries; the source
    queue is found with ``ListDeadLetterSourceQueues``, as a tag it would make a dependency cycle).
    """

    def __init__(self, scope: Construct, id: str, *, visibility_timeout: cdk.Duration, max_receive_count: int,
                 alarm_topic: sns.ITopic | None, parked: bool = False,
                 dlq_visibility_timeout: cdk.Duration | None = None,
                 dlq_age_alarm: cdk.Duration = cdk.Duration.minutes(10)) -> None:
        super().__init__(scope, id)
        self.dead_letter_queue = sqs.Queue(
            self, "Dlq", encryption=sqs.QueueEncryption.SQS_MANAGED, enforce_ssl=True,
            retention_period=cdk.Duration.days(14), visibility_timeout=dlq_visibility_timeout,
        )
        self.queue = sqs.Queue(
            self, "Queue", encryption=sqs.QueueEncryption.SQS_MANAGED, enforce_ssl=True,
            visibility_timeout=visibility_timeout, retention_period=cdk.Duration.days(4),
            dead_letter_queue=sqs.DeadLetterQueue(queue=self.dead_letter_queue, max_receive_count=max_receive_count),
        )
        self.parked_queue: sqs.Queue | None = None
        resting = self.dead_letter_queue
        if parked:
            self.parked_queue = sqs.Queue(
                self, "Parked", encryption=sqs.QueueEncryption.SQS_MANAGED, enforce_ssl=True,
                retention_period=cdk.Duration.days(14),  # SQS's maximum
            )
            cdk.Tags.of(self.parked_queue).add(TAG_ROLE, "parked")
            suppress(self.parked_queue, ("AwsSolutions-SQS3",
                "The parked queue is the end of the dead-letter path: nothing consumes it (soorma dlq replay moves "
                "its messages back to the agent's queue), so no message can fail there and need a dead-letter queue."))
            cdk.Tags.of(self.dead_letter_queue).add(TAG_PARKED, self.parked_queue.queue_url)
            cdk.Tags.of(self.dead_letter_queue).add(TAG_MAX_DELIVERIES, str(max_receive_count))
            resting = self.parked_queue
            self.age_alarm = cloudwatch.Alarm(
                self, "DlqAge",
                alarm_description=f"A dead letter of {self.node.path} waits unparked: the dead-letter function is "
                                  "failing, so its goal is not told",
                metric=self.dead_letter_queue.metric_approximate_age_of_oldest_message(
                    period=cdk.Duration.minutes(5), statistic="Maximum"),
                threshold=dlq_age_alarm.to_seconds(), evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
            if alarm_topic is not None:
                self.age_alarm.add_alarm_action(cw_actions.SnsAction(alarm_topic))
        self.alarm = cloudwatch.Alarm(
            self, "DlqDepth",
            alarm_description=f"Dead letters of {self.node.path}: events that failed every delivery",
            metric=resting.metric_approximate_number_of_messages_visible(
                period=cdk.Duration.minutes(5), statistic="Maximum"
            ),
            threshold=1, evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        if alarm_topic is not None:
            self.alarm.add_alarm_action(cw_actions.SnsAction(alarm_topic))

    def tag_owner(self, platform_tenant_id: str, agent: str, notice_queue: sqs.IQueue) -> None:
        """Tag the dead-letter and parked queues with their agent, and where goal notices go (the tracker's queue)."""
        for queue in (self.dead_letter_queue, self.parked_queue):
            if queue is not None:
                cdk.Tags.of(queue).add(TAG_TENANT, platform_tenant_id)
                cdk.Tags.of(queue).add(TAG_AGENT, agent)
        cdk.Tags.of(self.dead_letter_queue).add(TAG_NOTICES, notice_queue.queue_url)
        # No source-queue tag here: source -> dead-letter queue -> parked queue already, so it would be a cycle. The
        # dead-letter function finds the source with ListDeadLetterSourceQueues and writes it on each parked message.


class SoormaPlatform(Construct):
    """The Soorma platform. Keyword options:

    ``transport`` ``"sqs"`` (default) or ``"nats"``; ``network`` ``"ipv6"`` (default) or ``"endpoints"`` (how the
    functions reach AWS APIs, see the module docstring; ``"endpoints"`` adds about $14.60 a month per endpoint in two
    zones, ``bench/cost.py`` prints it); ``platform_tenant_id`` the tenant of the bootstrap developer key
    and of agents deployed with :class:`~soorma.infra.SoormaAgent` (default ``"default"``);
    ``availability_zones`` (default: the stack's first two); ``nat_gateways`` (default 0 for sqs, 1 for nats);
    ``engine_version`` (an ``rds.AuroraPostgresEngineVersion``, default 17.9); ``min_capacity`` (ACU, default 0),
    ``max_capacity`` (default 4), ``auto_pause`` (a Duration, default 5 minutes); ``deletion_protection`` (default
    True) and ``removal_policy`` of the database (default SNAPSHOT); ``reserved_concurrency`` (a dict per function,
    or None for none); ``nats_secret`` (an ``ISecret`` holding ``{"url": ...}``; default: a secret created for you
    to fill in); ``alarm_email``; ``authorizer_cache_ttl`` (seconds the HTTP API caches an authorizer answer keyed on
    ``Authorization``, default 300; 0 turns caching off, and only then is ``X-API-Key`` accepted too);
    ``log_retention`` (default one month); ``throttle_rate``/``throttle_burst`` of the API stage.

    Cold starts: ``snap_start`` (default False; context ``soorma:snap-start``) publishes the HTTP functions
    (:data:`~soorma.infra.packaging.SNAP_START_FUNCTIONS`: registry, memory, gateway, protocols, identity) with Lambda SnapStart: each
    deploy publishes a version, Lambda runs its init (secrets read, FastAPI imported, the app built: see
    ``soorma.infra.runtime.boot.prepare_snapshot``) and snapshots it, and the HTTP API invokes the alias ``live`` of
    that version, so a new execution environment resumes from the snapshot instead of importing FastAPI. Off by
    default because SnapStart for Python is billed while the version exists (snapshot caching per GB-second, plus
    each restore: https://aws.amazon.com/lambda/pricing/), and the platform costs nothing while idle without it.

    Traces: ``tracing`` (default ``"platform"``; context ``soorma:tracing``): the spans go to the platform's own
    table (``GET /v1/goals/{id}/trace``); ``"xray"`` also sends the agent functions' spans to AWS X-Ray's OTLP
    endpoint (``SOORMA_TRACES_EXPORT=xray``, ``xray:PutSpans``), which needs CloudWatch Transaction Search enabled on
    the account (docs/observability.md). Neither bills while idle.

    Embeddings: ``embedding_provider`` ``"bedrock"`` (default: Amazon Titan Text Embeddings v2, ``bedrock_model``,
    through a VPC endpoint; no model layer) or ``"local"`` (the packaged all-MiniLM-L6-v2 and its layer);
    ``embedding_dimensions`` (default 1024 for bedrock, one of 256/512/1024; 384 for local) sizes the vector columns
    the migrations create and must not change once memories are stored.

    Identity: ``platform_admin_tenant`` (default ``"platform"``): the platform-operator tenant whose bootstrap admin
    key the registrar issues; ``jwt_secret`` (an ``ISecret`` holding the HS256 secret, or ``"generate"`` for a new
    one), ``jwt_jwks_url`` / ``jwt_issuer`` / ``jwt_audience`` for RS256 tokens of an OIDC issuer (Cognito, ...);
    ``jwt_audience`` is required whenever JWTs are enabled (``ValueError`` otherwise); with
    a JWKS URL the authorizer needs outbound internet, so the stack gets egress subnets and a NAT gateway.
    ``settings``: ``SOORMA_RATE_*``, ``SOORMA_A2A_*`` and non-secret ``SOORMA_JWT_*`` variables, passed to the
    functions that read them (:data:`SETTING_PREFIXES`).
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        transport: Transport = "sqs",
        network: Network = "ipv6",
        platform_tenant_id: str = "default",
        availability_zones: Sequence[str] | None = None,
        nat_gateways: int | None = None,
        engine_version: rds.AuroraPostgresEngineVersion | None = None,
        min_capacity: float = 0,
        max_capacity: float = 4,
        auto_pause: cdk.Duration | None = None,
        deletion_protection: bool = True,
        removal_policy: cdk.RemovalPolicy = cdk.RemovalPolicy.SNAPSHOT,
        reserved_concurrency: dict[str, int] | None | Literal["default"] = "default",
        nats_secret: secretsmanager.ISecret | None = None,
        alarm_email: str | None = None,
        authorizer_cache_ttl: int = 300,
        log_retention: logs.RetentionDays = logs.RetentionDays.ONE_MONTH,
        throttle_rate: int = 100,
        throttle_burst: int = 200,
        embedding_provider: str = packaging.DEFAULT_EMBEDDING_PROVIDER,
        embedding_dimensions: int | None = None,
        bedrock_model: str = packaging.BEDROCK_EMBEDDING_MODEL,
        platform_admin_tenant: str = "platform",
        jwt_secret: secretsmanager.ISecret | Literal["generate"] | None = None,
        jwt_jwks_url: str | None = None,
        jwt_issuer: str | None = None,
        jwt_audience: str | Sequence[str] | None = None,
        settings: dict[str, Any] | None = None,
        rotate_owner_secret: bool = True,
        deploy_nonce: str | None = None,
        snap_start: bool = False,
        tracing: Tracing = "platform",
    ) -> None:
        super().__init__(scope, id)
        if tracing not in TRACING_MODES:
            raise ValueError(f"tracing must be one of {', '.join(TRACING_MODES)}, not {tracing!r}")
        self.tracing: Tracing = tracing
        if transport not in ("sqs", "nats"):
            raise ValueError(f"transport must be 'sqs' or 'nats', not {transport!r}")
        self.transport: Transport = transport
        if network not in NETWORKS:
            raise ValueError(f"network must be one of {', '.join(NETWORKS)}, not {network!r}")
        self.network: Network = network
        ipv6 = network == "ipv6"
        self.platform_tenant_id = platform_tenant_id
        self.platform_admin_tenant = platform_admin_tenant
        if embedding_provider not in packaging.EMBEDDING_PROVIDERS:
            raise ValueError(f"embedding_provider must be one of {', '.join(packaging.EMBEDDING_PROVIDERS)}, "
                             f"not {embedding_provider!r}")
        provider = packaging.EMBEDDING_PROVIDERS[embedding_provider]
        self.embedding_provider = embedding_provider
        self.embedding_dimensions = int(embedding_dimensions or provider["dimensions"])
        if self.embedding_dimensions not in provider["allowed_dimensions"]:
            raise ValueError(f"embedding_dimensions for {embedding_provider} must be one of "
                             f"{provider['allowed_dimensions']}, not {self.embedding_dimensions}")
        self.packages = packaging.platform_packages(embedding_provider, transport)
        function_settings = split_settings(settings)
        self.function_settings = function_settings
        jwt_env: dict[str, str] = {}
        for name, value in (("SOORMA_JWT_JWKS_URL", jwt_jwks_url), ("SOORMA_JWT_ISSUER", jwt_issuer),
                            ("SOORMA_JWT_AUDIENCE", jwt_audience)):
            if value:
                jwt_env[name] = value if isinstance(value, str) else ",".join(value)
        function_settings.setdefault("authorizer", {}).update(jwt_env)
        authorizer_env = function_settings["authorizer"]
        if (jwt_secret is not None or JWT_JWKS_URL.get(authorizer_env)) and not JWT_AUDIENCE.get(authorizer_env):
            # The authorizer refuses to verify tokens without an audience (soorma.functions.gateway.tokens): fail at
            # synth rather than with 500s after the deploy.
            raise ValueError("JWTs are enabled (jwt_secret / jwt_jwks_url) but jwt_audience is not set: name the "
                             "audience (app client id) your tokens are issued for")
        function_settings.setdefault("protocols", {}).setdefault("SOORMA_A2A_CARD_TENANT", platform_tenant_id)
        jwks = bool(JWT_JWKS_URL.get(authorizer_env))
        self.log_retention = log_retention
        self.reserved_concurrency = (
            dict(DEFAULT_RESERVED_CONCURRENCY) if reserved_concurrency == "default" else reserved_concurrency
        )
        stack = cdk.Stack.of(self)

        # ---------------------------------------------------------------------------------------------- keys, alarms
        self.key = kms.Key(
            self, "Key", enable_key_rotation=True,
            description="Soorma: database storage, secrets and the event topic",
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )
        self.alarm_topic = sns.Topic(self, "Alarms", master_key=self.key, enforce_ssl=True,
                                     display_name="Soorma alarms")
        self.key.add_to_resource_policy(iam.PolicyStatement(
            sid="CloudWatchAlarmsPublish",
            principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
            actions=["kms:Decrypt", "kms:GenerateDataKey*"], resources=["*"],
            conditions={"StringEquals": {"aws:SourceAccount": stack.account}},
        ))
        if alarm_email:
            self.alarm_topic.add_subscription(subscriptions.EmailSubscription(alarm_email))

        # ---------------------------------------------------------------------------------------------- network
        azs = list(availability_zones or stack.availability_zones[:2])
        nats = transport == "nats"
        # Parts that reach outside AWS: the gateway and the bridge (the NATS server), the authorizer (a JWKS URL).
        needs_egress = nats or jwks
        nat_count = (1 if needs_egress else 0) if nat_gateways is None else nat_gateways
        if needs_egress and not nat_count:
            raise ValueError("transport='nats' and jwt_jwks_url need outbound internet: nat_gateways must be >= 1")
        subnet_config = [ec2.SubnetConfiguration(name="isolated", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED,
                                                 cidr_mask=22)]
        if nat_count:
            subnet_config += [
                ec2.SubnetConfiguration(name="public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=24,
                                        map_public_ip_on_launch=False),
                ec2.SubnetConfiguration(name="egress", subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS, cidr_mask=22),
            ]
        flow_log_group = logs.LogGroup(self, "FlowLogs", retention=log_retention,
                                       removal_policy=cdk.RemovalPolicy.DESTROY)
        self.vpc = ec2.Vpc(
            self, "Vpc",
            ip_addresses=ec2.IpAddresses.cidr("10.40.0.0/16"),
            ip_protocol=ec2.IpProtocol.DUAL_STACK if ipv6 else ec2.IpProtocol.IPV4_ONLY,
            availability_zones=azs,
            nat_gateways=nat_count,
            subnet_configuration=subnet_config,
            restrict_default_security_group=False,
            flow_logs={"all": ec2.FlowLogOptions(
                destination=ec2.FlowLogDestination.to_cloud_watch_logs(flow_log_group),
                traffic_type=ec2.FlowLogTrafficType.ALL,
            )},
            gateway_endpoints={"S3": ec2.GatewayVpcEndpointOptions(service=ec2.GatewayVpcEndpointAwsService.S3)},
        )
        # The zone names given above only name things at synth; the subnets take the region's first zones at deploy
        # (Fn::GetAZs), so the template is not tied to zone names that may not exist in an account.
        for group in (self.vpc.isolated_subnets, self.vpc.public_subnets, self.vpc.private_subnets):
            for index, subnet in enumerate(group):
                subnet.node.default_child.add_property_override(
                    "AvailabilityZone", cdk.Fn.select(index, cdk.Fn.get_azs()))
        if ipv6:
            # CDK creates the egress-only internet gateway of a dual-stack VPC but routes only subnets with egress
            # to it; the functions' subnets get their IPv6 default route here. Outbound only: nothing on the
            # internet can open a connection to an address behind an egress-only gateway.
            # https://docs.aws.amazon.com/vpc/latest/userguide/egress-only-internet-gateway.html
            eigw = self.vpc.node.find_child("EIGW6")
            for subnet in self.vpc.isolated_subnets:
                subnet.add_route("Ipv6Egress", router_id=eigw.ref,  # type: ignore[attr-defined]
                                 router_type=ec2.RouterType.EGRESS_ONLY_INTERNET_GATEWAY,
                                 destination_ipv6_cidr_block="::/0")
        self.isolated = ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED)
        self.egress = (ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS) if nat_count
                       else self.isolated)
        self.functions_sg = ec2.SecurityGroup(
            self, "FunctionsSg", vpc=self.vpc, allow_all_outbound=False,
            description=("Soorma platform functions: the database, and AWS APIs over IPv6" if ipv6 else
                         "Soorma platform functions: the database and the VPC endpoints only"),
        )
        self.endpoints: dict[str, ec2.InterfaceVpcEndpoint] = {}
        self.endpoints_sg: ec2.SecurityGroup | None = None
        if ipv6:
            # HTTPS to any IPv6 address: the dual-stack endpoints' addresses are not published as a prefix list for
            # every service. The functions' roles still allow only their own resources, and nothing can reach the
            # functions from outside.
            self.functions_sg.add_egress_rule(ec2.Peer.any_ipv6(), ec2.Port.tcp(443),
                                              "AWS APIs at their dual-stack endpoints, over IPv6")
        else:
            self.endpoints_sg = ec2.SecurityGroup(
                self, "EndpointsSg", vpc=self.vpc, allow_all_outbound=False,
                description="Soorma VPC interface endpoints: HTTPS from the platform functions",
            )
            self.endpoints_sg.add_ingress_rule(self.functions_sg, ec2.Port.tcp(443), "functions to AWS APIs")
            self.functions_sg.add_egress_rule(self.endpoints_sg, ec2.Port.tcp(443), "AWS APIs through endpoints")
            endpoint_services = {"SecretsManager": ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER}
            if transport == "sqs":
                endpoint_services["Sns"] = ec2.InterfaceVpcEndpointAwsService.SNS
            # the webhooks' wake-ups (soorma.infra.webhooks)
            endpoint_services["Sqs"] = ec2.InterfaceVpcEndpointAwsService.SQS
            if embedding_provider == "bedrock":
                endpoint_services["BedrockRuntime"] = ec2.InterfaceVpcEndpointAwsService.BEDROCK_RUNTIME
            for name, service in endpoint_services.items():
                self.endpoints[name] = self.vpc.add_interface_endpoint(
                    name, service=service, subnets=self.isolated, security_groups=[self.endpoints_sg],
                    private_dns_enabled=True, open=False,
                )
        self.egress_sg: ec2.SecurityGroup | None = None
        if needs_egress:
            self.egress_sg = ec2.SecurityGroup(
                self, "EgressSg", vpc=self.vpc, allow_all_outbound=True,
                description="Soorma parts that reach outside AWS (NATS server, JWKS URL): outbound through NAT",
            )
            if self.endpoints_sg is not None:
                self.endpoints_sg.add_ingress_rule(self.egress_sg, ec2.Port.tcp(443), "egress parts to AWS APIs")

        # ---------------------------------------------------------------------------------------------- database
        version = engine_version or rds.AuroraPostgresEngineVersion.VER_17_9
        self.db_sg = ec2.SecurityGroup(self, "DatabaseSg", vpc=self.vpc, allow_all_outbound=False,
                                       description="Soorma Aurora cluster: PostgreSQL from the platform only")
        # The cluster's PostgreSQL log group, created here with its retention (instead of CDK's LogRetention
        # function), so its name needs a known cluster identifier.
        cluster_id = re.sub(r"[^a-z0-9-]", "-", f"{stack.stack_name}-soorma".lower()).strip("-")[:60]
        if not cluster_id[:1].isalpha():
            cluster_id = "s" + cluster_id[:59]
        db_logs = logs.LogGroup(self, "DatabaseLogs", log_group_name=f"/aws/rds/cluster/{cluster_id}/postgresql",
                                retention=log_retention, removal_policy=cdk.RemovalPolicy.DESTROY)
        self.cluster = rds.DatabaseCluster(
            self, "Database",
            engine=rds.DatabaseClusterEngine.aurora_postgres(version=version),
            writer=rds.ClusterInstance.serverless_v2("writer", publicly_accessible=False,
                                                     auto_minor_version_upgrade=True),
            serverless_v2_min_capacity=min_capacity,
            serverless_v2_max_capacity=max_capacity,
            serverless_v2_auto_pause_duration=auto_pause or cdk.Duration.minutes(5),
            vpc=self.vpc, vpc_subnets=self.isolated, security_groups=[self.db_sg],
            default_database_name=DB_NAME,
            # With IPv6 egress RDS manages the owner password (see below); the placeholder is removed from the
            # template there, so no password is ever in it.
            credentials=(rds.Credentials.from_password(OWNER_USER, cdk.SecretValue.unsafe_plain_text("managed"))
                         if ipv6 else rds.Credentials.from_generated_secret(
                             OWNER_USER, encryption_key=self.key, exclude_characters=PASSWORD_EXCLUDE)),
            storage_encrypted=True, storage_encryption_key=self.key,
            iam_authentication=True,
            deletion_protection=deletion_protection,
            removal_policy=removal_policy,
            backup=rds.BackupProps(retention=cdk.Duration.days(7)),
            cluster_identifier=cluster_id,
            cloudwatch_logs_exports=["postgresql"],
            parameter_group=rds.ParameterGroup(
                self, "DbParams", engine=rds.DatabaseClusterEngine.aurora_postgres(version=version),
                parameters={"rds.force_ssl": "1", "log_min_duration_statement": "1000"},
            ),
        )
        self.owner_secret: secretsmanager.ISecret
        if ipv6:
            # The owner password managed by RDS in Secrets Manager, rotated by RDS (every 7 days) without a
            # rotation function: the hosted rotation function would sit in these subnets and reach Secrets Manager
            # over IPv4 only. https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/rds-secrets-manager.html
            db = self.cluster.node.default_child
            db.add_property_deletion_override("MasterUserPassword")  # type: ignore[union-attr]
            db.manage_master_user_password = True  # type: ignore[union-attr]
            db.master_user_secret = rds.CfnDBCluster.MasterUserSecretProperty(  # type: ignore[union-attr]
                kms_key_id=self.key.key_arn)
            self.owner_secret = secretsmanager.Secret.from_secret_attributes(
                self, "OwnerSecret", secret_complete_arn=db.attr_master_user_secret_secret_arn,  # type: ignore
                encryption_key=self.key)
        else:
            assert self.cluster.secret is not None
            self.owner_secret = self.cluster.secret
        app_secret = rds.DatabaseSecret(
            self, "AppSecret", username=APP_USER, encryption_key=self.key, exclude_characters=PASSWORD_EXCLUDE,
        )
        self.app_secret = app_secret.attach(self.cluster)
        if rotate_owner_secret and not ipv6:
            self.cluster.add_rotation_single_user(
                automatically_after=cdk.Duration.days(30), exclude_characters=PASSWORD_EXCLUDE,
                vpc_subnets=self.isolated, security_group=self.functions_sg,
            )
        self.pepper_secret = secretsmanager.Secret(
            self, "ApiKeyPepper", encryption_key=self.key,
            description="Soorma: HMAC pepper of API key hashes (rotating it invalidates every key)",
            generate_secret_string=secretsmanager.SecretStringGenerator(password_length=48, exclude_punctuation=True),
        )
        self.bootstrap_key_secret = secretsmanager.Secret(
            self, "DeveloperKey", encryption_key=self.key,
            description=f"Soorma: the first developer API key of platform tenant {platform_tenant_id}",
            generate_secret_string=secretsmanager.SecretStringGenerator(exclude_punctuation=True),
        )
        # The bootstrap platform-admin key: generated placeholder at create, replaced by the registrar with a key it
        # issues (so no key is ever in the template).
        self.admin_key_secret = secretsmanager.Secret(
            self, "AdminKey", encryption_key=self.key,
            description=f"Soorma: the bootstrap platform-admin API key (tenant {platform_admin_tenant}): onboards "
                        "tenants with POST /v1/tenants",
            generate_secret_string=secretsmanager.SecretStringGenerator(exclude_punctuation=True),
        )
        self.jwt_secret: secretsmanager.ISecret | None = None
        if jwt_secret == "generate":
            self.jwt_secret = secretsmanager.Secret(
                self, "JwtSecret", encryption_key=self.key,
                description="Soorma: the HS256 secret the authorizer verifies JWTs with (share it with the issuer)",
                generate_secret_string=secretsmanager.SecretStringGenerator(password_length=64,
                                                                            exclude_punctuation=True),
            )
            suppress(self.jwt_secret, ("AwsSolutions-SMG4",
                "The HS256 secret is shared with the token issuer outside AWS; rotating it here alone would refuse "
                "every token, so it is rotated together with the issuer."))
        elif jwt_secret is not None:
            self.jwt_secret = jwt_secret
        suppress(self.pepper_secret, ("AwsSolutions-SMG4",
            "The pepper keys every stored API key hash; rotating it would invalidate all issued keys at once."))
        for secret in (self.bootstrap_key_secret, self.admin_key_secret):
            suppress(secret, ("AwsSolutions-SMG4",
                "Holds an API key issued by the platform; keys are revoked and reissued through the platform, not by "
                "Secrets Manager rotation."))
        suppress(app_secret, ("AwsSolutions-SMG4",
            "soorma_app's password is read by the functions at cold start; single-user rotation would break the "
            "connections of warm functions. Rotate by putting a new value in the secret and running the migrator "
            "(a deploy does): it sets the role's password from the secret on every run (README, database passwords)."))
        suppress(self.cluster,
            ("AwsSolutions-RDS11", "The default PostgreSQL port is kept: the cluster is reachable only from the "
             "platform's security groups in isolated subnets, so a non-standard port adds no protection."),
            ("AwsSolutions-RDS10", "Deletion protection is a construct option (deletion_protection), on by default; "
             "test and demo stacks turn it off."),
        )
        self.cluster.node.add_dependency(db_logs)
        self.nats_secret: secretsmanager.ISecret | None = None
        if nats:
            self.nats_secret = nats_secret or secretsmanager.Secret(
                self, "NatsSecret", encryption_key=self.key,
                description='Soorma: {"url": "nats://user:password@host:4222"} of the NATS server with JetStream',
                generate_secret_string=secretsmanager.SecretStringGenerator(
                    secret_string_template=json.dumps({"url": "nats://set-me:4222"}), generate_string_key="token",
                ),
            )
            if nats_secret is None:
                suppress(self.nats_secret, ("AwsSolutions-SMG4",
                    "Holds the NATS server's URL and credentials, issued by the NATS operator; rotation happens "
                    "there and is written here."))

        # ---------------------------------------------------------------------------------------------- layers, code
        self.code = bundling.platform_code()
        # AWS's Parameters and Secrets Lambda Extension: soorma.infra.runtime.boot reads the functions' secrets from
        # it over localhost at init, without importing boto3 (most of a secret read's cold-start cost).
        self.secrets_extension = lambda_.ParamsAndSecretsLayerVersion.from_version(
            lambda_.ParamsAndSecretsVersions.V1_0_103, cache_enabled=True, http_port=SECRETS_EXTENSION_PORT,
            log_level=lambda_.ParamsAndSecretsLogLevel.WARN)
        self.layers: dict[str, lambda_.LayerVersion] = {}  # created on first use: only the layers some function needs
        self.sdk_layer = self.layer("sdk")

        # ---------------------------------------------------------------------------------------------- functions
        self.functions: dict[str, lambda_.Function] = {}
        # What the HTTP API invokes per function: the function itself, or under snap_start its alias "live".
        self.entrypoints: dict[str, lambda_.IFunction] = {}
        db_secrets = [self.app_secret]
        dims = str(self.embedding_dimensions)
        if embedding_provider == "bedrock":
            memory_env = {"SOORMA_EMBEDDING_PROVIDER": "bedrock", "SOORMA_EMBEDDING_DIMENSIONS": dims,
                          "SOORMA_BEDROCK_EMBEDDING_MODEL": bedrock_model}
        else:
            memory_env = {"SOORMA_EMBEDDING_PROVIDER": "local", "SOORMA_EMBEDDING_TOKENIZER_PATH": TOKENIZER_PATH,
                          "SOORMA_EMBEDDING_DIMENSIONS": dims, "HF_HUB_OFFLINE": "1"}
        pepper = [self.pepper_secret]
        jwt = [self.jwt_secret] if self.jwt_secret is not None else []
        # Every HTTP function reads the pepper: the delivery grants with which an agent acts for an event's user are
        # signed with a key derived from it (soorma.grants), minted by the gateway and checked by every function.
        specs = {
            "registry": dict(memory=512, timeout=29, secrets=[*db_secrets, *pepper]),
            "memory": dict(memory=2048 if embedding_provider == "local" else 1024, timeout=29,
                           secrets=[*db_secrets, *pepper], env=memory_env),
            # API key create/rotate (POST /v1/api-keys, /v1/tenants) hash the new key with the pepper.
            "gateway": dict(memory=512, timeout=29, secrets=[*db_secrets, *pepper], egress=nats),
            # A2A, MCP and the chat API submit goals as the gateway does (the same publisher and grants)
            "protocols": dict(memory=512, timeout=29, secrets=[*db_secrets, *pepper], egress=nats),
            # The identity service hashes the API keys it issues and encrypts its signing keys with the pepper; it
            # publishes nothing, so it stays in the isolated subnets.
            "identity": dict(memory=512, timeout=29, secrets=[*db_secrets, *pepper]),
            "authorizer": dict(memory=512, timeout=10, secrets=[*db_secrets, *pepper, *jwt], egress=jwks),
            # The tracker publishes too: a session's next queued goal when the running one ends (double-texting
            # 'enqueue', soorma.functions.shared.sessions), so on NATS it needs the NATS server like the gateway.
            "tracker": dict(memory=512, timeout=60, secrets=[*db_secrets, *pepper], egress=nats),
            "migrate": dict(memory=512, timeout=300, secrets=[self.owner_secret, self.app_secret],
                            env={"SOORMA_EMBEDDING_DIMENSIONS": dims,
                                 # the RDS-managed owner secret names no host (soorma.infra.runtime.boot)
                                 "SOORMA_DB_HOST": self.cluster.cluster_endpoint.hostname,
                                 "SOORMA_DB_PORT": cdk.Token.as_string(self.cluster.cluster_endpoint.port)}),
            "registrar": dict(memory=512, timeout=120, secrets=[*db_secrets, *pepper]),
        }
        for name, spec in specs.items():
            package = self.packages[name]
            snapped = snap_start and name in packaging.SNAP_START_FUNCTIONS
            env = {"SOORMA_PLATFORM_ADMIN_TENANT": platform_admin_tenant, **function_settings.get(name, {}),
                   **spec.get("env", {})}
            self.functions[name] = self._function(
                name, handler=package.handler, layers=package.layers,
                memory=spec["memory"], timeout=spec["timeout"], secrets=spec["secrets"], env=env,
                egress=spec.get("egress", False), snap_start=snapped,
            )
            self.entrypoints[name] = (self._live_alias(name, self.functions[name]) if snapped
                                      else self.functions[name])
        self.bootstrap_key_secret.grant_write(self.functions["registrar"])
        self.admin_key_secret.grant_write(self.functions["registrar"])
        if embedding_provider == "bedrock":
            self._allow_bedrock(bedrock_model)
        self._allow_llm_gateway()
        self.allow_db()

        # ---------------------------------------------------------------------------------------------- migrations
        provider_logs = logs.LogGroup(self, "ProviderLogs", retention=log_retention,
                                      removal_policy=cdk.RemovalPolicy.DESTROY)
        self.migrations_provider = cr.Provider(self, "MigrationsProvider",
                                               on_event_handler=self.functions["migrate"], log_group=provider_logs)
        self.migrations = cdk.CustomResource(
            self, "Migrations", service_token=self.migrations_provider.service_token,
            resource_type="Custom::SoormaMigrations",
            properties={
                "Migrations": migrations_fingerprint(),
                # A new value on every synth, so every deploy runs the migrator (it applies only what is pending).
                "DeployNonce": deploy_nonce or str(int(time.time())),
            },
        )
        self.migrations.node.add_dependency(self.cluster)
        self.migrations.node.add_dependency(self.app_secret)
        self.registrar_provider = cr.Provider(self, "RegistrarProvider",
                                              on_event_handler=self.functions["registrar"], log_group=provider_logs)
        bootstrap = cdk.CustomResource(
            self, "BootstrapKey", service_token=self.registrar_provider.service_token,
            resource_type="Custom::SoormaBootstrapKey",
            # Revision: a new value makes CloudFormation send an Update, so existing stacks onboard the tenant row.
            properties={"PlatformTenantId": platform_tenant_id, "SecretArn": self.bootstrap_key_secret.secret_arn,
                        "Revision": "2"},
        )
        bootstrap.node.add_dependency(self.migrations)
        admin = cdk.CustomResource(
            self, "PlatformAdmin", service_token=self.registrar_provider.service_token,
            resource_type="Custom::SoormaPlatformAdmin",
            properties={"AdminTenantId": platform_admin_tenant, "SecretArn": self.admin_key_secret.secret_arn},
        )
        admin.node.add_dependency(self.migrations)
        for provider in (self.migrations_provider, self.registrar_provider):
            suppress(provider,
                ("AwsSolutions-IAM4", "The CDK provider framework's function uses AWSLambdaBasicExecutionRole to "
                 "write its logs.", ["Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
                                     "AWSLambdaBasicExecutionRole"]),
                ("AwsSolutions-IAM5", "The provider framework may invoke every version of the on-event function "
                 "(a function ARN with :*).", [r"/^Resource::<.*Function[0-9A-F]{8}\.Arn>:\*$/"]),
                ("AwsSolutions-L1", "The provider framework's runtime is chosen by the CDK release, pinned "
                 "with aws-cdk-lib."),
            )

        # ---------------------------------------------------------------------------------------------- HTTP API
        self._api(authorizer_cache_ttl, throttle_rate, throttle_burst)
        # ---------------------------------------------------------------------------------------------- goal streams
        # Only where the functions can reach the API's dual-stack @connections endpoint (soorma.infra.streams).
        self.stream_stage: apigw.WebSocketStage | None = None
        if ipv6:
            from soorma.infra.streams import add_goal_streams

            self.stream_stage = add_goal_streams(self, rate=throttle_rate, burst=throttle_burst)

        # ---------------------------------------------------------------------------------------------- webhooks
        self.webhook_sender: lambda_.Function | None = None
        add_webhooks(self)
        # ---------------------------------------------------------------------------------------------- usage
        # The agent functions' GB-seconds per goal, from their log groups (soorma.infra.usage)
        from soorma.infra.usage import UsageRecorder

        self.usage_recorder = UsageRecorder(self)
        # ---------------------------------------------------------------------------------------------- timers
        from soorma.infra.timers import add_timer_scheduling

        self.timer_schedule_group = add_timer_scheduling(self, self.functions["gateway"], self.functions["tracker"])

        # ---------------------------------------------------------------------------------------------- events
        self.event_topic: sns.Topic | None = None
        self.bridge_service: ecs.FargateService | None = None
        self.bridge_role: iam.IRole | None = None
        if transport == "sqs":
            self._sqs_transport()
        else:
            self._nats_transport()

        cdk.CfnOutput(self, "ApiUrl", value=self.api.api_endpoint, description="SOORMA_API_URL")
        cdk.CfnOutput(self, "DeveloperKeySecret", value=self.bootstrap_key_secret.secret_arn,
                      description="Secrets Manager secret with the first developer API key ({\"api_key\": ...})")
        cdk.CfnOutput(self, "AdminKeySecret", value=self.admin_key_secret.secret_arn,
                      description="Secrets Manager secret with the bootstrap platform-admin API key "
                                  "({\"api_key\": ...}): onboards tenants")
        if self.jwt_secret is not None:
            cdk.CfnOutput(self, "JwtSecretArn", value=self.jwt_secret.secret_arn,
                          description="Secrets Manager secret with the HS256 JWT secret")
        cdk.CfnOutput(self, "EmbeddingProvider", value=f"{embedding_provider}:{self.embedding_dimensions}")
        cdk.CfnOutput(self, "Transport", value=transport)

    # -------------------------------------------------------------------------------------------------- helpers

    def _log_group(self, name: str) -> logs.LogGroup:
        return logs.LogGroup(self, f"{name.capitalize()}Logs", retention=self.log_retention,
                             removal_policy=cdk.RemovalPolicy.DESTROY)

    def layer(self, name: str) -> lambda_.LayerVersion:
        """The layer ``name`` of ``layers/`` (created, and so bundled, only when some function uses it)."""
        if name not in self.layers:
            self.layers[name] = lambda_.LayerVersion(
                self, f"{name.capitalize()}Layer", code=bundling.layer_code(name),
                compatible_runtimes=[bundling.LAMBDA_RUNTIME],
                compatible_architectures=[lambda_.Architecture.ARM_64],
                description=f"Soorma {name}: {packaging.LAYERS[name].description}",
            )
        return self.layers[name]

    def _allow_bedrock(self, model: str) -> None:
        """The memory function may invoke the one embedding model, and the Bedrock endpoint serves only that."""
        stack = cdk.Stack.of(self)
        model_arn = stack.format_arn(service="bedrock", account="", resource="foundation-model", resource_name=model,
                                     arn_format=cdk.ArnFormat.SLASH_RESOURCE_NAME)
        statement = dict(actions=["bedrock:InvokeModel"], resources=[model_arn])
        self.functions["memory"].add_to_role_policy(iam.PolicyStatement(**statement))
        if "BedrockRuntime" not in self.endpoints:
            return
        self.endpoints["BedrockRuntime"].add_to_policy(iam.PolicyStatement(
            principals=[iam.AnyPrincipal()], **statement,
            conditions={"StringEquals": {"aws:PrincipalAccount": stack.account}},
        ))

    def _allow_llm_gateway(self) -> None:
        """The LLM gateway (the protocols function, :mod:`soorma.functions.protocols.llm`) holds the tenants' model
        credentials so agent functions hold none: Bedrock's Converse API with its own role (``bedrock:InvokeModel``
        on foundation models and this account's inference profiles: which model a tenant uses is its admin's choice
        at run time), and each tenant's OpenAI-compatible key in the secret ``soorma/llm/<tenant>``, created on the
        first ``PUT /v1/llm/settings`` that sets a key (none exists by default: nothing bills while idle). Only that
        function may create, read, replace or delete those secrets (default ``aws/secretsmanager`` key).
        https://docs.aws.amazon.com/bedrock/latest/userguide/security_iam_id-based-policy-examples.html"""
        stack = cdk.Stack.of(self)
        protocols = self.functions["protocols"]
        models = [stack.format_arn(service="bedrock", account="", region="*", resource="foundation-model",
                                   resource_name="*", arn_format=cdk.ArnFormat.SLASH_RESOURCE_NAME),
                  stack.format_arn(service="bedrock", resource="inference-profile", resource_name="*",
                                   arn_format=cdk.ArnFormat.SLASH_RESOURCE_NAME)]
        protocols.add_to_role_policy(iam.PolicyStatement(actions=["bedrock:InvokeModel"], resources=models))
        if "BedrockRuntime" in self.endpoints:
            self.endpoints["BedrockRuntime"].add_to_policy(iam.PolicyStatement(
                principals=[iam.AnyPrincipal()], actions=["bedrock:InvokeModel"], resources=models,
                conditions={"StringEquals": {"aws:PrincipalAccount": stack.account}},
            ))
        secrets = stack.format_arn(service="secretsmanager", resource="secret", resource_name="soorma/llm/*",
                                   arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME)
        protocols.add_to_role_policy(iam.PolicyStatement(
            actions=["secretsmanager:CreateSecret", "secretsmanager:PutSecretValue", "secretsmanager:GetSecretValue",
                     "secretsmanager:DeleteSecret", "secretsmanager:TagResource"],
            resources=[secrets]))
        suppress(protocols, ("AwsSolutions-IAM5", "The LLM gateway calls the model each tenant's admin chose at run "
                             "time (any foundation model or inference profile, bedrock:InvokeModel only), and keeps "
                             "each tenant's provider key in its own secret under soorma/llm/, created on demand "
                             "(names unknown at deploy time).",
                             ["/^Resource::arn:<AWS::Partition>:bedrock:\\*::foundation-model\\/\\*$/",
                              "/^Resource::arn:<AWS::Partition>:bedrock:[^:]+:[^:]+:inference-profile\\/\\*$/",
                              "/^Resource::arn:<AWS::Partition>:secretsmanager:[^:]+:[^:]+:secret:soorma\\/llm\\/"
                              "\\*$/"]))

    def _function(self, name: str, *, handler: str, layers: list[str], memory: int, timeout: int,
                  secrets: list[secretsmanager.ISecret], env: dict[str, str] | None = None,
                  egress: bool = False, snap_start: bool = False) -> lambda_.Function:
        environment = {
            "SOORMA_HANDLER": handler,
            "SOORMA_DB_NAME": DB_NAME,
            "POWERTOOLS_SERVICE_NAME": f"soorma-{name}",
            "POWERTOOLS_LOG_LEVEL": "INFO",
            "POWERTOOLS_METRICS_NAMESPACE": "Soorma",
            "SOORMA_TRANSPORT": self.transport,
        }
        if self.network == "ipv6":
            # boto3 then calls the services' dual-stack endpoints (Bedrock's IPv4 name has no IPv6 address; SNS's
            # and Secrets Manager's default names are dual-stack already).
            # https://docs.aws.amazon.com/sdkref/latest/guide/feature-endpoints.html
            environment["AWS_USE_DUALSTACK_ENDPOINT"] = "true"
        arn_vars = {
            id(self.app_secret): "SOORMA_APP_DB_SECRET_ARN",
            id(self.owner_secret): "SOORMA_OWNER_DB_SECRET_ARN",
            id(self.pepper_secret): "SOORMA_API_KEY_PEPPER_SECRET_ARN",
        }
        if self.jwt_secret is not None:
            arn_vars[id(self.jwt_secret)] = "SOORMA_JWT_SECRET_ARN"
        for secret in secrets:
            environment[arn_vars[id(secret)]] = secret.secret_arn
        environment.update(env or {})
        reserved = (self.reserved_concurrency or {}).get(name)
        sgs = [self.egress_sg] if egress and self.egress_sg is not None else [self.functions_sg]
        fn = lambda_.Function(
            self, f"{name.capitalize()}Function",
            description=f"Soorma {name}",
            runtime=bundling.LAMBDA_RUNTIME,
            architecture=lambda_.Architecture.ARM_64,
            code=self.code,
            handler=BOOT_HANDLER,
            layers=[self.layer(n) for n in layers],
            memory_size=memory,
            timeout=cdk.Duration.seconds(timeout),
            environment=environment,
            vpc=self.vpc,
            vpc_subnets=self.egress if egress else self.isolated,
            security_groups=sgs,
            ipv6_allowed_for_dual_stack=self.network == "ipv6",
            log_group=self._log_group(name),
            logging_format=lambda_.LoggingFormat.JSON,
            reserved_concurrent_executions=reserved,
            snap_start=lambda_.SnapStartConf.ON_PUBLISHED_VERSIONS if snap_start else None,
            # Not under SnapStart: its functions get container credentials, which the extension cannot take, and
            # they read their secrets before the snapshot, so the read's cost is not in a cold start anyway.
            params_and_secrets=self.secrets_extension if secrets and not snap_start else None,
        )
        for secret in secrets:
            secret.grant_read(fn)
        suppress(fn,
            ("AwsSolutions-L1", f"Python {packaging.LAMBDA_PYTHON} is the runtime the platform's layers are built "
             f"for (CPython {packaging.LAMBDA_PYTHON} wheels for arm64); moving to a newer runtime means rebuilding "
             "and retesting the layers."),
            ("AwsSolutions-IAM4", "AWSLambdaBasicExecutionRole (logs) and AWSLambdaVPCAccessExecutionRole (network "
             "interfaces in the VPC) are the AWS-managed minimum for a function in a VPC.",
             ["Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
              "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"]),
        )
        return fn

    def _live_alias(self, name: str, fn: lambda_.Function) -> lambda_.Alias:
        """The alias ``live`` of the version of ``fn`` this deploy publishes (``current_version`` changes whenever
        the code or configuration does): SnapStart applies to published versions only, never ``$LATEST``.
        https://docs.aws.amazon.com/lambda/latest/dg/snapstart-activate.html"""
        return lambda_.Alias(self, f"{name.capitalize()}Live", alias_name="live", version=fn.current_version,
                             description=f"Soorma {name}: the SnapStart version the HTTP API invokes")

    def _api(self, cache_ttl: int, rate: int, burst: int) -> None:
        fns = self.functions
        cached = cache_ttl > 0
        # The authorizer's answer depends on the credential alone (soorma.identity.act_for applies the service
        # tenant/user headers in the functions), so Authorization is the whole cache key. Revocation, suspension
        # and expiry are checked by the functions on every request, so caching does not delay them.
        identity_source = ["$request.header.Authorization"] if cached else []
        self.authorizer = authorizers.HttpLambdaAuthorizer(
            "SoormaAuthorizer", fns["authorizer"],
            authorizer_name="soorma-api-key",
            response_types=[authorizers.HttpLambdaResponseType.SIMPLE],
            results_cache_ttl=cdk.Duration.seconds(cache_ttl),
            identity_source=identity_source,
        )
        self.api = apigw.HttpApi(
            self, "Api", api_name=f"{cdk.Stack.of(self).stack_name}-soorma", create_default_stage=False,
            default_authorizer=self.authorizer,
            description="Soorma Serverless API: registry, memory, gateway, protocols, identity and tracker routes",
        )
        access_logs = self._log_group("apiAccess")
        stage = apigw.HttpStage(
            self, "ApiStage", http_api=self.api, stage_name="$default", auto_deploy=True,
            throttle=apigw.ThrottleSettings(rate_limit=rate, burst_limit=burst),
        )
        stage.node.default_child.access_log_settings = apigw.CfnStage.AccessLogSettingsProperty(
            destination_arn=access_logs.log_group_arn,
            format=json.dumps({
                "requestId": "$context.requestId", "ip": "$context.identity.sourceIp",
                "requestTime": "$context.requestTime", "method": "$context.httpMethod",
                "routeKey": "$context.routeKey", "status": "$context.status",
                "responseLength": "$context.responseLength", "latency": "$context.responseLatency",
                "integrationError": "$context.integrationErrorMessage",
                "authorizerError": "$context.authorizer.error",
                "principal": "$context.authorizer.principal_id",
            }),
        )
        self.api_stage = stage
        integration = {name: integrations.HttpLambdaIntegration(f"{name.capitalize()}Integration",
                                                                self.entrypoints[name])
                       for name in HTTP_FUNCTIONS}
        for api_route in ROUTES:
            options: dict[str, Any] = {"authorizer": apigw.HttpNoneAuthorizer()} if api_route.public else {}
            added = self.api.add_routes(path=api_route.path, methods=[apigw.HttpMethod(api_route.method)],
                                        integration=integration[api_route.function], **options)
            if api_route.public:
                for route in added:
                    suppress(route, ("AwsSolutions-APIG4",
                        f"{api_route.path} is public by design (an OpenAPI document or the A2A agent card: discovery documents "
                        "a client reads before it has a key); every other route needs the authorizer."))

    def _sqs_transport(self) -> None:
        self.event_topic = sns.Topic(self, "Events", master_key=self.key, enforce_ssl=True,
                                     display_name="Soorma events")
        for name in PUBLISHERS:
            publisher = self.functions[name]
            # publisher_from_env() picks the SNS publisher (soorma.functions.gateway.publisher).
            publisher.add_environment("SOORMA_EVENT_TRANSPORT", "sns")
            publisher.add_environment("SOORMA_EVENTS_TOPIC_ARN", self.event_topic.topic_arn)
            self.event_topic.grant_publish(publisher)
            suppress(publisher, ("AwsSolutions-IAM5", "Publishing to the KMS-encrypted topic needs "
                                 "kms:GenerateDataKey* on the platform key (granted by the topic, on that key only).",
                                 ["Action::kms:GenerateDataKey*"]))
        tracker = self.functions["tracker"]
        self.tracker_queue = self.subscribe(
            "Tracker", tracker, filter_policy=None, batch_size=50, max_concurrency=2, max_deliveries=10,
        )
        # The agents' dead letters: SQS's redrive policy moves them without running any of our code, so each agent's
        # dead-letter queue feeds this function, which sends the goal notice to the tracker's queue and parks the
        # message (soorma.functions.tracker.dead_letters). Outside the VPC: it needs no database and no secret, and
        # the isolated subnets have no SQS endpoint (one would cost ~$7.30 a month per zone while idle).
        timeout = 30
        self.dead_letter_function = lambda_.Function(
            self, "DeadLettersFunction",
            description="Soorma dead letters (SQS): tell the goal, park the message",
            runtime=bundling.LAMBDA_RUNTIME,
            architecture=lambda_.Architecture.ARM_64,
            code=self.code,
            handler=BOOT_HANDLER,
            layers=[self.sdk_layer],  # pydantic (the notice's envelope); boto3 comes with the runtime
            memory_size=256,
            timeout=cdk.Duration.seconds(timeout),
            environment={
                "SOORMA_HANDLER": "soorma.functions.tracker.dead_letters.handler",
                "POWERTOOLS_SERVICE_NAME": "soorma-dead-letters",
                "POWERTOOLS_LOG_LEVEL": "INFO",
            },
            log_group=self._log_group("deadLetters"),
            logging_format=lambda_.LoggingFormat.JSON,
            reserved_concurrent_executions=(self.reserved_concurrency or {}).get("dead-letters"),
        )
        self.tracker_queue.queue.grant_send_messages(self.dead_letter_function)
        suppress(self.dead_letter_function,
            ("AwsSolutions-L1", f"Python {packaging.LAMBDA_PYTHON} is the runtime the SDK layer is built for "
             f"(CPython {packaging.LAMBDA_PYTHON} wheels for arm64)."),
            ("AwsSolutions-IAM4", "AWSLambdaBasicExecutionRole is the AWS-managed minimum that lets the function "
             "write its own logs.",
             ["Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"]),
        )

    def subscribe(self, id: str, fn: lambda_.Function, *, filter_policy: dict[str, Any] | None, batch_size: int,
                  max_concurrency: int, max_deliveries: int, scope: Construct | None = None,
                  agent: str | None = None) -> QueueWithDlq:
        """A queue (with its dead-letter queue and alarm) subscribed to the event topic with ``filter_policy`` (raw
        SNS filter policy JSON; None = every event), feeding ``fn`` through an event source mapping that reports
        partial batch failures. For an ``agent`` the dead-letter queue also feeds the dead-letter function (an
        event source mapping with partial batch responses; it may read the queue's tags and source queues, send to
        that agent's parked queue and the tracker's queue, nothing else) and gets a parked queue."""
        assert self.event_topic is not None, "subscribe() needs transport='sqs'"
        timeout = fn.timeout.to_seconds() if fn.timeout else 30
        dead_letters = self.dead_letter_function if agent is not None else None
        # Lambda requires a mapped queue's visibility timeout >= the function's timeout; 6x is its guidance.
        dlq_visibility = (cdk.Duration.seconds(6 * dead_letters.timeout.to_seconds())
                          if dead_letters is not None and dead_letters.timeout else None)
        pair = QueueWithDlq(scope or self, f"{id}Queue", visibility_timeout=cdk.Duration.seconds(6 * timeout),
                            max_receive_count=max_deliveries, alarm_topic=self.alarm_topic,
                            parked=dead_letters is not None, dlq_visibility_timeout=dlq_visibility)
        if dead_letters is not None and agent is not None:
            pair.tag_owner(self.platform_tenant_id, agent, self.tracker_queue.queue)
            dead_letters.add_event_source(event_sources.SqsEventSource(
                pair.dead_letter_queue, batch_size=10, report_batch_item_failures=True))
            dead_letters.add_to_role_policy(iam.PolicyStatement(
                actions=["sqs:ListQueueTags", "sqs:ListDeadLetterSourceQueues"],
                resources=[pair.dead_letter_queue.queue_arn]))
            assert pair.parked_queue is not None
            pair.parked_queue.grant_send_messages(dead_letters)
        added = pair.queue.add_to_resource_policy(iam.PolicyStatement(
            actions=["sqs:SendMessage"], principals=[iam.ServicePrincipal("sns.amazonaws.com")],
            resources=[pair.queue.queue_arn],
            conditions={"ArnEquals": {"aws:SourceArn": self.event_topic.topic_arn}},
        ))
        subscription = sns.Subscription(
            scope or self, f"{id}Subscription", topic=self.event_topic, endpoint=pair.queue.queue_arn,
            protocol=sns.SubscriptionProtocol.SQS, raw_message_delivery=True,
        )
        if added.policy_dependable is not None:  # SNS may deliver from the first message on
            subscription.node.add_dependency(added.policy_dependable)
        if filter_policy is not None:
            cfn = subscription.node.default_child
            cfn.add_property_override("FilterPolicy", filter_policy)
            cfn.add_property_override("FilterPolicyScope", "MessageAttributes")
        fn.add_event_source(event_sources.SqsEventSource(
            pair.queue, batch_size=batch_size, max_concurrency=max(2, max_concurrency),
            report_batch_item_failures=True,
            max_batching_window=cdk.Duration.seconds(1) if batch_size > 10 else None,
        ))
        return pair

    def _nats_transport(self) -> None:
        assert self.nats_secret is not None and self.egress_sg is not None
        for name in PUBLISHERS:
            self.functions[name].add_environment("SOORMA_NATS_SECRET_ARN", self.nats_secret.secret_arn)
            self.nats_secret.grant_read(self.functions[name])

        cluster = ecs.Cluster(self, "BridgeCluster", vpc=self.vpc,
                              container_insights_v2=ecs.ContainerInsights.ENABLED)
        task = ecs.FargateTaskDefinition(
            self, "BridgeTask", cpu=256, memory_limit_mib=512,
            runtime_platform=ecs.RuntimePlatform(cpu_architecture=ecs.CpuArchitecture.ARM64,
                                                 operating_system_family=ecs.OperatingSystemFamily.LINUX),
        )
        bundle = bundling.bridge_bundle(self, "BridgeBundle")
        bundle.grant_read(task.task_role)
        self.app_secret.grant_read(task.task_role)
        self.nats_secret.grant_read(task.task_role)
        self.functions["tracker"].grant_invoke(task.task_role)
        fetch_source = (Path(__file__).parent / "runtime" / "fetch.py").read_text()
        task.add_container(
            "bridge",
            image=ecs.ContainerImage.from_registry(BRIDGE_IMAGE),
            command=["python", "-c", fetch_source],
            environment={
                "SOORMA_BUNDLE_BUCKET": bundle.s3_bucket_name,
                "SOORMA_BUNDLE_KEY": bundle.s3_object_key,
                "SOORMA_APP_DB_SECRET_ARN": self.app_secret.secret_arn,
                "SOORMA_NATS_SECRET_ARN": self.nats_secret.secret_arn,
                "SOORMA_DB_NAME": DB_NAME,
                "SOORMA_TRACKER_FUNCTION": self.functions["tracker"].function_name,
                "PYTHONUNBUFFERED": "1",
            },
            logging=ecs.LogDrivers.aws_logs(stream_prefix="bridge", log_group=self._log_group("bridge")),
            stop_timeout=cdk.Duration.seconds(60),
            readonly_root_filesystem=False,
        )
        self.db_sg.add_ingress_rule(self.egress_sg, ec2.Port.tcp(5432), "bridge reads the registry's routes")
        self.bridge_service = ecs.FargateService(
            self, "Bridge", cluster=cluster, task_definition=task, desired_count=1,
            vpc_subnets=self.egress, security_groups=[self.egress_sg], assign_public_ip=False,
            min_healthy_percent=0, max_healthy_percent=200,
            circuit_breaker=ecs.DeploymentCircuitBreaker(rollback=True),
        )
        self.bridge_service.node.add_dependency(self.migrations)
        self.bridge_role = task.task_role
        suppress(task,
            ("AwsSolutions-ECS2", "The bridge's environment holds only secret ARNs, the tracker's function name and "
             "the S3 location of its code; the secrets themselves are read at start with the task role."),
            ("AwsSolutions-IAM5", "Reading the bridge's code asset needs s3:GetObject*/List* on the CDK asset "
             "bucket's objects (granted by the asset), and invoking a function includes its versions (:*).",
             ["Action::s3:GetObject*", "Action::s3:GetBucket*", "Action::s3:List*",
              r"/^Resource::arn:.*:s3:::cdk-.*-assets-.*\/\*$/",
              r"/^Resource::<.*Function[0-9A-F]{8}\.Arn>:\*$/"]),
        )
        suppress(cluster, ("AwsSolutions-ECS4", "Container Insights (v2) is enabled on the cluster."))

    # -------------------------------------------------------------------------------------------------- agents API

    def allow_db(self) -> None:
        """Open the database to the platform functions' security group (called once every function exists)."""
        self.db_sg.add_ingress_rule(self.functions_sg, ec2.Port.tcp(5432), "platform functions")
        self.functions_sg.add_egress_rule(self.db_sg, ec2.Port.tcp(5432), "the database")
        if self.egress_sg is not None:
            self.db_sg.add_ingress_rule(self.egress_sg, ec2.Port.tcp(5432), "gateway (egress subnets)")

    @staticmethod
    def of(scope: Construct) -> "SoormaPlatform":
        """The platform in ``scope``'s stack (for ``SoormaAgent`` without an explicit ``platform=``)."""
        stack = cdk.Stack.of(scope)
        found = [c for c in stack.node.find_all() if isinstance(c, SoormaPlatform)]
        if len(found) != 1:
            raise ValueError(f"expected one SoormaPlatform in stack {stack.stack_name}, found {len(found)}: "
                             "pass platform= explicitly")
        return found[0]
