"""Sending webhook deliveries: one attempt (:func:`attempt`) and the bookkeeping around it (:class:`Sender`).

A delivery (a row of ``webhooks.deliveries``, created by the triggers of migration ``0025_webhooks.sql``) is sent as
an HTTP ``POST`` of its JSON payload ``{"type", "timestamp", "data"}`` with the Standard Webhooks headers
(:mod:`~soorma.functions.webhooks.signing`). Outcome of an attempt:

* a 2xx answer: ``delivered``;
* a 5xx, 408 or 429 answer, a timeout (``SOORMA_WEBHOOK_TIMEOUT_S``), a connection error or a name that does not
  resolve: retried after the next delay of ``SOORMA_WEBHOOK_RETRY_SCHEDULE`` with ±20 % jitter (exponential backoff
  as the Standard Webhooks specification suggests: https://www.standardwebhooks.com/ "Retry schedule"), and
  dead-lettered (``dead``) once the schedule is used up;
* any other answer (the receiver refused this payload: retrying would not change it), a redirect (never followed: a
  public URL must not bounce the request inward) or a URL the SSRF guard refuses (:mod:`~soorma.functions.webhooks.
  urls`): ``dead`` at once.

A dead delivery is listed by ``GET /v1/webhooks/deliveries?state=dead`` and sent again by ``POST
/v1/webhooks/deliveries/{id}/replay`` (a new attempt series, same ``webhook-id``).
"""

from __future__ import annotations

import json
import logging
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Mapping

import httpx

from soorma.functions.shared import settings
from soorma.functions.shared.db import Database
from soorma.functions.webhooks.signing import signed_headers, subscription_secret
from soorma.functions.webhooks.urls import UrlRefused, UrlUnresolved, check_resolved

logger = logging.getLogger("soorma.functions.webhooks")

#: Deliveries claimed per round trip.
BATCH = 20
#: Share of a retry delay drawn at random either way, so receivers that failed together are not retried together.
JITTER = 0.2
#: Answers worth retrying besides 5xx: Request Timeout and Too Many Requests (RFC 9110 §15.5.9, RFC 6585 §4).
RETRYABLE_STATUSES = frozenset({408, 429})


@dataclass(frozen=True)
class Outcome:
    """One attempt's result: ``status`` (the HTTP status, or None without an answer), ``error`` (why it failed, or
    None) and ``retry`` (whether another attempt may succeed)."""

    status: int | None
    error: str | None
    retry: bool

    @property
    def delivered(self) -> bool:
        return self.error is None


def attempt(client: httpx.Client, *, delivery_id: str, subscription_id: str, url: str, payload: Mapping[str, Any],
            allow_loopback: bool, env: Mapping[str, str] | None = None) -> Outcome:
    """POST ``payload`` (JSON) to ``url``, signed with the subscription's secret, once. Never raises for the
    receiver's behaviour: every failure is an :class:`Outcome`."""
    try:
        check_resolved(url, allow_loopback=allow_loopback)
    except UrlUnresolved as exc:
        return Outcome(None, str(exc), retry=True)
    except UrlRefused as exc:
        return Outcome(None, str(exc), retry=False)
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    headers = signed_headers(subscription_secret(subscription_id, env), delivery_id, body)
    headers["user-agent"] = "soorma-webhooks/1"
    try:
        response = client.post(url, content=body.encode(), headers=headers, follow_redirects=False)
    except httpx.TimeoutException:
        return Outcome(None, "timed out", retry=True)
    except httpx.HTTPError as exc:
        return Outcome(None, f"{type(exc).__name__}: {exc}"[:500], retry=True)
    if 200 <= response.status_code < 300:
        return Outcome(response.status_code, None, retry=False)
    retry = response.status_code >= 500 or response.status_code in RETRYABLE_STATUSES
    return Outcome(response.status_code, f"HTTP {response.status_code}", retry=retry)


