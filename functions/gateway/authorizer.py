"""The HTTP API Lambda authorizer: ``soorma.functions.gateway.authorizer.handler``.

Payload format 2.0 with simple responses
(https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-lambda-authorizer.html): the answer is
``{"isAuthorized": bool, "context": {platform_tenant_id, service_tenant_id, service_user_id, principal_id, role}}``
and API Gateway hands ``context`` to the functions at ``requestContext.authorizer.lambda``.

* The credential is read from exactly one place, the identity source API Gateway keys its cache on
  (:func:`presented_key`): when an ``Authorization`` header is present it must be ``Bearer <key or JWT>`` and it is
  the only credential read; a request that also carries ``X-API-Key`` is refused (two credentials), and so is any
  other scheme (``Basic …``). ``X-API-Key: <key>`` alone is honoured only when there is no ``Authorization`` header,
  which happens only with the cache off (with it on, API Gateway answers 401 before the authorizer runs when the
  ``Authorization`` identity source is missing). Reading a header the cache is not keyed on would let one request
  store a victim's identity under the attacker's ``Authorization`` value (issue 12, finding 1). v2 events carry
  lower-cased header names; other casings are accepted too. An API key (``sk_...``) is resolved in the database; a
  JWT the platform issued itself (ES256, ``kid`` of a platform key: :mod:`soorma.functions.identity.service`)
  is verified against the platform's own keys read from the database (no HTTP fetch) and its principal must not be
  revoked; any other JWT is verified by :mod:`soorma.functions.gateway.tokens` (HS256 with ``SOORMA_JWT_SECRET``,
  RS256 from ``SOORMA_JWT_JWKS_URL``); either way its platform tenant must be onboarded and active.
* A WebSocket handshake (``$connect``: the event has ``methodArn``) may carry its credential as a
  ``Sec-WebSocket-Protocol`` entry instead, because a browser's WebSocket cannot send ``Authorization``
  (:func:`~soorma.functions.gateway.credentials.handshake_headers`: it is moved into ``Authorization`` and then
  verified exactly as the header; both at once are refused). WebSocket APIs cache no authorizer answer, so reading
  it cannot poison a cache; the HTTP API never reads it.
* Nothing else a caller sends names an identity: soorma-core's ``X-Identity-Admin-Key`` / ``X-Tenant-ID`` /
  ``X-Service-Tenant-ID`` / ``X-User-ID`` headers are ignored (without a credential the request is refused).
* The answer depends on the credential alone: it names the *principal* (its platform tenant, own service tenant
  and user, role). Which service tenant and user a request acts for (``X-Soorma-Service-Tenant`` /
  ``X-Soorma-Service-User``, honoured for role ``admin``, and for role ``agent`` only with the delivery grant
  ``X-Soorma-Grant`` of the event it handles, :mod:`soorma.grants`) is decided by the functions per request
  (:func:`soorma.identity.act_for`), so API Gateway can cache this answer keyed on ``Authorization`` alone.
* Malformed, unknown, wrong, revoked and expired keys, keys of a suspended tenant, and bad or expired tokens are all
  simply unauthorized (403 from API Gateway; a missing identity
  source gives 401). A missing pepper raises, so API Gateway answers 500 instead of a misleading 403.
* **The database resuming** (Aurora Serverless v2 waking from 0 ACU takes ~15 s, longer than this function's 10 s
  timeout): an HTTP API Lambda authorizer can only allow, deny (403, which the client cannot tell from a bad key) or
  fail (an error or a timeout: 500, ``AUTHORIZER_APIGW_TIMEOUT``/``AUTHORIZER_FAILURE``); HTTP APIs have no gateway
  responses to turn that into a 503. So the authorizer waits for the database at most :data:`DB_WAIT_S`, and then
  **defers** instead of failing: it allows the request with the context ``{"deferred": ...}`` (:data:`DEFERRED`) and
  no identity, and the function re-does the check itself (:func:`resolve_deferred`, called by
  :class:`soorma.functions.shared.service.RequireIdentity` before routing): a bad credential is answered 401 there, a
  database still unavailable 503 with ``Retry-After``, a good one goes on as if the authorizer had allowed it. A
  JWT needs no database to verify, so a deferred token carries its identity and only the tenant status is left to
  the function (``"deferred": "tenant"``); an API key needs the database, so nothing is known yet
  (``"deferred": "credential"``). Trade-off: while the database is unavailable, requests with any credential reach
  a function (which refuses the bad ones before routing or reading the body), and a deferred answer stays in API
  Gateway's cache for the authorizer's TTL (each such request then costs the function one more key lookup); in
  exchange a valid client gets its answer, or a 503 it knows to retry, never a 403 or a 500.

Caching: the answer may be cached keyed on the credential (``$request.header.Authorization``): revocation,
suspension and expiry are checked again by the functions on every request (:class:`soorma.functions.shared.service.Admission`).
"""

from __future__ import annotations

import logging
from typing import Any, Mapping

