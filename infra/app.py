"""The CDK app (``cdk.json`` runs ``python -m soorma.infra.app``): one stack with the platform and, optionally, agents.

Context (``-c key=value`` or ``cdk.json``):

| key | meaning | default |
| --- | --- | --- |
| ``soorma:transport`` | ``sqs`` or ``nats`` | ``sqs`` |
| ``soorma:network`` | how the functions reach AWS APIs: ``ipv6`` (dual-stack endpoints through an egress-only internet gateway, no hourly cost) or ``endpoints`` (interface VPC endpoints, about $7.30 a month each per zone) | ``ipv6`` |
| ``soorma:stack-name`` | the stack's name | ``Soorma`` |
| ``soorma:agents`` | agent files or folders, comma-separated (``soorma deploy PATH`` sets it) | none |
| ``soorma:platform-tenant`` | the tenant of the bootstrap key and the agents | ``default`` |
| ``soorma:account`` / ``soorma:region`` | target environment | ``CDK_DEFAULT_ACCOUNT``/``REGION``, else a placeholder for offline synth |
| ``soorma:availability-zones`` | comma-separated AZ names (no lookup, so ``cdk synth`` needs no AWS call) | ``<region>a,<region>b`` |
| ``soorma:deletion-protection`` | ``false`` for throw-away stacks | ``true`` |
| ``soorma:alarm-email`` | where DLQ alarms are mailed | none |
| ``soorma:nag`` | ``false`` skips the cdk-nag AwsSolutions checks | ``true`` |
| ``soorma:deploy-nonce`` | fixes the migrations' per-deploy value (tests) | the synth time |
| ``soorma:embedding-provider`` | ``bedrock`` (Titan Text Embeddings v2, no model layer) or ``local`` (the packaged ONNX model and its layer) | ``bedrock`` |
| ``soorma:embedding-dimensions`` | vector width (bedrock: 256, 512 or 1024; local: 384); fixed once memories exist | 1024 / 384 |
| ``soorma:bedrock-embedding-model`` | the Bedrock model id | ``amazon.titan-embed-text-v2:0`` |
| ``soorma:platform-admin-tenant`` | the platform-operator tenant (its bootstrap admin key is output as a secret) | ``platform`` |
| ``soorma:jwt-secret`` | HS256 JWTs: ``generate`` (a new Secrets Manager secret) or the complete ARN of an existing one (encrypted with ``aws/secretsmanager``; a customer key needs its own ``kms:Decrypt`` grant) | none (HS256 off) |
| ``soorma:jwt-jwks-url`` / ``soorma:jwt-issuer`` / ``soorma:jwt-audience`` | RS256 JWTs of an OIDC issuer (e.g. Cognito); a JWKS URL adds a NAT gateway; the audience is required whenever JWTs are on (HS256 or RS256) | none |
| ``soorma:tracing`` | ``platform`` (spans in the platform's table, ``GET /v1/goals/{id}/trace``) or ``xray`` (also the agents' spans to AWS X-Ray's OTLP endpoint; the account needs CloudWatch Transaction Search: docs/observability.md) | ``platform`` |
| ``soorma:settings`` | ``SOORMA_RATE_*``, ``SOORMA_A2A_*``, ``SOORMA_JWT_*`` (not the secret) as a JSON object or ``K=V,K=V`` | none |
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


def _settings(value) -> dict[str, str]:
    """``soorma:settings``: a JSON object (in cdk.json or ``-c 'soorma:settings={...}'``) or ``K=V,K=V``."""
    if not value:
        return {}
    if isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items()}
    text = str(value).strip()
    if text.startswith("{"):
        import json

        return {str(k): str(v) for k, v in json.loads(text).items()}
    out = {}
    for item in text.split(","):
        name, sep, val = item.partition("=")
        if not sep:
            raise ValueError(f"soorma:settings: {item!r} is not NAME=VALUE")
        out[name.strip()] = val.strip()
    return out


def build_app(app: cdk.App | None = None) -> cdk.App:
    from aws_cdk import aws_secretsmanager as secretsmanager
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
        network=ctx("soorma:network") or "ipv6",
        platform_tenant_id=ctx("soorma:platform-tenant") or "default",
        availability_zones=zones,
        deletion_protection=_flag(ctx("soorma:deletion-protection"), True),
        removal_policy=(cdk.RemovalPolicy.SNAPSHOT if _flag(ctx("soorma:deletion-protection"), True)
                        else cdk.RemovalPolicy.DESTROY),
        alarm_email=ctx("soorma:alarm-email"),
        deploy_nonce=ctx("soorma:deploy-nonce"),
        embedding_provider=ctx("soorma:embedding-provider") or "bedrock",
        embedding_dimensions=int(ctx("soorma:embedding-dimensions")) if ctx("soorma:embedding-dimensions") else None,
        bedrock_model=ctx("soorma:bedrock-embedding-model") or "amazon.titan-embed-text-v2:0",
        platform_admin_tenant=ctx("soorma:platform-admin-tenant") or "platform",
        jwt_secret=_jwt_secret(stack, ctx("soorma:jwt-secret"), secretsmanager),
        jwt_jwks_url=ctx("soorma:jwt-jwks-url"),
        jwt_issuer=ctx("soorma:jwt-issuer"),
        jwt_audience=ctx("soorma:jwt-audience"),
        settings=_settings(ctx("soorma:settings")),
        snap_start=_flag(ctx("soorma:snap-start"), False),
        tracing=ctx("soorma:tracing") or "platform",
    )
    agents = ctx("soorma:agents") or ""
    paths = [p.strip() for p in agents.split(",")] if isinstance(agents, str) else list(agents)
    for index, path in enumerate(p for p in paths if p):
        SoormaAgent(stack, f"Agents{index}" if index else "Agents", entry=path, platform=platform)
    if _flag(ctx("soorma:nag"), True):
        cdk.Aspects.of(app).add(AwsSolutionsChecks(verbose=True))
    return app


def _jwt_secret(stack: cdk.Stack, value, secretsmanager):
    if not value:
        return None
    if str(value) == "generate":
        return "generate"
    if not str(value).startswith("arn:"):
        raise ValueError("soorma:jwt-secret must be 'generate' or a Secrets Manager secret's complete ARN")
    return secretsmanager.Secret.from_secret_complete_arn(stack, "JwtSecretImported", str(value))


def main() -> None:
    build_app().synth()


if __name__ == "__main__":
    main()
