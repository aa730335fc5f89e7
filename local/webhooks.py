"""The local stack's webhook sender: sends the deliveries of ``webhooks.deliveries`` as they fall due
(:class:`~soorma.functions.webhooks.sender.Sender` does each attempt).

It sleeps until the earliest pending delivery is due, or until ``NOTIFY soorma_webhook_due`` (sent by the triggers
of migration ``0025_webhooks.sql`` and by a replay) says a new one was queued: no polling. The deliveries are rows,
so a stack stopped with deliveries pending (``soorma local down``) sends them when it is started again. When the
database connection is lost (``soorma local db pause``, a restart), it reconnects with a growing pause.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime
from typing import Mapping

import psycopg

from soorma.functions.shared.db import Database
from soorma.functions.webhooks.sender import Sender

log = logging.getLogger("soorma.local.webhooks")

CHANNEL = "soorma_webhook_due"
#: Longest sleep without a notification: a safety net for a notification lost while reconnecting, not a poll.
MAX_SLEEP_S = 300.0


class LocalWebhookSender:
    """``await start()`` / ``await stop()``; ``dsn`` is the ``soorma_app`` connection (the sender works through the
    ``SECURITY DEFINER`` functions granted to it), ``env`` the settings (``SOORMA_WEBHOOK_*``, the pepper)."""

    def __init__(self, dsn: str, env: Mapping[str, str]) -> None:
        self.dsn = dsn
        self.db = Database(dsn, max_size=2)
        self.sender = Sender(self.db, env=env)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="webhook-sender")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await asyncio.to_thread(self.sender.close)
        await asyncio.to_thread(self.db.close)

    async def _run(self) -> None:
        pause = 0.5
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(self.dsn, autocommit=True) as conn:
                    await conn.execute(f"listen {CHANNEL}")
                    pause = 0.5
                    while True:
                        await asyncio.to_thread(self.sender.run_due)
                        due = await asyncio.to_thread(self.sender.next_due)
                        sleep = MAX_SLEEP_S
                        if due is not None:
                            sleep = min(MAX_SLEEP_S, max(0.0, (due - datetime.now(UTC)).total_seconds()))
                        # a floor, so a row due now that another claim holds cannot spin this loop
                        async for _ in conn.notifies(timeout=max(sleep, 0.05), stop_after=1):
                            pass
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - a lost connection or database error: reconnect, never die
                log.warning("webhook sender: %s; retrying in %.1f s", exc, pause)
                await asyncio.sleep(pause)
                pause = min(pause * 2, 10.0)