def next_delay(schedule: tuple[float, ...], attempts: int, rng: random.Random | None = None) -> float | None:
    """Seconds until the next attempt after ``attempts`` attempts (``schedule[attempts]`` ± :data:`JITTER`), or None
    when the schedule is used up (dead-letter)."""
    if attempts >= len(schedule):
        return None
    base = schedule[attempts]
    return max(0.0, base * (1 + (rng or random).uniform(-JITTER, JITTER)))


def record_outcome(db: Database, delivery_id: str, attempts: int, outcome: Outcome,
                   schedule: tuple[float, ...]) -> str:
    """Record the outcome of attempt number ``attempts`` of a delivery: ``delivered``, ``pending`` again (due after
    the schedule's next delay) or ``dead``. Returns the state recorded."""
    next_at: datetime | None = None
    if outcome.delivered:
        state = "delivered"
    else:
        delay = next_delay(schedule, attempts) if outcome.retry else None
        state = "pending" if delay is not None else "dead"
        if delay is not None:
            next_at = datetime.now(UTC) + timedelta(seconds=delay)
    # Logs name the delivery and the outcome, never the payload or anything derived from the secret.
    logger.info("webhook delivery %s attempt %s: %s (%s)", delivery_id, attempts, state,
                outcome.error or outcome.status)
    with db.transaction() as conn:
        conn.execute("select webhooks.finish_attempt(%s, %s, %s, %s, %s)",
                     (delivery_id, state, outcome.status, outcome.error, next_at))
    return state


class Sender:
    """Sends every due delivery of every tenant (through the ``SECURITY DEFINER`` functions ``webhooks.claim_due``
    and ``webhooks.finish_attempt``: the sender is the one part that serves all tenants, and it can do only that).

    ``schedule`` (seconds per attempt, default ``SOORMA_WEBHOOK_RETRY_SCHEDULE``), ``timeout_s`` (default
    ``SOORMA_WEBHOOK_TIMEOUT_S``), ``allow_loopback`` (default ``SOORMA_WEBHOOK_ALLOW_LOOPBACK``), ``env`` (where
    the pepper is read, default ``os.environ``)."""

    def __init__(self, db: Database, *, schedule: tuple[float, ...] | None = None, timeout_s: float | None = None,
                 allow_loopback: bool | None = None, env: Mapping[str, str] | None = None) -> None:
        self.db = db
        self.env = env
        self.schedule = schedule if schedule is not None else settings.WEBHOOK_RETRY_SCHEDULE.get(env)
        self.timeout_s = timeout_s if timeout_s is not None else settings.WEBHOOK_TIMEOUT_S.get(env)
        self.allow_loopback = (allow_loopback if allow_loopback is not None
                               else settings.WEBHOOK_ALLOW_LOOPBACK.get(env))
        # A claim holds a row this long: past the attempt's timeout, so only a sender that died loses its claim.
        self.lease_s = self.timeout_s + 30.0
        self.client = httpx.Client(timeout=self.timeout_s, follow_redirects=False)

    def close(self) -> None:
        self.client.close()

    def run_due(self) -> int:
        """Attempt every delivery due now (claiming :data:`BATCH` at a time) and record each outcome. Returns how many
        attempts were made."""
        made = 0
        while True:
            with self.db.transaction() as conn:
                rows = conn.execute("select * from webhooks.claim_due(%s, %s)", (BATCH, self.lease_s)).fetchall()
            if not rows:
                return made
            for row in rows:
                self._attempt(row)
                made += 1

    def _attempt(self, row: Mapping[str, Any]) -> None:
        delivery_id = str(row["delivery_id"])
        outcome = attempt(self.client, delivery_id=delivery_id, subscription_id=str(row["subscription_id"]),
                          url=row["url"], payload=row["payload"], allow_loopback=self.allow_loopback, env=self.env)
        record_outcome(self.db, delivery_id, int(row["attempts"]), outcome, self.schedule)

    def next_due(self) -> datetime | None:
        """When the earliest pending delivery is due (None: nothing pending)."""
        with self.db.transaction() as conn:
            row = conn.execute("select webhooks.next_due() as due").fetchone()
        return row["due"] if row else None
