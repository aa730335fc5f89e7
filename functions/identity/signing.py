"""The platform's JWT signing keys (``gateway.signing_keys``, migration 0040): ES256 key pairs, their JWKS, and
rotation without downtime.

* **Algorithm**: ES256 (ECDSA P-256 with SHA-256, RFC 7518 §3.4, https://www.rfc-editor.org/rfc/rfc7518#section-3.4):
  small keys and signatures, verified by PyJWT with ``cryptography``; every token names its key in the ``kid``
  header (RFC 7515 §4.1.4).
* **Storage**: in PostgreSQL, the private key as PKCS#8 DER encrypted with AES-256-GCM under a key derived from the
  API key pepper (``SOORMA_API_KEY_PEPPER``, a secret the platform already has) by HKDF-SHA256 (RFC 5869), with the
  ``kid`` as associated data so a ciphertext cannot be moved to another row. A copy of the table alone signs nothing,
  and nothing new bills while idle (a Secrets Manager secret per key would cost $0.40 a month each). Changing the
  pepper makes the stored keys unreadable: the next issuance then creates a new key (:func:`current_key`), and tokens
  of the old key stay verifiable (only public keys are needed for that) until they expire.
* **Rotation** (:func:`rotate`, and automatically every ``SOORMA_IDENTITY_KEY_ROTATION_SECONDS``): a key is
  published in the JWKS from its creation, signs in ``[signs_from, signs_until)``, and stays published until
  ``published_until`` = ``signs_until`` + the token lifetime + a minute. A new key is created
  ``SOORMA_IDENTITY_KEY_PUBLISH_LEAD_SECONDS`` before it starts signing, so every verifier that caches the JWKS (for
  at most that long) knows it before the first token it signs; the old key keeps verifying until its last token
  expired. The platform's own authorizer reads keys from the table by ``kid``
  (:func:`soorma.functions.gateway.tokens.public_key`), never over HTTP.

Each key's window is stored, not computed from process state, so any function instance signs with the same key.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from jwt.algorithms import ECAlgorithm

from soorma.functions.gateway.tokens import KID_PREFIX, OWN_ALGORITHM as ALGORITHM
from soorma.functions.shared import settings

_HKDF_INFO = b"soorma identity signing keys v1"
#: Verifiers may be a little behind the clock: a key stays published this much longer than its last token lives.
PUBLISH_MARGIN = timedelta(seconds=60)


class SigningKeyUnavailable(RuntimeError):
    """No signing key can be read (e.g. the pepper changed and no new key could be created)."""


@dataclass(frozen=True)
class SigningKey:
    """One key pair: ``kid``, the private key (``cryptography`` EC key) and its signing window (UTC datetimes)."""

    kid: str
    private_key: ec.EllipticCurvePrivateKey
    signs_from: datetime
    signs_until: datetime


def _wrapping_key(pepper: str | None) -> AESGCM:
    value = pepper if pepper is not None else settings.API_KEY_PEPPER.get()
    if not value:
        raise SigningKeyUnavailable(f"{settings.API_KEY_PEPPER.name} is not set: signing keys cannot be read")
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO).derive(value.encode())
    return AESGCM(derived)


def _encrypt(private_key: ec.EllipticCurvePrivateKey, kid: str, pepper: str | None) -> bytes:
    der = private_key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    nonce = os.urandom(12)
    return nonce + _wrapping_key(pepper).encrypt(nonce, der, kid.encode())


def _decrypt(blob: bytes, kid: str, pepper: str | None) -> ec.EllipticCurvePrivateKey:
    from cryptography.exceptions import InvalidTag

    try:
        der = _wrapping_key(pepper).decrypt(bytes(blob[:12]), bytes(blob[12:]), kid.encode())
    except InvalidTag:
        raise SigningKeyUnavailable(f"signing key {kid} cannot be decrypted (was the pepper changed?)") from None
    key = serialization.load_der_private_key(der, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise SigningKeyUnavailable(f"signing key {kid} is not an EC key")
    return key


def public_jwk(private_key: ec.EllipticCurvePrivateKey, kid: str) -> dict[str, Any]:
    """The public half as a JWK (RFC 7517) with ``kid``, ``alg`` ES256 and ``use`` sig."""
    jwk = json.loads(ECAlgorithm.to_jwk(private_key.public_key()))
    return {**jwk, "kid": kid, "alg": ALGORITHM, "use": "sig"}


def _windows() -> tuple[timedelta, timedelta, timedelta]:
    return (timedelta(seconds=settings.IDENTITY_KEY_ROTATION_SECONDS.get()),
            timedelta(seconds=settings.IDENTITY_KEY_PUBLISH_LEAD_SECONDS.get()),
            timedelta(seconds=settings.IDENTITY_TOKEN_TTL_SECONDS.get()) + PUBLISH_MARGIN)


def _create(conn: psycopg.Connection, signs_from: datetime, signs_until: datetime, published_until: datetime,
            pepper: str | None) -> str:
    kid = f"{KID_PREFIX}{secrets.token_hex(10)}"
    private_key = ec.generate_private_key(ec.SECP256R1())
    conn.execute(
        "insert into gateway.signing_keys (kid, alg, public_jwk, private_key_enc, signs_from, signs_until,"
        " published_until) values (%s, %s, %s, %s, %s, %s, %s)",
        (kid, ALGORITHM, json.dumps(public_jwk(private_key, kid)), _encrypt(private_key, kid, pepper), signs_from,
         signs_until, published_until),
    )
    return kid


def _lock(conn: psycopg.Connection) -> None:
    # One writer of the key schedule at a time, across every function instance.
    conn.execute("select pg_advisory_xact_lock(hashtextextended('soorma.signing_keys', 0))")


def _now(conn: psycopg.Connection) -> datetime:
    row = conn.execute("select now() as now").fetchone()
    return row["now"] if isinstance(row, dict) else row[0]


def _signing_row(conn: psycopg.Connection, now: datetime) -> Any:
    return conn.execute(
        "select kid, private_key_enc, signs_from, signs_until from gateway.signing_keys"
        " where signs_from <= %s and %s < signs_until order by signs_from desc, created_at desc limit 1",
        (now, now),
    ).fetchone()


def _ensure_schedule(conn: psycopg.Connection, now: datetime, pepper: str | None) -> None:
    """Under the lock: a key signing now (created now if none), and its successor published a lead ahead."""
    rotation, lead, ttl = _windows()
    current = _signing_row(conn, now)
    if current is None:
        _create(conn, now, now + rotation, now + rotation + ttl, pepper)
        return
    until = current["signs_until"]
    if until - now <= lead:
        successor = conn.execute(
            "select 1 from gateway.signing_keys where signs_from >= %s limit 1", (until,)).fetchone()
        if successor is None:
            _create(conn, until, until + rotation, until + rotation + ttl, pepper)


def current_key(conn: psycopg.Connection, *, pepper: str | None = None) -> SigningKey:
    """The key that signs now (creating it, and its successor when due, under an advisory lock).

    Raises :class:`SigningKeyUnavailable` when the pepper is missing. A key that cannot be decrypted (the pepper
    changed) is ended and replaced by a new one."""
    now = _now(conn)
    row = _signing_row(conn, now)
    rotation, lead, _ = _windows()
    if row is None or row["signs_until"] - now <= lead:
        _lock(conn)
        _ensure_schedule(conn, now, pepper)
        row = _signing_row(conn, now)
    try:
        private_key = _decrypt(row["private_key_enc"], row["kid"], pepper)
    except SigningKeyUnavailable:
        _lock(conn)
        conn.execute("update gateway.signing_keys set signs_until = greatest(%s, signs_from + interval '1 microsecond')"
                     " where kid = %s", (now, row["kid"]))
        kid = _create(conn, now, now + rotation, now + rotation + _windows()[2], pepper)
        row = conn.execute("select kid, private_key_enc, signs_from, signs_until from gateway.signing_keys"
                           " where kid = %s", (kid,)).fetchone()
        private_key = _decrypt(row["private_key_enc"], row["kid"], pepper)
    return SigningKey(row["kid"], private_key, row["signs_from"], row["signs_until"])


def rotate(conn: psycopg.Connection, *, lead_s: float | None = None, pepper: str | None = None) -> dict[str, Any]:
    """Start a rotation now: the next key is published at once and signs from ``now + lead_s`` (default
    ``SOORMA_IDENTITY_KEY_PUBLISH_LEAD_SECONDS``); the current key signs until then and stays in the JWKS until its
    last token expired. Returns ``{"kid", "signs_from", "previous_kid"}`` of the new key."""
    _lock(conn)
    now = _now(conn)
    rotation, default_lead, ttl = _windows()
    lead = default_lead if lead_s is None else timedelta(seconds=max(0.0, lead_s))
    starts = now + lead
    current = _signing_row(conn, now)
    # Keys scheduled to start later are superseded by this one: end them before they sign.
    conn.execute("update gateway.signing_keys set signs_until = signs_from + interval '1 microsecond',"
                 " published_until = greatest(published_until, signs_from + interval '1 microsecond')"
                 " where signs_from > %s", (now,))
    if current is not None:
        conn.execute("update gateway.signing_keys set signs_until = %s, published_until = %s where kid = %s",
                     (starts, starts + ttl, current["kid"]))
    kid = _create(conn, starts, starts + rotation, starts + rotation + ttl, pepper)
    return {"kid": kid, "signs_from": starts, "previous_kid": current["kid"] if current is not None else None}


def published_jwks(conn: psycopg.Connection) -> dict[str, Any]:
    """The JWKS (RFC 7517 §5): every key created and not yet past ``published_until``, newest first."""
    rows = conn.execute(
        "select public_jwk from gateway.signing_keys where created_at <= now() and published_until > now()"
        " order by signs_from desc").fetchall()
    return {"keys": [row["public_jwk"] if isinstance(row, dict) else row[0] for row in rows]}
