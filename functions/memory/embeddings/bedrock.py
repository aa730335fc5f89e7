"""``BedrockTitan``: Amazon Titan Text Embeddings v2 through boto3 (``bedrock-runtime`` ``InvokeModel``).

Titan v2 embeds one text per request (body ``{"inputText", "dimensions", "normalize": true}``, answer
``{"embedding": [...], "inputTextTokenCount": n}``;
https://docs.aws.amazon.com/bedrock/latest/userguide/model-parameters-titan-embed-text.html), so a batch is sent as
concurrent requests on a small thread pool (boto3 clients are thread-safe). Output widths: 256, 512 or 1024.

Settings (environment): ``SOORMA_EMBEDDING_DIMENSIONS`` (256 | 512 | 1024, must equal the migrations' vector width),
``SOORMA_BEDROCK_EMBEDDING_MODEL`` (default ``amazon.titan-embed-text-v2:0``), ``SOORMA_BEDROCK_REGION`` (else
boto3's own region resolution, e.g. ``AWS_REGION``), ``SOORMA_BEDROCK_CONCURRENCY`` (default 8). Credentials come
from boto3's usual chain (the function's execution role in Lambda; the role needs ``bedrock:InvokeModel`` on the
model).
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from soorma.functions.memory.embeddings import EmbeddingError
from soorma.functions.memory.vectors import Vector, normalise
from soorma.functions.shared import settings

DEFAULT_MODEL = settings.BEDROCK_EMBEDDING_MODEL.default
#: The width without ``SOORMA_EMBEDDING_DIMENSIONS``: Titan v2's largest.
DEFAULT_DIMENSIONS = 1024
TITAN_V2_DIMENSIONS = (256, 512, 1024)
MODEL_ENV = settings.BEDROCK_EMBEDDING_MODEL.name
REGION_ENV = settings.BEDROCK_REGION.name
CONCURRENCY_ENV = settings.BEDROCK_CONCURRENCY.name
#: Titan v2 accepts up to 50,000 characters (8,192 tokens) per text; longer ones are cut here, not refused there.
MAX_CHARS = 50_000


class BedrockTitan:
    """Titan Text Embeddings v2 on Amazon Bedrock. ``client`` is a boto3 ``bedrock-runtime`` client (created from
    ``region`` when not given; tests pass one wrapped in botocore's ``Stubber``)."""

    def __init__(
        self,
        dimensions: int = 1024,
        *,
        model: str = DEFAULT_MODEL,
        client: Any = None,
        region: str | None = None,
        concurrency: int = 8,
    ) -> None:
        if dimensions not in TITAN_V2_DIMENSIONS:
            raise ValueError(f"Titan Text Embeddings v2 gives 256, 512 or 1024 dimensions, not {dimensions}")
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.dimensions = dimensions
        self.model = model
        self.model_id = f"bedrock:{model}:{dimensions}"
        self.concurrency = concurrency
        self._region = region
        self._client = client

    @classmethod
    def from_env(cls) -> "BedrockTitan":
        dims = settings.EMBEDDING_DIMENSIONS.get()
        return cls(
            DEFAULT_DIMENSIONS if dims is None else dims,
            model=settings.BEDROCK_EMBEDDING_MODEL.get(),
            region=settings.BEDROCK_REGION.get(),
            concurrency=settings.BEDROCK_CONCURRENCY.get(),
        )

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3

            self._client = boto3.client("bedrock-runtime", region_name=self._region)
        return self._client

    def _embed_one(self, text: str) -> Vector:
        body = json.dumps({"inputText": text[:MAX_CHARS], "dimensions": self.dimensions, "normalize": True})
        try:
            response = self.client.invoke_model(
                modelId=self.model, body=body, contentType="application/json", accept="application/json"
            )
            payload = json.loads(response["body"].read())
        except EmbeddingError:
            raise
        except Exception as exc:  # botocore ClientError, connection errors, a body that is not JSON
            raise EmbeddingError(f"Bedrock {self.model} invoke_model failed: {type(exc).__name__}: {exc}") from exc
        vector = payload.get("embedding") if isinstance(payload, dict) else None
        if not isinstance(vector, list) or len(vector) != self.dimensions:
            got = len(vector) if isinstance(vector, list) else type(vector).__name__
            raise EmbeddingError(f"Bedrock {self.model} returned an embedding of {got}, expected {self.dimensions}")
        try:
            return normalise(vector)
        except TypeError as exc:
            raise EmbeddingError(f"Bedrock {self.model} returned an embedding that is not numbers: {exc}") from exc

    def embed_vectors(self, texts: list[str]) -> list[Vector]:
        """Unit-length float32 vectors (``array('f')``), one per text, in order: one ``InvokeModel`` per text, sent
        concurrently (at most ``concurrency`` at a time). Each answer is normalised again (Titan's ``normalize``
        already gives unit length, up to float rounding)."""
        if isinstance(texts, str):
            raise TypeError("embed takes a list of texts, not one string")
        if not texts:
            return []
        if self.concurrency == 1 or len(texts) == 1:
            return [self._embed_one(t) for t in texts]
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(texts))) as pool:
            return list(pool.map(self._embed_one, texts))

    def embed(self, texts: list[str]) -> list[list[float]]:
        """Like :meth:`embed_vectors`, as lists of floats."""
        return [vector.tolist() for vector in self.embed_vectors(texts)]
