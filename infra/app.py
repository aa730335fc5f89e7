"""The CDK app (``cdk.json`` runs ``python -m soorma.infra.app``): one stack with the platform and, optionally, agents.

Context (``-c key=value`` or ``cdk.json``):

| key | meaning | default |
| --- | --- | --- |
| ``soorma:transport`` | ``sqs`` or ``nats`` | ``sqs`` |
| ``soorma:stack-name`` | the stack's name | ``Soorma`` |
| ``soorma:agents`` | agent files or folders, comma-separated (``soorma deploy PATH`` sets it) | none |
| ``soorma:platform-tenant`` | the tenant of the bootstrap key and the agents | ``default`` |
| ``soorma:account`` / ``soorma:region`` | target environment | ``CDK_DEFAULT_ACCOUNT``/``REGION``, else a placeholder for offline synth |
| ``soorma:availability-zones`` | comma-separated AZ names (no lookup, so ``cdk synth`` needs no AWS call) | ``<region>a,<region>b`` |
| ``soorma:deletion-protection`` | ``false`` for throw-away stacks | ``true`` |
| ``soorma:alarm-email`` | where DLQ alarms are mailed | none |
| ``soorma:nag`` | ``false`` skips the cdk-nag AwsSolutions checks | ``true`` |
| ``soorma:deploy-nonce`` | fixes the migrations' per-deploy value (tests) | the synth time |
"""

from __future__ import annotations

import os
from typing import Sequence

os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")

import aws_cdk as cdk  # noqa: E402
from constructs import Construct  # noqa: E402

PLACEHOLDER_ACCOUNT = "123456789012"
# CDK feature flags the constructs are written for (set here so an app without cdk.json gets the same template).
FEATURE_FLAGS = {
    "@aws-cdk/aws-lambda:recognizeLayerVersion": True,
    "@aws-cdk/core:checkSecretUsage": True,
    "@aws-cdk/core:target-partitions": ["aws", "aws-cn"],
    "@aws-cdk/aws-iam:minimizePolicies": True,
    "@aws-cdk/core:validateSnapshotRemovalPolicy": True,
    "@aws-cdk/aws-rds:preventRenderingDeprecatedCredentials": True,
    "@aws-cdk/aws-lambda:useCdkManagedLogGroup": True,
    "@aws-cdk/aws-ecs:disableEcsImdsBlocking": True,
    "@aws-cdk/aws-ecs:reduceEc2FargateCloudWatchPermissions": True,
    "@aws-cdk/aws-sns:minimizeKmsPermissions": True,
}
DEFAULT_REGION = "us-east-1"


class SoormaStack(cdk.Stack):
    """A stack whose availability zones are given, never looked up (offline ``cdk synth``)."""

    def __init__(self, scope: Construct, id: str, *, zones: Sequence[str], **kwargs) -> None:
        super().__init__(scope, id, **kwargs)
        self._zones = list(zones)

    @property
    def availability_zones(self) -> list[str]:
        return self._zones


def _flag(value, default: bool) -> bool:
    if value is None:
        return default
    return str(value).strip().lower() not in ("0", "false", "no", "off")


def build_app(app: cdk.App | None = None) -> cdk.App:
    from cdk_nag import AwsSolutionsChecks

    from soorma.infra.agent import SoormaAgent
    from soorma.infra.platform import SoormaPlatform

    app = app or cdk.App()
    for flag, value in FEATURE_FLAGS.items():
        if app.node.try_get_context(flag) is None:
            app.node.set_context(flag, value)
    ctx = app.node.try_get_context
    account = ctx("soorma:account") or os.environ.get("CDK_DEFAULT_ACCOUNT") or PLACEHOLDER_ACCOUNT
    region = ctx("soorma:region") or os.environ.get("CDK_DEFAULT_REGION") or DEFAULT_REGION
    zones = ctx("soorma:availability-zones")
    zones = [z.strip() for z in zones.split(",")] if isinstance(zones, str) else list(zones or [])
    zones = zones or [f"{region}a", f"{region}b"]
    stack = SoormaStack(
        app, ctx("soorma:stack-name") or "Soorma", zones=zones,
        env=cdk.Environment(account=str(account), region=str(region)),
        description="Soorma Serverless: event-driven multi-agent platform (registry, memory, gateway, tracker)",
    )
    platform = SoormaPlatform(
        stack, "Platform",
        transport=ctx("soorma:transport") or "sqs",
        platform_tenant_id=ctx("soorma:platform-tenant") or "default",
        availability_zones=zones,
        deletion_protection=_flag(ctx("soorma:deletion-protection"), True),
        removal_policy=(cdk.RemovalPolicy.SNAPSHOT if _flag(ctx("soorma:deletion-protection"), True)
                        else cdk.RemovalPolicy.DESTROY),
        alarm_email=ctx("soorma:alarm-email"),
        deploy_nonce=ctx("soorma:deploy-nonce"),
    )
    agents = ctx("soorma:agents") or ""
    paths = [p.strip() for p in agents.split(",")] if isinstance(agents, str) else list(agents)
    for index, path in enumerate(p for p in paths if p):
        SoormaAgent(stack, f"Agents{index}" if index else "Agents", entry=path, platform=platform)
    if _flag(ctx("soorma:nag"), True):
        cdk.Aspects.of(app).add(AwsSolutionsChecks(verbose=True))
    return app


def main() -> None:
    build_app().synth()


if __name__ == "__main__":
    main()
