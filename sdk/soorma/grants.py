"""Delivery grants: an agent's right to act for the service tenant and user of the event it is handling.

DESIGN.md "Identity": an agent principal (role ``agent``) acts for the service tenant and user of an event only while
it handles that event, by a grant that comes with the event, never by its key alone (issue 12, finding 8: before
this, one leaked agent key could read every user's private memory and goals). The gateway mints a grant whenever
it stamps an envelope's identity (goal submission, goal cancellation, ``POST /v1/events/publish``); the grant rides
in the envelope (field :data:`GRANT_FIELD`), so it reaches the agent the same way over the NATS bridge and over
SNS → SQS → Lambda; while a handler runs, the SDK sends it with every platform call (header :data:`GRANT_HEADER`,
:func:`soorma._current.identity_headers`); and the functions honour ``X-Soorma-Service-Tenant`` /
``X-Soorma-Service-User`` for an ``agent`` only with a valid grant for exactly that platform tenant, service tenant
and service user (:func:`soorma.identity.act_for`). Events an agent publishes under a grant get a fresh grant of
their own from the gateway.

**Token shape.** A JWS in compact serialization (RFC 7515 §7.1), i.e. a JWT (RFC 7519), signed with HMAC-SHA256
(``HS256``, RFC 7518 §3.2): ``base64url(header) "." base64url(claims) "." base64url(signature)`` with

* header ``{"alg": "HS256", "typ": "soorma-grant+jwt"}`` (exactly; any other header is refused, so there is no
  algorithm negotiation, RFC 8725 §3.1);
* claims ``{"ptid": platform tenant, "stid": service tenant, "suid": service user, "evt": event id,
  "iat": issued at, "exp": expires at}`` (times in integer epoch seconds, UTC).

The event id binds a grant to one delivery (it is what logs and audits name); the three identity values are what
:func:`soorma.identity.act_for` compares. A grant names no agent: every agent of the platform tenant that receives
the event may act for its user while handling it (events are broadcast to every subscribed agent).

**Key.** ``K = HKDF-SHA256(IKM = SOORMA_API_KEY_PEPPER, salt = empty, info = "soorma/delivery-grant/v1", L = 32)``
(RFC 5869; HMAC is RFC 2104). The pepper is the platform's existing secret (Secrets Manager in the cloud,
``.soorma/`` locally) that every platform function already receives; the fixed ``info`` label separates this key
from the pepper's other use (HMAC of API key secrets), so neither use can be turned into the other. Rotating the
pepper invalidates outstanding grants together with every API key.

**Lifetime.** ``SOORMA_GRANT_TTL_SECONDS`` (default :data:`DEFAULT_GRANT_TTL_S`, one hour): long enough for the
bridge's and SQS's retries of one delivery, short enough that a grant copied out of an event is soon worthless. A
delivery retried after its grant expired fails its platform calls with 403 (the handler fails, and after the
maximum deliveries the event is dead-lettered with that reason). Replaying a dead letter re-mints the grant when the
replayer holds the pepper (``soorma dlq replay`` on the local stack, :func:`regrant_body`); a replayer without it
republishes the expired grant, and the agent's calls for the event's user are refused until it is published again
through the gateway.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import threading
import time
from dataclasses import dataclass
from typing import Any, Mapping

from soorma import settings

#: The HTTP header with which the SDK presents the grant of the event being handled.
GRANT_HEADER = "X-Soorma-Grant"
#: The envelope field (an extension attribute, JSON snake_case like the others) that carries the grant.
GRANT_FIELD = "delivery_grant"
#: The setting of the grant lifetime, in seconds.
GRANT_TTL_ENV = settings.GRANT_TTL_SECONDS.name
#: Default grant lifetime: one hour.
DEFAULT_GRANT_TTL_S = settings.GRANT_TTL_SECONDS.default
#: The secret the grant key is derived from.
KEY_SOURCE_ENV = settings.API_KEY_PEPPER.name
#: HKDF ``info``: names this key's purpose (RFC 5869 §3.2).
KEY_LABEL = b"soorma/delivery-grant/v1"
#: Longest token accepted (a real grant is about 300 characters): bounds the work an attacker can cause.
MAX_TOKEN_CHARS = 2048

_HEADER = {"alg": "HS256", "typ": "soorma-grant+jwt"}


class GrantInvalid(Exception):
    """The grant cannot be honoured (malformed, bad signature, expired, or for another identity). The message says
    why and never contains the token."""


class GrantKeyMissing(RuntimeError):
    """``SOORMA_API_KEY_PEPPER`` is not set, so no grant can be minted or verified (a deployment error)."""


@dataclass(frozen=True)
class Grant:
    """A verified grant: the platform tenant, service tenant, service user and event id it is scoped to, and its
    issue and expiry times (integer epoch seconds)."""

    platform_tenant_id: str
    service_tenant_id: str
    service_user_id: str
    event_id: str
    issued_at: int
    expires_at: int


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    if not text or any(c not in _B64_CHARS for c in text):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


_B64_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
#: A compact JWS: three non-empty base64url parts (RFC 7515 §7.1).
_TOKEN = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
_HEADER_B64 = _b64(json.dumps(_HEADER, separators=(",", ":"), sort_keys=True).encode())


def derive_key(secret: str | bytes) -> bytes:
    """The 32-byte grant key: HKDF-SHA256 (RFC 5869) of ``secret`` with an empty salt and :data:`KEY_LABEL`.

    Raises ``ValueError`` for an empty secret."""
    ikm = secret.encode() if isinstance(secret, str) else bytes(secret)
    if not ikm:
        raise ValueError("the grant key needs a non-empty secret")
    prk = hmac.new(b"\x00" * hashlib.sha256().digest_size, ikm, hashlib.sha256).digest()  # HKDF-Extract
    return hmac.new(prk, KEY_LABEL + b"\x01", hashlib.sha256).digest()  # HKDF-Expand, one block (L = 32)


_key_cache: dict[str, bytes] = {}
_key_lock = threading.Lock()


def grant_key_from_env(env: Mapping[str, str] | None = None) -> bytes:
    """The grant key derived from ``SOORMA_API_KEY_PEPPER`` (cached per value). Raises :class:`GrantKeyMissing`."""
    secret = settings.API_KEY_PEPPER.get(env) or ""
    if not secret:
        raise GrantKeyMissing(f"{KEY_SOURCE_ENV} is not set: delivery grants cannot be minted or verified")
    with _key_lock:
        key = _key_cache.get(secret)
        if key is None:
            key = _key_cache[secret] = derive_key(secret)
    return key


def grant_ttl_from_env(env: Mapping[str, str] | None = None) -> int:
    """``SOORMA_GRANT_TTL_SECONDS`` as a positive integer (default :data:`DEFAULT_GRANT_TTL_S`); ``ValueError``
    naming the variable for anything else."""
    return settings.GRANT_TTL_SECONDS.get(env)


def _sign(key: bytes, signing_input: str) -> str:
    return _b64(hmac.new(key, signing_input.encode("ascii"), hashlib.sha256).digest())


def mint(
    key: bytes,
    *,
    platform_tenant_id: str,
    service_tenant_id: str,
    service_user_id: str,
    event_id: str,
    ttl_s: int | None = None,
    now: float | None = None,
) -> str:
    """A grant token (see the module docstring) valid ``ttl_s`` seconds (default :func:`grant_ttl_from_env`) from
    ``now`` (default: the current time). Raises ``ValueError`` when a value is empty."""
    if not all((platform_tenant_id, service_tenant_id, service_user_id, event_id)):
        raise ValueError("a grant needs a platform tenant, service tenant, service user and event id")
    issued = int(time.time() if now is None else now)
    ttl = grant_ttl_from_env() if ttl_s is None else int(ttl_s)
    claims = {"ptid": platform_tenant_id, "stid": service_tenant_id, "suid": service_user_id, "evt": event_id,
              "iat": issued, "exp": issued + ttl}
    signing_input = f"{_HEADER_B64}.{_b64(json.dumps(claims, separators=(',', ':')).encode())}"
    return f"{signing_input}.{_sign(key, signing_input)}"


def verify(token: str, key: bytes, *, now: float | None = None) -> Grant:
    """The :class:`Grant` of ``token``; raises :class:`GrantInvalid` (malformed, not signed with ``key``, another
    header, missing claims, or expired at ``now``)."""
    if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS or not _TOKEN.fullmatch(token):
        # three base64url parts: anything else is malformed (and would make the ASCII signing input raise)
        raise GrantInvalid("the delivery grant is malformed")
    header_b64, claims_b64, signature = token.split(".")
    if not hmac.compare_digest(_sign(key, f"{header_b64}.{claims_b64}"), signature):
        raise GrantInvalid("the delivery grant's signature is not valid")
    try:
        header = json.loads(_unb64(header_b64))
        claims = json.loads(_unb64(claims_b64))
    except ValueError:
        raise GrantInvalid("the delivery grant is malformed") from None
    if header != _HEADER or not isinstance(claims, dict):
        raise GrantInvalid("the delivery grant is malformed")
    try:
        grant = Grant(
            platform_tenant_id=_text(claims["ptid"]),
            service_tenant_id=_text(claims["stid"]),
            service_user_id=_text(claims["suid"]),
            event_id=_text(claims["evt"]),
            issued_at=_int(claims["iat"]),
            expires_at=_int(claims["exp"]),
        )
    except (KeyError, TypeError, ValueError):
        raise GrantInvalid("the delivery grant lacks a claim") from None
    if grant.expires_at <= (time.time() if now is None else now):
        raise GrantInvalid(f"the delivery grant of event {grant.event_id[:128]!r} has expired")
    return grant


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError("not a string")
    return value


def _int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("not an integer")
    return value


def check(
    token: str | None,
    key: bytes,
    *,
    platform_tenant_id: str,
    service_tenant_id: str,
    service_user_id: str,
    now: float | None = None,
) -> Grant:
    """Verify ``token`` and that it grants exactly (``platform_tenant_id``, ``service_tenant_id``,
    ``service_user_id``); raises :class:`GrantInvalid` saying which part does not match (a grant of another platform
    tenant is never accepted)."""
    if not token:
        raise GrantInvalid(f"no delivery grant ({GRANT_HEADER})")
    grant = verify(token, key, now=now)
    if grant.platform_tenant_id != platform_tenant_id:
        raise GrantInvalid("the delivery grant is for another platform tenant")
    if (grant.service_tenant_id, grant.service_user_id) != (service_tenant_id, service_user_id):
        raise GrantInvalid("the delivery grant is for another service tenant or user")
    return grant


def envelope_grant(envelope: Any) -> str | None:
    """The grant an envelope (an :class:`~soorma.events.EventEnvelope` or its JSON object) carries, if any."""
    value = envelope.get(GRANT_FIELD) if isinstance(envelope, Mapping) else getattr(envelope, GRANT_FIELD, None)
    return value if isinstance(value, str) and value else None


def grant_for(envelope: Any, key: bytes, *, ttl_s: int | None = None, now: float | None = None) -> str:
    """A fresh grant for ``envelope``'s own platform tenant, service tenant (``tenant_id``), service user
    (``user_id``) and ``id``. Raises ``ValueError`` when one of them is missing."""
    return mint(
        key,
        platform_tenant_id=envelope.platform_tenant_id or "",
        service_tenant_id=envelope.tenant_id or "",
        service_user_id=envelope.user_id or "",
        event_id=envelope.id,
        ttl_s=ttl_s,
        now=now,
    )


def stamp(envelope: Any, *, key: bytes | None = None, ttl_s: int | None = None) -> Any:
    """A copy of ``envelope`` (an :class:`~soorma.events.EventEnvelope` whose identity the caller has already
    stamped) carrying a fresh grant for its own identity and id, replacing any grant it came with (a publisher cannot
    choose its grant). ``key`` defaults to :func:`grant_key_from_env` (raises :class:`GrantKeyMissing`), ``ttl_s``
    to :func:`grant_ttl_from_env`. Raises ``ValueError`` when the envelope lacks an identity value."""
    key = grant_key_from_env() if key is None else key
    return envelope.model_copy(update={GRANT_FIELD: grant_for(envelope, key, ttl_s=ttl_s)})


def regrant_body(body: bytes | str, key: bytes, *, ttl_s: int | None = None) -> bytes:
    """An envelope's JSON with a fresh grant (a dead letter replayed after its grant expired). The body is
    otherwise unchanged; a body that is not an envelope with full identity is returned as it was (it carried no
    grant that could be renewed)."""
    raw = body.encode() if isinstance(body, str) else bytes(body)
    try:
        obj = json.loads(raw)
    except ValueError:
        return raw
    if not isinstance(obj, dict) or not all(isinstance(obj.get(k), str) and obj.get(k)
                                            for k in ("id", "platform_tenant_id", "tenant_id", "user_id")):
        return raw
    obj[GRANT_FIELD] = mint(key, platform_tenant_id=obj["platform_tenant_id"], service_tenant_id=obj["tenant_id"],
                            service_user_id=obj["user_id"], event_id=obj["id"], ttl_s=ttl_s)
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


__all__ = [
    "DEFAULT_GRANT_TTL_S", "GRANT_FIELD", "GRANT_HEADER", "GRANT_TTL_ENV", "Grant", "GrantInvalid", "GrantKeyMissing",
    "KEY_LABEL", "KEY_SOURCE_ENV", "check", "derive_key", "envelope_grant", "grant_for", "grant_key_from_env",
    "grant_ttl_from_env", "mint", "regrant_body", "stamp", "verify",
]
