"""Text embeddings for the memory function, behind one small interface.

``EmbeddingProvider`` is what the memory function uses: ``dimensions``, ``model_id`` and ``embed(texts)`` (batching
is the provider's business). The built-in providers also have ``embed_vectors(texts)``, the same vectors as
``array('f')`` (:mod:`soorma.functions.memory.vectors`, the memory function's vector type), which the memory function
prefers; only the local model uses numpy (internally), so the function runs without numpy under ``bedrock`` and
``openai``. The provider is chosen by ``SOORMA_EMBEDDING_PROVIDER``:

* ``local`` (default): :class:`~soorma.functions.memory.embeddings.local.LocalMiniLM`, all-MiniLM-L6-v2 on ONNX
  Runtime, 384 dimensions, no network and no API key.
* ``bedrock``: :class:`~soorma.functions.memory.embeddings.bedrock.BedrockTitan`, Amazon Titan Text Embeddings v2
  through boto3's ``bedrock-runtime`` ``invoke_model`` (256, 512 or 1024 dimensions).
* ``openai``: :class:`~soorma.functions.memory.embeddings.openai.OpenAICompatible`, any server that implements
  OpenAI's ``POST /embeddings`` (OpenAI itself, Azure-style gateways, vLLM, Ollama, LiteLLM, ...).

The vector column's width comes from ``SOORMA_EMBEDDING_DIMENSIONS`` at migration time (default 384) and must equal
the provider's ``dimensions`` (checked by :func:`check_dimensions` when the memory function first embeds).
``model_id`` names the vector space: stored embeddings are reused by content hash only for the same ``model_id``.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Callable, Protocol, runtime_checkable

from soorma.functions.shared import settings

PROVIDER_ENV = settings.EMBEDDING_PROVIDER.name
DIMENSIONS_ENV = settings.EMBEDDING_DIMENSIONS.name
DEFAULT_PROVIDER = settings.EMBEDDING_PROVIDER.default
DEFAULT_DIMENSIONS = settings.DEFAULT_EMBEDDING_DIMENSIONS
#: all-MiniLM-L6-v2's ``tokenizer.json`` (466 kB, Apache-2.0: see ``NOTICE`` beside it), package data of this package:
#: the local model reads it, and the CDK app copies it into the ``embeddings`` layer (soorma.infra.packaging).
PACKAGED_TOKENIZER = Path(__file__).with_name("all-MiniLM-L6-v2") / "tokenizer.json"


class EmbeddingError(RuntimeError):
    """The provider could not produce embeddings (unreachable, refused, or answered something unusable). The memory
    function answers 502 with this message."""


@runtime_checkable
class EmbeddingProvider(Protocol):
    """Turns texts into unit-length vectors of ``dimensions`` floats (cosine distance = 1 - dot product)."""

    dimensions: int

    def embed(self, texts: list[str]) -> list[list[float]]:
        """One vector per text, in order. Implementations batch internally; an empty list gives an empty list."""
        ...


def model_id(provider: EmbeddingProvider) -> str:
    """The provider's vector-space name (``provider.model_id``, else its class name and width)."""
    found = getattr(provider, "model_id", None)
    return str(found) if found else f"{type(provider).__name__}:{provider.dimensions}"


def expected_dimensions() -> int:
    """``SOORMA_EMBEDDING_DIMENSIONS`` (default 384): the width of the vector columns the migrations created."""
    dims = settings.EMBEDDING_DIMENSIONS.get()
    if dims is None:
        return DEFAULT_DIMENSIONS
    if dims < 1:
        raise ValueError(f"{DIMENSIONS_ENV}={str(dims)!r} is not a positive integer")
    return dims


def _local() -> EmbeddingProvider:
    from soorma.functions.memory.embeddings.local import LocalMiniLM

    return LocalMiniLM()


def _bedrock() -> EmbeddingProvider:
    from soorma.functions.memory.embeddings.bedrock import BedrockTitan

    return BedrockTitan.from_env()


def _openai() -> EmbeddingProvider:
    from soorma.functions.memory.embeddings.openai import OpenAICompatible

    return OpenAICompatible.from_env()


#: name -> factory.
PROVIDERS: dict[str, Callable[[], EmbeddingProvider]] = {"local": _local, "bedrock": _bedrock, "openai": _openai}

_provider: EmbeddingProvider | None = None
_lock = threading.Lock()


class UnknownProvider(ValueError):
    """``SOORMA_EMBEDDING_PROVIDER`` names no known provider."""


def provider_from_env() -> EmbeddingProvider:
    """The execution environment's provider (created once per process; models load lazily on first ``embed``)."""
    global _provider
    if _provider is None:
        with _lock:
            if _provider is None:
                name = settings.EMBEDDING_PROVIDER.get()
                factory = PROVIDERS.get(name)
                if factory is None:
                    raise UnknownProvider(
                        f"{PROVIDER_ENV}={name!r} is not one of: {', '.join(sorted(PROVIDERS))}"
                    )
                _provider = factory()
    return _provider


def check_dimensions(provider: EmbeddingProvider) -> None:
    """Raise ``ValueError`` when the provider's width differs from ``SOORMA_EMBEDDING_DIMENSIONS`` (default 384)."""
    expected = expected_dimensions()
    if provider.dimensions != expected:
        raise ValueError(
            f"embedding provider gives {provider.dimensions}-d vectors but the database column is vector({expected})"
            f" ({DIMENSIONS_ENV})"
        )


__all__ = [
    "DIMENSIONS_ENV",
    "EmbeddingError",
    "EmbeddingProvider",
    "PROVIDERS",
    "PROVIDER_ENV",
    "UnknownProvider",
    "check_dimensions",
    "expected_dimensions",
    "model_id",
    "provider_from_env",
]
