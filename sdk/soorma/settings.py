"""The SDK's and agent runtime's settings: every ``SOORMA_*`` environment variable an agent reads, declared once.

Each deployable has one settings module that declares its variables as :class:`Setting` objects (name, type through
its parser, default, description); code reads a variable only through them, and the README's configuration table is
generated from them (``python -m soorma.cli.settings_doc``; a test fails when they differ):

* the SDK and agent runtime: this module;
* the platform functions: :mod:`soorma.functions.shared.settings`;
* the local stack: :mod:`soorma.local.settings`;
* the CDK app and the functions' boot code: :mod:`soorma.infra.settings`.

A variable read by several deployables is declared in the lowest one (this module, the wire contracts) and imported
by the others. Reads are lazy: :meth:`Setting.get` reads the environment when called, so a value set after import
(tests with ``monkeypatch.setenv``, the boot module filling secrets) takes effect. :class:`Setting` is plain Python,
not pydantic, because the authorizer and migrator functions ship without pydantic and an agent's event dispatch
reads some settings per event.

One base URL (``SOORMA_API_URL``) serves every route; soorma-core's per-service variables
(``SOORMA_REGISTRY_URL``, ``SOORMA_EVENT_SERVICE_URL``, ``SOORMA_MEMORY_URL``, ``SOORMA_TRACKER_URL``) override the
base for that one client when set, so code and ``.env`` files written for soorma-core keep working.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Callable, Generic, Mapping, TypeVar

T = TypeVar("T")

DEFAULT_API_URL = "http://127.0.0.1:8787"
DEFAULT_TIMEOUT = 30.0


@dataclass(frozen=True)
class Setting(Generic[T]):
    """One environment variable: ``name``; ``parse`` turns its text into the typed value (raising ``ValueError``
    with the rest of a sentence, e.g. ``"must be positive"``; returning ``None`` for "no value"); ``default`` when it
    is unset, has no value, or is blank (unless ``blank_is_unset`` is false); ``description`` and ``default_doc``
    (the default as the README shows it, when it is computed or differs from ``default``) for the configuration
    table."""

    name: str
    description: str
    parse: Callable[[str], T]
    default: T
    default_doc: str | None = None
    blank_is_unset: bool = True

    def raw(self, environ: Mapping[str, str] | None = None) -> str | None:
        """The variable's text in ``environ`` (default ``os.environ``), ``None`` when unset."""
        return (os.environ if environ is None else environ).get(self.name)

    def is_set(self, environ: Mapping[str, str] | None = None) -> bool:
        """Whether the variable has a value (not unset; not blank when blanks count as unset)."""
        raw = self.raw(environ)
        return raw is not None and not (self.blank_is_unset and not raw.strip())

    def get(self, environ: Mapping[str, str] | None = None) -> T:
        """The typed value in ``environ`` (default ``os.environ``, read now), else :attr:`default`. Raises
        ``ValueError`` ``"<NAME>=<text> <reason>"`` when ``parse`` rejects the text."""
        raw = self.raw(environ)
        if raw is None or (self.blank_is_unset and not raw.strip()):
            return self.default
        try:
            value = self.parse(raw)
        except ValueError as exc:
            raise ValueError(f"{self.name}={raw!r} {exc}") from None
        return self.default if value is None else value

    def required(self, environ: Mapping[str, str] | None = None) -> T:
        """:meth:`get` for a variable the caller cannot do without: ``KeyError`` naming it when unset (as
        ``os.environ[name]`` raised)."""
        if not self.is_set(environ):
            raise KeyError(self.name)
        return self.get(environ)

    @property
    def documented_default(self) -> str:
        """The default as the configuration table shows it."""
        if self.default_doc is not None:
            return self.default_doc
        if self.default is None:
            return "unset"
        if isinstance(self.default, bool):
            return "`on`" if self.default else "`off`"
        return f"`{self.default}`"


# ------------------------------------------------------------------------------------------------------ parsers
# Each takes the variable's text and returns the value or raises ValueError with the end of a sentence that
# Setting.get() prefixes with "<NAME>=<text>".


def text(raw: str) -> str:
    """The text as it is."""
    return raw


def stripped(raw: str) -> str:
    """The text without surrounding whitespace."""
    return raw.strip()


def lowered(raw: str) -> str:
    """The text stripped and lower-cased (modes, provider names)."""
    return raw.strip().lower()


