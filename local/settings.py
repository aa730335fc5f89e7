"""The local stack's settings (``soorma local``): every ``SOORMA_*`` variable the stack and its Compose path read,
declared once (see :mod:`soorma.settings` for :class:`~soorma.settings.Setting`). Variables the SDK or the platform
functions also read are imported from their modules, not declared twice.

Writing ``SOORMA_*`` variables into a function's environment (the stack configuring its functions and agents) is
not reading them: that stays in :mod:`soorma.local.stack`.
"""

from __future__ import annotations

from soorma.functions.shared.settings import (  # noqa: F401  (re-exported: the stack reads these from here)
    APP_DATABASE_URL,
    DATABASE_URL,
    EMBEDDING_PROVIDER,
    EVENT_TRANSPORT,
    LOG_LEVEL,
)
from soorma.settings import (  # noqa: F401
    API_KEY,
    API_URL,
    HOME,
    NATS_URL,
    Setting,
    integer,
    number,
    off_unless_on,
    text,
)


def _port_or_none(raw: str) -> int | None:
    """A port number, else ``None`` (the default: the Compose path ignores a malformed port, as compose.yaml does)."""
    try:
        return int(raw)
    except ValueError:
        return None


LOCAL_HOST: Setting[str] = Setting(
    "SOORMA_LOCAL_HOST", "where the local API listens: host", text, "127.0.0.1")
LOCAL_PORT: Setting[int] = Setting(
    "SOORMA_LOCAL_PORT", "where the local API listens: port", integer, 8787)
NATS_PORT: Setting[int] = Setting(
    "SOORMA_NATS_PORT", "the embedded NATS port", integer, 14222)
LOCAL_AUTHORIZER_TTL: Setting[float] = Setting(
    "SOORMA_LOCAL_AUTHORIZER_TTL", "seconds the local API Gateway caches an authorizer answer, keyed on "
    "`Authorization` (required then, as on AWS; `0`: no cache, `X-API-Key` accepted too, but never together with an "
    "`Authorization` header: a request with two credentials, or a non-`Bearer` `Authorization`, is refused)", number,
    30.0, default_doc="`30`")
MOTO_PORT: Setting[int] = Setting(
    "SOORMA_MOTO_PORT", "port of the local stack's moto server (`--transport sqs`); `AWS_ENDPOINT_URL` set instead "
    "means \"use that SNS/SQS endpoint\" and starts no moto", integer, 14566)
LOCAL_DB_PAUSABLE: Setting[bool] = Setting(
    "SOORMA_LOCAL_DB_PAUSABLE", "`on`: the functions reach PostgreSQL through the pausable proxy, so "
    "`POST /_local/db/pause` can simulate a paused Aurora Serverless v2 cluster (soorma.local.dbpause); off: they "
    "connect directly (the proxy adds two crossings to every database round trip: a worker-basic goal at p50 took "
    "64-70 ms without it against 78 ms with it, docs/performance.md)", off_unless_on, False)
LOCAL_SQS_VISIBILITY_TIMEOUT: Setting[int | None] = Setting(
    "SOORMA_LOCAL_SQS_VISIBILITY_TIMEOUT", "visibility timeout (seconds) of the local stack's agent queues, which is "
    "also the pause before a failed message's next delivery", integer, None,
    default_doc="the function's timeout + 5")

# ------------------------------------------------------------------------------ the Compose path (--docker)

LOCALSTACK_AUTH_TOKEN: Setting[str | None] = Setting(
    "LOCALSTACK_AUTH_TOKEN", "starts LocalStack in the Compose path (never needed otherwise)", text, None)
DOCKER_NATS_PORT: Setting[int] = Setting(
    "SOORMA_DOCKER_NATS_PORT", "host port of NATS in the Compose path (`soorma local up --docker`)", _port_or_none,
    14222)
DOCKER_PG_PORT: Setting[int] = Setting(
    "SOORMA_DOCKER_PG_PORT", "host port of PostgreSQL in the Compose path", _port_or_none, 15432)
DOCKER_LOCALSTACK_PORT: Setting[int] = Setting(
    "SOORMA_DOCKER_LOCALSTACK_PORT", "host port of LocalStack in the Compose path", _port_or_none, 4566)
DOCKER_FUNCTION_PORTS: dict[str, Setting[int]] = {
    logical: Setting(f"SOORMA_DOCKER_{logical.upper()}_PORT",
                     f"host port of the {logical} function's Runtime Interface Emulator in the Compose path",
                     _port_or_none, port)
    for logical, port in (("registry", 9001), ("memory", 9002), ("gateway", 9003), ("authorizer", 9004),
                          ("tracker", 9005), ("protocols", 9006), ("identity", 9007))
}
