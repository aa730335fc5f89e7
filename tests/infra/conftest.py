"""The CDK app synthesized once per transport through the pinned CDK CLI, shared by every test of tests/infra.

* The CLI is ``aws-cdk@2.1148.1`` from ``infra/package.json`` / ``package-lock.json``, installed with ``npm ci`` the
  first time (``npm`` and the npm registry are the only requirements; nothing calls AWS).
* ``cdk synth`` runs the real app (``python -m soorma.infra.app``) with the example agents, cdk-nag's AwsSolutions
  checks on, and fixed availability zones and account, so it is offline. Layers are bundled locally with pip and
  cached under ``.soorma/cdk-cache`` (the first run downloads the arm64 wheels; later runs reuse them).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("aws_cdk", reason="needs the infra extra: pip install -e '.[infra]'")

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"
CDK_VERSION = "2.1148.1"
EXAMPLE = REPO / "examples" / "research-advisor"
STACK = "Soorma"


def _cdk_bin() -> Path:
    return INFRA / "node_modules" / ".bin" / "cdk"


def _installed_version() -> str | None:
    package = INFRA / "node_modules" / "aws-cdk" / "package.json"
    try:
        return json.loads(package.read_text())["version"]
    except (OSError, ValueError, KeyError):
        return None


@pytest.fixture(scope="session")
def cdk_cli() -> Path:
    """The pinned CDK CLI, installed into infra/node_modules by ``npm ci`` when missing or of another version."""
    if _installed_version() != CDK_VERSION or not _cdk_bin().exists():
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail(f"npm is needed to install the CDK CLI (aws-cdk@{CDK_VERSION})")
        result = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--prefix", str(INFRA)],
                                capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stdout + result.stderr
    assert _installed_version() == CDK_VERSION
    return _cdk_bin()


class Synth:
    """One ``cdk synth`` output: its folder, the stack template and the CLI's output."""

    def __init__(self, transport: str, outdir: Path, output: str) -> None:
        self.transport = transport
        self.outdir = outdir
        self.output = output
        self.template_path = outdir / f"{STACK}.template.json"
        self.template: dict = json.loads(self.template_path.read_text())
        self.context: dict[str, str] = dict(EXTRA_CONTEXT.get(transport, {}))
        self.embedding_provider = self.context.get("soorma:embedding-provider", "bedrock")

    @property
    def resources(self) -> dict:
        return self.template["Resources"]

    def of_type(self, kind: str) -> dict:
        return {k: v for k, v in self.resources.items() if v["Type"] == kind}

    def nag_report(self) -> list[dict]:
        import csv

        (report,) = self.outdir.glob("AwsSolutions-*NagReport.csv")
        with report.open() as fh:
            return list(csv.DictReader(fh))


_synths: dict[str, Synth] = {}

# Each synth also covers one set of the other context options, so both values of each are checked without a third
# synth: the sqs app is the default configuration (Bedrock embeddings) with an HS256 secret and pass-through
# settings; the nats app selects the local embedding model, RS256 tokens from a JWKS URL, Lambda SnapStart and
# interface VPC endpoints instead of IPv6 egress, and the agents' spans exported to AWS X-Ray.
JWKS_URL = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Example/.well-known/jwks.json"
EXTRA_CONTEXT = {
    "sqs": {
        "soorma:jwt-secret": "generate",
        "soorma:jwt-audience": "soorma-hs256",  # required whenever JWTs are enabled (issue 12, finding 9)
        "soorma:settings": "SOORMA_RATE_KEY_RPS=20,SOORMA_RATE_TENANT_RPS=80,SOORMA_A2A_DEFAULT_GOAL_TYPE=research.goal",
    },
    "nats": {
        "soorma:embedding-provider": "local",
        "soorma:jwt-jwks-url": JWKS_URL,
        "soorma:jwt-issuer": "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Example",
        "soorma:jwt-audience": "soorma-client",
        "soorma:platform-admin-tenant": "operator",
        "soorma:snap-start": "true",
        "soorma:network": "endpoints",
        "soorma:tracing": "xray",
    },
}


def run_synth(cli: Path, transport: str, outdir: Path) -> Synth:
    env = {**os.environ, "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1", "CDK_DISABLE_VERSION_CHECK": "1"}
    env.pop("CDK_DEFAULT_ACCOUNT", None)
    env.pop("CDK_DEFAULT_REGION", None)
    cmd = [
        str(cli), "synth", "--app", f"{sys.executable} -m soorma.infra.app", "--output", str(outdir),
        "--context", f"soorma:transport={transport}",
        "--context", f"soorma:agents={EXAMPLE}",
        "--context", "soorma:deploy-nonce=test",
        "--context", "soorma:account=123456789012", "--context", "soorma:region=eu-west-1",
        "--context", "soorma:availability-zones=eu-west-1a,eu-west-1b",
        "--no-notices", "--no-version-reporting", "--quiet",
    ]
    for key, value in EXTRA_CONTEXT.get(transport, {}).items():
        cmd += ["--context", f"{key}={value}"]
    result = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"cdk synth ({transport}) failed:\n{output[-8000:]}"
    return Synth(transport, outdir, output)


@pytest.fixture(scope="session")
def synthesized(cdk_cli, tmp_path_factory):
    """``synthesized(transport)`` → :class:`Synth`; each transport is synthesized once per test session."""

    def get(transport: str) -> Synth:
        if transport not in _synths:
            _synths[transport] = run_synth(cdk_cli, transport, tmp_path_factory.mktemp(f"cdk-{transport}"))
        return _synths[transport]

    return get


@pytest.fixture(scope="module", params=["sqs", "nats"])
def synth(request, synthesized) -> Synth:
    return synthesized(request.param)
