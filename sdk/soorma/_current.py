"""The event being handled, kept in a context variable.

While a handler runs, calls made through the SDK act for that event: the clients send its service tenant and user
as ``X-Soorma-Service-Tenant`` / ``X-Soorma-Service-User`` with the event's delivery grant as ``X-Soorma-Grant``
(an ``agent`` principal is honoured only with that grant, :func:`soorma.identity.act_for`, :mod:`soorma.grants`),
and the bus copies its trace/goal/plan/session/identity fields onto every event published (``parent_event_id`` = its
id). A ``ContextVar`` (not an attribute) so concurrent handlers and the tasks they spawn each keep their own event.

It also makes the ids a handler generates (published event ids, sub-task ids) deterministic per (event, agent,
handler, position, label). Delivery is at-least-once: when a handler is retried after it already published, the
retry produces the same event ids, and JetStream's de-duplication by message id (``Nats-Msg-Id`` =
``<platform tenant>:<envelope id>``, :func:`soorma.subjects.message_id`) drops the second copies instead of fanning out
duplicate work. Because these ids are predictable, the message id is scoped by the platform tenant: another tenant
that computes them can never make JetStream drop this tenant's events.
"""

from __future__ import annotations

import asyncio
import copy
import threading
import uuid
from collections import OrderedDict
from collections.abc import Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Iterator

from .events import EventEnvelope

TENANT_HEADER = "X-Soorma-Service-Tenant"
USER_HEADER = "X-Soorma-Service-User"
GRANT_HEADER = "X-Soorma-Grant"
#: The goal a call inside a handler works for: the platform counts the call in that goal's usage (memory reads and
#: writes, LLM gateway tokens; docs/usage-and-llm.md).
GOAL_HEADER = "X-Soorma-Goal-Id"

_NAMESPACE = uuid.UUID("6f1c2f0e-7d1a-4c58-9a53-50a7d1e0b1c4")


#: Most events and task-context writes (and, apart, deletions) one handler commit carries (``POST /v1/events/commit``
#: refuses more with 422). A run that publishes more sends the rest at once, one request each, as without commits.
MAX_COMMIT_EVENTS = 100
MAX_COMMIT_TASK_CONTEXTS = 50
#: Most handler-run commits one ``POST /v1/events/commits`` carries (the runs of one batch; 422 beyond).
MAX_BATCH_COMMITS = 10

#: (platform tenant, service tenant, service user): whose task contexts an entry of :class:`CommittedTasks` is.
Scope = tuple[str | None, str | None, str | None]


class CommittedTasks:
    """The task contexts this execution environment's handler runs committed last, as committed (fields and stored
    version), by scope and task id, and by the sub-tasks they list: an optimistic read cache. A handler that restores
    a task it (or an earlier run here) just wrote gets it without asking the platform; the commit checks the version
    (``POST /v1/events/commit``: 409 when the row changed or was deleted since), and a run that lost that race is
    re-run with the entries it read dropped, so it reads the platform's copy. Bounded (least recently used first
    out, ``size`` entries); thread-safe (threads of one process may run handlers at once)."""

    def __init__(self, size: int = 1024) -> None:
        self._size = size
        self._tasks: OrderedDict[tuple[Scope, str], dict[str, Any]] = OrderedDict()
        self._by_sub_task: dict[tuple[Scope, str], str] = {}
        self._lock = threading.Lock()

    def get(self, scope: Scope, task_id: str | None = None, sub_task_id: str | None = None) -> dict[str, Any] | None:
        """The committed fields (with ``version``) of the task ``task_id``, or of the one listing ``sub_task_id``."""
        with self._lock:
            if task_id is None and sub_task_id is not None:
                task_id = self._by_sub_task.get((scope, sub_task_id))
            if task_id is None or (scope, task_id) not in self._tasks:
                return None
            self._tasks.move_to_end((scope, task_id))
            return copy.deepcopy(self._tasks[(scope, task_id)])  # the reader may change what it got

    def put(self, scope: Scope, fields: dict[str, Any], version: int) -> None:
        """Remember a task context as committed at ``version``."""
        task_id = str(fields["task_id"])
        with self._lock:
            self._forget(scope, task_id)
            self._tasks[(scope, task_id)] = {**copy.deepcopy(fields), "version": version}
            for sub_task_id in fields.get("sub_tasks") or []:
                self._by_sub_task[(scope, str(sub_task_id))] = task_id
            while len(self._tasks) > self._size:
                (old_scope, old_id), _ = next(iter(self._tasks.items()))
                self._forget(old_scope, old_id)

    def drop(self, scope: Scope, task_id: str) -> None:
        """Forget a task context (deleted, or possibly stale)."""
        with self._lock:
            self._forget(scope, task_id)

    def _forget(self, scope: Scope, task_id: str) -> None:
        old = self._tasks.pop((scope, task_id), None)
        for sub_task_id in (old or {}).get("sub_tasks") or []:
            if self._by_sub_task.get((scope, str(sub_task_id))) == task_id:
                del self._by_sub_task[(scope, str(sub_task_id))]


