"""The DATABASE isolates tenants, not the SQL the routes happen to send.

Every query of the memory function also filters by the caller's identity (``owned.OWNED``), so the route-level
isolation test (``test_memory_isolation.py``) would pass even with row-level security off. These tests take the app
out of the picture:

* the catalog: every table in schema ``memory`` has RLS enabled AND forced and at least one policy, and the role the
  functions connect as (``soorma_app``) is neither superuser nor BYPASSRLS, nor a member of a role that is;
* table-driven, per memory table: tenant A's rows are inserted through the app role with the identity set exactly as
  :meth:`soorma.functions.shared.db.Database.transaction` sets it; then, as tenant B (same connection pool, same role),
  ``select count(*)``, ``update … set <col> = <col>`` and ``delete`` with NO ``WHERE`` clause see and touch 0 rows,
  an insert carrying A's identity is refused, and A's rows (read as the database owner, which bypasses RLS) are
  unchanged. A control shows the very same statements do reach A's rows when run as A.
"""

from __future__ import annotations

import json

import psycopg
import pytest
from psycopg.rows import dict_row

# table -> (insert of one of A's rows, a column for the no-op ``update … set col = col``). Listed in foreign-key
# order (task_subtasks after task_context, plan_correlations after plan_context). A memory table missing here fails
# test_every_memory_table_is_covered_by_the_rls_table below.
ROWS: dict[str, tuple[str, str]] = {
    "semantic_memory": (
        "insert into memory.semantic_memory (platform_tenant_id, service_tenant_id, service_user_id, content,"
        " content_hash, embedding, embedding_model) values (%(pt)s, %(st)s, %(su)s, 'A: vault 4711', 'h-a',"
        " %(v)s::vector, 'test')",
        "content",
    ),
    "episodic_memory": (
        "insert into memory.episodic_memory (platform_tenant_id, service_tenant_id, service_user_id, agent_id, role,"
        " content, content_hash, embedding, embedding_model) values (%(pt)s, %(st)s, %(su)s, 'agent-x', 'user',"
        " 'A: vault 4711', 'h-a', %(v)s::vector, 'test')",
        "content",
    ),
    "procedural_memory": (
        "insert into memory.procedural_memory (platform_tenant_id, service_tenant_id, service_user_id, agent_id,"
        " procedure_type, content, content_hash, upsert_key, embedding, embedding_model) values (%(pt)s, %(st)s,"
        " %(su)s, 'agent-x', 'system_prompt', 'A: vault 4711', 'h-a', 'k-a', %(v)s::vector, 'test')",
        "content",
    ),
    "working_memory": (
        "insert into memory.working_memory (platform_tenant_id, service_tenant_id, service_user_id, plan_id, key,"
        " value) values (%(pt)s, %(st)s, %(su)s, 'plan-a', 'k', '{\"vault\": 4711}')",
        "value",
    ),
    "task_context": (
        "insert into memory.task_context (platform_tenant_id, service_tenant_id, service_user_id, task_id,"
        " event_type, state) values (%(pt)s, %(st)s, %(su)s, 'task-a', 'e', '{\"vault\": 4711}')",
        "state",
    ),
    "task_subtasks": (
        "insert into memory.task_subtasks (platform_tenant_id, service_tenant_id, service_user_id, sub_task_id,"
        " task_id) values (%(pt)s, %(st)s, %(su)s, 'sub-a', 'task-a')",
        "task_id",
    ),
    "plan_context": (
        "insert into memory.plan_context (platform_tenant_id, service_tenant_id, service_user_id, plan_id,"
        " goal_event, state) values (%(pt)s, %(st)s, %(su)s, 'plan-a', 'g', '{\"vault\": 4711}')",
        "state",
    ),
    "plan_correlations": (
        "insert into memory.plan_correlations (platform_tenant_id, service_tenant_id, service_user_id,"
        " correlation_id, plan_id) values (%(pt)s, %(st)s, %(su)s, 'corr-a', 'plan-a')",
        "plan_id",
    ),
    "plans": (
        "insert into memory.plans (platform_tenant_id, service_tenant_id, service_user_id, plan_id, goal_event,"
        " goal_data) values (%(pt)s, %(st)s, %(su)s, 'plan-a', 'g', '{\"vault\": 4711}')",
        "goal_data",
    ),
    "sessions": (
        "insert into memory.sessions (platform_tenant_id, service_tenant_id, service_user_id, session_id, name)"
        " values (%(pt)s, %(st)s, %(su)s, 'session-a', 'vault 4711')",
        "name",
    ),
    "idempotency_records": (  # 0010_memory_idempotency.sql; skipped while that migration is not in this checkout
        "insert into memory.idempotency_records (platform_tenant_id, service_tenant_id, service_user_id, key,"
        " status, expiry_timestamp, response_data) values (%(pt)s, %(st)s, %(su)s, 'idem-a', 'COMPLETED',"
        " 4000000000, '{\"vault\": 4711}')",
        "response_data",
    ),
}

