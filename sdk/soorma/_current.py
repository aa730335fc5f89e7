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

import uuid
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


@dataclass
class _Handling:
    event: EventEnvelope
    seed: str
    source: str | None = None
    counter: int = 0
    # Publishes deferred until the handler returned (see :func:`defer`).
    outbox: list[Callable[[], Awaitable[Any]]] = field(default_factory=list)


_current: ContextVar[_Handling | None] = ContextVar("soorma_current_event", default=None)
# The event being delivered, for platform calls made on its behalf outside its handlers' bodies (the idempotency
# record around them): only its delivery grant is used (see :func:`delivering`).
_delivering: ContextVar[EventEnvelope | None] = ContextVar("soorma_delivering_event", default=None)


def current_event() -> EventEnvelope | None:
    """The event whose handler is running in this context, or ``None`` outside handlers."""
    handling_ = _current.get()
    return handling_.event if handling_ else None


@contextmanager
def handling(event: EventEnvelope, scope: str = "", source: str | None = None) -> Iterator[EventEnvelope]:
    """Bind ``event`` as the current event for the block; ``scope`` (agent and handler) seeds derived ids,
    ``source`` (the agent's name) becomes the ``source`` of events published in the block."""
    token = _current.set(_Handling(event, f"{event.id}/{scope}", source))
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
