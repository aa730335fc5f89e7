"""The Lambda entry point of agents: one SQS-shaped batch in, a partial batch response out.

The payload is the one of docs/architecture.md ("Function payload"); the NATS bridge and Lambda's own SQS event
source send the same shape and read the same ``{"batchItemFailures": [{"itemIdentifier": messageId}]}`` answer, so
one entry serves both. Records are processed with Powertools' batch utility
(https://docs.powertools.aws.dev/lambda/python/latest/utilities/batch/): ``BatchProcessor(EventType.SQS)`` with
``process_partial_response``.

Per record: the body is parsed as an :class:`EventEnvelope` (a malformed body is logged and reported failed and
*terminal*, in the ``soormaTerminalFailures`` extension of the response, so the bridge dead-letters it at once; on
SQS it is retried until the queue's ``maxReceiveCount``), then every matching handler runs. A handler
that raises makes its record a batch item failure, so the event is redelivered, never swallowed.

Handling an event at most once in effect (by event id), configured by ``SOORMA_IDEMPOTENCY``
(:func:`soorma.idempotency.idempotency_mode`):

* ``commit`` (default in a Lambda function, in AWS or under ``soorma local``, with a platform URL): each handler
  run's events and task-context writes are buffered and sent in ONE request when it returns
  (``POST /v1/events/commit``), applied in one transaction with an idempotency record keyed by agent, event id and
  handler, the events published after the commit (a transactional outbox, :mod:`soorma.functions.gateway.commit`).
  A failed run leaves nothing; a redelivered event that was already committed runs its handler again (its other
  platform calls, keyed writes, are repeated) but its commit changes nothing. Cost: one round trip per handler run
  that did something. See :meth:`soorma.agents.base.Agent._run_handler`.
* ``platform``: each record's
  dispatch is wrapped in Powertools' ``idempotent_function``
  (https://docs.powertools.aws.dev/lambda/python/latest/utilities/idempotency/) on
  :class:`soorma.idempotency.PlatformPersistenceLayer`, keyed by the agent name and the envelope id, with records in
  the memory function's PostgreSQL (``/v1/memory/idempotency/{key}``, a conditional create that mirrors Powertools'
  DynamoDB condition). A redelivery of an event already handled, to ANY execution environment, is skipped; one
  being handled elsewhere right now fails its record (redelivered later); one whose handling crashed or timed out is
  retried once its in-progress expiry (the invocation's remaining time) has passed; a handler that raises deletes the
  record, so the delivery layer's retry runs it again. Cost: two memory round trips (PUT, PATCH) per new event, none
  for a redelivery this environment already handled (Powertools' local cache). See :mod:`soorma.idempotency.agent`.
* ``local`` (default elsewhere): each execution environment remembers which handlers already succeeded for an event
  id (LRU, :meth:`Agent.dispatch`) and skips them on redelivery; another environment would run them again.
* ``off``: every delivery runs every matching handler.

In every mode the per-environment LRU (kept in ``platform`` mode too) makes a redelivered event re-run only the
handlers that failed, and the rest still holds: ids a handler generates are deterministic per (event, agent, handler,
call position) and the envelope id is the JetStream message id, so what a re-run publishes is dropped by the stream's
duplicate window; every platform write the SDK makes is keyed (task/plan context upserts by id with a version,
working-memory keys), so a re-run rewrites the same rows.

Execution-environment state (Lambda keeps the process between warm invocations): ONE event loop PER THREAD, on
which every handler that thread runs executes, reused by every invocation on that thread (Lambda's runtime calls the
handler on one thread, so in AWS that is one loop per environment, and HTTP connection pools and anything handlers
cache stay valid); and ONE :class:`PlatformContext` built from the environment, shared by every thread: its HTTP
clients keep one connection pool per event loop (:class:`soorma.clients._http.HttpClient`), because an asyncio
connection pool belongs to the loop it was created on. So two threads may run batches at once (a test harness or a
local runner that calls the entry from a thread pool, as the NATS bridge's concurrent invocations do in-process), and a
handler may call the entry from ``asyncio.to_thread``: each thread runs its own loop. A call from a thread whose loop
is *running* (inside ``async def`` code) is refused with a clear ``RuntimeError``: the synchronous entry cannot block
the loop it would need. Records of a batch run one after another, in order.

Platform unavailable (issue 16, "waking up"): a record whose handler failed because the platform could not serve it
now (a 503 with ``Retry-After`` while its database resumes from a pause, or the platform unreachable:
:func:`soorma.errors.retry_later_seconds`) is reported in the ``soormaRetryLater`` extension of the response
(:data:`soorma.payload.RETRY_LATER_FIELD`) as well as in ``batchItemFailures``; the NATS bridge redelivers it later
without counting the delivery toward dead-lettering. The records after it in the batch are not started (they would
wait on the same platform and eat the invocation's time) and are reported the same way.

Platform tenant (defence in depth, docs/architecture.md "Identity"): the function knows the platform tenant it was
deployed for (``SOORMA_PLATFORM_TENANT_ID``, set by ``soorma local deploy`` and the CDK ``SoormaAgent``); a record
whose envelope names another platform tenant is never handled and is reported a terminal failure (the bridge
dead-letters it at once; on SQS it goes to the dead-letter queue after ``maxReceiveCount``). Without the variable
(a script, a test) every tenant is accepted.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import signal
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Mapping

from . import settings, telemetry
from ._current import CommitBatch, batching
from .environment import (
    environment_context,
    event_loop,
    existing_event_loop,
    refuse_running_loop,
    run,
    run_checked_once,
)
from .errors import ForeignTenantEventError, MalformedEventError, PlatformUnavailableError, retry_later_seconds
from .events import EventEnvelope

if TYPE_CHECKING:
    from .agents.base import Agent
    from .idempotency.agent import AgentIdempotency

log = logging.getLogger("soorma.runtime")

__all__ = ["LambdaRuntime", "deployed_platform_tenant", "environment_context", "event_loop", "run"]

# Stop starting handlers this long before Lambda's own timeout, so the partial response (which acknowledges the
# records already processed) is returned instead of the whole batch being lost to a timeout and redelivered.
SAFETY_MARGIN_SECONDS = 1.0

#: Environment variable naming the platform tenant the function was deployed for (see the module docstring).
PLATFORM_TENANT_ENV = settings.PLATFORM_TENANT_ID.name

_start_lock = threading.Lock()


def deployed_platform_tenant() -> str | None:
    """The platform tenant this function was deployed for (``SOORMA_PLATFORM_TENANT_ID``), or ``None`` when unset."""
    return settings.PLATFORM_TENANT_ID.get() or None


def _remaining_seconds(lambda_context: Any) -> float | None:
    getter = getattr(lambda_context, "get_remaining_time_in_millis", None)
    if getter is None:
        return None
    try:
        return float(getter()) / 1000.0
    except Exception:  # a fake or partial context: run without a deadline
        return None


class LambdaRuntime:
    """Drives one agent from Lambda invocations (``agent(event, context)`` creates and calls it)."""

    def __init__(self, agent: "Agent") -> None:
        self.agent = agent
        self._exit_hooks = False
        self._mode: str | None = None
        #: ``SOORMA_PLATFORM_TENANT_ID`` as it was when the runtime was built (``None``: every tenant accepted).
        self._platform_tenant = deployed_platform_tenant()
        #: :class:`soorma.idempotency.AgentIdempotency` in ``platform`` mode, else ``None``.
        self.idempotency: AgentIdempotency | None = None

    @property
    def mode(self) -> str:
        """The idempotency mode (``SOORMA_IDEMPOTENCY``, read on first use): ``commit``, ``platform``, ``local`` or
        ``off``.
        Raises ``ValueError`` for an unknown value."""
        if self._mode is None:
            from .idempotency import idempotency_mode

            mode = idempotency_mode()
            if mode == "platform":
                from .idempotency.agent import AgentIdempotency

                self.idempotency = AgentIdempotency(self.agent)
            self._mode = mode
        return self._mode

    def handle(self, event: Mapping[str, Any], lambda_context: Any = None) -> dict[str, Any]:
        """Process a batch; returns ``{"batchItemFailures": [{"itemIdentifier": messageId}, ...]}``, plus
        ``"soormaTerminalFailures": [{"itemIdentifier", "reason"}]`` for records whose body is not an event envelope
        (:data:`soorma.payload.TERMINAL_FAILURES_FIELD`: the NATS bridge dead-letters them without retrying; Lambda's
        SQS event source mapping ignores the field and retries them until ``maxReceiveCount``).

        A bare envelope (``{"type", "topic", ...}``, e.g. from ``aws lambda invoke``) is dispatched directly and
        raises if a handler fails; one that names no platform tenant is taken as the function's own. An envelope of
        another platform tenant than ``SOORMA_PLATFORM_TENANT_ID`` raises :class:`ForeignTenantEventError` (a record:
        reported terminal). Anything else without ``Records`` raises ``ValueError``; a call from inside a
        running event loop raises ``RuntimeError``.
        """
        refuse_running_loop()
        self.mode  # noqa: B018 - resolve the idempotency setting (a bad value fails the invocation, visibly)
        if isinstance(event, Mapping) and "Records" not in event and "type" in event and "topic" in event:
            envelope = EventEnvelope.model_validate(dict(event))
            if envelope.platform_tenant_id is None and self._platform_tenant is not None:
                # A direct invocation (``aws lambda invoke``, ``soorma local invoke``) comes from a principal allowed
                # to invoke this function, and the platform always names the tenant of what it delivers: an
                # envelope that names none is this function's own tenant's. One that names another is refused below.
                envelope = envelope.model_copy(update={"platform_tenant_id": self._platform_tenant})
            self._check_tenant(envelope)
            self._start()
            self._handle_envelope(envelope, None, lambda_context)
            return {"batchItemFailures": []}
        records = event.get("Records") if isinstance(event, Mapping) else None
        if not isinstance(records, list):
            raise ValueError("expected an SQS-shaped batch {'Records': [...]} (docs/architecture.md, Function payload)")
        if not records:
            return {"batchItemFailures": []}

        try:
            self._start()
        except Exception as exc:
            # Nothing can be handled without a started agent: fail every record (redelivered later), and retry the
            # startup handlers on the next invocation; "retry later" when the platform was what was missing.
            log.exception("agent %s: startup failed; failing the batch of %d", self.agent.name, len(records))
            failed = {"batchItemFailures": [{"itemIdentifier": r.get("messageId", "")} for r in records]}
            seconds = retry_later_seconds(exc)
            if seconds is None:
                return failed
            from .payload import with_retry_later

            return with_retry_later(failed, {r.get("messageId", ""): seconds for r in records})
        self._install_exit_hooks()

        from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

        # raise_on_entire_batch_failure=False: when every record fails we still answer with the list, which is what
        # the bridge and SQS expect, instead of an invocation error that hides which records failed and why.
        processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)

        terminal: dict[str, str] = {}  # message id -> reason: failures no redelivery can fix
        metrics = telemetry.InvocationMetrics(self.agent.name)
        retry_later: dict[str, float] = {}  # message id -> seconds: the platform could not serve it now

        # The batch's handler runs commit together at its end (one request), so a run does not wait for the
        # previous one's commit (_current.CommitBatch); a single record commits at once as before.
        batch = CommitBatch() if self._mode == "commit" and len(records) > 1 else None

        def record_handler(record: Any) -> None:
            if retry_later:
                retry_later[record.message_id] = max(retry_later.values())
                raise PlatformUnavailableError("not started: the platform was unavailable for an earlier record of "
                                               "this batch")
            if batch is not None:
                batch.message_id = record.message_id
            started = time.perf_counter()
            receive_count = (record.raw_event.get("attributes") or {}).get("ApproximateReceiveCount", 1)
            try:
                event_type = self._process_record(record, lambda_context)
                metrics.record(event_type, started, failed=False, receive_count=receive_count)
            except (MalformedEventError, ForeignTenantEventError) as exc:
                terminal[record.message_id] = f"{type(exc).__name__}: {exc}"
                raise
            except Exception as exc:
                metrics.record(getattr(exc, "soorma_event_type", "unknown"), started, failed=True,
                               receive_count=receive_count)
                seconds = retry_later_seconds(exc)
                if seconds is not None:
                    retry_later[record.message_id] = seconds
                raise

        spans = telemetry.SpanBatch.begin()  # the records' spans, sent together after the last one
        try:
            with batching(batch):
                response: Mapping[str, Any] = process_partial_response(
                    event=dict(event), record_handler=record_handler, processor=processor, context=lambda_context
                )
            if batch is not None:
                response = self._commit_batch(batch, records, response, record_handler)
        finally:
            if spans is not None:
                spans.close()
                run(spans.send(self.agent))
            if telemetry.in_function():
                metrics.emit()
                telemetry.write_invocation_line(event, lambda_context)
        # A malformed envelope fails the same way on every delivery: report it terminal (an extension field
        # beside batchItemFailures, soorma.payload.TERMINAL_FAILURES_FIELD) so the bridge dead-letters it at once.
        from .payload import with_retry_later, with_terminal_failures

        return with_retry_later(with_terminal_failures(dict(response), terminal), retry_later)

    def _commit_batch(self, batch: CommitBatch, records: list[Any], response: Mapping[str, Any],
                      record_handler: Callable[[Any], None]) -> dict[str, Any]:
        """Commit the runs ``batch`` deferred (:meth:`soorma.agents.base.Agent.commit_deferred`). If that failed,
        each of their records is handled again now, alone, committing at once (``record_handler`` outside the
        batch); one that fails again is added to the response's ``batchItemFailures``. Returns the response."""
        again = run(self.agent.commit_deferred(batch))
        if not again:
            return dict(response)
        from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

        failures = list(response.get("batchItemFailures") or [])
        failed = {item.get("itemIdentifier") for item in failures}
        for raw in records:
            message_id = raw.get("messageId")
            if message_id not in again or message_id in failed:
                continue
            try:
                record_handler(SQSRecord(raw))
            except Exception:
                log.exception("agent %s: message %s failed when handled again after its batch's commit failed",
                              self.agent.name, message_id)
                failures.append({"itemIdentifier": message_id})
        return {**response, "batchItemFailures": failures}

    def _start(self) -> None:
        """Run the agent's startup handlers once per environment, even when several threads' first batches arrive
        together (the lock makes the others wait for the first; a failed start is retried by the next batch)."""
        if self.agent._started:
            return
        if telemetry.in_function():
            telemetry.structured_logging(self.agent.name)
        with _start_lock:
            run(self.agent.start())

    def _check_tenant(self, envelope: EventEnvelope) -> None:
        """Raise :class:`ForeignTenantEventError` when ``envelope`` names another platform tenant than the one this
        function was deployed for (a binding pointing another tenant's events here must not make this agent act)."""
        own = self._platform_tenant
        if own is not None and envelope.platform_tenant_id != own:
            raise ForeignTenantEventError(
                f"event {envelope.id} belongs to platform tenant {envelope.platform_tenant_id!r}, not to this "
                f"function's {own!r} ({PLATFORM_TENANT_ENV}); refused without handling it"
            )

    async def _dispatch(self, envelope: EventEnvelope, budget: float | None) -> int:
        if self._mode == "off":
            coro = _dispatch_every_time(self.agent, envelope)
        else:
            coro = self.agent.dispatch(envelope, commit=self._mode == "commit")
        if budget is None:
            return await telemetry.traced_dispatch(self.agent, envelope, lambda: coro)

        async def within_budget() -> int:
            # asyncio.timeout (not wait_for): no extra task per record
            async with asyncio.timeout(budget):
                return await coro

        return await telemetry.traced_dispatch(self.agent, envelope, within_budget)

    def _handle_envelope(self, envelope: EventEnvelope, budget: float | None, lambda_context: Any) -> int:
        """Dispatch one event (through the idempotency guard in ``platform`` mode); returns how many handlers ran.
        ``budget``: seconds the handlers may take from now (``None``: no limit); time the guard spends waiting for
        another invocation's record is taken out of it."""
        guard = self.idempotency
        if guard is None:
            return run_checked_once(self._dispatch(envelope, budget))
        deadline = None if budget is None else time.monotonic() + budget

        def dispatch() -> int:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise TimeoutError("no time left in this invocation; left for redelivery")
            return run_checked_once(self._dispatch(envelope, left))

        ran, replayed = guard.handle(envelope, dispatch, lambda_context)
        if replayed:
            log.info("agent %s: event %s (%s) already handled (idempotency record), skipped", self.agent.name,
                     envelope.id, envelope.type)
        return ran

    def _process_record(self, record: Any, lambda_context: Any) -> str:
        """Handle one record; returns its event type (for the metrics). An exception raised for a parsed envelope
        carries its type as ``soorma_event_type``."""
        message_id = record.message_id
        # Read leniently: a missing attribute must not turn a good event into a failure.
        attempt = (record.raw_event.get("attributes") or {}).get("ApproximateReceiveCount", "?")
        try:
            envelope = EventEnvelope.from_json(record.body)
        except Exception as exc:
            log.error(
                "agent %s: malformed event in message %s (delivery %s), reported failed for dead-lettering: %s",
                self.agent.name,
                message_id,
                attempt,
                exc,
            )
            raise MalformedEventError(f"message {message_id}: {exc}") from exc
        try:
            self._check_tenant(envelope)
        except ForeignTenantEventError as exc:
            log.error("agent %s: message %s (delivery %s) refused, reported failed for dead-lettering: %s",
                      self.agent.name, message_id, attempt, exc)
            raise

        remaining = _remaining_seconds(lambda_context)
        try:
            budget = None
            if remaining is not None:
                budget = remaining - SAFETY_MARGIN_SECONDS
                if budget <= 0:
                    raise TimeoutError("no time left in this invocation; left for redelivery")
            self._handle_envelope(envelope, budget, lambda_context)
            return envelope.type
        except Exception as exc:
            exc.soorma_event_type = envelope.type  # type: ignore[attr-defined]
            if type(exc).__name__ == "IdempotencyAlreadyInProgressError":
                log.warning(
                    "agent %s: event %s (%s) is being handled by another invocation; message %s (delivery %s) left "
                    "for redelivery", self.agent.name, envelope.id, envelope.type, message_id, attempt,
                )
                raise
            log.exception(
                "agent %s: event %s (%s on %s) failed in message %s (delivery %s)",
                self.agent.name,
                envelope.id,
                envelope.type,
                envelope.topic,
                message_id,
                attempt,
            )
            raise

    def _install_exit_hooks(self) -> None:
        if self._exit_hooks:
            return
        self._exit_hooks = True
        atexit.register(self._shutdown)
        # Lambda (with an extension) and the local runtime stop an environment with SIGTERM; the default action
        # would kill the process without running atexit, so turn it into a normal exit, unless someone else
        # already handles it.
        if self.agent._shutdown and threading.current_thread() is threading.main_thread():
            try:
                if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
                    signal.signal(signal.SIGTERM, _exit_on_sigterm)
            except (ValueError, OSError):
                pass

    def _shutdown(self) -> None:
        # atexit runs on the main thread: stop on its loop (where Lambda's runtime ran every invocation).
        loop = existing_event_loop()
        if loop is None or loop.is_running():
            return
        try:
            loop.run_until_complete(self.agent.stop())
        except Exception:
            log.exception("agent %s: shutdown failed", self.agent.name)


async def _dispatch_every_time(agent: "Agent", envelope: EventEnvelope) -> int:
    """``SOORMA_IDEMPOTENCY=off``: every matching handler, with no per-environment memory of earlier deliveries."""
    matched = agent.handlers_for(envelope)
    context = agent.context
    for index, handler in matched:
        await agent._run_handler(index, handler, envelope, context)
    return len(matched)


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(0)
