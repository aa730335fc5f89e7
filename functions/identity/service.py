"""The identity service, ``/v1/identity/*`` (issue 17): soorma-core's identity routes and shapes (reference §2.5),
served by the identity function (:mod:`soorma.functions.identity.app`) over the gateway's one identity model: a
tenant is a row of ``gateway.tenants``, its admin credential an ``admin`` API key of ``gateway.api_keys``, a principal
a row of ``gateway.principals`` whose ``principal_id`` is the same one API keys and tokens name, and the tokens it
issues are accepted by the platform's own authorizer (:func:`soorma.functions.gateway.tokens.own_token_identity`).

Routes (bodies accept snake_case or camelCase; answers are camelCase, as soorma-core's ``BaseDTO``):

| route | credential | answer |
| --- | --- | --- |
| ``GET /.well-known/openid-configuration`` | public | ``{issuer, jwks_uri, token_endpoint, id_token_signing_alg_values_supported}`` |
| ``GET /.well-known/jwks.json`` | public | the JWKS (:func:`soorma.functions.identity.signing.published_jwks`) |
| ``POST /onboarding`` | platform admin | ``{tenantDomainId, platformTenantId, bootstrapAdminPrincipalId, tenantAdminApiKey, status}`` |
| ``POST /tenant-admin-credentials/rotate`` | tenant admin API key | ``{credentialId, tenantAdminApiKey, status}``; the presented key is revoked |
| ``POST /principals``, ``PUT /principals/{id}``, ``POST /principals/{id}/revoke`` | tenant admin | ``{principalId, tenantDomainId, principalType, role, lifecycleState, externalRef}`` |
| ``POST /tokens/issue`` | tenant admin | ``{token, tokenType: "Bearer", expiresIn, expiresAt}`` for one of its active principals |
| ``POST /tokens/exchange`` | any API key | a token of that key's own identity (the API key → token exchange) |
| ``POST /delegated-issuers``, ``PUT /delegated-issuers/{id}`` | tenant admin | ``{delegatedIssuerId, tenantDomainId, issuerId, status, ...}`` |
| ``POST /mappings/evaluate`` | tenant admin | ``{decision: "allow" | "deny", reasonCode, principalId?, role?}`` |
| ``POST /signing-keys/rotate`` | platform admin | ``{kid, signsFrom, previousKid}`` (:func:`~soorma.functions.identity.signing.rotate`) |

(all under ``/v1/identity``). "Platform admin" is an ``admin`` of ``SOORMA_PLATFORM_ADMIN_TENANT``; "tenant admin"
an ``admin`` of the tenant.

**The credential** comes in ``X-Identity-Admin-Key`` as soorma-core's client sends it, or as
``Authorization: Bearer`` (an API key, or a token the platform issued). These routes are routed without the Lambda
authorizer (:data:`soorma.functions.http_api.ROUTES`): API Gateway caches the authorizer's answer keyed on
``Authorization`` alone, so an answer computed from ``X-Identity-Admin-Key`` could be served to another request (issue
12, finding 1). Instead this function verifies the credential itself on every request, the way the authorizer does
(:func:`soorma.functions.gateway.keys.resolve_api_key`: unknown, wrong, revoked, expired keys and keys of a suspended
tenant are refused with 401), and only on these routes: everywhere else ``X-Identity-Admin-Key`` is ignored and
names nobody (never soorma-core's any-value bypass, reference §2.0). ``X-Tenant-ID``, when sent, must be the
credential's own platform tenant (403 otherwise). A tenant admin reaches only its own tenant's principals and issuers
(row-level security: another tenant's id is a 404).

Signing needs PyJWT and ``cryptography`` (layer ``auth``), which is why these routes are a function of their own: the
gateway, on every goal's critical path, does not carry them.
"""

from __future__ import annotations

import json
import math
import re
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import jwt
from fastapi import APIRouter, Body, Depends, HTTPException, Path, Request
from fastapi.responses import JSONResponse
from psycopg.types.json import Jsonb
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from soorma.functions.gateway import keys as api_keys
from soorma.functions.gateway.credentials import presented_key
from soorma.functions.gateway.models import IDENTIFIER
from soorma.functions.gateway.tokens import NotOwnToken, looks_like_jwt, own_token_identity
from soorma.functions.identity import signing
from soorma.functions.shared import settings
from soorma.functions.shared.db import Database
from soorma.functions.shared.service import Admission
from soorma.identity import Identity, act_for, event_headers, is_platform_admin

PREFIX = "/v1/identity"
ADMIN_KEY_HEADER = "x-identity-admin-key"
TENANT_HEADER = "x-tenant-id"
_PLATFORM_ADMIN_ON = "select set_config('soorma.platform_admin', 'on', true)"

