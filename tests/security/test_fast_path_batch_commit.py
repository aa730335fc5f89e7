"""Issue 19's ``POST /v1/events/commits`` (a batch's handler runs committed at once) is held to the same boundary as
the single commit: an agent key acts for a user only with that user's event grant, and, acting for one user, cannot
read, overwrite or delete another user's task context through a batch.

Performed with a real agent API key through the local API Gateway (cache on) in front of the real authorizer, gateway
and memory functions, with grants taken from the real events on NATS JetStream (issue 12 finding 8's world)."""

from __future__ import annotations

import time
import uuid

from tests.security.conftest import load_helpers

_grants = load_helpers("security/test_finding08_act_for_grant.py", "soorma_sec_finding08_helpers")
world, acting = _grants.world, _grants.acting


def commit(key: str, **fields) -> dict:
    return {"key": key, "expiry_timestamp": int(time.time()) + 3600, **fields}


def task(task_id: str, owner: str, version: int | None = None) -> dict:
    body = {"task_id": task_id, "event_type": "sec.task", "data": {"owner": owner}}
    return {**body, "version": version} if version is not None else body


def test_a_batch_acts_only_for_the_user_whose_grant_it_carries(api, world, sx):
    a, agent = world["a"], world["a"].keys["agent"]
    as_bob = acting(sx, agent, a.service_tenant, "bob", world["bob_event"].delivery_grant)
    as_alice = acting(sx, agent, a.service_tenant, "alice", world["alice_event"].delivery_grant)
    bobs_task = f"bob-task-{uuid.uuid4().hex[:8]}"
    saved = api.post("/v1/events/commits", headers=as_bob,
                     json={"commits": [commit(f"k-{uuid.uuid4()}", task_contexts=[task(bobs_task, "bob")])]})
    assert saved.status_code == 200, saved.text

    overwrite = {"commits": [commit(f"k-{uuid.uuid4()}", task_contexts=[task(bobs_task, "mallory")]),
                             commit(f"k-{uuid.uuid4()}", deleted_task_contexts=[bobs_task])]}
    # as bob, but without bob's grant: no grant, alice's grant, another platform tenant's grant
    for grant in (None, world["alice_event"].delivery_grant, world["b_event"].delivery_grant):
        reply = api.post("/v1/events/commits", headers=acting(sx, agent, a.service_tenant, "bob", grant),
                         json=overwrite)
        assert reply.status_code == 403 and "delivery grant" in reply.json()["detail"], reply.text

    # as alice with her own grant: bob's task is not hers to overwrite at his version, nor visible to delete
    versioned = {"commits": [commit(f"k-{uuid.uuid4()}", task_contexts=[task(bobs_task, "mallory", 1)])]}
    reply = api.post("/v1/events/commits", headers=as_alice, json=versioned)
    assert reply.status_code == 409 and reply.json()["detail"].startswith("commits[0]: "), reply.text
    reply = api.post("/v1/events/commits", headers=as_alice,
                     json={"commits": [commit(f"k-{uuid.uuid4()}", deleted_task_contexts=[bobs_task])]})
    assert reply.status_code == 200, reply.text

    # an event naming bob, committed as alice, is refused whole: nothing of the batch is applied
    forged = {"id": str(uuid.uuid4()), "type": "sec.forged", "topic": "business-facts", "tenant_id": a.service_tenant,
              "user_id": "bob"}
    reply = api.post("/v1/events/commits", headers=as_alice, json={"commits": [
        commit(f"k-{uuid.uuid4()}", task_contexts=[task(f"alice-{uuid.uuid4().hex[:6]}", "alice")]),
        commit(f"k-{uuid.uuid4()}", events=[forged])]})
    assert reply.status_code == 403 and reply.json()["detail"].startswith("commits[1]: "), reply.text

    stored = api.get(f"/v1/memory/task-context/{bobs_task}", headers=as_bob)
    assert stored.status_code == 200 and stored.json()["data"] == {"owner": "bob"}, stored.text
