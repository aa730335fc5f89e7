"""The planner really uses the indexes: HNSW for the vector search, the side table's primary key for by-subtask.

Vector search: the planner chooses by cost. Below about 2,500 rows in the caller's platform tenant a sequential (or
tenant-btree) scan plus sort is estimated cheaper, and is exact; so the test stores 3,000 vectors for one tenant and
then EXPLAINs with the planner's defaults (enable_seqscan untouched). soorma-core's ``ORDER BY 1 - (embedding <=> q)``
cannot use the index at all, even with ``enable_seqscan = off`` (asserted below).
"""

from __future__ import annotations

import numpy as np
import psycopg
import pytest

from soorma.functions.memory import search
from soorma.functions.memory.resources import episodic, plan_context, procedural, semantic, task_context

ROWS = 3000  # vectors for the HNSW test
TASKS = 2000  # parent rows (each listing 2 ids) for the lookup tests (planned without touching enable_seqscan)


def _plan(conn, query, params) -> str:
    return "\n".join(row["QUERY PLAN"] for row in conn.execute("explain " + query, params).fetchall())


def _random_vectors(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(n, 384)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def _store(memory_db, postgres, table: str, insert: str, rows_by_owner) -> None:
    """For each ``(identity, rows)`` of ``rows_by_owner``: ``insert`` every row, after the identity's three owner
    columns, in a transaction of that identity (row-level security applies); then ANALYZE ``memory.<table>`` as the
    database owner, so the planner knows the table's real size."""
    for who, rows in rows_by_owner:
        with memory_db.transaction(who) as conn:
            search.use_vectors(conn)
            with conn.cursor() as cur:
                cur.executemany(
                    insert, [(who.platform_tenant_id, who.service_tenant_id, who.service_user_id, *row) for row in rows]
                )
    with psycopg.connect(postgres, autocommit=True) as owner:
        owner.execute(f"analyze memory.{table}")


def test_search_uses_the_hnsw_index(memory_db, postgres, make_identity):
    who = make_identity()
    vectors = _random_vectors(ROWS, 7)
    _store(
        memory_db, postgres, "semantic_memory",
        "insert into memory.semantic_memory (platform_tenant_id, service_tenant_id, service_user_id, content,"
        " content_hash, embedding, embedding_model) values (%s, %s, %s, %s, %s, %s, 'test')",
        [(who, [(f"row {i}", f"h{i}", v) for i, v in enumerate(vectors)])],
    )

    query = vectors[123]
    with memory_db.transaction(who) as conn:
        search.use_vectors(conn)
        # the settings the route sets; planner defaults otherwise
        conn.execute(
            "select set_config('hnsw.ef_search', '64', true), set_config('hnsw.iterative_scan', 'relaxed_order', true)"
        )
        for include_public in (True, False):
            plan = _plan(conn, semantic.search_sql(include_public), {"q": query, "limit": 5})
            assert "Index Scan using semantic_memory_embedding_hnsw" in plan, plan
            assert "Seq Scan" not in plan, plan
        found = semantic.search_semantic(conn, who, query, 5, True)
    assert found[0][0]["content"] == "row 123" and abs(found[0][1] - 1.0) < 1e-4
    assert len(found) == 5

    # soorma-core's form, ORDER BY 1 - distance, cannot use the index even so (the defect this design avoids)
    with memory_db.transaction(who) as conn:
        search.use_vectors(conn)
        conn.execute("select set_config('enable_seqscan', 'off', true)")
        plan = _plan(
            conn,
            "select id from memory.semantic_memory order by 1 - (embedding <=> %(q)s) desc limit 5",
            {"q": query},
        )
    assert "semantic_memory_embedding_hnsw" not in plan


def test_episodic_search_uses_the_hnsw_index(memory_db, postgres, make_identity):
    """The caller's history with one agent is large (3,000 turns): HNSW serves the search (iterative scan for the
    identity/agent filter), no sequential scan."""

    who = make_identity()
    vectors = _random_vectors(ROWS, 11)
    _store(
        memory_db, postgres, "episodic_memory",
        "insert into memory.episodic_memory (platform_tenant_id, service_tenant_id, service_user_id,"
        " agent_id, role, content, content_hash, embedding, embedding_model)"
        " values (%s, %s, %s, 'agent-1', 'user', %s, %s, %s, 'test')",
        [(who, [(f"turn {i}", f"h{i}", v) for i, v in enumerate(vectors)])],
    )

    params = {"pt": who.platform_tenant_id, "st": who.service_tenant_id, "su": who.service_user_id,
              "agent": "agent-1", "q": vectors[42], "limit": 5}
    with memory_db.transaction(who) as conn:
        search.use_vectors(conn)
        search.search_settings(conn, 5)
        plan = _plan(conn, episodic.episodic_search_sql(), params)
        assert "Index Scan using episodic_memory_embedding_hnsw" in plan, plan
        assert "Seq Scan" not in plan, plan
        found = episodic.search_episodic(conn, who, "agent-1", vectors[42], 5)
    assert found[0][0]["content"] == "turn 42" and len(found) == 5


def test_episodic_search_of_a_small_history_is_exact_and_never_a_seq_scan(memory_db, postgres, make_identity):
    """A user with a handful of turns among many: whatever the planner picks (HNSW with an iterative scan, or the
    identity btree plus a sort, which is exact), it is not a sequential scan, and the nearest turn comes first."""

    crowd = make_identity()
    me = make_identity(platform=crowd.platform_tenant_id)
    mine = _random_vectors(20, 13)
    _store(
        memory_db, postgres, "episodic_memory",
        "insert into memory.episodic_memory (platform_tenant_id, service_tenant_id, service_user_id,"
        " agent_id, role, content, content_hash, embedding, embedding_model)"
        " values (%s, %s, %s, 'agent-1', 'user', %s, md5(%s), %s, 'test')",
        [
            (crowd, [(f"crowd {i}", f"crowd {i}", v) for i, v in enumerate(_random_vectors(ROWS, 12))]),
            (me, [(f"mine {i}", f"mine {i}", v) for i, v in enumerate(mine)]),
        ],
    )
    params = {"pt": me.platform_tenant_id, "st": me.service_tenant_id, "su": me.service_user_id,
              "agent": "agent-1", "q": mine[7], "limit": 5}
    with memory_db.transaction(me) as conn:
        search.use_vectors(conn)
        search.search_settings(conn, 5)
        plan = _plan(conn, episodic.episodic_search_sql(), params)
        assert "Seq Scan" not in plan, plan
        found = episodic.search_episodic(conn, me, "agent-1", mine[7], 5)
    assert [r["content"] for r, _ in found][0] == "mine 7" and len(found) == 5
    assert all(r["content"].startswith("mine") for r, _ in found)


def test_procedural_search_uses_the_hnsw_index(memory_db, postgres, make_identity):

    who = make_identity()
    vectors = _random_vectors(ROWS, 14)
    _store(
        memory_db, postgres, "procedural_memory",
        "insert into memory.procedural_memory (platform_tenant_id, service_tenant_id, service_user_id,"
        " agent_id, procedure_type, content, content_hash, upsert_key, embedding, embedding_model)"
        " values (%s, %s, %s, 'agent-1', 'system_prompt', %s, %s, %s, %s, 'test')",
        [(who, [(f"skill {i}", f"h{i}", f"k{i}", v) for i, v in enumerate(vectors)])],
    )
    with memory_db.transaction(who) as conn:
        search.use_vectors(conn)
        search.search_settings(conn, 3)
        plan = _plan(conn, procedural.procedural_search_sql(), {"agent": "agent-1", "q": vectors[9], "limit": 3})
        assert "Index Scan using procedural_memory_embedding_hnsw" in plan, plan
        assert "Seq Scan" not in plan, plan
        found = procedural.search_procedural(conn, who, "agent-1", vectors[9], 3)
    assert found[0][0]["content"] == "skill 9" and len(found) == 3


# Each parent table with a lookup table of the ids its list column holds: (resource module, parent insert, lookup
# insert, an id to find, the parent's key column and the row that lists it). Parameters ``pt, st, su, n``.
LOOKUPS = [
    pytest.param(
        task_context,
        "insert into memory.task_context (platform_tenant_id, service_tenant_id, service_user_id, task_id,"
        " event_type, sub_tasks) select %(pt)s, %(st)s, %(su)s, 'task-' || g, 'e',"
        " jsonb_build_array('sub-' || g, 'sub-x' || g) from generate_series(1, %(n)s) g",
        "insert into memory.task_subtasks (platform_tenant_id, service_tenant_id, service_user_id, sub_task_id,"
        " task_id) select %(pt)s, %(st)s, %(su)s, s.sub, 'task-' || g from generate_series(1, %(n)s) g,"
        " lateral (values ('sub-' || g), ('sub-x' || g)) as s(sub)",
        "sub-x777", "task_id", "task-777",
        id="task-by-subtask",
    ),
    pytest.param(
        plan_context,
        "insert into memory.plan_context (platform_tenant_id, service_tenant_id, service_user_id, plan_id,"
        " goal_event, correlation_ids) select %(pt)s, %(st)s, %(su)s, 'plan-' || g, 'g',"
        " jsonb_build_array('plan-' || g, 'corr-' || g) from generate_series(1, %(n)s) g",
        "insert into memory.plan_correlations (platform_tenant_id, service_tenant_id, service_user_id,"
        " correlation_id, plan_id) select %(pt)s, %(st)s, %(su)s, c.cid, 'plan-' || g"
        " from generate_series(1, %(n)s) g, lateral (values ('plan-' || g), ('corr-' || g)) as c(cid)",
        "corr-1234", "plan_id", "plan-1234",
        id="plan-by-correlation",
    ),
]


@pytest.mark.parametrize(("resource", "insert_parents", "insert_lookups", "listed", "key", "expected"), LOOKUPS)
def test_lookup_is_an_index_probe(
    memory_db, postgres, make_identity, resource, insert_parents, insert_lookups, listed, key, expected
):
    """Finding the row that lists an id (the task of a sub-task, the plan of a correlation id) among 2,000 probes
    the lookup table's primary key and then the parent's unique key: no sequential scan."""
    table = resource.TABLE
    lookup_table = table.lookup.table
    who = make_identity()
    params = {"pt": who.platform_tenant_id, "st": who.service_tenant_id, "su": who.service_user_id, "n": TASKS}
    with memory_db.transaction(who) as conn:
        conn.execute(insert_parents, params)
        conn.execute(insert_lookups, params)
    with psycopg.connect(postgres, autocommit=True) as owner:
        owner.execute(f"analyze memory.{table.name}")
        owner.execute(f"analyze memory.{lookup_table}")

    with memory_db.transaction(who) as conn:
        plan = _plan(conn, table.lookup.sql(table), {**params, table.lookup.param: listed})
        assert f"Index Scan using {lookup_table}_pkey" in plan, plan
        assert f"Index Scan using {table.name}_key" in plan, plan
        assert "Seq Scan" not in plan, plan
        row = table.find(conn, who, listed)
    assert row[key] == expected
