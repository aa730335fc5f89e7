"""Agent functions' GB-seconds per goal in AWS (:class:`UsageRecorder`, created by
:class:`~soorma.infra.platform.SoormaPlatform`; the design is :mod:`soorma.functions.tracker.invocation_usage`).

* The **usage** function, *in the VPC* (isolated subnets, like the tracker): it reads the app database secret and
  writes ``gateway.invocation_reports`` and ``gateway.goal_usage``, nothing else; no AWS API call, so it needs no
  endpoint and no egress.
* Each agent function's log group (Lambda's JSON log format) gets a CloudWatch Logs subscription filter that delivers
  only ``platform.report`` records and the SDK runtime's ``soorma.invocation`` lines to it; CloudWatch Logs may
  invoke it for those log groups only (one resource-policy statement per log group, ``SourceArn`` the log group).
* The recorder learns which log groups it serves, with each one's platform tenant, memory size and timeout, from
  ``SOORMA_USAGE_LOG_GROUPS`` (filled when the stack is synthesized, after every agent was added): a log group's
  records count for that platform tenant's goals only, and no report can count more than memory × timeout.

Nothing bills while idle: a subscription filter is free, its deliveries are Lambda invocations of records that were
written anyway (https://aws.amazon.com/cloudwatch/pricing/: no charge for subscription filters to Lambda beyond the
logs already ingested), and an idle function costs nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import aws_cdk as cdk
import jsii
from aws_cdk import aws_lambda as lambda_, aws_logs as logs, aws_logs_destinations as destinations
from constructs import Construct

from soorma.functions.shared import settings
from soorma.functions.tracker.invocation_usage import FILTER_PATTERN

if TYPE_CHECKING:
    from soorma.infra.platform import SoormaPlatform

#: The recorder's memory (MB) and timeout (s): a delivery holds at most 10,000 small records.
RECORDER_MEMORY_MB, RECORDER_TIMEOUT_S = 256, 60


@jsii.implements(cdk.IStableStringProducer)
class _LogGroupsJson:
    """``SOORMA_USAGE_LOG_GROUPS`` as JSON, produced at synthesis (agents are added after the platform)."""

    def __init__(self, scope: Construct, entries: dict[str, dict[str, Any]]) -> None:
        self.scope, self.entries = scope, entries

    def produce(self) -> str:
        # log group names are tokens until deployment: to_json_string keeps them inside JSON strings
        return cdk.Stack.of(self.scope).to_json_string(list(self.entries.values()))


class UsageRecorder:
    """The usage function and the subscriptions of the agents' log groups to it (see the module docstring)."""

    def __init__(self, platform: "SoormaPlatform") -> None:
        self.platform = platform
        self._entries: dict[str, dict[str, Any]] = {}
        package = platform.packages["usage"]
        self.function = platform._function(
            "usage", handler=package.handler, layers=package.layers, memory=RECORDER_MEMORY_MB,
            timeout=RECORDER_TIMEOUT_S, secrets=[platform.app_secret],
            env={settings.USAGE_LOG_GROUPS.name: cdk.Lazy.string(_LogGroupsJson(platform, self._entries))},
        )
        platform.functions["usage"] = self.function

    def subscribe(self, scope: Construct, id: str, log_group: logs.ILogGroup, fn: lambda_.Function, *,
                  memory_mb: int, timeout_s: int, platform_tenant_id: str) -> logs.SubscriptionFilter:
        """Deliver ``log_group``'s (the log group of agent function ``fn``) reports and goals lines to the recorder,
        counted for ``platform_tenant_id`` and bounded by ``memory_mb`` × ``timeout_s``.
        https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/SubscriptionFilters.html"""
        self._entries[fn.node.path] = {"log_group": log_group.log_group_name, "platform_tenant_id": platform_tenant_id,
                                       "memory_mb": int(memory_mb), "timeout_s": int(timeout_s)}
        return logs.SubscriptionFilter(
            scope, id, log_group=log_group, destination=destinations.LambdaDestination(self.function),
            filter_pattern=logs.FilterPattern.literal(FILTER_PATTERN), filter_name="soorma-usage",
        )
