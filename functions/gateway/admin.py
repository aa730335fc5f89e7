"""Identity administration: platform tenants (onboarding), API keys (create → shown once, list, rotate, revoke) and
the tenant's policy.

Who may do what (403 otherwise; a key or tenant the caller may not see is a 404):

| route | allowed |
| --- | --- |
| ``POST /v1/tenants``, ``GET /v1/tenants``, ``PATCH /v1/tenants/{id}`` | platform admin (role ``admin`` of the platform-operator tenant, ``SOORMA_PLATFORM_ADMIN_TENANT``, default ``platform``) |
| ``GET /v1/tenants/{id}`` | platform admin; ``admin`` of that tenant |
| ``GET /v1/policy`` | ``admin``, ``developer`` (own tenant) |
| ``PUT /v1/policy`` | ``admin`` (own tenant) |
| ``POST /v1/api-keys`` | ``admin`` (any role, any principal/service tenant/user; a named existing principal keeps its role, 409 otherwise), ``developer`` (roles ``agent`` and ``user``, new principals only: naming a principal, service user or another service tenant is 403) |
| ``GET /v1/api-keys``, ``GET /v1/api-keys/{key_id}`` | ``admin``, ``developer``: every key of the tenant; ``agent``, ``user``: their own principal's keys |
| ``POST /v1/api-keys/{key_id}/revoke`` | ``admin``: any key of the tenant; ``developer``: ``agent``/``user`` keys and its own; ``agent``, ``user``: their own principal's keys (of their own role) |
| ``POST /v1/api-keys/{key_id}/rotate`` | as revoke, except that a ``developer`` may not rotate another principal's ``user`` key (the new key would make it that user) |

Rate limits and status are set by the platform admin only; a tenant's admin sets its policy.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query

from soorma.functions.gateway import keys as api_keys
from soorma.functions.gateway.goals import decode_cursor, encode_cursor, iso
from soorma.functions.gateway.models import (
    KEY_ID,
    ApiKey,
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyList,
    PolicyBody,
    PolicyOut,
    Tenant,
    TenantCreate,
    TenantCreated,
    TenantList,
    TenantPatch,
)
from soorma.functions.gateway.policy import RULES
from soorma.functions.shared.db import Database
from soorma.functions.shared.service import current_identity
from soorma.identity import Identity, is_platform_admin, platform_admin_tenant

_TENANT_COLUMNS = (
    "platform_tenant_id, name, status, key_rps, key_burst, tenant_rps, tenant_burst, allowed_goal_types,"
    " allowed_event_types, max_payload_bytes, max_actions_per_plan, monthly_budget_usd, created_at, updated_at"
)
_PLATFORM_ADMIN_ON = "select set_config('soorma.platform_admin', 'on', true)"
KEY_PATH = Path(..., pattern=KEY_ID)


def _tenant_out(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "created_at": iso(row["created_at"]), "updated_at": iso(row["updated_at"])}


def _key_out(row: dict[str, Any]) -> dict[str, Any]:
    return {
        **row,
        "created_at": iso(row["created_at"]),
        "revoked_at": iso(row["revoked_at"]),
        "expires_at": iso(row["expires_at"]),
    }


def _require_platform_admin(identity: Identity) -> None:
    if not is_platform_admin(identity):
        raise HTTPException(403, "only a platform admin may manage platform tenants")


def _require(identity: Identity, *roles: str) -> None:
    if identity.role not in roles:
        raise HTTPException(403, f"role {identity.role!r} may not do this (needs {' or '.join(roles)})")


def _may_manage(identity: Identity, key: dict[str, Any]) -> bool:
    if identity.role == "admin":
        return True
    if key["principal_id"] == identity.principal_id and key["role"] == identity.role:
        return True
    return identity.role == "developer" and key["role"] in ("agent", "user")


def _may_rotate(identity: Identity, key: dict[str, Any]) -> bool:
    """:func:`_may_manage`, less a developer rotating another principal's ``user`` key: rotation hands the caller the
    new key, and a key of a user's own identity acts as that user without any delivery grant."""
    if identity.role == "developer" and key["role"] == "user" and key["principal_id"] != identity.principal_id:
        return False
    return _may_manage(identity, key)


