"""Episodic memory: the turns of an agent's conversations with a user, embedded (``memory.episodic_memory``,
0005_memory_agents.sql).

``POST /episodic`` → 201 the turn; ``GET /episodic/recent?agent_id=&limit=`` (newest first);
``GET /episodic/search?agent_id=&q=&limit=&ef_search=`` (nearest first, with ``score``).
"""

from __future__ import annotations

from typing import Any, Literal

import psycopg
from fastapi import APIRouter, Query, status
from pydantic import Field

from soorma.functions.memory.common import (
    CALLER,
    PREFIX,
    RESOURCES,
    Resources,
    agent_query,
    check_path,
    search_by_agent,
)
from soorma.functions.memory.owned import OWNED, OwnedTable, Row, owner_params
from soorma.functions.memory.search import content_hash, ef_search_query, nearest, nearest_sql, use_vectors
from soorma.functions.memory.vectors import Vector
from soorma.functions.memory.wire import Body, Content, EmbeddedReply, Embedding, Id, JsonObject
from soorma.identity import Identity

# -- wire models -----------------------------------------------------------------------------------------------------


class EpisodicCreate(Body):
    agent_id: Id
    role: Literal["user", "assistant", "system", "tool"]
    content: Content
    metadata: JsonObject = Field(default_factory=dict)
    embedding: Embedding | None = None


class Interaction(EmbeddedReply):
    """One turn of a conversation."""

    agent_id: str
    role: str


# -- SQL -------------------------------------------------------------------------------------------------------------

TABLE = OwnedTable("episodic_memory", "interaction", key=("id",), json_columns=frozenset({"metadata"}))
EPISODIC_COLUMNS = "id, service_tenant_id, service_user_id, agent_id, role, content, metadata, created_at"


def insert_episodic(
    conn: psycopg.Connection,
    identity: Identity,
    agent_id: str,
    role: str,
    content: str,
    metadata: dict[str, Any],
    vector: Vector,
    model: str,
) -> Row | None:
    """Store one turn with its embedding (``model`` computed ``vector`` from ``content``)."""
    use_vectors(conn)
    return TABLE.insert(
        conn, identity,
        {"agent_id": agent_id, "role": role, "content": content, "content_hash": content_hash(content),
         "metadata": metadata, "embedding": vector, "embedding_model": model},
        returning=EPISODIC_COLUMNS,
    )


def recent_episodic(conn: psycopg.Connection, identity: Identity, agent_id: str, limit: int) -> list[Row]:
    """The ``limit`` newest interactions of the caller with ``agent_id``, newest first (index
    ``episodic_memory_recent_idx``)."""
    return TABLE.select(
        conn, identity, columns=EPISODIC_COLUMNS, order_by="created_at desc, id desc", limit=limit, agent_id=agent_id
    )


def episodic_search_sql() -> str:
    """Parameters ``pt, st, su, agent, q, limit`` (``episodic_memory_embedding_hnsw``)."""
    return nearest_sql("episodic_memory", EPISODIC_COLUMNS, OWNED + " and agent_id = %(agent)s")


def search_episodic(
    conn: psycopg.Connection,
    identity: Identity,
    agent_id: str,
    vector: Vector,
    limit: int,
    ef_search: int | None = None,
) -> list[tuple[Row, float]]:
    """The caller's ``limit`` turns with ``agent_id`` nearest to ``vector``, with their scores."""
    return nearest(conn, episodic_search_sql(), owner_params(identity, agent=agent_id, q=vector), limit, ef_search)


# -- routes ----------------------------------------------------------------------------------------------------------

router = APIRouter(prefix=PREFIX)


@router.post("/episodic", status_code=status.HTTP_201_CREATED)
def log_interaction(body: EpisodicCreate, caller: Identity = CALLER, res: Resources = RESOURCES) -> Interaction:
    ((vector, model),) = res.vectors(caller, [body.content], [body.embedding])
    with res.db.transaction(caller) as conn:
        row = insert_episodic(conn, caller, body.agent_id, body.role, body.content, body.metadata, vector, model)
    return Interaction.model_validate(row)


@router.get("/episodic/recent")
def recent_history(
    agent_id: str = agent_query(),
    limit: int = Query(10, ge=1, le=100),
    caller: Identity = CALLER,
    res: Resources = RESOURCES,
) -> list[Interaction]:
    check_path(agent_id, "agent_id")
    with res.db.transaction(caller) as conn:
        rows = recent_episodic(conn, caller, agent_id, limit)
    return [Interaction.model_validate(row) for row in rows]


@router.get("/episodic/search")
def search_interactions(
    agent_id: str = agent_query(),
    q: str = Query(..., description="search text"),
    limit: int = Query(5, ge=1, le=50),
    ef_search: int | None = ef_search_query(),
    caller: Identity = CALLER,
    res: Resources = RESOURCES,
) -> list[Interaction]:
    found = search_by_agent(res, caller, search_episodic, agent_id, q, limit, ef_search)
    return [Interaction.model_validate({**row, "score": score}) for row, score in found]
