"""``soorma deploy PATH``: deploy the platform and the agents in PATH to AWS with the AWS CDK.

Runs ``npx --yes aws-cdk@2.1148.1 deploy`` (the CLI release that reads aws-cdk-lib 2.275's cloud assemblies) on the
CDK app of ``soorma.infra.app``, with PATH (an agent file or folder) in the context ``soorma:agents``. Needs Node.js
(``npx``), the ``infra`` extra (``pip install 'soorma[infra]'``) and AWS credentials in the environment, as any
``cdk deploy`` does. ``--dry-run`` prints the command instead of running it.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

from soorma.cli._output import EXIT_USAGE, fail
from soorma.cli.choices import RequireApproval, Transport

CDK_CLI = "aws-cdk@2.1148.1"


class DeployCommandError(ValueError):
    """The arguments cannot form a deploy command."""


def build_command(
    path: Path | str | None,
    *,
    transport: str = Transport.sqs.value,
    stack_name: str = "Soorma",
    platform_tenant: str | None = None,
    region: str | None = None,
    profile: str | None = None,
    alarm_email: str | None = None,
    deletion_protection: bool = True,
    require_approval: str = RequireApproval.broadening.value,
    output: Path | str | None = None,
    python: str | None = None,
    extra_context: dict[str, str] | None = None,
) -> list[str]:
    """The ``npx aws-cdk deploy`` command line (a list, never passed through a shell).

    ``transport`` is a :class:`Transport` value and ``require_approval`` a :class:`RequireApproval` value; raises
    :class:`DeployCommandError` for another value or a ``path`` that does not exist."""
    if transport not in {t.value for t in Transport}:
        raise DeployCommandError(f"--transport must be one of {', '.join(t.value for t in Transport)}, "
                                 f"not {transport!r}")
    if require_approval not in {r.value for r in RequireApproval}:
        raise DeployCommandError(f"--require-approval must be one of {', '.join(r.value for r in RequireApproval)}")
    python = python or sys.executable
    cmd = ["npx", "--yes", CDK_CLI, "deploy", stack_name, "--app", f"{shlex.quote(python)} -m soorma.infra.app",
           "--require-approval", require_approval]
    context = {"soorma:transport": transport, "soorma:stack-name": stack_name}
    if path is not None:
        resolved = Path(path).expanduser().resolve()
        if not resolved.exists():
            raise DeployCommandError(f"{resolved} does not exist")
        context["soorma:agents"] = str(resolved)
    if platform_tenant:
        context["soorma:platform-tenant"] = platform_tenant
    if region:
        context["soorma:region"] = region
    if alarm_email:
        context["soorma:alarm-email"] = alarm_email
    if not deletion_protection:
        context["soorma:deletion-protection"] = "false"
    context.update(extra_context or {})
    for key, value in context.items():
        cmd += ["--context", f"{key}={value}"]
    if profile:
        cmd += ["--profile", profile]
    if output:
        cmd += ["--output", str(output)]
    return cmd


def deploy(
    path: Annotated[Path | None, typer.Argument(help="an agent file or folder to deploy with the platform")] = None,
    transport: Annotated[Transport, typer.Option(
        help="event transport: sqs (SNS/SQS) or nats (NATS JetStream + bridge)")] = Transport.sqs,
    stack_name: Annotated[str, typer.Option(help="CloudFormation stack name")] = "Soorma",
    platform_tenant: Annotated[str | None, typer.Option(
        help="platform tenant of the agents (default: default)")] = None,
    region: Annotated[str | None, typer.Option(help="AWS region (default: your AWS configuration's)")] = None,
    profile: Annotated[str | None, typer.Option(help="AWS profile")] = None,
    alarm_email: Annotated[str | None, typer.Option(help="e-mail address for dead-letter queue alarms")] = None,
    deletion_protection: Annotated[bool, typer.Option(help="protect the database from deletion")] = True,
    require_approval: Annotated[RequireApproval, typer.Option(
        help="which changes wait for a yes (cdk deploy --require-approval)")] = RequireApproval.broadening,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="print the command instead of running it")] = False,
) -> None:
    """Deploy the platform (and the agents in PATH) to AWS with `cdk deploy`."""
    try:
        cmd = build_command(
            path, transport=transport.value, stack_name=stack_name, platform_tenant=platform_tenant, region=region,
            profile=profile, alarm_email=alarm_email, deletion_protection=deletion_protection,
            require_approval=require_approval.value,
        )
    except DeployCommandError as exc:
        fail(f"error: {exc}", code=EXIT_USAGE)
    if dry_run:
        typer.echo(shlex.join(cmd))
        return
    if shutil.which("npx") is None:
        fail("error: npx (Node.js) is needed to run the AWS CDK CLI")
    env = {**os.environ, "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1"}
    raise typer.Exit(subprocess.call(cmd, env=env))