@dataclass
class PendingCommit:
    """What one handler run did that the platform applies at once when it returns (``POST /v1/events/commit``, one
    transaction with the run's idempotency record; :mod:`soorma.functions.gateway.commit`), instead of one request
    per action: the events it published (``events``: envelope JSON, in order) and the task contexts it saved
    (``task_contexts``: task id → (the fields of ``POST /v1/memory/task-context``, the version it expected when it
    first wrote that task in this run; ``None``: no check)) or deleted (``deleted``). Only actions for the handled
    event's own service tenant and user are buffered (:meth:`covers`); others go out at once as before."""

    tenant_id: str | None
    user_id: str | None
    events: list[dict[str, Any]] = field(default_factory=list)
    #: where reads of tasks the run did not write may be answered from (see :class:`CommittedTasks`), for ``scope``
    cache: CommittedTasks | None = None
    scope: Scope = (None, None, None)
    #: tasks the run read from ``cache`` (dropped from it if the run fails: they may be stale)
    cached_reads: set[str] = field(default_factory=set)
    task_contexts: dict[str, tuple[dict[str, Any], int | None]] = field(default_factory=dict)
    deleted: list[str] = field(default_factory=list)
    #: progress reports (envelope JSON, in order) not yet sent: they tell about a run still going, so a background
    #: send (:attr:`early_send`, started at the report) publishes them as soon as the handler awaits anything; the
    #: ones still here when the handler returns ride its commit instead, ahead of its other events
    #: (:meth:`soorma.clients.bus.BusClient.commit`), which saves a request per report on the critical path.
    early: list[dict[str, Any]] = field(default_factory=list)
    early_send: "asyncio.Task[None] | None" = None

    def covers(self, tenant_id: str | None, user_id: str | None) -> bool:
        """Whether a call acting for ``tenant_id``/``user_id`` (``None``: the event's) acts for the event's own."""
        return (tenant_id or self.tenant_id, user_id or self.user_id) == (self.tenant_id, self.user_id)

    def takes_event(self, tenant_id: str | None, user_id: str | None) -> bool:
        """Whether a publish for ``tenant_id``/``user_id`` is buffered (:meth:`covers`, and room left)."""
        return self.covers(tenant_id, user_id) and len(self.events) + len(self.early) < MAX_COMMIT_EVENTS

    def takes_task(self, task_id: str, tenant_id: str | None, user_id: str | None) -> bool:
        """Whether a task-context write or deletion for ``tenant_id``/``user_id`` is buffered (:meth:`covers`, and
        room left, or the task already buffered)."""
        if not self.covers(tenant_id, user_id):
            return False
        if task_id in self.task_contexts or task_id in self.deleted:
            return True
        return len(self.task_contexts) < MAX_COMMIT_TASK_CONTEXTS and len(self.deleted) < MAX_COMMIT_TASK_CONTEXTS

    def store_task(self, fields: dict[str, Any], version: int | None) -> int:
        """Buffer a task-context upsert; returns the version the record will have for the rest of this run (one
        more than the version the run's first write of it expected: later writes of it replace the buffered fields
        and keep that first expectation, so the commit checks against what the run read)."""
        task_id = str(fields["task_id"])
        if task_id in self.deleted:
            self.deleted.remove(task_id)
        previous = self.task_contexts.get(task_id)
        expected = previous[1] if previous is not None else version
        self.task_contexts[task_id] = (dict(fields), expected)
        return (expected or 0) + 1

    def delete_task(self, task_id: str) -> None:
        """Buffer a task-context deletion (a write of it buffered earlier in the run is dropped)."""
        self.task_contexts.pop(task_id, None)
        if task_id not in self.deleted:
            self.deleted.append(task_id)

    def task(self, task_id: str | None = None, *, sub_task_id: str | None = None
             ) -> tuple[bool, dict[str, Any] | None]:
        """What this run wrote of a task (by id, or the one listing ``sub_task_id``): ``(known, fields or None when
        deleted)``; ``(False, None)`` when the run did not touch it (ask the platform)."""
        if task_id is not None and task_id in self.deleted:
            return True, None
        for fields, expected in self.task_contexts.values():
            if fields["task_id"] == task_id or (sub_task_id is not None and sub_task_id in (fields.get("sub_tasks")
                                                                                          or [])):
                return True, {**fields, "version": (expected or 0) + 1}
        cached = self.cache.get(self.scope, task_id, sub_task_id) if self.cache is not None else None
        if cached is not None:
            self.cached_reads.add(str(cached["task_id"]))
            return True, cached
        return False, None

    def committed(self, versions: Mapping[str, int]) -> None:
        """After the platform applied this run (``versions``: its stored task versions): remember what it wrote."""
        if self.cache is None:
            return
        for task_id, (fields, _) in self.task_contexts.items():
            if task_id in versions:
                self.cache.put(self.scope, fields, int(versions[task_id]))
            else:
                self.cache.drop(self.scope, task_id)
        for task_id in self.deleted:
            self.cache.drop(self.scope, task_id)

    def forget(self) -> None:
        """After a failed or replayed run: drop what it read from or wrote to the cache (it may be stale)."""
        if self.cache is None:
            return
        for task_id in {*self.cached_reads, *self.task_contexts, *self.deleted}:
            self.cache.drop(self.scope, task_id)

    def take_early(self) -> list[dict[str, Any]]:
        """Remove and return the progress reports not sent yet (see :attr:`early`), in order."""
        taken, self.early = self.early, []
        return taken

    def empty(self) -> bool:
        """Nothing to commit."""
        return not (self.events or self.early or self.task_contexts or self.deleted)


