"""Text embeddings for semantic memory, behind one small interface.

``EmbeddingProvider`` is what the memory function uses: ``dimensions`` and ``embed(texts)`` (batching is the
provider's business). The provider is chosen by ``SOORMA_EMBEDDING_PROVIDER``:

* ``local`` (default): :class:`~soorma.functions.memory.embeddings.local.LocalMiniLM`, all-MiniLM-L6-v2 as an int8
  ONNX model on ONNX Runtime, 384 dimensions, no network and no API key.

A hosted provider (Bedrock Titan, OpenAI) is added by writing a class with the same two members and registering a
factory in :data:`PROVIDERS`; the vector column's width comes from ``SOORMA_EMBEDDING_DIMENSIONS`` at migration time
and must equal the provider's ``dimensions`` (checked by :func:`check_dimensions`).
"""

from __future__ import annotations

import os
import threading
from typing import Callable, Protocol, runtime_checkable

PROVIDER_ENV = "SOORMA_EMBEDDING_PROVIDER"
DIMENSIONS_ENV = "SOORMA_EMBEDDING_DIMENSIONS"
DEFAULT_PROVIDER = "local"


@runtime_checkable
class EmbeddingProvider(Protocol):
    """Turns texts into unit-length vectors of ``dimensions`` floats (cosine distance = 1 - dot product)."""

    dimensions: int

    def embed(self, texts: list[str]) -> list[list[float]]:
        """One vector per text, in order. Implementations batch internally; an empty list gives an empty list."""
        ...


def _local() -> EmbeddingProvider:
    from soorma.functions.memory.embeddings.local import LocalMiniLM

    return LocalMiniLM()


#: name -> factory. The seam for hosted providers: add e.g. ``"bedrock": _bedrock`` / ``"openai": _openai``.
PROVIDERS: dict[str, Callable[[], EmbeddingProvider]] = {"local": _local}

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
                name = (os.environ.get(PROVIDER_ENV) or DEFAULT_PROVIDER).strip().lower()
                factory = PROVIDERS.get(name)
                if factory is None:
                    raise UnknownProvider(
                        f"{PROVIDER_ENV}={name!r} is not one of: {', '.join(sorted(PROVIDERS))}"
                    )
                _provider = factory()
    return _provider


def check_dimensions(provider: EmbeddingProvider) -> None:
    """Raise ``ValueError`` when the provider's width differs from ``SOORMA_EMBEDDING_DIMENSIONS`` (default 384)."""
    expected = int(os.environ.get(DIMENSIONS_ENV, "384"))
    if provider.dimensions != expected:
        raise ValueError(
            f"embedding provider gives {provider.dimensions}-d vectors but the database column is vector({expected})"
            f" ({DIMENSIONS_ENV})"
        )


__all__ = [
    "EmbeddingProvider",
    "PROVIDERS",
    "PROVIDER_ENV",
    "UnknownProvider",
    "check_dimensions",
    "provider_from_env",
]
