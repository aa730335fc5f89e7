"""The execution environment's state, which outlives one invocation (Lambda keeps the process between warm
invocations, https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtime-environment.html): ONE event loop PER
THREAD, reused by every invocation on that thread, and ONE :class:`~soorma.context.PlatformContext` built from the
environment, shared by every thread (its HTTP clients keep one connection pool per event loop).

The agents' Lambda entry (:mod:`soorma.runtime`) and what runs under it (the idempotency layer,
:mod:`soorma.idempotency`) both use it; it sits below both, so neither reaches into the other.
"""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING, Any, Awaitable, Callable, TypeVar

if TYPE_CHECKING:
    from .context import PlatformContext

T = TypeVar("T")

# One loop per thread: a loop can be run by one thread at a time (``run_until_complete`` on a loop another thread is
# running raises "This event loop is already running"), so a process-wide loop breaks as soon as two threads call the
# entry. Thread-local state is the standard answer (asyncio's own default policy keeps one loop per thread).
_local = threading.local()
_context: "PlatformContext | None" = None
_context_lock = threading.Lock()


def event_loop() -> asyncio.AbstractEventLoop:
    """The calling thread's event loop (created on first use in that thread, reused by every later invocation on it).

    Not the loop asyncio may be running in this thread: see :func:`run` for how a running loop is refused."""
    loop = getattr(_local, "loop", None)
    if loop is None or loop.is_closed():
        loop = asyncio.new_event_loop()
        _local.loop = loop
    return loop


def refuse_running_loop() -> None:
    """Raise ``RuntimeError`` when the calling thread is running an event loop (synchronous entries cannot block
    the loop they would need)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise RuntimeError(
        "the agent's Lambda entry is synchronous and cannot run inside a running event loop; "
        "await agent.dispatch(envelope) instead"
    )


def run(awaitable: Awaitable[T]) -> T:
    """Run ``awaitable`` to completion on the execution environment's loop.

    Raises ``RuntimeError`` when called from inside a running event loop (there, ``await`` the coroutine instead,
    e.g. ``await agent.dispatch(envelope)``).
    """
    try:
        refuse_running_loop()
    except RuntimeError:
        if asyncio.iscoroutine(awaitable):
            awaitable.close()
        raise
    return event_loop().run_until_complete(awaitable)


def run_checked_once(awaitable: Awaitable[T]) -> T:
    """:func:`run` without the running-loop check, for a caller that made it once for a whole batch."""
    return event_loop().run_until_complete(awaitable)



def existing_event_loop() -> asyncio.AbstractEventLoop | None:
    """The calling thread's loop if :func:`event_loop` created one (and it is open), else ``None``; never creates one."""
    loop = getattr(_local, "loop", None)
    return None if loop is None or loop.is_closed() else loop


def environment_context(
    auth_token: str | None = None, auth_token_provider: Callable[[], Any] | None = None
) -> "PlatformContext":
    """The execution environment's :class:`PlatformContext`, built from ``SOORMA_*`` once. An agent with its own
    ``auth_token``/``auth_token_provider`` gets a context of its own."""
    global _context
    from .context import PlatformContext

    if auth_token is not None or auth_token_provider is not None:
        return PlatformContext.from_env(auth_token=auth_token, auth_token_provider=auth_token_provider)
    if _context is None:
        with _context_lock:  # two threads' first batches must not build two contexts (and leak one's pools)
            if _context is None:
                _context = PlatformContext.from_env()
    return _context
