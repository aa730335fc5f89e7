"""Issue 12, finding 8 — an agent key could act for any user of its tenant (``soorma.identity.act_for``).

An ``agent`` principal named any service tenant/user in ``X-Soorma-Service-Tenant`` / ``-User`` and was that user,
so one leaked agent key read every user's private memory and goals. Now the gateway stamps a short-lived delivery
grant on every event it accepts (:mod:`soorma.grants`), and an agent acts for a user only with the grant of that
user's event.

Performed with a real agent API key through the local API Gateway (cache on) in front of the real authorizer,
gateway and memory functions, with the grant taken from the real event on NATS JetStream: acting for another user
without a grant, with a grant for another user, with an expired grant, with a forged grant and with a grant of
another platform tenant are all refused (403) and read nothing; with the event's grant the agent reads the user's
goal and memory (also through the SDK while it handles the event), its own events get fresh grants, and acting as
itself, or as a tenant admin for a user, still works.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import httpx
import pytest

from soorma import grants
from soorma.events import EventEnvelope


def last_event(nats_url: str, subject: str) -> EventEnvelope:
    """The last envelope stored on ``subject`` in the real stream (what an agent would be delivered)."""
    import nats

    async def read():
        nc = await nats.connect(nats_url)
        try:
            return await nc.jetstream().get_last_msg("SOORMA_EVENTS", subject)
        finally:
            await nc.close()

    loop = asyncio.new_event_loop()
    try:
        return EventEnvelope.from_json(loop.run_until_complete(read()).data)
    finally:
        loop.close()


def submit(api, sx, key: str, goal_type: str, nats_url: str, tenant: str) -> tuple[str, EventEnvelope]:
    """Submit a goal with ``key``; returns its id and the request event the gateway published for it."""
    reply = api.post("/v1/goals", headers=sx.bearer(key), json={"goal_type": goal_type, "data": {"q": 1}})
    assert reply.status_code == 202, reply.text
    event = last_event(nats_url, f"soorma.{tenant}.action-requests.{goal_type}")
    assert event.goal_id == reply.json()["goal_id"]
    return reply.json()["goal_id"], event


def acting(sx, key: str, tenant: str, user: str, grant: str | None = None) -> dict[str, str]:
    headers = sx.bearer(key, **{"x-soorma-service-tenant": tenant, "x-soorma-service-user": user})
    if grant is not None:
        headers["x-soorma-grant"] = grant
    return headers


@pytest.fixture
def world(api, platform_admin, sx, nats_url):
    """Tenant A (users alice and bob, an agent key) with alice's and bob's goals and alice's private memory, and a
    tenant B whose user has the very same service tenant and user names as alice."""
    a = sx.onboard(api, platform_admin)
    b = sx.onboard(api, platform_admin, service_tenant=a.service_tenant, users=("alice",))
    goal_type = f"sec.{uuid.uuid4().hex[:8]}"
    alice_goal, alice_event = submit(api, sx, a.keys["alice"], goal_type, nats_url, a.id)
    bob_goal, bob_event = submit(api, sx, a.keys["bob"], goal_type, nats_url, a.id)
    _, b_event = submit(api, sx, b.keys["alice"], goal_type, nats_url, b.id)
    stored = api.put("/v1/memory/working/default/diary", headers=sx.bearer(a.keys["alice"]),
                     json={"value": "alice's secret"})
    assert stored.status_code in (200, 201), stored.text
    return dict(a=a, b=b, goal_type=goal_type, alice_goal=alice_goal, alice_event=alice_event, bob_goal=bob_goal,
                bob_event=bob_event, b_event=b_event)


def test_every_event_the_gateway_accepts_carries_a_grant_for_exactly_its_identity(world, sx):
    a, key = world["a"], grants.derive_key(sx.PEPPER)
    granted = grants.verify(world["alice_event"].delivery_grant, key)
    assert (granted.platform_tenant_id, granted.service_tenant_id, granted.service_user_id, granted.event_id) == (
        a.id, a.service_tenant, "alice", world["alice_event"].id)
    assert 3500 <= granted.expires_at - granted.issued_at <= 3600  # the default lifetime: one hour
    assert grants.verify(world["b_event"].delivery_grant, key).platform_tenant_id == world["b"].id


def test_an_agent_key_cannot_act_for_a_user_without_that_users_event_grant(api, world, sx, monkeypatch, nats_url):
    a, agent = world["a"], world["a"].keys["agent"]
    alice_goal, diary = f"/v1/goals/{world['alice_goal']}", "/v1/memory/working/default/diary"

    attempts = {
        "no grant": None,
        "bob's grant": world["bob_event"].delivery_grant,
        "another platform tenant's grant (same tenant and user names)": world["b_event"].delivery_grant,
        "a forged grant": grants.mint(grants.derive_key("not-the-pepper"), platform_tenant_id=a.id,
                                      service_tenant_id=a.service_tenant, service_user_id="alice", event_id="x"),
        "garbage": "not.a.grant",
    }
    # an expired grant: alice's real event, minted while the lifetime was one second
    monkeypatch.setenv("SOORMA_GRANT_TTL_SECONDS", "1")
    _, short = submit(api, sx, a.keys["alice"], world["goal_type"], nats_url, a.id)
    monkeypatch.delenv("SOORMA_GRANT_TTL_SECONDS")
    time.sleep(2.1)
    attempts["an expired grant"] = short.delivery_grant

    for what, grant in attempts.items():
        for path in (alice_goal, "/v1/goals", diary):
            reply = api.get(path, headers=acting(sx, agent, a.service_tenant, "alice", grant))
            assert reply.status_code == 403, (what, path, reply.text)
            assert "alice's secret" not in reply.text and world["alice_goal"] not in reply.text
            assert "delivery grant" in reply.json()["detail"], (what, reply.text)
        # nor write as alice
        wrote = api.put(diary, headers=acting(sx, agent, a.service_tenant, "alice", grant), json={"value": "pwned"})
        assert wrote.status_code == 403, (what, wrote.text)
    assert api.get(diary, headers=sx.bearer(a.keys["alice"])).json()["value"] == "alice's secret"
    # a grant with a byte outside base64url (sent raw, as a client may) is malformed: 403, never a 500
    for mangled in (world["alice_event"].delivery_grant[:-1].encode() + b"\xe9", b"\xe9" + b".x.y"):
        headers = {**acting(sx, agent, a.service_tenant, "alice"), "x-soorma-grant": mangled}
        reply = api.get(diary, headers=headers)
        assert reply.status_code == 403 and "delivery grant" in reply.json()["detail"], reply.text

    # the legitimate use: with the grant of alice's event, the agent reads alice's goal and memory
    granted = acting(sx, agent, a.service_tenant, "alice", world["alice_event"].delivery_grant)
    assert api.get(alice_goal, headers=granted).status_code == 200
    assert api.get(diary, headers=granted).json()["value"] == "alice's secret"
    listed = api.get("/v1/goals", headers=granted).json()["goals"]
    assert world["alice_goal"] in {g["goal_id"] for g in listed} and world["bob_goal"] not in {g["goal_id"]
                                                                                                 for g in listed}
    # ... and only alice: her grant does not open bob's goal
    bobs = acting(sx, agent, a.service_tenant, "bob", world["alice_event"].delivery_grant)
    assert api.get(f"/v1/goals/{world['bob_goal']}", headers=bobs).status_code == 403

    # an agent acting as itself needs no grant; a tenant admin still acts for its users
    assert api.get("/v1/goals", headers=sx.bearer(agent)).status_code == 200
    as_itself = acting(sx, agent, a.service_tenant, "the-agent")
    assert api.get("/v1/goals", headers=as_itself).status_code == 200
    admin = acting(sx, a.keys["admin"], a.service_tenant, "alice")
    assert api.get(diary, headers=admin).json()["value"] == "alice's secret"


def test_events_published_under_a_grant_get_a_fresh_grant_of_their_own(api, world, sx, nats_url):
    a, agent, key = world["a"], world["a"].keys["agent"], grants.derive_key(sx.PEPPER)
    granted = acting(sx, agent, a.service_tenant, "alice", world["alice_event"].delivery_grant)
    event_type = f"sec.done.{uuid.uuid4().hex[:8]}"
    # whatever grant the publisher writes into the envelope is replaced by the gateway's
    body = {"event": {"type": event_type, "topic": "action-results", "data": {"ok": True},
                      "delivery_grant": world["bob_event"].delivery_grant}}
    reply = api.post("/v1/events/publish", headers=granted, json=body)
    assert reply.status_code == 200, reply.text
    published = last_event(nats_url, f"soorma.{a.id}.action-results.{event_type}")
    fresh = grants.verify(published.delivery_grant, key)
    assert (fresh.platform_tenant_id, fresh.service_tenant_id, fresh.service_user_id, fresh.event_id) == (
        a.id, a.service_tenant, "alice", published.id)
    # without the grant the agent cannot publish as alice (so it cannot mint itself a grant for her)
    refused = api.post("/v1/events/publish", headers=acting(sx, agent, a.service_tenant, "alice"),
                       json={"event": {"type": event_type, "topic": "action-results", "data": {}}})
    assert refused.status_code == 403, refused.text
    # nor by naming alice in the envelope while acting as itself
    named = api.post("/v1/events/publish", headers=sx.bearer(agent),
                     json={"event": {"type": event_type, "topic": "action-results", "data": {},
                                     "tenant_id": a.service_tenant, "user_id": "alice"}})
    assert named.status_code == 403, named.text
    # a grant survives the SNS/SQS transport as it does NATS: it is part of the envelope body both publish
    assert json.loads(published.to_json())["delivery_grant"] == published.delivery_grant


async def test_the_sdk_sends_the_events_grant_while_handling_it(api, world, sx):
    """An agent written with the SDK, handling alice's event, reads alice's memory with no code of its own; the same
    agent naming alice outside the event is refused."""
    from soorma import PlatformContext
    from soorma._current import handling
    from soorma.errors import PlatformError
    from soorma.settings import Settings

    a = world["a"]
    context = PlatformContext(settings=Settings(api_url="http://api.local", api_key=a.keys["agent"]),
                              transport=httpx.ASGITransport(app=api.asgi_app))
    with handling(world["alice_event"], "sec-agent/0", source="sec-agent"):
        assert await context.memory.retrieve("diary") == "alice's secret"
    with pytest.raises(PlatformError) as refused:
        await context.memory.retrieve("diary", tenant_id=a.service_tenant, user_id="alice")
    assert refused.value.status == 403
    with handling(world["bob_event"], "sec-agent/0", source="sec-agent"):
        assert await context.memory.retrieve("diary") is None  # bob's own (empty) memory, not alice's


def test_a_dead_letter_replayed_after_its_grant_expired_is_regranted_by_a_replayer_with_the_key(world, sx):
    key = grants.derive_key(sx.PEPPER)
    expired = grants.stamp(world["alice_event"], key=key, ttl_s=-1)
    with pytest.raises(grants.GrantInvalid, match="expired"):
        grants.verify(expired.delivery_grant, key)
    replayed = EventEnvelope.from_json(grants.regrant_body(expired.to_json(), key))
    renewed = grants.verify(replayed.delivery_grant, key)
    assert (renewed.service_user_id, renewed.event_id) == ("alice", world["alice_event"].id)
    assert replayed.model_dump(exclude={"delivery_grant"}) == expired.model_dump(exclude={"delivery_grant"})


def test_a_developer_cannot_mint_itself_a_key_that_is_an_existing_user(api, world, sx):
    """Found on the way (the same boundary): ``POST /v1/api-keys`` let a ``developer`` create a ``user`` (or
    ``agent``) key naming any service tenant and user, and a key's own identity needs no grant, so the developer
    became alice. Now a developer's keys are for new principals; naming an identity is an admin's."""
    a = world["a"]
    created = api.post("/v1/api-keys", headers=sx.bearer(a.keys["admin"]),
                       json={"role": "developer", "name": "dev", "service_tenant_id": a.service_tenant,
                             "service_user_id": "dev"})
    assert created.status_code == 201, created.text
    developer = sx.bearer(created.json()["api_key"])
    for named in ({"service_tenant_id": a.service_tenant, "service_user_id": "alice"}, {"service_user_id": "alice"},
                  {"principal_id": "alice"}, {"service_tenant_id": f"st_elsewhere_{uuid.uuid4().hex[:6]}"}):
        for role in ("user", "agent"):
            reply = api.post("/v1/api-keys", headers=developer, json={"role": role, "name": "x", **named})
            assert reply.status_code == 403 and "new principals" in reply.json()["detail"], (named, role, reply.text)
    # ... nor rotate alice's key into a new one it holds (revoking it stays a developer's right)
    alice_key_id = next(k["key_id"] for k in api.get("/v1/api-keys", headers=developer).json()["keys"]
                        if k["service_user_id"] == "alice" and k["role"] == "user")
    assert api.post(f"/v1/api-keys/{alice_key_id}/rotate", headers=developer).status_code == 403
    assert api.get("/v1/memory/working/default/diary", headers=sx.bearer(a.keys["alice"])).status_code == 200
    # the legitimate use: a key for a new principal, which sees nothing of alice's
    fresh = api.post("/v1/api-keys", headers=developer, json={"role": "user", "name": "tester"})
    assert fresh.status_code == 201, fresh.text
    assert fresh.json()["service_user_id"] != "alice"
    diary = api.get("/v1/memory/working/default/diary", headers=sx.bearer(fresh.json()["api_key"]))
    assert "alice's secret" not in diary.text
    # an admin still names identities
    named = api.post("/v1/api-keys", headers=sx.bearer(a.keys["admin"]),
                     json={"role": "user", "name": "alice-2", "service_tenant_id": a.service_tenant,
                           "service_user_id": "alice"})
    assert named.status_code == 201, named.text
