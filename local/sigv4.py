"""AWS Signature Version 4 for the local stack's Lambda Invoke API: the stack's own access key, verifying the
signature of a received request, and signing one (for clients that are not boto3, such as ``soorma local invoke``).

https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv-create-signed-request.html

Verification recomputes the signature with botocore's own signer (:class:`botocore.auth.SigV4Auth`: canonical request,
string to sign, signing key) over the request exactly as it arrived (raw path, raw query, the headers the client
listed in ``SignedHeaders``, the body's SHA-256) and compares it with :func:`hmac.compare_digest`. It also checks the
credential scope (``<access key>/<date>/<region>/lambda/aws4_request``, the date being that of ``X-Amz-Date``) and that
``X-Amz-Date`` is within :data:`MAX_SKEW_S` of now, so a captured request cannot be replayed later.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Iterable, Mapping

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.compat import HTTPHeaders
from botocore.credentials import Credentials

#: How far ``X-Amz-Date`` may be from this machine's clock (seconds).
MAX_SKEW_S = 300
ALGORITHM = "AWS4-HMAC-SHA256"
SERVICE = "lambda"
REGION = "us-east-1"
_AMZ_DATE = "%Y%m%dT%H%M%SZ"
_AUTH = re.compile(
    r"^AWS4-HMAC-SHA256\s+Credential=(?P<credential>[^,\s]+),\s*SignedHeaders=(?P<signed>[^,\s]+),"
    r"\s*Signature=(?P<signature>[0-9a-f]{64})$"
)


@dataclass(frozen=True)
class LocalAwsCredentials:
    """The stack's access key (``aws_access_key_id``, ``aws_secret_access_key`` in ``.soorma/secrets.json``)."""

    access_key_id: str
    secret_access_key: str

    def __repr__(self) -> str:  # never print the secret (tracebacks, logs)
        return f"LocalAwsCredentials(access_key_id={self.access_key_id!r}, secret_access_key='***')"


