"""The SDK's GatewayClient against the in-process API (local API Gateway + real functions)."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from soorma.clients.gateway import GatewayClient
from soorma.errors import ConflictError


@pytest.fixture(scope="module")
def tenant(api, platform_admin, gx):
    return gx.onboard(api, platform_admin)


async def test_goal_lifecycle_with_the_sdk(api, tenant, gw_db):
    from soorma.events import EventEnvelope
    from soorma.functions.tracker.app import process_batch
    from soorma.testing import sqs_batch

    client = GatewayClient("http://api.local", tenant.keys["user"], transport=httpx.ASGITransport(app=api.app))
    try:
        session = await client.create_session(metadata={"purpose": "sdk"})
        same = await client.submit_goal("sdk.goal", {"q": 1}, session["session_id"], idempotency_key="k-1")
        again = await client.submit_goal("sdk.goal", {"q": 1}, session["session_id"], idempotency_key="k-1")
        assert same["goal_id"] == again["goal_id"]
        other = await client.submit_goal("sdk.goal", {"q": 2})
        listed = [g["goal_id"] async for g in client.iter_goals(limit=1)]
        assert listed == [other["goal_id"], same["goal_id"]]

        def finish():
            result = EventEnvelope(source="w", type="soorma.goal.result", topic="action-results", data={"ok": True},
                                   correlation_id=same["goal_id"], goal_id=same["goal_id"],
                                   platform_tenant_id=tenant.id, tenant_id=tenant.service_tenant,
                                   user_id=f"su_user_{tenant.id}")
            process_batch(gw_db, sqs_batch(result))

        asyncio.get_running_loop().call_later(0.5, lambda: asyncio.ensure_future(asyncio.to_thread(finish)))
        done = await client.wait_for_goal(same["goal_id"], timeout=15)
        assert done.status == "completed" and done.result == {"ok": True}
        cancelled = await client.cancel_goal(other["goal_id"], "no longer needed")
        assert cancelled.status == "cancelled"
        with pytest.raises(ConflictError):
            await client.cancel_goal(other["goal_id"])
        assert (await client.wait_for_goal(other["goal_id"], timeout=5)).status == "cancelled"
        events = await client.goal_events(same["goal_id"])
        assert [e["type"] for e in events] == ["soorma.goal.result"]
        assert (await client.get_session(session["session_id"]))["goal_count"] == 1
    finally:
        await client.close()


async def test_api_keys_with_the_sdk(api, tenant):
    admin = GatewayClient("http://api.local", tenant.keys["admin"], transport=httpx.ASGITransport(app=api.app))
    try:
        created = await admin.create_api_key("user", "sdk user", service_user_id="sdk-user")
        assert created["api_key"].startswith("sk_")
        rotated = await admin.rotate_api_key(created["key_id"])
        assert rotated["rotated_from"] == created["key_id"]
        await admin.revoke_api_key(rotated["key_id"])
        active = {k["key_id"] for k in await admin.list_api_keys()}
        every = {k["key_id"] for k in await admin.list_api_keys(include_revoked=True)}
        assert created["key_id"] not in active and {created["key_id"], rotated["key_id"]} <= every
    finally:
        await admin.close()
