"""Semantic memory (knowledge): passages embedded on pgvector, private to their author or public to its platform
tenant (``memory.semantic_memory``, 0004_memory.sql).

``POST /semantic`` → 201 passage; ``POST /semantic/batch`` ``{items: [...]}`` (≤ 256) → 201 ``{ids, count}``;
``POST /semantic/query?query=&limit=5&include_public=true&ef_search=`` and ``GET /semantic/search?q=`` → passages
with ``score`` (1 - cosine distance), best first; ``GET /semantic?limit=&cursor=`` → ``{items, count, nextCursor}``
(the caller's own passages); ``DELETE /semantic/{id}`` → 204.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, HTTPException, Query, status
from fastapi.responses import Response
from psycopg import sql
from psycopg.types.json import Jsonb
from pydantic import Field

from soorma.functions.memory.common import (
    CALLER,
    PREFIX,
    RESOURCES,
    Resources,
    check_uuid,
    id_path,
    query_text,
    require_public_writer,
)
from soorma.functions.memory.owned import OWNER_COLUMNS, OwnedTable, Row, owner_params, visible_owner
from soorma.functions.memory.search import (
    LOCAL_MODEL_ID,
    content_hash,
    ef_search_query,
    nearest,
    nearest_sql,
    use_vectors,
)
from soorma.functions.memory.vectors import Vector
from soorma.functions.memory.wire import (
    MAX_BATCH_ITEMS,
    Body,
    Content,
    Embedding,
    Id,
    JsonObject,
    Reply,
    SharedReply,
    Text,
    by_field,
    check_json,
)
from soorma.identity import Identity

# -- wire models -----------------------------------------------------------------------------------------------------


class SemanticCreate(Body):
    content: Content
    external_id: Id | None = None
    is_public: bool = False
    metadata: JsonObject = Field(default_factory=dict)
    # soorma-core accepts tags and source; they are kept inside metadata (full_metadata)
    tags: Annotated[list[str], by_field(check_json)] | None = None
    source: Text | None = None
    # A vector computed by the caller (same model and width as this deployment's); else the provider computes it.
    embedding: Embedding | None = None

    def full_metadata(self) -> dict[str, Any]:
        """``metadata`` with ``tags`` and ``source`` added when given (keys already in ``metadata`` win)."""
        metadata = dict(self.metadata)
        if self.tags is not None:
            metadata.setdefault("tags", self.tags)
        if self.source is not None:
            metadata.setdefault("source", self.source)
        return metadata


class SemanticBatch(Body):
    items: list[SemanticCreate] = Field(min_length=1, max_length=MAX_BATCH_ITEMS)


class Knowledge(SharedReply):
    """A passage."""


class StoredBatch(Reply):
    ids: list[str]
    count: int


class KnowledgePage(Reply):
    """One page of the caller's own passages; ``nextCursor`` fetches the next (``null`` on the last page)."""

    items: list[Knowledge]
    count: int
    next_cursor: str | None


# -- SQL -------------------------------------------------------------------------------------------------------------

TABLE = OwnedTable("semantic_memory", "knowledge", key=("id",))

SEMANTIC_COLUMNS = (
    "id, platform_tenant_id, service_tenant_id, service_user_id, content, external_id, is_public, metadata,"
    " created_at, updated_at"
)


def knowledge(row: Row, identity: Identity, score: float | None = None) -> Knowledge:
    """The wire form of a passage as ``identity`` may see it."""
    return Knowledge.model_validate({**visible_owner(row, identity), "score": score})


def _conflict_target(is_public: bool, has_external_id: bool) -> str:
    """The ON CONFLICT arbiter matching one of the four partial unique indexes of 0004_memory.sql."""
    if is_public:
        columns = "platform_tenant_id"
    else:
        columns = OWNER_COLUMNS
    key = "external_id" if has_external_id else "content_hash"
    predicate = "external_id is not null" if has_external_id else "external_id is null"
    predicate += " and is_public" if is_public else " and not is_public"
    return f"({columns}, {key}) where {predicate}"


class SemanticItem:
    """One passage ready to upsert (content hashed, metadata merged). ``vector``/``model``: its embedding and the
    model that computed it (``CLIENT_MODEL_ID`` for a caller-supplied vector), filled before the upsert."""

    __slots__ = ("content", "external_id", "hash", "is_public", "metadata", "model", "vector")

    def __init__(
        self,
        content: str,
        external_id: str | None,
        is_public: bool,
        metadata: dict[str, Any],
        vector: Vector | None = None,
        model: str | None = None,
    ) -> None:
        self.content = content
        self.hash = content_hash(content)
        self.external_id = external_id
        self.is_public = is_public
        self.metadata = metadata
        self.vector = vector
        self.model = model

    @property
    def key(self) -> tuple[Any, ...]:
        """The upsert key within one caller's request."""
        return _upsert_key(self.is_public, self.external_id, self.hash)