class SignatureError(Exception):
    """A request is not signed by the stack's credentials. ``code`` is Lambda's error type
    (``MissingAuthenticationTokenException``, ``IncompleteSignatureException``, ``UnrecognizedClientException``,
    ``InvalidSignatureException``), ``str(self)`` the message; the answer is always 403."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def verify(method: str, raw_path: str, raw_query: str, headers: Iterable[tuple[str, str]], body: bytes,
           credentials: LocalAwsCredentials, *, region: str = REGION, service: str = SERVICE,
           now: datetime | None = None) -> None:
    """Check that a received request carries a valid SigV4 signature by ``credentials``; raises
    :class:`SignatureError` otherwise.

    ``raw_path``/``raw_query``: the request target as sent (percent-encoding untouched: the client signed that form);
    ``headers``: every received ``(name, value)`` pair (names in any case; repeated names are joined as SigV4 says);
    ``body``: the whole body. ``region`` and ``service`` are what the credential scope must name.
    """
    received: dict[str, list[str]] = {}
    for name, value in headers:
        received.setdefault(name.lower(), []).append(value)
    authorization = (received.get("authorization") or [""])[0].strip()
    if not authorization:
        raise SignatureError("MissingAuthenticationTokenException",
                             "Missing Authentication Token: sign the request with the local stack's access key "
                             "(AWS Signature Version 4)")
    match = _AUTH.match(authorization)
    if not match:
        raise SignatureError("IncompleteSignatureException",
                             f"Authorization header requires the {ALGORITHM} form: Credential, SignedHeaders and "
                             "Signature")
    parts = match["credential"].split("/")
    if len(parts) != 5:
        raise SignatureError("IncompleteSignatureException",
                             "Credential must be <access key>/<date>/<region>/<service>/aws4_request")
    key_id, scope_date, scope_region, scope_service, terminator = parts
    if not hmac.compare_digest(key_id.encode(), credentials.access_key_id.encode()):
        raise SignatureError("UnrecognizedClientException", "The security token included in the request is invalid.")
    if (scope_region, scope_service, terminator) != (region, service, "aws4_request"):
        raise SignatureError("InvalidSignatureException",
                             f"Credential should be scoped to {region}/{service}/aws4_request, not "
                             f"{scope_region}/{scope_service}/{terminator}")
    amz_date = (received.get("x-amz-date") or [""])[0]
    try:
        signed_at = datetime.strptime(amz_date, _AMZ_DATE).replace(tzinfo=UTC)
    except ValueError:
        raise SignatureError("IncompleteSignatureException",
                             "X-Amz-Date is required, in the form YYYYMMDDTHHMMSSZ") from None
    if scope_date != amz_date[:8]:
        raise SignatureError("InvalidSignatureException",
                             f"Credential should be scoped to a valid date: {amz_date[:8]}, not {scope_date}")
    now = now or datetime.now(UTC)
    if abs((now - signed_at).total_seconds()) > MAX_SKEW_S:
        raise SignatureError("InvalidSignatureException",
                             f"Signature expired: {amz_date} is more than {MAX_SKEW_S // 60} minutes from the "
                             f"local time {now.strftime(_AMZ_DATE)}")
    signed = match["signed"].split(";")
    if "host" not in signed or "x-amz-date" not in signed or signed != sorted(set(signed)):
        raise SignatureError("IncompleteSignatureException",
                             "SignedHeaders must list host and x-amz-date, in lower case, sorted, once each")
    missing = [name for name in signed if name not in received]
    if missing:
        raise SignatureError("IncompleteSignatureException", f"signed headers missing from the request: {missing}")
    body_hash = hashlib.sha256(body).hexdigest()
    declared = (received.get("x-amz-content-sha256") or [None])[0]
    if declared is not None and declared != body_hash:
        # botocore would sign the declared value instead of the body: refuse a body the signature does not cover
        raise SignatureError("InvalidSignatureException", "X-Amz-Content-SHA256 does not match the body")

    header_map = HTTPHeaders()
    for name in signed:
        for value in received[name]:
            header_map[name] = value
    host = received["host"][0]
    url = f"http://{host}{raw_path}" + (f"?{raw_query}" if raw_query else "")
    request = AWSRequest(method=method.upper(), url=url, data=body)
    request.context["timestamp"] = amz_date
    signer = _ReceivedRequestSigner(Credentials(credentials.access_key_id, credentials.secret_access_key),
                                    service, region, header_map)
    canonical = signer.canonical_request(request)
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    if not hmac.compare_digest(expected.encode(), match["signature"].encode()):
        raise SignatureError("InvalidSignatureException",
                             "The request signature we calculated does not match the signature you provided. Check "
                             "your AWS Secret Access Key and signing method.")


class _ReceivedRequestSigner(SigV4Auth):
    """botocore's SigV4 signer over exactly the headers the client signed (botocore's own choice of headers, which
    leaves out e.g. ``User-Agent``, is the sender's business: the receiver takes ``SignedHeaders`` as given)."""

    def __init__(self, credentials, service: str, region: str, headers) -> None:
        super().__init__(credentials, service, region)
        self._headers = headers

    def headers_to_sign(self, request):
        return self._headers


def sign(method: str, url: str, headers: Mapping[str, str], body: bytes, credentials: LocalAwsCredentials, *,
         region: str = REGION, service: str = SERVICE) -> dict[str, str]:
    """``headers`` plus ``Authorization`` and ``X-Amz-Date`` signing a request to ``url`` (botocore's signer, as
    boto3 would). For clients of the local Invoke API that are not boto3 (``soorma local invoke`` uses httpx)."""
    request = AWSRequest(method=method.upper(), url=url, data=body, headers=dict(headers))
    SigV4Auth(Credentials(credentials.access_key_id, credentials.secret_access_key), service, region).add_auth(request)
    return dict(request.headers.items())


def browser_origin(headers: Mapping[str, str]) -> str | None:
    """Why a request looks browser-originated, or ``None``. A web page's ``fetch``/form POST always carries ``Origin``
    (for a cross-origin or any POST request) or ``Sec-Fetch-Site`` other than ``none`` (the Fetch Metadata request
    headers, https://www.w3.org/TR/fetch-metadata/); command-line clients and SDKs send neither. ``headers`` must be
    case-insensitive (Starlette's are)."""
    if headers.get("origin") is not None:
        return "Origin"
    site = headers.get("sec-fetch-site")
    if site is not None and site != "none":
        return f"Sec-Fetch-Site: {site}"
    return None
