"""SQL of the memory function's agent-state tables (0005_memory_agents.sql): episodic and procedural memory, plan
context, plans, sessions, and the admin erase.

Like :mod:`soorma.functions.memory.store`, every function takes a connection inside
``Database.transaction(identity)`` (row-level security sees the caller) and names the identity columns explicitly so
the intended index is obvious to the reader and the planner. Responses are camelCase dicts (soorma-core's wire format).
"""

from __future__ import annotations

import hashlib
from typing import Any, Iterable

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from soorma.functions.memory.store import _OWNED, _ids, _ts, content_hash, search_settings, use_vectors
from soorma.functions.memory.vectors import Vector
from soorma.identity import Identity

# -- episodic memory -------------------------------------------------------------------------------------------------

_EPISODIC_COLUMNS = "id, service_tenant_id, service_user_id, agent_id, role, content, metadata, created_at"


def episodic_response(row: dict[str, Any], score: float | None = None) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "tenantId": row["service_tenant_id"],
        "userId": row["service_user_id"],
        "agentId": row["agent_id"],
        "role": row["role"],
        "content": row["content"],
        "metadata": row["metadata"],
        "createdAt": _ts(row["created_at"]),
        "score": score,
    }


def insert_episodic(
    conn: psycopg.Connection,
    identity: Identity,
    agent_id: str,
    role: str,
    content: str,
    metadata: dict[str, Any],
    vector: Vector,
    model: str,
) -> dict[str, Any]:
    use_vectors(conn)
    return conn.execute(
        "insert into memory.episodic_memory (platform_tenant_id, service_tenant_id, service_user_id, agent_id, role,"
        " content, content_hash, metadata, embedding, embedding_model)"
        " values (%(pt)s, %(st)s, %(su)s, %(agent)s, %(role)s, %(content)s, %(hash)s, %(metadata)s, %(vector)s,"
        " %(model)s) returning " + _EPISODIC_COLUMNS,
        _ids(
            identity, agent=agent_id, role=role, content=content, hash=content_hash(content),
            metadata=Jsonb(metadata), vector=vector, model=model,
        ),
    ).fetchone()


def recent_episodic(conn: psycopg.Connection, identity: Identity, agent_id: str, limit: int) -> list[dict[str, Any]]:
    """The ``limit`` newest interactions of the caller with ``agent_id``, newest first (index
    ``episodic_memory_recent_idx``)."""
    return conn.execute(
        f"select {_EPISODIC_COLUMNS} from memory.episodic_memory where {_OWNED} and agent_id = %(agent)s"
        " order by created_at desc, id desc limit %(limit)s",
        _ids(identity, agent=agent_id, limit=limit),
    ).fetchall()


def episodic_search_sql() -> str:
    """Parameters ``pt, st, su, agent, q, limit``. Ordered by ``embedding <=> q`` so ``episodic_memory_embedding_hnsw``
    can serve it (with an iterative scan for the identity/agent filter); when the caller's rows are a small part of
    the table the planner may instead read them through the identity btree and sort them, which is exact."""
    return (
        "with nearest as materialized ("
        " select " + _EPISODIC_COLUMNS + ", embedding <=> %(q)s as distance from memory.episodic_memory"
        " where " + _OWNED + " and agent_id = %(agent)s"
        " order by embedding <=> %(q)s limit %(limit)s)"
        " select * from nearest order by distance"
    )


def search_episodic(
    conn: psycopg.Connection,
    identity: Identity,
    agent_id: str,
    vector: Vector,
    limit: int,
    ef_search: int | None = None,
) -> list[tuple[dict[str, Any], float]]:
    use_vectors(conn)
    search_settings(conn, limit, ef_search)
    rows = conn.execute(episodic_search_sql(), _ids(identity, agent=agent_id, q=vector, limit=limit)).fetchall()
    return [(row, 1.0 - float(row["distance"])) for row in rows]


# -- procedural memory -----------------------------------------------------------------------------------------------

_PROCEDURAL_COLUMNS = (
    "id, service_tenant_id, service_user_id, agent_id, procedure_type, trigger_condition, content, external_id,"
    " is_public, metadata, created_at, updated_at"
)


