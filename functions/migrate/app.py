"""Apply the versioned SQL migrations in ``sql/`` to the platform database.

Files are named ``NNNN_name.sql`` and applied in version order, each in its own transaction, and recorded in
``public.soorma_migrations``. A transaction-scoped advisory lock serialises concurrent runs (two deploys, or the
CDK custom resource retried while a previous attempt still runs). Runs as the database owner, never as ``soorma_app``.

Placeholders: ``{{embedding_dimensions}}`` (``SOORMA_EMBEDDING_DIMENSIONS``, default 384) and
``{{app_role_password}}`` are substituted before a file runs.

**The ``soorma_app`` password.** Every run sets the role's password to the current value of
``SOORMA_APP_DB_PASSWORD`` (in AWS: the app secret, read by the boot module on every run of the migrator), with
``ALTER ROLE soorma_app PASSWORD '<SCRAM-SHA-256 verifier>'``: the verifier is computed here by libpq
(``PQencryptPasswordConn``, what ``psql``'s ``\\password`` does), so the password itself never reaches the server, its
statement log or ``pg_stat_statements``. Rotating the app secret and running the migrator again (every deploy does)
therefore changes the role's password to the secret's new value
(https://www.postgresql.org/docs/current/sql-alterrole.html). Without ``SOORMA_APP_DB_PASSWORD`` the role is created
with a random password nobody knows (there is no default password) and an existing role's password is left as it is.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from soorma.functions.shared import settings

SQL_DIR = Path(__file__).with_name("sql")
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_LOCK_KEY = 0x50_0A_AA  # any constant shared by every migrator


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path


class MigrationsNotFound(FileNotFoundError):
    """The migrations folder holds no ``NNNN_name.sql`` file: the installed package is incomplete, and running on
    would leave an empty database (no ``soorma_app`` role, no tables) for every function to fail against later."""


def migrations(sql_dir: Path | None = None) -> list[Migration]:
    """Every migration file of ``sql_dir`` (default :data:`SQL_DIR`) in version order.

    Raises ``ValueError`` on a misnamed file or a duplicate version, and :class:`MigrationsNotFound` when there is
    none at all (there are always some: their absence means the package was built or installed without them)."""
    sql_dir = SQL_DIR if sql_dir is None else sql_dir
    found: dict[int, Migration] = {}
    for path in sorted(sql_dir.glob("*.sql")):
        match = _NAME.match(path.name)
        if not match:
            raise ValueError(f"migration file {path.name!r} is not named NNNN_name.sql")
        version = int(match.group(1))
        if version in found:
            raise ValueError(f"two migrations have version {version}: {found[version].path.name}, {path.name}")
        found[version] = Migration(version, match.group(2), path)
    if not found:
        raise MigrationsNotFound(
            f"no migration files (NNNN_name.sql) in {sql_dir}: this installation of soorma is incomplete, so the "
            "database would stay empty (no soorma_app role, no tables). Reinstall soorma from a wheel that contains "
            "soorma/functions/migrate/sql/ (pip install --force-reinstall 'soorma[local]')."
        )
    return [found[v] for v in sorted(found)]


def _render(sql: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        sql = sql.replace("{{" + key + "}}", value)
    return sql


#: The largest embedding dimension the migrations accept: pgvector's HNSW index (every embedding column has one)
#: indexes a ``vector`` of at most 2,000 dimensions (``HNSW_MAX_DIM``); a wider column would make the
#: ``create index ... using hnsw`` of 0004/0005 fail halfway through the migrations.
MAX_EMBEDDING_DIMENSIONS = 2000


def _settings() -> dict[str, str]:
    """The placeholder values, from the environment; raises ``ValueError`` naming the variable when
    ``SOORMA_EMBEDDING_DIMENSIONS`` is not an integer from 1 to :data:`MAX_EMBEDDING_DIMENSIONS`."""
    name = settings.EMBEDDING_DIMENSIONS.name
    try:
        value = settings.EMBEDDING_DIMENSIONS.get()
    except ValueError as exc:
        raise ValueError(f"{exc}: must be an integer from 1 to {MAX_EMBEDDING_DIMENSIONS}") from None
    dims = settings.DEFAULT_EMBEDDING_DIMENSIONS if value is None else value
    if not 1 <= dims <= MAX_EMBEDDING_DIMENSIONS:
        hint = (
            f"; pgvector's HNSW index supports `vector` columns of at most {MAX_EMBEDDING_DIMENSIONS} dimensions"
            " (choose a model or setting with fewer, e.g. Titan v2 at 1024 or OpenAI text-embedding-3-large with"
            " dimensions=1536)"
            if dims > MAX_EMBEDDING_DIMENSIONS
            else ""
        )
        raise ValueError(f"{name}={str(dims)!r} must be an integer from 1 to {MAX_EMBEDDING_DIMENSIONS}{hint}")
    return {"embedding_dimensions": str(dims)}


APP_ROLE = "soorma_app"
APP_PASSWORD_ENV = settings.APP_DB_PASSWORD.name


def app_role_verifier(conn: psycopg.Connection, password: str) -> str:
    """The SCRAM-SHA-256 verifier of ``password`` for role ``soorma_app`` (``SCRAM-SHA-256$<iterations>:<salt>$...``),
    computed client-side by libpq with a fresh salt. Raises ``ValueError`` for an empty password."""
    if not password:
        raise ValueError(f"the {APP_ROLE} password must not be empty")
    return conn.pgconn.encrypt_password(password.encode(), APP_ROLE.encode(), b"scram-sha-256").decode()


def set_app_password(conn: psycopg.Connection, password: str) -> None:
    """``ALTER ROLE soorma_app PASSWORD '<verifier>'`` on the owner connection ``conn`` (the verifier as a quoted
    literal through :mod:`psycopg.sql`, never string formatting). Raises ``psycopg.Error`` when the role is missing or
    the connection may not alter it."""
    conn.execute(sql.SQL("alter role {} with password {}").format(
        sql.Identifier(APP_ROLE), sql.Literal(app_role_verifier(conn, password))))


def _ensure_table(conn: psycopg.Connection) -> None:
    conn.execute(
        "create table if not exists public.soorma_migrations ("
        " version int primary key, name text not null, applied_at timestamptz not null default now())"
    )


def pending(owner_dsn: str) -> list[Migration]:
    """The migrations not yet applied to the database at ``owner_dsn``; raises :class:`MigrationsNotFound` (before
    connecting) when the package has none."""
    available = migrations()
    with psycopg.connect(owner_dsn, autocommit=True) as conn:
        _ensure_table(conn)
        done = {row[0] for row in conn.execute("select version from public.soorma_migrations")}
    return [m for m in available if m.version not in done]


def apply(owner_dsn: str, *, app_password: str | None = None) -> list[Migration]:
    """Apply every pending migration, then set ``soorma_app``'s password; returns the migrations applied (empty when
    the database is current).

    ``app_password``: the role's password (default ``SOORMA_APP_DB_PASSWORD``); when neither is set the role is
    created with a random password and an existing role's password is not touched. Raises ``psycopg.Error`` from a
    failing file; that file's transaction is rolled back and later files are not run. Raises
    :class:`MigrationsNotFound` before connecting when the package has no migration file (an empty result then would
    hide that the database was never set up).
    """
    values = _settings()
    available = migrations()
    password = app_password if app_password is not None else settings.APP_DB_PASSWORD.get() or None
    applied: list[Migration] = []
    with psycopg.connect(owner_dsn, autocommit=True) as conn:
        _ensure_table(conn)
        # 0001 creates the role: with the wanted password's verifier, else a random one (never a known default).
        values["app_role_password"] = app_role_verifier(conn, password or secrets.token_urlsafe(32)).replace("'", "''")
        for migration in available:
            with conn.transaction():
                conn.execute("select pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
                seen = conn.execute(
                    "select 1 from public.soorma_migrations where version = %s", (migration.version,)
                ).fetchone()
                if seen:
                    continue
                conn.execute(_render(migration.path.read_text(), values))
                conn.execute(
                    "insert into public.soorma_migrations (version, name) values (%s, %s)",
                    (migration.version, migration.name),
                )
                applied.append(migration)
        if password:
            with conn.transaction():
                conn.execute("select pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
                set_app_password(conn, password)
    return applied