#: soorma-core's principal types (reference §2.0) and the platform role each one holds.
PRINCIPAL_ROLES = {
    "admin": "admin",
    "developer": "developer",
    "service": "agent",
    "agent": "agent",
    "planner": "agent",
    "worker": "agent",
    "tool": "agent",
    "user": "user",
}
PrincipalType = Literal["admin", "developer", "service", "agent", "planner", "worker", "tool", "user"]


class _In(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class OnboardingRequest(_In):
    """soorma-core's ``OnboardingRequest``; ``platform_tenant_id`` (default ``pt_<random>``) and ``tenant_name``
    are this platform's additions."""

    bootstrap_admin_external_ref: str | None = Field(None, max_length=500)
    platform_tenant_id: str | None = Field(None, pattern=IDENTIFIER)
    tenant_name: str = Field("", max_length=200)


class PrincipalRequest(_In):
    """soorma-core's ``PrincipalRequest``; ``principal_id`` (default ``pr_<random>``) and the principal's own service
    tenant and user (default: the platform tenant and the principal id) are this platform's additions."""

    tenant_domain_id: str | None = Field(None, max_length=64)
    principal_type: PrincipalType = "user"
    lifecycle_state: Literal["active", "suspended", "revoked"] = "active"
    external_ref: str | None = Field(None, max_length=500)
    principal_id: str | None = Field(None, pattern=IDENTIFIER)
    service_tenant_id: str | None = Field(None, pattern=IDENTIFIER)
    service_user_id: str | None = Field(None, pattern=IDENTIFIER)


class PrincipalUpdate(_In):
    tenant_domain_id: str | None = Field(None, max_length=64)
    principal_type: PrincipalType | None = None
    lifecycle_state: Literal["active", "suspended", "revoked"] | None = None
    external_ref: str | None = Field(None, max_length=500)


class TokenIssueRequest(_In):
    """soorma-core's ``TokenIssueRequest``."""

    principal_id: str = Field(..., pattern=IDENTIFIER)
    issuance_type: Literal["platform", "delegated"] = "platform"
    delegated_issuer_id: str | None = Field(None, pattern=IDENTIFIER)
    tenant_domain_id: str | None = Field(None, max_length=64)


class DelegatedIssuerRequest(_In):
    """soorma-core's ``DelegatedIssuerRequest``: ``issuer_id`` is the issuer's ``iss``; ``jwk_set_ref_or_material``
    its JWKS (``{"keys": [...]}``); ``audience_policy_ref`` the accepted audiences (a string, comma-separated, or a
    list); ``claim_mapping_policy_ref`` how its claims map onto the tenant's principals: ``{"principal_claim": "sub",
    "required_claims": {name: value}, "allowed_principal_types": [...]}`` (a string names the principal claim)."""

    tenant_domain_id: str | None = Field(None, max_length=64)
    delegated_issuer_id: str | None = Field(None, pattern=IDENTIFIER)
    issuer_id: str = Field(..., min_length=1, max_length=500)
    jwk_set_ref_or_material: dict[str, Any] | str = Field(default_factory=lambda: {"keys": []})
    audience_policy_ref: list[str] | str | None = None
    claim_mapping_policy_ref: dict[str, Any] | str | None = None
    status: Literal["active", "disabled"] = "active"


class MappingEvaluationRequest(_In):
    """Which principal an external identity maps to: the delegated issuer (``delegated_issuer_id`` or
    ``issuer_id``), and either its ``token`` (verified against the issuer's JWKS and audiences) or, for a dry run of
    the mapping, its ``claims``."""

    delegated_issuer_id: str | None = Field(None, pattern=IDENTIFIER)
    issuer_id: str | None = Field(None, max_length=500)
    token: str | None = Field(None, max_length=16384)
    claims: dict[str, Any] | None = None
    external_claims: dict[str, Any] | None = None


class SigningKeyRotation(_In):
    lead_seconds: float | None = Field(None, ge=0, le=30 * 86400)


# -- answers (camelCase, as soorma-core's BaseDTO) ------------------------------------------------------------------
class _Out(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class OpenIdConfiguration(BaseModel):
    issuer: str
    jwks_uri: str
    token_endpoint: str
    id_token_signing_alg_values_supported: list[str]
    token_endpoint_auth_methods_supported: list[str]
    response_types_supported: list[str]
    subject_types_supported: list[str]


class JsonWebKeySet(BaseModel):
    keys: list[dict[str, Any]]


class Onboarded(_Out):
    tenant_domain_id: str
    platform_tenant_id: str
    bootstrap_admin_principal_id: str
    tenant_admin_api_key: str
    credential_id: str
    status: str


class AdminCredential(_Out):
    credential_id: str
    tenant_admin_api_key: str
    rotated_from: str
    status: str


class Principal(_Out):
    principal_id: str
    tenant_domain_id: str
    platform_tenant_id: str
    principal_type: str
    role: str
    lifecycle_state: str
    external_ref: str | None
    service_tenant_id: str
    service_user_id: str
    created_at: str
    updated_at: str


class IssuedToken(_Out):
    token: str
    token_type: str
    expires_in: int
    expires_at: str
    kid: str


class DelegatedIssuer(_Out):
    delegated_issuer_id: str
    tenant_domain_id: str
    issuer_id: str
    audiences: list[str]
    claim_mapping: dict[str, Any]
    key_count: int
    status: str
    created_at: str
    updated_at: str


class MappingDecision(_Out):
    decision: Literal["allow", "deny"]
    reason_code: str
    principal_id: str | None = None
    role: str | None = None


class SigningKeyRotated(_Out):
    kid: str
    signs_from: str
    previous_kid: str | None


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


# -- the credential -----------------------------------------------------------------------------------------------
def _credential(request: Request) -> str | None:
    headers = {k.lower(): v for k, v in request.headers.items()}
    admin_key = headers.get(ADMIN_KEY_HEADER, "").strip()
    if admin_key:
        return admin_key
    return presented_key(headers)


def verify_caller(request: Request, db: Database) -> Identity:
    """The identity of the request's credential (see the module docstring), verified now, acting for the service
    tenant/user its ``X-Soorma-Service-*`` headers name (:func:`soorma.identity.act_for`); 401 without a valid
    credential, 403 when ``X-Tenant-ID`` names another tenant or the headers may not be honoured."""
    credential = _credential(request)
    identity: Identity | None = None
    if credential and credential.startswith(api_keys.PREFIX):
        with db.transaction() as conn:
            identity = api_keys.resolve_api_key(conn, credential)
    elif credential and looks_like_jwt(credential):
        try:
            identity = own_token_identity(credential, db)
        except NotOwnToken:
            identity = None  # only the platform's own tokens administer its identity service
    if identity is None:
        raise HTTPException(401, "Unauthorized: a valid admin credential is required (X-Identity-Admin-Key or "
                                 "Authorization: Bearer)")
    _admit(db, identity)
    tenant = request.headers.get(TENANT_HEADER)
    if tenant is not None and tenant.strip() != identity.platform_tenant_id:
        raise HTTPException(403, "X-Tenant-ID names another platform tenant than the credential's")
    # The service tenant/user headers mean what they mean on every route (soorma.identity.act_for): an admin acts
    # for them, anyone else naming another one is refused (OverrideRefused → 403), never silently ignored.
    return act_for(identity, {k.lower(): v for k, v in request.headers.items()})


def _admit(db: Database, identity: Identity) -> None:
    """The rate limits of every other route (:class:`soorma.functions.shared.service.Admission`: the credential's
    and the tenant's token buckets): 429 with ``Retry-After`` when either is empty."""
    verdict, retry_after = Admission.from_env().check(db, identity)
    if verdict == "limited":
        seconds = max(1, math.ceil(retry_after))
        raise HTTPException(429, f"rate limit exceeded, retry after {seconds} s", headers={"Retry-After": str(seconds)})
    if verdict != "ok":  # revoked or suspended since the lookup a moment ago
        raise HTTPException(401, "Unauthorized: the credential was revoked or its tenant suspended")


def _require_tenant_admin(identity: Identity) -> None:
    if identity.role != "admin":
        raise HTTPException(403, f"role {identity.role!r} may not administer the tenant's identities (needs admin)")


def _require_platform_admin(identity: Identity) -> None:
    if not is_platform_admin(identity):
        raise HTTPException(403, "only a platform admin may do this")


# -- tokens -------------------------------------------------------------------------------------------------------
def issue_token(db: Database, identity: Identity, *, principal_type: str, issuance_type: str = "platform",
                extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Sign a token for ``identity`` with the current platform key: claims ``iss`` (``SOORMA_IDENTITY_ISSUER``),
    ``aud`` (``SOORMA_IDENTITY_AUDIENCE``), ``sub`` = ``principal_id``, ``jti``, ``iat``, ``exp`` (+
    ``SOORMA_IDENTITY_TOKEN_TTL_SECONDS``), ``tenant_id`` = ``platform_tenant_id``, ``service_tenant_id``,
    ``service_user_id``, ``role``, ``roles``, ``principal_type``, ``tenant_domain_id``, ``issuance_type`` (soorma-core's
    claims plus the platform's service tenant/user and role, RFC 7519 https://www.rfc-editor.org/rfc/rfc7519), and the
    ``kid`` header. Returns ``{token, tokenType, expiresIn (seconds), expiresAt (ISO 8601), kid}``."""
    ttl = int(settings.IDENTITY_TOKEN_TTL_SECONDS.get())
    with db.transaction() as conn:
        key = signing.current_key(conn)
    now = datetime.now(UTC)
    expires = now + timedelta(seconds=ttl)
    claims = {
        "iss": settings.IDENTITY_ISSUER.get(),
        "aud": settings.IDENTITY_AUDIENCE.get(),
        "sub": identity.principal_id,
        "jti": uuid.uuid4().hex,
        "iat": int(now.timestamp()),
        "exp": int(expires.timestamp()),
        "tenant_id": identity.platform_tenant_id,
        "platform_tenant_id": identity.platform_tenant_id,
        "tenant_domain_id": identity.platform_tenant_id,
        "service_tenant_id": identity.service_tenant_id,
        "service_user_id": identity.service_user_id,
        "principal_id": identity.principal_id,
        "principal_type": principal_type,
        "role": identity.role,
        "roles": [identity.role],
        "issuance_type": issuance_type,
        **(extra or {}),
    }
    token = jwt.encode(claims, key.private_key, algorithm=signing.ALGORITHM, headers={"kid": key.kid})
    return {"token": token, "tokenType": "Bearer", "expiresIn": ttl, "expiresAt": expires.isoformat(),
            "kid": key.kid}


# -- principals ---------------------------------------------------------------------------------------------------
_PRINCIPAL_COLUMNS = ("platform_tenant_id, service_tenant_id, service_user_id, principal_id, role, principal_type,"
                      " lifecycle_state, external_ref, created_at, updated_at")


def _principal_out(row: dict[str, Any]) -> dict[str, Any]:
    return {"principalId": row["principal_id"], "tenantDomainId": row["platform_tenant_id"],
            "platformTenantId": row["platform_tenant_id"], "principalType": row["principal_type"],
            "role": row["role"], "lifecycleState": row["lifecycle_state"], "externalRef": row["external_ref"],
            "serviceTenantId": row["service_tenant_id"], "serviceUserId": row["service_user_id"],
            "createdAt": _iso(row["created_at"]), "updatedAt": _iso(row["updated_at"])}


def _get_principal(conn: Any, principal_id: str) -> dict[str, Any]:
    row = conn.execute(f"select {_PRINCIPAL_COLUMNS} from gateway.principals where principal_id = %s",
                       (principal_id,)).fetchone()
    if row is None:
        raise HTTPException(404, f"principal {principal_id!r} not found")
    return row


def _check_domain(identity: Identity, tenant_domain_id: str | None) -> None:
    # The tenant domain is the platform tenant (one identity): naming another one is refused, never silently ignored.
    if tenant_domain_id and tenant_domain_id != identity.platform_tenant_id:
        raise HTTPException(403, "tenantDomainId names another tenant than the credential's")


def _create_principal(conn: Any, identity: Identity, body: PrincipalRequest) -> dict[str, Any]:
    principal = body.principal_id or f"pr_{secrets.token_hex(8)}"
    role = PRINCIPAL_ROLES[body.principal_type]
    held = conn.execute("select role from gateway.api_keys where platform_tenant_id = %s and principal_id = %s"
                        " and role <> %s limit 1", (identity.platform_tenant_id, principal, role)).fetchone()
    if held is not None:
        raise HTTPException(409, f"principal {principal!r} holds role {held['role']!r} through its API keys")
    conn.execute(
        "insert into gateway.principals (platform_tenant_id, service_tenant_id, service_user_id, principal_id, role,"
        " principal_type, lifecycle_state, external_ref, created_by) values (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (identity.platform_tenant_id, body.service_tenant_id or identity.platform_tenant_id,
         body.service_user_id or principal, principal, role, body.principal_type, body.lifecycle_state,
         body.external_ref, identity.principal_id),
    )  # an existing id: unique violation → 409
    return _get_principal(conn, principal)


# -- delegated issuers --------------------------------------------------------------------------------------------
_ISSUER_COLUMNS = ("platform_tenant_id, delegated_issuer_id, issuer, jwks, audiences, claim_mapping, status,"
                   " created_at, updated_at")


def _issuer_out(row: dict[str, Any]) -> dict[str, Any]:
    return {"delegatedIssuerId": row["delegated_issuer_id"], "tenantDomainId": row["platform_tenant_id"],
            "issuerId": row["issuer"], "audiences": list(row["audiences"] or []),
            "claimMapping": row["claim_mapping"], "keyCount": len((row["jwks"] or {}).get("keys", [])),
            "status": row["status"], "createdAt": _iso(row["created_at"]), "updatedAt": _iso(row["updated_at"])}


def _audiences(value: list[str] | str | None) -> list[str]:
    if value is None:
        return []
    items = value.split(",") if isinstance(value, str) else value
    return [a.strip() for a in items if a and a.strip()][:20]


def _mapping(value: dict[str, Any] | str | None) -> dict[str, Any]:
    if value is None:
        return {"principal_claim": "sub"}
    if isinstance(value, str):
        return {"principal_claim": value.strip() or "sub"}
    claim = value.get("principal_claim", "sub")
    required = value.get("required_claims", {})
    allowed = value.get("allowed_principal_types", [])
    if not isinstance(claim, str) or not isinstance(required, dict) or not isinstance(allowed, list):
        raise HTTPException(422, "claim_mapping_policy_ref: principal_claim is a string, required_claims an object, "
                                 "allowed_principal_types a list")
    return {"principal_claim": claim, "required_claims": required, "allowed_principal_types": allowed}


def _jwks(value: dict[str, Any] | str) -> dict[str, Any]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            value = None
        if not isinstance(value, dict):
            raise HTTPException(422, "jwk_set_ref_or_material: give the JWKS itself ({\"keys\": [...]}, as an "
                                     "object or its JSON text); the platform fetches no key sets by reference")
    keys = value.get("keys")
    if not isinstance(keys, list) or len(keys) > 20:
        raise HTTPException(422, "jwk_set_ref_or_material must be a JWKS with at most 20 keys")
    for jwk in keys:
        if not isinstance(jwk, dict) or jwk.get("d") is not None:
            raise HTTPException(422, "jwk_set_ref_or_material keys must be public JWKs (no private part)")
        try:
            jwt.PyJWK(jwk)
        except Exception as exc:  # noqa: BLE001 - any key PyJWT cannot load is the caller's bad input (422)
            raise HTTPException(422, f"jwk_set_ref_or_material holds an unusable key: {exc}"[:300]) from None
    return {"keys": keys}


def evaluate_mapping(issuer: dict[str, Any] | None, claims: dict[str, Any] | None,
                     token: str | None) -> dict[str, Any]:
    """The decision for an external identity: ``{decision, reasonCode, principalId?}``. Reason codes:
    ``ISSUER_UNKNOWN``, ``ISSUER_DISABLED``, ``TOKEN_INVALID``, ``AUDIENCE_MISMATCH``, ``CLAIMS_MISSING``,
    ``REQUIRED_CLAIM_MISMATCH``, ``PRINCIPAL_UNMAPPED``, ``MAPPED``."""
    if issuer is None:
        return {"decision": "deny", "reasonCode": "ISSUER_UNKNOWN"}
    if issuer["status"] != "active":
        return {"decision": "deny", "reasonCode": "ISSUER_DISABLED"}
    audiences = list(issuer["audiences"] or [])
    if token is not None:
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            keys = [k for k in issuer["jwks"].get("keys", []) if kid is None or k.get("kid") == kid]
            if not keys:
                return {"decision": "deny", "reasonCode": "TOKEN_INVALID"}
            verified = None
            for jwk in keys:
                try:
                    verified = jwt.decode(token, jwt.PyJWK(jwk).key, algorithms=list(ASYMMETRIC),
                                          issuer=issuer["issuer"], audience=audiences or None,
                                          options={"require": ["exp", "iss"], "verify_aud": bool(audiences)})
                    break
                except jwt.InvalidSignatureError:
                    continue
            if verified is None:
                return {"decision": "deny", "reasonCode": "TOKEN_INVALID"}
            claims = verified
        except jwt.InvalidAudienceError:
            return {"decision": "deny", "reasonCode": "AUDIENCE_MISMATCH"}
        except Exception:  # noqa: BLE001 - whatever PyJWT refuses in a caller's token is an invalid token
            return {"decision": "deny", "reasonCode": "TOKEN_INVALID"}
    if claims is None:
        return {"decision": "deny", "reasonCode": "CLAIMS_MISSING"}
    if token is None and audiences and "aud" in claims:
        given = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        if not set(map(str, given)) & set(audiences):
            return {"decision": "deny", "reasonCode": "AUDIENCE_MISMATCH"}
    mapping = issuer["claim_mapping"] or {}
    for name, value in (mapping.get("required_claims") or {}).items():
        if claims.get(name) != value:
            return {"decision": "deny", "reasonCode": "REQUIRED_CLAIM_MISMATCH"}
    principal = claims.get(mapping.get("principal_claim", "sub"))
    if not isinstance(principal, str) or not re.match(IDENTIFIER, principal):
        return {"decision": "deny", "reasonCode": "PRINCIPAL_UNMAPPED"}
    return {"decision": "allow", "reasonCode": "MAPPED", "principalId": principal}


ASYMMETRIC = ("RS256", "RS384", "RS512", "ES256", "ES384")


def create_router(db: Database) -> APIRouter:
    """The ``/v1/identity`` routes (the module docstring); every handler verifies its credential itself."""
    router = APIRouter(prefix=PREFIX, tags=["identity"])

    def authenticated(request: Request) -> Identity:
        # A dependency: FastAPI resolves it before it validates the body, so an anonymous caller gets 401 and learns
        # nothing about its body's validity (as RequireIdentity does for the other /v1 routes).
        return verify_caller(request, db)

    @router.get("/.well-known/openid-configuration", response_model=OpenIdConfiguration)
    def openid_configuration(request: Request):
        """OpenID Provider Metadata (https://openid.net/specs/openid-connect-discovery-1_0.html §3), as far as the
        platform's tokens go."""
        base = _public_base(request)
        return JSONResponse({
            "issuer": settings.IDENTITY_ISSUER.get(),
            "jwks_uri": f"{base}{PREFIX}/.well-known/jwks.json",
            "token_endpoint": f"{base}{PREFIX}/tokens/issue",
            "id_token_signing_alg_values_supported": [signing.ALGORITHM],
            "token_endpoint_auth_methods_supported": ["none"],
            "response_types_supported": ["token"],
            "subject_types_supported": ["public"],
        }, headers={"Cache-Control": "public, max-age=300"})

    @router.get("/.well-known/jwks.json", response_model=JsonWebKeySet)
    def jwks():
        """The platform's published signing keys (RFC 7517 §5); clients may cache it 5 minutes."""
        with db.transaction() as conn:
            document = signing.published_jwks(conn)
        return JSONResponse(document, headers={"Cache-Control": "public, max-age=300"})

    @router.post("/onboarding", status_code=201, response_model=Onboarded)
    def onboard(body: OnboardingRequest | None = Body(None), caller: Identity = Depends(authenticated)):
        """Onboard a platform tenant (platform admin): the tenant, its bootstrap admin principal and that
        principal's admin API key (the tenant admin key, shown only in this answer)."""
        _require_platform_admin(caller)
        body = body or OnboardingRequest()
        tenant_id = body.platform_tenant_id or f"pt_{secrets.token_hex(8)}"
        principal = f"pr_{secrets.token_hex(8)}"
        with db.transaction(caller) as conn:
            conn.execute(_PLATFORM_ADMIN_ON)
            conn.execute("insert into gateway.tenants (platform_tenant_id, name, created_by) values (%s, %s, %s)",
                         (tenant_id, body.tenant_name or tenant_id, caller.principal_id))  # exists → 409
            conn.execute("select set_config('soorma.platform_tenant_id', %s, true)", (tenant_id,))
            conn.execute(
                "insert into gateway.principals (platform_tenant_id, service_tenant_id, service_user_id,"
                " principal_id, role, principal_type, external_ref, created_by)"
                " values (%s, %s, %s, %s, 'admin', 'admin', %s, %s)",
                (tenant_id, tenant_id, principal, principal, body.bootstrap_admin_external_ref, caller.principal_id))
            key = api_keys.create_api_key(conn, platform_tenant_id=tenant_id, service_tenant_id=tenant_id,
                                          service_user_id=principal, principal_id=principal, role="admin",
                                          name=f"{tenant_id} identity admin", created_by=caller.principal_id)
        return {"tenantDomainId": tenant_id, "platformTenantId": tenant_id,
                "bootstrapAdminPrincipalId": principal, "tenantAdminApiKey": key,
                "credentialId": api_keys.parse_api_key(key)[0], "status": "active"}

    @router.post("/tenant-admin-credentials/rotate", status_code=201, response_model=AdminCredential)
    def rotate_admin_credential(caller: Identity = Depends(authenticated)):
        """Replace the presented tenant admin API key by a new one (shown once); the presented key is revoked."""
        _require_tenant_admin(caller)
        if caller.credential_type != "api_key":
            raise HTTPException(400, "present the tenant admin API key to rotate (not a token)")
        with db.transaction(caller) as conn:
            rotated = api_keys.rotate_api_key(conn, caller.credential_id, created_by=caller.principal_id)
        if rotated is None:
            raise HTTPException(409, "the presented key was revoked meanwhile")
        new_key, _ = rotated
        return {"credentialId": api_keys.parse_api_key(new_key)[0], "tenantAdminApiKey": new_key,
                "rotatedFrom": caller.credential_id, "status": "active"}

    @router.post("/principals", status_code=201, response_model=Principal)
    def create_principal(body: PrincipalRequest, caller: Identity = Depends(authenticated)):
        """Create a principal of the caller's tenant (``principal_type`` → role: service/agent/planner/worker/tool
        → ``agent``)."""
        _require_tenant_admin(caller)
        _check_domain(caller, body.tenant_domain_id)
        with db.transaction(caller) as conn:
            return _principal_out(_create_principal(conn, caller, body))

    @router.put("/principals/{principal_id}", response_model=Principal)
    def update_principal(body: PrincipalUpdate, principal_id: str = Path(..., pattern=IDENTIFIER),
                         caller: Identity = Depends(authenticated)):
        """Change a principal's lifecycle state, external reference, or type (within the same role: 409 else)."""
        _require_tenant_admin(caller)
        _check_domain(caller, body.tenant_domain_id)
        with db.transaction(caller) as conn:
            row = _get_principal(conn, principal_id)
            principal_type = body.principal_type or row["principal_type"]
            if PRINCIPAL_ROLES.get(principal_type, row["role"]) != row["role"]:
                raise HTTPException(409, f"principal {principal_id!r} holds role {row['role']!r} for life")
            state = body.lifecycle_state or row["lifecycle_state"]
            if row["lifecycle_state"] == "revoked" and state != "revoked":
                raise HTTPException(409, f"principal {principal_id!r} is revoked")
            conn.execute(
                "update gateway.principals set principal_type = %s, lifecycle_state = %s,"
                " external_ref = coalesce(%s, external_ref), updated_at = now() where principal_id = %s",
                (principal_type, state, body.external_ref, principal_id))
            if state == "revoked":
                _revoke_keys(conn, principal_id)
            return _principal_out(_get_principal(conn, principal_id))

    @router.post("/principals/{principal_id}/revoke", response_model=Principal)
    def revoke_principal(principal_id: str = Path(..., pattern=IDENTIFIER), caller: Identity = Depends(authenticated)):
        """Revoke a principal: its API keys are revoked and its tokens refused (by the authorizer on its next
        uncached check, by this service at once); revoking twice is harmless."""
        _require_tenant_admin(caller)
        with db.transaction(caller) as conn:
            _get_principal(conn, principal_id)
            conn.execute("update gateway.principals set lifecycle_state = 'revoked', updated_at = now()"
                         " where principal_id = %s", (principal_id,))
            _revoke_keys(conn, principal_id)
            return _principal_out(_get_principal(conn, principal_id))

    @router.post("/tokens/issue", response_model=IssuedToken)
    def issue(body: TokenIssueRequest, caller: Identity = Depends(authenticated)):
        """Issue a 15-minute token for an active principal of the caller's tenant (``issuance_type=delegated``
        names an active delegated issuer of the tenant, recorded in the token's ``delegated_issuer_id``)."""
        _require_tenant_admin(caller)
        _check_domain(caller, body.tenant_domain_id)
        extra: dict[str, Any] = {}
        with db.transaction(caller) as conn:
            row = _get_principal(conn, body.principal_id)
            if body.issuance_type == "delegated":
                if not body.delegated_issuer_id:
                    raise HTTPException(422, "issuance_type delegated needs delegated_issuer_id")
                issuer = conn.execute("select status from gateway.delegated_issuers where delegated_issuer_id = %s",
                                      (body.delegated_issuer_id,)).fetchone()
                if issuer is None:
                    raise HTTPException(404, f"delegated issuer {body.delegated_issuer_id!r} not found")
                if issuer["status"] != "active":
                    raise HTTPException(409, f"delegated issuer {body.delegated_issuer_id!r} is disabled")
                extra["delegated_issuer_id"] = body.delegated_issuer_id
        if row["lifecycle_state"] != "active":
            raise HTTPException(409, f"principal {body.principal_id!r} is {row['lifecycle_state']}")
        subject = Identity(row["platform_tenant_id"], row["service_tenant_id"], row["service_user_id"],
                           row["principal_id"], row["role"])
        return issue_token(db, subject, principal_type=row["principal_type"], issuance_type=body.issuance_type,
                           extra=extra)

    @router.post("/tokens/exchange", response_model=IssuedToken)
    def exchange(caller: Identity = Depends(authenticated)):
        """Exchange the presented API key for a token of the same identity (principal, role, service tenant and
        user), e.g. for a client that should not hold the long-lived key in every request."""
        if caller.credential_type != "api_key":
            raise HTTPException(400, "only an API key is exchanged for a token")
        with db.transaction(caller) as conn:
            row = conn.execute("select principal_type, lifecycle_state from gateway.principals"
                               " where principal_id = %s", (caller.principal_id,)).fetchone()
        if row is not None and row["lifecycle_state"] != "active":
            raise HTTPException(409, f"principal {caller.principal_id!r} is {row['lifecycle_state']}")
        return issue_token(db, caller, principal_type=row["principal_type"] if row else caller.role,
                           issuance_type="exchange")

    @router.post("/delegated-issuers", status_code=201, response_model=DelegatedIssuer)
    def register_issuer(body: DelegatedIssuerRequest, caller: Identity = Depends(authenticated)):
        """Register another issuer whose tokens the tenant trusts, with its JWKS, audiences and claim mapping."""
        _require_tenant_admin(caller)
        _check_domain(caller, body.tenant_domain_id)
        issuer_id = body.delegated_issuer_id or f"di_{secrets.token_hex(8)}"
        with db.transaction(caller) as conn:
            conn.execute(
                "insert into gateway.delegated_issuers (platform_tenant_id, service_tenant_id, service_user_id,"
                " delegated_issuer_id, issuer, jwks, audiences, claim_mapping, status, created_by)"
                " values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (caller.platform_tenant_id, caller.service_tenant_id, caller.service_user_id, issuer_id,
                 body.issuer_id, _json(_jwks(body.jwk_set_ref_or_material)), _audiences(body.audience_policy_ref),
                 _json(_mapping(body.claim_mapping_policy_ref)), body.status, caller.principal_id))
            return _issuer_out(_get_issuer(conn, issuer_id))

    @router.put("/delegated-issuers/{delegated_issuer_id}", response_model=DelegatedIssuer)
    def update_issuer(body: DelegatedIssuerRequest, delegated_issuer_id: str = Path(..., pattern=IDENTIFIER),
                      caller: Identity = Depends(authenticated)):
        """Replace a delegated issuer's settings (its id stays)."""
        _require_tenant_admin(caller)
        _check_domain(caller, body.tenant_domain_id)
        with db.transaction(caller) as conn:
            _get_issuer(conn, delegated_issuer_id)
            conn.execute(
                "update gateway.delegated_issuers set issuer = %s, jwks = %s, audiences = %s, claim_mapping = %s,"
                " status = %s, updated_at = now() where delegated_issuer_id = %s",
                (body.issuer_id, _json(_jwks(body.jwk_set_ref_or_material)), _audiences(body.audience_policy_ref),
                 _json(_mapping(body.claim_mapping_policy_ref)), body.status, delegated_issuer_id))
            return _issuer_out(_get_issuer(conn, delegated_issuer_id))

    @router.post("/mappings/evaluate", response_model=MappingDecision, response_model_exclude_none=True)
    def evaluate(body: MappingEvaluationRequest, caller: Identity = Depends(authenticated)):
        """Evaluate the claim mapping of a delegated issuer for an external token (verified) or claims (dry run)."""
        _require_tenant_admin(caller)
        with db.transaction(caller) as conn:
            if body.delegated_issuer_id:
                issuer = conn.execute(f"select {_ISSUER_COLUMNS} from gateway.delegated_issuers"
                                      " where delegated_issuer_id = %s", (body.delegated_issuer_id,)).fetchone()
            elif body.issuer_id:
                issuer = conn.execute(f"select {_ISSUER_COLUMNS} from gateway.delegated_issuers where issuer = %s",
                                      (body.issuer_id,)).fetchone()
            else:
                raise HTTPException(422, "name the delegated issuer (delegated_issuer_id or issuer_id)")
            decision = evaluate_mapping(issuer, body.claims or body.external_claims, body.token)
            if decision["decision"] == "allow":
                principal = conn.execute("select role, lifecycle_state from gateway.principals"
                                         " where principal_id = %s", (decision["principalId"],)).fetchone()
                allowed = (issuer["claim_mapping"] or {}).get("allowed_principal_types") or []
                if principal is None or principal["lifecycle_state"] != "active":
                    decision = {"decision": "deny", "reasonCode": "PRINCIPAL_UNMAPPED"}
                elif allowed and not {PRINCIPAL_ROLES.get(t) for t in allowed} & {principal["role"]}:
                    decision = {"decision": "deny", "reasonCode": "PRINCIPAL_TYPE_NOT_ALLOWED"}
                else:
                    decision["role"] = principal["role"]
        return decision

    @router.post("/signing-keys/rotate", status_code=201, response_model=SigningKeyRotated)
    def rotate_signing_key(body: SigningKeyRotation | None = Body(None), caller: Identity = Depends(authenticated)):
        """Start a signing key rotation (platform admin): the new key is published now and signs after
        ``lead_seconds`` (default ``SOORMA_IDENTITY_KEY_PUBLISH_LEAD_SECONDS``)."""
        _require_platform_admin(caller)
        with db.transaction() as conn:
            rotated = signing.rotate(conn, lead_s=body.lead_seconds if body else None)
        return {"kid": rotated["kid"], "signsFrom": _iso(rotated["signs_from"]),
                "previousKid": rotated["previous_kid"]}

    def _get_issuer(conn: Any, delegated_issuer_id: str) -> dict[str, Any]:
        row = conn.execute(f"select {_ISSUER_COLUMNS} from gateway.delegated_issuers where delegated_issuer_id = %s",
                           (delegated_issuer_id,)).fetchone()
        if row is None:
            raise HTTPException(404, f"delegated issuer {delegated_issuer_id!r} not found")
        return row

    return router


def _revoke_keys(conn: Any, principal_id: str) -> None:
    conn.execute("update gateway.api_keys set revoked_at = now() where principal_id = %s and revoked_at is null",
                 (principal_id,))


def _json(value: Any) -> Any:
    return Jsonb(value)


def _public_base(request: Request) -> str:
    """The API's base URL as the client reached it (API Gateway's ``domainName``, else the request's host)."""
    event = request.scope.get("aws.event") or {}
    domain = (event.get("requestContext") or {}).get("domainName")
    headers = event_headers(event) if event else {}
    if domain and "." in domain and not domain.startswith("localhost"):
        stage = (event.get("requestContext") or {}).get("stage")
        suffix = f"/{stage}" if stage and stage != "$default" else ""
        return f"https://{domain}{suffix}"
    host = headers.get("host") or request.headers.get("host") or "localhost"
    scheme = headers.get("x-forwarded-proto") or request.url.scheme or "http"
    return f"{scheme}://{host}"
