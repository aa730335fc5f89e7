"""The SECURITY DEFINER lookups (registry.list_routes, gateway.resolve_api_key) must work when the migration owner is
not a superuser (Aurora's master user is not one): FORCE ROW LEVEL SECURITY applies to the owner too, so the
migrations give the owner its own policy. Runs every migration as a non-superuser owner in a fresh database."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from soorma.functions.shared.db import Database
from soorma.identity import Identity


def _dsn_for(dsn: str, **changes: str) -> str:
    return make_conninfo(**{**conninfo_to_dict(dsn), **changes})


def test_definer_functions_with_non_superuser_owner(postgres, fx):
    from soorma.functions.gateway.keys import create_api_key, resolve_api_key
    from soorma.functions.migrate import apply
    from soorma.functions.registry.routes import list_routes

    tag = uuid.uuid4().hex[:8]
    role, database = f"owner_{tag}", f"nonsuper_{tag}"
    with psycopg.connect(postgres, autocommit=True) as admin:
        admin.execute(f"create role {role} login password 'pw' createrole nosuperuser nobypassrls")
        admin.execute(f"create database {database} owner {role}")
        admin.execute("grant soorma_app to " + role)  # createrole alone no longer implies admin of soorma_app (PG16+)
    owner_dsn = _dsn_for(postgres, user=role, password="pw", dbname=database)
    with psycopg.connect(_dsn_for(postgres, dbname=database), autocommit=True) as admin:
        admin.execute("create extension if not exists vector")  # created by a superuser, as RDS does for trusted ones
    try:
        apply(owner_dsn)
    except psycopg.Error as exc:
        pytest.skip(f"migrations need more than a non-superuser owner here: {exc}")
    db = Database(_dsn_for(postgres, user="soorma_app", password="soorma_app", dbname=database))
    try:
        me = Identity(f"pt_{tag}", "st", "su", "pr", "developer")
        with psycopg.connect(owner_dsn, autocommit=True) as owner:
            key = create_api_key(owner, platform_tenant_id=me.platform_tenant_id, service_tenant_id="st",
                                 service_user_id="su", role="agent", pepper=fx.PEPPER)
        with db.transaction(me) as conn:
            conn.execute(
                "insert into registry.agents (platform_tenant_id, service_tenant_id, service_user_id, agent_id, name,"
                " deployment) values (%s, 'st', 'su', 'a1', 'n1', %s::jsonb)",
                (me.platform_tenant_id, '{"function_name": "fn", "subscriptions": []}'),
            )
        with db.transaction() as conn:
            assert resolve_api_key(conn, key, pepper=fx.PEPPER).platform_tenant_id == me.platform_tenant_id
            assert [r.agent_id for r in list_routes(conn)] == ["a1"]
    finally:
        db.close()
