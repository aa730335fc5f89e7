"""Procedural memory: an agent's skills, prompts and rules, embedded by when they apply (``memory.procedural_memory``,
0005_memory_agents.sql); private, or public to the platform tenant.

``POST /procedural`` → 201 (upsert by ``external_id``, else by type, trigger and content);
``GET /procedural/context?agent_id=&q=&limit=&ef_search=`` (best match first, with ``score``);
``DELETE /procedural/{id}`` → 204.
"""

from __future__ import annotations

import hashlib
import re
import uuid

import psycopg
from fastapi import APIRouter, Query, status
from fastapi.responses import Response
from pydantic import Field, field_validator

from soorma.functions.memory.common import (
    CALLER,
    PREFIX,
    RESOURCES,
    Resources,
    agent_query,
    check_uuid,
    id_path,
    require_public_writer,
    search_by_agent,
)
from soorma.functions.memory.owned import OWNER_COLUMNS, OwnedTable, Row, visible_owner
from soorma.functions.memory.search import content_hash, ef_search_query, nearest, nearest_sql, use_vectors
from soorma.functions.memory.vectors import Vector
from soorma.functions.memory.wire import (
    Body,
    Content,
    Embedding,
    Id,
    JsonObject,
    SharedReply,
    check_content,
)
from soorma.identity import Identity

_TYPE_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")

# -- wire models -----------------------------------------------------------------------------------------------------


class ProceduralCreate(Body):
    """A skill, prompt or rule of an agent. ``trigger_condition`` describes when it applies and is what searches
    match (``content`` when there is none); upsert by ``external_id``, else by (type, trigger, content)."""

    agent_id: Id
    content: Content
    trigger_condition: str | None = None
    procedure_type: str = "system_prompt"
    external_id: Id | None = None
    is_public: bool = False
    metadata: JsonObject = Field(default_factory=dict)
    embedding: Embedding | None = None

    @field_validator("trigger_condition")
    @classmethod
    def _trigger(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        return check_content(value, "trigger_condition")

    @field_validator("procedure_type")
    @classmethod
    def _type(cls, value: str) -> str:
        if not _TYPE_NAME.match(value):
            raise ValueError("procedure_type must be 1 to 64 letters, digits or _.:- (e.g. system_prompt)")
        return value

    @property
    def search_text(self) -> str:
        """What is embedded and matched: the trigger, else the content."""
        return self.trigger_condition or self.content


class Procedure(SharedReply):
    """A skill, prompt or rule of an agent."""

    agent_id: str
    procedure_type: str
    trigger_condition: str | None


# -- SQL -------------------------------------------------------------------------------------------------------------

TABLE = OwnedTable("procedural_memory", "procedure", key=("agent_id", "upsert_key"), json_columns=frozenset({"metadata"}))
PROCEDURAL_COLUMNS = (
    "id, service_tenant_id, service_user_id, agent_id, procedure_type, trigger_condition, content, external_id,"
    " is_public, metadata, created_at, updated_at"
)


def procedure(row: Row, identity: Identity, score: float | None = None) -> Procedure:
    """The wire form of a procedure as ``identity`` may see it."""
    return Procedure.model_validate({**visible_owner(row, identity), "score": score})


def procedural_upsert_key(
    external_id: str | None, procedure_type: str, trigger_condition: str | None, content: str
) -> str:
    """What a procedure is upserted by: its ``external_id``, else a hash of its type, trigger and content."""
    if external_id is not None:
        return "x:" + external_id
    material = "\x1f".join((procedure_type, trigger_condition or "", content))
    return "h:" + hashlib.sha256(material.encode("utf-8")).hexdigest()


def upsert_procedural(
    conn: psycopg.Connection, identity: Identity, body: ProceduralCreate, vector: Vector, model: str
) -> Row | None:
    """Insert or update one procedure (upsert key: :func:`procedural_upsert_key`), public ones per platform tenant."""
    use_vectors(conn)
    if body.is_public:
        arbiter = "(platform_tenant_id, agent_id, upsert_key) where is_public"
    else:
        arbiter = f"({OWNER_COLUMNS}, agent_id, upsert_key) where not is_public"
    return TABLE.upsert(
        conn, identity,
        {
            "agent_id": body.agent_id, "procedure_type": body.procedure_type,
            "trigger_condition": body.trigger_condition, "content": body.content,
            "content_hash": content_hash(body.search_text),
            "upsert_key": procedural_upsert_key(
                body.external_id, body.procedure_type, body.trigger_condition, body.content),
            "external_id": body.external_id, "is_public": body.is_public, "metadata": body.metadata,
            "embedding": vector, "embedding_model": model,
        },
        conflict=arbiter,
        update=("procedure_type", "trigger_condition", "content", "content_hash", "metadata", "embedding",
                "embedding_model"),
        returning=PROCEDURAL_COLUMNS,
    )


def procedural_search_sql() -> str:
    """Parameters ``agent, q, limit``; visibility (own rows and the platform tenant's public ones) is RLS's."""
    return nearest_sql(
        "procedural_memory", PROCEDURAL_COLUMNS,
        "platform_tenant_id = public.soorma_platform_tenant() and agent_id = %(agent)s",
    )


def search_procedural(
    conn: psycopg.Connection,
    identity: Identity,
    agent_id: str,
    vector: Vector,
    limit: int,
    ef_search: int | None = None,
) -> list[tuple[Row, float]]:
    """The ``limit`` procedures of ``agent_id`` the caller can see nearest to ``vector``, with their scores."""
    return nearest(conn, procedural_search_sql(), {"agent": agent_id, "q": vector}, limit, ef_search)


# -- routes ----------------------------------------------------------------------------------------------------------

router = APIRouter(prefix=PREFIX)


@router.post("/procedural", status_code=status.HTTP_201_CREATED)
def store_procedure(body: ProceduralCreate, caller: Identity = CALLER, res: Resources = RESOURCES) -> Procedure:
    require_public_writer(caller, body.is_public, "procedures")
    ((vector, model),) = res.vectors(caller, [body.search_text], [body.embedding])
    with res.db.transaction(caller) as conn:
        row = upsert_procedural(conn, caller, body, vector, model)
    return procedure(row, caller)


@router.get("/procedural/context")
def relevant_skills(
    agent_id: str = agent_query(),
    q: str = Query(..., description="the task or situation"),
    limit: int = Query(3, ge=1, le=20),
    ef_search: int | None = ef_search_query(),
    caller: Identity = CALLER,
    res: Resources = RESOURCES,
) -> list[Procedure]:
    found = search_by_agent(res, caller, search_procedural, agent_id, q, limit, ef_search)
    return [procedure(row, caller, score) for row, score in found]


@router.delete("/procedural/{procedure_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
def delete_procedure(
    procedure_id: str = id_path("procedure id"), caller: Identity = CALLER, res: Resources = RESOURCES
) -> None:
    TABLE.remove(res.db, caller, id=uuid.UUID(check_uuid(procedure_id, "procedure id")))
