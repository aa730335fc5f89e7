"""A request's credential, as both the Lambda authorizer and the functions read it: which header carries it
(:func:`presented_key`) and, for a request the authorizer let through while the database was unavailable (a
"deferred" answer, :mod:`soorma.functions.gateway.authorizer`), the check the function makes itself
(:func:`resolve_deferred`).

Apart from the authorizer so every HTTP function can make that check: it needs the API key lookup and the tenant's
status, not the JWT verification (PyJWT and cryptography are the authorizer's layer alone).
"""

from __future__ import annotations

import base64
import logging
import re
from collections.abc import Mapping
from typing import Any

from soorma.functions.gateway.keys import PREFIX as KEY_PREFIX, resolve_api_key
from soorma.functions.http_api import STREAM_BEARER_PROTOCOL_PREFIX
from soorma.functions.shared.db import Database
from soorma.identity import Identity

logger = logging.getLogger("soorma.functions.gateway.authorizer")

#: The authorizer context key of a deferred answer (see the module docstring); its value says what is left to check.
DEFERRED = "deferred"
DEFER_CREDENTIAL = "credential"
DEFER_TENANT = "tenant"


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The one credential of a request (``headers``: lower-cased names), or ``None`` when it must be refused.

    * ``Authorization`` present → it must be ``Bearer <credential>`` (scheme case-insensitive, RFC 6750 §2.1) and no
      ``X-API-Key`` may come with it; the credential is its value. Any other scheme, an empty value, or a second
      credential in ``X-API-Key`` → ``None``.
    * No ``Authorization`` → the ``X-API-Key`` value (only reachable with the authorizer cache off: a cached
      authorizer's identity source is ``Authorization``, without which API Gateway answers 401 itself).

    Why: API Gateway caches this authorizer's answer keyed on ``Authorization`` alone
    (https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-lambda-authorizer.html, "identity
    sources"); an answer computed from any other header would be served to the next request carrying the same
    ``Authorization`` value.
    """
    has_auth = "authorization" in headers
    api_key = headers.get("x-api-key", "").strip()
    if has_auth:
        if "x-api-key" in headers:
            return None  # two credentials: refuse rather than guess which one the cache is keyed on
        scheme, _, value = headers["authorization"].strip().partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            return None
        return value.strip()
    return api_key or None


_BASE64URL = re.compile(r"[A-Za-z0-9_-]{1,8192}")
#: The longest credential a subprotocol entry may carry (an API key is ~50 characters, a platform JWT under 2 KiB).
MAX_PROTOCOL_CREDENTIAL = 4096


def handshake_headers(headers: Mapping[str, str]) -> dict[str, str] | None:
    """A WebSocket handshake's headers (lower-cased names) with a browser's credential moved where
    :func:`presented_key` reads it, or ``None`` when the handshake must be refused.

    A browser's WebSocket cannot send ``Authorization`` (https://websockets.spec.whatwg.org/#the-websocket-interface:
    its only header of the page's choosing is ``Sec-WebSocket-Protocol``), so a handshake may instead offer one
    subprotocol entry :data:`~soorma.functions.http_api.STREAM_BEARER_PROTOCOL_PREFIX` ``+ base64url(credential)``
    (RFC 4648 §5, no padding; as Kubernetes' ``base64url.bearer.authorization.k8s.io.<token>``). That entry becomes
    ``Authorization: Bearer <credential>`` and leaves ``Sec-WebSocket-Protocol``, so the credential is verified
    exactly as the header's is and can never be selected (echoed) as the protocol.

    Returns the headers unchanged when no entry carries a credential; ``None`` for two credentials (the entry and
    ``Authorization`` or ``X-API-Key``, or two entries) or an entry that is not base64url of 1 to
    :data:`MAX_PROTOCOL_CREDENTIAL` printable ASCII characters without spaces."""
    offered = [entry.strip() for entry in headers.get("sec-websocket-protocol", "").split(",") if entry.strip()]
    carrying = [entry for entry in offered if entry.startswith(STREAM_BEARER_PROTOCOL_PREFIX)]
    if not carrying:
        return dict(headers)
    if len(carrying) > 1 or "authorization" in headers or "x-api-key" in headers:
        return None  # two credentials: refuse rather than guess which one is meant
    encoded = carrying[0][len(STREAM_BEARER_PROTOCOL_PREFIX):]
    if not _BASE64URL.fullmatch(encoded):
        return None
    try:
        credential = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode("ascii")
    except (ValueError, UnicodeDecodeError):
        return None
    if not 0 < len(credential) <= MAX_PROTOCOL_CREDENTIAL or not credential.isprintable() or " " in credential:
        return None
    moved = {name: value for name, value in headers.items() if name != "sec-websocket-protocol"}
    rest = [entry for entry in offered if entry not in carrying]
    if rest:
        moved["sec-websocket-protocol"] = ", ".join(rest)
    moved["authorization"] = f"Bearer {credential}"
    return moved


def tenant_active(identity: Identity, db: Database, wait_s: float | None = None) -> bool:
    with db.transaction(wait_s=wait_s) as conn:
        row = conn.execute("select gateway.tenant_status(%s) as status", (identity.platform_tenant_id,)).fetchone()
    status = row["status"] if isinstance(row, dict) else row[0]
    if status != "active":
        logger.info("refused token: platform tenant %s is %s", identity.platform_tenant_id, status or "not onboarded")
        return False
    return True


def resolve_deferred(headers: Mapping[str, str], context: Mapping[str, Any], db: Database, *,
                     pepper: str | None = None) -> Identity | None:
    """The principal of a request the authorizer deferred (``context[DEFERRED]`` set; ``headers`` lower-cased):
    the API key resolved now, or the deferred token's identity if its tenant is active; ``None`` when the credential
    is not valid (answer 401). Raises :class:`DatabaseUnavailable` when the database is still unavailable (after the
    database's own wait, ``SOORMA_DB_CONNECT_WAIT_S``)."""
    if context.get(DEFERRED) == DEFER_TENANT:
        identity = Identity.from_context(context)
        return identity if tenant_active(identity, db) else None
    key = presented_key(headers)
    if key is None or not key.startswith(KEY_PREFIX):
        return None  # a deferred token always carries its identity: anything else here is not a credential
    with db.transaction() as conn:
        return resolve_api_key(conn, key, pepper=pepper)
