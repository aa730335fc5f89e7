import psycopg

from soorma.functions.migrate import apply, pending


def test_migrations_are_applied_once_and_role_is_not_superuser(postgres, app_dsn):
    assert pending(postgres) == []
    assert apply(postgres) == []  # idempotent: a second deploy applies nothing
    with psycopg.connect(app_dsn) as conn:
        row = conn.execute(
            "select rolsuper, rolbypassrls from pg_roles where rolname = current_user"
        ).fetchone()
    assert row == (False, False)


def test_vector_extension_present(postgres):
    with psycopg.connect(postgres) as conn:
        version = conn.execute("select extversion from pg_extension where extname = 'vector'").fetchone()
    assert version is not None and version[0].startswith("0.8")


def test_vector_distance_and_hnsw_work_on_this_cpu(postgres):
    """A build of pgvector with instructions this CPU lacks dies here (SIGILL), not in a memory test."""
    with psycopg.connect(postgres, autocommit=True) as conn:
        conn.execute("create temporary table probe (e vector(384))")
        conn.execute(
            "insert into probe select array(select random() from generate_series(1, 384) where g > 0)::vector"
            " from generate_series(1, 50) g"
        )
        conn.execute("create index on probe using hnsw (e vector_cosine_ops)")
        distance = conn.execute("select e <=> (select e from probe limit 1) from probe order by 1 limit 1").fetchone()
    assert distance[0] < 1e-6
