"""The platform functions' settings: every ``SOORMA_*`` variable the registry, memory, gateway, authorizer, tracker
and migrate functions read, declared once (see :mod:`soorma.settings` for :class:`~soorma.settings.Setting` and the
variables shared with the SDK, which are imported here, not declared twice).

Plain Python (no pydantic): the authorizer and the migrator import this module and ship without pydantic.
"""

from __future__ import annotations

import json
from typing import Any

from soorma.settings import (  # noqa: F401  (re-exported: the functions read these shared settings from here)
    API_KEY_PEPPER,
    API_URL,
    APP_DATABASE_URL,
    APP_DB_PASSWORD,
    DATABASE_URL,
    JWT_SECRET,
    NATS_URL,
    PLATFORM_ADMIN_TENANT,
    Setting,
    integer,
    lowered,
    number,
    off_unless_on,
    on_unless_off,
    positive_integer_or_none,
    text,
    url,
)


def _positive_number(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError("must be a positive number") from None
    if not value > 0:
        raise ValueError("must be a positive number")
    return value


def _milliseconds(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ValueError("must be a whole number of milliseconds (0 = no limit)") from None
    if value < 0:
        raise ValueError("must not be negative")
    return value


def _audience(raw: str) -> tuple[str, ...]:
    return tuple(a.strip() for a in raw.split(",") if a.strip())


#: The vector width without ``SOORMA_EMBEDDING_DIMENSIONS`` for the migrations and the ``local`` model
#: (all-MiniLM-L6-v2); the ``bedrock`` and ``openai`` providers default to their models' own widths.
DEFAULT_EMBEDDING_DIMENSIONS = 384

LOG_LEVEL: Setting[str] = Setting(
    "SOORMA_LOG_LEVEL", "log level of the local stack and of the NATS bridge on Fargate", text, "INFO")

# ---------------------------------------------------------------------------------------------------- databases

DB_STATEMENT_TIMEOUT_MS: Setting[int] = Setting(
    "SOORMA_DB_STATEMENT_TIMEOUT_MS", "the functions' database connections: PostgreSQL `statement_timeout` (a "
    "longer statement, or lock wait, is cancelled: 503 with `Retry-After`); `0` = no limit", _milliseconds, 15_000)
DB_IDLE_IN_TRANSACTION_TIMEOUT_MS: Setting[int] = Setting(
    "SOORMA_DB_IDLE_IN_TRANSACTION_TIMEOUT_MS", "the functions' database connections: PostgreSQL "
    "`idle_in_transaction_session_timeout`; `0` = no limit", _milliseconds, 60_000)

DB_CONNECT_WAIT_S: Setting[float] = Setting(
    "SOORMA_DB_CONNECT_WAIT_S", "seconds a function waits for a database connection before answering 503 with "
    "`Retry-After` (Aurora Serverless v2 resuming from 0 ACU takes about 15 s); the HTTP functions' 29 s timeout "
    "leaves the rest for the request's own work", _positive_number, 20.0, default_doc="`20`")
DB_RETRY_AFTER_S: Setting[int] = Setting(
    "SOORMA_DB_RETRY_AFTER_S", "the `Retry-After` (seconds) of a 503 answered because the database is unavailable",
    positive_integer_or_none, 5)

# ------------------------------------------------------------------------------------------------ rate limits

RATE_KEY_RPS: Setting[float] = Setting(
    "SOORMA_RATE_KEY_RPS", "default token bucket per API key (or JWT principal): requests per second; a tenant's own "
    "settings override (`PATCH /v1/tenants/{id}`)", _positive_number, 50.0, default_doc="`50`")
RATE_KEY_BURST: Setting[float] = Setting(
    "SOORMA_RATE_KEY_BURST", "default token bucket per API key (or JWT principal): burst (at least 1)",
    _positive_number, 100.0, default_doc="`100`")
RATE_TENANT_RPS: Setting[float] = Setting(
    "SOORMA_RATE_TENANT_RPS", "default token bucket per platform tenant: requests per second", _positive_number,
    200.0, default_doc="`200`")
RATE_TENANT_BURST: Setting[float] = Setting(
    "SOORMA_RATE_TENANT_BURST", "default token bucket per platform tenant: burst (at least 1)", _positive_number,
    400.0, default_doc="`400`")
RATE_AGENT_RPS: Setting[float] = Setting(
    "SOORMA_RATE_AGENT_RPS", "token bucket per agent credential (role `agent`, issued at deploy), requests per "
    "second: the platform's own agents do the work of goals already admitted at the edge, so they have their own, "
    "larger bucket and do not draw from the tenant's; buckets are keyed by platform tenant and credential",
    _positive_number, 1000.0, default_doc="`1000`")
RATE_AGENT_BURST: Setting[float] = Setting(
    "SOORMA_RATE_AGENT_BURST", "token bucket per agent credential: burst (at least 1)", _positive_number, 2000.0,
    default_doc="`2000`")
RATE_LIMITS: Setting[bool] = Setting(
    "SOORMA_RATE_LIMITS", "`off` (or `0`, `false`, `no`) disables the token buckets (revocation and suspension are "
    "still checked per request)", on_unless_off, True)

# -------------------------------------------------------------------------------------------------------- JWTs

JWT_JWKS_URL: Setting[str | None] = Setting(
    "SOORMA_JWT_JWKS_URL", "JWKS of an OIDC issuer (Cognito: "
    "`https://cognito-idp.<region>.amazonaws.com/<pool>/.well-known/jwks.json`): RS256/ES256 JWTs", text, None,
    default_doc="unset (RS256 refused)")
JWT_JWKS_CACHE_SECONDS: Setting[float] = Setting(
    "SOORMA_JWT_JWKS_CACHE_SECONDS", "seconds the JWKS keys are cached", number, 300.0, default_doc="`300`")
JWT_AUDIENCE: Setting[tuple[str, ...]] = Setting(
    "SOORMA_JWT_AUDIENCE", "accepted `aud` values (comma-separated); **required** whenever JWTs are on "
    "(`SOORMA_JWT_SECRET` or `SOORMA_JWT_JWKS_URL`): without it the authorizer fails with a configuration error (and "
    "`cdk synth` refuses `jwt_secret`/`jwt_jwks_url` without `jwt_audience`)", _audience, (), default_doc="unset")
JWT_ISSUER: Setting[str | None] = Setting(
    "SOORMA_JWT_ISSUER", "required `iss` (checked when set)", text, None)
JWT_LEEWAY_SECONDS: Setting[float] = Setting(
    "SOORMA_JWT_LEEWAY_SECONDS", "clock skew allowed on `exp`/`nbf`/`iat`", number, 0.0, default_doc="`0`")
JWT_DEFAULT_ROLE: Setting[str] = Setting(
    "SOORMA_JWT_DEFAULT_ROLE", "role of a token naming none. A JWT's tenant and role come only from issuer-set "
    "claims (`tenant_id` / `platform_tenant_id`, `role` / `roles` / `principal_type`, `cognito:groups`), **never** "
    "from Cognito's user-writable `custom:` attributes: with Cognito, add them with a pre-token-generation Lambda "
    "trigger, and roles as groups", text, "user")

# ------------------------------------------------------------------------------------------- identity service

IDENTITY_ISSUER: Setting[str] = Setting(
    "SOORMA_IDENTITY_ISSUER", "`iss` of the JWTs the platform issues (`/v1/identity/tokens/issue`, "
    "`/v1/identity/tokens/exchange`), checked by the authorizer; soorma-core's value by default", text,
    "soorma-identity-service")
IDENTITY_AUDIENCE: Setting[str] = Setting(
    "SOORMA_IDENTITY_AUDIENCE", "`aud` of the JWTs the platform issues (soorma-core's value by default)", text,
    "soorma-services")
IDENTITY_TOKEN_TTL_SECONDS: Setting[float] = Setting(
    "SOORMA_IDENTITY_TOKEN_TTL_SECONDS", "lifetime of the JWTs the platform issues", _positive_number, 900.0,
    default_doc="`900` (15 min)")
IDENTITY_KEY_ROTATION_SECONDS: Setting[float] = Setting(
    "SOORMA_IDENTITY_KEY_ROTATION_SECONDS", "how long one signing key signs before the next one takes over",
    _positive_number, 30 * 86400.0, default_doc="`2592000` (30 days)")
IDENTITY_KEY_PUBLISH_LEAD_SECONDS: Setting[float] = Setting(
    "SOORMA_IDENTITY_KEY_PUBLISH_LEAD_SECONDS", "how long a new signing key is in the JWKS before it signs (longer "
    "than any verifier caches the JWKS: the JWKS answer says `max-age=300`)", number, 3600.0, default_doc="`3600`")

# ---------------------------------------------------------------------------------------------------- gateway

EVENT_TRANSPORT: Setting[str] = Setting(
    "SOORMA_EVENT_TRANSPORT", "how the gateway publishes events "
    "(`soorma.functions.gateway.publisher.publisher_from_env`): `nats` (JetStream) or `sns` (the SNS topic; `sqs` "
    "means the same); for `soorma local up` (same as `--transport`): `nats` (the bridge) or `sqs`/`sns` (moto, "
    "queues, local event source mappings)", lowered, "nats")
SNS_TOPIC_ARN: Setting[str | None] = Setting(
    "SOORMA_SNS_TOPIC_ARN", "the event topic of the `sns` transport; boto3 takes the endpoint from "
    "`AWS_ENDPOINT_URL` (moto, LocalStack)", text, None, default_doc="`SOORMA_EVENTS_TOPIC_ARN`")
EVENTS_TOPIC_ARN: Setting[str | None] = Setting(
    "SOORMA_EVENTS_TOPIC_ARN", "the event topic as the CDK app sets it (used when `SOORMA_SNS_TOPIC_ARN` is unset)",
    text, None)
# ------------------------------------------------------------------------------------------ timers and schedules

SCHEDULER_TARGET_ARN: Setting[str | None] = Setting(
    "SOORMA_SCHEDULER_TARGET_ARN", "AWS: the function EventBridge Scheduler invokes when a timer or a schedule's run "
    "is due (set by the CDK app; a value ending in `:function:` is completed with the running function's name); "
    "unset locally, where the stack's own scheduler fires them",
    text, None)
SCHEDULER_ROLE_ARN: Setting[str | None] = Setting(
    "SOORMA_SCHEDULER_ROLE_ARN", "AWS: the role EventBridge Scheduler assumes to invoke the scheduler function (set "
    "by the CDK app)", text, None)
SCHEDULER_GROUP: Setting[str] = Setting(
    "SOORMA_SCHEDULER_GROUP", "AWS: the EventBridge Scheduler schedule group of the timers' one-time schedules",
    text, "default")
SCHEDULE_MIN_INTERVAL_S: Setting[float] = Setting(
    "SOORMA_SCHEDULE_MIN_INTERVAL_S", "the shortest interval (seconds) a schedule's `rate(...)` may ask for; below "
    "60 the local extension `rate(N seconds)` is accepted (tests, the local stack; EventBridge's own minimum is one "
    "minute)", _positive_number, 60.0, default_doc="`60`")

CHAT_WAIT_SECONDS: Setting[float] = Setting(
    "SOORMA_CHAT_WAIT_SECONDS", "how long `POST /v1/chat/completions` waits for its goal before answering 504 with "
    "the goal id (at most 25)", number, 20.0, default_doc="`20`")
A2A_CARD_TENANT: Setting[str | None] = Setting(
    "SOORMA_A2A_CARD_TENANT", "the tenant whose registry gives the skills of the public agent card "
    "`/.well-known/agent-card.json`", text, None,
    default_doc="`local` in the local stack, else unset (the card has only the generic `goal` skill)")
A2A_DEFAULT_GOAL_TYPE: Setting[str | None] = Setting(
    "SOORMA_A2A_DEFAULT_GOAL_TYPE", "goal type of an A2A `SendMessage` (0.3: `message/send`) whose metadata names "
    "none", text, None)
A2A_BLOCKING_SECONDS: Setting[float] = Setting(
    "SOORMA_A2A_BLOCKING_SECONDS", "how long an A2A `SendMessage` without `returnImmediately` waits for the goal to end "
    "(at most 25)", number, 20.0,
    default_doc="`20`")

# ----------------------------------------------------------------------------------------- memory: embeddings

EMBEDDING_PROVIDER: Setting[str] = Setting(
    "SOORMA_EMBEDDING_PROVIDER", "embedding model of the memory service: `local` (all-MiniLM-L6-v2 on ONNX Runtime, "
    "384 dims, offline), `bedrock` (Amazon Titan Text Embeddings v2, 256/512/1024 dims), `openai` (any "
    "OpenAI-compatible `POST /embeddings`)", lowered, "local")
EMBEDDING_DIMENSIONS: Setting[int | None] = Setting(
    "SOORMA_EMBEDDING_DIMENSIONS", "vector size the migrations create and the provider must give (HNSW indexes at "
    "most 2,000)", integer, None, blank_is_unset=False,
    default_doc="`384` (`local`, the migrations), `1024` (`bedrock`), `1536` (`openai`)")
EMBEDDING_MODEL_PATH: Setting[str | None] = Setting(
    "SOORMA_EMBEDDING_MODEL_PATH", "`local`: another ONNX file (e.g. the int8 build of `python -m "
    "soorma.functions.memory.embeddings.quantize OUT`)", text, None, default_doc="packaged")
EMBEDDING_TOKENIZER_PATH: Setting[str | None] = Setting(
    "SOORMA_EMBEDDING_TOKENIZER_PATH", "`local`: another `tokenizer.json`", text, None, default_doc="packaged")
EMBEDDING_THREADS: Setting[int | None] = Setting(
    "SOORMA_EMBEDDING_THREADS", "`local`: ONNX Runtime threads", positive_integer_or_none, None,
    default_doc="physical cores (≤4)")
EMBEDDING_BATCH_SIZE: Setting[int] = Setting(
    "SOORMA_EMBEDDING_BATCH_SIZE", "`local`: texts per batch (float graph; the int8 graph runs one text at a time)",
    positive_integer_or_none, 32)
EMBEDDING_MAX_TOKENS: Setting[int] = Setting(
    "SOORMA_EMBEDDING_MAX_TOKENS", "`local`: truncation in word pieces", positive_integer_or_none, 256)
EMBEDDING_INT8: Setting[bool] = Setting(
    "SOORMA_EMBEDDING_INT8", "`local`: `0` (or `false`, `no`, `off`) keeps the float graph; otherwise the int8 graph "
    "is used, built once (needs the `onnx` package, in the `local` extra) and cached", on_unless_off, True)
EMBEDDING_CACHE_DIR: Setting[str | None] = Setting(
    "SOORMA_EMBEDDING_CACHE_DIR", "`local`: where the int8 build is cached", text, None,
    default_doc="`$XDG_CACHE_HOME/soorma`, else `~/.cache/soorma`")
BEDROCK_EMBEDDING_MODEL: Setting[str] = Setting(
    "SOORMA_BEDROCK_EMBEDDING_MODEL", "`bedrock`: model id", text, "amazon.titan-embed-text-v2:0")
BEDROCK_REGION: Setting[str | None] = Setting(
    "SOORMA_BEDROCK_REGION", "`bedrock`: region", text, None, default_doc="boto3's")
BEDROCK_CONCURRENCY: Setting[int] = Setting(
    "SOORMA_BEDROCK_CONCURRENCY", "`bedrock`: parallel `InvokeModel` calls per batch", positive_integer_or_none, 8)
OPENAI_BASE_URL: Setting[str | None] = Setting(
    "SOORMA_OPENAI_BASE_URL", "`openai`: the embeddings endpoint", text, None,
    default_doc="`OPENAI_BASE_URL`, else `https://api.openai.com/v1`")
OPENAI_API_KEY: Setting[str | None] = Setting(
    "SOORMA_OPENAI_API_KEY", "`openai`: the endpoint's key (may be empty for local servers)", text, None,
    default_doc="`OPENAI_API_KEY`")
OPENAI_EMBEDDING_MODEL: Setting[str] = Setting(
    "SOORMA_OPENAI_EMBEDDING_MODEL", "`openai`: model", text, "text-embedding-3-small")
OPENAI_SEND_DIMENSIONS: Setting[bool] = Setting(
    "SOORMA_OPENAI_SEND_DIMENSIONS", "`openai`: whether to send `dimensions` (`0`, `false`, `no`: not)",
    lambda raw: raw.strip().lower() not in ("0", "false", "no"), True, blank_is_unset=False,
    default_doc="`true`")
OPENAI_BATCH_SIZE: Setting[int] = Setting(
    "SOORMA_OPENAI_BATCH_SIZE", "`openai`: texts per request", positive_integer_or_none, 128)

# --------------------------------------------------------------------------------------------------- webhooks


def _retry_schedule(raw: str) -> tuple[float, ...]:
    try:
        delays = tuple(float(part) for part in raw.split(",") if part.strip())
    except ValueError:
        raise ValueError("must be comma-separated seconds, e.g. 0,5,300") from None
    if not delays or any(d < 0 for d in delays):
        raise ValueError("must name at least one attempt, with no negative delay")
    return delays


#: The Standard Webhooks specification's suggested schedule (https://www.standardwebhooks.com/, "Retry schedule"):
#: immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
WEBHOOK_RETRY_SCHEDULE: Setting[tuple[float, ...]] = Setting(
    "SOORMA_WEBHOOK_RETRY_SCHEDULE", "webhooks: the attempts of a delivery, comma-separated, one entry per attempt: "
    "the first is made at once (its entry counts the attempt, its value is not used), each later one its entry's "
    "seconds after the previous (±20 % jitter); after the last failed attempt the delivery is dead-lettered "
    "(`soorma webhooks deliveries --failed`, `soorma webhooks replay`)",
    _retry_schedule, (0.0, 5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0),
    default_doc="`0,5,300,1800,7200,18000,36000,36000` (the specification's)")
WEBHOOK_TIMEOUT_S: Setting[float] = Setting(
    "SOORMA_WEBHOOK_TIMEOUT_S", "webhooks: seconds one delivery attempt waits for the receiver's answer (then it "
    "counts as failed and is retried)", _positive_number, 10.0, default_doc="`10`")
WEBHOOK_ALLOW_LOOPBACK: Setting[bool] = Setting(
    "SOORMA_WEBHOOK_ALLOW_LOOPBACK", "webhooks: `on` accepts `http://` URLs and loopback addresses (`127.0.0.1`, "
    "`localhost`, `::1`); the local stack sets it, a cloud deployment never does (there only `https` URLs to public "
    "addresses are accepted: no SSRF into the VPC or the metadata service)", off_unless_on, False,
    default_doc="`off` (`on` in the local stack)")
WEBHOOK_SEND_QUEUE_URL: Setting[str | None] = Setting(
    "SOORMA_WEBHOOK_SEND_QUEUE_URL", "webhooks in AWS (set by the CDK app): the SQS queue of attempts, read by the "
    "sender function outside the VPC", text, None)
WEBHOOK_CONTROL_QUEUE_URL: Setting[str | None] = Setting(
    "SOORMA_WEBHOOK_CONTROL_QUEUE_URL", "webhooks in AWS (set by the CDK app): the SQS queue of attempt outcomes and "
    "wake-ups, read by the webhooks function in the VPC; unset (the local stack) the sender is woken by `NOTIFY`",
    text, None)


# ---------------------------------------------------------------------------------------------------- goal streams
STREAM_CONNECTIONS_URL: Setting[str | None] = Setting(
    "SOORMA_STREAM_CONNECTIONS_URL", "gateway, tracker: the WebSocket API's connection management endpoint "
    "(`https://<api id>.execute-api.<region>.amazonaws.com/<stage>`; `soorma local` sets its own) the live goal "
    "streams are pushed to; unset: nothing is pushed", url, None)
EVENT_STREAM_RETENTION_S: Setting[float] = Setting(
    "SOORMA_EVENT_STREAM_RETENTION_S", "tracker: how long (seconds) the events an event subscription "
    "(`subscribe` on the live stream, `EventClient`) can resume from are kept; older ones are pruned as new ones "
    "are recorded", _positive_number, 86400.0, default_doc="`86400` (one day)")


# ------------------------------------------------------------------------------------- function usage in AWS
def _log_group_limits(raw: str) -> dict[str, dict[str, Any]]:
    try:
        value = json.loads(raw)
    except ValueError:
        raise ValueError("must be a JSON list") from None
    if not isinstance(value, list) or not all(
        isinstance(entry, dict) and isinstance(entry.get("log_group"), str)
        and isinstance(entry.get("platform_tenant_id"), str)
        and isinstance(entry.get("memory_mb"), int) and isinstance(entry.get("timeout_s"), int)
        for entry in value
    ):
        raise ValueError('must be a list of {"log_group": str, "platform_tenant_id": str, "memory_mb": int, '
                         '"timeout_s": int}')
    return {entry["log_group"]: entry for entry in value}


USAGE_LOG_GROUPS: Setting[dict[str, dict[str, Any]]] = Setting(
    "SOORMA_USAGE_LOG_GROUPS", "usage recorder in AWS (set by the CDK app): the agent functions' log groups it "
    "is subscribed to, a JSON list of `{\"log_group\", \"platform_tenant_id\", \"memory_mb\", \"timeout_s\"}`: a "
    "log group's records count for that platform tenant's goals only, at most memory × timeout per invocation; "
    "records of any other log group are ignored", _log_group_limits, {}, default_doc="`[]`")