def url(raw: str) -> str | None:
    """A base URL without surrounding whitespace or trailing slashes (``None`` when nothing is left)."""
    return raw.strip().rstrip("/") or None


def number(raw: str) -> float:
    """A decimal number."""
    try:
        return float(raw)
    except ValueError:
        raise ValueError("is not a number") from None


def integer(raw: str) -> int:
    """A whole number in decimal digits, optionally negative (not ``int()``'s ``+5`` or ``1_000``)."""
    digits = raw.strip()
    if not digits.lstrip("-").isdigit() or digits.count("-") > 1:
        raise ValueError("is not an integer")
    return int(digits)


def positive_integer(raw: str) -> int:
    """A whole number above 0."""
    value = integer(raw)
    if value <= 0:
        raise ValueError("is not a positive integer")
    return value


def positive_integer_or_none(raw: str) -> int | None:
    """A whole number above 0, else ``None`` (the setting's default: these settings ignore a malformed value)."""
    raw = raw.strip()
    return int(raw) if raw.isdigit() and int(raw) > 0 else None


def on_unless_off(raw: str) -> bool:
    """``False`` for ``off``, ``0``, ``false``, ``no`` (any case), ``True`` for anything else."""
    return raw.strip().lower() not in ("off", "0", "false", "no")


def off_unless_on(raw: str) -> bool:
    """``True`` for ``1``, ``true``, ``yes``, ``on`` (any case), ``False`` for anything else."""
    return raw.strip().lower() in ("1", "true", "yes", "on")