def procedural_response(row: dict[str, Any], identity: Identity, score: float | None = None) -> dict[str, Any]:
    mine = row["service_tenant_id"] == identity.service_tenant_id and row["service_user_id"] == identity.service_user_id
    return {
        "id": str(row["id"]),
        "tenantId": row["service_tenant_id"] if mine else None,
        "userId": row["service_user_id"] if mine else None,
        "agentId": row["agent_id"],
        "procedureType": row["procedure_type"],
        "triggerCondition": row["trigger_condition"],
        "content": row["content"],
        "externalId": row["external_id"],
        "isPublic": row["is_public"],
        "metadata": row["metadata"],
        "createdAt": _ts(row["created_at"]),
        "updatedAt": _ts(row["updated_at"]),
        "score": score,
    }


def procedural_upsert_key(
    external_id: str | None, procedure_type: str, trigger_condition: str | None, content: str
) -> str:
    if external_id is not None:
        return "x:" + external_id
    material = "\x1f".join((procedure_type, trigger_condition or "", content))
    return "h:" + hashlib.sha256(material.encode("utf-8")).hexdigest()


def upsert_procedural(
    conn: psycopg.Connection,
    identity: Identity,
    *,
    agent_id: str,
    procedure_type: str,
    trigger_condition: str | None,
    content: str,
    external_id: str | None,
    is_public: bool,
    metadata: dict[str, Any],
    search_text: str,
    vector: Vector,
    model: str,
) -> dict[str, Any]:
    """Insert or update one procedure (upsert key: external_id, else the hash of type, trigger and content)."""
    use_vectors(conn)
    if is_public:
        target = "(platform_tenant_id, agent_id, upsert_key) where is_public"
    else:
        target = "(platform_tenant_id, service_tenant_id, service_user_id, agent_id, upsert_key) where not is_public"
    return conn.execute(
        "insert into memory.procedural_memory (platform_tenant_id, service_tenant_id, service_user_id, agent_id,"
        " procedure_type, trigger_condition, content, content_hash, upsert_key, external_id, is_public, metadata,"
        " embedding, embedding_model) values (%(pt)s, %(st)s, %(su)s, %(agent)s, %(type)s, %(trigger)s, %(content)s,"
        " %(hash)s, %(key)s, %(external)s, %(public)s, %(metadata)s, %(vector)s, %(model)s)"
        f" on conflict {target} do update set procedure_type = excluded.procedure_type,"
        " trigger_condition = excluded.trigger_condition, content = excluded.content,"
        " content_hash = excluded.content_hash, metadata = excluded.metadata, embedding = excluded.embedding,"
        " embedding_model = excluded.embedding_model, updated_at = now()"
        " returning " + _PROCEDURAL_COLUMNS,
        _ids(
            identity, agent=agent_id, type=procedure_type, trigger=trigger_condition, content=content,
            hash=content_hash(search_text),
            key=procedural_upsert_key(external_id, procedure_type, trigger_condition, content),
            external=external_id, public=is_public, metadata=Jsonb(metadata), vector=vector, model=model,
        ),
    ).fetchone()


def procedural_search_sql() -> str:
    """Parameters ``agent, q, limit``; visibility (own rows and the platform tenant's public ones) is RLS's."""
    return (
        "with nearest as materialized ("
        " select " + _PROCEDURAL_COLUMNS + ", embedding <=> %(q)s as distance from memory.procedural_memory"
        " where platform_tenant_id = public.soorma_platform_tenant() and agent_id = %(agent)s"
        " order by embedding <=> %(q)s limit %(limit)s)"
        " select * from nearest order by distance"
    )


def search_procedural(
    conn: psycopg.Connection,
    identity: Identity,
    agent_id: str,
    vector: Vector,
    limit: int,
    ef_search: int | None = None,
) -> list[tuple[dict[str, Any], float]]:
    use_vectors(conn)
    search_settings(conn, limit, ef_search)
    rows = conn.execute(procedural_search_sql(), {"agent": agent_id, "q": vector, "limit": limit}).fetchall()
    return [(row, 1.0 - float(row["distance"])) for row in rows]


def delete_procedural(conn: psycopg.Connection, identity: Identity, procedure_id: str) -> bool:
    cur = conn.execute(
        f"delete from memory.procedural_memory where {_OWNED} and id = %(id)s::uuid",
        _ids(identity, id=procedure_id),
    )
    return cur.rowcount > 0


# -- plan context ----------------------------------------------------------------------------------------------------

_PLAN_CONTEXT_FIELDS = (
    "session_id", "goal_event", "goal_data", "response_event", "state", "current_state", "correlation_ids",
)
_PLAN_JSON = {"goal_data", "state", "correlation_ids"}


def _value(name: str, value: Any) -> Any:
    return Jsonb(value) if name in _PLAN_JSON else value


