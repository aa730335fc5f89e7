"""Hosted embedding providers without the network: Bedrock Titan v2 through botocore's Stubber, and an
OpenAI-compatible endpoint served by a tiny HTTP server the test starts on 127.0.0.1."""

from __future__ import annotations

import io
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import numpy as np
import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber

import soorma.functions.memory.embeddings as embeddings
from soorma.functions.memory.embeddings import EmbeddingError, EmbeddingProvider, check_dimensions, model_id
from soorma.functions.memory.embeddings.bedrock import BedrockTitan
from soorma.functions.memory.embeddings.openai import OpenAICompatible

# -- Bedrock Titan Text Embeddings v2 --------------------------------------------------------------------------------


def _body(payload: dict) -> StreamingBody:
    raw = json.dumps(payload).encode()
    return StreamingBody(io.BytesIO(raw), len(raw))


def _titan_vector(seed: int, dims: int) -> list[float]:
    return np.random.default_rng(seed).normal(size=dims).round(6).tolist()


@pytest.fixture
def bedrock_client():
    return boto3.client("bedrock-runtime", region_name="eu-west-1", aws_access_key_id="test",
                        aws_secret_access_key="test")


@pytest.mark.parametrize("dims", [256, 512, 1024])
def test_titan_invokes_the_model_once_per_text_with_the_dimensions(bedrock_client, dims):
    provider = BedrockTitan(dims, client=bedrock_client, concurrency=1)
    texts = ["first text", "second text"]
    with Stubber(bedrock_client) as stub:
        for i, text in enumerate(texts):
            stub.add_response(
                "invoke_model",
                {"body": _body({"embedding": _titan_vector(i, dims), "inputTextTokenCount": 2}),
                 "contentType": "application/json"},
                {"modelId": "amazon.titan-embed-text-v2:0", "contentType": "application/json",
                 "accept": "application/json",
                 "body": json.dumps({"inputText": text, "dimensions": dims, "normalize": True})},
            )
        vectors = provider.embed(texts)
        stub.assert_no_pending_responses()
    assert len(vectors) == 2 and all(len(v) == dims for v in vectors)
    assert all(abs(np.linalg.norm(v) - 1.0) < 1e-5 for v in vectors)
    expected = np.asarray(_titan_vector(1, dims))
    assert np.allclose(vectors[1], expected / np.linalg.norm(expected), atol=1e-5)  # order kept
    assert isinstance(provider, EmbeddingProvider)
    assert model_id(provider) == f"bedrock:amazon.titan-embed-text-v2:0:{dims}"


def test_titan_batches_concurrently_and_keeps_the_order():
    """Titan takes one text per call, so a batch is sent on a thread pool; the answers land in input order. (A fake
    client here: the Stubber answers in call order, which a thread pool does not fix.)"""
    texts = [f"text {i}" for i in range(12)]
    by_text = {t: _titan_vector(i, 256) for i, t in enumerate(texts)}
    threads: set[str] = set()

    class FakeBedrock:
        def invoke_model(self, **kwargs):
            threads.add(threading.current_thread().name)
            time.sleep(0.02)
            return {"body": _body({"embedding": by_text[json.loads(kwargs["body"])["inputText"]]})}

    vectors = np.asarray(BedrockTitan(256, client=FakeBedrock(), concurrency=4).embed(texts))
    for i, text in enumerate(texts):
        expected = np.asarray(by_text[text])
        assert np.allclose(vectors[i], expected / np.linalg.norm(expected), atol=1e-5)
    assert len(threads) > 1


def test_titan_errors_become_embedding_errors(bedrock_client):
    provider = BedrockTitan(512, client=bedrock_client, concurrency=1)
    with Stubber(bedrock_client) as stub:
        stub.add_client_error("invoke_model", service_error_code="ThrottlingException", http_status_code=429)
        with pytest.raises(EmbeddingError, match="ThrottlingException"):
            provider.embed(["x"])
        stub.add_response("invoke_model", {"body": _body({"embedding": [0.1] * 256}), "contentType": "json"})
        with pytest.raises(EmbeddingError, match="256"):
            provider.embed(["x"])


def test_titan_dimensions_are_checked(monkeypatch):
    with pytest.raises(ValueError, match="256, 512 or 1024"):
        BedrockTitan(384)
    monkeypatch.setenv("SOORMA_EMBEDDING_DIMENSIONS", "512")
    monkeypatch.setenv("SOORMA_BEDROCK_REGION", "us-east-1")
    provider = BedrockTitan.from_env()
    assert provider.dimensions == 512 and provider.client.meta.region_name == "us-east-1"
    check_dimensions(provider)
    monkeypatch.setenv("SOORMA_EMBEDDING_DIMENSIONS", "384")
    with pytest.raises(ValueError):
        BedrockTitan.from_env()