# B's identity relative to A's, and the admin-erase scope B's transaction claims (the erase policies of 0005 honour
# ``soorma.erase_scope`` only inside the caller's own platform tenant, so even a claimed 'platform' erase of another
# platform tenant must see nothing).
ATTACKERS = {
    "other platform tenant": (lambda make, a: make(), None),
    "other platform tenant claiming a platform erase": (lambda make, a: make(), "platform"),
    "same platform, other service tenant": (lambda make, a: make(platform=a.platform_tenant_id), None),
    "same service tenant, other user": (
        lambda make, a: make(platform=a.platform_tenant_id, service=a.service_tenant_id), None),
    "same user id in another platform tenant": (
        lambda make, a: make(service=a.service_tenant_id, user=a.service_user_id), None),
}


def _memory_tables(conn) -> list[str]:
    return [r[0] for r in conn.execute(
        "select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace"
        " where n.nspname = 'memory' and c.relkind in ('r', 'p') order by 1"
    ).fetchall()]


@pytest.fixture(scope="module")
def tables(postgres) -> list[str]:
    """The memory tables of the migrated database, in the insert order of :data:`ROWS`."""
    with psycopg.connect(postgres) as conn:
        present = set(_memory_tables(conn))
    return [t for t in ROWS if t in present]


@pytest.fixture(scope="module")
def vector_literal(postgres) -> str:
    """A vector of the migrated embedding dimension (``vector(n)`` keeps n in ``atttypmod``)."""
    with psycopg.connect(postgres) as conn:
        (dims,) = conn.execute(
            "select atttypmod from pg_attribute where attrelid = 'memory.semantic_memory'::regclass"
            " and attname = 'embedding'"
        ).fetchone()
    return "[" + ",".join(["0.1"] * dims) + "]"


def _params(who, vector: str) -> dict[str, str]:
    return {"pt": who.platform_tenant_id, "st": who.service_tenant_id, "su": who.service_user_id, "v": vector}


def _snapshot(postgres: str, who, tables: list[str]) -> dict[str, list[str]]:
    """Every row of ``who`` in each table, read as the owner (a superuser: RLS does not apply to it)."""
    with psycopg.connect(postgres, row_factory=dict_row) as conn:
        return {
            t: sorted(json.dumps(r, default=str, sort_keys=True) for r in conn.execute(
                f"select * from memory.{t} where platform_tenant_id = %(pt)s and service_tenant_id = %(st)s"
                " and service_user_id = %(su)s", _params(who, "")).fetchall())
            for t in tables
        }


class _Rollback(Exception):
    """Raised inside ``Database.transaction`` to roll a control statement back."""


