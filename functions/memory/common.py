"""What the memory function's resource modules share: the app's resources (database, embedding provider) and the
route dependencies that give them (``RESOURCES``, ``CALLER``), path and query checks, and the embedding step
(caller-supplied vectors checked, stored vectors reused by content hash, the rest computed in one batch)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import psycopg
from fastapi import Depends, HTTPException, Path, Query, Request, status

from soorma.functions.memory import search
from soorma.functions.memory.embeddings import (
    DIMENSIONS_ENV,
    EmbeddingError,
    EmbeddingProvider,
    check_dimensions,
    expected_dimensions,
    model_id,
    provider_from_env,
)
from soorma.functions.memory.vectors import Vector, is_finite, is_zero, to_vector
from soorma.functions.memory.wire import MAX_CONTENT_BYTES, MAX_ID_CHARS
from soorma.functions.shared.db import Database, database_from_env
from soorma.functions.shared.service import current_identity
from soorma.identity import WRITER_ROLES, Identity

#: Roles that may write public knowledge and public procedures (readable by every service tenant of the platform
#: tenant). An end user (role ``user``) writes only private rows.
PUBLIC_WRITERS = WRITER_ROLES

#: The path prefix of every memory route.
PREFIX = "/v1/memory"

#: The routes' ``caller`` parameter: the authorizer's identity (:func:`soorma.functions.shared.service.current_identity`).
CALLER = Depends(current_identity)


class Resources:
    """The app's database and embedding provider, resolved from the environment on first use."""

    def __init__(self, db: Database | None, embedder: EmbeddingProvider | None) -> None:
        self._db = db
        self._embedder = embedder
        self._lock = threading.Lock()

    @property
    def db(self) -> Database:
        if self._db is None:
            with self._lock:
                if self._db is None:
                    self._db = database_from_env()
        return self._db

    @property
    def embedder(self) -> EmbeddingProvider:
        if self._embedder is None:
            with self._lock:
                if self._embedder is None:
                    provider = provider_from_env()
                    try:
                        check_dimensions(provider)
                    except ValueError as exc:
                        raise EmbeddingError(f"embedding provider misconfigured: {exc}") from exc
                    self._embedder = provider
        return self._embedder

    @property
    def model(self) -> str:
        return model_id(self.embedder)

    def embed(self, texts: list[str]) -> list[Vector]:
        """The provider's vectors for ``texts``, one ``array('f')`` per text (its ``embed_vectors`` when it has
        one, else its ``embed``). A provider that answers the wrong number of vectors, vectors of another width than
        ``SOORMA_EMBEDDING_DIMENSIONS``, or values that are not finite float32 numbers raises ``EmbeddingError``
        (the route answers 502)."""
        if not texts:
            return []
        embedder = self.embedder
        produce = getattr(embedder, "embed_vectors", None) or embedder.embed
        raw = produce(texts)
        dims = expected_dimensions()
        if len(raw) != len(texts):
            raise EmbeddingError(f"embedding provider returned {len(raw)} vectors for {len(texts)} texts")
        out: list[Vector] = []
        for values in raw:
            try:
                vector = to_vector(values)
            except (TypeError, ValueError) as exc:
                raise EmbeddingError(f"embedding provider returned something that is not a vector: {exc}") from exc
            if len(vector) != dims:
                raise EmbeddingError(
                    f"embedding provider returned {len(vector)}-d vectors; {DIMENSIONS_ENV} is {dims}"
                )
            if not is_finite(vector):
                raise EmbeddingError("embedding provider returned a vector with NaN or infinite values")
            out.append(vector)
        return out

    def vectors(
        self, caller: Identity, texts: Sequence[str], supplied: Sequence[list[float] | None] | None = None
    ) -> list[tuple[Vector, str]]:
        """``(vector, embedding_model)`` for each text, in order.

        A caller-supplied vector is used as is (as float32) once its width and values are checked (422 otherwise:
        another width than ``SOORMA_EMBEDDING_DIMENSIONS``, a value beyond float32, all zeros) and is stored as model
        ``client``; otherwise a vector the provider already computed for the same text (content hash, same model) is
        reused; the rest are computed in one batch, outside any transaction (no connection is held meanwhile).
        """
        supplied = list(supplied) if supplied is not None else [None] * len(texts)
        dims = expected_dimensions()
        out: list[tuple[Vector, str] | None] = [None] * len(texts)
        for i, vector in enumerate(supplied):
            if vector is not None:
                if len(vector) != dims:
                    raise HTTPException(
                        status.HTTP_422_UNPROCESSABLE_CONTENT,
                        f"embedding has {len(vector)} dimensions; this deployment stores {dims}"
                        f" ({DIMENSIONS_ENV})",
                    )
                stored = to_vector(vector)
                if not is_finite(stored):
                    raise HTTPException(
                        status.HTTP_422_UNPROCESSABLE_CONTENT,
                        "embedding values must fit in float32 (magnitudes up to about 3.4e38): pgvector stores float4",
                    )
                if is_zero(stored):
                    raise HTTPException(
                        status.HTTP_422_UNPROCESSABLE_CONTENT,
                        "embedding is the zero vector once stored as float32 (its values are all below about 1e-45)",
                    )
                out[i] = (stored, search.CLIENT_MODEL_ID)
        need = [i for i in range(len(texts)) if out[i] is None]
        if need:
            model = self.model
            hashes = {i: search.content_hash(texts[i]) for i in need}
            with self.db.transaction(caller) as conn:
                known = search.existing_embeddings(conn, hashes.values(), model)
            missing: dict[str, str] = {}
            for i in need:
                if hashes[i] not in known:
                    missing.setdefault(hashes[i], texts[i])
            if missing:
                known.update(zip(missing.keys(), self.embed(list(missing.values()))))
            for i in need:
                out[i] = (known[hashes[i]], model)
        return out  # type: ignore[return-value]

    def query_vector(self, text: str) -> Vector:
        """The provider's vector for one search text."""
        (vector,) = self.embed([text])
        return vector