def test_provider_factory_names(monkeypatch):
    monkeypatch.setattr(embeddings, "_provider", None)
    monkeypatch.setenv("SOORMA_EMBEDDING_PROVIDER", "bedrock")
    monkeypatch.setenv("SOORMA_EMBEDDING_DIMENSIONS", "1024")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    assert isinstance(embeddings.provider_from_env(), BedrockTitan)
    monkeypatch.setattr(embeddings, "_provider", None)
    monkeypatch.setenv("SOORMA_EMBEDDING_PROVIDER", "openai")
    monkeypatch.setenv("SOORMA_OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    provider = embeddings.provider_from_env()
    assert isinstance(provider, OpenAICompatible) and provider.dimensions == 1024
    assert provider.base_url == "http://127.0.0.1:9/v1"
    monkeypatch.setattr(embeddings, "_provider", None)


# -- OpenAI-compatible endpoint --------------------------------------------------------------------------------------


class _Server:
    """A small OpenAI-compatible /v1/embeddings server: records requests; answers from ``self.reply``."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.fail_first = 0
        self.reply = None  # callable(body) -> (status, payload)
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                length = int(self.headers.get("content-length", 0))
                body = json.loads(self.rfile.read(length))
                outer.requests.append({"path": self.path, "auth": self.headers.get("authorization"), "body": body})
                if outer.fail_first > 0:
                    outer.fail_first -= 1
                    status, payload = 503, {"error": "busy"}
                else:
                    status, payload = outer.reply(body)
                raw = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def _vector(text: str, dims: int) -> list[float]:
    seed = sum(text.encode()) % 1000
    return np.random.default_rng(seed).normal(size=dims).tolist()


def _ok(dims: int, reverse: bool = False):
    def reply(body):
        data = [{"object": "embedding", "index": i, "embedding": _vector(t, dims)} for i, t in enumerate(body["input"])]
        if reverse:
            data.reverse()  # servers may answer out of order; "index" says where each belongs
        return 200, {"object": "list", "data": data, "model": body["model"], "usage": {"prompt_tokens": 1}}
    return reply


def test_openai_compatible_batches_and_sends_model_dimensions_and_key():
    with _Server() as server:
        server.reply = _ok(64, reverse=True)
        provider = OpenAICompatible(server.url, dimensions=64, model="my-embedder", api_key="sk-test", batch_size=4)
        texts = [f"text number {i}" for i in range(10)]
        vectors = np.asarray(provider.embed(texts))
        provider.close()
    assert vectors.shape == (10, 64)
    assert [len(r["body"]["input"]) for r in server.requests] == [4, 4, 2]
    first = server.requests[0]
    assert first["path"] == "/v1/embeddings" and first["auth"] == "Bearer sk-test"
    assert first["body"]["model"] == "my-embedder" and first["body"]["dimensions"] == 64
    assert first["body"]["encoding_format"] == "float"
    for i, text in enumerate(texts):
        expected = np.asarray(_vector(text, 64))
        assert np.allclose(vectors[i], expected / np.linalg.norm(expected), atol=1e-5)
    assert model_id(provider).startswith("openai:") and model_id(provider).endswith(":my-embedder:64")


def test_openai_compatible_retries_busy_answers_and_can_omit_dimensions():
    with _Server() as server:
        server.reply = _ok(8)
        server.fail_first = 1
        provider = OpenAICompatible(server.url, dimensions=8, send_dimensions=False, retries=2)
        assert len(provider.embed(["x"])[0]) == 8
    assert len(server.requests) == 2 and "dimensions" not in server.requests[-1]["body"]
    assert server.requests[-1]["auth"] is None


def test_openai_compatible_errors_name_the_problem():
    with _Server() as server:
        server.reply = _ok(32)
        provider = OpenAICompatible(server.url, dimensions=16)  # server answers 32-d vectors
        with pytest.raises(EmbeddingError, match="32-d"):
            provider.embed(["x"])
        server.reply = lambda body: (401, {"error": {"message": "bad key"}})
        with pytest.raises(EmbeddingError, match="401"):
            provider.embed(["x"])
        server.reply = lambda body: (200, {"unexpected": True})
        with pytest.raises(EmbeddingError, match="unexpected body"):
            provider.embed(["x"])
        server.reply = lambda body: (200, {"data": []})
        with pytest.raises(EmbeddingError, match="0 vectors for 1"):
            provider.embed(["x"])
    unreachable = OpenAICompatible(server.url, dimensions=16, retries=0, timeout=2)
    with pytest.raises(EmbeddingError, match="unreachable"):
        unreachable.embed(["x"])
    assert provider.embed([]) == []
