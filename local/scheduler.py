"""The local stack's scheduler: fires durable timers and schedule runs (``scheduler.timers``, migration 0030) when
they are due, on the NATS and the SQS transport alike.

Why the stack's own scheduler on PostgreSQL rather than JetStream's message scheduling (ADR-51 ``Nats-Schedule``
headers, nats-server 2.12+): the timers must live where the rest of the state is, under the same row-level security,
written in the caller's transaction (a timer exists exactly when the work that scheduled it committed; part D's input
timeouts are cancelled in the transaction that records the answer), cancellable by key, and fired by the same code
(:func:`soorma.functions.shared.timers.fire_due`) that the AWS scheduler function runs when EventBridge Scheduler
invokes it. A JetStream schedule would exist only on the NATS transport, outside the database transaction, and could
not be listed or cancelled under the tenant's identity.

How: one thread sleeps until the earliest due time (``scheduler.next_due()``), or until ``NOTIFY soorma_timer_due``
says a timer was added or moved (a trigger sends it), then claims the due timers with ``FOR UPDATE SKIP LOCKED``,
publishes them and marks them fired in one transaction. Idle, it makes no query at all. Timers written while the stack
was down are in the database and fire when it is up again; a publish repeated after a crash carries the same event id
(de-duplicated by JetStream, absorbed by consumers' idempotency).
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime
from typing import Any

import psycopg

from soorma.functions.shared import timers

log = logging.getLogger("soorma.local.scheduler")

#: The longest sleep without a notification (seconds): only a safety net for a missed NOTIFY (the listener lost).
MAX_SLEEP_S = 300.0
#: Pause after a failed firing (bus or database down) before trying again.
RETRY_S = 1.0


class LocalScheduler:
    """Fires due timers in a background thread (see the module docstring).

    ``db``: a :class:`~soorma.functions.shared.db.Database` as ``soorma_app`` (its pool needs two connections: the
    firing transaction and a schedule run's goal); ``listen_dsn``: the DSN the ``LISTEN`` connection uses;
    ``publisher``: the gateway's publisher of the stack's transport; ``run_schedule``: turns a due run into a goal
    (:func:`soorma.functions.scheduler.schedules.schedule_runner`)."""

    def __init__(self, db: Any, listen_dsn: str, publisher: Any, run_schedule: timers.RunSchedule | None) -> None:
        self.db = db
        self.listen_dsn = listen_dsn
        self.publisher = publisher
        self.run_schedule = run_schedule
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.fired = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="soorma-local-scheduler", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _listen(self) -> psycopg.Connection | None:
        try:
            conn = psycopg.connect(self.listen_dsn, autocommit=True)
            conn.execute(f"listen {timers.TIMER_DUE_CHANNEL}")
            return conn
        except psycopg.Error as exc:
            log.warning("cannot listen for new timers (%s); re-checking every %s s", exc, RETRY_S)
            return None

    def _run(self) -> None:
        listener: psycopg.Connection | None = None
        while not self._stop.is_set():
            if listener is None or listener.closed:
                listener = self._listen()  # subscribed before the due time is read: nothing added in between is lost
            try:
                pause = self._fire_and_measure()
            except Exception as exc:  # noqa: BLE001 - database down: retry after a pause, never end the thread
                log.warning("firing timers failed: %s", exc)
                pause = RETRY_S
            if pause <= 0:
                continue
            if listener is None:
                self._stop.wait(min(pause, RETRY_S))
                continue
            try:
                self._sleep(listener, pause)
            except psycopg.Error as exc:
                log.warning("lost the timer listener (%s)", exc)
                listener.close()
                listener = None
        if listener is not None:
            listener.close()

    def _sleep(self, listener: psycopg.Connection, pause: float) -> None:
        """Sleep ``pause`` seconds or until a notification (a timer added or moved), whichever comes first; the stop
        flag is checked every second, without a query."""
        deadline = time.monotonic() + pause
        while not self._stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            for _ in listener.notifies(timeout=min(left, 1.0), stop_after=1):
                return

    def _fire_and_measure(self) -> float:
        """Fire what is due; returns how long to sleep (0: more is due now)."""
        report = timers.fire_due(self.db, self.publisher, run_schedule=self.run_schedule)
        self.fired += len(report.fired)
        if report.more:
            return 0.0
        if report.failed:
            return RETRY_S
        due = timers.next_due(self.db)
        if due is None:
            return MAX_SLEEP_S
        return max(0.0, min(MAX_SLEEP_S, (due - datetime.now(UTC)).total_seconds()))


__all__ = ["LocalScheduler"]