def _positive_seconds(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ValueError("must be a whole number of seconds") from None
    if value <= 0:
        raise ValueError("must be positive")
    return value


def _positive_seconds_digits(raw: str) -> int:
    raw = raw.strip()
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError("must be a positive number of seconds")
    return int(raw)


IDEMPOTENCY_MODES = ("commit", "platform", "local", "off")


def _idempotency_mode(raw: str) -> str | None:
    value = raw.strip().lower()
    if value not in IDEMPOTENCY_MODES:
        raise ValueError(f"is not one of {', '.join(IDEMPOTENCY_MODES)}")
    return value


# ------------------------------------------------------------------------------------------------------ settings

API_URL: Setting[str | None] = Setting(
    "SOORMA_API_URL", "the platform's API endpoint (all routes)", url, None,
    default_doc="`$SOORMA_HOME/credentials.json`, else `http://127.0.0.1:8787`")
API_KEY: Setting[str | None] = Setting(
    "SOORMA_API_KEY", "the caller's API key (`sk_<key_id>_<secret>`, sent as `Authorization: Bearer`)", text, None,
    default_doc="`SOORMA_AUTH_TOKEN`, else `$SOORMA_HOME/credentials.json`")
AUTH_TOKEN: Setting[str | None] = Setting(
    "SOORMA_AUTH_TOKEN", "soorma-core's name for `SOORMA_API_KEY` (used when that is unset)", text, None)
REGISTRY_URL: Setting[str | None] = Setting(
    "SOORMA_REGISTRY_URL", "soorma-core's registry URL; overrides `SOORMA_API_URL` for the registry client", url,
    None)
EVENT_SERVICE_URL: Setting[str | None] = Setting(
    "SOORMA_EVENT_SERVICE_URL", "soorma-core's event service URL; overrides `SOORMA_API_URL` for publishing", url,
    None)
MEMORY_URL: Setting[str | None] = Setting(
    "SOORMA_MEMORY_URL", "soorma-core's memory URL; overrides `SOORMA_API_URL` for the memory client", url, None)
MEMORY_SERVICE_URL: Setting[str | None] = Setting(
    "SOORMA_MEMORY_SERVICE_URL", "soorma-core's older name for `SOORMA_MEMORY_URL` (used when that is unset)", url,
    None)
TRACKER_URL: Setting[str | None] = Setting(
    "SOORMA_TRACKER_URL", "soorma-core's tracker URL; overrides `SOORMA_API_URL` for the tracker client", url, None)
TRACKER_SERVICE_URL: Setting[str | None] = Setting(
    "SOORMA_TRACKER_SERVICE_URL", "soorma-core's older name for `SOORMA_TRACKER_URL` (used when that is unset)", url,
    None)
STREAM_URL: Setting[str | None] = Setting(
    "SOORMA_STREAM_URL", "the live goal streams' WebSocket URL (`wss://<api id>.execute-api.<region>.amazonaws.com/"
    "<stage>` on AWS: the stack's output `StreamUrl`)", url, None,
    default_doc="`SOORMA_API_URL` as `ws(s)://…/v1/stream` (the local stack's)")
IDENTITY_URL: Setting[str | None] = Setting(
    "SOORMA_IDENTITY_URL", "soorma-core's identity service URL; overrides `SOORMA_API_URL` for the identity client",
    url, None)
IDENTITY_SUPERUSER_API_KEY: Setting[str | None] = Setting(
    "IDENTITY_SUPERUSER_API_KEY", "soorma-core's superuser key of the identity client (`IdentityServiceClient`): here "
    "an API key of a platform admin, sent as `X-Identity-Admin-Key` to onboard tenants", text, None,
    default_doc="`IDENTITY_ADMIN_API_KEY`, else `admin_api_key` of `$SOORMA_HOME/credentials.json`")
IDENTITY_ADMIN_API_KEY: Setting[str | None] = Setting(
    "IDENTITY_ADMIN_API_KEY", "soorma-core's older name for `IDENTITY_SUPERUSER_API_KEY`", text, None)
IDENTITY_TENANT_ADMIN_API_KEY: Setting[str | None] = Setting(
    "IDENTITY_TENANT_ADMIN_API_KEY", "the tenant admin key the identity client sends (`X-Identity-Admin-Key`) for "
    "principals, tokens and delegated issuers: an `admin` API key of the tenant (onboarding returns one)", text,
    None, default_doc="`tenant_admin_api_key` of `$SOORMA_HOME/credentials.json` (the local tenant's)")
HTTP_TIMEOUT: Setting[float] = Setting(
    "SOORMA_HTTP_TIMEOUT", "seconds per HTTP request of the SDK's platform clients", number, DEFAULT_TIMEOUT)
HOME: Setting[str | None] = Setting(
    "SOORMA_HOME", "the local stack's state folder (`credentials.json`, `secrets.json`, `state.json`, logs)", text,
    None, default_doc="`./.soorma`")
NATS_URL: Setting[str | None] = Setting(
    "SOORMA_NATS_URL", "the NATS (with JetStream) to use: the gateway's `nats` transport and the bridge; "
    "`soorma local up`: use it instead of the embedded one; `agent.run()`: else the local stack's", text, None,
    default_doc="embedded (local stack); the gateway: `nats://127.0.0.1:14222`")
PLATFORM_TENANT_ID: Setting[str | None] = Setting(
    "SOORMA_PLATFORM_TENANT_ID", "platform tenant of the events an agent consumes as a local process "
    "(`agent.run()`); in an agent function (set by `soorma local deploy` and `SoormaAgent`) the tenant whose events "
    "it accepts: an envelope of another platform tenant is refused unhandled, a terminal failure (dead-lettered at "
    "once by the bridge)", stripped, None, default_doc="`.soorma/credentials.json` (`agent.run()`), else unset")
API_KEY_PEPPER: Setting[str | None] = Setting(
    "SOORMA_API_KEY_PEPPER", "HMAC key of the stored API key hashes (authorizer and gateway), and the source of the "
    "delivery-grant key (HKDF-SHA256, `soorma.grants`; every HTTP function)", text, None,
    default_doc="generated into `.soorma/`")
GRANT_TTL_SECONDS: Setting[int] = Setting(
    "SOORMA_GRANT_TTL_SECONDS", "lifetime of the delivery grant the gateway stamps on every event it accepts "
    "(`delivery_grant`): an `agent` key acts for the event's service tenant/user (`X-Soorma-Service-Tenant` / "
    "`-User`) only with it (`X-Soorma-Grant`, sent by the SDK while it handles the event). A delivery retried after "
    "it expired fails with 403 and is dead-lettered; `soorma dlq replay` with the pepper re-mints it",
    _positive_seconds, 3600)
PLATFORM_ADMIN_TENANT: Setting[str] = Setting(
    "SOORMA_PLATFORM_ADMIN_TENANT", "the platform tenant whose `admin` keys onboard, suspend and configure tenants "
    "(`POST /v1/tenants`); the local stack's bootstrap key is `admin_api_key` in `.soorma/credentials.json`", text,
    "platform")
IDEMPOTENCY: Setting[str | None] = Setting(
    "SOORMA_IDEMPOTENCY", "how an agent function handles an event at most once (by event id): `commit` — each "
    "handler run's events and task-context writes are buffered and sent in ONE request when it returns "
    "(`POST /v1/events/commit`), applied in one transaction with an idempotency record keyed by agent, event id and "
    "handler, the events then published (a transactional outbox): one platform call per run, a failed run leaves "
    "nothing, a repeated run of a committed event changes nothing; `platform` — each "
    "record's dispatch goes through Powertools' `idempotent_function` on "
    "`soorma.idempotency.PlatformPersistenceLayer` (records in the memory function's PostgreSQL, "
    "`/v1/memory/idempotency/{key}`, keyed by agent name and event id), so a redelivery to any execution environment "
    "is skipped, a crashed invocation's event is retried after its in-progress expiry, and a failed handler's record "
    "is deleted for the retry; costs two memory round trips per new event; `local` — only each execution "
    "environment's own cache of handlers that succeeded; `off` — every delivery runs every handler",
    _idempotency_mode, None,
    default_doc="`commit` in a Lambda function (AWS, or `soorma local`'s runtime) with `SOORMA_API_URL` set, "
    "else `local`")
IDEMPOTENCY_EXPIRES_SECONDS: Setting[int] = Setting(
    "SOORMA_IDEMPOTENCY_EXPIRES_SECONDS", "`platform`: how long a completed event's record keeps it from running "
    "again (Powertools' `expires_after_seconds`)", _positive_seconds_digits, 3600)
LLM_PROVIDER: Setting[str] = Setting(
    "SOORMA_LLM_PROVIDER", "LLM provider of the SDK's AI helpers (`soorma.ai.llm`): `openai` (any OpenAI-compatible "
    "API), `bedrock` (Amazon Bedrock Converse, the function's AWS credentials) or `platform` (the platform's LLM gateway "
    "`POST /v1/llm/chat`: the tenant's provider, no key in the agent, tokens metered per goal)", lowered, "openai")
LLM_BASE_URL: Setting[str | None] = Setting(
    "SOORMA_LLM_BASE_URL", "the OpenAI-compatible endpoint (`ChoreographyPlanner`, `EventSelector`, the "
    "research-advisor's wording); `bedrock`: the endpoint URL", text, None,
    default_doc="`https://api.openai.com/v1`")
LLM_MODEL: Setting[str | None] = Setting(
    "SOORMA_LLM_MODEL", "the LLM's model id", text, None,
    default_doc="`gpt-4o-mini` (`openai`), `anthropic.claude-3-haiku-20240307-v1:0` (`bedrock`)")
LLM_API_KEY: Setting[str | None] = Setting(
    "SOORMA_LLM_API_KEY", "the OpenAI-compatible endpoint's key: the LLM's own, never the platform's", text, None)
LLM_REGION: Setting[str | None] = Setting(
    "SOORMA_LLM_REGION", "Bedrock region", text, None, default_doc="`AWS_REGION`")
LLM_TIMEOUT: Setting[float] = Setting("SOORMA_LLM_TIMEOUT", "seconds per LLM call", number, 60.0,
                                      default_doc="`60`")
TRACING: Setting[bool | None] = Setting(
    "SOORMA_TRACING", "OpenTelemetry traces across events (docs/observability.md): `on` — the gateway starts a trace "
    "per goal, the W3C `traceparent` rides in every envelope, an agent function records a span per event it handles, "
    "per handler and per platform or LLM call, and sends them to the platform (`POST /v1/tracker/spans`; read with "
    "`GET /v1/goals/{id}/trace`); `off` — no spans are made or sent (OpenTelemetry's no-op tracer) and no "
    "`traceparent` is stamped. Set per deployment, on the gateway and the agents", on_unless_off, None,
    default_doc="`on` in a Lambda function (AWS or the local stack's runtime) and in `agent.run()`, else `off` "
    "(scripts, tests that call an agent directly)")



def _traces_export(raw: str) -> str | None:
    value = raw.strip().lower()
    if value in ("", "off", "platform"):
        return None
    if value != "xray":
        raise ValueError("must be `xray` or `off`")
    return value


TRACES_EXPORT: Setting[str | None] = Setting(
    "SOORMA_TRACES_EXPORT", "agent functions in AWS (set by the CDK app with `-c soorma:tracing=xray`): `xray` also "
    "sends each invocation's spans, in one request, to AWS X-Ray's OTLP endpoint "
    "(`https://xray.<AWS_REGION>.amazonaws.com/v1/traces`, or `AWS_ENDPOINT_URL_XRAY`; OTLP/JSON signed with the "
    "function's role; the account needs CloudWatch Transaction Search: docs/observability.md)", _traces_export, None,
    default_doc="unset: the spans go to the platform only")

# The platform's connections and secrets: the functions read them, and so does the boot module every AWS bundle (an
# agent's too) carries, which fills them from Secrets Manager; so they are declared here, in the lowest layer.
DATABASE_URL: Setting[str | None] = Setting(
    "SOORMA_DATABASE_URL", "the owner connection (migrations); `soorma local up`: use this PostgreSQL (with "
    "pgvector) instead of the embedded one", text, None, default_doc="embedded")
APP_DATABASE_URL: Setting[str | None] = Setting(
    "SOORMA_APP_DATABASE_URL", "the functions' connection (role `soorma_app`, row-level security applies)", text,
    None, default_doc="derived")
APP_DB_PASSWORD: Setting[str | None] = Setting(
    "SOORMA_APP_DB_PASSWORD", "the migrator sets `soorma_app`'s password to this on every run (in AWS: from the app "
    "secret; `soorma local` generates one per stack, `app_db_password` in `.soorma/secrets.json`); unset: a new role "
    "gets a random password and an existing one is left alone", text, None)
JWT_SECRET: Setting[str | None] = Setting(
    "SOORMA_JWT_SECRET", "HS256 secret: the authorizer accepts HS256 JWTs signed with it", text, None,
    default_doc="unset (HS256 refused)")


def _credentials(env: Mapping[str, str]) -> dict[str, str]:
    """The local stack's ``$SOORMA_HOME/credentials.json`` (``{"api_url", "api_key", ...}``; default home
    ``./.soorma``), or ``{}``. Only a fallback for scripts run next to ``soorma local``; a deployed function always
    gets ``SOORMA_API_URL``/``SOORMA_API_KEY``."""
    path = os.path.join(HOME.get(env) or ".soorma", "credentials.json")
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if isinstance(v, str) and v}


