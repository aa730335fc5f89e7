"""The local stack: embedded PostgreSQL and NATS, migrations, the platform functions on the local Lambda runtime,
the local API Gateway, and the bridge that feeds agents their events.

``LocalStack.run()`` is what the ``soorma local up`` daemon process executes (``python -m soorma.local.daemon``); the
CLI talks to it over HTTP (the API routes and the ``/_local`` control routes) and through ``.soorma/state.json``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from soorma.functions.shared.capacity import RESERVED_CONCURRENCY, connections_needed
from soorma.identity import Identity
from soorma.local import settings
from soorma.local.paths import NATS_USER, StackPaths, load_or_create_secrets, read_json, redact_url, write_json

log = logging.getLogger("soorma.local")

LOCAL_TENANT = "local"
LOCAL_USER = "developer"

# Logical platform function → (deployed name, handler). One table serves the runtime and the API Gateway.
PLATFORM_FUNCTIONS: dict[str, tuple[str, str]] = {
    "registry": ("soorma-registry", "soorma.functions.registry.handler.handler"),
    "memory": ("soorma-memory", "soorma.functions.memory.handler.handler"),
    "gateway": ("soorma-gateway", "soorma.functions.gateway.handler.handler"),
    "protocols": ("soorma-protocols", "soorma.functions.protocols.handler.handler"),
    "identity": ("soorma-identity", "soorma.functions.identity.handler.handler"),
    "authorizer": ("soorma-authorizer", "soorma.functions.gateway.authorizer.handler"),
    "tracker": ("soorma-tracker", "soorma.functions.tracker.handler.handler"),
}
TRACKER_CONSUMER = "platform__tracker"
#: Database connections the local stack keeps for itself beyond the functions' (the bridge's route source, the
#: migrations, the dead-letter paths, an operator's psql).
LOCAL_CONNECTIONS = 20
# The SQS transport's dead-letter function (soorma.functions.tracker.dead_letters): registered only with
# ``--transport sqs``, mapped to every agent's dead-letter queue; not an API function, so not in the table above.
DEAD_LETTER_FUNCTION = ("soorma-dead-letters", "soorma.functions.tracker.dead_letters.handler")


@dataclass
class StackSettings:
    """``SOORMA_LOCAL_HOST``/``SOORMA_LOCAL_PORT`` (API, default 127.0.0.1:8787), ``SOORMA_NATS_PORT`` (14222),
    ``SOORMA_DATABASE_URL`` / ``SOORMA_NATS_URL`` to use external servers instead of the embedded ones,
    ``SOORMA_EVENT_TRANSPORT`` (``nats``, the default: the JetStream bridge; ``sqs`` or ``sns``: SNS → a queue per
    agent → the local event source mapping, on moto — :mod:`soorma.local.sqs_transport`, which also reads
    ``SOORMA_MOTO_PORT``, ``AWS_ENDPOINT_URL`` and ``SOORMA_LOCAL_SQS_VISIBILITY_TIMEOUT``),
    ``SOORMA_LOCAL_DB_PAUSABLE`` (``on``: the functions' database connections go through the pausable proxy)."""

    home: Path
    host: str = settings.LOCAL_HOST.default
    port: int = settings.LOCAL_PORT.default
    nats_port: int = settings.NATS_PORT.default
    database_url: str | None = None
    nats_url: str | None = None
    authorizer_ttl_s: float = settings.LOCAL_AUTHORIZER_TTL.default
    transport: str = "nats"
    db_pausable: bool = settings.LOCAL_DB_PAUSABLE.default

    @classmethod
    def from_env(cls, home: Path) -> "StackSettings":
        return cls(
            home=home,
            host=settings.LOCAL_HOST.get(),
            port=settings.LOCAL_PORT.get(),
            nats_port=settings.NATS_PORT.get(),
            database_url=settings.DATABASE_URL.get(),
            nats_url=settings.NATS_URL.get(),
            authorizer_ttl_s=settings.LOCAL_AUTHORIZER_TTL.get(),
            transport=transport_from_env(settings.EVENT_TRANSPORT.raw()),
            db_pausable=settings.LOCAL_DB_PAUSABLE.get(),
        )

    @property
    def api_url(self) -> str:
        return f"http://{self.host}:{self.port}"


def transport_from_env(value: str | None) -> str:
    """``SOORMA_EVENT_TRANSPORT`` as the stack's transport: ``nats`` (unset/empty) or ``sqs`` (``sqs`` or ``sns``, the
    gateway publisher's names for it). Raises ``ValueError`` for anything else."""
    transport = (value or "nats").strip().lower()
    if transport == "nats":
        return "nats"
    if transport in ("sqs", "sns"):
        return "sqs"
    raise ValueError(f"SOORMA_EVENT_TRANSPORT must be 'nats' or 'sqs' (or 'sns'), not {value!r}")


@dataclass
class LocalStack:
    settings: StackSettings
    paths: StackPaths = field(init=False)
    started_at: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.paths = StackPaths(self.settings.home)
        self._postgres = None
        self._nats = None
        self.runtime = None
        self.usage: Any = None  # soorma.local.usage.ReportUsage, once started
        self.bridge = None
        self.scheduler: Any = None  # soorma.local.scheduler.LocalScheduler, once started
        self._scheduler_publisher: Any = None
        self.sqs = None  # the SQS transport (soorma.local.sqs_transport.SqsTransport) when transport == "sqs"
        self.webhooks: Any = None  # the webhook sender (soorma.local.webhooks.LocalWebhookSender)
        self._moto = None
        self.aws_endpoint_url = ""
        self.sns_topic_arn = ""
        self._server = None
        self.owner_dsn = ""
        self.app_dsn = ""
        # What the functions and the route source connect with: app_dsn through the pausable proxy
        # (soorma.local.dbpause), so `soorma local db pause` can make the database unavailable to them.
        self.function_dsn = ""
        self.db_proxy: Any = None
        self.nats_url = ""
        self.secrets: dict[str, str] = {}
        self.state: dict[str, Any] = {}
        self._stopping = asyncio.Event()

    # -- state file ----------------------------------------------------------------------------------------------
    def _phase(self, phase: str, **extra: Any) -> None:
        self.state.update(phase=phase, pid=os.getpid(), updated_at=_utcnow(), **extra)
        write_json(self.paths.state, self.state)
        log.info("phase: %s", phase)

    # -- start ---------------------------------------------------------------------------------------------------
    async def start(self) -> None:
        self.paths.ensure()
        self.state = {"status": "starting", "api_url": self.settings.api_url, "home": str(self.paths.home),
                      "transport": self.settings.transport}
        self.secrets = load_or_create_secrets(self.paths)
        os.environ["SOORMA_API_KEY_PEPPER"] = self.secrets["api_key_pepper"]

        self._phase("postgres")
        await asyncio.to_thread(self._start_postgres)
        await self._start_db_proxy()
        self._phase("nats")
        await asyncio.to_thread(self._start_nats)
        if self.settings.transport == "sqs":
            self._phase("aws")
            await asyncio.to_thread(self._start_aws)
        self._phase("migrations")
        from soorma.functions.migrate import apply

        # The stack's own soorma_app password, set on every start (an external SOORMA_APP_DATABASE_URL is the
        # operator's: its role's password is theirs to manage).
        app_password = None if settings.APP_DATABASE_URL.get() else self.secrets["app_db_password"]
        applied = await asyncio.to_thread(lambda: apply(self.owner_dsn, app_password=app_password))
        self.state["migrations_applied"] = [m.version for m in applied]
        await asyncio.to_thread(self._ensure_credentials)

        self._phase("functions")
        from soorma.local.runtime import FunctionConfig, LocalLambda
        from soorma.local.usage import ReportUsage

        # usage per goal from each invocation's REPORT figures (docs/usage-and-llm.md)
        self.usage = ReportUsage(self.app_dsn, platform_functions=[
            *(name for name, _ in PLATFORM_FUNCTIONS.values()), DEAD_LETTER_FUNCTION[0]])
        self.runtime = LocalLambda(logs_dir=self.paths.logs, on_report=self.usage)
        for logical, (name, handler) in PLATFORM_FUNCTIONS.items():
            self.runtime.register(
                FunctionConfig(
                    name=name,
                    handler=handler,
                    code_dir=None,
                    env=self._platform_env(logical),
                    timeout_s=60.0,
                    memory_mb=1024 if logical == "memory" else 512,
                    # the cloud's reserved concurrency (one table), so the local database meets the same load
                    max_concurrency=RESERVED_CONCURRENCY[logical],
                )
            )
        if self.settings.transport == "sqs":
            name, handler = DEAD_LETTER_FUNCTION
            self.runtime.register(FunctionConfig(name=name, handler=handler, code_dir=None,
                                                 env=self._platform_env("dead-letters"), timeout_s=30.0,
                                                 memory_mb=256, max_concurrency=2))
        for spec in sorted(self.paths.functions.glob("*.json")):
            config = read_json(spec)
            if config:
                # deployed under an earlier start: the endpoint may have moved (SOORMA_LOCAL_PORT)
                env = dict(config.get("env") or {})
                if settings.API_URL.raw(env) is not None:
                    env[settings.API_URL.name] = self.settings.api_url
                if not config.get("platform_tenant_id"):  # deployed before functions recorded their tenant
                    config["platform_tenant_id"] = await asyncio.to_thread(self._key_tenant, settings.API_KEY.get(env))
                self.runtime.register(FunctionConfig(**{**config, "env": env}))

        self._phase("api")
        await self._start_api()
        if self.settings.transport == "sqs":
            self._phase("esm")
            await self._start_sqs()
        else:
            self._phase("bridge")
            await self._start_bridge()
        self._phase("webhooks")
        await self._start_webhooks()
        self._phase("scheduler")
        await asyncio.to_thread(self._start_scheduler)
        # state.json holds nothing secret: URLs without their passwords (those are in secrets.json, 0600).
        self.state.update(
            status="ready",
            nats_url=redact_url(self.nats_url),
            aws_endpoint_url=self.aws_endpoint_url or None,
            sns_topic_arn=self.sns_topic_arn or None,
            database_url=redact_url(self.owner_dsn),
            lambda_access_key_id=self.secrets["aws_access_key_id"],
            ready_seconds=round(time.monotonic() - self.started_at, 2),
        )
        self._phase("ready")
        log.info("ready at %s (%.2f s); credentials in %s", self.settings.api_url,
                 time.monotonic() - self.started_at, self.paths.credentials)

    def _start_postgres(self) -> None:
        from soorma.local.postgres import EmbeddedPostgres, app_dsn

        if self.settings.database_url:
            self.owner_dsn = self.settings.database_url
        else:
            self._postgres = EmbeddedPostgres(self.paths.postgres, cleanup="stop")
            # every platform function at its reserved concurrency, plus the stack's own connections (bridge,
            # migrations, an operator's psql)
            self.owner_dsn = self._postgres.start(max_connections=connections_needed() + LOCAL_CONNECTIONS)
        self.app_dsn = (settings.APP_DATABASE_URL.get()
                        or app_dsn(self.owner_dsn, self.secrets["app_db_password"]))

    async def _start_db_proxy(self) -> None:
        if not self.settings.db_pausable:
            # Directly: the proxy costs every round trip of every function two crossings of this process's loop,
            # a price worth paying only when a pause is to be simulated (SOORMA_LOCAL_DB_PAUSABLE).
            self.function_dsn = self.app_dsn
            return
        from soorma.local.dbpause import PausableDatabase, Upstream

        self.db_proxy = PausableDatabase(Upstream.from_dsn(self.app_dsn), self.paths.home / "dbproxy")
        await self.db_proxy.start()
        self.function_dsn = self.db_proxy.dsn(self.app_dsn)

    def _start_nats(self) -> None:
        from soorma.local.nats import EmbeddedNats

        if self.settings.nats_url:
            self.nats_url = self.settings.nats_url
        else:
            self._nats = EmbeddedNats(self.paths.nats, port=self.settings.nats_port, user=NATS_USER,
                                      password=self.secrets["nats_password"])
            self.nats_url = self._nats.start()
        # The URL with its credentials, for the CLI's `soorma dlq` and agent.run() (soorma.process): owner-only.
        self.secrets["nats_url"] = self.nats_url
        write_json(self.paths.secrets, self.secrets)

    def _start_aws(self) -> None:
        """The SNS/SQS endpoint (moto's server, or ``AWS_ENDPOINT_URL``) and the event topic."""
        from soorma.local import sqs as resources
        from soorma.local.sqs_transport import REGION, TOPIC_NAME, MotoServer, settings_from_env

        conf = settings_from_env()
        if conf["endpoint_url"]:
            self.aws_endpoint_url = conf["endpoint_url"]
        else:
            self._moto = MotoServer(conf["moto_port"], self.paths.logs / "moto.log")
            self.aws_endpoint_url = self._moto.start()
        sns, _ = resources.clients(self.aws_endpoint_url, region=REGION)
        self.sns_topic_arn = resources.ensure_topic(sns, TOPIC_NAME)

    def _ensure_credentials(self) -> dict[str, Any]:
        """The developer's API key for the local platform tenant, the bootstrap platform admin's key
        (``admin_api_key``: onboards tenants, sets their limits; the identity client's superuser key) and the local
        tenant's admin key (``tenant_admin_api_key``: the identity client's tenant admin key), created once and kept
        in credentials.json. Both platform tenants are onboarded (rows in ``gateway.tenants``)."""
        from soorma.functions.gateway.keys import create_api_key, resolve_api_key
        from soorma.functions.shared.db import Database
        from soorma.identity import platform_admin_tenant

        current = read_json(self.paths.credentials) or {}
        admin_tenant = platform_admin_tenant()
        wanted = {
            "api_key": Identity(LOCAL_TENANT, LOCAL_TENANT, LOCAL_USER, LOCAL_USER, "developer"),
            "admin_api_key": Identity(admin_tenant, admin_tenant, "admin", "admin", "admin"),
            # The local tenant's admin (the identity service's tenant admin key, X-Identity-Admin-Key): the
            # identity client and examples/shared/auth.py create principals and issue tokens in the tenant where
            # `soorma local deploy` deploys the agents.
            "tenant_admin_api_key": Identity(LOCAL_TENANT, LOCAL_TENANT, "admin", "admin", "admin"),
        }
        names = {"api_key": "local developer", "admin_api_key": "bootstrap platform admin",
                 "tenant_admin_api_key": "local tenant admin"}
        changed = False
        db = Database(self.app_dsn)
        try:
            for field_name, identity in wanted.items():
                with db.transaction(identity) as conn:
                    conn.execute(
                        "insert into gateway.tenants (platform_tenant_id, name, created_by) values (%s, %s, 'local')"
                        " on conflict (platform_tenant_id) do nothing",
                        (identity.platform_tenant_id, identity.platform_tenant_id),
                    )
                    key = current.get(field_name)
                    if key and resolve_api_key(conn, key) is not None:
                        continue
                    current[field_name] = create_api_key(
                        conn,
                        platform_tenant_id=identity.platform_tenant_id,
                        service_tenant_id=identity.service_tenant_id,
                        service_user_id=identity.service_user_id,
                        role=identity.role,
                        name=names[field_name],
                    )
                    changed = True
        finally:
            db.close()
        if changed or current.get("api_url") != self.settings.api_url:
            current.update(api_url=self.settings.api_url, platform_tenant_id=LOCAL_TENANT)
            write_json(self.paths.credentials, current, private=True)
        return current

    def _key_tenant(self, api_key: str | None) -> str | None:
        """The platform tenant of an agent function's own API key (``None`` if it has none or it is not valid)."""
        if not api_key:
            return None
        from soorma.functions.gateway.keys import resolve_api_key
        from soorma.functions.shared.db import Database

        db = Database(self.app_dsn)
        try:
            with db.transaction() as conn:
                resolved = resolve_api_key(conn, api_key)
        except Exception:  # noqa: BLE001 - an unreadable key leaves the function without a tenant: no route reaches it
            log.exception("resolving the tenant of a deployed function's key failed")
            return None
        finally:
            db.close()
        return getattr(resolved, "platform_tenant_id", None) if resolved is not None else None

    def function_tenant(self, name: str) -> str | None:
        """The platform tenant agent function ``name`` was deployed for; ``None`` for an unknown or platform
        function. The route source checks every deployment binding against it (issue 12, finding 3)."""
        if self.runtime is None:
            return None
        try:
            return self.runtime.function(name).platform_tenant_id
        except Exception:  # noqa: BLE001 - FunctionNotFound: no such function
            return None

    def issue_agent_key(self, platform_tenant_id: str, name: str, previous_key: str | None = None) -> str:
        """The API key of role ``agent`` for a deployed agent function (its ``SOORMA_API_KEY``).

        ``previous_key`` is the key the function had before this deploy. If it is still valid and belongs to the same
        agent (platform tenant, principal ``name``, role ``agent``) it is kept, so redeploying issues no key at all;
        otherwise a new key is issued and the previous one, if it still resolves, is revoked in the same step, so a
        function never leaves a valid key behind. Raises ``psycopg.Error`` when the database refuses.
        """
        from soorma.functions.gateway.keys import create_api_key, resolve_api_key, revoke_api_key
        from soorma.functions.shared.db import Database

        identity = Identity(platform_tenant_id, platform_tenant_id, name, name, "agent")
        db = Database(self.app_dsn)
        try:
            old: Identity | None = None
            if previous_key:
                # the authorizer's own lookup (SECURITY DEFINER): any tenant's key resolves, revoked ones do not
                with db.transaction(identity) as conn:
                    old = resolve_api_key(conn, previous_key)
                same_agent = old is not None and (
                    (old.platform_tenant_id, old.service_tenant_id, old.service_user_id, old.role)
                    == (platform_tenant_id, platform_tenant_id, name, "agent"))  # principal_id is per key
                if same_agent:
                    return previous_key
            with db.transaction(identity) as conn:
                key = create_api_key(
                    conn,
                    platform_tenant_id=platform_tenant_id,
                    service_tenant_id=platform_tenant_id,
                    service_user_id=name,
                    role="agent",
                    name=f"agent {name}",
                )
            if old is not None and previous_key:
                # row-level security: the old key is revoked inside its own platform tenant
                with db.transaction(old) as conn:
                    revoke_api_key(conn, previous_key)
            return key
        finally:
            db.close()

    def _platform_env(self, logical: str) -> dict[str, str]:
        env = {
            "SOORMA_APP_DATABASE_URL": self.function_dsn or self.app_dsn,
            "SOORMA_NATS_URL": self.nats_url,
            "SOORMA_API_KEY_PEPPER": self.secrets["api_key_pepper"],
            "SOORMA_API_URL": self.settings.api_url,
            "POWERTOOLS_SERVICE_NAME": f"soorma-{logical}",
            "SOORMA_EMBEDDING_PROVIDER": settings.EMBEDDING_PROVIDER.get(),
            "HF_HUB_OFFLINE": "1",
        }
        if logical in ("gateway", "tracker"):
            # The live goal streams: they push frames through the local WebSocket API's @connections API, signed
            # with the stack's access key (soorma.local.websocket), as the functions' role signs in AWS.
            env.update({
                "SOORMA_STREAM_CONNECTIONS_URL": f"{self.settings.api_url}/_ws",
                "AWS_ACCESS_KEY_ID": self.secrets["aws_access_key_id"],
                "AWS_SECRET_ACCESS_KEY": self.secrets["aws_secret_access_key"],
            })
        if logical == "memory":
            env["OMP_NUM_THREADS"] = os.environ.get("OMP_NUM_THREADS", "2")
        if logical == "protocols":
            env["SOORMA_A2A_CARD_TENANT"] = LOCAL_TENANT
        # publisher_from_env() of the functions that publish (the tracker starts a session's queued goals) picks
        # their SnsPublisher; the gateway and the tracker have the stack's access key already (the streams' push).
        if logical in ("gateway", "protocols", "tracker") and self.settings.transport == "sqs":
            env.update({
                "SOORMA_EVENT_TRANSPORT": "sns",
                "SOORMA_SNS_TOPIC_ARN": self.sns_topic_arn,
                "AWS_ENDPOINT_URL": self.aws_endpoint_url,
                "AWS_DEFAULT_REGION": "us-east-1",
            })
            env.setdefault("AWS_ACCESS_KEY_ID", os.environ.get("AWS_ACCESS_KEY_ID", "local"))
            env.setdefault("AWS_SECRET_ACCESS_KEY", os.environ.get("AWS_SECRET_ACCESS_KEY", "local"))
        if logical == "dead-letters":  # it reads and writes the queues on moto, and nothing else
            env = {k: v for k, v in env.items() if k in ("POWERTOOLS_SERVICE_NAME",)}
            env.update({
                "AWS_ENDPOINT_URL": self.aws_endpoint_url,
                "AWS_DEFAULT_REGION": "us-east-1",
                "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", "local"),
                "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", "local"),
            })
            return env
        # Gateway settings (JWT verification, rate limits, the platform-admin tenant, A2A, delivery grant lifetime)
        # and the database timeouts pass through.
        # Webhooks: a receiver on 127.0.0.1 over http is what local development and the tests have.
        env["SOORMA_WEBHOOK_ALLOW_LOOPBACK"] = "on"
        passed = ("SOORMA_JWT_", "SOORMA_RATE_", "SOORMA_PLATFORM_ADMIN_TENANT", "SOORMA_A2A_", "SOORMA_CHAT_",
                  "SOORMA_GRANT_", "SOORMA_DB_", "SOORMA_WEBHOOK_", "SOORMA_IDENTITY_",
                  "SOORMA_SCHEDULE_MIN_INTERVAL_S", "SOORMA_TRACING")
        env.update({k: v for k, v in os.environ.items() if k.startswith(passed)})
        return env

    def agent_env(self, api_key: str, extra: dict[str, str] | None = None, *,
                  platform_tenant_id: str | None = None) -> dict[str, str]:
        """Environment of an agent function: the API endpoint and its own key, the platform tenant it is deployed
        for (``SOORMA_PLATFORM_TENANT_ID``: its runtime refuses another tenant's events, :mod:`soorma.runtime`),
        plus ``SOORMA_LLM_*`` settings and ``SOORMA_TRACING`` passed through from the stack's environment (traces on or
        off for the whole stack, as the platform functions get it)."""
        env = dict(extra or {})
        env.update({k: v for k, v in os.environ.items() if k.startswith(("SOORMA_LLM_", "SOORMA_TRACING"))})
        # The endpoint, the agent's own key and its tenant come last: an app's settings never override them.
        env.update({"SOORMA_API_URL": self.settings.api_url, "SOORMA_API_KEY": api_key})
        if platform_tenant_id:
            env["SOORMA_PLATFORM_TENANT_ID"] = platform_tenant_id
        return env

    async def _start_api(self) -> None:
        import uvicorn

        from soorma.local.server import build_app

        app = build_app(self)
        config = uvicorn.Config(
            app, host=self.settings.host, port=self.settings.port, log_level="warning", lifespan="off",
            access_log=False,
        )
        self._server = uvicorn.Server(config)
        self._server_task = asyncio.create_task(self._server.serve())
        deadline = time.monotonic() + 15
        while not self._server.started:
            if self._server_task.done():
                raise RuntimeError(
                    f"the API server could not listen on {self.settings.api_url}"
                    " (set SOORMA_LOCAL_PORT to a free port)"
                )
            if time.monotonic() > deadline:
                raise RuntimeError("the API server did not start in 15 s")
            await asyncio.sleep(0.02)

    async def _start_bridge(self) -> None:
        from soorma.functions.bridge import Bridge
        from soorma.functions.bridge.routes import RouteSource

        source = RouteSource(self.function_dsn or self.app_dsn, tracker_function=PLATFORM_FUNCTIONS["tracker"][0],
                             function_tenant=self.function_tenant)
        self.bridge = Bridge(self.nats_url, source.routes, self.runtime, refresh_interval_s=1.0, name="local")
        await self.bridge.start()

    async def _start_sqs(self) -> None:
        from soorma.functions.bridge.routes import RouteSource
        from soorma.local.sqs_transport import SqsTransport, settings_from_env

        source = RouteSource(self.function_dsn or self.app_dsn, tracker_function=PLATFORM_FUNCTIONS["tracker"][0],
                             function_tenant=self.function_tenant)
        self.sqs = SqsTransport(self.aws_endpoint_url, lambda: asyncio.to_thread(source.read_checked), self.runtime,
                                tracker_function=PLATFORM_FUNCTIONS["tracker"][0],
                                dead_letter_function=DEAD_LETTER_FUNCTION[0],
                                visibility_timeout_s=settings_from_env()["visibility_timeout_s"])
        self.sqs.topic_arn = self.sns_topic_arn
        await self.sqs.start()

    async def _start_webhooks(self) -> None:
        from soorma.local.webhooks import LocalWebhookSender

        self.webhooks = LocalWebhookSender(self.function_dsn or self.app_dsn, self._platform_env("webhooks"))
        await self.webhooks.start()

    def _start_scheduler(self) -> None:
        """The stack's timer and schedule firer (:mod:`soorma.local.scheduler`), publishing with the gateway's
        publisher of this transport."""
        from soorma.functions.gateway.goals import Goals
        from soorma.functions.gateway.publisher import NatsPublisher, SnsPublisher
        from soorma.functions.scheduler.schedules import schedule_runner
        from soorma.functions.shared.db import Database
        from soorma.local.scheduler import LocalScheduler

        if self.settings.transport == "sqs":
            import boto3

            client = boto3.client("sns", endpoint_url=self.aws_endpoint_url, region_name="us-east-1",
                                  aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "local"),
                                  aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "local"))
            publisher: Any = SnsPublisher(self.sns_topic_arn, client=client)
        else:
            publisher = NatsPublisher(self.nats_url)
        # Not through the pausable proxy: `soorma local db pause` simulates the functions' database outage, and the
        # scheduler stands for EventBridge Scheduler, which keeps time while the database sleeps.
        db = Database(self.app_dsn, max_size=3)
        self._scheduler_publisher = publisher
        self.scheduler = LocalScheduler(db, self.app_dsn, publisher, schedule_runner(Goals(db, publisher).submit))
        self.scheduler.start()

    # -- stop ----------------------------------------------------------------------------------------------------
    async def stop(self) -> None:
        self._phase("stopping", status="stopping")
        if self.webhooks is not None:
            await self.webhooks.stop()
        if self.scheduler is not None:
            await asyncio.to_thread(self.scheduler.stop)
            self.scheduler.db.close()
            await asyncio.to_thread(self._scheduler_publisher.close)
        if self.bridge is not None:
            await self.bridge.stop()
        if self.sqs is not None:
            await self.sqs.stop()
        if self._server is not None:
            self._server.should_exit = True
            await asyncio.wait([self._server_task], timeout=5)
        if self.runtime is not None:
            await self.runtime.close()
        if self.usage is not None:
            await asyncio.to_thread(self.usage.close)
        if self.db_proxy is not None:
            await self.db_proxy.stop()
        if self._moto is not None:
            await asyncio.to_thread(self._moto.stop)
        if self._nats is not None:
            await asyncio.to_thread(self._nats.stop)
        if self._postgres is not None:
            await asyncio.to_thread(self._postgres.stop)
        self.state["status"] = "stopped"
        self._phase("stopped")

    async def run(self) -> int:
        """Start, serve until SIGTERM/SIGINT, stop. Returns the process exit code."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stopping.set)
        try:
            await self.start()
        except Exception as exc:  # noqa: BLE001 - report any start failure to the waiting CLI, then clean up
            log.exception("start failed")
            self.state.update(status="failed", error=f"{type(exc).__name__}: {exc}")
            self._phase("failed")
            await self.stop()
            self.state.update(status="failed")
            write_json(self.paths.state, self.state)
            return 1
        await self._stopping.wait()
        await self.stop()
        return 0


def _utcnow() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def main(argv: list[str] | None = None) -> int:
    """Daemon entry: ``python -m soorma.local.stack [HOME]``."""
    from soorma.local.paths import default_home

    args = sys.argv[1:] if argv is None else argv
    home = Path(args[0]).resolve() if args else default_home()
    StackPaths(home).ensure()
    logging.basicConfig(
        level=settings.LOG_LEVEL.get(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return asyncio.run(LocalStack(StackSettings.from_env(home)).run())


if __name__ == "__main__":
    raise SystemExit(main())
