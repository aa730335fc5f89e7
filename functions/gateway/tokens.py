"""JWT verification for the authorizer: HS256 with a shared secret (local development, tests) and RS256 (also RS384,
RS512, ES256) from a JWKS URL (Cognito or any OIDC issuer), with issuer and audience checks; and the tokens the
platform issues itself (:func:`own_token_identity`: ES256, verified with the public half of a key of
``gateway.signing_keys`` read by ``kid``, :func:`public_key`). Signing is the identity function's
(:mod:`soorma.functions.identity.signing`), which the gateway does not carry; this module is what the authorizer and
the identity function share.

Settings (environment):

* ``SOORMA_JWT_SECRET`` — HS256 secret; HS256 tokens are refused when it is not set.
* ``SOORMA_JWT_JWKS_URL`` — JWKS document of the issuer (e.g. ``https://cognito-idp.<region>.amazonaws.com/<pool>/
  .well-known/jwks.json``); RS256 tokens are refused when it is not set. Keys are cached
  ``SOORMA_JWT_JWKS_CACHE_SECONDS`` (default 300) by PyJWT's ``PyJWKClient``; an unknown ``kid`` refetches once.
* ``SOORMA_JWT_AUDIENCE`` — accepted ``aud`` values, comma-separated. **Required** whenever JWT verification is on
  (a secret or a JWKS URL is set): a token is accepted only for one of these audiences. Without an audience check
  any token the issuer signs for any other application (another Cognito app client of the same pool, another
  service of the same OIDC provider) would open this platform (RFC 7519 §4.1.3; RFC 8725 §3.9 "Use and validate
  audience"). A configuration that enables JWTs without it raises :class:`JwtConfigError` (a deployment error,
  answered 500 by API Gateway and logged with the variable's name), never a silent skip.
* ``SOORMA_JWT_ISSUER`` — required ``iss`` (checked when set).
* ``SOORMA_JWT_LEEWAY_SECONDS`` — clock skew allowed on ``exp``/``nbf``/``iat`` (default 0).
* ``SOORMA_JWT_DEFAULT_ROLE`` — the role of a token naming none (default ``user``).

Claims → identity (soorma-core's projection, reference §2.0), read **only** from registered/issuer-set claim names,
never from Cognito's ``custom:``-prefixed user-pool attributes: a custom attribute is writable by the user
themselves by default (``UpdateUserAttributes`` with their own access token, unless the app client's write
attributes exclude it, https://docs.aws.amazon.com/cognito/latest/developerguide/user-pool-settings-attributes.html),
so reading tenant or role from one lets a user choose their own tenant and role (issue 12, finding 9). With Cognito,
put ``tenant_id`` / ``role`` into the token with a pre-token-generation Lambda trigger (admin-controlled code,
https://docs.aws.amazon.com/cognito/latest/developerguide/user-pool-lambda-pre-token-generation.html) and roles into
groups (``cognito:groups``, assigned by an administrator only):

* ``platform_tenant_id = tenant_id || platform_tenant_id`` (required)
* ``service_tenant_id = service_tenant_id || tenant_id || platform_tenant_id``
* ``service_user_id = service_user_id || user_id || principal_id || sub``
* ``principal_id = principal_id || sub`` (required)
* ``role`` = the highest of the roles named by ``role``, ``roles``, ``principal_type`` and ``cognito:groups``
  (soorma-core's principal types ``service``, ``planner``, ``worker``, ``tool`` are ``agent``), else the default.

``exp`` and ``aud`` are required. Each identity value must match ``[A-Za-z0-9_-]{1,64}`` (they go into NATS
subjects).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Mapping

import jwt
from jwt.algorithms import ECAlgorithm

from soorma.functions.shared import settings
from soorma.identity import CREDENTIAL_JWT, ROLE_RANK, ROLES, Identity
from soorma.subjects import InvalidSubjectToken, check_identifier

logger = logging.getLogger("soorma.functions.gateway.authorizer")

HMAC_ALGORITHMS = ("HS256",)
#: The algorithm of the tokens the platform issues itself (:mod:`soorma.functions.identity.signing`).
OWN_ALGORITHM = "ES256"
#: Every platform signing key's ``kid`` starts so: the authorizer tells the platform's tokens from other issuers' by it.
KID_PREFIX = "soorma-"
ASYMMETRIC_ALGORITHMS = ("RS256", "RS384", "RS512", "ES256")

_ROLE_ALIASES = {
    "admin": "admin",
    "developer": "developer",
    "agent": "agent",
    "service": "agent",
    "planner": "agent",
    "worker": "agent",
    "tool": "agent",
    "user": "user",
}


class TokenRejected(Exception):
    """The token is not acceptable (bad signature, expired, wrong issuer/audience, missing claims...)."""


class JwtConfigError(ValueError):
    """JWT verification is configured unsafely (e.g. enabled without ``SOORMA_JWT_AUDIENCE``): a deployment error."""


@dataclass(frozen=True)
class JwtSettings:
    """How tokens are verified (see the module docstring for the variables).

    ``secret`` (HS256 key), ``jwks_url``, ``issuer``, ``audience`` (accepted ``aud`` values), ``leeway_s`` and
    ``jwks_cache_s`` (seconds), ``default_role``. Raises :class:`JwtConfigError` when verification is enabled (a
    secret or a JWKS URL) without an audience.
    """

    secret: str | None = None
    jwks_url: str | None = None
    issuer: str | None = None
    audience: tuple[str, ...] = ()
    leeway_s: float = 0.0
    jwks_cache_s: float = 300.0
    default_role: str = "user"

    def __post_init__(self) -> None:
        if isinstance(self.audience, str):
            object.__setattr__(self, "audience", (self.audience,))
        if self.enabled and not any(a for a in self.audience):
            raise JwtConfigError(
                "JWT verification is enabled (SOORMA_JWT_SECRET or SOORMA_JWT_JWKS_URL) but SOORMA_JWT_AUDIENCE is "
                "not set: set it to the audience (app client id) your tokens are issued for"
            )

    @property
    def enabled(self) -> bool:
        return bool(self.secret or self.jwks_url)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "JwtSettings":
        default_role = settings.JWT_DEFAULT_ROLE.get(env)
        if default_role not in ROLES:
            raise ValueError(f"{settings.JWT_DEFAULT_ROLE.name}={default_role!r} must be one of {', '.join(ROLES)}")
        return cls(
            secret=settings.JWT_SECRET.get(env),
            jwks_url=settings.JWT_JWKS_URL.get(env),
            issuer=settings.JWT_ISSUER.get(env),
            audience=settings.JWT_AUDIENCE.get(env),
            leeway_s=settings.JWT_LEEWAY_SECONDS.get(env),
            jwks_cache_s=settings.JWT_JWKS_CACHE_SECONDS.get(env),
            default_role=default_role,
        )


_jwks_clients: dict[tuple[str, float], jwt.PyJWKClient] = {}
_jwks_lock = threading.Lock()


def jwks_client(url: str, cache_s: float = 300.0) -> jwt.PyJWKClient:
    """One cached ``PyJWKClient`` per (URL, cache lifetime) and process (a warm Lambda environment reuses it)."""
    key = (url, cache_s)
    with _jwks_lock:
        client = _jwks_clients.get(key)
        if client is None:
            client = jwt.PyJWKClient(url, cache_jwk_set=True, lifespan=max(cache_s, 1), timeout=5)
            _jwks_clients[key] = client
    return client


def looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2 and not token.startswith("sk_") and len(token) <= 16384


def _claim(claims: Mapping[str, Any], name: str) -> Any:
    """The claim ``name`` exactly (never its ``custom:`` variant: see the module docstring), ``None`` when empty."""
    value = claims.get(name)
    return None if value in (None, "") else value


def _first(claims: Mapping[str, Any], *names: str) -> str | None:
    for name in names:
        value = _claim(claims, name)
        if value is not None:
            return str(value)
    return None


def _role(claims: Mapping[str, Any], default: str) -> str:
    named: list[str] = []
    for name in ("role", "roles", "principal_type", "cognito:groups"):
        value = _claim(claims, name)
        if isinstance(value, str):
            named.extend(v.strip() for v in value.replace(",", " ").split())
        elif isinstance(value, (list, tuple)):
            named.extend(str(v) for v in value)
    roles = {_ROLE_ALIASES[r.lower()] for r in named if r.lower() in _ROLE_ALIASES}
    return max(roles, key=ROLE_RANK.__getitem__) if roles else default


def identity_from_claims(claims: Mapping[str, Any], *, default_role: str = "user") -> Identity:
    """Project verified claims onto an :class:`Identity` (see the module docstring); raises :class:`TokenRejected`."""
    platform = _first(claims, "tenant_id", "platform_tenant_id")
    service_tenant = _first(claims, "service_tenant_id", "tenant_id", "platform_tenant_id")
    service_user = _first(claims, "service_user_id", "user_id", "principal_id", "sub")
    principal = _first(claims, "principal_id", "sub")
    if not platform or not principal:
        raise TokenRejected("token lacks a platform tenant or a subject")
    try:
        for value, what in ((platform, "platform tenant"), (service_tenant, "service tenant"),
                            (service_user, "service user"), (principal, "principal")):
            check_identifier(value, what)
    except InvalidSubjectToken as exc:
        raise TokenRejected(str(exc)) from None
    # The rate-limit bucket is per principal, not per token: minting new tokens does not buy more requests.
    return Identity(
        platform_tenant_id=platform,
        service_tenant_id=service_tenant,
        service_user_id=service_user,
        principal_id=principal,
        role=_role(claims, default_role),
        credential_type=CREDENTIAL_JWT,
        credential_id=f"jwt:{principal}",
        expires_at=str(int(claims["exp"])),
    )


def verify(token: str, settings: JwtSettings) -> Identity:
    """Verify ``token`` and return its identity; raises :class:`TokenRejected` for any unacceptable token.

    A JWKS URL that cannot be fetched raises ``jwt.PyJWKClientConnectionError`` (a deployment problem, not a bad
    token: the authorizer lets it surface as a 500).
    """
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError as exc:
        raise TokenRejected(f"malformed token: {exc}") from None
    alg = header.get("alg")
    if alg in HMAC_ALGORITHMS and settings.secret:
        key: Any = settings.secret
        algorithms = list(HMAC_ALGORITHMS)
    elif alg in ASYMMETRIC_ALGORITHMS and settings.jwks_url:
        try:
            key = jwks_client(settings.jwks_url, settings.jwks_cache_s).get_signing_key_from_jwt(token).key
        except jwt.PyJWKClientConnectionError:
            raise
        except (jwt.PyJWKClientError, jwt.InvalidTokenError) as exc:
            raise TokenRejected(f"no signing key: {exc}") from None
        algorithms = list(ASYMMETRIC_ALGORITHMS)
    else:
        raise TokenRejected(f"algorithm {alg!r} is not accepted")
    if not settings.audience:  # settings built around __post_init__ (object.__setattr__): never skip the check
        raise JwtConfigError("JWT verification needs SOORMA_JWT_AUDIENCE")
    options = {"require": ["exp", "aud"], "verify_aud": True}
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=algorithms,
            audience=list(settings.audience),
            issuer=settings.issuer,
            leeway=settings.leeway_s,
            options=options,
        )
    except jwt.InvalidTokenError as exc:
        raise TokenRejected(str(exc)) from None
    return identity_from_claims(claims, default_role=settings.default_role)


_public_keys: dict[str, Any] = {}
_public_lock = threading.Lock()


def cached_public_key(kid: str) -> Any | None:
    """The public key of the platform's signing key ``kid`` if this process has already read it (:func:`public_key`),
    else None."""
    with _public_lock:
        return _public_keys.get(kid)


def public_key(conn: Any, kid: str) -> Any | None:
    """The public key (a ``cryptography`` EC public key) of the platform's published signing key ``kid``, read from
    ``gateway.signing_keys`` (written by :mod:`soorma.functions.identity.signing`; ``conn`` a psycopg connection), or
    None when the platform has no such published key. A key's public half never changes, so it is kept per process
    once read; whether it is still published is checked again only for keys not yet seen (a retired key's tokens have
    expired)."""
    with _public_lock:
        found = _public_keys.get(kid)
    if found is not None:
        return found
    if not (8 <= len(kid) <= 64) or not kid.replace("_", "").replace("-", "").isalnum():
        return None
    row = conn.execute(
        "select public_jwk from gateway.signing_keys where kid = %s and created_at <= now()"
        " and published_until > now()", (kid,)).fetchone()
    if row is None:
        return None
    jwk = row["public_jwk"] if isinstance(row, dict) else row[0]
    key = ECAlgorithm.from_jwk(json.dumps(jwk))
    with _public_lock:
        _public_keys[kid] = key
    return key


class NotOwnToken(Exception):
    """The token does not name a signing key of the platform (another issuer's token, or not a JWT at all)."""


def _own_claims(token: str, key: Any) -> dict[str, Any]:
    try:
        return jwt.decode(token, key, algorithms=[OWN_ALGORITHM], audience=settings.IDENTITY_AUDIENCE.get(),
                          issuer=settings.IDENTITY_ISSUER.get(),
                          options={"require": ["exp", "iat", "aud", "iss", "sub", "jti"]})
    except jwt.InvalidTokenError as exc:
        raise TokenRejected(str(exc)) from None


def own_token_identity(token: str, db: Any, wait_s: float | None = None) -> Identity | None:
    """The identity of a token the platform issued (:mod:`soorma.functions.identity.service`), verified
    against the platform's own published keys (:func:`public_key`, read from the
    database by ``kid``, no HTTP fetch), if its platform tenant is active and its principal not revoked or
    suspended (``gateway.principal_status``); ``None`` when the token is refused.

    Raises :class:`NotOwnToken` when the token's ``kid`` is not one of the platform's keys (the caller then tries
    the other issuers), :class:`soorma.functions.shared.db.DatabaseUnavailable` when the database cannot be read;
    when the key was already known to this process the exception carries the verified identity as ``identity``
    (the authorizer defers the status check to the function, as for other JWTs)."""
    from soorma.functions.shared.db import DatabaseUnavailable

    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError:
        raise NotOwnToken("malformed token") from None
    kid = header.get("kid")
    if header.get("alg") != OWN_ALGORITHM or not isinstance(kid, str) or not kid.startswith(KID_PREFIX):
        raise NotOwnToken("not signed by a platform key")
    identity: Identity | None = None
    cached = cached_public_key(kid)
    if cached is not None:
        try:
            identity = identity_from_claims(_own_claims(token, cached))
        except TokenRejected as exc:
            logger.info("refused platform token: %s", exc)
            return None
    try:
        with db.transaction(wait_s=wait_s) as conn:
            if identity is None:
                key = public_key(conn, kid)
                if key is None:
                    raise NotOwnToken(f"no published platform key {kid!r}")
                try:
                    identity = identity_from_claims(_own_claims(token, key))
                except TokenRejected as exc:
                    logger.info("refused platform token: %s", exc)
                    return None
            row = conn.execute("select gateway.principal_status(%s, %s) as status",
                               (identity.platform_tenant_id, identity.principal_id)).fetchone()
    except DatabaseUnavailable as exc:
        if identity is not None:
            exc.identity = identity  # type: ignore[attr-defined]
        raise
    status = row["status"] if isinstance(row, dict) else row[0]
    if status != "active":
        logger.info("refused platform token: principal %s of %s is %s", identity.principal_id,
                    identity.platform_tenant_id, status)
        return None
    return identity


def issue_hs256(claims: Mapping[str, Any], secret: str, *, ttl_s: float = 900) -> str:
    """An HS256 token with ``claims`` plus ``iat`` and ``exp`` (now + ``ttl_s``) — local development and tests."""
    now = int(time.time())
    return jwt.encode({"iat": now, "exp": now + int(ttl_s), **claims}, secret, algorithm="HS256")
