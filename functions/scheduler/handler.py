"""Firing timers in AWS: what EventBridge Scheduler invokes when a timer or a schedule's run is due.

Each timer's one-time schedule (:func:`soorma.functions.shared.timers.arm`) invokes the gateway function with the
input ``{"soorma_fire_timers": true}``; the gateway's entry point (:mod:`soorma.functions.gateway.handler`) hands
such an event to :func:`fire_timers` instead of its HTTP app. The gateway rather than a function of its own: it
already holds what firing needs (the database, the event bus publisher, the goal submission of schedule runs), and
a function more would be one more cold start and one more package. Only an invocation through the Lambda API (the
scheduler's role may invoke it) can carry that input: an HTTP request arrives as an API Gateway event, whose body is
never the top level of the event.

Every firing fires everything due (not only the timer whose schedule invoked it), so a firing that failed or a
schedule EventBridge dropped is caught up by the next one; a schedule that finds nothing due does nothing.
https://docs.aws.amazon.com/scheduler/latest/UserGuide/managing-targets-templated.html
"""

from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger("soorma.functions.scheduler")

#: The top-level field of the scheduler's input that marks a firing.
FIRE_FIELD = "soorma_fire_timers"
#: Batches per invocation at most (200 timers each).
MAX_BATCHES = 20
#: Another batch starts only with this much of the invocation's time left (milliseconds; the gateway has 29 s).
RESERVE_MS = 10_000

_state: dict[str, Any] = {}


def is_firing(event: Any) -> bool:
    """Whether a Lambda event is the scheduler's firing input (see the module docstring)."""
    return isinstance(event, dict) and event.get(FIRE_FIELD) is True


def fire_timers(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """Fire the due timers (:func:`soorma.functions.shared.timers.fire_due`) until none is due or
    :data:`MAX_BATCHES` batches were fired or less than :data:`RESERVE_MS` of the invocation is left (then a
    one-time schedule now continues); returns ``{"fired": n, "failed": n}``. A publish that fails leaves its
    timer pending; the one-time schedule is gone by then (``ActionAfterCompletion: DELETE``), so a failed timer is
    armed again one minute later."""
    from datetime import UTC, datetime, timedelta

    from soorma.functions.gateway.goals import Goals
    from soorma.functions.gateway.publisher import publisher_from_env
    from soorma.functions.scheduler.schedules import schedule_runner
    from soorma.functions.shared import timers
    from soorma.functions.shared.db import database_from_env

    if "publisher" not in _state:
        _state["db"] = database_from_env()
        _state["publisher"] = publisher_from_env()
        _state["run"] = schedule_runner(Goals(_state["db"], _state["publisher"]).submit)
    fired = failed = 0
    more = False
    for _ in range(MAX_BATCHES):
        report = timers.fire_due(_state["db"], _state["publisher"], run_schedule=_state["run"])
        fired += len(report.fired)
        failed = len(report.failed)
        more = report.more
        remaining_ms = getattr(context, "get_remaining_time_in_millis", lambda: 60_000)()
        if not more or failed or remaining_ms < RESERVE_MS:
            break
    if more and not failed:  # out of time with more due: the next firing continues at once
        try:
            timers.arm(datetime.now(UTC), f"more-{datetime.now(UTC):%Y%m%d%H%M%S}")
        except Exception as exc:  # noqa: BLE001 - a later timer's firing catches up
            logger.warning("could not arm the continuation: %s", exc)
    if failed:
        try:  # one retry schedule per minute: a second firing in the same minute finds it exists (ConflictException)
            timers.arm(datetime.now(UTC) + timedelta(minutes=1), f"retry-{datetime.now(UTC):%Y%m%d%H%M}")
        except Exception as exc:  # noqa: BLE001 - the retry is armed already, or the next timer's firing catches up
            logger.warning("could not arm the retry of %d pending timers: %s", failed, exc)
    logger.info("fired %d timers, %d left pending", fired, failed)
    return {"fired": fired, "failed": failed}


__all__ = ["FIRE_FIELD", "fire_timers", "is_firing"]
