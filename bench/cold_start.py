"""Cold start and package size of each platform function: prints one JSON line.

For each platform function (registry, memory, gateway, authorizer, tracker, migrate):

* ``zipped_mb`` — the deflate-zipped size of what Lambda gets: the function code plus its layers, as the CDK app
  builds them for arm64 / Python 3.12 (``soorma.infra.packaging``; cached under ``.soorma/cdk-cache``);
  ``unzipped_mb`` the same unpacked (Lambda's limit is 250 MB);
* ``import_ms`` / ``first_ms`` / ``cold_ms`` — in a fresh interpreter started with ``-S -B`` (no site-packages, no
  bytecode written) whose ``sys.path`` is only the function's code and layers (the same requirement files, built
  for this machine's interpreter), the time to import the handler module and the time of its first request against
  the real embedded PostgreSQL (pgvector) and NATS JetStream; ``cold_ms`` is their sum. Medians of ``--runs`` fresh
  interpreters each. Two variants: ``source`` (no ``.pyc`` anywhere: what the layers give Lambda today, since they
  are built without a CPython 3.12 to compile them and ``/opt`` is read-only) and ``bytecode`` (the same files
  precompiled with ``compileall``: what precompiled layers would give).

Targets (issue 6): under 15 MB zipped and under 500 ms per function; ``targets_met`` lists which met them. This machine
is x86_64 with CPython {host}; Lambda runs arm64 CPython 3.12, so the times are indicative, the sizes exact.

Usage: ``python bench/cold_start.py [--runs N] [--only registry,memory]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from soorma.infra import packaging

CHILD = r"""
import json, sys, time
spec = json.loads(sys.stdin.read())
sys.path[:0] = spec["path"]
t0 = time.perf_counter()
import importlib
module_name, _, attr = spec["handler"].rpartition(".")
handler = getattr(importlib.import_module(module_name), attr)
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
print(json.dumps({"import_ms": (t1 - t0) * 1000, "first_ms": (t2 - t1) * 1000, "status": status, "ok": ok,
                  "site_packages_used": any("site-packages" in (getattr(m, "__file__", "") or "")
                                            for m in list(sys.modules.values()))}))
