"""Container start of the NATS bridge on a stock ``python:3.12-slim`` image (no image build, so no Docker).

ECS runs this file's text with ``python -c``: it reads the task role's credentials from the ECS credentials endpoint,
downloads the bridge bundle (a CDK S3 asset: the SDK, ``soorma.functions.bridge`` and the arm64 wheels of
``layers/bridge.txt``) with a SigV4-signed ``GET``, unpacks it and replaces itself with the bridge process.
Standard library only: the image has no AWS SDK.

Environment: ``SOORMA_BUNDLE_BUCKET``, ``SOORMA_BUNDLE_KEY``, ``AWS_REGION`` and ECS's
``AWS_CONTAINER_CREDENTIALS_RELATIVE_URI``.
"""

import datetime
import hashlib
import hmac
import io
import json
import os
import sys
import urllib.parse
import urllib.request
import zipfile

CREDENTIALS_HOST = "http://169.254.170.2"
TARGET = "/opt/soorma"


def _sign(key, msg):
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def signed_get_headers(host, path, region, creds, now=None, service="s3"):
    """Headers of a SigV4-signed GET ``https://host/path`` with an empty body (AWS Signature Version 4)."""
    now = now or datetime.datetime.now(datetime.UTC)
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    day = amz_date[:8]
    payload_hash = hashlib.sha256(b"").hexdigest()
    headers = {"host": host, "x-amz-content-sha256": payload_hash, "x-amz-date": amz_date}
    if creds.get("Token"):
        headers["x-amz-security-token"] = creds["Token"]
    signed = ";".join(sorted(headers))
    canonical = "\n".join([
        "GET", urllib.parse.quote(path, safe="/-_.~"), "",
        "".join(f"{k}:{headers[k].strip()}\n" for k in sorted(headers)), signed, payload_hash,
    ])
    scope = f"{day}/{region}/{service}/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = _sign(_sign(_sign(_sign(("AWS4" + creds["SecretAccessKey"]).encode(), day), region), service), "aws4_request")
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={creds['AccessKeyId']}/{scope}, SignedHeaders={signed}, Signature={signature}"
    )
    return headers


def main():
    relative = os.environ["AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"]
    with urllib.request.urlopen(CREDENTIALS_HOST + relative, timeout=10) as resp:
        creds = json.load(resp)
    region = os.environ["AWS_REGION"]
    bucket, key = os.environ["SOORMA_BUNDLE_BUCKET"], os.environ["SOORMA_BUNDLE_KEY"]
    host = f"{bucket}.s3.{region}.amazonaws.com"
    path = "/" + key
    request = urllib.request.Request(f"https://{host}{urllib.parse.quote(path, safe='/-_.~')}",
                                     headers=signed_get_headers(host, path, region, creds))
    with urllib.request.urlopen(request, timeout=120) as resp:
        data = resp.read()
    zipfile.ZipFile(io.BytesIO(data)).extractall(TARGET)
    os.environ["PYTHONPATH"] = TARGET + "/python:" + TARGET
    os.execv(sys.executable, [sys.executable, "-m", "soorma.infra.runtime.bridge_main"])


if __name__ == "__main__":
    main()
