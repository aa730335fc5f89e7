"""Lambda entry point of the migrator: a CloudFormation custom resource (via the CDK provider framework) or a
direct invoke. Applies pending migrations with the owner connection in ``SOORMA_DATABASE_URL``."""

from __future__ import annotations

from typing import Any

from soorma.functions.migrate.app import apply
from soorma.functions.shared import settings


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Returns ``{"PhysicalResourceId": "soorma-migrations", "Data": {"Applied": "1,2"}}``; deletes are no-ops."""
    if event.get("RequestType") == "Delete":
        return {"PhysicalResourceId": event.get("PhysicalResourceId", "soorma-migrations")}
    applied = apply(settings.DATABASE_URL.required())
    return {
        "PhysicalResourceId": "soorma-migrations",
        "Data": {"Applied": ",".join(str(m.version) for m in applied)},
    }
