"""The local stack's function usage per goal: every agent function invocation's REPORT figures (``Billed Duration`` ×
``Memory Size``, what Lambda bills) added to the usage of the goals whose events the invocation delivered
(:mod:`soorma.functions.shared.usage`, ``gb_seconds`` and ``invocations``; docs/usage-and-llm.md). The platform's own
functions (the tracker also receives every event) are the platform's cost, not attributed to goals.

The local Lambda (:class:`soorma.local.runtime.LocalLambda`) calls :meth:`ReportUsage.__call__` after each invocation
with its payload and figures. A payload is the SQS-shaped batch of docs/architecture.md (both transports); a batch
of events of several goals shares the invocation's GB-seconds equally among them (each counts the invocation).
Payloads without event envelopes (HTTP requests to the platform's own functions, timers) are not attributed.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterable
from typing import Any

from soorma.events import EventEnvelope
from soorma.functions.shared import usage
from soorma.functions.shared.db import Database
from soorma.functions.shared.usage import gb_seconds
from soorma.identity import Identity

log = logging.getLogger("soorma.local.usage")


def goals_of(payload: bytes) -> list[tuple[Identity, str]]:
    """The distinct (identity, goal id) pairs of the event envelopes in an SQS-shaped batch ``payload`` (records
    whose body is no envelope with a goal and a full identity are skipped), in order."""
    try:
        event = json.loads(payload)
    except ValueError:
        return []
    records = event.get("Records") if isinstance(event, dict) else None
    found: list[tuple[Identity, str]] = []
    for record in records if isinstance(records, list) else []:
        try:
            envelope = EventEnvelope.from_json(record["body"])
        except (KeyError, TypeError, ValueError):
            continue
        if not (envelope.goal_id and envelope.platform_tenant_id and envelope.tenant_id and envelope.user_id):
            continue
        identity = Identity(platform_tenant_id=envelope.platform_tenant_id, service_tenant_id=envelope.tenant_id,
                            service_user_id=envelope.user_id, principal_id="runtime", role="agent")
        pair = (identity, str(envelope.goal_id))
        if pair not in found:
            found.append(pair)
    return found


class ReportUsage:
    """``ReportUsage(dsn, platform_functions=())``: a REPORT callback of the local Lambda writing into
    ``gateway.goal_usage`` as ``soorma_app`` (RLS: each goal's own identity); invocations of the functions named in
    ``platform_functions`` are not attributed. Writes run on a worker thread, never on the runtime's loop."""

    def __init__(self, dsn: str, platform_functions: Iterable[str] = ()) -> None:
        self.db = Database(dsn, max_size=2)
        self.platform_functions = frozenset(platform_functions)
        self._pending: set[asyncio.Future[Any]] = set()

    def record(self, payload: bytes, billed_ms: int, memory_mb: int) -> int:
        """Add one invocation to the usage of the goals of ``payload``; returns how many goals were counted."""
        goals = goals_of(payload)
        if not goals:
            return 0
        share = gb_seconds(billed_ms, memory_mb) / len(goals)
        for identity, goal_id in goals:
            with self.db.transaction(identity) as conn:
                usage.add(conn, identity, goal_id, gb_seconds=share, invocations=1)
        return len(goals)

    def __call__(self, function_name: str, payload: bytes, billed_ms: int, memory_mb: int) -> None:
        if function_name in self.platform_functions:
            return
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(None, self._safe_record, function_name, payload, billed_ms, memory_mb)
        self._pending.add(future)
        future.add_done_callback(self._pending.discard)

    def _safe_record(self, function_name: str, payload: bytes, billed_ms: int, memory_mb: int) -> None:
        try:
            self.record(payload, billed_ms, memory_mb)
        except Exception:  # noqa: BLE001 - usage must never fail an invocation
            log.warning("usage of an invocation of %s not recorded", function_name, exc_info=True)

    def close(self) -> None:
        self.db.close()


__all__ = ["ReportUsage", "gb_seconds", "goals_of"]
