"""LocalMiniLM: real model files from the installed packages, no database."""

from __future__ import annotations

import numpy as np
import pytest

from soorma.functions.memory.embeddings import (
    PROVIDER_ENV,
    EmbeddingProvider,
    UnknownProvider,
    check_dimensions,
    local as local_module,
    provider_from_env,
)
from soorma.functions.memory.embeddings.local import LocalMiniLM, _mean_pool_normalise


@pytest.fixture(scope="module")
def model() -> LocalMiniLM:
    return LocalMiniLM()


def _cos(a, b) -> float:
    return float(np.dot(a, b))


def test_vectors_are_384_d_and_unit_length(model):
    texts = ["hello world", "A much longer sentence about databases, vectors and multi-tenant row-level security.", "x"]
    vectors = model.embed(texts)
    assert isinstance(vectors, list) and len(vectors) == 3
    for vector in vectors:
        assert isinstance(vector, list) and len(vector) == 384
        assert all(isinstance(v, float) for v in vector)
        assert abs(np.linalg.norm(vector) - 1.0) < 1e-4
    assert model.dimensions == 384
    assert isinstance(model, EmbeddingProvider)


def test_similar_sentences_score_higher_than_unrelated_ones(model):
    cat, feline, revenue = np.asarray(
        model.embed(["The cat sits on the mat.", "A feline is resting on a rug.", "Quarterly revenue grew by 12 percent."])
    )
    assert _cos(cat, feline) > 0.4
    assert _cos(cat, feline) > _cos(cat, revenue) + 0.3
    assert _cos(feline, revenue) < 0.2

    query, right, wrong = np.asarray(
        model.embed(["How do I reset my password?", "To change a forgotten password, use the reset link.",
                     "The museum opens at nine in the morning."])
    )
    assert _cos(query, right) > _cos(query, wrong)


def test_batching_and_order_do_not_change_the_vectors(model):
    texts = [f"sentence number {i} " + "word " * (i % 7) for i in range(40)]
    together = np.asarray(model.embed(texts))
    small_batches = np.asarray(LocalMiniLM(batch_size=3).embed(texts))
    one_by_one = np.asarray([model.embed([t])[0] for t in texts[:5]])
    assert np.allclose(together, small_batches, atol=1e-4)
    assert np.allclose(together[:5], one_by_one, atol=1e-4)  # padding in a batch does not leak into the mean


def test_long_text_is_truncated_not_rejected(model):
    long_text = "pgvector " * 5000
    vector = model.embed([long_text])[0]
    assert len(vector) == 384 and abs(np.linalg.norm(vector) - 1.0) < 1e-4
    encoding = model._tokenizer.encode(long_text)
    assert len(encoding.ids) == 256  # max_seq_length, [CLS] and [SEP] included


def test_empty_input_and_bad_argument(model):
    assert model.embed([]) == []
    with pytest.raises(TypeError):
        model.embed("not a list")  # type: ignore[arg-type]


def test_mean_pooling_ignores_padding():
    hidden = np.array([[[1.0, 0.0], [3.0, 0.0], [100.0, 100.0]]], dtype=np.float32)
    mask = np.array([[1, 1, 0]])
    pooled = _mean_pool_normalise(hidden, mask)
    assert np.allclose(pooled, [[1.0, 0.0]])


def test_model_files_come_from_the_packages():
    assert local_module.default_model_path().name == "model.onnx"
    assert local_module.default_model_path().is_file()
    assert local_module.default_tokenizer_path().name == "tokenizer.json"
    assert local_module.default_tokenizer_path().is_file()


def test_loading_is_lazy():
    fresh = LocalMiniLM()
    assert not fresh.loaded
    fresh.embed(["load now"])
    assert fresh.loaded


def test_provider_from_env(monkeypatch):
    import soorma.functions.memory.embeddings as embeddings

    monkeypatch.setattr(embeddings, "_provider", None)
    monkeypatch.setenv(PROVIDER_ENV, "nonsense")
    with pytest.raises(UnknownProvider, match="nonsense"):
        provider_from_env()
    monkeypatch.setenv(PROVIDER_ENV, "local")
    provider = provider_from_env()
    assert isinstance(provider, LocalMiniLM) and provider_from_env() is provider
    monkeypatch.setattr(embeddings, "_provider", None)


def test_check_dimensions(monkeypatch, model):
    monkeypatch.delenv("SOORMA_EMBEDDING_DIMENSIONS", raising=False)
    check_dimensions(model)
    monkeypatch.setenv("SOORMA_EMBEDDING_DIMENSIONS", "1536")
    with pytest.raises(ValueError, match="1536"):
        check_dimensions(model)


def test_threads_default_is_small(monkeypatch):
    monkeypatch.delenv(local_module.THREADS_ENV, raising=False)
    assert 1 <= local_module.default_threads() <= 4
    monkeypatch.setenv(local_module.THREADS_ENV, "1")
    assert local_module.default_threads() == 1


def test_model_id_names_the_vector_space(tmp_path, monkeypatch):
    monkeypatch.delenv(local_module.MODEL_PATH_ENV, raising=False)
    monkeypatch.delenv(local_module.MAX_TOKENS_ENV, raising=False)
    monkeypatch.setenv(local_module.INT8_ENV, "0")  # the packaged float graph
    assert LocalMiniLM().model_id == "local:all-MiniLM-L6-v2"
    assert LocalMiniLM(max_seq_length=128).model_id == "local:all-MiniLM-L6-v2:max128"
    assert LocalMiniLM(model_path=local_module.packaged_model_path()).model_id == "local:all-MiniLM-L6-v2"
    other = tmp_path / "minilm-int8.onnx"
    other.write_bytes(b"")
    assert LocalMiniLM(model_path=other).model_id == "local:all-MiniLM-L6-v2:minilm-int8"
    monkeypatch.setenv(local_module.MAX_TOKENS_ENV, "128")
    monkeypatch.setenv(local_module.BATCH_ENV, "8")
    configured = LocalMiniLM()
    assert configured.max_seq_length == 128 and configured.batch_size == 8