@dataclass(frozen=True)
class Settings:
    """Where the platform is and how to authenticate.

    ``api_url``: base URL of all routes. ``api_key``: ``sk_<key_id>_<secret>`` sent as ``Authorization: Bearer``.
    ``registry_url`` / ``event_service_url`` / ``memory_url`` / ``tracker_url``: per-service overrides (``None`` =
    use ``api_url``). ``timeout``: seconds per HTTP request.
    """

    api_url: str = DEFAULT_API_URL
    api_key: str | None = None
    registry_url: str | None = None
    event_service_url: str | None = None
    memory_url: str | None = None
    tracker_url: str | None = None
    timeout: float = DEFAULT_TIMEOUT

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "Settings":
        """Read settings from ``environ`` (default ``os.environ``).

        ``SOORMA_AUTH_TOKEN`` (soorma-core's name) and ``$SOORMA_HOME/credentials.json`` (as the CLI reads it) are
        fallbacks for the key, the file also for the URL;
        ``SOORMA_MEMORY_SERVICE_URL`` / ``SOORMA_TRACKER_SERVICE_URL`` (names soorma-core also used) are fallbacks for
        the memory and tracker URLs. ``SOORMA_HTTP_TIMEOUT`` sets the timeout (seconds).
        """
        env = os.environ if environ is None else environ
        key = API_KEY.get(env) or AUTH_TOKEN.get(env)
        api_url = API_URL.get(env)
        creds = _credentials(env) if not (key and api_url) else {}
        return cls(
            api_url=api_url or url(creds.get("api_url") or "") or DEFAULT_API_URL,
            api_key=key or creds.get("api_key"),
            registry_url=REGISTRY_URL.get(env),
            event_service_url=EVENT_SERVICE_URL.get(env),
            memory_url=MEMORY_URL.get(env) or MEMORY_SERVICE_URL.get(env),
            tracker_url=TRACKER_URL.get(env) or TRACKER_SERVICE_URL.get(env),
            timeout=HTTP_TIMEOUT.get(env),
        )

    @property
    def base_url(self) -> str:
        """``api_url`` without a trailing slash (the gateway's own routes: goals, publish)."""
        return self.api_url.rstrip("/")

    @property
    def registry_base(self) -> str:
        return self.registry_url or self.base_url

    @property
    def bus_base(self) -> str:
        """Where ``POST /v1/events/publish`` goes (soorma-core's event service URL, else the base)."""
        return self.event_service_url or self.base_url

    @property
    def memory_base(self) -> str:
        return self.memory_url or self.base_url

    @property
    def tracker_base(self) -> str:
        return self.tracker_url or self.base_url
