"""Finding 2 of issue 12: the local Lambda Invoke API was open to any local process.

Attacks against a real ``soorma local up`` stack: ListFunctions read every function's secrets, a hand-made
``requestContext.authorizer.lambda`` sent straight to ``soorma-gateway`` was trusted (a forged platform admin onboarded
a tenant), and a ``text/plain`` POST (which a web page may send without a CORS preflight) did the same. Each is now
refused, next to the legitimate use (boto3 signing with the stack's access key, ``soorma local invoke``) still
working and listings holding no secret value.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from soorma.identity import Identity, platform_admin_tenant
from soorma.testing.events import http_api_event

from .conftest import ECHO, known_secrets, lambda_client

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

GATEWAY = "soorma-gateway"


def _forged_onboarding(tenant_id: str) -> bytes:
    """What the attack sent: the gateway's own event for ``POST /v1/tenants`` with a platform admin's identity as
    if the authorizer had vouched for it."""
    admin = platform_admin_tenant()
    event = http_api_event("POST", "/v1/tenants", body={"platform_tenant_id": tenant_id, "name": "evil",
                                                        "admin_user_id": "mallory"},
                           identity=Identity(admin, admin, "admin", "admin", "admin"))
    return json.dumps(event).encode()


def _invocations(stack, function: str) -> str:
    return f"{stack['credentials']['api_url']}/2015-03-31/functions/{function}/invocations"


def _tenant_exists(stack, tenant_id: str) -> bool:
    answer = httpx.get(f"{stack['credentials']['api_url']}/v1/tenants/{tenant_id}", timeout=30,
                       headers={"Authorization": f"Bearer {stack['credentials']['admin_api_key']}"})
    assert answer.status_code in (200, 404), answer.text
    return answer.status_code == 200


def _signed(stack, method: str, url: str, body: bytes, *, at: datetime | None = None,
            secret: str | None = None, headers: dict[str, str] | None = None) -> dict[str, str]:
    """Headers of a SigV4 request signed by botocore at time ``at`` (default now)."""
    secrets = stack["secrets"]
    request = AWSRequest(method=method, url=url, data=body, headers=dict(headers or {}))
    signer = SigV4Auth(Credentials(secrets["aws_access_key_id"], secret or secrets["aws_secret_access_key"]),
                       "lambda", "us-east-1")
    if at is None:
        signer.add_auth(request)
    else:  # botocore always signs "now": a signature of the past is computed with its own parts
        stamp = at.strftime("%Y%m%dT%H%M%SZ")
        request.context["timestamp"] = stamp
        request.headers["X-Amz-Date"] = stamp
        canonical = signer.canonical_request(request)
        signature = signer.signature(signer.string_to_sign(request, canonical), request)
        request.headers["Authorization"] = (f"AWS4-HMAC-SHA256 Credential={signer.scope(request)}, "
                                            f"SignedHeaders={signer.signed_headers(signer.headers_to_sign(request))}, "
                                            f"Signature={signature}")
    return dict(request.headers.items())


def test_unsigned_listing_is_refused_and_the_signed_one_shows_no_secret(stack):
    url = f"{stack['credentials']['api_url']}/2015-03-31/functions/"
    for path in ("", f"{ECHO}", f"{ECHO}/configuration"):
        answer = httpx.get(url + path, timeout=30)
        assert answer.status_code == 403, answer.text
        assert answer.headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"
        assert "SOORMA" not in answer.text

    client = lambda_client(stack)
    listed = client.list_functions()["Functions"]
    names = {f["FunctionName"] for f in listed}
    assert {GATEWAY, "soorma-authorizer", ECHO} <= names
    one = client.get_function(FunctionName=ECHO)["Configuration"]
    variables = one["Environment"]["Variables"]
    assert "SOORMA_API_KEY" in variables and set(variables.values()) == {"**redacted**"}  # names only
    text = json.dumps([listed, one])
    for what, value in known_secrets(stack).items():
        assert value not in text, f"{what} is in a listing"


def test_wrong_key_wrong_secret_and_a_replayed_signature_are_refused(stack):
    url = _invocations(stack, ECHO)
    body = b'{"probe": 1}'
    with pytest.raises(ClientError) as info:
        lambda_client(stack, secret="not-the-secret").invoke(FunctionName=ECHO, Payload=body)
    assert info.value.response["Error"]["Code"] == "InvalidSignatureException"
    with pytest.raises(ClientError) as info:
        lambda_client(stack, key_id="AKIAIOSFODNN7EXAMPLE", secret="x").invoke(FunctionName=ECHO, Payload=body)
    assert info.value.response["Error"]["Code"] == "UnrecognizedClientException"

    # a correctly signed request from 10 minutes ago (a captured one, replayed) is refused
    old = _signed(stack, "POST", url, body, at=datetime.now(UTC) - timedelta(minutes=10))
    answer = httpx.post(url, content=body, headers=old, timeout=30)
    assert answer.status_code == 403 and "Signature expired" in answer.text
    # a valid signature over another body: the body is part of what is signed
    fresh = _signed(stack, "POST", url, body)
    answer = httpx.post(url, content=b'{"probe": 2}', headers=fresh, timeout=30)
    assert answer.status_code == 403 and answer.headers["x-amzn-ErrorType"] == "InvalidSignatureException"


def test_forged_authorizer_context_does_not_onboard_a_tenant(stack):
    tenant = "pt_forged_unsigned"
    url = _invocations(stack, GATEWAY)
    payload = _forged_onboarding(tenant)
    # as the review did it: a plain POST, as JSON and as text/plain (no CORS preflight for a web page)
    for content_type in ("application/json", "text/plain"):
        answer = httpx.post(url, content=payload, headers={"Content-Type": content_type}, timeout=30)
        assert answer.status_code == 403, answer.text
        assert "admin_api_key" not in answer.text
    # the same from a web page, even if it somehow carried a valid signature
    for browser in ({"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
        headers = _signed(stack, "POST", url, payload, headers={"Content-Type": "text/plain", **browser})
        answer = httpx.post(url, content=payload, headers=headers, timeout=30)
        assert answer.status_code == 403 and answer.headers["x-amzn-ErrorType"] == "AccessDeniedException"
    assert not _tenant_exists(stack, tenant)


def test_browser_requests_to_the_control_routes_are_refused(stack):
    base = stack["credentials"]["api_url"]
    token = {"x-soorma-control-token": stack["secrets"]["control_token"]}
    assert httpx.get(f"{base}/_local/status", headers=token, timeout=30).status_code == 200
    for browser in ({"Origin": "http://localhost:3000"}, {"Sec-Fetch-Site": "same-site"}):
        answer = httpx.get(f"{base}/_local/status", headers={**token, **browser}, timeout=30)
        assert answer.status_code == 403, answer.text
        answer = httpx.put(f"{base}/_local/functions/evil", headers={"Content-Type": "text/plain", **browser},
                           content=b'{"handler": "x.y", "code_dir": "/tmp", "platform_tenant_id": "local", '
                                   b'"agent_name": "evil"}', timeout=30)
        assert answer.status_code == 403
    # a typed-in address (Sec-Fetch-Site: none) is not a cross-site request, but still needs the credentials
    answer = httpx.get(f"{base}/2015-03-31/functions/", headers={"Sec-Fetch-Site": "none"}, timeout=30)
    assert answer.status_code == 403 and answer.headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"


def test_the_signed_boto3_client_and_the_cli_still_invoke(stack):
    client = lambda_client(stack)
    out = client.invoke(FunctionName=ECHO, Payload=b'{"hello": "world"}')
    assert out["StatusCode"] == 200 and "FunctionError" not in out
    assert json.loads(out["Payload"].read())["event"] == {"hello": "world"}
    out = client.invoke(FunctionName=f"arn:aws:lambda:us-east-1:000000000000:function:{ECHO}", Payload=b"{}")
    assert json.loads(out["Payload"].read())["event"] == {}
    assert client.invoke(FunctionName=ECHO, InvocationType="Event", Payload=b"{}")["StatusCode"] == 202

    done = stack["run"]("local", "invoke", ECHO, "--payload", '{"via": "cli"}')
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["event"] == {"via": "cli"}
    up = stack["up"].stdout
    assert stack["secrets"]["aws_access_key_id"] in up  # `up` says which key and where its secret is ...
    assert stack["secrets"]["aws_secret_access_key"] not in up  # ... never the secret itself


def test_a_body_of_unannounced_length_is_refused_before_it_is_read(stack):
    """A chunked body (no Content-Length) would be read whole before its signature is checked, however large: it is
    refused with 411 up front, signed or not, and the function is not invoked; a signed request of announced length
    still invokes."""
    url = _invocations(stack, ECHO)
    body = _forged_onboarding("pt_chunked")

    def chunks():
        yield body  # a generator body: httpx sends it with Transfer-Encoding: chunked

    for headers in ({}, _signed(stack, "POST", url, body)):
        headers = {k: v for k, v in headers.items() if k.lower() != "content-length"}
        answer = httpx.post(url, content=chunks(), headers=headers, timeout=30)
        assert answer.status_code == 411, answer.text
    out = lambda_client(stack).invoke(FunctionName=ECHO, Payload=b'{"announced": 1}')
    assert json.loads(out["Payload"].read())["event"] == {"announced": 1}
