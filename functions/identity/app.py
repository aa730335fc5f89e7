"""The identity function: the identity service ``/v1/identity/*`` (issue 17, :mod:`soorma.functions.identity.service`),
soorma-core's onboarding, principals, token issuance, JWKS and delegated issuers over the platform's one identity
model, in a Lambda function of its own.

It is not part of the gateway because signing tokens needs PyJWT and ``cryptography`` (layer ``auth``, about 5.7 MB
zipped): the gateway is on every goal's critical path, and its cold start grows with its bundle. The identity routes
are rare (onboarding, a token every 15 minutes per principal). What the authorizer needs to accept the tokens this
function issues (reading a platform key's public half by ``kid``) stays in :mod:`soorma.functions.gateway.tokens`.

Its routes have no Lambda authorizer (:data:`soorma.functions.http_api.ROUTES`): the function verifies its caller's
credential itself on every request (:func:`soorma.functions.identity.service.verify_caller`).
"""

from __future__ import annotations

from fastapi import FastAPI

from soorma.functions.identity import service
from soorma.functions.shared.db import Database, database_from_env
from soorma.functions.shared.service import function_app

__all__ = ["create_app"]


def create_app(db: Database | None = None) -> FastAPI:
    """The identity function's FastAPI app (its OpenAPI document at ``/openapi/identity.json``).

    Parameters: ``db``, the platform database (default :func:`soorma.functions.shared.db.database_from_env`; the
    signing keys' encryption reads ``SOORMA_API_KEY_PEPPER`` from the environment).
    Returns: the app; it opens no connection until its first request.
    """
    db = db if db is not None else database_from_env()
    app = function_app("Soorma identity", version="1")
    app.state.db = db
    app.include_router(service.create_router(db))
    return app