@dataclass
class DeferredRun:
    """A handler run whose commit waits for the end of its batch (:class:`CommitBatch`): ``body`` is its
    ``POST /v1/events/commit`` body, ``message_id`` the record it came in."""

    event: EventEnvelope
    index: int
    unit: PendingCommit
    body: dict[str, Any]
    message_id: str | None


@dataclass
class CommitBatch:
    """The handler runs of one invocation's batch of records, committed together when the batch is done (ONE
    ``POST /v1/events/commits``) instead of one commit each before the next run may start. A run is deferred here
    only while what later runs read of it is exact: its task-context writes expect a known version (so the version
    they will have is known) and it acts for the batch's service tenant and user; the agent puts what it wrote in
    its read cache (:class:`CommittedTasks`) at once, so the next run reads it without waiting. If the batch's commit
    fails, every deferred run is handled again on its own (the runtime re-processes its record)."""

    #: the record being handled now (set by the runtime before each record)
    message_id: str | None = None
    runs: list[DeferredRun] = field(default_factory=list)

    def takes(self, unit: PendingCommit) -> bool:
        """Whether ``unit``'s run may be deferred: room left, the same service tenant and user as the runs already
        here, and no task-context write without an expected version (its stored version would be unknown)."""
        if len(self.runs) >= MAX_BATCH_COMMITS:
            return False
        if self.runs and (self.runs[0].unit.tenant_id, self.runs[0].unit.user_id) != (unit.tenant_id, unit.user_id):
            return False
        return all(expected is not None for _, expected in unit.task_contexts.values())


_batch: ContextVar[CommitBatch | None] = ContextVar("soorma_commit_batch", default=None)


@contextmanager
def batching(batch: CommitBatch | None) -> Iterator[CommitBatch | None]:
    """Within the block, handler runs may defer their commits to ``batch`` (``None``: they commit at once)."""
    token = _batch.set(batch)
    try:
        yield batch
    finally:
        _batch.reset(token)


def commit_batch() -> CommitBatch | None:
    """The batch handler runs defer their commits to now, or ``None``."""
    return _batch.get()


@dataclass
class _Handling:
    event: EventEnvelope
    seed: str
    source: str | None = None
    counter: int = 0
    # Publishes deferred until the handler returned (see :func:`defer`).
    outbox: list[Callable[[], Awaitable[Any]]] = field(default_factory=list)
    # The run's buffered effects when the agent commits them at once (see :class:`PendingCommit`).
    commit: PendingCommit | None = None


