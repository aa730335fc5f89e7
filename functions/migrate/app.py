"""Apply the versioned SQL migrations in ``sql/`` to the platform database.

Files are named ``NNNN_name.sql`` and applied in version order, each in its own transaction, and recorded in
``public.soorma_migrations``. A transaction-scoped advisory lock serialises concurrent runs (two deploys, or the
CDK custom resource retried while a previous attempt still runs). Runs as the database owner, never as ``soorma_app``.

Placeholders: ``{{embedding_dimensions}}`` (``SOORMA_EMBEDDING_DIMENSIONS``, default 384) and
``{{app_role_password}}`` are substituted before a file runs.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import psycopg

SQL_DIR = Path(__file__).with_name("sql")
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_LOCK_KEY = 0x50_0A_AA  # any constant shared by every migrator


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path


def migrations() -> list[Migration]:
    """Every migration file in version order. Raises ``ValueError`` on a misnamed file or a duplicate version."""
    found: dict[int, Migration] = {}
    for path in sorted(SQL_DIR.glob("*.sql")):
        match = _NAME.match(path.name)
        if not match:
            raise ValueError(f"migration file {path.name!r} is not named NNNN_name.sql")
        version = int(match.group(1))
        if version in found:
            raise ValueError(f"two migrations have version {version}: {found[version].path.name}, {path.name}")
        found[version] = Migration(version, match.group(2), path)
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
    dims = os.environ.get("SOORMA_EMBEDDING_DIMENSIONS", "384").strip()
    if not dims.isdigit() or not 1 <= int(dims) <= MAX_EMBEDDING_DIMENSIONS:
        hint = (
            f"; pgvector's HNSW index supports `vector` columns of at most {MAX_EMBEDDING_DIMENSIONS} dimensions"
            " (choose a model or setting with fewer, e.g. Titan v2 at 1024 or OpenAI text-embedding-3-large with"
            " dimensions=1536)"
            if dims.isdigit() and int(dims) > MAX_EMBEDDING_DIMENSIONS
            else ""
        )
        raise ValueError(
            f"SOORMA_EMBEDDING_DIMENSIONS={dims!r} must be an integer from 1 to {MAX_EMBEDDING_DIMENSIONS}{hint}"
        )
    password = os.environ.get("SOORMA_APP_DB_PASSWORD", "soorma_app")
    return {"embedding_dimensions": dims, "app_role_password": password.replace("'", "''")}


def _ensure_table(conn: psycopg.Connection) -> None:
    conn.execute(
        "create table if not exists public.soorma_migrations ("
        " version int primary key, name text not null, applied_at timestamptz not null default now())"
    )


def pending(owner_dsn: str) -> list[Migration]:
    """The migrations not yet applied to the database at ``owner_dsn``."""
    with psycopg.connect(owner_dsn, autocommit=True) as conn:
        _ensure_table(conn)
        done = {row[0] for row in conn.execute("select version from public.soorma_migrations")}
    return [m for m in migrations() if m.version not in done]


def apply(owner_dsn: str) -> list[Migration]:
    """Apply every pending migration; returns those applied (empty when the database is current).

    Raises ``psycopg.Error`` from a failing file; that file's transaction is rolled back and later files are not run.
    """
    values = _settings()
    applied: list[Migration] = []
    with psycopg.connect(owner_dsn, autocommit=True) as conn:
        _ensure_table(conn)
        for migration in migrations():
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
    return applied
