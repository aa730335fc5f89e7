"""``agent.run()``: an agent as a local process that consumes its events from NATS JetStream directly.

For breakpoints and quick iteration against ``soorma local`` (or any NATS with the ``SOORMA_EVENTS`` stream): no
function, no bridge, no redeploy. The process

* connects to ``SOORMA_NATS_URL``, else the running local stack's NATS (``nats_url`` in ``$SOORMA_HOME/secrets.json``,
  with the stack's NATS credentials; default ``./.soorma``);
* binds the agent's durable pull consumer on ``SOORMA_EVENTS`` — the same one per (platform tenant, agent name) that
  the bridge uses for a deployed agent, so a local process and a deployed function of the same agent are instances
  of one agent sharing its events (queue group); the consumer is created (new events only) when missing, and an
  existing one is used as it is;
* registers the agent's event definitions and the agent itself (without a deployment binding, so the bridge does not
  route to it; an existing deployment binding is kept);
* runs the startup handlers, then for every message: parses the envelope and calls :meth:`Agent.dispatch`, the same
  dispatch the Lambda entry uses (handlers matched by topic and type, idempotent per event id, deferred delegations
  flushed, conflicts re-run). Success → ``ack``; failure → ``nak`` with exponential backoff; after
  ``max_deliveries`` deliveries → copied to ``SOORMA_DLQ`` with the error and terminated (as the bridge does). While a
  handler runs (or sits at a breakpoint) the message is kept alive with ``in_progress``;
* stops on SIGINT/SIGTERM: finishes the message in hand, runs the shutdown handlers, closes.

Platform calls (memory, registry, publishing) go over HTTP with the usual settings (``SOORMA_API_URL``,
``SOORMA_API_KEY`` or ``$SOORMA_HOME/credentials.json``). The platform tenant of the subjects comes from
``SOORMA_PLATFORM_TENANT_ID``, else ``credentials.json``. Needs ``nats-py`` (``pip install 'soorma[functions]'``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import settings, telemetry
from .events import EventEnvelope
from .urls import redact_url

if TYPE_CHECKING:
    from .agents.base import Agent

log = logging.getLogger("soorma.process")

DEFAULT_MAX_DELIVERIES = 5
DEFAULT_TIMEOUT_S = 30.0


def _home(env: Mapping[str, str]) -> Path:
    return Path(settings.HOME.get(env) or ".soorma")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def resolve_nats_url(explicit: str | None = None, env: Any = None) -> str:
    """``explicit``, ``SOORMA_NATS_URL``, or the local stack's NATS: ``nats_url`` of ``$SOORMA_HOME/secrets.json``
    (with the stack's NATS user and password; ``state.json`` names it without them); raises ``RuntimeError`` if
    none."""
    env = os.environ if env is None else env
    home = _home(env)
    url = (explicit or settings.NATS_URL.get(env) or _read_json(home / "secrets.json").get("nats_url")
           or _read_json(home / "state.json").get("nats_url"))
    if not url:
        raise RuntimeError(
            "agent.run() needs NATS: set SOORMA_NATS_URL, or start the local stack (`soorma local up`) so "
            "$SOORMA_HOME/state.json names it"
        )
    return str(url)


def resolve_platform_tenant(explicit: str | None = None, env: Any = None) -> str:
    """``explicit``, ``SOORMA_PLATFORM_TENANT_ID``, or ``platform_tenant_id`` of ``credentials.json``."""
    env = os.environ if env is None else env
    tenant = (explicit or settings.PLATFORM_TENANT_ID.get(env)
              or _read_json(_home(env) / "credentials.json").get("platform_tenant_id"))
    if not tenant:
        raise RuntimeError(
            "agent.run() needs the platform tenant of its events: set SOORMA_PLATFORM_TENANT_ID (the local stack "
            "writes it to $SOORMA_HOME/credentials.json)"
        )
    return str(tenant)


def consumer_name(platform_tenant_id: str, agent_name: str) -> str:
    """The durable consumer of (platform tenant, agent): the one the bridge uses for the deployed agent."""
    from soorma.delivery.route import consumer_name_for

    return consumer_name_for(platform_tenant_id, agent_name)


@dataclass
class LocalRunner:
    """Consumes one agent's events from JetStream in this process (see the module docstring).

    ``nats_url``/``platform_tenant_id``: override the environment. ``batch_size``: messages per fetch.
    ``max_deliveries``: deliveries before dead-lettering (default: the agent's deployment, else 5). ``register``:
    register the agent with the registry at start. ``backoff_base_s``/``backoff_cap_s``: NAK delays.
    """

    agent: "Agent"
    nats_url: str | None = None
    platform_tenant_id: str | None = None
    batch_size: int = 10
    max_deliveries: int | None = None
    timeout_s: float = DEFAULT_TIMEOUT_S
    register: bool = True
    backoff_base_s: float = 1.0
    backoff_cap_s: float = 30.0
    fetch_timeout_s: float = 1.0

    def __post_init__(self) -> None:
        self.stop_event = asyncio.Event()
        self.handled = 0
        self.failed = 0
        self.dead_lettered = 0
        self.consumer = ""
        self._ready = asyncio.Event()

    @property
    def ready(self) -> asyncio.Event:
        """Set once the consumer is bound and the startup handlers ran."""
        return self._ready

    def stop(self) -> None:
        self.stop_event.set()

    async def run(self) -> None:
        """Consume until :meth:`stop` (or a signal, when run through :meth:`Agent.run`)."""
        import nats
        from nats.errors import TimeoutError as NatsTimeout

        from soorma.delivery.backoff import ExponentialBackoff
        from soorma.delivery.consumer import ConsumerPolicy, ensure_consumer
        from soorma.delivery.route import Route
        from soorma.jetstream import ensure_streams
        from soorma.subjects import STREAM, filter_subject

        agent = self.agent
        subs = agent.subscriptions()
        if not subs:
            raise RuntimeError(f"agent {agent.name!r} has no handlers: nothing to consume")
        url = resolve_nats_url(self.nats_url)
        tenant = resolve_platform_tenant(self.platform_tenant_id)
        deployment = await self._register() if self.register else None
        max_deliveries = self.max_deliveries or int((deployment or {}).get("max_deliveries") or DEFAULT_MAX_DELIVERIES)
        self.consumer = consumer_name(tenant, agent.name)
        route = Route(
            consumer_name=self.consumer,
            function_name=f"local-process:{agent.name}",
            filter_subjects=tuple(filter_subject(tenant, t, e) for t, e in subs),
            platform_tenant_id=tenant,
            agent=agent.name,
            batch_size=self.batch_size,
            max_concurrency=1,
            max_deliveries=max_deliveries,
            timeout_s=self.timeout_s,
        )
        backoff = ExponentialBackoff(self.backoff_base_s, self.backoff_cap_s)
        policy = ConsumerPolicy()
        nc = await nats.connect(url, connect_timeout=5, name=f"soorma-agent-{agent.name}")
        psub = None
        try:
            js = nc.jetstream()
            await ensure_streams(js)
            from nats.js.errors import NotFoundError

            try:
                info = await js.consumer_info(STREAM, self.consumer)
                current = set(info.config.filter_subjects or [info.config.filter_subject])
                if current != set(route.filter_subjects):
                    log.warning("consumer %s filters %s differ from this agent's %s (a deployed version of the "
                                "agent owns it); consuming with the existing filters", self.consumer,
                                sorted(current), sorted(route.filter_subjects))
            except NotFoundError:
                from datetime import datetime

                route = Route(**{**route.__dict__, "deliver_from": datetime.now(UTC)})
                await ensure_consumer(js, route, policy)
            psub = await js.pull_subscribe_bind(durable=self.consumer, stream=STREAM)
            await agent.start()
            log.info("agent %s consuming %s from %s (consumer %s)", agent.name,
                     ", ".join(f"{t}:{e}" for t, e in subs), redact_url(url), self.consumer)
            self._ready.set()
            while not self.stop_event.is_set():
                try:
                    msgs = await psub.fetch(self.batch_size, timeout=self.fetch_timeout_s)
                except NatsTimeout:
                    continue
                except Exception as exc:  # connection trouble: wait and fetch again
                    log.warning("fetch failed: %s", exc)
                    await asyncio.sleep(0.5)
                    continue
                for msg in msgs:
                    await self._handle(js, msg, route, backoff)
        finally:
            with contextlib.suppress(Exception):
                await agent.stop()
            if psub is not None:  # stop fetching; unacked messages come back after their ack wait
                with contextlib.suppress(Exception):
                    await psub.unsubscribe()
            with contextlib.suppress(Exception):
                await nc.close()

    async def _handle(self, js: Any, msg: Any, route: Any, backoff: Any) -> None:
        from soorma.delivery.dead_letters import H_REPLAY_CONSUMER, dead_letter

        target = msg.headers.get(H_REPLAY_CONSUMER) if msg.headers else None
        if target is not None and target != route.consumer_name:
            await msg.ack()  # a replay meant for another consumer
            return
        keepalive = asyncio.create_task(self._keepalive(msg, (self.timeout_s + 10) / 2))
        error: str | None = None
        try:
            envelope = EventEnvelope.from_json(msg.data)
        except Exception as exc:  # a malformed body can never succeed: dead-letter it at once
            error = f"malformed event: {exc}"
            envelope = None
        try:
            if envelope is not None:
                with telemetry.traced_by_default():  # a local process is a deployment of the agent
                    await telemetry.traced_dispatch(self.agent, envelope, lambda: self.agent.dispatch(envelope))
        except Exception as exc:  # noqa: BLE001 - any handler failure is retried by redelivery
            assert envelope is not None  # only dispatch raises in this block
            log.exception("agent %s: event %s (%s) failed", self.agent.name, envelope.id, envelope.type)
            error = f"{type(exc).__name__}: {exc}"
        finally:
            keepalive.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keepalive
        if error is None:
            await msg.ack()
            self.handled += 1
            return
        self.failed += 1
        attempt = msg.metadata.num_delivered
        if envelope is None or attempt >= route.max_deliveries:
            try:
                await dead_letter(js, msg, route, error)
                await msg.term()
                self.dead_lettered += 1
                log.warning("agent %s: message %s dead-lettered after %d deliveries: %s", self.agent.name,
                            msg.metadata.sequence.stream, attempt, error)
                return
            except Exception as exc:  # noqa: BLE001
                log.error("dead-lettering failed: %s; retrying the message later", exc)
        await msg.nak(delay=backoff(attempt))

    @staticmethod
    async def _keepalive(msg: Any, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            with contextlib.suppress(Exception):
                await msg.in_progress()

    async def _register(self) -> dict[str, Any] | None:
        """Register event definitions and the agent (keeping a deployment binding it already has); returns that
        binding. Failures are logged: the agent still consumes."""
        agent = self.agent
        try:
            existing = await agent.context.registry.get_agent(agent.agent_id)
            deployment = existing.deployment if existing is not None else None
            for definition in agent.event_definitions():
                await agent.context.registry.register_event(definition)
            # Without a binding: the registry keeps the one the agent has (only the deploy path writes bindings).
            await agent.context.registry.register_agent(agent.definition())
            if deployment:
                log.warning("agent %s is also deployed (function %s): the function and this process share its "
                            "events", agent.name, deployment.get("function_name"))
            return deployment
        except Exception as exc:  # noqa: BLE001 - registration is best effort, as in soorma-core
            log.warning("agent %s: registration failed (%s); consuming anyway", agent.name, exc)
            return None


def run_agent(agent: "Agent", **options: Any) -> None:
    """Blocking: run ``agent`` as a local process until SIGINT/SIGTERM (what :meth:`Agent.run` does)."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    runner = LocalRunner(agent, **options)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, runner.stop)
        await runner.run()

    asyncio.run(main())
