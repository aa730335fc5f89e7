"""SQL of the memory function. Every function takes a connection that is inside ``Database.transaction(identity)``
(so row-level security sees the caller) and the caller's :class:`~soorma.identity.Identity`.

Queries also name the identity columns explicitly: RLS is the guarantee, the explicit predicates make the intended
index obvious to the reader and the planner.
"""

from __future__ import annotations

import hashlib
import threading
import weakref
from datetime import datetime
from typing import Any, Iterable, Sequence

import psycopg
from psycopg import sql
from psycopg.types import TypeInfo
from psycopg.types.json import Jsonb

from soorma.functions.memory import vectors
from soorma.functions.memory.vectors import Vector
from soorma.identity import Identity

# HNSW search settings (pgvector >= 0.8): ef_search is the candidate list size (more = better recall, slower);
# iterative scans keep walking the graph when filters (the RLS tenant predicate, include_public=false, agent_id)
# discard candidates, so a filtered search still returns `limit` rows. relaxed_order may return rows slightly out of
# order, so the outer query re-sorts. A caller may set ef_search per query (``?ef_search=``, bounded); it is never
# below the limit.
EF_SEARCH_DEFAULT = 64
EF_SEARCH_MAX = 1000
MAX_SCAN_TUPLES = 20000  # pgvector's default: how far an iterative scan walks before it gives up


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
_registered: "weakref.WeakSet[psycopg.Connection]" = weakref.WeakSet()


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
    return hashlib.sha256(content.encode("utf-8")).hexdigest()