def app_resources(request: Request) -> Resources:
    """FastAPI dependency: the memory app's :class:`Resources` (set by ``create_app``)."""
    resources: Resources = request.app.state.resources
    return resources


#: The routes' ``res`` parameter: the app's :class:`Resources`.
RESOURCES = Depends(app_resources)


def id_path(what: str) -> Any:
    """A path parameter that is an id: 1 to ``MAX_ID_CHARS`` characters."""
    return Path(..., min_length=1, max_length=MAX_ID_CHARS, description=what)


def agent_query() -> Any:
    """The ``agent_id`` query parameter of the per-agent routes: 1 to ``MAX_ID_CHARS`` characters."""
    return Query(..., min_length=1, max_length=MAX_ID_CHARS)


def check_path(value: str, what: str) -> str:
    """``value`` unless it holds NUL (422: PostgreSQL text cannot store it)."""
    if "\x00" in value:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"{what} must not contain NUL characters")
    return value


def check_uuid(value: str, what: str) -> str:
    """``value`` in the canonical text form of a UUID (422 when it is not one)."""
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"{what} is not a UUID: {value[:80]!r}") from None


def query_text(value: str, what: str) -> str:
    """A search text: not blank, at most ``MAX_CONTENT_BYTES`` (UTF-8), no NUL (422 otherwise)."""
    if not value.strip():
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"{what} must not be empty")
    if len(value.encode("utf-8")) > MAX_CONTENT_BYTES:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"{what} is longer than {MAX_CONTENT_BYTES} bytes")
    return check_path(value, what)


#: A per-agent nearest-neighbour search of one resource: ``(conn, caller, agent_id, vector, limit, ef_search)`` →
#: ``[(row, score)]``, best first.
AgentSearch = Callable[
    [psycopg.Connection, Identity, str, Vector, int, int | None], list[tuple[dict[str, Any], float]]
]


def search_by_agent(
    res: Resources, caller: Identity, search_rows: AgentSearch, agent_id: str, q: str, limit: int, ef_search: int | None
) -> list[tuple[dict[str, Any], float]]:
    """``search_rows`` for ``agent_id``'s rows nearest to the search text ``q`` (embedded by the app's provider), as
    ``caller``: ``[(row, score)]``, best first. 422 when ``agent_id`` holds NUL or ``q`` is blank, too long or holds
    NUL."""
    check_path(agent_id, "agent_id")
    vector = res.query_vector(query_text(q, "q"))
    with res.db.transaction(caller) as conn:
        return search_rows(conn, caller, agent_id, vector, limit, ef_search)


def require_public_writer(caller: Identity, is_public: bool, what: str) -> None:
    """403 when a caller whose role may not write public rows writes one."""
    if is_public and caller.role not in PUBLIC_WRITERS:
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"role {caller.role!r} may not write public {what} (is_public=true)")