def plan_context_response(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "tenantId": row["service_tenant_id"],
        "userId": row["service_user_id"],
        "planId": row["plan_id"],
        "sessionId": row["session_id"],
        "goalEvent": row["goal_event"],
        "goalData": row["goal_data"],
        "responseEvent": row["response_event"],
        "state": row["state"],
        "currentState": row["current_state"],
        "correlationIds": row["correlation_ids"],
        "version": row["version"],
        "createdAt": _ts(row["created_at"]),
        "updatedAt": _ts(row["updated_at"]),
    }


def upsert_plan_context(
    conn: psycopg.Connection, identity: Identity, fields: dict[str, Any], expected_version: int | None
) -> dict[str, Any] | None:
    """Insert or overwrite a plan context; ``None`` when ``expected_version`` is given and the stored row has another
    version (the route answers 409). The correlation side table follows in the same transaction."""
    plan_id = fields["plan_id"]
    columns = sql.SQL(", ").join(sql.Identifier(n) for n in _PLAN_CONTEXT_FIELDS)
    placeholders = sql.SQL(", ").join(sql.Placeholder(n) for n in _PLAN_CONTEXT_FIELDS)
    updates = sql.SQL(", ").join(sql.SQL("{0} = excluded.{0}").format(sql.Identifier(n)) for n in _PLAN_CONTEXT_FIELDS)
    query = sql.SQL(
        "insert into memory.plan_context as p (platform_tenant_id, service_tenant_id, service_user_id, plan_id,"
        " {columns}) values (%(pt)s, %(st)s, %(su)s, %(plan)s, {placeholders})"
        " on conflict (platform_tenant_id, service_tenant_id, service_user_id, plan_id) do update set {updates},"
        " version = p.version + 1, updated_at = now()"
        " where %(expected)s::integer is null or p.version = %(expected)s::integer"
        " returning *"
    ).format(columns=columns, placeholders=placeholders, updates=updates)
    params = _ids(identity, plan=plan_id, expected=expected_version)
    params.update({n: _value(n, fields.get(n)) for n in _PLAN_CONTEXT_FIELDS})
    row = conn.execute(query, params).fetchone()
    if row is not None:
        _sync_correlations(conn, identity, plan_id, row["correlation_ids"])
    return row


def get_plan_context(conn: psycopg.Connection, identity: Identity, plan_id: str) -> dict[str, Any] | None:
    return conn.execute(
        f"select * from memory.plan_context where {_OWNED} and plan_id = %(plan)s", _ids(identity, plan=plan_id)
    ).fetchone()


def update_plan_context(
    conn: psycopg.Connection,
    identity: Identity,
    plan_id: str,
    changes: dict[str, Any],
    expected_version: int | None,
) -> dict[str, Any] | None:
    """Apply ``changes`` and bump the version; ``None`` when no row matched (missing, or another version)."""
    assignments = [
        sql.SQL("{} = {}").format(sql.Identifier(n), sql.Placeholder(n)) for n in _PLAN_CONTEXT_FIELDS if n in changes
    ]
    assignments += [sql.SQL("version = version + 1"), sql.SQL("updated_at = now()")]
    query = sql.SQL(
        "update memory.plan_context set {assignments} where " + _OWNED + " and plan_id = %(plan)s"
        " and (%(expected)s::integer is null or version = %(expected)s::integer) returning *"
    ).format(assignments=sql.SQL(", ").join(assignments))
    params = _ids(identity, plan=plan_id, expected=expected_version)
    params.update({n: _value(n, v) for n, v in changes.items()})
    row = conn.execute(query, params).fetchone()
    if row is not None and "correlation_ids" in changes:
        _sync_correlations(conn, identity, plan_id, row["correlation_ids"])
    return row


def delete_plan_context(conn: psycopg.Connection, identity: Identity, plan_id: str) -> bool:
    cur = conn.execute(
        f"delete from memory.plan_context where {_OWNED} and plan_id = %(plan)s", _ids(identity, plan=plan_id)
    )
    return cur.rowcount > 0  # memory.plan_correlations rows go with it (on delete cascade)


def by_correlation_sql() -> str:
    """A primary-key probe of memory.plan_correlations, then a unique-key probe of memory.plan_context."""
    return (
        "select p.* from memory.plan_correlations c join memory.plan_context p"
        " on p.platform_tenant_id = c.platform_tenant_id and p.service_tenant_id = c.service_tenant_id"
        " and p.service_user_id = c.service_user_id and p.plan_id = c.plan_id"
        " where c.platform_tenant_id = %(pt)s and c.service_tenant_id = %(st)s and c.service_user_id = %(su)s"
        " and c.correlation_id = %(cid)s"
    )


