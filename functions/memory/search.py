"""pgvector plumbing the embedded resources (semantic, episodic, procedural memory) share: the ``vector`` type on a
connection, content hashes and the reuse of stored embeddings, and nearest-neighbour search on an HNSW index."""

from __future__ import annotations

import hashlib
import threading
import weakref
from collections.abc import Iterable
from typing import Any

import psycopg
from fastapi import Query
from psycopg.types import TypeInfo

from soorma.functions.memory import vectors
from soorma.functions.memory.vectors import Vector

# HNSW search settings (pgvector >= 0.8): ef_search is the candidate list size (more = better recall, slower);
# iterative scans keep walking the graph when filters (the RLS tenant predicate, include_public=false, agent_id)
# discard candidates, so a filtered search still returns `limit` rows. relaxed_order may return rows slightly out of
# order, so the outer query re-sorts. A caller may set ef_search per query (``?ef_search=``, bounded); it is never
# below the limit.
EF_SEARCH_DEFAULT = 64
EF_SEARCH_MAX = 1000
MAX_SCAN_TUPLES = 20000  # pgvector's default: how far an iterative scan walks before it gives up

#: ``model_id`` of the local model, and of every row stored before the column existed (0005).
LOCAL_MODEL_ID = "local:all-MiniLM-L6-v2"
#: ``embedding_model`` of a vector the caller supplied (never reused for anyone else's text).
CLIENT_MODEL_ID = "client"


def ef_search_query() -> Any:
    """The ``ef_search`` query parameter of the search routes."""
    return Query(
        None, ge=1, le=EF_SEARCH_MAX,
        description="HNSW candidate list size for this search (recall vs latency); never below limit",
    )


def search_settings(conn: psycopg.Connection, limit: int, ef_search: int | None = None) -> int:
    """Set the transaction's HNSW settings for one search; returns the ef_search used."""
    ef = max(limit, min(EF_SEARCH_MAX, ef_search if ef_search else max(EF_SEARCH_DEFAULT, 2 * limit)))
    conn.execute(
        "select set_config('hnsw.ef_search', %s, true), set_config('hnsw.iterative_scan', 'relaxed_order', true),"
        " set_config('hnsw.max_scan_tuples', %s, true)",
        (str(ef), str(MAX_SCAN_TUPLES)),
    )
    return ef


_vector_info: TypeInfo | None = None
_vector_lock = threading.Lock()
_registered: weakref.WeakSet[psycopg.Connection] = weakref.WeakSet()


def use_vectors(conn: psycopg.Connection) -> None:
    """Register pgvector's ``vector`` type on ``conn`` (:func:`soorma.functions.memory.vectors.register`, no numpy):
    ``array('f')`` vectors (and numpy arrays, when a caller has numpy) go in as binary ``vector`` values and
    ``vector`` columns come back as ``array('f')``. The type lookup runs once per process."""
    global _vector_info
    if conn in _registered:
        return
    if _vector_info is None:
        with _vector_lock:
            if _vector_info is None:
                info = TypeInfo.fetch(conn, "vector")
                if info is None:
                    raise RuntimeError("the vector extension is not installed in this database")
                _vector_info = info
    vectors.register(conn, _vector_info)
    _registered.add(conn)


def content_hash(content: str) -> str:
    """The SHA-256 (hex) of the text that was embedded: the key under which its vector is reused."""
    return hashlib.sha256(content.encode("utf-8")).hexdigest()


def existing_embeddings(
    conn: psycopg.Connection, hashes: Iterable[str], model: str | None = None
) -> dict[str, Vector]:
    """Stored embeddings for these content hashes computed by ``model`` (the provider's ``model_id``), among the rows
    the caller can see: its platform tenant's public and its own semantic and procedural rows, and its own episodic
    rows. The same text always has the same embedding under one model, so it is not computed again. ``content_hash``
    is always the hash of the text that was embedded. ``model=None`` means the local model (older callers)."""
    wanted = sorted(set(hashes))
    if not wanted:
        return {}
    use_vectors(conn)
    params = {"h": wanted, "m": model or LOCAL_MODEL_ID}
    rows = conn.execute(
        "select distinct on (content_hash) content_hash, embedding from ("
        " select content_hash, embedding from memory.semantic_memory"
        "  where platform_tenant_id = public.soorma_platform_tenant() and content_hash = any(%(h)s)"
        "  and embedding_model = %(m)s"
        " union all select content_hash, embedding from memory.procedural_memory"
        "  where platform_tenant_id = public.soorma_platform_tenant() and content_hash = any(%(h)s)"
        "  and embedding_model = %(m)s"
        " union all select content_hash, embedding from memory.episodic_memory"
        "  where platform_tenant_id = public.soorma_platform_tenant()"
        "  and service_tenant_id = public.soorma_service_tenant() and service_user_id = public.soorma_service_user()"
        "  and content_hash = any(%(h)s) and embedding_model = %(m)s"
        ") found",
        params,
    ).fetchall()
    return {row["content_hash"]: row["embedding"] for row in rows}


def nearest_sql(table: str, columns: str, where: str) -> str:
    """The ``limit`` rows of ``memory.<table>`` meeting ``where`` nearest to the vector ``q`` by cosine distance,
    with their ``distance``, nearest first (parameters ``q``, ``limit`` and those of ``where``).

    ``ORDER BY embedding <=> q`` is what lets the table's HNSW index serve the search (with an iterative scan for the
    filters); when the caller's rows are a small part of the table the planner may instead read them through an
    identity btree and sort them, which is exact. The outer sort restores the order ``relaxed_order`` may loosen."""
    return (
        "with nearest as materialized ("
        f" select {columns}, embedding <=> %(q)s as distance from memory.{table}"
        f" where {where}"
        " order by embedding <=> %(q)s limit %(limit)s)"
        " select * from nearest order by distance"
    )


def nearest(
    conn: psycopg.Connection, statement: str, params: dict[str, Any], limit: int, ef_search: int | None
) -> list[tuple[dict[str, Any], float]]:
    """Run a :func:`nearest_sql` statement with the HNSW settings for ``limit``; ``(row, score)`` pairs, best first,
    where score is ``1 - cosine distance``."""
    use_vectors(conn)
    search_settings(conn, limit, ef_search)
    rows = conn.execute(statement, {**params, "limit": limit}).fetchall()
    return [(row, 1.0 - float(row["distance"])) for row in rows]
