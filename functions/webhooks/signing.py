"""The signing secret of a webhook subscription and the Standard Webhooks headers of a delivery.

**Secret.** ``whsec_`` + base64 of ``HMAC-SHA256(K, subscription id)`` with ``K = HKDF-SHA256(IKM =
SOORMA_API_KEY_PEPPER, salt = empty, info = "soorma/webhook-secret/v1", L = 32)`` (RFC 5869, as the delivery grants'
key in :mod:`soorma.grants`, with its own label so neither key can be turned into the other). Nothing is stored: the
secret is shown once, in the answer that creates the subscription, and recomputed by the sender for each attempt, so
it can appear in no listing, database dump or log. Rotating the pepper rotates every webhook secret (with every API
key); a subscription's own secret is replaced by deleting it and creating another.

**Signature.** Standard Webhooks (https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/
standard-webhooks.md): headers ``webhook-id`` (the delivery id, the same on every retry and on a replay, so the
receiver can drop a repeat), ``webhook-timestamp`` (integer epoch seconds of this attempt) and ``webhook-signature``
``v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">``, computed by the ``standardwebhooks`` package.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime
from typing import Mapping

from standardwebhooks import Webhook

from soorma import settings

#: HKDF ``info`` naming this key's purpose (RFC 5869 §3.2).
KEY_LABEL = b"soorma/webhook-secret/v1"
SECRET_PREFIX = "whsec_"


def _webhook_key(pepper: str) -> bytes:
    if not pepper:
        raise RuntimeError(f"{settings.API_KEY_PEPPER.name} is not set: webhook secrets cannot be derived")
    prk = hmac.new(b"\x00" * 32, pepper.encode(), hashlib.sha256).digest()  # HKDF-Extract, empty salt
    return hmac.new(prk, KEY_LABEL + b"\x01", hashlib.sha256).digest()  # HKDF-Expand, one block


def subscription_secret(subscription_id: str, env: Mapping[str, str] | None = None) -> str:
    """The signing secret of subscription ``subscription_id`` (a UUID's text): ``whsec_<base64 of 32 bytes>``, the
    form ``standardwebhooks.Webhook(secret)`` takes. Raises ``RuntimeError`` when ``SOORMA_API_KEY_PEPPER`` is
    unset."""
    key = _webhook_key(settings.API_KEY_PEPPER.get(env) or "")
    raw = hmac.new(key, subscription_id.encode(), hashlib.sha256).digest()
    return SECRET_PREFIX + base64.b64encode(raw).decode("ascii")


def signed_headers(secret: str, message_id: str, body: str, now: datetime | None = None) -> dict[str, str]:
    """The Standard Webhooks headers (``webhook-id``, ``webhook-timestamp``, ``webhook-signature``) for ``body`` (the
    exact JSON text sent) signed with ``secret`` at ``now`` (default: the current time, UTC)."""
    when = (now or datetime.now(UTC)).astimezone(UTC)
    signature = Webhook(secret).sign(message_id, when, body)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(when.timestamp())),
        "webhook-signature": signature,
        "content-type": "application/json",
    }