def plan_by_correlation(conn: psycopg.Connection, identity: Identity, correlation_id: str) -> dict[str, Any] | None:
    return conn.execute(by_correlation_sql(), _ids(identity, cid=correlation_id)).fetchone()


def _sync_correlations(conn: psycopg.Connection, identity: Identity, plan_id: str, ids: Iterable[str]) -> None:
    """Make memory.plan_correlations list exactly ``ids`` for this plan (an id claimed by another plan of the same
    identity moves to this one: the latest write wins)."""
    params = _ids(identity, plan=plan_id, ids=list(ids))
    conn.execute(
        f"delete from memory.plan_correlations where {_OWNED} and plan_id = %(plan)s"
        " and not (correlation_id = any(%(ids)s::text[]))",
        params,
    )
    if params["ids"]:
        conn.execute(
            "insert into memory.plan_correlations (platform_tenant_id, service_tenant_id, service_user_id,"
            " correlation_id, plan_id) select %(pt)s, %(st)s, %(su)s, c, %(plan)s from unnest(%(ids)s::text[]) as c"
            " on conflict (platform_tenant_id, service_tenant_id, service_user_id, correlation_id)"
            " do update set plan_id = excluded.plan_id where plan_correlations.plan_id <> excluded.plan_id",
            params,
        )


# -- plans -----------------------------------------------------------------------------------------------------------


def plan_response(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "tenantId": row["service_tenant_id"],
        "userId": row["service_user_id"],
        "planId": row["plan_id"],
        "sessionId": row["session_id"],
        "goalEvent": row["goal_event"],
        "goalData": row["goal_data"],
        "responseEvent": row["response_event"],
        "status": row["status"],
        "parentPlanId": row["parent_plan_id"],
        "createdAt": _ts(row["created_at"]),
        "updatedAt": _ts(row["updated_at"]),
    }


def create_plan(conn: psycopg.Connection, identity: Identity, fields: dict[str, Any]) -> dict[str, Any] | None:
    """Insert a plan; ``None`` when the caller already has one with this ``plan_id`` (the route answers 409)."""
    return conn.execute(
        "insert into memory.plans (platform_tenant_id, service_tenant_id, service_user_id, plan_id, session_id,"
        " goal_event, goal_data, response_event, status, parent_plan_id) values (%(pt)s, %(st)s, %(su)s, %(plan)s,"
        " %(session)s, %(goal_event)s, %(goal_data)s, %(response_event)s, %(status)s, %(parent)s)"
        " on conflict (platform_tenant_id, service_tenant_id, service_user_id, plan_id) do nothing returning *",
        _ids(
            identity, plan=fields["plan_id"], session=fields.get("session_id"), goal_event=fields["goal_event"],
            goal_data=Jsonb(fields.get("goal_data") or {}), response_event=fields.get("response_event"),
            status=fields.get("status") or "running", parent=fields.get("parent_plan_id"),
        ),
    ).fetchone()


def list_plans(
    conn: psycopg.Connection, identity: Identity, status: str | None, session_id: str | None, limit: int
) -> list[dict[str, Any]]:
    """Newest first (indexes ``plans_recent_idx`` / ``plans_status_idx``)."""
    where = _OWNED
    params = _ids(identity, limit=limit, status=status, session=session_id)
    if status is not None:
        where += " and status = %(status)s"
    if session_id is not None:
        where += " and session_id = %(session)s"
    return conn.execute(
        f"select * from memory.plans where {where} order by created_at desc, id desc limit %(limit)s", params
    ).fetchall()


def get_plan(conn: psycopg.Connection, identity: Identity, plan_id: str) -> dict[str, Any] | None:
    return conn.execute(
        f"select * from memory.plans where {_OWNED} and plan_id = %(plan)s", _ids(identity, plan=plan_id)
    ).fetchone()


def update_plan(
    conn: psycopg.Connection, identity: Identity, plan_id: str, changes: dict[str, Any]
) -> dict[str, Any] | None:
    allowed = ("status", "goal_data", "session_id")
    assignments = [
        sql.SQL("{} = {}").format(sql.Identifier(n), sql.Placeholder(n)) for n in allowed if n in changes
    ] + [sql.SQL("updated_at = clock_timestamp()")]
    query = sql.SQL(
        "update memory.plans set {assignments} where " + _OWNED + " and plan_id = %(plan)s returning *"
    ).format(assignments=sql.SQL(", ").join(assignments))
    params = _ids(identity, plan=plan_id)
    params.update({n: (Jsonb(v) if n == "goal_data" else v) for n, v in changes.items() if n in allowed})
    return conn.execute(query, params).fetchone()


