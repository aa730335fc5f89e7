"""Package discovery for the folder-per-part layout (see docs/architecture.md).

Each top-level folder is one sub-package of ``soorma``; ``find_packages`` cannot express that mapping in
``pyproject.toml`` alone, so the package list is computed here and everything else stays in ``pyproject.toml``.
"""

from setuptools import find_packages, setup

PARTS = {"soorma.functions": "functions", "soorma.local": "local", "soorma.infra": "infra"}

packages = ["soorma", *(f"soorma.{p}" for p in find_packages("sdk/soorma"))]
# soorma-core's DTO module names (``from soorma_common.events import EventEnvelope``), so its agent code imports here.
packages += ["soorma_common", *(f"soorma_common.{p}" for p in find_packages("sdk/soorma_common"))]
for prefix, folder in PARTS.items():
    packages += [prefix, *(f"{prefix}.{p}" for p in find_packages(folder))]

# The Lambda layers' requirement files (layers/*.txt): data of the CDK app, which builds the layers from them, so a
# `soorma deploy` from an installed wheel finds them as a repository checkout does.
LAYERS = {"soorma.infra.layers": "layers"}
packages += list(LAYERS)

setup(packages=packages, package_dir={"soorma": "sdk/soorma", "soorma_common": "sdk/soorma_common", **PARTS, **LAYERS})
