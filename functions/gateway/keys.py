"""API keys: ``sk_<key_id>_<secret>``.

* ``key_id``: 16 hex characters, the lookup key (not secret).
* ``secret``: ``secrets.token_urlsafe(32)``; only HMAC-SHA256(pepper, secret) (hex) is stored, with the pepper from
  ``SOORMA_API_KEY_PEPPER``, so a leaked table does not reveal usable keys. Comparison is constant-time.

The authorizer does not know the tenant before it resolves the key, so :func:`resolve_api_key` reads the row
through the SECURITY DEFINER function ``gateway.resolve_credential(key_id)`` (the key and its tenant's status);
``soorma_app`` can never read ``key_hash`` itself. A key that is revoked, past its ``expires_at``, or whose platform
tenant is suspended resolves to nothing. :func:`create_api_key` and :func:`revoke_api_key` write the table directly: on a ``soorma_app``
connection the transaction identity (``Database.transaction(identity)``) must carry the key's platform tenant
(row-level security); on the owner connection (``SOORMA_DATABASE_URL``) any key can be managed.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime
from typing import Any

import psycopg

from soorma.functions.shared import settings
from soorma.identity import CREDENTIAL_API_KEY, ROLES, Identity
from soorma.subjects import check_identifier

PEPPER_ENV = settings.API_KEY_PEPPER.name
PREFIX = "sk_"


class PepperMissing(RuntimeError):
    """``SOORMA_API_KEY_PEPPER`` is not set, so no key can be created or checked."""


def _pepper(pepper: str | None) -> bytes:
    value = pepper if pepper is not None else settings.API_KEY_PEPPER.get()
    if not value:
        raise PepperMissing(f"{PEPPER_ENV} is not set: API keys cannot be hashed")
    return value.encode()


def hash_secret(secret: str, *, pepper: str | None = None) -> str:
    """HMAC-SHA256(pepper, secret) as hex."""
    return hmac.new(_pepper(pepper), secret.encode(), hashlib.sha256).hexdigest()


def parse_api_key(key: str) -> tuple[str, str] | None:
    """``(key_id, secret)`` of a well-formed key, else None."""
    if not isinstance(key, str) or not key.startswith(PREFIX) or len(key) > 256:
        return None
    key_id, sep, secret = key[len(PREFIX):].partition("_")
    if not sep or not secret or not key_id.isalnum() or not key_id.isascii() or not 8 <= len(key_id) <= 64:
        return None
    return key_id, secret


def _row(row, key: str, index: int):
    return row[key] if isinstance(row, dict) else row[index]


def create_api_key(
    conn: psycopg.Connection,
    *,
    platform_tenant_id: str,
    service_tenant_id: str,
    service_user_id: str,
    role: str,
    name: str = "",
    principal_id: str | None = None,
    pepper: str | None = None,
    expires_at: datetime | None = None,
    created_by: str | None = None,
    rotated_from: str | None = None,
) -> str:
    """Create a key and return it (the only time the secret is visible).

    On a ``soorma_app`` connection the transaction's identity must have ``platform_tenant_id`` (RLS; otherwise
    ``psycopg.errors.InsufficientPrivilege``); the owner connection may create keys for any tenant.

    The three identity values must match ``[A-Za-z0-9_-]{1,64}`` and ``role`` be one of admin, developer, agent,
    user (``ValueError`` otherwise). ``principal_id`` defaults to ``pr_<key_id>``; an existing principal keeps its
    role (:class:`PrincipalRoleConflict` when ``role`` differs). The insert is committed when
    ``conn`` is in autocommit mode, else with the caller's transaction.
    """
    check_identifier(platform_tenant_id, "platform tenant id")
    check_identifier(service_tenant_id, "service tenant id")
    check_identifier(service_user_id, "service user id")
    if role not in ROLES:
        raise ValueError(f"role {role!r} must be one of {', '.join(ROLES)}")
    key_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    principal = principal_id or f"pr_{key_id}"
    check_identifier(principal, "principal id")
    if principal_id is not None:
        _check_principal_role(conn, platform_tenant_id, principal, role)
    conn.execute(
        "insert into gateway.api_keys (key_id, key_hash, platform_tenant_id, service_tenant_id, service_user_id,"
        " principal_id, role, name, expires_at, created_by, rotated_from)"
        " values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (key_id, hash_secret(secret, pepper=pepper), platform_tenant_id, service_tenant_id, service_user_id,
         principal, role, name, expires_at, created_by, rotated_from),
    )
    return f"{PREFIX}{key_id}_{secret}"


class PrincipalRoleConflict(ValueError):
    """A key was asked for an existing principal with another role than the one it holds.

    A principal has exactly one role for life: otherwise whoever may create a ``user`` key could name an admin's
    principal, and the new key, "owning" the admin's keys by principal, could rotate them into admin keys.
    """


def _check_principal_role(conn: psycopg.Connection, platform_tenant_id: str, principal: str, role: str) -> None:
    # Serialise key creation per principal so two concurrent creates cannot give it two roles.
    conn.execute("select pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"{platform_tenant_id}/{principal}",))
    held = conn.execute(
        "select role from gateway.api_keys where platform_tenant_id = %s and principal_id = %s and role <> %s"
        " limit 1",
        (platform_tenant_id, principal, role),
    ).fetchone()
    if held is not None:
        raise PrincipalRoleConflict(f"principal {principal!r} holds role {_row(held, 'role', 0)!r}, not {role!r}")
    # A principal of the identity service (gateway.principals, migration 0040) has its role and lifecycle there: a
    # new key neither gives it another role nor brings a revoked or suspended principal back.
    named = conn.execute(
        "select role, lifecycle_state from gateway.principals where platform_tenant_id = %s and principal_id = %s",
        (platform_tenant_id, principal),
    ).fetchone()
    if named is not None and _row(named, "role", 0) != role:
        raise PrincipalRoleConflict(f"principal {principal!r} holds role {_row(named, 'role', 0)!r}, not {role!r}")
    if named is not None and _row(named, "lifecycle_state", 1) != "active":
        raise PrincipalRoleConflict(f"principal {principal!r} is {_row(named, 'lifecycle_state', 1)}")


def resolve_api_key(conn: psycopg.Connection, key: str, *, pepper: str | None = None) -> Identity | None:
    """The identity of a valid, unrevoked key; None for a malformed, unknown, wrong or revoked key.

    Raises :class:`PepperMissing` when no pepper is configured (a deployment error, not a bad key).
    """
    pepper_bytes = _pepper(pepper)  # fail loudly on misconfiguration, before any lookup
    parsed = parse_api_key(key)
    if parsed is None:
        return None
    key_id, secret = parsed
    row = conn.execute(
        "select key_hash, platform_tenant_id, service_tenant_id, service_user_id, principal_id, role, revoked_at,"
        " expires_at is not null and expires_at <= now() as expired, coalesce(tenant_status, 'active') as tenant_status"
        " from gateway.resolve_credential(%s)",
        (key_id,),
    ).fetchone()
    presented = hmac.new(pepper_bytes, secret.encode(), hashlib.sha256).hexdigest()
    if row is None:
        hmac.compare_digest(presented, presented)  # same work as a real comparison
        return None
    if not hmac.compare_digest(presented, _row(row, "key_hash", 0)):
        return None
    if _row(row, "revoked_at", 6) is not None or _row(row, "expired", 7) or _row(row, "tenant_status", 8) != "active":
        return None
    return Identity(
        platform_tenant_id=_row(row, "platform_tenant_id", 1),
        service_tenant_id=_row(row, "service_tenant_id", 2),
        service_user_id=_row(row, "service_user_id", 3),
        principal_id=_row(row, "principal_id", 4),
        role=_row(row, "role", 5),
        credential_type=CREDENTIAL_API_KEY,
        credential_id=key_id,
    )


def revoke_api_key(conn: psycopg.Connection, key_id: str) -> bool:
    """Revoke a key by id (``sk_<key_id>_...``; a whole key is accepted too).

    On a ``soorma_app`` connection only keys of the transaction's platform tenant are visible (RLS); the owner
    connection may revoke any key.

    Returns True when an active key was revoked, False when it was unknown or already revoked.
    """
    parsed = parse_api_key(key_id)
    if parsed is not None:
        key_id = parsed[0]
    row = conn.execute(
        "update gateway.api_keys set revoked_at = now() where key_id = %s and revoked_at is null returning key_id",
        (key_id,),
    ).fetchone()
    return row is not None


KEY_COLUMNS = (
    "key_id, platform_tenant_id, service_tenant_id, service_user_id, principal_id, role, name, created_at,"
    " revoked_at, expires_at, created_by, rotated_from"
)


def get_api_key(conn: psycopg.Connection, key_id: str) -> dict[str, Any] | None:
    """One key's metadata (never its hash) visible to the connection (RLS: the transaction's platform tenant)."""
    return conn.execute(f"select {KEY_COLUMNS} from gateway.api_keys where key_id = %s", (key_id,)).fetchone()


def list_api_keys(
    conn: psycopg.Connection,
    *,
    principal_id: str | None = None,
    include_revoked: bool = False,
    after: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Keys of the transaction's platform tenant ordered by ``key_id`` (keyset pagination with ``after``)."""
    where, params = ["true"], []
    if principal_id is not None:
        where.append("principal_id = %s")
        params.append(principal_id)
    if not include_revoked:
        where.append("revoked_at is null")
    if after:
        where.append("key_id > %s")
        params.append(after)
    params.append(limit)
    return conn.execute(
        f"select {KEY_COLUMNS} from gateway.api_keys where {' and '.join(where)} order by key_id limit %s", params
    ).fetchall()


def rotate_api_key(
    conn: psycopg.Connection, key_id: str, *, pepper: str | None = None, created_by: str | None = None
) -> tuple[str, dict[str, Any]] | None:
    """Replace an active key by a new one with the same identity, role, name and expiry, and revoke the old one, in
    the caller's transaction. Returns ``(new key, old key's metadata)`` or None when the key is unknown or revoked.
    """
    old = conn.execute(
        f"select {KEY_COLUMNS} from gateway.api_keys where key_id = %s and revoked_at is null for update", (key_id,)
    ).fetchone()
    if old is None:
        return None
    key = create_api_key(
        conn,
        platform_tenant_id=old["platform_tenant_id"],
        service_tenant_id=old["service_tenant_id"],
        service_user_id=old["service_user_id"],
        role=old["role"],
        name=old["name"],
        principal_id=old["principal_id"],
        pepper=pepper,
        expires_at=old["expires_at"],
        created_by=created_by,
        rotated_from=key_id,
    )
    revoke_api_key(conn, key_id)
    return key, old
