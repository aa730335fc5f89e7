"""Issue 12, finding 7 — one tenant can drop another tenant's events.

The attack: JetStream de-duplicates on ``Nats-Msg-Id`` across the whole ``SOORMA_EVENTS`` stream, the message id was
the client-chosen envelope id, and the gateway ignored ``PubAck.duplicate``. So tenant A, publishing an event with
the id tenant B is about to use, made JetStream silently drop B's event while B's gateway answered "Event published".

Now the message id is ``<platform tenant>:<event id>`` everywhere a message id is set, so de-duplication stays inside
one tenant, and the gateway reports a real duplicate (``duplicate: true``) instead of claiming a new event.
Black-box: the real gateway function (Mangum handler, API Gateway v2 events with the authorizer's identity) on the
session's real PostgreSQL and NATS JetStream; B's consumer is a durable pull consumer filtered on B's subjects, as
the bridge creates one.
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid

import pytest
from mangum import Mangum

from soorma import testing
from soorma.functions.shared.db import Database

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def gateway(app_dsn, nats_url):
    from soorma.functions.gateway.app import create_app
    from soorma.functions.gateway.publisher import NatsPublisher

    db = Database(app_dsn, max_size=2)
    publisher = NatsPublisher(nats_url)
    yield Mangum(create_app(db, publisher), lifespan="off")
    publisher.close()
    db.close()


def call(handler, identity, body: dict) -> tuple[int, dict]:
    from soorma.functions.shared.service import ensure_event_loop

    ensure_event_loop()
    event = testing.http_api_event("POST", "/v1/events/publish", identity=identity, body=body,
                                   headers={"host": "api.local"})
    out = handler(event, None)
    text = base64.b64decode(out["body"]).decode() if out.get("isBase64Encoded") else out.get("body") or ""
    return out["statusCode"], json.loads(text) if text else {}


async def consume(nats_url: str, tenant: str, durable: str) -> list[dict]:
    """What a durable consumer of ``tenant``'s business facts receives (everything stored, then nothing new)."""
    import nats
    from nats.js.api import ConsumerConfig, DeliverPolicy

    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        sub = await js.pull_subscribe(f"soorma.{tenant}.business-facts.>", durable=durable, stream="SOORMA_EVENTS",
                                      config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL))
        got: list[dict] = []
        while True:
            try:
                batch = await sub.fetch(50, timeout=1)
            except (TimeoutError, nats.errors.TimeoutError):
                break
            for msg in batch:
                got.append({"body": json.loads(msg.data), "msg_id": (msg.headers or {}).get("Nats-Msg-Id")})
                await msg.ack()
        return got
    finally:
        await nc.close()


def test_another_tenants_event_id_does_not_drop_mine(gateway, nats_url):
    attacker = testing.new_identity("developer")
    victim = testing.new_identity("developer")
    shared_id = str(uuid.uuid4())  # the id the victim is about to publish, learned or guessed by the attacker

    # The attack: the attacker publishes first, inside the 120 s duplicate window, with the victim's event id.
    status, body = call(gateway, attacker, {"event": {"id": shared_id, "type": "order.placed",
                                                      "topic": "business-facts", "data": {"from": "attacker"}}})
    assert status == 200 and body["duplicate"] is False, body

    # The victim's event is stored and says so truthfully.
    status, body = call(gateway, victim, {"event": {"id": shared_id, "type": "order.placed",
                                                    "topic": "business-facts", "data": {"from": "victim"}}})
    assert status == 200, body
    assert {k: body[k] for k in ("success", "event_id", "duplicate", "message")} == {
        "success": True, "event_id": shared_id, "duplicate": False, "message": "Event published"}
    assert body.get("timer_id") is None  # published now, not scheduled

    # ... and the victim's consumer receives it (and only the victim's own event).
    got = asyncio.run(consume(nats_url, victim.platform_tenant_id, f"victim-{uuid.uuid4().hex[:8]}"))
    assert [g["body"]["data"] for g in got] == [{"from": "victim"}]
    assert got[0]["body"]["id"] == shared_id
    assert got[0]["msg_id"] == f"{victim.platform_tenant_id}:{shared_id}"


def test_a_retried_publish_of_my_own_event_is_reported_as_a_duplicate(gateway, nats_url):
    me = testing.new_identity("developer")
    event = {"event": {"id": str(uuid.uuid4()), "type": "order.placed", "topic": "business-facts",
                       "data": {"n": 1}}}
    first = call(gateway, me, event)
    again = call(gateway, me, event)  # the legitimate use: a client retry after a timeout
    assert first[0] == again[0] == 200
    assert first[1]["duplicate"] is False and first[1]["message"] == "Event published"
    # The truth: JetStream kept the first copy and stored nothing new.
    assert again[1]["duplicate"] is True and again[1]["message"].startswith("Duplicate event")
    got = asyncio.run(consume(nats_url, me.platform_tenant_id, f"me-{uuid.uuid4().hex[:8]}"))
    assert len(got) == 1
