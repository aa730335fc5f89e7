"""The AWS CDK app of Soorma Serverless and its reusable constructs.

``from soorma.infra import SoormaPlatform, SoormaAgent`` in your own CDK app (needs the ``infra`` extra:
``pip install 'soorma[infra]'``). The names are loaded lazily, so the Lambda functions, which ship
``soorma.infra.runtime`` but not the AWS CDK, can import this package.
"""

from __future__ import annotations

from typing import Any

__all__ = ["SoormaPlatform", "SoormaAgent", "QueueWithDlq", "filter_policy", "build_app"]


def __getattr__(name: str) -> Any:
    if name in ("SoormaPlatform", "QueueWithDlq"):
        from soorma.infra import platform

        return getattr(platform, name)
    if name in ("SoormaAgent", "filter_policy"):
        from soorma.infra import agent

        return getattr(agent, name)
    if name == "build_app":
        from soorma.infra.app import build_app

        return build_app
    raise AttributeError(f"module 'soorma.infra' has no attribute {name!r}")
