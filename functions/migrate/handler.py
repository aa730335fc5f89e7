"""Lambda entry point of the migrator: a CloudFormation custom resource (via the CDK provider framework) or a
direct invoke. Applies pending migrations with the owner connection in ``SOORMA_DATABASE_URL``."""

from __future__ import annotations

from typing import Any

from soorma.functions.migrate.app import apply
from soorma.functions.shared import settings



def _required(setting: settings.Setting[str | None]) -> str:
    """The setting's value; ``KeyError`` naming it when unset (the handler's failure when the CDK app did not set
    it)."""
    value = setting.get()
    if value is None:
        raise KeyError(setting.name)
    return value


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Returns ``{"PhysicalResourceId": "soorma-migrations", "Data": {"Applied": "1,2"}}``; deletes are no-ops."""
    if event.get("RequestType") == "Delete":
        return {"PhysicalResourceId": event.get("PhysicalResourceId", "soorma-migrations")}
    applied = apply(_required(settings.DATABASE_URL))
    return {
        "PhysicalResourceId": "soorma-migrations",
        "Data": {"Applied": ",".join(str(m.version) for m in applied)},
    }
