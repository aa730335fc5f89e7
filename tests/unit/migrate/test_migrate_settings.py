"""The migrator's settings: the embedding dimension must fit pgvector's HNSW index (at most 2,000 for ``vector``),
checked before any migration runs (no database needed)."""

from __future__ import annotations

import pytest

from soorma.functions.migrate.app import MAX_EMBEDDING_DIMENSIONS, _render, _settings


@pytest.mark.parametrize("dims", ["1", "384", "1024", "1536", "2000"])
def test_dimensions_up_to_the_hnsw_limit_are_accepted(monkeypatch, dims):
    monkeypatch.setenv("SOORMA_EMBEDDING_DIMENSIONS", dims)
    values = _settings()
    assert values["embedding_dimensions"] == dims
    assert _render("vector({{embedding_dimensions}})", values) == f"vector({dims})"


def test_default_is_384(monkeypatch):
    monkeypatch.delenv("SOORMA_EMBEDDING_DIMENSIONS", raising=False)
    assert _settings()["embedding_dimensions"] == "384"


@pytest.mark.parametrize("dims", ["2001", "3072", "4000", "16000"])
def test_dimensions_above_the_hnsw_limit_are_rejected_with_the_reason(monkeypatch, dims):
    monkeypatch.setenv("SOORMA_EMBEDDING_DIMENSIONS", dims)
    with pytest.raises(ValueError) as error:
        _settings()
    message = str(error.value)
    assert "SOORMA_EMBEDDING_DIMENSIONS" in message and dims in message
    assert f"1 to {MAX_EMBEDDING_DIMENSIONS}" in message and "HNSW" in message


@pytest.mark.parametrize("dims", ["0", "-5", "abc", "", "3.5"])
def test_non_positive_or_non_integer_dimensions_are_rejected(monkeypatch, dims):
    monkeypatch.setenv("SOORMA_EMBEDDING_DIMENSIONS", dims)
    with pytest.raises(ValueError, match="SOORMA_EMBEDDING_DIMENSIONS"):
        _settings()
    assert MAX_EMBEDDING_DIMENSIONS == 2000