def test_every_memory_table_has_forced_rls_and_a_policy_and_the_app_role_cannot_bypass_it(postgres, memory_db):
    """The catalog: RLS enabled and forced with a policy on every memory table; soorma_app cannot bypass it."""
    with psycopg.connect(postgres) as owner:
        rows = owner.execute(
            "select c.relname, c.relrowsecurity, c.relforcerowsecurity,"
            " (select count(*) from pg_policy p where p.polrelid = c.oid) as policies"
            " from pg_class c join pg_namespace n on n.oid = c.relnamespace"
            " where n.nspname = 'memory' and c.relkind in ('r', 'p') order by 1"
        ).fetchall()
    assert len(rows) >= 10, rows  # the ten tables of 0004/0005 at least
    not_enabled = [name for name, enabled, _, _ in rows if not enabled]
    not_forced = [name for name, _, forced, _ in rows if not forced]
    no_policy = [name for name, _, _, policies in rows if policies < 1]
    assert not not_enabled, f"row-level security not enabled on memory.{not_enabled}"
    assert not not_forced, f"row-level security not forced on memory.{not_forced}"
    assert not no_policy, f"memory tables without any policy: {no_policy}"

    # the role the functions really connect as (the pool of soorma.functions.shared.db.Database on SOORMA_APP_DATABASE_URL)
    with memory_db.transaction() as conn:
        me = conn.execute(
            "select current_user as name, r.rolsuper, r.rolbypassrls from pg_roles r where r.rolname = current_user"
        ).fetchone()
        escalations = conn.execute(
            "select r.rolname from pg_roles r where (r.rolsuper or r.rolbypassrls)"
            " and r.rolname <> current_user and pg_has_role(current_user, r.oid, 'member')"
        ).fetchall()
        owned = conn.execute(
            "select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace"
            " where n.nspname = 'memory' and pg_has_role(current_user, c.relowner, 'member')"
        ).fetchall()
    assert me["name"] == "soorma_app", me
    assert not me["rolsuper"] and not me["rolbypassrls"], me
    assert not escalations, f"soorma_app is a member of superuser/BYPASSRLS roles: {escalations}"
    assert not owned, f"soorma_app owns memory tables (an owner may disable RLS): {owned}"


def test_every_memory_table_is_covered_by_the_rls_table(postgres):
    """A memory table added later without a row builder in ROWS fails here, by name."""
    with psycopg.connect(postgres) as conn:
        missing = sorted(set(_memory_tables(conn)) - set(ROWS))
    assert not missing, f"memory tables with no row builder in ROWS (so no DB-level isolation test): {missing}"


@pytest.mark.parametrize("attacker", list(ATTACKERS))
def test_the_database_hides_and_protects_a_rows_from_unfiltered_statements(
    postgres, memory_db, make_identity, tables, vector_literal, attacker
):
    """Tenant B's unfiltered select/update/delete see and touch none of A's rows in any memory table, and B cannot
    insert a row in A's name; the same statements as A do reach them (control)."""
    a = make_identity()
    with memory_db.transaction(a) as conn:  # through soorma_app, identity set per transaction
        for table in tables:
            conn.execute(ROWS[table][0], _params(a, vector_literal))
    before = _snapshot(postgres, a, tables)
    assert all(len(rows) == 1 for rows in before.values()), before

    make_b, erase_scope = ATTACKERS[attacker]
    b = make_b(make_identity, a)
    for table in tables:
        column = ROWS[table][1]
        with memory_db.transaction(b) as conn:
            if erase_scope:
                conn.execute("select set_config('soorma.erase_scope', %s, true)", (erase_scope,))
            seen = conn.execute(f"select count(*) as n from memory.{table}").fetchone()["n"]
            updated = conn.execute(f"update memory.{table} set {column} = {column}").rowcount
            deleted = conn.execute(f"delete from memory.{table}").rowcount
        assert (seen, updated, deleted) == (0, 0, 0), (
            f"{attacker}: on memory.{table} B saw {seen}, updated {updated}, deleted {deleted} rows (no WHERE clause)")
        # nor can B write a row in A's name (the policies' WITH CHECK)
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
            with memory_db.transaction(b) as conn:
                conn.execute(ROWS[table][0], _params(a, vector_literal))

    assert _snapshot(postgres, a, tables) == before, f"{attacker} changed tenant A's rows"

    # control: the same unfiltered statements do reach A's rows as A (so 0 above is the policies' doing)
    for table in tables:
        column = ROWS[table][1]
        with pytest.raises(_Rollback):
            with memory_db.transaction(a) as conn:
                assert conn.execute(f"select count(*) as n from memory.{table}").fetchone()["n"] == 1, table
                assert conn.execute(f"update memory.{table} set {column} = {column}").rowcount == 1, table
                raise _Rollback
    assert _snapshot(postgres, a, tables) == before
