"""The CDK app's settings: the variables that building the Lambda bundles and layers on the deploying machine
reads (:mod:`soorma.infra.packaging`), declared once (see :mod:`soorma.settings` for
:class:`~soorma.settings.Setting`). The functions' run-time glue has its own module,
:mod:`soorma.infra.runtime.settings`.
"""

from __future__ import annotations

from soorma.settings import Setting, text

CDK_CACHE: Setting[str | None] = Setting(
    "SOORMA_CDK_CACHE", "`cdk synth`/`soorma deploy`: where built layers and bundles are cached", text, None,
    default_doc="`<repository or cwd>/.soorma/cdk-cache`")
LAMBDA_PYTHON: Setting[str | None] = Setting(
    "SOORMA_LAMBDA_PYTHON", "`cdk synth`: the CPython of the Lambda runtime's version that precompiles the bundles",
    text, None, default_doc="`python3.12` on `PATH`, in pyenv or uv, else bundles ship as source")
