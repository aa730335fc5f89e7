"""Cold start and package size of each platform function: prints one JSON line.

It measures the configuration ``cdk deploy`` deploys by default (``soorma.infra.packaging.platform_packages()``):
transport ``sqs`` (the gateway publishes to SNS) and the memory function embedding with Amazon Bedrock (Titan Text
Embeddings v2, 1024 dimensions; layers ``platform`` + ``vector``, no model layer). ``--embeddings local`` and
``--transport nats`` measure the other configurations. AWS is never called: a fake endpoint on 127.0.0.1 answers
Bedrock's ``InvokeModel`` and SNS's ``Publish`` (boto3 reaches it through ``AWS_ENDPOINT_URL_*``), so the times
include importing boto3 and building its clients, as in Lambda, but not the network round trip to AWS.

For each platform function (registry, memory, gateway, protocols, identity, authorizer, tracker, migrate; the
registrar custom resource only has its size measured):

* ``zipped_mb`` — the deflate-zipped size of what Lambda gets: the function code plus its layers, as the CDK app
  builds them for arm64 / Python 3.12 on this machine (``soorma.infra.packaging``; cached under
  ``.soorma/cdk-cache``), so with ``.pyc`` files when ``deployed_variant`` is ``bytecode``; ``unzipped_mb`` the same
  unpacked (Lambda's limit is 250 MB);
* ``secrets_ms`` / ``import_ms`` / ``first_ms`` / ``cold_ms`` — in a fresh interpreter started with ``-S -B`` (no
  site-packages, no bytecode written) whose ``sys.path`` is only the function's code and layers (the same
  requirement files, built for this machine's interpreter) and what the Lambda runtime ships (boto3 and its
  dependencies): the time to read the function's secrets as ``soorma.infra.runtime.boot`` does in the init phase
  (one ``GET`` per secret, :data:`FUNCTION_SECRETS`, from the Parameters and Secrets Lambda Extension, which the
  CDK app gives every function; a fake answers here, in another process as the extension is), to
  import the handler module, and of its first request against the real embedded PostgreSQL (pgvector) and NATS
  JetStream; ``cold_ms`` is their sum. Medians of ``--runs`` fresh interpreters each. Variants: ``source`` (no
  ``.pyc`` anywhere: what Lambda gets from a deploy without a CPython 3.12, every cold start compiling what it
  imports since ``/opt`` is read-only), ``bytecode`` (the same files precompiled as a deploy with one does:
  ``packaging.compile_tree``, ``compileall --invalidation-mode unchecked-hash``, here with this machine's
  interpreter) and, for the functions ``SoormaPlatform(snap_start=True)`` publishes with Lambda SnapStart
  (:data:`soorma.infra.packaging.SNAP_START_FUNCTIONS`), ``snapstart``: the bytecode tree with the init phase run
  as SnapStart runs it before the snapshot (``AWS_LAMBDA_INITIALIZATION_TYPE=snap-start``: secrets read, handler
  imported, the app built), then only the first request timed; its ``cold_ms`` is what a restored environment
  still spends in our code, to which Lambda adds the restore itself, which cannot be measured off AWS.
* ``deployed_variant`` — which of the two a deploy from this machine would ship: ``bytecode`` when the bundler finds
  a CPython of the Lambda runtime's version (``$SOORMA_LAMBDA_PYTHON``, else ``python3.12`` on ``PATH``, in pyenv,
  uv or a system prefix: ``packaging.lambda_bytecode``; ``deployed_bytecode_python`` names it), else ``source``.

``cpu_reference_ms`` is the time of a fixed pure-Python loop on this machine at the time of the run
(:func:`cpu_reference_ms`): compare cold starts of two runs relative to it.

Targets (issue 6): under 15 MB zipped and under 500 ms per function; ``targets_met`` lists which met them. This machine
is x86_64 with CPython {host}; Lambda runs arm64 CPython 3.12, so the times are indicative, the sizes exact.

Usage: ``python bench/cold_start.py [--runs N] [--only registry,memory] [--embeddings bedrock|local]
[--transport sqs|nats]``
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from soorma.infra import packaging

CHILD = r"""
import json, sys, time
spec = json.loads(sys.stdin.read())
sys.path[:0] = spec["path"]
t_secrets = time.perf_counter()
if spec["secret_arns"]:  # what soorma.infra.runtime.boot does first in Lambda's init phase (a throwaway mapping:
    from soorma.infra.runtime.boot import resolve_environment  # the bench's own DSNs stay in os.environ)
    resolve_environment(dict(spec["secret_arns"]))
