"""``Agent``: handlers keyed by (topic, event type), the registry definition, and the Lambda entry point.

An agent object is itself the Lambda handler: ``agent(event, lambda_context)`` takes the SQS-shaped batch of
docs/architecture.md ("Function payload") and returns ``{"batchItemFailures": [...]}`` (see :mod:`soorma.runtime`).
The deployer reads :meth:`Agent.subscriptions` (what to route to the function) and :meth:`Agent.definition`
(what to register at ``POST /v1/agents``).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import random
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping

from .. import telemetry
from .._current import (
    CommitBatch,
    CommittedTasks,
    DeferredRun,
    PendingCommit,
    commit_batch,
    delivering,
    flush_outbox,
    handling,
)
from ..errors import ConflictError, PlatformError
from ..events import EventDefinition, EventEnvelope, EventTopic
from ..subjects import check_event_type

if TYPE_CHECKING:
    from ..context import PlatformContext
    from ..runtime import LambdaRuntime

log = logging.getLogger("soorma.agent")

CATCH_ALL = "*"
TOPICS = tuple(t.value for t in EventTopic)
DEFAULT_IDEMPOTENCY_CACHE = 2048
#: How often a handler is re-run in place when a save hit a concurrent change (409) before the event is failed
#: (and redelivered by the delivery layer).
CONFLICT_RETRIES = 5
#: The CloudWatch metric (embedded metric format) counting handler runs that lost an optimistic-concurrency race.
CONFLICT_METRIC = "ConflictReruns"
CONFLICT_NAMESPACE = "Soorma"


def record_conflict_rerun(agent: str, handler: str, *, given_up: bool = False) -> None:
    """Count one handler run that lost an optimistic-concurrency race (a task or plan changed since it was read) as
    the metric :data:`CONFLICT_METRIC` (Count; dimensions ``agent`` and ``outcome``: ``rerun``, or ``given_up`` when
    the retries are spent and the event goes back to the delivery layer), written to stdout in CloudWatch's embedded
    metric format (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html)
    with Powertools' ``single_metric``, so Lambda's log stream makes it a metric with no API call. Powertools is
    imported on the first conflict only: a conflict-free handler pays nothing."""
    from aws_lambda_powertools.metrics import MetricUnit, single_metric

    with single_metric(name=CONFLICT_METRIC, unit=MetricUnit.Count, value=1, namespace=CONFLICT_NAMESPACE,
                       default_dimensions={"agent": agent, "outcome": "given_up" if given_up else "rerun"}) as metric:
        metric.add_metadata("handler", handler)

def commit_expiry_seconds() -> int:
    """How long a handler commit's idempotency record refuses a second commit (``SOORMA_IDEMPOTENCY_EXPIRES_SECONDS``,
    seconds)."""
    from .. import settings

    return settings.IDEMPOTENCY_EXPIRES_SECONDS.get()


EventHandler = Callable[[EventEnvelope, "PlatformContext"], Any]
Lifecycle = Callable[[], Any]


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


@dataclass(frozen=True)
class _Handler:
    topic: str
    event_type: str
    func: EventHandler  # (event, context) -> awaitable; the SDK's wrapper around the user's function
    name: str

    def matches(self, event: EventEnvelope) -> bool:
        return self.topic == str(event.topic) and self.event_type in (event.type, CATCH_ALL)


def _event_name(obj: Any) -> str:
    """The event type named by a string, an EventDefinition, an object with ``event_type`` or a dict."""
    if isinstance(obj, str):
        return obj
    if isinstance(obj, EventDefinition):
        return obj.event_name
    if isinstance(obj, Mapping):
        name = obj.get("event_name") or obj.get("eventName") or obj.get("event_type") or obj.get("name")
    else:
        name = getattr(obj, "event_name", None) or getattr(obj, "event_type", None)
    if not name:
        raise TypeError(f"cannot tell which event {obj!r} names")
    return str(name)


def _event_definition(obj: Any) -> dict[str, Any] | None:
    """The registrable definition behind an events_consumed/produced entry (``None`` for a bare name)."""
    if isinstance(obj, EventDefinition):
        return obj.model_dump(exclude_none=True)
    if isinstance(obj, Mapping) and (obj.get("event_name") or obj.get("eventName")):
        return EventDefinition.model_validate(
            {("event_name" if k == "eventName" else k): v for k, v in obj.items()}
        ).model_dump(exclude_none=True)
    if hasattr(obj, "model_dump") and getattr(obj, "event_name", None):
        return EventDefinition.model_validate(obj.model_dump()).model_dump(exclude_none=True)
    return None


#: Fields that make an event definition worth registering (more than a name and a topic).
_DESCRIBING = ("description", "payload_schema", "response_schema", "payload_schema_name", "response_schema_name")


def _plain(obj: Any) -> Any:
    """``obj`` with every pydantic model inside turned into a dict (``None`` fields left out), so a capability
    written with ``EventDefinition`` objects serializes as JSON."""
    if hasattr(obj, "model_dump"):
        return obj.model_dump(exclude_none=True)
    if isinstance(obj, Mapping):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


#: What a chat model id may be (the registry's ``Capability.chat_model``): one URL path segment.
_CHAT_MODEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,199}$")


def chat_model_id(event_type: str, chat: bool | str) -> str | None:
    """The model id a handler's ``chat=`` option declares for ``event_type``: ``None`` for ``False``, the event type
    for ``True``, else the given id. Raises ``ValueError`` for an id the registry would refuse (1-200 characters of
    ``[A-Za-z0-9._:-]``, starting with a letter or digit)."""
    if chat is False:
        return None
    model = event_type if chat is True else chat
    if not isinstance(model, str) or not _CHAT_MODEL.match(model):
        raise ValueError(f"chat model id {model!r} must be 1-200 characters of [A-Za-z0-9._:-], starting with a "
                         "letter or digit")
    return model


def _consumed_name(capability: Mapping[str, Any]) -> str | None:
    consumed = capability.get("consumed_event") or capability.get("consumedEvent")
    if isinstance(consumed, Mapping):
        consumed = consumed.get("event_name") or consumed.get("eventName")
    return consumed if isinstance(consumed, str) else None


@dataclass
class AgentConfig:
    """soorma-core's ``soorma.agents.base.AgentConfig``, as :attr:`Agent.config` reports it.

    ``agent_id`` is the agent's name by default here (one registry row per deployed agent, not one per process);
    the URLs are where this SDK's clients go (``SOORMA_API_URL``, or soorma-core's per-service variables, which
    override it). ``heartbeat_interval`` and ``auto_register`` are soorma-core's fields: a serverless agent sends no
    heartbeat (it is live while deployed) and the deployer registers it (``soorma deploy`` / ``soorma local``).
    """

    agent_id: str
    name: str
    description: str = ""
    version: str = "0.1.0"
    agent_type: str = "agent"
    capabilities: list[Any] = field(default_factory=list)
    events_consumed: list[str] = field(default_factory=list)
    events_produced: list[str] = field(default_factory=list)
    event_definitions: list[dict[str, Any]] = field(default_factory=list)
    registry_url: str | None = None
    event_service_url: str | None = None
    memory_url: str | None = None
    tracker_url: str | None = None
    heartbeat_interval: float = 30.0
    auto_register: bool = True


class Agent:
    """An event-driven agent (reference §1.2).

    ``Agent(name, description="", version="0.1.0", agent_type=None, capabilities=None, events_consumed=None,
    events_produced=None, agent_id=None, auto_register=True, auth_token=None, auth_token_provider=None, *,
    context=None, idempotency_cache_size=2048)``.

    ``agent_id`` defaults to ``name``: a serverless agent is one registry row however many execution environments
    run it. ``events_consumed``/``events_produced`` take names, :class:`EventDefinition` objects or dicts.
    ``context``: a ready :class:`PlatformContext` (tests); by default one is built from the environment on first
    use and kept for the life of the execution environment. ``auto_register`` is kept for soorma-core code; here
    the deployer registers the agent (``soorma deploy`` / ``soorma local``), not the function.
    """

    agent_type = "agent"

    def __init__(
        self,
        name: str,
        description: str = "",
        version: str = "0.1.0",
        agent_type: str | None = None,
        capabilities: list[Any] | None = None,
        events_consumed: list[Any] | None = None,
        events_produced: list[Any] | None = None,
        agent_id: str | None = None,
        auto_register: bool = True,
        auth_token: str | None = None,
        auth_token_provider: Callable[[], Any] | None = None,
        *,
        context: "PlatformContext | None" = None,
        idempotency_cache_size: int = DEFAULT_IDEMPOTENCY_CACHE,
    ) -> None:
        self.name = name
        self.description = description
        self.version = version
        if agent_type:
            self.agent_type = agent_type
        self.capabilities: list[Any] = list(capabilities or [])
        self.events_consumed: list[str] = [_event_name(e) for e in events_consumed or []]
        self.events_produced: list[str] = [_event_name(e) for e in events_produced or []]
        self._definitions: dict[str, dict[str, Any]] = {}
        #: Chat entries (``chat=`` of ``on_goal``/``on_task``): event type → model id.
        self._chat_models: dict[str, str] = {}
        for entry in [*(events_consumed or []), *(events_produced or [])]:
            definition = _event_definition(entry)
            if definition:
                self._definitions[definition["event_name"]] = definition
        self._agent_id = agent_id or name
        self.auto_register = auto_register
        self._auth_token = auth_token
        self._auth_token_provider = auth_token_provider
        self._context = context
        self._handlers: list[_Handler] = []
        self._startup: list[Lifecycle] = []
        self._shutdown: list[Lifecycle] = []
        self._started = False
        self._handled: OrderedDict[str, set[int]] = OrderedDict()
        self._handled_lock = threading.Lock()
        self._cache_size = idempotency_cache_size
        #: task contexts this environment's handler runs committed (``commit`` mode's optimistic read cache)
        self._committed_tasks = CommittedTasks(idempotency_cache_size)
        self._runtime: LambdaRuntime | None = None

    # --- identity ----------------------------------------------------------------------------------------------
    @property
    def agent_id(self) -> str:
        return self._agent_id

    @property
    def config(self) -> "AgentConfig":
        """soorma-core's ``agent.config``: a snapshot of this agent's configuration as an :class:`AgentConfig`
        (changing it does not reconfigure the agent)."""
        from ..settings import Settings

        settings = Settings.from_env()
        return AgentConfig(
            agent_id=self.agent_id, name=self.name, description=self.description, version=self.version,
            agent_type=self.agent_type, capabilities=list(self.capabilities),
            events_consumed=list(self.events_consumed), events_produced=list(self.events_produced),
            event_definitions=self.event_definitions(), registry_url=settings.registry_base,
            event_service_url=settings.bus_base, memory_url=settings.memory_base, tracker_url=settings.tracker_base,
            auto_register=self.auto_register,
        )

    @property
    def context(self) -> "PlatformContext":
        """The platform clients (built from the environment once per execution environment unless set)."""
        if self._context is None:
            from ..environment import environment_context

            self._context = environment_context(self._auth_token, self._auth_token_provider)
        return self._context

    @context.setter
    def context(self, value: "PlatformContext") -> None:
        self._context = value

    # --- decorators --------------------------------------------------------------------------------------------
    def on_event(self, event_type: str, *, topic: str | EventTopic) -> Callable[[EventHandler], EventHandler]:
        """Register ``async handler(event: EventEnvelope, context: PlatformContext)`` for ``event_type`` on
        ``topic`` (``"*"`` = every event type on the topic). Returns the function unchanged, so decorators stack."""
        self._checked(topic, event_type)

        def decorate(func: EventHandler) -> EventHandler:
            async def call(event: EventEnvelope, context: "PlatformContext") -> None:
                await _maybe_await(func(event, context))

            self._add_handler(topic, event_type, call, func)
            return func

        return decorate

    def on_startup(self, func: Lifecycle) -> Lifecycle:
        """Run ``func()`` once per execution environment, before its first event."""
        self._startup.append(func)
        return func

    def on_shutdown(self, func: Lifecycle) -> Lifecycle:
        """Run ``func()`` when the execution environment shuts down (best effort: process exit / SIGTERM)."""
        self._shutdown.append(func)
        return func

    @staticmethod
    def _checked(topic: str | EventTopic, event_type: str) -> str:
        """The topic as a string; raises ``ValueError`` for an unknown topic or an event type that cannot be a
        subject (checked when the decorator is created, so mistakes surface at import time)."""
        topic = str(topic.value if isinstance(topic, EventTopic) else topic)
        if topic not in TOPICS:
            raise ValueError(f"unknown topic {topic!r}; one of {', '.join(TOPICS)}")
        if event_type != CATCH_ALL:
            check_event_type(event_type)
        return topic

    def _add_handler(
        self, topic: str | EventTopic, event_type: str, call: EventHandler, func: Callable[..., Any]
    ) -> None:
        topic = self._checked(topic, event_type)
        name = getattr(func, "__qualname__", repr(func))
        self._handlers.append(_Handler(topic, event_type, call, name))

    def _register_produced_event(self, event_type: str) -> None:
        if event_type not in self.events_produced:
            self.events_produced.append(event_type)

    # --- what the deployer reads -------------------------------------------------------------------------------
    def subscriptions(self) -> list[tuple[str, str]]:
        """``[(topic, event_type), ...]`` to route to this agent, in registration order, without duplicates.
        ``event_type`` ``"*"`` means every event on the topic; a catch-all absorbs the topic's specific entries
        (NATS consumers reject overlapping filter subjects)."""
        catch_all = {h.topic for h in self._handlers if h.event_type == CATCH_ALL}
        subs = [
            (h.topic, h.event_type)
            for h in self._handlers
            if h.event_type == CATCH_ALL or h.topic not in catch_all
        ]
        return list(dict.fromkeys(subs))

    def definition(self, deployment: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The ``AgentDefinition`` for ``POST /v1/agents`` (``{"agent": <this>}``): ``agent_id, name, description,
        version, capabilities, consumed_events, produced_events`` and ``deployment`` when given. The capability of an
        event handled with ``chat=`` carries ``chat_model``: the registry keeps it, and the gateway's
        OpenAI-compatible chat API serves that model with goals of the event."""
        consumed = _unique([*self.events_consumed, *(h.event_type for h in self._handlers if h.event_type != CATCH_ALL)])
        capabilities = [self._capability(c) for c in self.capabilities]
        # Every request this agent answers is described with its topic (and registered definition, if any), so
        # discovery (EventToolkit.discover_actionable_events) can offer it, even when handled with plain on_event.
        covered = {str((c.get("consumed_event") or {}).get("event_name") or "") for c in capabilities
                   if isinstance(c, Mapping) and isinstance(c.get("consumed_event"), Mapping)}
        for handler in self._handlers:
            if handler.topic == EventTopic.ACTION_REQUESTS.value and handler.event_type != CATCH_ALL \
                    and handler.event_type not in covered:
                covered.add(handler.event_type)
                capabilities.append({
                    "task_name": handler.event_type,
                    "description": self._definitions.get(handler.event_type, {}).get("description", ""),
                    "consumed_event": self._definitions.get(
                        handler.event_type, {"event_name": handler.event_type, "topic": handler.topic, "description": ""}
                    ),
                    "produced_events": [],
                })
        for capability in capabilities:
            name = _consumed_name(capability) if isinstance(capability, Mapping) else None
            if name in self._chat_models:
                capability["chat_model"] = self._chat_models[name]
        body: dict[str, Any] = {
            "agent_id": self.agent_id,
            "name": self.name,
            "description": self.description,
            "version": self.version,
            "capabilities": capabilities,
            "consumed_events": consumed,
            "produced_events": _unique(self.events_produced),
        }
        if deployment is not None:
            body["deployment"] = dict(deployment)
        return body

    def deployment(self, function_name: str, transport: str = "nats", **settings: Any) -> dict[str, Any]:
        """A ``Deployment`` binding for :meth:`definition`: ``{function_name, transport, subscriptions:
        [{topic, event_type}], batch_size=10, max_concurrency=2, max_deliveries=5, timeout_seconds=30}``
        (``settings`` override the defaults)."""
        body = {
            "function_name": function_name,
            "transport": transport,
            "subscriptions": [{"topic": t, "event_type": e} for t, e in self.subscriptions()],
            "batch_size": 10,
            "max_concurrency": 2,
            "max_deliveries": 5,
            "timeout_seconds": 30,
        }
        body.update(settings)
        return body

    def event_definitions(self) -> list[dict[str, Any]]:
        """The event definitions to register (``POST /v1/events``): those given in ``events_consumed``/
        ``events_produced``, then those inside capabilities (``consumed_event``/``produced_events``) that say more
        than a name (a description, a schema or a schema name), as soorma-core registers them at startup."""
        found = dict(self._definitions)
        for cap in self.capabilities:
            if isinstance(cap, str):
                continue
            raw = _plain(cap)
            entries = [raw.get("consumed_event") or raw.get("consumedEvent"),
                       *(raw.get("produced_events") or raw.get("producedEvents") or [])]
            for entry in entries:
                definition = _event_definition(entry) if entry is not None else None
                if definition and any(definition.get(k) for k in _DESCRIBING):
                    found.setdefault(definition["event_name"], definition)
        return list(found.values())

    def _capability(self, cap: Any) -> Any:
        # soorma-core's AgentCapability shape; a bare name that is also a handled event type gets that event as its
        # consumed_event, other bare names (e.g. "planning") are described by name only.
        if hasattr(cap, "model_dump") or isinstance(cap, Mapping):
            return _plain(cap)
        name = str(cap)
        entry: dict[str, Any] = {"task_name": name, "description": "", "produced_events": []}
        handler = next((h for h in self._handlers if h.event_type == name), None)
        if handler is not None:
            entry["consumed_event"] = self._definitions.get(
                name, {"event_name": name, "topic": handler.topic, "description": ""}
            )
        return entry

    def _capability_names(self) -> set[str]:
        names = set()
        for cap in self.capabilities:
            if isinstance(cap, str):
                names.add(cap)
            elif isinstance(cap, Mapping):
                names.add(str(cap.get("task_name") or cap.get("taskName") or ""))
            else:
                names.add(str(getattr(cap, "task_name", "") or ""))
        return names - {""}

    # --- platform helpers --------------------------------------------------------------------------------------
    async def emit(
        self,
        event_type: str,
        data: Mapping[str, Any] | None = None,
        topic: str | EventTopic | None = None,
        correlation_id: str | None = None,
    ) -> str:
        """Publish an event; the topic defaults to the one of its registered definition, else ``business-facts``.
        Returns the event id."""
        if topic is None:
            topic = self._definitions.get(event_type, {}).get("topic") or EventTopic.BUSINESS_FACTS.value
        self._register_produced_event(event_type)
        return await self.context.bus.publish(topic, event_type, data, correlation_id=correlation_id)

    async def register_event(self, event_definition: EventDefinition | Mapping[str, Any]) -> dict[str, Any]:
        """Register one event definition with the registry (``POST /v1/events``)."""
        return await self.context.registry.register_event(event_definition)

    async def register(self, deployment: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Register this agent's event definitions and its definition; returns the registry's answer ``{"agent_id",
        "success", "message"}``. The registry keeps the agent's deployment binding, which only the deploy path writes
        (``soorma local deploy``, the ``SoormaAgent`` construct): a ``deployment`` that sets or changes it is refused
        (``PlatformError`` 403); leave it out."""
        for definition in self.event_definitions():
            await self.context.registry.register_event(definition)
        return await self.context.registry.register_agent(self.definition(deployment))

    # --- lifecycle ---------------------------------------------------------------------------------------------
    async def start(self) -> None:
        """Run the startup handlers once (the Lambda entry calls this before the first batch)."""
        if self._started:
            return
        for func in self._startup:
            await _maybe_await(func())
        self._started = True

    async def stop(self) -> None:
        """Run the shutdown handlers and close the platform clients."""
        try:
            for func in self._shutdown:
                try:
                    await _maybe_await(func())
                except Exception:
                    log.exception("agent %s: shutdown handler %s failed", self.name, func)
        finally:
            self._started = False
            if self._context is not None:
                await self._context.close()

    def run(self, **options: Any) -> None:
        """Run this agent as a local process consuming its events from NATS JetStream (blocking, until SIGINT or
        SIGTERM): for breakpoints and quick iteration against ``soorma local``. Events go through the same
        :meth:`dispatch` as in the Lambda entry; a handler that raises makes the message redelivered. ``options``:
        see :class:`soorma.process.LocalRunner` (``nats_url``, ``platform_tenant_id``, ``batch_size``,
        ``max_deliveries``, ...). Deployed as a function, the agent object is the handler and ``run()`` is not used.
        """
        from ..process import run_agent

        run_agent(self, **options)

    # --- dispatch ----------------------------------------------------------------------------------------------
    def handlers_for(self, event: EventEnvelope) -> list[tuple[int, _Handler]]:
        """The handlers an event reaches: exact matches first, then catch-alls, in registration order."""
        matched = [(i, h) for i, h in enumerate(self._handlers) if h.matches(event)]
        return sorted(matched, key=lambda pair: pair[1].event_type == CATCH_ALL)

    async def dispatch(self, event: EventEnvelope, *, commit: bool = False) -> int:
        """Run every matching handler for ``event``; returns how many ran now.

        Idempotent per event id within this execution environment: handlers that already succeeded for this id
        are skipped, so a redelivered event re-runs only the handlers that failed. A handler's exception
        propagates (the record then fails and is redelivered). ``commit``: each handler run's events and
        task-context writes are buffered and applied at once when it returns (:meth:`_run_handler`).
        """
        matched = self.handlers_for(event)
        if not matched:
            log.debug("agent %s: no handler for %s/%s", self.name, event.topic, event.type)
            return 0
        # The lock: threads of one process may dispatch at once (soorma.runtime keeps a loop per thread), and an
        # eviction by one between another's get and move_to_end would raise KeyError.
        with self._handled_lock:
            done = self._handled.get(event.id)
            if done is None:
                done = set()
                self._handled[event.id] = done
                while len(self._handled) > self._cache_size:
                    self._handled.popitem(last=False)
            self._handled.move_to_end(event.id)
        ran = 0
        context = self.context
        to_run = [(index, handler) for index, handler in matched if index not in done]
        for position, (index, handler) in enumerate(to_run):
            await self._run_handler(index, handler, event, context, commit=commit, last=position == len(to_run) - 1)
            done.add(index)
            ran += 1
        if ran == 0:
            log.info("agent %s: event %s (%s) already handled, skipped", self.name, event.id, event.type)
        return ran

    def commit_key(self, event: EventEnvelope, index: int) -> str:
        """The idempotency key of handler ``index``'s commit for ``event``: ``soorma.commit.<agent name>#<md5 of
        [event id, handler index]>`` (Powertools' key shape, apart from the records of ``SOORMA_IDEMPOTENCY=platform``)."""
        digest = hashlib.md5(json.dumps([event.id, index]).encode(), usedforsecurity=False).hexdigest()
        return f"soorma.commit.{self.name}#{digest}"

    async def _run_handler(self, index: int, handler: _Handler, event: EventEnvelope, context: "PlatformContext",
                           *, commit: bool = False, last: bool = True) -> None:
        """Run one handler, then send what it deferred (delegated requests).

        ``commit`` (``SOORMA_IDEMPOTENCY=commit``, the default in a function): what the run publishes and the task
        contexts it saves or deletes are buffered (:class:`soorma._current.PendingCommit`) and sent in ONE request
        when it returns (:meth:`soorma.clients.bus.BusClient.commit`): the platform applies them in one transaction
        with the run's idempotency record (:meth:`commit_key`) and then publishes the events, so a run costs one
        platform call instead of one per action, a failed run leaves nothing behind, and a repeated run of an event
        already committed (a redelivery, another execution environment) changes nothing. What a commit wrote is
        kept (:class:`soorma._current.CommittedTasks`): a later run here that restores the same task reads it
        without a platform call; the commit's version check catches a stale copy (409), and the re-run reads afresh.
        Progress reports are not held back: a background send publishes them as soon as the handler awaits anything;
        those still unsent when it returns ride the commit, ahead of its other events
        (:attr:`soorma._current.PendingCommit.early`), and a failed run's are published at once.

        Optimistic concurrency: a save that finds the task or plan changed since it was read raises
        :class:`ConflictError` (409); the handler is then run again from the start, so it re-reads the record and
        re-applies its change on top of the other writer's. Ids it generates are the same on every run (they derive
        from the event, handler and call position), so what the first run already published is de-duplicated.
        After ``CONFLICT_RETRIES`` conflicts the error propagates and the delivery layer redelivers the event.

        Traced, the commit carries the delivery's finished spans (:func:`soorma.telemetry.commit_spans`; ``last``: this
        is the delivery's last handler run, whose commit ends its ``process`` span), so they cost no request of their
        own.
        """
        for attempt in range(CONFLICT_RETRIES + 1):
            unit = PendingCommit(event.tenant_id, event.user_id, cache=self._committed_tasks,
                                 scope=(event.platform_tenant_id, event.tenant_id, event.user_id)) if commit else None
            with handling(event, f"{self.agent_id}/{index}", source=self.name, commit=unit):
                try:
                    await telemetry.traced_handler(self.name, handler.name, event, handler.func(event, context))
                    await flush_outbox()
                    if unit is not None and not unit.empty():
                        spans = telemetry.commit_spans(last=last)
                        key, expiry = self.commit_key(event, index), int(time.time()) + commit_expiry_seconds()
                        batch = commit_batch()
                        if batch is not None and batch.takes(unit):
                            await self._defer_commit(batch, event, index, unit, key, expiry, spans, context)
                            return
                        answer = await context.bus.commit(unit, key=key, expiry_timestamp=expiry, spans=spans)
                        telemetry.spans_committed(spans)
                        if answer.get("replayed"):
                            unit.forget()
                        else:
                            unit.committed(answer.get("task_versions") or {})
                    return
                except ConflictError as exc:
                    if unit is not None:
                        unit.forget()  # the re-run reads the platform's copies
                        await context.bus.settle_early(unit, send_rest=False)  # the re-run reports again
                    record_conflict_rerun(self.name, handler.name, given_up=attempt >= CONFLICT_RETRIES)
                    if attempt >= CONFLICT_RETRIES:
                        raise
                    log.info("agent %s: %s in %s (attempt %d); re-running it", self.name, exc, handler.name,
                             attempt + 1)
                except Exception:
                    if unit is not None:
                        unit.forget()
                        await context.bus.settle_early(unit, send_rest=True)
                    if commit and await self._committed_before(context, event, index):
                        return
                    raise
            import asyncio

            await asyncio.sleep(random.uniform(0.005, 0.03) * (attempt + 1))

    async def _defer_commit(self, batch: CommitBatch, event: EventEnvelope, index: int, unit: PendingCommit, key: str,
                            expiry: int, spans: list[dict[str, Any]] | None, context: "PlatformContext") -> None:
        """Leave a finished run's commit to the end of its batch (:class:`soorma._current.CommitBatch`,
        :meth:`commit_deferred`): what it wrote goes into the read cache now, at the versions the commit will store
        (each write expects a known version, one more), so the batch's next run reads it without waiting. Its spans
        go with the deferred commit (and are not sent again if the batch's commit fails: the run's re-run records its
        own)."""
        body = await context.bus.commit_body(unit, key=key, expiry_timestamp=expiry, spans=spans)
        traceparent = telemetry.commit_traceparent() if spans else None
        if traceparent:
            body["traceparent"] = traceparent  # the gateway's server span of this run's commit hangs below it
        telemetry.spans_committed(spans)
        unit.committed({task_id: (expected or 0) + 1 for task_id, (_, expected) in unit.task_contexts.items()})
        batch.runs.append(DeferredRun(event, index, unit, body, batch.message_id))

    async def commit_deferred(self, batch: CommitBatch) -> set[str]:
        """Commit the runs ``batch`` deferred (one ``POST /v1/events/commits``; one ``POST /v1/events/commit`` when
        there is one). Returns the message ids of the records whose runs must be handled again because the commit
        failed (nothing of it was applied; what they put in the read cache is dropped, and they count as not handled
        here, so their redelivery or re-processing runs them again with the same ids and keys). Raises nothing."""
        runs, batch.runs = batch.runs, []
        if not runs:
            return set()
        first = runs[0]
        traceparent = first.body.get("traceparent")  # each body names its own; the header is the first's
        try:
            with delivering(first.event):  # the calls act for the events' tenant and user with a delivery grant
                if len(runs) == 1:
                    answers = [await self.context.bus.send_commit(first.body, tenant_id=first.unit.tenant_id,
                                                                  user_id=first.unit.user_id,
                                                                  traceparent=traceparent)]
                else:
                    answers = await self.context.bus.commit_runs([run.body for run in runs],
                                                                 tenant_id=first.unit.tenant_id,
                                                                 user_id=first.unit.user_id, traceparent=traceparent)
            if len(answers) != len(runs):
                raise PlatformError(200, f"{len(answers)} results for {len(runs)} commits")
        except Exception as exc:
            log.warning("agent %s: the deferred commits of %d handler runs failed (%s); handling their events again",
                        self.name, len(runs), exc)
            for run in runs:
                run.unit.forget()
                with self._handled_lock:
                    done = self._handled.get(run.event.id)
                    if done is not None:
                        done.discard(run.index)
            return {run.message_id for run in runs if run.message_id is not None}
        for run, answer in zip(runs, answers):
            if answer.get("replayed"):
                run.unit.forget()
            else:
                run.unit.committed(answer.get("task_versions") or {})
        return set()

    async def _committed_before(self, context: "PlatformContext", event: EventEnvelope, index: int) -> bool:
        """After handler ``index`` failed on ``event`` in ``commit`` mode: whether an earlier run already committed
        it (its idempotency record is ``COMPLETED`` and live). A redelivery of a committed event re-runs the handler
        without the state it left (e.g. a task context its answer deleted), which may fail; that run is then done,
        not an error to retry until the event is dead-lettered. Asked only after a failure, so a run that succeeds
        costs nothing more. ``False`` when the record cannot be read (the failure stands)."""
        try:
            record = await context.memory.get_idempotency_record(self.commit_key(event, index))
        except Exception:  # noqa: BLE001 - the handler's own failure is the one to report
            return False
        if record is None or record.status != "COMPLETED" or record.expiry_timestamp < time.time():
            return False
        log.info("agent %s: event %s (%s) was already committed by an earlier run of %s; this run's failure is "
                 "ignored", self.name, event.id, event.type, self._handlers[index].name)
        return True

    # --- Lambda ------------------------------------------------------------------------------------------------
    def __call__(self, event: Mapping[str, Any], lambda_context: Any = None) -> dict[str, Any]:
        """The Lambda handler: an SQS-shaped batch in, ``{"batchItemFailures": [{"itemIdentifier": id}]}`` out."""
        from ..runtime import LambdaRuntime

        if self._runtime is None:
            self._runtime = LambdaRuntime(self)
        return self._runtime.handle(event, lambda_context)

    def lambda_handler(self, event: Mapping[str, Any], lambda_context: Any = None) -> dict[str, Any]:
        """Same as calling the agent; for code that wants a plain function (``handler = agent.lambda_handler``)."""
        return self(event, lambda_context)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, handlers={len(self._handlers)})"