"""


def _size(folders: list[Path]) -> tuple[int, int]:
    with tempfile.TemporaryDirectory() as tmp:
        merged = Path(tmp) / "all"
        for folder in folders:
            packaging.copy_into(folder, merged)
        return packaging.zipped_size(merged), packaging.unzipped_size(merged)


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
        "authorizer": {"version": "2.0", "type": "REQUEST", "routeKey": "GET /v1/agents", "rawPath": "/v1/agents",
                       "headers": {"authorization": f"Bearer {key}"}, "requestContext": {"http": {"method": "GET"}}},
        "tracker": {"Records": [{"messageId": "m1", "receiptHandle": "r1", "body": json.dumps(envelope),
                                 "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "0"},
                                 "messageAttributes": {}, "eventSource": "soorma:nats", "eventSourceARN": "bench"}]},
        "migrate": {"RequestType": "Update", "PhysicalResourceId": "soorma-migrations"},
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", default="")
    args = parser.parse_args()
    names = [n for n in packaging.PLATFORM_PACKAGES if not args.only or n in args.only.split(",")]
    log = lambda msg: print(msg, file=sys.stderr)  # noqa: E731

    # Sizes: the arm64 artifacts the CDK app deploys.
    lam = packaging.Target.lambda_arm64()
    code = packaging.build_code(log=log)
    sizes = {}
    for name in names:
        layers = [packaging.build_layer(packaging.LAYERS[n], target=lam, log=log)
                  for n in packaging.PLATFORM_PACKAGES[name].layers]
        zipped, unzipped = _size([code, *layers])
        sizes[name] = {"zipped_mb": round(zipped / 1e6, 2), "unzipped_mb": round(unzipped / 1e6, 1)}

    # Cold starts: the same requirement files for this interpreter, against real PostgreSQL and NATS.
    host = packaging.Target.host()
    host_layers = {n: packaging.build_layer(packaging.LAYERS[n], target=host, log=log)
                   for n in ("platform", "embeddings")}
    from soorma.functions.gateway.keys import create_api_key
    from soorma.functions.migrate import apply
    from soorma.local.nats import EmbeddedNats
    from soorma.local.postgres import EmbeddedPostgres, app_dsn

    import psycopg
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        nats_port = s.getsockname()[1]
    work = Path(tempfile.mkdtemp(prefix="soorma-cold-"))
    pg = EmbeddedPostgres(work / "pg", cleanup="delete")
    nats = EmbeddedNats(work / "nats", port=nats_port)
    owner = pg.start()
    nats_url = nats.start()
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
            "SOORMA_EMBEDDING_PROVIDER": "local", "HF_HUB_OFFLINE": "1",
            "SOORMA_EMBEDDING_TOKENIZER_PATH": str(host_layers["embeddings"] / packaging.TOKENIZER_LAYER_PATH),
            "POWERTOOLS_SERVICE_NAME": "bench", "AWS_DEFAULT_REGION": "us-east-1",
        }
        # Private copies (hard links) of the code and layers, so bytecode never lands in the build cache.
        trees = {}
        for variant in ("source", "bytecode"):
            root = work / variant
            trees[variant] = {"code": root / "code", **{n: root / n for n in host_layers}}
            packaging.copy_into(code, trees[variant]["code"])
            for n, folder in host_layers.items():
                packaging.copy_into(folder, trees[variant][n])
            for folder in trees[variant].values():
                for cache in list(folder.rglob("__pycache__")):
                    import shutil

                    shutil.rmtree(cache)
        for folder in trees["bytecode"].values():
            subprocess.run([sys.executable, "-m", "compileall", "-q", "-j", "0", str(folder)], check=False,
                           capture_output=True)
        results = {name: dict(sizes[name]) for name in names}
        for variant in ("source", "bytecode"):
            for name in names:
                package = packaging.PLATFORM_PACKAGES[name]
                tree = trees[variant]
                path = [str(tree["code"])] + [str(tree[n] / "python") for n in package.layers]
                samples = []
                for _ in range(args.runs):
                    spec = {"path": path, "handler": package.handler, "event": events[name], "name": name}
                    proc = subprocess.run([sys.executable, "-S", "-B", "-c", CHILD], input=json.dumps(spec),
                                          env=env, capture_output=True, text=True, timeout=120)
                    if proc.returncode != 0:
                        raise SystemExit(f"{name}: {proc.stderr[-3000:]}")
                    samples.append(json.loads(proc.stdout.strip().splitlines()[-1]))
                imp = statistics.median(s["import_ms"] for s in samples)
                first = statistics.median(s["first_ms"] for s in samples)
                results[name][variant] = {
                    "import_ms": round(imp, 1), "first_ms": round(first, 1), "cold_ms": round(imp + first, 1),
                    "answered": all(s["ok"] for s in samples), "status": samples[-1]["status"],
                    "isolated": not any(s["site_packages_used"] for s in samples),
                }
    finally:
        nats.stop()
        pg.stop()
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    met = {n: {"size": r["zipped_mb"] < 15,
               **{f"cold_{v}": r[v]["cold_ms"] < 500 and r[v]["answered"] for v in ("source", "bytecode")}}
           for n, r in results.items()}
    print(json.dumps({
        "bench": "cold_start",
        "host": f"{platform.machine()} CPython {platform.python_version()}",
        "deployed_as": "arm64 CPython 3.12 (sizes of the arm64 artifacts)",
        "runs": args.runs,
        "functions": results,
        "targets": {"zipped_mb": 15, "cold_ms": 500},
        "median_cold_ms": {v: round(statistics.median(r[v]["cold_ms"] for r in results.values()), 1)
                           for v in ("source", "bytecode")},
        "targets_met": met,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }))


if __name__ == "__main__":
    main()