t0 = time.perf_counter()
import importlib
module_name, _, attr = spec["handler"].rpartition(".")
handler = getattr(importlib.import_module(module_name), attr)
prewarmed = False
if spec.get("snapstart"):  # the rest of the init SnapStart runs before its snapshot (soorma.infra.runtime.boot)
    from soorma.infra.runtime.boot import prepare_snapshot
    prewarmed = prepare_snapshot(handler)
t1 = time.perf_counter()
class Context:
    function_name = spec["name"]; aws_request_id = "bench"; memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:local:000000000000:function:" + spec["name"]
    def get_remaining_time_in_millis(self): return 30000
result = handler(spec["event"], Context())
t2 = time.perf_counter()
status = result.get("statusCode") if isinstance(result, dict) else None
ok = (status is None or status < 400) and not (isinstance(result, dict) and result.get("batchItemFailures")) \
     and not (isinstance(result, dict) and result.get("isAuthorized") is False)
print(json.dumps({"secrets_ms": (t0 - t_secrets) * 1000, "import_ms": (t1 - t0) * 1000,
                  "first_ms": (t2 - t1) * 1000, "status": status, "ok": ok, "prewarmed": prewarmed,
                  "site_packages_used": any("site-packages" in (getattr(m, "__file__", "") or "")
                                            for m in list(sys.modules.values()))}))
