"""CDK assets built on this machine through ``ILocalBundling`` (never Docker).

Each asset gets a custom asset hash (the content hash of what goes in, and whether it is precompiled and for which
CPython: :func:`soorma.infra.packaging.variant`), so CDK itself skips an asset it already staged, and the bundles are
cached by :mod:`soorma.infra.packaging` across synths and output folders.

Every asset built for Lambda is compiled to bytecode when this machine has a CPython of the runtime's version
(:func:`soorma.infra.packaging.lambda_bytecode`, resolved once per synth), else shipped as source.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import aws_cdk as cdk
import jsii
from aws_cdk import aws_lambda as lambda_, aws_s3_assets as s3_assets
from constructs import Construct

from soorma.infra import packaging

# The functions' and layers' runtime, from the one setting packaging.LAMBDA_PYTHON (which the wheels and the bytecode
# are built for), so they cannot disagree; an AttributeError here means this aws-cdk-lib does not know the version.
LAMBDA_RUNTIME: lambda_.Runtime = getattr(lambda_.Runtime, "PYTHON_" + packaging.LAMBDA_PYTHON.replace(".", "_"))

# Never pulled: local bundling always succeeds, and CDK only needs an image to type-check the options.
_UNUSED_IMAGE = cdk.DockerImage.from_registry(
    f"public.ecr.aws/sam/build-python{packaging.LAMBDA_PYTHON}:latest-arm64")


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
    """The layer ``name`` of :data:`soorma.infra.packaging.LAYERS`, built for Lambda (precompiled when possible)."""
    spec = packaging.LAYERS[name]
    target = packaging.Target.lambda_arm64()
    bytecode = packaging.lambda_bytecode()
    digest = f"layer-{name}-{packaging.variant(bytecode)}-{packaging.layer_hash(spec, target, bytecode)}"
    return lambda_.Code.from_asset(
        str(packaging.LAYERS_DIR),
        **_asset_props(digest, lambda: packaging.build_layer(spec, target=target, bytecode=bytecode)),
    )


def requirements_layer_code(requirements: Path) -> lambda_.Code:
    """A layer of an agent folder's ``requirements.txt``, built for Lambda (precompiled when possible)."""
    target = packaging.Target.lambda_arm64()
    bytecode = packaging.lambda_bytecode()
    digest = packaging.requirements_hash(requirements, target, bytecode)
    return lambda_.Code.from_asset(
        str(requirements.parent),
        **_asset_props(f"userlayer-{packaging.variant(bytecode)}-{digest}",
                       lambda: packaging.build_requirements_layer(requirements, target=target, bytecode=bytecode)),
    )


def platform_code() -> lambda_.Code:
    """The platform functions' code (the SDK, ``soorma.functions``, the boot module), precompiled when possible."""
    parts = ("sdk", "functions", "runtime")
    bytecode = packaging.lambda_bytecode()
    digest = f"code-{packaging.variant(bytecode)}-{packaging.code_hash(parts, bytecode)}"
    return lambda_.Code.from_asset(
        str(packaging.LAYERS_DIR),
        **_asset_props(digest, lambda: packaging.build_code(parts, bytecode=bytecode)),
    )


def agent_code(entry: Path) -> lambda_.Code:
    """A user's agent file or folder (built fresh each synth: it is small and it is the thing being changed)."""
    entry = entry.resolve()
    source = entry if entry.is_dir() else entry.parent
    bytecode = packaging.lambda_bytecode()

    def produce() -> Path:
        import tempfile

        out = packaging.write_agent_code(entry, Path(tempfile.mkdtemp(prefix="soorma-agent-")))
        if bytecode is not None:
            packaging.compile_tree(out, bytecode)
        return out

    fingerprint = "" if bytecode is None else bytecode.fingerprint
    digest = f"agent-{packaging.variant(bytecode)}-{packaging.tree_hash(entry)}{fingerprint and '-' + fingerprint}"
    return lambda_.Code.from_asset(str(source), **_asset_props(digest, produce))


def bridge_bundle(scope: Construct, id: str) -> s3_assets.Asset:
    """The NATS bridge's code for Fargate: the SDK, the bridge and its wheels (``python/``), as one zip in S3."""
    parts = ("sdk", "bridge")
    spec = packaging.LAYERS["bridge"]
    target = packaging.Target.lambda_arm64()
    bytecode = packaging.lambda_bytecode()  # the bridge's image is CPython LAMBDA_PYTHON too (platform.BRIDGE_IMAGE)

    def produce() -> Path:
        import tempfile

        out = Path(tempfile.mkdtemp(prefix="soorma-bridge-"))
        packaging.copy_into(packaging.build_layer(spec, target=target, bytecode=bytecode), out)
        packaging.copy_into(packaging.build_code(parts, bytecode=bytecode), out)
        return out

    digest = (f"bridge-{packaging.variant(bytecode)}-{packaging.layer_hash(spec, target, bytecode)}"
              f"-{packaging.code_hash(parts, bytecode)}")
    return s3_assets.Asset(scope, id, path=str(packaging.LAYERS_DIR), **_asset_props(digest, produce))