def _may_see(identity: Identity, key: dict[str, Any]) -> bool:
    return identity.role in ("admin", "developer") or key["principal_id"] == identity.principal_id


def create_router(db: Database) -> APIRouter:
    router = APIRouter()

    # -- tenants ---------------------------------------------------------------------------------------------------
    @router.post("/v1/tenants", status_code=201, response_model=TenantCreated, tags=["tenants"])
    def onboard_tenant(body: TenantCreate, identity: Identity = Depends(current_identity)):
        """Onboard a platform tenant and create its first admin API key (shown only in this answer)."""
        _require_platform_admin(identity)
        tenant_id = body.platform_tenant_id or f"pt_{secrets.token_hex(8)}"
        with db.transaction(identity) as conn:
            conn.execute(_PLATFORM_ADMIN_ON)
            conn.execute(
                "insert into gateway.tenants (platform_tenant_id, name, created_by) values (%s, %s, %s)",
                (tenant_id, body.name, identity.principal_id),
            )  # an existing tenant id: unique violation → 409
            conn.execute("select set_config('soorma.platform_tenant_id', %s, true)", (tenant_id,))
            key = api_keys.create_api_key(
                conn,
                platform_tenant_id=tenant_id,
                service_tenant_id=tenant_id,
                service_user_id=body.admin_user_id,
                principal_id=f"pr_{secrets.token_hex(8)}",
                role="admin",
                name=f"{tenant_id} admin",
                created_by=identity.principal_id,
            )
            row = conn.execute(
                f"select {_TENANT_COLUMNS} from gateway.tenants where platform_tenant_id = %s", (tenant_id,)
            ).fetchone()
        return {"tenant": _tenant_out(row), "admin_key_id": api_keys.parse_api_key(key)[0], "admin_api_key": key}

    @router.get("/v1/tenants", response_model=TenantList, tags=["tenants"])
    def list_tenants(
        status: str | None = Query(None, pattern="^(active|suspended)$"),
        limit: int = Query(50, ge=1, le=200),
        cursor: str | None = Query(None, max_length=500),
        identity: Identity = Depends(current_identity),
    ):
        _require_platform_admin(identity)
        where, params = ["true"], []
        if status:
            where.append("status = %s")
            params.append(status)
        if cursor:
            where.append("platform_tenant_id > %s")
            params.append(decode_cursor(cursor, 1)[0])
        params.append(limit + 1)
        with db.transaction(identity) as conn:
            conn.execute(_PLATFORM_ADMIN_ON)
            rows = conn.execute(
                f"select {_TENANT_COLUMNS} from gateway.tenants where {' and '.join(where)}"
                " order by platform_tenant_id limit %s",
                params,
            ).fetchall()
        more = len(rows) > limit
        rows = rows[:limit]
        return {
            "tenants": [_tenant_out(r) for r in rows],
            "count": len(rows),
            "next_cursor": encode_cursor(rows[-1]["platform_tenant_id"]) if more else None,
        }

    @router.get("/v1/tenants/{platform_tenant_id}", response_model=Tenant, tags=["tenants"])
    def get_tenant(platform_tenant_id: str, identity: Identity = Depends(current_identity)):
        own = identity.role == "admin" and identity.platform_tenant_id == platform_tenant_id
        if not (is_platform_admin(identity) or own):
            raise HTTPException(403, "only a platform admin or the tenant's admin may read a tenant")
        with db.transaction(identity) as conn:
            if is_platform_admin(identity):
                conn.execute(_PLATFORM_ADMIN_ON)
            row = conn.execute(
                f"select {_TENANT_COLUMNS} from gateway.tenants where platform_tenant_id = %s",
                (platform_tenant_id,),
            ).fetchone()
        if row is None:
            raise HTTPException(404, f"tenant {platform_tenant_id[:100]!r} not found")
        return _tenant_out(row)

    @router.patch("/v1/tenants/{platform_tenant_id}", response_model=Tenant, tags=["tenants"])
    def patch_tenant(platform_tenant_id: str, body: TenantPatch, identity: Identity = Depends(current_identity)):
        """Set a tenant's name, status (``suspended`` refuses every credential of the tenant at once), rate limits
        and policy. Fields left out are unchanged; a field sent as null returns to the default."""
        _require_platform_admin(identity)
        changes = body.model_dump(exclude_unset=True)
        if changes.get("status") == "suspended" and platform_tenant_id == platform_admin_tenant():
            raise HTTPException(409, "the platform-operator tenant cannot be suspended")
        if "name" in changes and changes["name"] is None:
            changes["name"] = ""
        if changes.get("status", "") is None:
            del changes["status"]
        with db.transaction(identity) as conn:
            conn.execute(_PLATFORM_ADMIN_ON)
            if changes:
                assignments = ", ".join(f"{column} = %s" for column in changes)
                row = conn.execute(
                    f"update gateway.tenants set {assignments}, updated_at = now() where platform_tenant_id = %s"
                    f" returning {_TENANT_COLUMNS}",
                    [*changes.values(), platform_tenant_id],
                ).fetchone()
            else:
                row = conn.execute(
                    f"select {_TENANT_COLUMNS} from gateway.tenants where platform_tenant_id = %s",
                    (platform_tenant_id,),
                ).fetchone()
        if row is None:
            raise HTTPException(404, f"tenant {platform_tenant_id[:100]!r} not found")
        return _tenant_out(row)

    # -- policy ----------------------------------------------------------------------------------------------------
    def _policy_out(tenant_id: str, row: dict[str, Any] | None) -> dict[str, Any]:
        return {"platform_tenant_id": tenant_id, **{rule: (row or {}).get(rule) for rule in RULES}}

    @router.get("/v1/policy", response_model=PolicyOut, tags=["policy"])
    def get_policy(identity: Identity = Depends(current_identity)):
        """The caller's tenant's policy (null: no restriction)."""
        _require(identity, "admin", "developer")
        with db.transaction(identity) as conn:
            row = conn.execute(
                f"select {', '.join(RULES)} from gateway.tenants where platform_tenant_id = %s",
                (identity.platform_tenant_id,),
            ).fetchone()
        return _policy_out(identity.platform_tenant_id, row)

    @router.put("/v1/policy", response_model=PolicyOut, tags=["policy"])
    def put_policy(body: PolicyBody, identity: Identity = Depends(current_identity)):
        """Replace the caller's tenant's policy (every rule: absent or null means no restriction)."""
        _require(identity, "admin")
        values = body.model_dump()
        with db.transaction(identity) as conn:
            row = conn.execute(
                f"insert into gateway.tenants (platform_tenant_id, {', '.join(RULES)})"
                f" values (%s, {', '.join(['%s'] * len(RULES))})"
                f" on conflict (platform_tenant_id) do update set"
                f" {', '.join(f'{r} = excluded.{r}' for r in RULES)}, updated_at = now()"
                f" returning {', '.join(RULES)}",
                [identity.platform_tenant_id, *(values[r] for r in RULES)],
            ).fetchone()
        return _policy_out(identity.platform_tenant_id, row)

    # -- API keys --------------------------------------------------------------------------------------------------
    @router.post("/v1/api-keys", status_code=201, response_model=ApiKeyCreated, tags=["api-keys"])
    def create_key(body: ApiKeyCreate, identity: Identity = Depends(current_identity)):
        """Create an API key in the caller's platform tenant. The key is in this answer only; it is stored hashed.

        An ``admin`` may name the key's principal, service tenant and user; a ``developer`` creates ``agent`` and
        ``user`` keys for new principals only (its own service tenant, a fresh principal and user): 403 otherwise."""
        _require(identity, "admin", "developer")
        if identity.role == "developer":
            if body.role not in ("agent", "user"):
                raise HTTPException(403, "role 'developer' may create only 'agent' and 'user' keys")
            named = [f for f in ("principal_id", "service_user_id") if getattr(body, f)]
            if body.service_tenant_id not in (None, identity.service_tenant_id):
                named.append("service_tenant_id")
            if named:
                # A key naming an existing user would BE that user (no delivery grant needed): the same power
                # act_for refuses a developer. A developer's keys are for new principals; an admin names identities.
                raise HTTPException(403, f"role 'developer' creates keys for new principals only; {', '.join(named)}"
                                         " may be named by an 'admin'")
        principal = body.principal_id or f"pr_{secrets.token_hex(8)}"
        expires = (
            datetime.now(UTC) + timedelta(seconds=body.expires_in_seconds)
            if body.expires_in_seconds else None
        )
        with db.transaction(identity) as conn:
            try:
                key = api_keys.create_api_key(
                    conn,
                    platform_tenant_id=identity.platform_tenant_id,
                    service_tenant_id=body.service_tenant_id or identity.platform_tenant_id,
                    service_user_id=body.service_user_id or principal,
                    role=body.role,
                    name=body.name,
                    principal_id=principal,
                    expires_at=expires,
                    created_by=identity.principal_id,
                )
            except api_keys.PrincipalRoleConflict as exc:
                raise HTTPException(409, str(exc)) from None
            row = api_keys.get_api_key(conn, api_keys.parse_api_key(key)[0])
        return {**_key_out(row), "api_key": key}

    @router.get("/v1/api-keys", response_model=ApiKeyList, tags=["api-keys"])
    def list_keys(
        include_revoked: bool = False,
        limit: int = Query(100, ge=1, le=500),
        cursor: str | None = Query(None, max_length=500),
        identity: Identity = Depends(current_identity),
    ):
        """Keys of the caller's tenant (``agent``/``user``: only their own), never their secrets."""
        after = decode_cursor(cursor, 1)[0] if cursor else None
        own = None if identity.role in ("admin", "developer") else identity.principal_id
        with db.transaction(identity) as conn:
            rows = api_keys.list_api_keys(
                conn, principal_id=own, include_revoked=include_revoked, after=after, limit=limit + 1
            )
        more = len(rows) > limit
        rows = rows[:limit]
        return {
            "keys": [_key_out(r) for r in rows],
            "count": len(rows),
            "next_cursor": encode_cursor(rows[-1]["key_id"]) if more else None,
        }

    def _visible_key(conn, identity: Identity, key_id: str) -> dict[str, Any]:
        row = api_keys.get_api_key(conn, key_id)
        if row is None or not _may_see(identity, row):
            raise HTTPException(404, f"API key {key_id!r} not found")
        return row

    @router.get("/v1/api-keys/{key_id}", response_model=ApiKey, tags=["api-keys"])
    def get_key(key_id: str = KEY_PATH, identity: Identity = Depends(current_identity)):
        with db.transaction(identity) as conn:
            return _key_out(_visible_key(conn, identity, key_id))

    @router.post("/v1/api-keys/{key_id}/rotate", status_code=201, response_model=ApiKeyCreated, tags=["api-keys"])
    def rotate_key(key_id: str = KEY_PATH, identity: Identity = Depends(current_identity)):
        """Replace a key: a new key (shown once) with the same identity, role and expiry; the old one is revoked."""
        with db.transaction(identity) as conn:
            row = _visible_key(conn, identity, key_id)
            if not _may_rotate(identity, row):
                raise HTTPException(403, f"role {identity.role!r} may not rotate this key")
            if row["revoked_at"] is not None:
                raise HTTPException(409, f"API key {key_id} is revoked")
            try:
                rotated = api_keys.rotate_api_key(conn, key_id, created_by=identity.principal_id)
            except api_keys.PrincipalRoleConflict as exc:
                raise HTTPException(409, str(exc)) from None
            if rotated is None:
                raise HTTPException(409, f"API key {key_id} is revoked")
            new_key, _ = rotated
            created = api_keys.get_api_key(conn, api_keys.parse_api_key(new_key)[0])
        return {**_key_out(created), "api_key": new_key}

    @router.post("/v1/api-keys/{key_id}/revoke", response_model=ApiKey, tags=["api-keys"])
    def revoke_key(key_id: str = KEY_PATH, identity: Identity = Depends(current_identity)):
        """Revoke a key (at once: the functions check revocation on every request). Revoking twice is harmless."""
        with db.transaction(identity) as conn:
            row = _visible_key(conn, identity, key_id)
            if not _may_manage(identity, row):
                raise HTTPException(403, f"role {identity.role!r} may not revoke this key")
            api_keys.revoke_api_key(conn, key_id)
            return _key_out(api_keys.get_api_key(conn, key_id))

    return router

