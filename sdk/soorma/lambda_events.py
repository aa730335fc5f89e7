"""The events API Gateway hands a Lambda function: an HTTP API request (payload format 2.0) and the Lambda
authorizer's REQUEST event, as plain dicts, exactly what Lambda passes a handler.

``soorma local``'s API Gateway (:mod:`soorma.local.apigw`) builds the events it invokes functions with here, and
:mod:`soorma.testing.events` re-exports them for tests that call a handler directly. Nothing heavy is imported (no
FastAPI, no database driver).
"""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime
from typing import Any, Mapping
from urllib.parse import unquote_plus, urlencode

from soorma.identity import Identity

#: The headers that carry a credential (lower-case names). The authorizer's answer depends on them alone; which
#: service tenant and user a request acts for is decided by the functions (:func:`soorma.identity.act_for`).
IDENTITY_HEADERS = ("authorization", "x-api-key")

DEFAULT_ROUTE_ARN = "arn:aws:execute-api:local:000000000000:local/$default"


def _query_parameters(query: str) -> dict[str, str]:
    """``queryStringParameters`` as API Gateway builds them: decoded, a repeated name's values joined by commas."""
    params: dict[str, str] = {}
    for part in query.split("&") if query else ():
        key, _, value = part.partition("=")
        key, value = unquote_plus(key), unquote_plus(value)
        params[key] = f"{params[key]},{value}" if key in params else value
    return params


def http_api_event(
    method: str,
    path: str,
    *,
    identity: Identity | Mapping[str, Any] | None = None,
    body: Any = None,
    raw_body: str | bytes | None = None,
    query: str | Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
    source_ip: str = "127.0.0.1",
) -> dict[str, Any]:
    """An API Gateway HTTP API (payload format 2.0) event, as a Lambda integration receives it.

    Shape: https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-develop-integrations-lambda.html#http-api-develop-integrations-lambda.proxy-format

    * ``identity`` — the authorizer's context at ``requestContext.authorizer.lambda``: an :class:`Identity` (its
      :meth:`~Identity.as_context`) or a mapping used as is; ``None`` leaves the event without an authorizer context
      (what a function answers 401 to).
    * ``body`` — a JSON-serialisable value, sent as JSON (with ``content-type: application/json`` unless
      ``headers`` name one); ``raw_body`` — the body as given instead (``str``, or ``bytes``: base64 with
      ``isBase64Encoded`` when not UTF-8). An empty body is left out, as API Gateway does.
    * ``query`` — the raw query string, or a mapping (URL-encoded; a list value repeats the name);
      ``queryStringParameters`` joins a repeated name's values with commas.
    * ``headers`` — names are lower-cased; ``cookie`` also fills ``cookies``; ``host`` gives ``domainName``.
    """
    if body is not None and raw_body is not None:
        raise ValueError("give body or raw_body, not both")
    headers = {k.lower(): v for k, v in (headers or {}).items()}
    if body is not None:
        raw_body = json.dumps(body)
        headers.setdefault("content-type", "application/json")
    if isinstance(raw_body, str):
        raw_body = raw_body.encode("utf-8")
    if query is None:
        query = ""
    elif not isinstance(query, str):
        query = urlencode(query, doseq=True)
    params = _query_parameters(query)
    text, is_b64 = "", False
    if raw_body:
        try:
            text = raw_body.decode("utf-8")
        except UnicodeDecodeError:
            text, is_b64 = base64.b64encode(raw_body).decode(), True
    now = datetime.now(UTC)
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": headers,
        "requestContext": {
            "accountId": "000000000000",
            "apiId": "local",
            "domainName": headers.get("host", "localhost"),
            "domainPrefix": "local",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": headers.get("user-agent", ""),
            },
            "requestId": uuid.uuid4().hex,
            "routeKey": "$default",
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        "isBase64Encoded": is_b64,
    }
    if "cookie" in headers:
        event["cookies"] = [c.strip() for c in headers["cookie"].split(";")]
    if params:
        event["queryStringParameters"] = params
    if raw_body:
        event["body"] = text
    if identity is not None:
        context = identity.as_context() if isinstance(identity, Identity) else dict(identity)
        event["requestContext"]["authorizer"] = {"lambda": context}
    return event


def authorizer_event(http_event: Mapping[str, Any], *, route_arn: str = DEFAULT_ROUTE_ARN) -> dict[str, Any]:
    """The Lambda authorizer's REQUEST event (payload format 2.0) for a request built by :func:`http_api_event`: the
    request's fields but its body, plus ``type``, ``routeArn`` and ``identitySource`` (the values of the
    :data:`IDENTITY_HEADERS` present).

    https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-lambda-authorizer.html
    """
    headers = http_event.get("headers", {})
    return {
        **{k: v for k, v in http_event.items() if k != "body"},
        "type": "REQUEST",
        "routeArn": route_arn,
        "identitySource": [headers[h] for h in IDENTITY_HEADERS if h in headers],
    }


__all__ = ["DEFAULT_ROUTE_ARN", "IDENTITY_HEADERS", "authorizer_event", "http_api_event"]