"""


def _size(folders: list[Path]) -> tuple[int, int]:
    with tempfile.TemporaryDirectory() as tmp:
        merged = Path(tmp) / "all"
        for folder in folders:
            packaging.copy_into(folder, merged)
        return packaging.zipped_size(merged), packaging.unzipped_size(merged)


# What the Lambda Python runtime ships besides the standard library (boto3 and its dependencies): copied from this
# interpreter's environment into the child's path, after the layers, as Lambda puts them.
LAMBDA_RUNTIME_MODULES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six")


def _lambda_runtime(dest: Path) -> Path:
    """boto3 and its dependencies, precompiled (Lambda's runtime ships them with bytecode)."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in LAMBDA_RUNTIME_MODULES:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            raise SystemExit(f"{name} is not installed here (pip install boto3)")
        origin = Path(spec.origin)
        if origin.name == "__init__.py":
            shutil.copytree(origin.parent, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(origin, dest / origin.name)
    subprocess.run([sys.executable, "-m", "compileall", "-q", "-j", "0", str(dest)], check=False, capture_output=True)
    return dest


def _secret_answer(arn: str) -> bytes:
    """``GetSecretValue``'s JSON (the extension answers the same): database credentials, or the pepper for a secret
    whose ARN says so."""
    value = ("bench-pepper" if "pepper" in arn else
             json.dumps({"username": "soorma_app", "password": "bench", "host": "127.0.0.1", "port": 5432,
                         "dbname": "soorma"}))
    return json.dumps({"ARN": arn, "Name": arn.rsplit(":", 1)[-1], "SecretString": value, "VersionId": "v1",
                       "VersionStages": ["AWSCURRENT"]}).encode()


class FakeAws(BaseHTTPRequestHandler):
    """Bedrock Runtime ``InvokeModel`` (Titan v2: a unit vector of the asked width), SNS ``Publish``, Secrets
    Manager ``GetSecretValue`` and the Parameters and Secrets Lambda Extension's ``GET /secretsmanager/get``."""

    def log_message(self, *args) -> None:  # quiet
        pass

    def do_GET(self) -> None:  # noqa: N802 - the Parameters and Secrets Lambda Extension's interface
        from urllib.parse import parse_qs, urlsplit

        url = urlsplit(self.path)
        arn = parse_qs(url.query).get("secretId", [""])[0]
        if url.path != "/secretsmanager/get" or not arn or "x-aws-parameters-secrets-token" not in self.headers:
            self.send_error(400)
            return
        self._answer(_secret_answer(arn), "application/json")

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        if self.headers.get("x-amz-target") == "secretsmanager.GetSecretValue":
            answer = _secret_answer(json.loads(body or b"{}").get("SecretId", ""))
            content_type = "application/x-amz-json-1.1"
        elif self.path.startswith("/model/"):
            request = json.loads(body or b"{}")
            dims = int(request.get("dimensions") or 1024)
            seed = hashlib.sha256(str(request.get("inputText", "")).encode()).digest()
            raw = [((seed[i % 32] + i) % 251) / 251 - 0.5 for i in range(dims)]
            norm = math.sqrt(sum(v * v for v in raw)) or 1.0
            answer = json.dumps({"embedding": [v / norm for v in raw],
                                 "inputTextTokenCount": len(str(request.get("inputText", "")).split())}).encode()
            content_type = "application/json"
        else:  # SNS (query protocol)
            answer = (b'<PublishResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><PublishResult>'
                      b"<MessageId>bench-1</MessageId></PublishResult><ResponseMetadata><RequestId>r</RequestId>"
                      b"</ResponseMetadata></PublishResponse>")
            content_type = "text/xml"
        self._answer(answer, content_type)

    def _answer(self, body: bytes, content_type: str) -> None:
        self.send_response(200)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


VARIANTS = ("source", "bytecode", "snapstart")

# The secrets each function reads at init (soorma.infra.runtime.boot.resolve_environment), as infra/platform.py
# configures them: variable -> ARN. The fake extension answers them, so the reads' cost in our code is in every cold
# start, as in Lambda (less the extension's own first GetSecretValue round trips, which run in its process).
_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:"
_APP = {"SOORMA_APP_DB_SECRET_ARN": _ARN + "soorma-app"}
_PEPPER = {"SOORMA_API_KEY_PEPPER_SECRET_ARN": _ARN + "soorma-pepper"}
FUNCTION_SECRETS = {
    "registry": _APP, "memory": _APP, "tracker": _APP, "gateway": {**_APP, **_PEPPER}, "protocols": {**_APP, **_PEPPER},
    "identity": {**_APP, **_PEPPER}, "authorizer": {**_APP, **_PEPPER}, "migrate": {**_APP, "SOORMA_OWNER_DB_SECRET_ARN": _ARN + "soorma-owner"},
}


def _events(identity: dict, key: str, goal_type: str) -> dict[str, dict]:
    from soorma.local.apigw import http_event

    envelope = {
        "id": "bench-event-1", "source": "bench", "specversion": "1.0", "type": "bench.happened",
        "topic": "business-facts", "data": {}, "platform_tenant_id": identity["platform_tenant_id"],
        "tenant_id": identity["service_tenant_id"], "user_id": identity["service_user_id"],
    }
    return {
        "registry": http_event("GET", "/v1/agents", authorizer=identity),
        "memory": http_event("POST", "/v1/memory/semantic", authorizer=identity,
                             headers={"content-type": "application/json"},
                             body=json.dumps({"content": "Use gzip.open to read a gzip-compressed file."}).encode()),
        "gateway": http_event("POST", "/v1/goals", authorizer=identity, headers={"content-type": "application/json"},
                              body=json.dumps({"goal_type": goal_type, "data": {"q": 1}}).encode()),
        # the chat API's model list: the protocols app built and one database read; the A2A and MCP SDKs are imported
        # by the first request of their own protocol, not here
        "protocols": http_event("GET", "/v1/models", authorizer=identity),
        # an API key exchanged for a token (the route has no authorizer: the function verifies the key, reads or
        # creates the signing key and signs with it)
        "identity": http_event("POST", "/v1/identity/tokens/exchange", headers={"authorization": f"Bearer {key}"}),
        "authorizer": {"version": "2.0", "type": "REQUEST", "routeKey": "GET /v1/agents", "rawPath": "/v1/agents",
                       "headers": {"authorization": f"Bearer {key}"}, "requestContext": {"http": {"method": "GET"}}},
        "tracker": {"Records": [{"messageId": "m1", "receiptHandle": "r1", "body": json.dumps(envelope),
                                 "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "0"},
                                 "messageAttributes": {}, "eventSource": "soorma:nats", "eventSourceARN": "bench"}]},
        "migrate": {"RequestType": "Update", "PhysicalResourceId": "soorma-migrations"},
    }


def cpu_reference_ms(runs: int = 5) -> float:
    """Median wall time (ms) of a fixed pure-Python loop (3,000,000 additions): how fast this machine runs Python
    today, printed beside the cold starts so runs on different machines or days can be compared (a cold start is
    mostly CPU-bound bytecode execution: pydantic building model schemas, modules executing)."""
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        total = 0
        for i in range(3_000_000):
            total += i
        samples.append((time.perf_counter() - start) * 1000)
    return round(statistics.median(samples), 1)


def _import_profile(stderr: str, top: int = 12) -> dict[str, float]:
    """Self time (ms) per top-level package from ``-X importtime`` lines (``import time: self | cumulative | name``),
    the ``top`` largest, plus ``(all)``."""
    totals: dict[str, float] = {}
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, _cumulative, name = line.removeprefix("import time:").split("|")
        root = name.strip().split(".")[0]
        totals[root] = totals.get(root, 0.0) + int(self_us) / 1000
    ranked = dict(sorted(totals.items(), key=lambda kv: -kv[1])[:top])
    return {k: round(v, 1) for k, v in {**ranked, "(all)": sum(totals.values())}.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", default="")
    parser.add_argument("--embeddings", default=packaging.DEFAULT_EMBEDDING_PROVIDER,
                        choices=sorted(packaging.EMBEDDING_PROVIDERS))
    parser.add_argument("--transport", default="sqs", choices=sorted(packaging.GATEWAY_HANDLERS))
    parser.add_argument("--importtime", action="store_true",
                        help="also run each function once with -X importtime and print, per function and variant, "
                             "the top-level packages whose imports took longest (self time, ms)")
    args = parser.parse_args()
    packages = packaging.platform_packages(args.embeddings, args.transport)
    names = [n for n in packages if not args.only or n in args.only.split(",")]
    timed = [n for n in names if n != "registrar"]  # a deploy-time custom resource: size only
    log = lambda msg: print(msg, file=sys.stderr)  # noqa: E731

    # Sizes: the arm64 artifacts the CDK app deploys (precompiled when this machine has the runtime's CPython).
    lam = packaging.Target.lambda_arm64()
    deployed = packaging.lambda_bytecode(log=log)
    code = packaging.build_code(log=log, bytecode=deployed)
    sizes = {}
    for name in names:
        layers = [packaging.build_layer(packaging.LAYERS[n], target=lam, log=log, bytecode=deployed)
                  for n in packages[name].layers]
        zipped, unzipped = _size([code, *layers])
        sizes[name] = {"layers": packages[name].layers, "zipped_mb": round(zipped / 1e6, 2),
                       "unzipped_mb": round(unzipped / 1e6, 1)}

    # Cold starts: the same requirement files for this interpreter, against real PostgreSQL and NATS.
    host = packaging.Target.host()
    host_layers = {n: packaging.build_layer(packaging.LAYERS[n], target=host, log=log)
                   for n in sorted({layer for name in timed for layer in packages[name].layers})}
    dims = str(packaging.EMBEDDING_PROVIDERS[args.embeddings]["dimensions"])
    os.environ["SOORMA_EMBEDDING_DIMENSIONS"] = dims  # the migrations size the vector columns with it
    import socket

    import psycopg

    from soorma.functions.gateway.keys import create_api_key
    from soorma.functions.migrate import apply
    from soorma.local.nats import EmbeddedNats
    from soorma.local.postgres import EmbeddedPostgres, app_dsn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        nats_port = s.getsockname()[1]
    work = Path(tempfile.mkdtemp(prefix="soorma-cold-"))
    pg = EmbeddedPostgres(work / "pg", cleanup="delete")
    nats = EmbeddedNats(work / "nats", port=nats_port)
    owner = pg.start()
    nats_url = nats.start()
    fake_aws = ThreadingHTTPServer(("127.0.0.1", 0), FakeAws)
    threading.Thread(target=fake_aws.serve_forever, daemon=True).start()
    aws_url = f"http://127.0.0.1:{fake_aws.server_address[1]}"
    runtime = _lambda_runtime(work / "lambda-runtime")
    try:
        apply(owner)
        pepper = "bench-pepper"
        identity = {"platform_tenant_id": "bench", "service_tenant_id": "bench", "service_user_id": "dev",
                    "principal_id": "pr_bench", "role": "developer"}
        with psycopg.connect(owner, autocommit=True) as conn:
            key = create_api_key(conn, platform_tenant_id="bench", service_tenant_id="bench", service_user_id="dev",
                                 role="developer", pepper=pepper)
        events = _events(identity, key, "bench.goal")
        env = {
            "PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp"),
            "SOORMA_APP_DATABASE_URL": app_dsn(owner), "SOORMA_DATABASE_URL": owner,
            "SOORMA_NATS_URL": nats_url, "SOORMA_API_KEY_PEPPER": pepper,
            "SOORMA_TRANSPORT": args.transport,
            "SOORMA_EVENT_TRANSPORT": "sns" if args.transport == "sqs" else "nats",
            "SOORMA_EVENTS_TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:bench-events",
            "SOORMA_EMBEDDING_PROVIDER": args.embeddings, "SOORMA_EMBEDDING_DIMENSIONS": dims,
            "POWERTOOLS_SERVICE_NAME": "bench", "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": aws_url, "AWS_ENDPOINT_URL_SNS": aws_url,
            "AWS_ENDPOINT_URL_SECRETS_MANAGER": aws_url, "AWS_SESSION_TOKEN": "bench",
            # As the CDK app configures every function: secrets through the extension (here the fake's port).
            "PARAMETERS_SECRETS_EXTENSION_HTTP_PORT": str(fake_aws.server_address[1]),
        }
        if args.embeddings == "bedrock":
            env["SOORMA_BEDROCK_EMBEDDING_MODEL"] = packaging.BEDROCK_EMBEDDING_MODEL
        else:
            env.update({"HF_HUB_OFFLINE": "1", "SOORMA_EMBEDDING_TOKENIZER_PATH": str(
                host_layers["embeddings"] / packaging.TOKENIZER_LAYER_PATH)})
        # Private copies (hard links) of the code and layers, so bytecode never lands in the build cache; the code is
        # the source bundle (the Lambda one may hold cpython-312 .pyc, which this interpreter would ignore).
        source_code = packaging.build_code(log=log, bytecode=None)
        trees = {}
        for variant in ("source", "bytecode"):
            root = work / variant
            trees[variant] = {"code": root / "code", **{n: root / n for n in host_layers}}
            packaging.copy_into(source_code, trees[variant]["code"])
            for n, folder in host_layers.items():
                packaging.copy_into(folder, trees[variant][n])
            for folder in trees[variant].values():
                for cache in list(folder.rglob("__pycache__")):
                    shutil.rmtree(cache)
        host_version = f"{sys.version_info.major}.{sys.version_info.minor}"
        host_bytecode, why = packaging.probe_python(sys.executable, host_version)
        if host_bytecode is None:
            raise SystemExit(why)
        for folder in trees["bytecode"].values():  # as a deploy compiles (unchecked-hash), for this interpreter
            packaging.compile_tree(folder, host_bytecode, log)
        results = {name: dict(sizes[name]) for name in names}
        runs = [(variant, name) for variant in ("source", "bytecode") for name in timed]
        runs += [("snapstart", name) for name in timed if name in packaging.SNAP_START_FUNCTIONS]
        for variant, name in runs:
            package = packages[name]
            tree = trees["bytecode" if variant == "snapstart" else variant]
            path = ([str(tree["code"])] + [str(tree[n] / "python") for n in package.layers]
                    + [str(runtime)])
            spec = {"path": path, "handler": package.handler, "event": events[name], "name": name,
                    "secret_arns": FUNCTION_SECRETS.get(name, {}), "snapstart": variant == "snapstart"}

            def child(*flags: str, spec: dict = spec) -> subprocess.CompletedProcess:
                return subprocess.run([sys.executable, "-S", "-B", *flags, "-c", CHILD], input=json.dumps(spec),
                                      env=env, capture_output=True, text=True, timeout=120)

            samples = []
            for _ in range(args.runs):
                proc = child()
                if proc.returncode != 0:
                    raise SystemExit(f"{name}: {proc.stderr[-3000:]}")
                samples.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            if args.importtime:
                results[name].setdefault("import_profile", {})[variant] = _import_profile(
                    child("-X", "importtime").stderr)
            secrets = statistics.median(s["secrets_ms"] for s in samples)
            imp = statistics.median(s["import_ms"] for s in samples)
            first = statistics.median(s["first_ms"] for s in samples)
            # Under SnapStart the secrets and the import (and the prewarm) ran before the snapshot: a restored
            # environment's cold start in our code is its first request.
            cold = first if variant == "snapstart" else secrets + imp + first
            results[name][variant] = {
                "secrets_ms": round(secrets, 1), "import_ms": round(imp, 1), "first_ms": round(first, 1),
                "cold_ms": round(cold, 1),
                "answered": all(s["ok"] and (s["prewarmed"] or variant != "snapstart") for s in samples),
                "status": samples[-1]["status"],
                "isolated": not any(s["site_packages_used"] for s in samples),
            }
    finally:
        fake_aws.shutdown()
        nats.stop()
        pg.stop()
        shutil.rmtree(work, ignore_errors=True)
    met = {n: {"size": r["zipped_mb"] < 15,
               **{f"cold_{v}": r[v]["cold_ms"] < 500 and r[v]["answered"] for v in VARIANTS if v in r}}
           for n, r in results.items()}
    print(json.dumps({
        "bench": "cold_start",
        "host": f"{platform.machine()} CPython {platform.python_version()}",
        "cpu_reference_ms": cpu_reference_ms(),
        "deployed_as": f"arm64 CPython {packaging.LAMBDA_PYTHON} (sizes of the arm64 artifacts)",
        "deployed_variant": "source" if deployed is None else "bytecode",
        "deployed_bytecode_python": (None if deployed is None
                                     else f"{deployed.python} (CPython {deployed.full_version})"),
        "configuration": {"transport": args.transport, "embeddings": args.embeddings,
                          "embedding_dimensions": int(dims)},
        "runs": args.runs,
        "functions": results,
        "targets": {"zipped_mb": 15, "cold_ms": 500},
        "median_cold_ms": {v: round(statistics.median(r[v]["cold_ms"] for r in results.values() if v in r), 1)
                           for v in VARIANTS if any(v in r for r in results.values())},
        "targets_met": met,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }))


if __name__ == "__main__":
    main()
