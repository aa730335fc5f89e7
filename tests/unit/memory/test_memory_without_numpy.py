"""The memory function runs without numpy (and without pgvector-python) unless the local model is configured.

The default AWS package of the memory function has no numpy (``soorma.infra.packaging``: layer ``platform`` only),
so this runs the real handler in a fresh interpreter whose ``sys.meta_path`` refuses ``numpy`` and ``pgvector``,
under the ``bedrock`` provider pointed (``AWS_ENDPOINT_URL_BEDROCK_RUNTIME``) at a fake Titan v2 endpoint on
127.0.0.1, against a database of the session's PostgreSQL migrated with 256-dimension vector columns: it stores
passages and an interaction, searches both, reuses a stored embedding, and refuses vectors of the wrong width.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse, urlunparse

import psycopg
import pytest

DIMS = 256

CHILD = r"""
import json, sys

class RefuseNumpy:
    '''A meta path finder that makes numpy and pgvector unimportable, as in the deployed package.'''
    refused = []
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("numpy", "pgvector"):
            self.refused.append(name)
            raise ModuleNotFoundError(f"No module named {name!r} (refused by the test)", name=name)
        return None

finder = RefuseNumpy()
sys.meta_path.insert(0, finder)
spec = json.loads(sys.stdin.read())

from soorma.functions.memory.handler import handler
from soorma.local.apigw import http_event

class Context:
    function_name = "memory"; aws_request_id = "test"; memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:local:000000000000:function:memory"
    def get_remaining_time_in_millis(self): return 30000

def call(method, path, body=None, query=""):
    raw = json.dumps(body).encode() if body is not None else b""
    event = http_event(method, path, query=query, authorizer=spec["identity"], body=raw,
                       headers={"content-type": "application/json"} if body is not None else {})
    result = handler(event, Context())
    return {"status": result["statusCode"], "body": json.loads(result["body"]) if result.get("body") else None}

out = {}
for i, text in enumerate(spec["passages"]):
    out[f"store_{i}"] = call("POST", "/v1/memory/semantic", {"content": text})
out["again"] = call("POST", "/v1/memory/semantic", {"content": spec["passages"][0], "external_id": "same-text"})
out["search"] = call("POST", "/v1/memory/semantic/query", query="query=" + spec["passages"][1] + "&limit=3")
out["episodic"] = call("POST", "/v1/memory/episodic", {"agent_id": "a", "role": "user", "content": "hello there"})
out["episodic_search"] = call("GET", "/v1/memory/episodic/search", query="agent_id=a&q=hello%20there")
out["supplied"] = call("POST", "/v1/memory/semantic", {"content": "mine", "embedding": [0.5] * spec["dims"]})
out["wrong_width"] = call("POST", "/v1/memory/semantic", {"content": "bad", "embedding": [0.5] * (spec["dims"] - 1)})
out["beyond_float32"] = call("POST", "/v1/memory/semantic", {"content": "big", "embedding": [1e39] * spec["dims"]})
out["numpy_loaded"] = sorted(m for m in sys.modules if m.split(".")[0] in ("numpy", "pgvector"))
out["refused"] = sorted(set(finder.refused))
print(json.dumps(out))
"""


def titan_vector(text: str, dims: int) -> list[float]:
    """A deterministic unit vector per text (what the fake Titan answers)."""
    seed = hashlib.sha256(text.encode()).digest()
    raw = [((seed[i % 32] * (i + 1)) % 251) / 251 - 0.5 for i in range(dims)]
    norm = math.sqrt(sum(v * v for v in raw))
    return [v / norm for v in raw]


class FakeTitan(BaseHTTPRequestHandler):
    """Bedrock Runtime ``InvokeModel`` for Titan Text Embeddings v2; counts the texts it embedded."""

    texts: list[str] = []

    def log_message(self, *args) -> None:  # quiet
        pass

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        request = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)) or b"{}")
        assert self.path.startswith("/model/amazon.titan-embed-text-v2"), self.path
        FakeTitan.texts.append(request["inputText"])
        answer = json.dumps({"embedding": titan_vector(request["inputText"], int(request["dimensions"])),
                             "inputTextTokenCount": 3}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)


@pytest.fixture
def bedrock_db(postgres, monkeypatch):
    """Owner DSN of a fresh database on the session's server, migrated with ``vector(256)`` columns."""
    from soorma.functions.migrate import apply

    name = "nonumpy_" + uuid.uuid4().hex[:10]
    with psycopg.connect(postgres, autocommit=True) as conn:
        conn.execute(f"create database {name}")
    dsn = urlunparse(urlparse(postgres)._replace(path="/" + name))
    monkeypatch.setenv("SOORMA_EMBEDDING_DIMENSIONS", str(DIMS))
    apply(dsn)
    yield dsn
    with psycopg.connect(postgres, autocommit=True) as conn:
        conn.execute(f"drop database {name} with (force)")


