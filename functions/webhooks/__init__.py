"""Webhooks (issue 14 item 2): a goal, or a tenant-wide subscription, names a URL; the platform POSTs the goal's
terminal event and, when asked, its progress, signed per the Standard Webhooks specification
(https://www.standardwebhooks.com/), retried with backoff and dead-lettered after the last try.

* :mod:`~soorma.functions.webhooks.api` — ``/v1/webhooks…`` (subscriptions, deliveries, replay), served by the gateway;
* :mod:`~soorma.functions.webhooks.signing` — the per-subscription secret (derived, never stored) and the signature;
* :mod:`~soorma.functions.webhooks.urls` — which URLs may be called (the SSRF guard);
* :mod:`~soorma.functions.webhooks.sender` — one attempt and its bookkeeping in ``webhooks.deliveries``.

Deliveries are rows created by database triggers (migration ``0025_webhooks.sql``) when a goal ends or a task reports
progress, so they are as durable as the goal itself; the local stack's sender (:mod:`soorma.local.webhooks`) is woken
by ``NOTIFY soorma_webhook_due`` and by the next row's due time, never by polling.
"""
