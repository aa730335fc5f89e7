"""The HTTP API Lambda authorizer: ``soorma.functions.gateway.authorizer.handler``.

Payload format 2.0 with simple responses
(https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-lambda-authorizer.html): the answer is
``{"isAuthorized": bool, "context": {platform_tenant_id, service_tenant_id, service_user_id, principal_id, role}}``
and API Gateway hands ``context`` to the functions at ``requestContext.authorizer.lambda``.

* The credential comes from ``Authorization: Bearer <key or JWT>`` or ``X-API-Key: <key>`` (v2 events carry
  lower-cased header names; other casings are accepted too). An API key (``sk_...``) is resolved in the database; a
  JWT is verified by :mod:`soorma.functions.gateway.tokens` (HS256 with ``SOORMA_JWT_SECRET``, RS256 from
  ``SOORMA_JWT_JWKS_URL``) and its platform tenant must be onboarded and active.
* Nothing else a caller sends names an identity: soorma-core's ``X-Identity-Admin-Key`` / ``X-Tenant-ID`` /
  ``X-Service-Tenant-ID`` / ``X-User-ID`` headers are ignored (without a credential the request is refused).
* ``X-Soorma-Service-Tenant`` / ``X-Soorma-Service-User`` let a principal of role ``agent`` or ``admin`` act for the
  service tenant and user of the event it handles (each value must match ``[A-Za-z0-9_-]{1,64}``, else the request
  is refused). The platform tenant always comes from the key.
* For roles ``user`` and ``developer`` these headers are **refused** (``isAuthorized: false``) when they name
  another tenant or user than the key's own; repeating the key's own values is harmless and allowed. Refusing
  rather than ignoring makes a client that believes it acts for someone else fail loudly instead of silently
  writing under its own identity.
* Malformed, unknown, wrong, revoked and expired keys, keys of a suspended tenant, and bad or expired tokens are all
  simply unauthorized (403 from API Gateway; a missing identity
  source gives 401). A missing pepper or an unreachable database raises, so API Gateway answers 500 instead of a
  misleading 403.

Caching: if the authorizer's result cache is enabled, its identity sources must include the two override headers
(or caching must be off), otherwise one cached answer would be reused for another service tenant.
"""

from __future__ import annotations

import logging
from typing import Any, Mapping

from dataclasses import replace

from soorma.db import Database, database_from_env
from soorma.identity import OVERRIDE_ROLES, Identity
from soorma.subjects import InvalidSubjectToken, check_identifier
from soorma.functions.gateway.keys import PREFIX as KEY_PREFIX, resolve_api_key
from soorma.functions.gateway.tokens import JwtSettings, TokenRejected, looks_like_jwt, verify

logger = logging.getLogger("soorma.functions.gateway.authorizer")

TENANT_HEADER = "x-soorma-service-tenant"
USER_HEADER = "x-soorma-service-user"

DENY: dict[str, Any] = {"isAuthorized": False}


def _headers(event: Mapping[str, Any]) -> dict[str, str]:
    raw = event.get("headers") or {}
    return {str(k).lower(): v for k, v in raw.items() if isinstance(v, str)}


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The API key in ``Authorization: Bearer`` (preferred) or ``X-API-Key``."""
    auth = headers.get("authorization", "").strip()
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    key = headers.get("x-api-key", "").strip()
    return key or None


def apply_overrides(identity: Identity, headers: Mapping[str, str]) -> Identity | None:
    """The identity after the service tenant/user headers; None when the headers must be refused."""
    tenant = headers.get(TENANT_HEADER)
    user = headers.get(USER_HEADER)
    if tenant is None and user is None:
        return identity
    try:
        if tenant is not None:
            check_identifier(tenant, "service tenant")
        if user is not None:
            check_identifier(user, "service user")
    except InvalidSubjectToken as exc:
        logger.info("refused: %s", exc)
        return None
    new_tenant = tenant if tenant is not None else identity.service_tenant_id
    new_user = user if user is not None else identity.service_user_id
    if identity.role not in OVERRIDE_ROLES:
        if (new_tenant, new_user) != (identity.service_tenant_id, identity.service_user_id):
            logger.info("refused: role %s may not act for another service tenant/user", identity.role)
            return None
        return identity
    return replace(identity, service_tenant_id=new_tenant, service_user_id=new_user)


def _jwt_identity(token: str, db: Database, settings: JwtSettings) -> Identity | None:
    try:
        identity = verify(token, settings)
    except TokenRejected as exc:
        logger.info("refused token: %s", exc)
        return None
    with db.transaction() as conn:
        row = conn.execute("select gateway.tenant_status(%s) as status", (identity.platform_tenant_id,)).fetchone()
    status = row["status"] if isinstance(row, dict) else row[0]
    if status != "active":
        logger.info("refused token: platform tenant %s is %s", identity.platform_tenant_id, status or "not onboarded")
        return None
    return identity


def authorize(
    event: Mapping[str, Any], db: Database, *, pepper: str | None = None, jwt_settings: JwtSettings | None = None
) -> dict[str, Any]:
    """The simple authorizer response for one v2 authorizer event (``jwt_settings`` default: from the environment)."""
    headers = _headers(event)
    key = presented_key(headers)
    if key is None:
        return dict(DENY)
    if key.startswith(KEY_PREFIX):
        with db.transaction() as conn:
            identity = resolve_api_key(conn, key, pepper=pepper)
    elif looks_like_jwt(key):
        settings = jwt_settings if jwt_settings is not None else JwtSettings.from_env()
        identity = _jwt_identity(key, db, settings) if settings.enabled else None
    else:
        identity = None
    if identity is None:
        return dict(DENY)
    identity = apply_overrides(identity, headers)
    if identity is None:
        return dict(DENY)
    return {"isAuthorized": True, "context": identity.as_context()}


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Lambda entry point (connects as ``soorma_app`` from ``SOORMA_APP_DATABASE_URL``)."""
    return authorize(event, database_from_env())
