"""Webhooks' tables as the functions' role sees them (``soorma_app``, row-level security): one identity can neither read
nor write another's subscriptions or deliveries, nor reach the sender's functions' internals (migration
``0025_webhooks.sql``). Each check performs the attack and shows it fails."""

from __future__ import annotations

import uuid

import psycopg
import pytest

from soorma.functions.shared.db import Database
from soorma.identity import Identity


def _identity(tenant: str) -> Identity:
    return Identity(platform_tenant_id=tenant, service_tenant_id="st", service_user_id="su", principal_id="p",
                    role="developer")


@pytest.fixture
def two_tenants(postgres, app_dsn):
    """Tenant A with a tenant-wide subscription and a delivery of its ended goal; tenant B with nothing."""
    a, b = _identity(f"a{uuid.uuid4().hex[:8]}"), _identity(f"b{uuid.uuid4().hex[:8]}")
    sub, goal = str(uuid.uuid4()), str(uuid.uuid4())
    with psycopg.connect(postgres, autocommit=True) as owner:
        owner.execute("insert into webhooks.subscriptions (subscription_id, platform_tenant_id, service_tenant_id,"
                      " service_user_id, url, events) values (%s, %s, 'st', 'su', 'https://a.example/h', '{terminal}')",
                      (sub, a.platform_tenant_id))
        owner.execute("insert into gateway.goals (goal_id, platform_tenant_id, service_tenant_id, service_user_id,"
                      " goal_type, response_event, status) values (%s, %s, 'st', 'su', 'g', 'r', 'running')",
                      (goal, a.platform_tenant_id))
        owner.execute("update gateway.goals set status = 'cancelled' where goal_id = %s", (goal,))
        (delivery,) = owner.execute("select delivery_id from webhooks.deliveries where goal_id = %s",
                                    (goal,)).fetchone()
    db = Database(app_dsn)
    yield db, a, b, sub, goal, str(delivery)
    db.close()


def test_another_identity_sees_and_changes_nothing(two_tenants):
    db, a, b, sub, goal, delivery = two_tenants
    with db.transaction(a) as conn:
        assert conn.execute("select count(*) as n from webhooks.deliveries").fetchone()["n"] == 1
    with db.transaction(b) as conn:
        assert conn.execute("select count(*) as n from webhooks.subscriptions").fetchone()["n"] == 0
        assert conn.execute("select count(*) as n from webhooks.deliveries").fetchone()["n"] == 0
        assert conn.execute("update webhooks.subscriptions set deleted_at = now() where subscription_id = %s"
                            " returning 1", (sub,)).fetchone() is None
        assert conn.execute("update webhooks.deliveries set state = 'pending' where delivery_id = %s returning 1",
                            (delivery,)).fetchone() is None
        # catch_up of A's subscription under B's identity queues nothing
        assert conn.execute("select webhooks.catch_up(%s) as n", (sub,)).fetchone()["n"] == 0
    with db.transaction(b) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        # a subscription written for another identity is refused by the policy's WITH CHECK
        conn.execute("insert into webhooks.subscriptions (subscription_id, platform_tenant_id, service_tenant_id,"
                     " service_user_id, url, events) values (%s, %s, 'st', 'su', 'https://b.example/', '{terminal}')",
                     (str(uuid.uuid4()), a.platform_tenant_id))


@pytest.mark.parametrize("statement", [
    "update webhooks.deliveries set url = 'https://evil.example/'",  # only state/attempts/times may change
    "update webhooks.deliveries set payload = '{}'",
    "delete from webhooks.deliveries",
    "update webhooks.subscriptions set url = 'https://evil.example/'",
    "select * from webhooks.sender_wake",
    "select webhooks.enqueue('x', 'st', 'su', gen_random_uuid(), 'terminal', 'goal.completed', '{}')",
])
def test_the_app_role_cannot_redirect_or_forge_deliveries(two_tenants, statement):
    db, a, *_ = two_tenants
    with db.transaction(a) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute(statement)
