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