def delete_plan(conn: psycopg.Connection, identity: Identity, plan_id: str) -> bool:
    cur = conn.execute(
        f"delete from memory.plans where {_OWNED} and plan_id = %(plan)s", _ids(identity, plan=plan_id)
    )
    return cur.rowcount > 0


# -- sessions --------------------------------------------------------------------------------------------------------


def session_response(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "tenantId": row["service_tenant_id"],
        "userId": row["service_user_id"],
        "sessionId": row["session_id"],
        "name": row["name"],
        "metadata": row["metadata"],
        "createdAt": _ts(row["created_at"]),
        "lastInteraction": _ts(row["last_interaction"]),
    }


def upsert_session(
    conn: psycopg.Connection, identity: Identity, session_id: str, name: str | None, metadata: dict[str, Any] | None
) -> tuple[dict[str, Any], bool]:
    """Create the session, or touch it (``last_interaction``; ``name``/``metadata`` replaced when given). Returns the
    row and whether it was created."""
    row = conn.execute(
        "insert into memory.sessions as s (platform_tenant_id, service_tenant_id, service_user_id, session_id, name,"
        " metadata) values (%(pt)s, %(st)s, %(su)s, %(session)s, %(name)s, coalesce(%(metadata)s, '{}'::jsonb))"
        " on conflict (platform_tenant_id, service_tenant_id, service_user_id, session_id) do update set"
        " name = coalesce(excluded.name, s.name),"
        " metadata = case when %(metadata)s::jsonb is null then s.metadata else excluded.metadata end,"
        " last_interaction = clock_timestamp()"
        " returning *, (xmax = 0) as created",
        _ids(identity, session=session_id, name=name, metadata=Jsonb(metadata) if metadata is not None else None),
    ).fetchone()
    return row, bool(row["created"])


def list_sessions(conn: psycopg.Connection, identity: Identity, limit: int) -> list[dict[str, Any]]:
    return conn.execute(
        f"select * from memory.sessions where {_OWNED} order by last_interaction desc, id desc limit %(limit)s",
        _ids(identity, limit=limit),
    ).fetchall()


def get_session(conn: psycopg.Connection, identity: Identity, session_id: str) -> dict[str, Any] | None:
    return conn.execute(
        f"select * from memory.sessions where {_OWNED} and session_id = %(session)s",
        _ids(identity, session=session_id),
    ).fetchone()


def delete_session(conn: psycopg.Connection, identity: Identity, session_id: str) -> bool:
    cur = conn.execute(
        f"delete from memory.sessions where {_OWNED} and session_id = %(session)s",
        _ids(identity, session=session_id),
    )
    return cur.rowcount > 0


# -- admin erase -----------------------------------------------------------------------------------------------------

#: Every tenant-owned memory table (side tables go with their parents by cascade).
ERASE_TABLES = (
    "semantic_memory", "episodic_memory", "procedural_memory", "working_memory", "task_context", "plan_context",
    "plans", "sessions", "idempotency_records",
)
ERASE_SCOPES = ("platform", "tenant", "user")


def erase(
    conn: psycopg.Connection,
    scope: str,
    platform_tenant_id: str,
    service_tenant_id: str | None = None,
    service_user_id: str | None = None,
) -> dict[str, int]:
    """Delete every row of a platform tenant, a service tenant or a user; returns the rows deleted per table.

    The transaction's identity must already be the erased one's (platform tenant; service tenant for 'tenant';
    all three for 'user'): this sets ``soorma.erase_scope`` so the erase policies of 0005 let it see the rows, and
    RLS still confines it to that platform tenant.
    """
    if scope not in ERASE_SCOPES:
        raise ValueError(f"unknown erase scope {scope!r}")
    conn.execute("select set_config('soorma.erase_scope', %s, true)", (scope,))
    where = "platform_tenant_id = %(pt)s"
    if scope in ("tenant", "user"):
        where += " and service_tenant_id = %(st)s"
    if scope == "user":
        where += " and service_user_id = %(su)s"
    params = {"pt": platform_tenant_id, "st": service_tenant_id, "su": service_user_id}
    counts: dict[str, int] = {}
    for table in ERASE_TABLES:
        cur = conn.execute(
            sql.SQL("delete from {} where " + where).format(sql.Identifier("memory", table)), params
        )
        counts[table] = cur.rowcount
    conn.execute("select set_config('soorma.erase_scope', '', true)")
    return counts