def _ts(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _owner(row: dict[str, Any], identity: Identity) -> tuple[str | None, str | None]:
    """The row's service tenant and user when they are the caller's; ``None`` for another identity's public row
    (public knowledge is shared, its author's ids are not)."""
    if row["service_tenant_id"] == identity.service_tenant_id and row["service_user_id"] == identity.service_user_id:
        return row["service_tenant_id"], row["service_user_id"]
    return None, None


# -- semantic memory -------------------------------------------------------------------------------------------------

_SEMANTIC_COLUMNS = (
    "id, platform_tenant_id, service_tenant_id, service_user_id, content, external_id, is_public, metadata,"
    " created_at, updated_at"
)


def semantic_response(row: dict[str, Any], identity: Identity, score: float | None = None) -> dict[str, Any]:
    tenant_id, user_id = _owner(row, identity)
    return {
        "id": str(row["id"]),
        "tenantId": tenant_id,
        "userId": user_id,
        "content": row["content"],
        "externalId": row["external_id"],
        "isPublic": row["is_public"],
        "metadata": row["metadata"],
        "createdAt": _ts(row["created_at"]),
        "updatedAt": _ts(row["updated_at"]),
        "score": score,
    }


def _conflict_target(is_public: bool, has_external_id: bool) -> str:
    """The ON CONFLICT arbiter matching one of the four partial unique indexes of 0004_memory.sql."""
    if is_public:
        columns = "platform_tenant_id"
    else:
        columns = "platform_tenant_id, service_tenant_id, service_user_id"
    key = "external_id" if has_external_id else "content_hash"
    predicate = "external_id is not null" if has_external_id else "external_id is null"
    predicate += " and is_public" if is_public else " and not is_public"
    return f"({columns}, {key}) where {predicate}"


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


#: ``model_id`` of the local model, and of every row stored before the column existed (0005).
LOCAL_MODEL_ID = "local:all-MiniLM-L6-v2"
#: ``embedding_model`` of a vector the caller supplied (never reused for anyone else's text).
CLIENT_MODEL_ID = "client"


class SemanticItem:
    """One passage ready to upsert (content hashed, metadata merged). ``vector``/``model``: its embedding and the
    model that computed it (``CLIENT_MODEL_ID`` for a caller-supplied vector), filled before the upsert."""

    __slots__ = ("content", "hash", "external_id", "is_public", "metadata", "vector", "model")

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
    def key(self) -> tuple:
        """The upsert key within one caller's request."""
        return (self.is_public, "x", self.external_id) if self.external_id is not None else (self.is_public, "h", self.hash)


def upsert_semantic(
    conn: psycopg.Connection,
    identity: Identity,
    items: Sequence[SemanticItem],
    embeddings: dict[str, Vector] | None = None,
) -> list[dict[str, Any]]:
    """Insert or update ``items``; returns the stored rows in the order of ``items`` (items with the same upsert key
    share a row; the last one wins). Each item's ``vector`` (else ``embeddings[item.hash]``) is stored."""
    use_vectors(conn)
    last: dict[tuple, SemanticItem] = {}
    for item in items:
        last.pop(item.key, None)
        last[item.key] = item
    groups: dict[tuple[bool, bool], list[SemanticItem]] = {}
    for item in last.values():
        groups.setdefault((item.is_public, item.external_id is not None), []).append(item)

    by_key: dict[tuple, dict[str, Any]] = {}
    for (is_public, has_external_id), group in groups.items():
        values = sql.SQL(", ").join(
            sql.SQL("(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)") for _ in group
        )
        params: list[Any] = []
        for item in group:
            vector = item.vector if item.vector is not None else (embeddings or {})[item.hash]
            params += [
                identity.platform_tenant_id,
                identity.service_tenant_id,
                identity.service_user_id,
                item.content,
                item.hash,
                item.external_id,
                item.is_public,
                Jsonb(item.metadata),
                vector,
                item.model or LOCAL_MODEL_ID,
            ]
        query = sql.SQL(
            "insert into memory.semantic_memory as m (platform_tenant_id, service_tenant_id, service_user_id,"
            " content, content_hash, external_id, is_public, metadata, embedding, embedding_model) values {values}"
            " on conflict {target} do update set content = excluded.content,"
            " content_hash = excluded.content_hash, metadata = excluded.metadata, embedding = excluded.embedding,"
            " embedding_model = excluded.embedding_model,"
            " updated_at = now() returning " + _SEMANTIC_COLUMNS + ", content_hash"
        ).format(values=values, target=sql.SQL(_conflict_target(is_public, has_external_id)))
        for row in conn.execute(query, params).fetchall():
            key = (
                (row["is_public"], "x", row["external_id"])
                if row["external_id"] is not None
                else (row["is_public"], "h", row["content_hash"])
            )
            by_key[key] = row
    return [by_key[item.key] for item in items]


def search_semantic(
    conn: psycopg.Connection,
    identity: Identity,
    query_embedding: Vector,
    limit: int,
    include_public: bool,
    ef_search: int | None = None,
) -> list[tuple[dict[str, Any], float]]:
    """The ``limit`` nearest passages by cosine distance. ``ORDER BY embedding <=> q`` is what lets the HNSW index
    (``semantic_memory_embedding_hnsw``) serve the search; the score is ``1 - distance``."""
    use_vectors(conn)
    search_settings(conn, limit, ef_search)
    rows = conn.execute(search_sql(include_public), {"q": query_embedding, "limit": limit}).fetchall()
    return [(row, 1.0 - float(row["distance"])) for row in rows]


def search_sql(include_public: bool) -> str:
    """The search statement (also used by the EXPLAIN test); parameters ``q`` (the query vector) and ``limit``."""
    # Without public rows the caller's own rows are what is searched: saying so explicitly (RLS alone cannot be
    # simplified that far by the planner) lets it choose the identity btree plus an exact sort when those rows are a
    # small part of the table, and HNSW with an iterative scan otherwise.
    visibility = "" if include_public else (
        " and not is_public and service_tenant_id = public.soorma_service_tenant()"
        " and service_user_id = public.soorma_service_user()"
    )
    return (
        "with nearest as materialized ("
        " select " + _SEMANTIC_COLUMNS + ", embedding <=> %(q)s as distance"
        " from memory.semantic_memory"
        " where platform_tenant_id = public.soorma_platform_tenant()" + visibility +
        " order by embedding <=> %(q)s"
        " limit %(limit)s)"
        " select * from nearest order by distance"
    )


def list_semantic(
    conn: psycopg.Connection, identity: Identity, limit: int, after: tuple[datetime, str] | None
) -> list[dict[str, Any]]:
    """The caller's own passages (private and the public ones it wrote), oldest first, ``limit`` after the keyset
    position ``after`` = (created_at, id) of the last row of the previous page."""
    params = _ids(identity, limit=limit)
    where = _OWNED
    if after is not None:
        where += " and (created_at, id) > (%(after_ts)s, %(after_id)s::uuid)"
        params.update(after_ts=after[0], after_id=after[1])
    return conn.execute(
        f"select {_SEMANTIC_COLUMNS} from memory.semantic_memory where {where}"
        " order by created_at, id limit %(limit)s",
        params,
    ).fetchall()


def delete_semantic(conn: psycopg.Connection, identity: Identity, memory_id: str) -> bool:
    """Delete one of the caller's own passages (RLS: another identity's rows, public ones included, are not its to
    delete)."""
    cur = conn.execute(
        f"delete from memory.semantic_memory where {_OWNED} and id = %(id)s::uuid", _ids(identity, id=memory_id)
    )
    return cur.rowcount > 0


# -- working memory --------------------------------------------------------------------------------------------------


def working_response(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "tenantId": row["service_tenant_id"],
        "userId": row["service_user_id"],
        "planId": row["plan_id"],
        "key": row["key"],
        "value": row["value"],
        "createdAt": _ts(row["created_at"]),
        "updatedAt": _ts(row["updated_at"]),
    }


_OWNED = (
    "platform_tenant_id = %(pt)s and service_tenant_id = %(st)s and service_user_id = %(su)s"
)


def _ids(identity: Identity, **more: Any) -> dict[str, Any]:
    return {
        "pt": identity.platform_tenant_id,
        "st": identity.service_tenant_id,
        "su": identity.service_user_id,
        **more,
    }


def set_working(conn: psycopg.Connection, identity: Identity, plan_id: str, key: str, value: Any) -> dict[str, Any]:
    return conn.execute(
        "insert into memory.working_memory (platform_tenant_id, service_tenant_id, service_user_id, plan_id, key,"
        " value) values (%(pt)s, %(st)s, %(su)s, %(plan)s, %(key)s, %(value)s)"
        " on conflict (platform_tenant_id, service_tenant_id, service_user_id, plan_id, key)"
        " do update set value = excluded.value, updated_at = now() returning *",
        _ids(identity, plan=plan_id, key=key, value=Jsonb(value)),
    ).fetchone()


# One statement per operation, so concurrent updates never lose each other's change (soorma-core's WorkflowState did
# a read-modify-write from the client). A missing key, or a value of the wrong JSON type, counts as the empty value.
_WORKING_OPS = {
    "increment": (
        "to_jsonb(%(operand)s::numeric)",
        "to_jsonb((case when jsonb_typeof(memory.working_memory.value) = 'number'"
        " then memory.working_memory.value::numeric else 0 end) + %(operand)s::numeric)",
    ),
    "append": (
        "%(operand)s::jsonb",
        "(case when jsonb_typeof(memory.working_memory.value) = 'array'"
        " then memory.working_memory.value else '[]'::jsonb end) || %(operand)s::jsonb",
    ),
    "merge": (
        "%(operand)s::jsonb",
        "(case when jsonb_typeof(memory.working_memory.value) = 'object'"
        " then memory.working_memory.value else '{}'::jsonb end) || %(operand)s::jsonb",
    ),
}


def update_working(
    conn: psycopg.Connection, identity: Identity, plan_id: str, key: str, op: str, operand: Any
) -> dict[str, Any]:
    """Apply ``op`` (``increment`` by a number, ``append`` a JSON array, ``merge`` a JSON object) to one working
    memory value atomically and return the row. Raises ``KeyError`` for an unknown op."""
    initial, updated = _WORKING_OPS[op]
    value = operand if op == "increment" else Jsonb(operand)
    return conn.execute(
        "insert into memory.working_memory (platform_tenant_id, service_tenant_id, service_user_id, plan_id, key,"
        f" value) values (%(pt)s, %(st)s, %(su)s, %(plan)s, %(key)s, {initial})"
        " on conflict (platform_tenant_id, service_tenant_id, service_user_id, plan_id, key)"
        f" do update set value = {updated}, updated_at = now() returning *",
        _ids(identity, plan=plan_id, key=key, operand=value),
    ).fetchone()


def get_working(conn: psycopg.Connection, identity: Identity, plan_id: str, key: str) -> dict[str, Any] | None:
    return conn.execute(
        f"select * from memory.working_memory where {_OWNED} and plan_id = %(plan)s and key = %(key)s",
        _ids(identity, plan=plan_id, key=key),
    ).fetchone()


def delete_working(conn: psycopg.Connection, identity: Identity, plan_id: str, key: str) -> bool:
    cur = conn.execute(
        f"delete from memory.working_memory where {_OWNED} and plan_id = %(plan)s and key = %(key)s",
        _ids(identity, plan=plan_id, key=key),
    )
    return cur.rowcount > 0


def delete_working_plan(conn: psycopg.Connection, identity: Identity, plan_id: str) -> int:
    cur = conn.execute(
        f"delete from memory.working_memory where {_OWNED} and plan_id = %(plan)s",
        _ids(identity, plan=plan_id),
    )
    return cur.rowcount


# -- task context ----------------------------------------------------------------------------------------------------


def task_response(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "tenantId": row["service_tenant_id"],
        "userId": row["service_user_id"],
        "taskId": row["task_id"],
        "planId": row["plan_id"],
        "eventType": row["event_type"],
        "responseEvent": row["response_event"],
        "responseTopic": row["response_topic"],
        "data": row["data"],
        "subTasks": row["sub_tasks"],
        "state": row["state"],
        "correlationId": row["correlation_id"],
        "sessionId": row["session_id"],
        "goalId": row["goal_id"],
        "traceId": row["trace_id"],
        "version": row["version"],
        "createdAt": _ts(row["created_at"]),
        "updatedAt": _ts(row["updated_at"]),
    }


_TASK_FIELDS = (
    "plan_id", "event_type", "response_event", "response_topic", "data", "sub_tasks", "state", "correlation_id",
    "session_id", "goal_id", "trace_id",
)
_JSON_FIELDS = {"data", "sub_tasks", "state"}


def _task_value(name: str, value: Any) -> Any:
    return Jsonb(value) if name in _JSON_FIELDS else value


def upsert_task(
    conn: psycopg.Connection, identity: Identity, fields: dict[str, Any], expected_version: int | None
) -> dict[str, Any] | None:
    """Insert or overwrite the task context; ``None`` when ``expected_version`` is given and the stored row has
    another version (the caller answers 409)."""
    task_id = fields["task_id"]
    columns = sql.SQL(", ").join(sql.Identifier(name) for name in _TASK_FIELDS)
    placeholders = sql.SQL(", ").join(sql.Placeholder(name) for name in _TASK_FIELDS)
    updates = sql.SQL(", ").join(
        sql.SQL("{0} = excluded.{0}").format(sql.Identifier(name)) for name in _TASK_FIELDS
    )
    query = sql.SQL(
        "insert into memory.task_context as t (platform_tenant_id, service_tenant_id, service_user_id, task_id, {columns})"
        " values (%(pt)s, %(st)s, %(su)s, %(task)s, {placeholders})"
        " on conflict (platform_tenant_id, service_tenant_id, service_user_id, task_id) do update set {updates},"
        " version = t.version + 1, updated_at = now()"
        " where %(expected)s::integer is null or t.version = %(expected)s::integer"
        " returning *"
    ).format(columns=columns, placeholders=placeholders, updates=updates)
    params = _ids(identity, task=task_id, expected=expected_version)
    params.update({name: _task_value(name, fields.get(name)) for name in _TASK_FIELDS})
    row = conn.execute(query, params).fetchone()
    if row is not None:
        _sync_sub_tasks(conn, identity, task_id, row["sub_tasks"])
    return row


def get_task(conn: psycopg.Connection, identity: Identity, task_id: str) -> dict[str, Any] | None:
    return conn.execute(
        f"select * from memory.task_context where {_OWNED} and task_id = %(task)s", _ids(identity, task=task_id)
    ).fetchone()


def update_task(
    conn: psycopg.Connection,
    identity: Identity,
    task_id: str,
    changes: dict[str, Any],
    expected_version: int | None,
) -> dict[str, Any] | None:
    """Apply ``changes`` and bump the version; ``None`` when no row matched (missing, or another version)."""
    assignments = [
        sql.SQL("{} = {}").format(sql.Identifier(name), sql.Placeholder(name)) for name in _TASK_FIELDS if name in changes
    ]
    assignments += [sql.SQL("version = version + 1"), sql.SQL("updated_at = now()")]
    query = sql.SQL(
        "update memory.task_context set {assignments} where " + _OWNED + " and task_id = %(task)s"
        " and (%(expected)s::integer is null or version = %(expected)s::integer) returning *"
    ).format(assignments=sql.SQL(", ").join(assignments))
    params = _ids(identity, task=task_id, expected=expected_version)
    params.update({name: _task_value(name, value) for name, value in changes.items()})
    row = conn.execute(query, params).fetchone()
    if row is not None and "sub_tasks" in changes:
        _sync_sub_tasks(conn, identity, task_id, row["sub_tasks"])
    return row


def delete_task(conn: psycopg.Connection, identity: Identity, task_id: str) -> bool:
    cur = conn.execute(
        f"delete from memory.task_context where {_OWNED} and task_id = %(task)s", _ids(identity, task=task_id)
    )
    return cur.rowcount > 0  # memory.task_subtasks rows go with it (on delete cascade)


def task_by_subtask(conn: psycopg.Connection, identity: Identity, sub_task_id: str) -> dict[str, Any] | None:
    """The task that lists ``sub_task_id``: a primary-key probe of memory.task_subtasks, then a unique-key probe of
    memory.task_context (soorma-core scanned every task of the user in Python)."""
    return conn.execute(by_subtask_sql(), _ids(identity, sub=sub_task_id)).fetchone()


def by_subtask_sql() -> str:
    return (
        "select t.* from memory.task_subtasks s join memory.task_context t"
        " on t.platform_tenant_id = s.platform_tenant_id and t.service_tenant_id = s.service_tenant_id"
        " and t.service_user_id = s.service_user_id and t.task_id = s.task_id"
        " where s.platform_tenant_id = %(pt)s and s.service_tenant_id = %(st)s and s.service_user_id = %(su)s"
        " and s.sub_task_id = %(sub)s"
    )


def _sync_sub_tasks(conn: psycopg.Connection, identity: Identity, task_id: str, sub_tasks: list[str]) -> None:
    """Make memory.task_subtasks list exactly ``sub_tasks`` for this task (a sub-task id listed by another task of
    the same identity moves to this one: the latest delegation wins)."""
    params = _ids(identity, task=task_id, subs=list(sub_tasks))
    conn.execute(
        f"delete from memory.task_subtasks where {_OWNED} and task_id = %(task)s"
        " and not (sub_task_id = any(%(subs)s::text[]))",
        params,
    )
    if sub_tasks:
        conn.execute(
            "insert into memory.task_subtasks (platform_tenant_id, service_tenant_id, service_user_id, sub_task_id,"
            " task_id) select %(pt)s, %(st)s, %(su)s, s, %(task)s from unnest(%(subs)s::text[]) as s"
            " on conflict (platform_tenant_id, service_tenant_id, service_user_id, sub_task_id)"
            " do update set task_id = excluded.task_id where task_subtasks.task_id <> excluded.task_id",
            params,
        )