from soorma.functions.gateway.credentials import (  # noqa: F401 (re-exported: the authorizer's answer names them)
    DEFER_CREDENTIAL,
    DEFER_TENANT,
    DEFERRED,
    handshake_headers,
    presented_key,
    resolve_deferred,
    tenant_active,
)
from soorma.functions.gateway.keys import PREFIX as KEY_PREFIX, resolve_api_key
from soorma.functions.gateway.tokens import (
    JwtSettings,
    NotOwnToken,
    TokenRejected,
    looks_like_jwt,
    own_token_identity,
    verify,
)
from soorma.functions.shared.db import Database, DatabaseUnavailable, database_from_env
from soorma.identity import Identity, event_headers

logger = logging.getLogger("soorma.functions.gateway.authorizer")

DENY: dict[str, Any] = {"isAuthorized": False}

#: Seconds the authorizer waits for a database connection before deferring: well inside its 10 s timeout, and it
#: leaves the function 20 s (``SOORMA_DB_CONNECT_WAIT_S``) of API Gateway's 30 s to wait for the database itself.
DB_WAIT_S = 5.0


def _jwt_identity(token: str, db: Database, settings: JwtSettings, wait_s: float | None = None) -> Identity | None:
    """The verified token's identity if its tenant is active; ``None`` otherwise. Raises
    :class:`DatabaseUnavailable` (carrying the verified identity as ``identity``) when the tenant cannot be read."""
    try:
        identity = verify(token, settings)
    except TokenRejected as exc:
        logger.info("refused token: %s", exc)
        return None
    try:
        return identity if tenant_active(identity, db, wait_s) else None
    except DatabaseUnavailable as exc:
        exc.identity = identity  # type: ignore[attr-defined]  # what the deferred answer carries
        raise


def authorize(
    event: Mapping[str, Any], db: Database, *, pepper: str | None = None, jwt_settings: JwtSettings | None = None,
    wait_s: float = DB_WAIT_S,
) -> dict[str, Any]:
    """The simple authorizer response for one v2 authorizer event (``jwt_settings`` default: from the environment).

    Waits up to ``wait_s`` for the database; then answers a deferred allow (see the module docstring)."""
    headers: dict[str, str] | None = event_headers(event)
    if "methodArn" in event:  # a WebSocket handshake: a browser's credential may come as a subprotocol entry
        headers = handshake_headers(headers)
    key = presented_key(headers) if headers is not None else None
    if key is None:
        return dict(DENY)
    if key.startswith(KEY_PREFIX):
        try:
            with db.transaction(wait_s=wait_s) as conn:
                identity = resolve_api_key(conn, key, pepper=pepper)
        except DatabaseUnavailable as exc:
            logger.warning("database unavailable (%s): API key check deferred to the function", exc)
            return {"isAuthorized": True, "context": {DEFERRED: DEFER_CREDENTIAL}}
    elif looks_like_jwt(key):
        settings = jwt_settings if jwt_settings is not None else JwtSettings.from_env()
        try:
            try:
                identity = own_token_identity(key, db, wait_s)
            except NotOwnToken:
                identity = _jwt_identity(key, db, settings, wait_s) if settings.enabled else None
        except DatabaseUnavailable as exc:
            if getattr(exc, "identity", None) is None:
                # A platform token whose key this process has not read yet: nothing verified, nothing to defer.
                logger.warning("database unavailable (%s): a platform token's key cannot be read", exc)
                raise
            logger.warning("database unavailable (%s): tenant check of a valid token deferred to the function", exc)
            return {"isAuthorized": True, "context": {**exc.identity.as_context(),  # type: ignore[attr-defined]
                                                      DEFERRED: DEFER_TENANT}}
    else:
        identity = None
    if identity is None:
        return dict(DENY)
    return {"isAuthorized": True, "context": identity.as_context()}


def websocket_answer(event: Mapping[str, Any], simple: Mapping[str, Any]) -> dict[str, Any]:
    """The WebSocket API's form of a simple answer: a REQUEST authorizer on ``$connect`` must return an IAM policy
    (https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-websocket-api-lambda-auth.html and
    .../api-gateway-lambda-authorizer-output.html): ``Allow`` or ``Deny`` of ``execute-api:Invoke`` on the event's
    ``methodArn``, the principal, and the same ``context``, which API Gateway then passes to every route of the
    connection at ``requestContext.authorizer``. A denied handshake is answered 403."""
    allowed = simple.get("isAuthorized") is True
    context = dict(simple.get("context") or {})
    statement = {"Action": "execute-api:Invoke", "Effect": "Allow" if allowed else "Deny",
                 "Resource": event.get("methodArn", "*")}
    answer: dict[str, Any] = {"principalId": context.get("principal_id") or "anonymous",
                              "policyDocument": {"Version": "2012-10-17", "Statement": [statement]}}
    if allowed:
        answer["context"] = context
    return answer


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Lambda entry point (connects as ``soorma_app`` from ``SOORMA_APP_DATABASE_URL``): the HTTP API's simple
    answer, or for the live goal streams' WebSocket ``$connect`` (an event with ``methodArn``) its IAM policy
    answer (:func:`websocket_answer`)."""
    answer = authorize(event, database_from_env())
    if "methodArn" in event:
        return websocket_answer(event, answer)
    return answer
