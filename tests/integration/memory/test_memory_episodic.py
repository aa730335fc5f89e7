"""Episodic and procedural memory through the Lambda handler, on real PostgreSQL + pgvector and the local model."""

from __future__ import annotations

import numpy as np

CHAT = [
    ("user", "I want to book a flight to Lisbon next Tuesday."),
    ("assistant", "I found three flights to Lisbon on Tuesday; the cheapest leaves at 7:40."),
    ("user", "My daughter is allergic to peanuts, please note it for the meal."),
    ("assistant", "Noted: a peanut-free meal for your daughter."),
    ("tool", "weather(Lisbon) = 22C, sunny"),
]


def _log(api, who, agent="travel-agent", chat=CHAT):
    ids = []
    for role, content in chat:
        reply = api.call("POST", "/v1/memory/episodic", who,
                         body={"agent_id": agent, "role": role, "content": content, "metadata": {"turn": len(ids)}})
        assert reply.status == 201, reply.body
        ids.append(reply.body["id"])
    return ids


def test_log_interaction_returns_camel_case_record(api, make_identity):
    who = make_identity()
    reply = api.call("POST", "/v1/memory/episodic", who,
                     body={"agentId": "a1", "role": "user", "content": "hello there", "metadata": {"k": 1}})
    assert reply.status == 201, reply.body
    body = reply.body
    assert set(body) >= {"id", "tenantId", "userId", "agentId", "role", "content", "metadata", "createdAt", "score"}
    assert (body["agentId"], body["role"], body["content"], body["metadata"]) == ("a1", "user", "hello there", {"k": 1})
    assert body["tenantId"] == who.service_tenant_id and body["userId"] == who.service_user_id
    assert body["score"] is None


def test_recent_history_is_newest_first_and_per_agent(api, make_identity):
    who = make_identity()
    ids = _log(api, who)
    _log(api, who, agent="other-agent", chat=[("user", "unrelated")])
    reply = api.call("GET", "/v1/memory/episodic/recent", who, query={"agent_id": "travel-agent", "limit": 3})
    assert reply.status == 200, reply.body
    assert [r["id"] for r in reply.body] == list(reversed(ids))[:3]
    everything = api.call("GET", "/v1/memory/episodic/recent", who, query={"agent_id": "travel-agent"}).body
    assert len(everything) == len(CHAT) and all(r["agentId"] == "travel-agent" for r in everything)


def test_search_interactions_finds_the_relevant_turn(api, make_identity):
    who = make_identity()
    _log(api, who)
    reply = api.call("GET", "/v1/memory/episodic/search", who,
                     query={"agent_id": "travel-agent", "q": "food allergy", "limit": 2})
    assert reply.status == 200, reply.body
    assert len(reply.body) == 2
    assert "peanut" in reply.body[0]["content"]
    assert reply.body[0]["score"] >= reply.body[1]["score"]
    # ef_search is accepted per query and bounded
    tuned = api.call("GET", "/v1/memory/episodic/search", who,
                     query={"agent_id": "travel-agent", "q": "food allergy", "limit": 2, "ef_search": 200})
    assert tuned.status == 200 and tuned.body[0]["id"] == reply.body[0]["id"]
    assert api.call("GET", "/v1/memory/episodic/search", who,
                    query={"agent_id": "travel-agent", "q": "x", "ef_search": 100000}).status == 422
    # another agent's history is not searched
    other = api.call("GET", "/v1/memory/episodic/search", who, query={"agent_id": "nobody", "q": "food allergy"})
    assert other.status == 200 and other.body == []


def test_episodic_embeddings_are_reused_by_content_hash(api, make_identity, counting_embedder):
    who = make_identity()
    api.call("POST", "/v1/memory/episodic", who, body={"agent_id": "a", "role": "user", "content": "thanks!"})
    before = len(counting_embedder.texts)
    again = api.call("POST", "/v1/memory/episodic", who, body={"agent_id": "a", "role": "user", "content": "thanks!"})
    assert again.status == 201
    assert len(counting_embedder.texts) == before  # the stored vector was reused
    # knowledge already stored with the same text is reused as well
    api.call("POST", "/v1/memory/semantic", who, body={"content": "Lisbon is the capital of Portugal."})
    before = len(counting_embedder.texts)
    api.call("POST", "/v1/memory/episodic", who,
             body={"agent_id": "a", "role": "assistant", "content": "Lisbon is the capital of Portugal."})
    assert len(counting_embedder.texts) == before


def test_episodic_role_is_checked(api, make_identity):
    reply = api.call("POST", "/v1/memory/episodic", make_identity(),
                     body={"agent_id": "a", "role": "narrator", "content": "x"})
    assert reply.status == 422
    assert any("role" in e["loc"] for e in reply.body["detail"])


SKILLS = [
    ("refund-policy", "customer asks for money back or a refund",
     "Check the order date; refunds are allowed within 30 days. Apologise and give the return address."),
    ("escalate", "customer is angry or threatens legal action",
     "Stay calm, do not argue, and hand the conversation to a human supervisor."),
    ("shipping", "question about delivery time or tracking a parcel",
     "Look up the tracking number and give the carrier's estimated delivery date."),
]


def _skills(api, who, agent="support-bot", public=False):
    out = {}
    for external_id, trigger, content in SKILLS:
        reply = api.call("POST", "/v1/memory/procedural", who, body={
            "agent_id": agent, "external_id": external_id, "trigger_condition": trigger, "content": content,
            "procedure_type": "system_prompt", "is_public": public,
        })
        assert reply.status == 201, reply.body
        out[external_id] = reply.body
    return out


