"""CDK assets built on this machine through ``ILocalBundling`` (never Docker).

Each asset gets a custom asset hash (the content hash of what goes in), so CDK itself skips an asset it already
staged, and the bundles are cached by :mod:`soorma.infra.packaging` across synths and output folders.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import aws_cdk as cdk
import jsii
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3_assets as s3_assets
from constructs import Construct

from soorma.infra import packaging

# Never pulled: local bundling always succeeds, and CDK only needs an image to type-check the options.
_UNUSED_IMAGE = cdk.DockerImage.from_registry("public.ecr.aws/sam/build-python3.12:latest-arm64")


@jsii.implements(cdk.ILocalBundling)
class LocalBundle:
    """Copies a folder produced by ``produce()`` (a cached bundle) into CDK's bundling output folder."""

    def __init__(self, produce: Callable[[], Path]) -> None:
        self._produce = produce

    def try_bundle(self, output_dir: str, *args, **kwargs) -> bool:  # noqa: ARG002 - CDK passes the options
        packaging.copy_into(self._produce(), Path(output_dir))
        return True


def bundling_options(produce: Callable[[], Path]) -> cdk.BundlingOptions:
    return cdk.BundlingOptions(image=_UNUSED_IMAGE, local=LocalBundle(produce))


def _asset_props(asset_hash: str, produce: Callable[[], Path]) -> dict:
    return {
        "asset_hash_type": cdk.AssetHashType.CUSTOM,
        "asset_hash": asset_hash,
        "bundling": bundling_options(produce),
    }


def layer_code(name: str) -> lambda_.Code:
    spec = packaging.LAYERS[name]
    target = packaging.Target.lambda_arm64()
    return lambda_.Code.from_asset(
        str(packaging.LAYERS_DIR),
        **_asset_props(f"layer-{name}-{packaging.layer_hash(spec, target)}", lambda: packaging.build_layer(spec)),
    )


def requirements_layer_code(requirements: Path) -> lambda_.Code:
    import hashlib

    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()[:20]
    return lambda_.Code.from_asset(
        str(requirements.parent),
        **_asset_props(f"userlayer-{digest}", lambda: packaging.build_requirements_layer(requirements)),
    )


def platform_code() -> lambda_.Code:
    parts = ("sdk", "functions", "runtime")
    return lambda_.Code.from_asset(
        str(packaging.LAYERS_DIR),
        **_asset_props(f"code-{packaging.code_hash(parts)}", lambda: packaging.build_code(parts)),
    )


def agent_code(entry: Path) -> lambda_.Code:
    """A user's agent file or folder (built fresh each synth: it is small and it is the thing being changed)."""
    entry = entry.resolve()
    source = entry if entry.is_dir() else entry.parent

    def produce() -> Path:
        import tempfile

        return packaging.write_agent_code(entry, Path(tempfile.mkdtemp(prefix="soorma-agent-")))

    return lambda_.Code.from_asset(str(source), **_asset_props(f"agent-{packaging.tree_hash(entry)}", produce))


def bridge_bundle(scope: Construct, id: str) -> s3_assets.Asset:
    """The NATS bridge's code for Fargate: the SDK, the bridge and its wheels (``python/``), as one zip in S3."""
    parts = ("sdk", "functions", "runtime", "bridge-routes")
    spec = packaging.LAYERS["bridge"]
    target = packaging.Target.lambda_arm64()

    def produce() -> Path:
        import tempfile

        out = Path(tempfile.mkdtemp(prefix="soorma-bridge-"))
        packaging.copy_into(packaging.build_layer(spec), out)
        packaging.copy_into(packaging.build_code(parts), out)
        return out

    digest = f"bridge-{packaging.layer_hash(spec, target)}-{packaging.code_hash(parts)}"
    return s3_assets.Asset(scope, id, path=str(packaging.LAYERS_DIR), **_asset_props(digest, produce))