_current: ContextVar[_Handling | None] = ContextVar("soorma_current_event", default=None)
# The event being delivered, for platform calls made on its behalf outside its handlers' bodies (the idempotency
# record around them): only its delivery grant is used (see :func:`delivering`).
_delivering: ContextVar[EventEnvelope | None] = ContextVar("soorma_delivering_event", default=None)


def current_event() -> EventEnvelope | None:
    """The event whose handler is running in this context, or ``None`` outside handlers."""
    handling_ = _current.get()
    return handling_.event if handling_ else None


@contextmanager
def handling(event: EventEnvelope, scope: str = "", source: str | None = None,
             commit: PendingCommit | None = None) -> Iterator[EventEnvelope]:
    """Bind ``event`` as the current event for the block; ``scope`` (agent and handler) seeds derived ids,
    ``source`` (the agent's name) becomes the ``source`` of events published in the block; ``commit``: buffer the
    block's events and task-context writes there (:func:`pending_commit`) for the agent to commit at once."""
    token = _current.set(_Handling(event, f"{event.id}/{scope}", source, commit=commit))
    try:
        yield event
    finally:
        _current.reset(token)


@contextmanager
def delivering(event: EventEnvelope) -> Iterator[EventEnvelope]:
    """Within the block, calls that act for ``event``'s tenant and user (explicit ``tenant_id``/``user_id``, e.g. the
    agent's idempotency record of the delivery) send its delivery grant, as calls inside its handlers do."""
    token = _delivering.set(event)
    try:
        yield event
    finally:
        _delivering.reset(token)


def defer(send: Callable[[], Awaitable[Any]]) -> bool:
    """Run ``send()`` after the current handler returns successfully (the agent flushes the outbox in order),
    instead of now. Returns ``False`` outside handlers (the caller then sends at once).

    Delegated requests go through here: a handler that delegates and then saves more state (``delegate_parallel``
    then ``task.state[...] = ...; await task.save()``) has finished writing before any sub-task can answer, and a
    handler that fails publishes nothing (its retry sends the same requests, with the same ids).
    """
    handling_ = _current.get()
    if handling_ is None:
        return False
    handling_.outbox.append(send)
    return True


async def flush_outbox() -> int:
    """Send what the current handler deferred, in order; returns how many were sent."""
    handling_ = _current.get()
    if handling_ is None:
        return 0
    sent = 0
    while handling_.outbox:
        send = handling_.outbox.pop(0)
        await send()
        sent += 1
    return sent


def pending_commit() -> PendingCommit | None:
    """The running handler's buffer of effects to commit at once, or ``None`` (outside handlers, or when the agent
    sends each action as it happens)."""
    handling_ = _current.get()
    return handling_.commit if handling_ else None


def current_source() -> str | None:
    """The name of the agent whose handler is running, if any."""
    handling_ = _current.get()
    return handling_.source if handling_ else None


def derived_id(label: str) -> str:
    """A new id: deterministic inside a handler (same event, handler, call position and label ⇒ same id), random
    outside one."""
    handling_ = _current.get()
    if handling_ is None:
        return str(uuid.uuid4())
    handling_.counter += 1
    return str(uuid.uuid5(_NAMESPACE, f"{handling_.seed}/{handling_.counter}/{label}"))


def identity_headers(tenant_id: str | None = None, user_id: str | None = None) -> dict[str, str]:
    """Headers that make a call act for a service tenant and user.

    Explicit values win; missing ones come from the current event. Inside a handler whose event carries a delivery
    grant (``delivery_grant``, stamped by the gateway) the grant goes along as ``X-Soorma-Grant`` when the call acts
    for the event's own tenant and user (the only ones it is valid for), and so does the event's goal as
    ``X-Soorma-Goal-Id`` (:data:`GOAL_HEADER`: the call counts in that goal's usage). Returns ``{}`` outside handlers
    when nothing is given, so a plain script acts as its key's own identity.
    """
    event = current_event()
    tenant = tenant_id or (event.tenant_id if event else None)
    user = user_id or (event.user_id if event else None)
    headers: dict[str, str] = {}
    if tenant:
        headers[TENANT_HEADER] = tenant
    if user:
        headers[USER_HEADER] = user
    for source in (event, _delivering.get()):
        if source is None:
            continue
        grant = getattr(source, "delivery_grant", None)
        if grant and (tenant, user) == (source.tenant_id, source.user_id):
            headers[GRANT_HEADER] = grant
            break
    if event is not None and event.goal_id and (tenant, user) == (event.tenant_id, event.user_id):
        headers[GOAL_HEADER] = str(event.goal_id)
    return headers
