"""The Lambda entry point of every function the CDK app deploys: ``soorma.infra.runtime.boot.handler``.

Secrets never sit in a function's configuration. Each function gets the ARNs of the secrets it may read, and this
module turns them into the variables the handlers already read (docs/architecture.md "Settings") once per execution
environment, during Lambda's init phase:

| variable with the ARN | secret | sets |
| --- | --- | --- |
| ``SOORMA_APP_DB_SECRET_ARN`` | ``soorma_app``'s credentials (attached to the cluster) | ``SOORMA_APP_DATABASE_URL`` |
| ``SOORMA_OWNER_DB_SECRET_ARN`` | the cluster's owner credentials | ``SOORMA_DATABASE_URL`` (+ ``SOORMA_APP_DB_PASSWORD`` from the app secret) |
| ``SOORMA_API_KEY_PEPPER_SECRET_ARN`` | the API key pepper | ``SOORMA_API_KEY_PEPPER`` |
| ``SOORMA_NATS_SECRET_ARN`` | ``{"url": "nats://user:password@host:4222"}`` | ``SOORMA_NATS_URL`` |
| ``SOORMA_API_KEY_SECRET_ARN`` | an agent's API key (written by the registrar on deploy) | ``SOORMA_API_KEY`` |
| ``SOORMA_JWT_SECRET_ARN`` | the HS256 JWT secret: the plain string, or ``{"secret": ...}`` | ``SOORMA_JWT_SECRET`` |

Secrets are read through the AWS Parameters and Secrets Lambda Extension when the function has it (the CDK app adds
it to every function: :func:`read_secret_from_extension`, no AWS SDK import), else with boto3.

Then ``SOORMA_HANDLER`` (``package.module.attribute``) is imported and called. If a secret is not readable yet (an
agent whose key the registrar has not written), the import is retried on the next invocation, and that invocation
fails, so its events are retried rather than handled without credentials.

Under Lambda SnapStart (``SoormaPlatform(snap_start=True)``; Lambda sets ``AWS_LAMBDA_INITIALIZATION_TYPE`` to
``snap-start`` for the init that precedes the snapshot) :func:`prepare_snapshot` also runs the handler's
``prewarm()`` (the FastAPI app built, its routes' validators compiled) so a restored environment only serves. Nothing
opened there holds a network connection: database pools and NATS connect on first use; a boto3 client built there
(the gateway's SNS client) holds no connection yet and takes SnapStart's container credentials, which botocore
refreshes after the restore. After a restore ``random`` is
reseeded (`Handling uniqueness with Lambda SnapStart
<https://docs.aws.amazon.com/lambda/latest/dg/snapstart-uniqueness.html>`_; identifiers come from ``uuid4`` and
``secrets``, which read the OS's entropy on every call).
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import threading
from typing import Any, Callable
from urllib.parse import quote

from soorma.infra.runtime import settings

log = logging.getLogger("soorma.infra.boot")

HANDLER_ENV = settings.HANDLER.name
DEFAULT_DB_NAME = settings.DB_NAME.default


class SecretNotReady(RuntimeError):
    """A secret this function needs has no usable value yet."""


EXTENSION_PORT_ENV = "PARAMETERS_SECRETS_EXTENSION_HTTP_PORT"


def read_secret_from_extension(arn: str, port: int | str, *, token: str | None = None,
                               timeout_s: float = 5.0) -> str:
    """``SecretString`` of ``arn`` from the AWS Parameters and Secrets Lambda Extension on ``localhost:port``.

    The extension (an AWS-published layer; the CDK app adds it) answers ``GET /secretsmanager/get?secretId=...``
    with ``GetSecretValue``'s JSON, authenticated by the ``X-Aws-Parameters-Secrets-Token`` header (the function's
    ``AWS_SESSION_TOKEN``) and cached in the execution environment. Reading it needs no AWS SDK, which is the point:
    importing boto3 and building a Secrets Manager client is most of a secret read's cold-start cost.
    https://docs.aws.amazon.com/lambda/latest/dg/with-secrets-manager.html

    Returns ``""`` when the secret has no string value. Raises ``OSError`` (``urllib.error.URLError``/``HTTPError``)
    when the extension does not answer with the secret."""
    from urllib.request import Request, urlopen

    token = token if token is not None else os.environ.get("AWS_SESSION_TOKEN", "")
    request = Request(f"http://localhost:{port}/secretsmanager/get?secretId={quote(arn, safe='')}",
                      headers={"X-Aws-Parameters-Secrets-Token": token})
    with urlopen(request, timeout=timeout_s) as response:  # noqa: S310 - a fixed http://localhost URL
        return str(_json(response.read().decode()).get("SecretString") or "")


def _read_secret(arn: str) -> str:
    """Through the extension when the function has it (``PARAMETERS_SECRETS_EXTENSION_HTTP_PORT``), else (or when
    the extension fails) with boto3, which the Lambda Python runtime ships. Raises :class:`SecretNotReady` when the
    secret has no string value."""
    port = os.environ.get(EXTENSION_PORT_ENV)
    value: str | None = None
    # Under SnapStart Lambda gives container credentials, not AWS_SESSION_TOKEN, and the extension cannot
    # authenticate the read: boto3 (whose cost is then in the init before the snapshot) is the way.
    if port and os.environ.get("AWS_SESSION_TOKEN"):
        try:
            value = read_secret_from_extension(arn, port)
        except OSError as exc:
            log.warning("secrets extension on port %s failed for %s (%s); reading it with boto3", port, arn, exc)
    if value is None:
        import boto3

        value = boto3.client("secretsmanager").get_secret_value(SecretId=arn).get("SecretString")
    if not value:
        raise SecretNotReady(f"secret {arn} has no value")
    return value


def _json(value: str) -> dict[str, Any]:
    try:
        data = json.loads(value)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def dsn_from_secret(secret: dict[str, Any], *, default_db: str = DEFAULT_DB_NAME, default_host: str | None = None,
                    default_port: int = 5432) -> str:
    """``postgresql://user:password@host:port/db?sslmode=require`` from an RDS secret's JSON.

    ``host``/``port``/``dbname`` fall back to ``default_host``/``default_port``/``default_db``: a secret attached to a
    cluster names them, the master-user secret that RDS manages holds only ``username`` and ``password``
    (https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/rds-secrets-manager.html). Raises
    :class:`SecretNotReady` when the user, the password or any host is missing."""
    merged = {**secret, "host": secret.get("host") or default_host}
    missing = [k for k in ("username", "password", "host") if not merged.get(k)]
    if missing:
        raise SecretNotReady(f"database secret lacks {', '.join(missing)}")
    return (
        f"postgresql://{quote(str(secret['username']), safe='')}:{quote(str(secret['password']), safe='')}"
        f"@{merged['host']}:{int(secret.get('port') or default_port)}/{quote(str(secret.get('dbname') or default_db))}"
        "?sslmode=require&connect_timeout=10"
    )


def _endpoint(env: Any) -> dict[str, Any]:
    """The ``default_host``/``default_port`` keywords of :func:`dsn_from_secret` from ``SOORMA_DB_HOST``/``_PORT``."""
    return {"default_host": settings.DB_HOST.get(env), "default_port": int(settings.DB_PORT.get(env))}


def resolve_environment(environ: dict[str, str] | None = None, read: Callable[[str], str] = _read_secret) -> None:
    """Fill ``environ`` (default ``os.environ``) from the secrets named in it; values already set are kept."""
    env = os.environ if environ is None else environ
    db_name = settings.DB_NAME.get(env)
    app_arn = settings.APP_DB_SECRET_ARN.get(env)
    owner_arn = settings.OWNER_DB_SECRET_ARN.get(env)
    if app_arn and not settings.APP_DATABASE_URL.get(env):
        app = _json(read(app_arn))
        env[settings.APP_DATABASE_URL.name] = dsn_from_secret(app, default_db=db_name, **_endpoint(env))
        if owner_arn and not settings.APP_DB_PASSWORD.get(env):
            env[settings.APP_DB_PASSWORD.name] = str(app["password"])
    if owner_arn and not settings.DATABASE_URL.get(env):
        env[settings.DATABASE_URL.name] = dsn_from_secret(_json(read(owner_arn)), default_db=db_name, **_endpoint(env))
    pepper_arn = settings.API_KEY_PEPPER_SECRET_ARN.get(env)
    if pepper_arn and not settings.API_KEY_PEPPER.get(env):
        env[settings.API_KEY_PEPPER.name] = read(pepper_arn).strip()
    nats_arn = settings.NATS_SECRET_ARN.get(env)
    if nats_arn and not settings.NATS_URL.get(env):
        raw = read(nats_arn).strip()
        url = _json(raw).get("url") if raw.startswith("{") else raw
        if not url:
            raise SecretNotReady(f"secret {nats_arn} has no NATS url")
        env[settings.NATS_URL.name] = str(url)
    jwt_arn = settings.JWT_SECRET_ARN.get(env)
    if jwt_arn and not settings.JWT_SECRET.get(env):
        raw = read(jwt_arn).strip()
        value = _json(raw).get("secret") if raw.startswith("{") else raw
        if not value:
            raise SecretNotReady(f"secret {jwt_arn} holds no JWT secret")
        env[settings.JWT_SECRET.name] = str(value)
    key_arn = settings.API_KEY_SECRET_ARN.get(env)
    if key_arn and not settings.API_KEY.get(env):
        raw = read(key_arn).strip()
        key = _json(raw).get("api_key") if raw.startswith("{") else raw
        if not key or not str(key).startswith("sk_"):
            raise SecretNotReady(f"secret {key_arn} holds no API key yet (the registrar writes it on deploy)")
        env[settings.API_KEY.name] = str(key)


def _read_secret_fresh(arn: str) -> str:
    """``SecretString`` of ``arn`` straight from Secrets Manager (boto3), never the extension's cache (which keeps a
    value for up to 5 minutes, so a read right after a rotation could return the old one). Raises
    :class:`SecretNotReady` when the secret has no string value."""
    import boto3

    value = boto3.client("secretsmanager").get_secret_value(SecretId=arn).get("SecretString")
    if not value:
        raise SecretNotReady(f"secret {arn} has no value")
    return value


def refresh_database_secrets(environ: dict[str, str] | None = None,
                             read: Callable[[str], str] = _read_secret_fresh) -> bool:
    """For the migrator (the one function given ``SOORMA_OWNER_DB_SECRET_ARN``): read the owner and app database
    secrets again, on every invocation, into ``SOORMA_DATABASE_URL`` and ``SOORMA_APP_DB_PASSWORD``.

    A warm execution environment would otherwise keep the values of its cold start, so after the owner secret's
    30-day rotation it would connect with a stale password, and after the app secret was rotated it would set the
    ``soorma_app`` role back to the old password (``soorma.functions.migrate`` sets the role's password from
    ``SOORMA_APP_DB_PASSWORD`` on every run). Returns whether it refreshed (False without the owner ARN)."""
    env = os.environ if environ is None else environ
    owner_arn = settings.OWNER_DB_SECRET_ARN.get(env)
    if not owner_arn:
        return False
    db_name = settings.DB_NAME.get(env)
    env[settings.DATABASE_URL.name] = dsn_from_secret(_json(read(owner_arn)), default_db=db_name, **_endpoint(env))
    app_arn = settings.APP_DB_SECRET_ARN.get(env)
    if app_arn:
        app = _json(read(app_arn))
        if not app.get("password"):
            raise SecretNotReady(f"secret {app_arn} has no password")
        env[settings.APP_DB_PASSWORD.name] = str(app["password"])
        env[settings.APP_DATABASE_URL.name] = dsn_from_secret(app, default_db=db_name, **_endpoint(env))
    return True


def load_handler(path: str) -> Callable[[Any, Any], Any]:
    """Import ``package.module.attribute``."""
    module_name, _, attr = path.rpartition(".")
    if not module_name:
        raise ValueError(f"{HANDLER_ENV}={path!r} is not a module.attribute path")
    return getattr(importlib.import_module(module_name), attr)


_target: Callable[[Any, Any], Any] | None = None
_lock = threading.Lock()


def _ensure_target() -> Callable[[Any, Any], Any]:
    global _target
    if _target is None:
        with _lock:
            if _target is None:
                resolve_environment()
                _target = load_handler(settings.HANDLER.required())
    return _target


_first_call = True


def handler(event: Any, context: Any) -> Any:
    global _first_call
    target = _ensure_target()
    if not _first_call and settings.OWNER_DB_SECRET_ARN.get():
        # the migrator: the database secrets as they are now, not as at this environment's cold start
        refresh_database_secrets()
    _first_call = False
    return target(event, context)


SNAP_START_INIT = "snap-start"  # AWS_LAMBDA_INITIALIZATION_TYPE during the init Lambda snapshots


def prepare_snapshot(target: Callable[[Any, Any], Any]) -> bool:
    """Before a SnapStart snapshot: call ``target.prewarm()`` if the handler has one (``soorma.functions.shared.service``'s lazy
    Mangum handlers do) and register the after-restore hook that reseeds ``random``. Returns whether it prewarmed.

    The hook uses ``snapshot_restore_py`` (`runtime hooks for Python
    <https://docs.aws.amazon.com/lambda/latest/dg/snapstart-runtime-hooks-python.html>`_), which the Lambda Python
    runtime ships; elsewhere (the bench, tests) it is absent and only the prewarm runs."""
    prewarm = getattr(target, "prewarm", None)
    if callable(prewarm):
        prewarm()
    try:
        from snapshot_restore_py import register_after_restore
    except ImportError:
        pass
    else:
        import random

        register_after_restore(random.seed)
    return callable(prewarm)


# Lambda's init phase: resolve and import now, so the first request only runs the handler.
if settings.HANDLER.get() and os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
    try:
        _ensure_target()
    except SecretNotReady as exc:  # retried on the first invocation
        log.warning("deferred: %s", exc)
    else:
        if os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE") == SNAP_START_INIT:
            prepare_snapshot(_target)