def test_write_and_find_procedures(api, make_identity):
    who = make_identity()
    stored = _skills(api, who)
    record = stored["refund-policy"]
    assert set(record) >= {"id", "agentId", "procedureType", "triggerCondition", "content", "externalId", "isPublic",
                           "createdAt", "score"}
    reply = api.call("GET", "/v1/memory/procedural/context", who,
                     query={"agent_id": "support-bot", "q": "I want my money back for this broken kettle"})
    assert reply.status == 200, reply.body
    assert len(reply.body) == 3  # default limit 3
    assert reply.body[0]["externalId"] == "refund-policy"
    assert reply.body[0]["score"] > reply.body[-1]["score"]
    one = api.call("GET", "/v1/memory/procedural/context", who,
                   query={"agent_id": "support-bot", "q": "where is my parcel?", "limit": 1})
    assert [r["externalId"] for r in one.body] == ["shipping"]


def test_procedure_upsert_by_external_id_and_delete(api, make_identity):
    who = make_identity()
    first = _skills(api, who)["escalate"]
    again = api.call("POST", "/v1/memory/procedural", who, body={
        "agent_id": "support-bot", "external_id": "escalate", "trigger_condition": "customer is furious",
        "content": "Hand over to a supervisor at once."})
    assert again.status == 201 and again.body["id"] == first["id"]
    assert again.body["content"] == "Hand over to a supervisor at once."
    # without external_id: the same (type, trigger, content) is one row
    a = api.call("POST", "/v1/memory/procedural", who, body={"agent_id": "b", "content": "Always greet politely."})
    b = api.call("POST", "/v1/memory/procedural", who, body={"agent_id": "b", "content": "Always greet politely."})
    assert a.body["id"] == b.body["id"] and a.body["triggerCondition"] is None

    assert api.call("DELETE", f"/v1/memory/procedural/{first['id']}", who).status == 204
    assert api.call("DELETE", f"/v1/memory/procedural/{first['id']}", who).status == 404
    left = api.call("GET", "/v1/memory/procedural/context", who,
                    query={"agent_id": "support-bot", "q": "angry customer", "limit": 20}).body
    assert first["id"] not in {r["id"] for r in left} and len(left) == 2


def test_public_procedures_are_shared_in_the_platform_tenant(api, make_identity):
    author = make_identity(role="developer")
    colleague = make_identity(platform=author.platform_tenant_id, role="user")
    stranger = make_identity()
    _skills(api, author, public=True)
    seen = api.call("GET", "/v1/memory/procedural/context", colleague,
                    query={"agent_id": "support-bot", "q": "refund please"}).body
    assert seen and seen[0]["externalId"] == "refund-policy"
    assert seen[0]["tenantId"] is None and seen[0]["userId"] is None  # the author's ids are not shown
    assert api.call("GET", "/v1/memory/procedural/context", stranger,
                    query={"agent_id": "support-bot", "q": "refund please"}).body == []
    # an end user may not write public procedures, and may not delete the shared ones
    denied = api.call("POST", "/v1/memory/procedural", colleague,
                      body={"agent_id": "support-bot", "content": "x", "is_public": True})
    assert denied.status == 403
    assert api.call("DELETE", f"/v1/memory/procedural/{seen[0]['id']}", colleague).status == 404


def test_caller_supplied_embeddings(api, make_identity, embedder, counting_embedder):
    who = make_identity()
    vector = np.asarray(embedder.embed(["a vector I computed myself"])[0])
    before = len(counting_embedder.texts)
    reply = api.call("POST", "/v1/memory/episodic", who, body={
        "agent_id": "a", "role": "user", "content": "some text", "embedding": vector.tolist()})
    assert reply.status == 201, reply.body
    assert len(counting_embedder.texts) == before  # nothing computed
    found = api.call("GET", "/v1/memory/episodic/search", who,
                     query={"agent_id": "a", "q": "a vector I computed myself", "limit": 1}).body
    assert found[0]["id"] == reply.body["id"] and found[0]["score"] > 0.99
    # a caller-supplied vector is never reused for the same text later
    api.call("POST", "/v1/memory/episodic", who, body={"agent_id": "a", "role": "user", "content": "some text"})
    assert counting_embedder.texts[-1:] == ["some text"]


def test_wrong_dimension_embedding_is_a_422_with_the_reason(api, make_identity):
    who = make_identity()
    for path, body in [
        ("/v1/memory/semantic", {"content": "x"}),
        ("/v1/memory/episodic", {"agent_id": "a", "role": "user", "content": "x"}),
        ("/v1/memory/procedural", {"agent_id": "a", "content": "x"}),
    ]:
        reply = api.call("POST", path, who, body={**body, "embedding": [0.1] * 383})
        assert reply.status == 422, (path, reply.body)
        assert "383 dimensions" in reply.body["detail"] and "384" in reply.body["detail"]
    bad = api.call("POST", "/v1/memory/semantic/batch", who,
                   body={"items": [{"content": "ok"}, {"content": "y", "embedding": [1.0] * 1536}]})
    assert bad.status == 422 and "1536 dimensions" in bad.body["detail"]
    for junk in ([0.0] * 384, ["a"] * 384, []):
        assert api.call("POST", "/v1/memory/semantic", who, body={"content": "x", "embedding": junk}).status == 422