def test_mixed_lengths_are_batched_by_token_count(model):
    """Texts of very different lengths in one call: each batch is padded to its own longest text, and the vectors
    equal those computed one by one."""
    texts = ["short", "a " * 200 + "long one", "medium sized sentence here", "x " * 60]
    together = np.asarray(LocalMiniLM(batch_size=2).embed(texts))
    alone = np.asarray([model.embed([t])[0] for t in texts])
    assert np.allclose(together, alone, atol=1e-4)


# -- the int8 default and length bucketing ---------------------------------------------------------------------------

MIXED = (
    ["short", "x", "hello world", "a " * 200 + "long one", "medium sized sentence here", "x " * 60]
    + [f"Passage {i}: " + "tenant vector index query " * (1 + i % 13) for i in range(40)]
)


def _min_cos(a: np.ndarray, b: np.ndarray) -> float:
    return float((a * b).sum(axis=1).min())


@pytest.fixture(scope="module")
def float_model() -> LocalMiniLM:
    return LocalMiniLM(model_path=local_module.packaged_model_path(), batch_size=8)


def test_bucketed_batches_equal_one_unbucketed_padded_batch(float_model):
    """The float graph: texts sorted by token count and embedded in length-bucketed batches (each padded to its own
    longest text) give the same vectors as one batch of every text padded to the longest, in input order."""
    bucketed = float_model.embed_array(MIXED)
    float_model.load()
    encodings = float_model._tokenizer.encode_batch(MIXED)
    unbucketed = float_model._embed_batch(encodings, max(len(e.ids) for e in encodings))
    assert _min_cos(bucketed, unbucketed) >= 0.9999
    alone = np.asarray([float_model.embed_array([t])[0] for t in MIXED])
    assert _min_cos(bucketed, alone) >= 0.9999


def test_the_default_model_is_the_int8_build_where_onnx_can_build_it(monkeypatch):
    """Without a model path the int8 build is used (batch of one); SOORMA_EMBEDDING_INT8=0 keeps the float graph."""
    monkeypatch.delenv(local_module.MODEL_PATH_ENV, raising=False)
    monkeypatch.delenv(local_module.INT8_ENV, raising=False)
    monkeypatch.delenv(local_module.BATCH_ENV, raising=False)
    pytest.importorskip("onnx", reason="the int8 build needs the onnx package (the 'local' extra)")
    model = LocalMiniLM()
    assert model.int8 and model.model_id == "local:all-MiniLM-L6-v2:int8" and model.batch_size == 1
    assert model.model_path == local_module.int8_model_path()
    monkeypatch.setenv(local_module.INT8_ENV, "0")
    off = LocalMiniLM()
    assert not off.int8 and off.model_id == "local:all-MiniLM-L6-v2" and off.batch_size == 32


def test_int8_vectors_are_the_texts_own_and_close_to_the_float_ones(float_model, monkeypatch):
    """The int8 graph runs one text at a time, so a text's vector never depends on what it was batched with (reuse by
    content hash relies on that); and it stays close to the float model's."""
    monkeypatch.delenv(local_module.MODEL_PATH_ENV, raising=False)
    monkeypatch.delenv(local_module.INT8_ENV, raising=False)
    monkeypatch.delenv(local_module.BATCH_ENV, raising=False)
    pytest.importorskip("onnx", reason="the int8 build needs the onnx package (the 'local' extra)")
    model = LocalMiniLM()
    together = model.embed_array(MIXED)
    alone = np.asarray([model.embed_array([t])[0] for t in MIXED])
    reordered = model.embed_array(MIXED[::-1])[::-1]
    assert _min_cos(together, alone) >= 0.9999 and _min_cos(together, reordered) >= 0.9999
    assert np.allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-4)
    floats = float_model.embed_array(MIXED)
    cos = (together * floats).sum(axis=1)
    assert cos.mean() > 0.98 and cos.min() > 0.95, (cos.mean(), cos.min())


def test_int8_build_is_cached_and_written_atomically(tmp_path, monkeypatch):
    """The build goes to SOORMA_EMBEDDING_CACHE_DIR under a name tied to the source model and runtime, via a
    temporary file; a second call finds it and does not build again."""
    pytest.importorskip("onnx", reason="the int8 build needs the onnx package (the 'local' extra)")
    monkeypatch.setenv(local_module.CACHE_DIR_ENV, str(tmp_path))
    path = local_module.int8_model_path()
    assert path.parent == tmp_path and path.name.startswith("all-MiniLM-L6-v2-int8-")
    calls = []
    import soorma.functions.memory.embeddings.quantize as quantize

    def fake_build(out, source=None):
        calls.append((out, source))
        out.write_bytes(b"graph")
        return out

    monkeypatch.setattr(quantize, "build", fake_build)
    assert local_module.ensure_int8_model(path) == path and path.read_bytes() == b"graph"
    assert local_module.ensure_int8_model(path) == path and len(calls) == 1
    assert calls[0][0] != path and not list(tmp_path.glob("*.partial.onnx"))


def test_threads_are_physical_cores(monkeypatch):
    """ONNX Runtime threads default to the physical cores this process may use (at most 4)."""
    monkeypatch.delenv(local_module.THREADS_ENV, raising=False)
    import os

    cpus = set(os.sched_getaffinity(0))
    assert local_module.default_threads() == max(1, min(local_module._physical_cores(cpus), 4))
    assert 1 <= local_module._physical_cores(cpus) <= len(cpus)
