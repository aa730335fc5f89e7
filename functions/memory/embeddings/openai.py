"""``OpenAICompatible``: embeddings from any server that implements OpenAI's ``POST {base_url}/embeddings``.

Request ``{"model", "input": [texts], "encoding_format": "float", "dimensions"?}``; answer ``{"data": [{"index",
"embedding"}], ...}`` (https://platform.openai.com/docs/api-reference/embeddings/create). Texts go in batches of
``batch_size`` (default 128) per request; ``dimensions`` is sent only when ``send_dimensions`` (the text-embedding-3
models honour it; many compatible servers reject the field). 429 and 5xx answers are retried with back-off.

Settings (environment): ``SOORMA_OPENAI_BASE_URL`` (else ``OPENAI_BASE_URL``, else ``https://api.openai.com/v1``),
``SOORMA_OPENAI_API_KEY`` (else ``OPENAI_API_KEY``; may be empty for local servers), ``SOORMA_OPENAI_EMBEDDING_MODEL``
(default ``text-embedding-3-small``), ``SOORMA_EMBEDDING_DIMENSIONS`` (the width; sent as ``dimensions`` unless
``SOORMA_OPENAI_SEND_DIMENSIONS=false``), ``SOORMA_OPENAI_BATCH_SIZE``.
"""

from __future__ import annotations

import os
import time

import httpx

from soorma.functions.memory.embeddings import DIMENSIONS_ENV, EmbeddingError
from soorma.functions.memory.vectors import Vector, normalise
from soorma.functions.shared import settings

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_MODEL = settings.OPENAI_EMBEDDING_MODEL.default
#: The width without ``SOORMA_EMBEDDING_DIMENSIONS``: text-embedding-3-small's.
DEFAULT_DIMENSIONS = 1536
_RETRY_STATUSES = {408, 409, 429, 500, 502, 503, 504}


class OpenAICompatible:
    """An OpenAI-compatible embeddings endpoint. ``transport`` replaces the network in tests."""

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        *,
        dimensions: int,
        model: str = DEFAULT_MODEL,
        api_key: str | None = None,
        send_dimensions: bool = True,
        batch_size: int = 128,
        timeout: float = 30.0,
        retries: int = 2,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.base_url = base_url.rstrip("/")
        self.dimensions = dimensions
        self.model = model
        self.model_id = f"openai:{self.base_url}:{model}:{dimensions}"
        self.send_dimensions = send_dimensions
        self.batch_size = batch_size
        self.retries = retries
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(timeout=timeout, headers=headers, transport=transport)

    @classmethod
    def from_env(cls) -> "OpenAICompatible":
        env = os.environ
        dims = settings.EMBEDDING_DIMENSIONS.get()
        return cls(
            settings.OPENAI_BASE_URL.get() or env.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL,
            dimensions=DEFAULT_DIMENSIONS if dims is None else dims,
            model=settings.OPENAI_EMBEDDING_MODEL.get(),
            api_key=settings.OPENAI_API_KEY.get() or env.get("OPENAI_API_KEY") or None,
            send_dimensions=settings.OPENAI_SEND_DIMENSIONS.get(),
            batch_size=settings.OPENAI_BATCH_SIZE.get(),
        )

    def _post(self, texts: list[str]) -> list[list[float]]:
        body: dict = {"model": self.model, "input": texts, "encoding_format": "float"}
        if self.send_dimensions:
            body["dimensions"] = self.dimensions
        url = f"{self.base_url}/embeddings"
        for attempt in range(self.retries + 1):
            try:
                response = self._client.post(url, json=body)
            except httpx.HTTPError as exc:
                if attempt < self.retries:
                    time.sleep(0.2 * 2**attempt)
                    continue
                raise EmbeddingError(f"embedding endpoint {url} unreachable: {type(exc).__name__}: {exc}") from exc
            if response.status_code in _RETRY_STATUSES and attempt < self.retries:
                time.sleep(0.2 * 2**attempt)
                continue
            break
        if response.status_code >= 400:
            raise EmbeddingError(f"embedding endpoint {url} answered {response.status_code}: {response.text[:300]}")
        try:
            data = response.json()["data"]
            ordered = sorted(data, key=lambda item: item.get("index", 0))
            vectors = [item["embedding"] for item in ordered]
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise EmbeddingError(f"embedding endpoint {url} answered an unexpected body: {response.text[:300]}") from exc
        if len(vectors) != len(texts):
            raise EmbeddingError(f"embedding endpoint {url} returned {len(vectors)} vectors for {len(texts)} texts")
        for vector in vectors:
            if not isinstance(vector, list) or len(vector) != self.dimensions:
                got = len(vector) if isinstance(vector, list) else type(vector).__name__
                raise EmbeddingError(
                    f"embedding endpoint {url} returned {got}-d vectors; {DIMENSIONS_ENV} is {self.dimensions}"
                )
        return vectors

    def embed_vectors(self, texts: list[str]) -> list[Vector]:
        """Unit-length float32 vectors (``array('f')``), one per text, in order (``batch_size`` texts per request;
        each answer normalised: compatible servers do not all return unit vectors)."""
        if isinstance(texts, str):
            raise TypeError("embed takes a list of texts, not one string")
        out: list[Vector] = []
        for start in range(0, len(texts), self.batch_size):
            try:
                out += [normalise(vector) for vector in self._post(list(texts[start : start + self.batch_size]))]
            except TypeError as exc:
                raise EmbeddingError(f"embedding endpoint {self.base_url} returned non-numeric values: {exc}") from exc
        return out

    def embed(self, texts: list[str]) -> list[list[float]]:
        """Like :meth:`embed_vectors`, as lists of floats."""
        return [vector.tolist() for vector in self.embed_vectors(texts)]

    def close(self) -> None:
        self._client.close()
