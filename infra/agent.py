"""``SoormaAgent``: a user's agent file or folder as Lambda functions wired to the platform.

``SoormaAgent(scope, "Agents", entry="path/to/agent.py")`` imports the entry at synth time (as ``soorma local
deploy`` does: a folder's ``soorma.toml`` or ``agents.py``, else its top-level modules) and, for each module-level
agent object (``Worker``, ``Tool``, ``Planner``...), creates:

* a function (arm64, Python 3.12) with the agent's code, the platform's SDK layer and, when the folder has a
  ``requirements.txt``, a layer built from it; its handler is the agent object itself (an agent object is a Lambda
  handler), reached through :mod:`soorma.infra.runtime.boot`, which reads the agent's API key from its secret;
* an API key secret, filled on deploy with a key of role ``agent`` by the platform's registrar;
* ``transport="sqs"``: a queue with a dead-letter queue and a parked queue (alarms on the parked queue's depth and on
  the dead-letter queue's oldest message) subscribed to the event topic with a filter policy on the platform tenant,
  topic and event type of each of the agent's subscriptions, and an event source mapping with partial batch
  responses; the dead-letter queue feeds the platform's dead-letter function (goal notice, then parked); ``transport="nats"``: permission for the bridge to invoke
  the function (the bridge finds the route in the registry);
* a ``Custom::SoormaAgent`` resource that registers the agent in the registry with its deployment binding;
* a subscription filter of its log group to the platform's usage recorder (its GB-seconds per goal,
  :mod:`soorma.infra.usage`).

Agent functions do not run in the VPC: they reach the platform through its public HTTP API with their own key,
like any other client, and may need the internet for their own work (an LLM endpoint, for instance).
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path
from typing import Any, Mapping

import aws_cdk as cdk
from aws_cdk import aws_iam as iam, aws_lambda as lambda_, aws_logs as logs, aws_secretsmanager as secretsmanager
from constructs import Construct

from soorma.infra import bundling, packaging
from soorma.infra.platform import BOOT_HANDLER, QueueWithDlq, SoormaPlatform, suppress
from soorma.settings import TRACES_EXPORT

#: What an agent function may call with ``tracing="xray"``: X-Ray's OTLP traces endpoint
#: (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch-OTLPEndpoint.html).
XRAY_OTLP_ACTIONS = ("xray:PutSpans", "xray:PutSpansForIndexing")

CATCH_ALL = "*"
_UNSAFE = re.compile(r"[^A-Za-z0-9]")


def filter_policy(platform_tenant_id: str, subscriptions: list[tuple[str, str]]) -> dict[str, Any]:
    """The SNS filter policy (message attributes) for an agent's ``(topic, event_type)`` subscriptions.

    Always scoped to the platform tenant. Event types are grouped by topic; ``"*"`` takes every type on its topic.
    One topic gives ``{"platform_tenant_id": [t], "topic": [topic], "event_type": [...]}``; several give an ``$or``
    of such groups, so a type subscribed on one topic is not delivered from another."""
    by_topic: dict[str, list[str]] = defaultdict(list)
    for topic, event_type in subscriptions:
        types = by_topic[str(topic)]
        if event_type not in types:
            types.append(event_type)
    groups = []
    for topic, types in by_topic.items():
        group: dict[str, Any] = {"topic": [topic]}
        if CATCH_ALL not in types:
            group["event_type"] = types
        groups.append(group)
    if not groups:
        raise ValueError("an agent with no subscriptions cannot be routed any event")
    policy: dict[str, Any] = {"platform_tenant_id": [platform_tenant_id]}
    if len(groups) == 1:
        policy.update(groups[0])
    else:
        policy["$or"] = groups
    return policy


def _plain(value: Any) -> Any:
    """JSON-like data for CloudFormation properties (enums to their values, tuples to lists)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_plain(v) for v in value]
    if hasattr(value, "value") and not isinstance(value, (str, int, float, bool)):
        return value.value
    return value