def _upsert_key(is_public: bool, external_id: str | None, hash_: str) -> tuple[Any, ...]:
    return (is_public, "x", external_id) if external_id is not None else (is_public, "h", hash_)


def upsert_semantic(
    conn: psycopg.Connection,
    identity: Identity,
    items: Sequence[SemanticItem],
    embeddings: dict[str, Vector] | None = None,
) -> list[Row]:
    """Insert or update ``items``; returns the stored rows in the order of ``items`` (items with the same upsert key
    share a row; the last one wins). Each item's ``vector`` (else ``embeddings[item.hash]``) is stored."""
    use_vectors(conn)
    last: dict[tuple[Any, ...], SemanticItem] = {}
    for item in items:
        last.pop(item.key, None)
        last[item.key] = item
    groups: dict[tuple[bool, bool], list[SemanticItem]] = {}
    for item in last.values():
        groups.setdefault((item.is_public, item.external_id is not None), []).append(item)

    by_key: dict[tuple[Any, ...], Row] = {}
    owner = owner_params(identity)
    for (is_public, has_external_id), group in groups.items():
        # One statement per partial unique index (ON CONFLICT names one arbiter), many rows each.
        values = sql.SQL(", ").join(sql.SQL("(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)") for _ in group)
        params: list[Any] = []
        for item in group:
            vector = item.vector if item.vector is not None else (embeddings or {})[item.hash]
            params += [
                owner["pt"], owner["st"], owner["su"], item.content, item.hash, item.external_id, item.is_public,
                Jsonb(item.metadata), vector, item.model or LOCAL_MODEL_ID,
            ]
        query = sql.SQL(
            "insert into memory.semantic_memory as m (" + OWNER_COLUMNS + ","
            " content, content_hash, external_id, is_public, metadata, embedding, embedding_model) values {values}"
            " on conflict {target} do update set content = excluded.content,"
            " content_hash = excluded.content_hash, metadata = excluded.metadata, embedding = excluded.embedding,"
            " embedding_model = excluded.embedding_model,"
            " updated_at = now() returning " + SEMANTIC_COLUMNS + ", content_hash"
        ).format(values=values, target=sql.SQL(_conflict_target(is_public, has_external_id)))
        for row in conn.execute(query, params).fetchall():
            by_key[_upsert_key(row["is_public"], row["external_id"], row["content_hash"])] = row
    return [by_key[item.key] for item in items]


def search_sql(include_public: bool) -> str:
    """The search statement (also used by the EXPLAIN test); parameters ``q`` (the query vector) and ``limit``."""
    # Without public rows the caller's own rows are what is searched: saying so explicitly (RLS alone cannot be
    # simplified that far by the planner) lets it choose the identity btree plus an exact sort when those rows are a
    # small part of the table, and HNSW with an iterative scan otherwise.
    visibility = "" if include_public else (
        " and not is_public and service_tenant_id = public.soorma_service_tenant()"
        " and service_user_id = public.soorma_service_user()"
    )
    return nearest_sql(
        "semantic_memory", SEMANTIC_COLUMNS, "platform_tenant_id = public.soorma_platform_tenant()" + visibility
    )


def search_semantic(
    conn: psycopg.Connection,
    identity: Identity,
    query_embedding: Vector,
    limit: int,
    include_public: bool,
    ef_search: int | None = None,
) -> list[tuple[Row, float]]:
    """The ``limit`` nearest passages the caller can see (``semantic_memory_embedding_hnsw``), with their scores."""
    return nearest(conn, search_sql(include_public), {"q": query_embedding}, limit, ef_search)


def list_semantic(
    conn: psycopg.Connection, identity: Identity, limit: int, after: tuple[datetime, str] | None
) -> list[Row]:
    """The caller's own passages (private and the public ones it wrote), oldest first, ``limit`` after the keyset
    position ``after`` = (created_at, id) of the last row of the previous page."""
    if after is None:
        return TABLE.select(conn, identity, columns=SEMANTIC_COLUMNS, order_by="created_at, id", limit=limit)
    return TABLE.select(
        conn, identity, columns=SEMANTIC_COLUMNS, order_by="created_at, id", limit=limit,
        where=" and (created_at, id) > (%(after_ts)s, %(after_id)s::uuid)",
        params={"after_ts": after[0], "after_id": after[1]},
    )


