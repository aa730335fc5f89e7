"""The AWS run-time glue's settings: the variables the boot module of every Lambda function
(:mod:`soorma.infra.runtime.boot`) and the NATS bridge on Fargate (:mod:`soorma.infra.runtime.bridge_main`) read,
declared once (see :mod:`soorma.settings` for :class:`~soorma.settings.Setting`). Variables the SDK also reads are
imported from it, not declared twice.

Imports only :mod:`soorma.settings`: an agent's bundle carries the SDK and ``soorma.infra.runtime``, nothing else.
"""

from __future__ import annotations

from soorma.settings import (  # noqa: F401  (re-exported: boot fills these from the secrets below)
    API_KEY,
    API_KEY_PEPPER,
    APP_DATABASE_URL,
    APP_DB_PASSWORD,
    DATABASE_URL,
    JWT_SECRET,
    NATS_URL,
    Setting,
    number,
    text,
)

# ------------------------------------------------------------------------- the functions' boot (set by the CDK app)

HANDLER: Setting[str | None] = Setting(
    "SOORMA_HANDLER", "AWS: the function's real handler (`package.module.attribute`), which the boot module imports "
    "after filling the secrets below", text, None, default_doc="set by the CDK app")
DB_NAME: Setting[str] = Setting(
    "SOORMA_DB_NAME", "AWS: the database name when a database secret names none", text, "soorma")
DB_HOST: Setting[str | None] = Setting(
    "SOORMA_DB_HOST", "AWS: the cluster's writer endpoint, for a database secret that names no host (the owner "
    "secret RDS manages holds only `username` and `password`)", text, None, default_doc="set by the CDK app")
DB_PORT: Setting[float] = Setting(
    "SOORMA_DB_PORT", "AWS: the cluster's port, for a database secret that names none", number, 5432.0,
    default_doc="`5432`")
APP_DB_SECRET_ARN: Setting[str | None] = Setting(
    "SOORMA_APP_DB_SECRET_ARN", "AWS: the secret of `soorma_app`'s credentials; fills `SOORMA_APP_DATABASE_URL`",
    text, None, default_doc="set by the CDK app")
OWNER_DB_SECRET_ARN: Setting[str | None] = Setting(
    "SOORMA_OWNER_DB_SECRET_ARN", "AWS: the secret of the cluster's owner credentials (the migrator only); fills "
    "`SOORMA_DATABASE_URL` and `SOORMA_APP_DB_PASSWORD`, read again on every invocation", text, None,
    default_doc="set by the CDK app")
API_KEY_PEPPER_SECRET_ARN: Setting[str | None] = Setting(
    "SOORMA_API_KEY_PEPPER_SECRET_ARN", "AWS: the secret of the API key pepper; fills `SOORMA_API_KEY_PEPPER`", text,
    None, default_doc="set by the CDK app")
NATS_SECRET_ARN: Setting[str | None] = Setting(
    "SOORMA_NATS_SECRET_ARN", "AWS: the secret `{\"url\": \"nats://user:password@host:4222\"}`; fills "
    "`SOORMA_NATS_URL`", text, None, default_doc="set by the CDK app")
JWT_SECRET_ARN: Setting[str | None] = Setting(
    "SOORMA_JWT_SECRET_ARN", "AWS: the secret of the HS256 JWT secret (the plain string, or `{\"secret\": ...}`); "
    "fills `SOORMA_JWT_SECRET`", text, None, default_doc="set by the CDK app")
API_KEY_SECRET_ARN: Setting[str | None] = Setting(
    "SOORMA_API_KEY_SECRET_ARN", "AWS: the secret of an agent's API key (written by the registrar on deploy); fills "
    "`SOORMA_API_KEY`", text, None, default_doc="set by the CDK app")

# ---------------------------------------------------------------------------------------- the bridge on Fargate

TRACKER_FUNCTION: Setting[str | None] = Setting(
    "SOORMA_TRACKER_FUNCTION", "AWS bridge: the tracker function it invokes with every event", text, None,
    default_doc="set by the CDK app")
BRIDGE_REFRESH_SECONDS: Setting[float] = Setting(
    "SOORMA_BRIDGE_REFRESH_SECONDS", "AWS bridge: seconds between reads of the deployed agents' routes", number, 5.0,
    default_doc="`5`")
BRIDGE_NAME: Setting[str] = Setting(
    "SOORMA_BRIDGE_NAME", "AWS bridge: its name in logs and consumer metadata", text, "aws")
# Read by fetch.py (beside this module), which runs as `python -c` before the package is on the container (so it
# cannot import this module): declared here for the configuration table and the test that checks fetch.py's names.
BUNDLE_BUCKET: Setting[str | None] = Setting(
    "SOORMA_BUNDLE_BUCKET", "AWS bridge container: the S3 bucket of the bridge bundle", text, None,
    default_doc="set by the CDK app")
BUNDLE_KEY: Setting[str | None] = Setting(
    "SOORMA_BUNDLE_KEY", "AWS bridge container: the S3 key of the bridge bundle", text, None,
    default_doc="set by the CDK app")