class SoormaAgent(Construct):
    """Deploy the agents in ``entry`` (a ``.py`` file or a folder) on ``platform`` (default: the stack's one).

    Options: ``batch_size`` (10), ``max_concurrency`` (2), ``max_deliveries`` (5), ``timeout_seconds`` (30),
    ``memory_mb`` (512), ``environment`` (extra variables for the functions); a folder's ``soorma.toml``
    ``[defaults]`` set the first four when not given here.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        entry: str | Path,
        platform: SoormaPlatform | None = None,
        batch_size: int | None = None,
        max_concurrency: int | None = None,
        max_deliveries: int | None = None,
        timeout_seconds: int | None = None,
        memory_mb: int = 512,
        environment: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(scope, id)
        from soorma.app import discover_agents, load_app

        self.platform = platform or SoormaPlatform.of(self)
        entry_path = Path(entry).resolve()
        app = load_app(entry_path)
        found = discover_agents(app)
        defaults = {"batch_size": 10, "max_concurrency": 2, "max_deliveries": 5, "timeout_seconds": 30}
        defaults.update({k: v for k, v in app.defaults.items() if k in defaults})
        given = {"batch_size": batch_size, "max_concurrency": max_concurrency, "max_deliveries": max_deliveries,
                 "timeout_seconds": timeout_seconds}
        defaults.update({k: v for k, v in given.items() if v is not None})
        self.settings = defaults
        self.app_name = app.name

        code = bundling.agent_code(entry_path)
        layers = [self.platform.sdk_layer]
        requirements = entry_path / "requirements.txt" if entry_path.is_dir() else None
        if requirements is not None and requirements.exists():
            layers.append(lambda_.LayerVersion(
                self, "Requirements", code=bundling.requirements_layer_code(requirements),
                compatible_runtimes=[bundling.LAMBDA_RUNTIME],
                compatible_architectures=[lambda_.Architecture.ARM_64],
                description=f"Soorma agent {app.name}: requirements.txt",
            ))

        self.functions: dict[str, lambda_.Function] = {}
        self.queues: dict[str, QueueWithDlq] = {}
        for item in found:
            agent = item.agent
            cid = _UNSAFE.sub("", agent.name.title()) or "Agent"
            fn, secret = self._agent_function(cid, agent, item.handler, code, layers, memory_mb, environment or {})
            self.functions[agent.name] = fn
            subscriptions = [(_plain(t), e) for t, e in agent.subscriptions()]
            if self.platform.transport == "sqs":
                self.queues[agent.name] = self.platform.subscribe(
                    cid, fn, filter_policy=filter_policy(self.platform.platform_tenant_id, subscriptions),
                    batch_size=defaults["batch_size"], max_concurrency=defaults["max_concurrency"],
                    max_deliveries=defaults["max_deliveries"], scope=self, agent=agent.name,
                )
            else:
                assert self.platform.bridge_role is not None
                fn.grant_invoke(self.platform.bridge_role)
            definition = _plain(agent.definition())
            definition.pop("deployment", None)
            registration = cdk.CustomResource(
                self, f"{cid}Registration", service_token=self.platform.registrar_provider.service_token,
                resource_type="Custom::SoormaAgent",
                properties={
                    "PlatformTenantId": self.platform.platform_tenant_id,
                    "Agent": definition,
                    # JSON text: CloudFormation would turn the schemas' numbers and booleans into strings
                    "Events": json.dumps(_plain(agent.event_definitions()), sort_keys=True),
                    "Deployment": {
                        "function_name": fn.function_name,
                        "transport": self.platform.transport,
                        "subscriptions": [{"topic": t, "event_type": e} for t, e in subscriptions],
                        **{k: defaults[k] for k in ("batch_size", "max_concurrency", "max_deliveries",
                                                    "timeout_seconds")},
                    },
                    "KeySecretArn": secret.secret_arn,
                },
            )
            registration.node.add_dependency(self.platform.migrations)

    def _tracing_environment(self) -> dict[str, str]:
        """The agents' trace settings of the platform's ``tracing`` mode (docs/observability.md)."""
        if self.platform.tracing == "xray":
            return {TRACES_EXPORT.name: "xray"}
        return {}

    def _agent_function(self, cid: str, agent: Any, handler: str, code: lambda_.Code, layers: list,
                        memory_mb: int, environment: Mapping[str, str]) -> tuple[lambda_.Function, secretsmanager.Secret]:
        platform = self.platform
        secret = secretsmanager.Secret(
            self, f"{cid}Key", encryption_key=platform.key,
            description=f"Soorma: API key (role agent) of agent {agent.name}, written by the registrar on deploy",
            generate_secret_string=secretsmanager.SecretStringGenerator(exclude_punctuation=True),
        )
        suppress(secret, ("AwsSolutions-SMG4",
            "Holds an API key issued by the platform's registrar; keys are revoked and reissued through the "
            "platform, not by Secrets Manager rotation."))
        secret.grant_write(platform.functions["registrar"])
        log_group = logs.LogGroup(self, f"{cid}Logs", retention=platform.log_retention,
                                  removal_policy=cdk.RemovalPolicy.DESTROY)
        fn = lambda_.Function(
            self, f"{cid}Function",
            description=f"Soorma agent {agent.name}",
            runtime=bundling.LAMBDA_RUNTIME,
            architecture=lambda_.Architecture.ARM_64,
            code=code,
            handler=BOOT_HANDLER,
            layers=layers,
            memory_size=memory_mb,
            timeout=cdk.Duration.seconds(int(self.settings["timeout_seconds"])),
            log_group=log_group,
            logging_format=lambda_.LoggingFormat.JSON,
            params_and_secrets=platform.secrets_extension,  # its API key, read at init without boto3
            environment={
                "SOORMA_HANDLER": handler,
                "SOORMA_API_URL": platform.api.api_endpoint,
                "SOORMA_API_KEY_SECRET_ARN": secret.secret_arn,
                "POWERTOOLS_SERVICE_NAME": agent.name,
                "POWERTOOLS_LOG_LEVEL": "INFO",
                **environment,
                **self._tracing_environment(),
                # last: the runtime refuses events of another platform tenant (soorma.runtime), never overridden
                "SOORMA_PLATFORM_TENANT_ID": platform.platform_tenant_id,
            },
        )
        secret.grant_read(fn)
        if platform.tracing == "xray":
            # X-Ray's OTLP endpoint authorizes PutSpans (and PutSpansForIndexing for the indexed share); X-Ray
            # actions have no resource-level permissions, hence "*".
            fn.add_to_role_policy(iam.PolicyStatement(actions=list(XRAY_OTLP_ACTIONS), resources=["*"]))
            suppress(fn, ("AwsSolutions-IAM5", "X-Ray's span-writing actions (xray:PutSpans, "
                          "xray:PutSpansForIndexing) support no resource-level permissions: '*' is the only resource "
                          "(https://docs.aws.amazon.com/service-authorization/latest/reference/list_awsx-ray.html).",
                          ["Resource::*"]))
        # its REPORT figures and the runtime's goals lines feed the goals' usage (soorma.infra.usage)
        platform.usage_recorder.subscribe(self, f"{cid}Usage", log_group, fn, memory_mb=memory_mb,
                                          timeout_s=int(self.settings["timeout_seconds"]),
                                          platform_tenant_id=platform.platform_tenant_id)
        suppress(fn, ("AwsSolutions-L1", f"Python {packaging.LAMBDA_PYTHON} is the runtime the SDK layer is built for "
                      f"(CPython {packaging.LAMBDA_PYTHON} wheels for arm64)."))
        suppress(fn, ("AwsSolutions-IAM4", "AWSLambdaBasicExecutionRole is the AWS-managed minimum that lets the "
                      "function write its own logs.",
                      ["Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"]))
        return fn, secret