def _encode_cursor(row: Row) -> str:
    raw = json.dumps([row["created_at"].isoformat(), str(row["id"])]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, row_id = json.loads(raw)
        return datetime.fromisoformat(created_at), check_uuid(row_id, "cursor")
    except (ValueError, TypeError, HTTPException):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "cursor is not one this service issued") from None


# -- routes ----------------------------------------------------------------------------------------------------------

router = APIRouter(prefix=PREFIX)


def _upsert(res: Resources, caller: Identity, bodies: list[SemanticCreate]) -> list[Row]:
    require_public_writer(caller, any(b.is_public for b in bodies), "knowledge")
    items = [SemanticItem(b.content, b.external_id, b.is_public, b.full_metadata()) for b in bodies]
    # caller-supplied vectors checked, stored ones reused by content hash, the rest computed in one batch
    vectors = res.vectors(caller, [i.content for i in items], [b.embedding for b in bodies])
    for item, (vector, model) in zip(items, vectors):
        item.vector, item.model = vector, model
    with res.db.transaction(caller) as conn:
        return upsert_semantic(conn, caller, items)


@router.post("/semantic", status_code=status.HTTP_201_CREATED)
def store_knowledge(body: SemanticCreate, caller: Identity = CALLER, res: Resources = RESOURCES) -> Knowledge:
    (row,) = _upsert(res, caller, [body])
    return knowledge(row, caller)


@router.post("/semantic/batch", status_code=status.HTTP_201_CREATED)
def store_knowledge_batch(body: SemanticBatch, caller: Identity = CALLER, res: Resources = RESOURCES) -> StoredBatch:
    rows = _upsert(res, caller, body.items)
    return StoredBatch(ids=[str(row["id"]) for row in rows], count=len(rows))


def _search(
    res: Resources, caller: Identity, text: str, limit: int, include_public: bool, ef_search: int | None
) -> list[Knowledge]:
    vector = res.query_vector(text)
    with res.db.transaction(caller) as conn:
        found = search_semantic(conn, caller, vector, limit, include_public, ef_search)
    return [knowledge(row, caller, score) for row, score in found]


@router.post("/semantic/query")
def query_knowledge(
    query: str = Query(..., description="search text"),
    limit: int = Query(5, ge=1, le=50),
    include_public: bool = Query(True),
    ef_search: int | None = ef_search_query(),
    caller: Identity = CALLER,
    res: Resources = RESOURCES,
) -> list[Knowledge]:
    return _search(res, caller, query_text(query, "query"), limit, include_public, ef_search)


@router.get("/semantic/search")
def search_knowledge(
    q: str = Query(..., description="search text"),
    limit: int = Query(5, ge=1, le=50),
    ef_search: int | None = ef_search_query(),
    caller: Identity = CALLER,
    res: Resources = RESOURCES,
) -> list[Knowledge]:
    """soorma-core's legacy search: same as ``/semantic/query`` with public knowledge included."""
    return _search(res, caller, query_text(q, "q"), limit, True, ef_search)


@router.get("/semantic")
def list_knowledge(
    limit: int = Query(50, ge=1, le=200),
    cursor: str | None = Query(None, max_length=512),
    caller: Identity = CALLER,
    res: Resources = RESOURCES,
) -> KnowledgePage:
    """The caller's own passages (private, and public ones it wrote), oldest first, one page at a time: pass the
    answer's ``nextCursor`` to get the next page (``null`` on the last page)."""
    after = _decode_cursor(cursor) if cursor else None
    with res.db.transaction(caller) as conn:
        rows = list_semantic(conn, caller, limit + 1, after)
    page = rows[:limit]
    return KnowledgePage(
        items=[knowledge(row, caller) for row in page],
        count=len(page),
        next_cursor=_encode_cursor(page[-1]) if len(rows) > limit else None,
    )


@router.delete("/semantic/{memory_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
def delete_knowledge(
    memory_id: str = id_path("knowledge id"), caller: Identity = CALLER, res: Resources = RESOURCES
) -> None:
    """Delete one of the caller's own passages (RLS: another identity's rows, public ones included, are not its to
    delete)."""
    TABLE.remove(res.db, caller, id=uuid.UUID(check_uuid(memory_id, "knowledge id")))