@pytest.fixture
def fake_titan():
    FakeTitan.texts = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeTitan)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_memory_serves_searches_with_numpy_unimportable(bedrock_db, fake_titan):
    """Bedrock provider, numpy and pgvector refused: store, search (semantic and episodic), reuse, 422s."""
    from soorma.local.postgres import app_dsn

    env = {
        "PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp"),
        "SOORMA_APP_DATABASE_URL": app_dsn(bedrock_db),
        "SOORMA_EMBEDDING_PROVIDER": "bedrock", "SOORMA_EMBEDDING_DIMENSIONS": str(DIMS),
        "SOORMA_BEDROCK_EMBEDDING_MODEL": "amazon.titan-embed-text-v2:0",
        "POWERTOOLS_SERVICE_NAME": "memory-test", "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": fake_titan,
    }
    passages = ["Use gzip.open to read a gzip-compressed file.", "The Danube flows through Vienna.",
                "HNSW is a graph index for approximate nearest neighbours."]
    identity = {"platform_tenant_id": "pt-" + uuid.uuid4().hex[:8], "service_tenant_id": "st", "service_user_id": "u",
                "principal_id": "pr_test", "role": "developer"}
    spec = {"identity": identity, "passages": passages, "dims": DIMS}
    proc = subprocess.run([sys.executable, "-c", CHILD], input=json.dumps(spec), env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])

    assert out["numpy_loaded"] == [], out["numpy_loaded"]
    assert all(out[f"store_{i}"]["status"] == 201 for i in range(len(passages))), out
    # the same text again: its stored embedding is reused (read back through our vector loader), Titan not called
    assert out["again"]["status"] == 201, out["again"]
    assert FakeTitan.texts.count(passages[0]) == 1, FakeTitan.texts

    found = out["search"]
    assert found["status"] == 200, found
    assert [hit["content"] for hit in found["body"]][0] == passages[1]
    assert abs(found["body"][0]["score"] - 1.0) < 1e-5  # unit vectors, float32 round trip
    expected = {p: sum(a * b for a, b in zip(titan_vector(p, DIMS), titan_vector(passages[1], DIMS)))
                for p in passages}
    for hit in found["body"][1:]:
        assert abs(hit["score"] - expected[hit["content"]]) < 1e-5, hit  # cosine as computed in double precision

    assert out["episodic"]["status"] == 201, out["episodic"]
    assert out["episodic_search"]["status"] == 200, out["episodic_search"]
    assert out["episodic_search"]["body"][0]["content"] == "hello there"
    assert abs(out["episodic_search"]["body"][0]["score"] - 1.0) < 1e-5

    assert out["supplied"]["status"] == 201, out["supplied"]
    assert out["wrong_width"]["status"] == 422 and f"this deployment stores {DIMS}" in json.dumps(
        out["wrong_width"]["body"]), out["wrong_width"]
    assert out["beyond_float32"]["status"] == 422 and "float32" in json.dumps(out["beyond_float32"]["body"]), \
        out["beyond_float32"]


def test_vector_wire_formats_round_trip_exactly():
    """pgvector's binary layout (int16 dim, int16 0, big-endian float4) and text form, without numpy."""
    from array import array

    from soorma.functions.memory import vectors

    v = vectors.to_vector([0.1, -2.5, 3.4e38, 1e-40, 0.0])
    binary = vectors.to_binary(v)
    assert binary[:4] == b"\x00\x05\x00\x00" and len(binary) == 4 + 4 * 5
    assert binary[4:8] == b"\x3d\xcc\xcc\xcd"  # 0.1 as big-endian float4
    assert vectors.from_binary(binary) == v and vectors.from_text(vectors.to_text(v)) == v
    assert v == array("f", [0.1, -2.5, 3.4e38, 1e-40, 0.0])  # the caller's vector is not byte-swapped in place
    with pytest.raises(ValueError):
        vectors.from_binary(b"\x00\x02\x00\x01" + bytes(8))
    unit = vectors.normalise([3.0, 4.0])
    assert unit == array("f", [0.6, 0.8]) and abs(vectors.norm(unit) - 1.0) < 1e-7
    assert vectors.normalise([0.0, 0.0]) == array("f", [0.0, 0.0])  # norm clamped at 1e-12, as before
    assert not vectors.is_finite(vectors.to_vector([1e39])) and vectors.is_zero(vectors.to_vector([1e-50]))
