"""Semantic memory through the Lambda handler: upserts, batch, search, public knowledge, tenant isolation."""

from __future__ import annotations

PASSAGES = [
    ("paris", "Paris is the capital and most populous city of France, on the river Seine."),
    ("photosynthesis", "Photosynthesis lets plants turn sunlight, water and carbon dioxide into glucose and oxygen."),
    ("refund", "Customers can ask for a refund within 30 days of purchase by contacting the support team."),
    ("python", "Python is a high-level programming language known for its readable syntax."),
    ("everest", "Mount Everest is the highest mountain above sea level, in the Himalayas."),
]


def _store_all(api, who, public=False):
    ids = {}
    for external_id, content in PASSAGES:
        reply = api.call(
            "POST", "/v1/memory/semantic", who,
            body={"content": content, "external_id": external_id, "is_public": public, "metadata": {"k": external_id}},
        )
        assert reply.status == 201, reply.body
        ids[external_id] = reply.body["id"]
    return ids


def test_store_returns_camel_case_record(api, make_identity):
    who = make_identity()
    reply = api.call(
        "POST", "/v1/memory/semantic", who,
        body={"content": "The sky is blue.", "externalId": "sky", "isPublic": False, "metadata": {"a": 1},
              "tags": ["color"], "source": "test"},
    )
    assert reply.status == 201, reply.body
    body = reply.body
    assert set(body) >= {"id", "content", "externalId", "isPublic", "metadata", "createdAt", "updatedAt", "score"}
    assert body["content"] == "The sky is blue."
    assert body["externalId"] == "sky"
    assert body["isPublic"] is False
    assert body["metadata"] == {"a": 1, "tags": ["color"], "source": "test"}
    assert body["score"] is None
    assert body["tenantId"] == who.service_tenant_id and body["userId"] == who.service_user_id


def test_upsert_by_external_id_and_by_content_hash(api, make_identity, counting_embedder):
    who = make_identity()
    first = api.call("POST", "/v1/memory/semantic", who, body={"content": "Version one.", "external_id": "doc-1"})
    second = api.call("POST", "/v1/memory/semantic", who, body={"content": "Version two.", "external_id": "doc-1"})
    assert first.status == second.status == 201
    assert first.body["id"] == second.body["id"]
    assert second.body["content"] == "Version two."

    plain_1 = api.call("POST", "/v1/memory/semantic", who, body={"content": "Same words.", "metadata": {"n": 1}})
    before = len(counting_embedder.texts)
    plain_2 = api.call("POST", "/v1/memory/semantic", who, body={"content": "Same words.", "metadata": {"n": 2}})
    assert plain_1.body["id"] == plain_2.body["id"]
    assert plain_2.body["metadata"] == {"n": 2}
    assert len(counting_embedder.texts) == before  # stored embedding reused, not recomputed

    # search sees one row per upsert key
    hits = api.call("POST", "/v1/memory/semantic/query", who, query={"query": "version", "limit": 10}).body
    assert sorted(h["content"] for h in hits) == ["Same words.", "Version two."]


def test_batch_embeds_once_and_reuses_stored_embeddings(api, make_identity, counting_embedder):
    who = make_identity()
    api.call("POST", "/v1/memory/semantic", who, body={"content": "Already stored passage."})
    counting_embedder.texts.clear()
    items = [
        {"content": "Already stored passage."},
        {"content": "Brand new passage one.", "external_id": "n1"},
        {"content": "Brand new passage two.", "metadata": {"x": True}},
        {"content": "Brand new passage two."},  # same key as the previous item: one row
        {"content": "Brand new passage one.", "externalId": "n1-copy"},  # same text, other key: embedding shared
    ]
    reply = api.call("POST", "/v1/memory/semantic/batch", who, body={"items": items})
    assert reply.status == 201, reply.body
    assert reply.body["count"] == 5
    ids = reply.body["ids"]
    assert len(ids) == 5 and ids[2] == ids[3] and len(set(ids)) == 4
    assert sorted(counting_embedder.texts) == ["Brand new passage one.", "Brand new passage two."]


def test_batch_limits(api, make_identity):
    who = make_identity()
    assert api.call("POST", "/v1/memory/semantic/batch", who, body={"items": []}).status == 422
    too_many = {"items": [{"content": f"passage {i}"} for i in range(257)]}
    reply = api.call("POST", "/v1/memory/semantic/batch", who, body=too_many)
    assert reply.status == 422
    bad_item = {"items": [{"content": "fine"}, {"content": ""}]}
    assert api.call("POST", "/v1/memory/semantic/batch", who, body=bad_item).status == 422


def test_search_returns_the_relevant_passage_first(api, make_identity):
    who = make_identity()
    _store_all(api, who)
    cases = {
        "What is the capital of France?": "paris",
        "How do plants make food from light?": "photosynthesis",
        "I want my money back": "refund",
        "tallest peak in the world": "everest",
        "which coding language has clean syntax": "python",
    }
    for question, expected in cases.items():
        reply = api.call("POST", "/v1/memory/semantic/query", who, query={"query": question, "limit": 3})
        assert reply.status == 200, reply.body
        assert len(reply.body) == 3
        assert reply.body[0]["externalId"] == expected, (question, [h["externalId"] for h in reply.body])
        scores = [h["score"] for h in reply.body]
        assert scores == sorted(scores, reverse=True)
        assert 0 < scores[0] <= 1.0001

    legacy = api.call("GET", "/v1/memory/semantic/search", who, query={"q": "capital of France", "limit": 1})
    assert legacy.status == 200 and [h["externalId"] for h in legacy.body] == ["paris"]


def test_search_input_validation(api, make_identity):
    who = make_identity()
    path = "/v1/memory/semantic/query"
    assert api.call("POST", path, who, query={"query": ""}).status == 422
    assert api.call("POST", path, who, query={"query": "   "}).status == 422
    assert api.call("POST", path, who).status == 422  # no query at all
    assert api.call("POST", path, who, query={"query": "x", "limit": 0}).status == 422
    assert api.call("POST", path, who, query={"query": "x", "limit": 51}).status == 422
    assert api.call("POST", path, who, query={"query": "x", "limit": "many"}).status == 422
    assert api.call("GET", "/v1/memory/semantic/search", who, query={"q": ""}).status == 422
    reply = api.call("POST", path, who, query={"query": "x", "limit": 50})
    assert reply.status == 200 and reply.body == []


def test_content_validation(api, make_identity):
    who = make_identity()
    path = "/v1/memory/semantic"
    too_long = api.call("POST", path, who, body={"content": "a" * (32 * 1024 + 1)})
    assert too_long.status == 422 and "32768" in str(too_long.body)
    assert api.call("POST", path, who, body={"content": "a" * (32 * 1024)}).status == 201
    assert api.call("POST", path, who, body={"content": ""}).status == 422
    assert api.call("POST", path, who, body={}).status == 422
    assert api.call("POST", path, who, body={"content": "nul \u0000 inside"}).status == 422
    assert api.call("POST", path, who, body={"content": "ok", "metadata": {"bad": "nul \u0000"}}).status == 422
    assert api.call("POST", path, who, body={"content": "ok", "metadata": "not an object"}).status == 422
    assert api.call("POST", path, who, body={"content": "ok", "external_id": "x" * 256}).status == 422
    malformed = api.call("POST", path, who, raw_body='{"content": "unterminated')
    assert 400 <= malformed.status < 500
    nan = api.call("POST", path, who, raw_body='{"content": "ok", "metadata": {"v": NaN}}')
    assert 400 <= nan.status < 500


def test_private_knowledge_is_isolated(api, make_identity, memory_db):
    owner = make_identity()
    other_tenant = make_identity(platform=owner.platform_tenant_id)  # same platform, other service tenant and user
    other_user = make_identity(platform=owner.platform_tenant_id, service=owner.service_tenant_id)
    other_platform = make_identity(service=owner.service_tenant_id, user=owner.service_user_id)
    ids = _store_all(api, owner)

    for intruder in (other_tenant, other_user, other_platform):
        hits = api.call("POST", "/v1/memory/semantic/query", intruder, query={"query": "capital of France"}).body
        assert hits == []
        legacy = api.call("GET", "/v1/memory/semantic/search", intruder, query={"q": "capital of France"}).body
        assert legacy == []
        # the same external_id written by the intruder is its own row, not an overwrite of the owner's
        reply = api.call("POST", "/v1/memory/semantic", intruder, body={"content": "Hijack", "external_id": "paris"})
        assert reply.status == 201 and reply.body["id"] != ids["paris"]

    mine = api.call("POST", "/v1/memory/semantic/query", owner, query={"query": "capital of France", "limit": 1})
    assert mine.body[0]["id"] == ids["paris"] and mine.body[0]["content"].startswith("Paris")

    # and at the database level, row-level security hides the rows from another identity even without a WHERE
    with memory_db.transaction(other_tenant) as conn:
        count = conn.execute(
            "select count(*) as n from memory.semantic_memory where id = any(%s::uuid[])", (list(ids.values()),)
        ).fetchone()["n"]
    assert count == 0
    with memory_db.transaction(other_tenant) as conn:
        deleted = conn.execute("delete from memory.semantic_memory where id = %s", (ids["paris"],)).rowcount
        updated = conn.execute(
            "update memory.semantic_memory set content = 'x' where id = %s", (ids["paris"],)
        ).rowcount
    assert deleted == 0 and updated == 0


def test_public_knowledge_is_shared_within_the_platform_tenant(api, make_identity):
    author = make_identity(role="agent")
    colleague = make_identity(platform=author.platform_tenant_id, role="user")  # other service tenant and user
    stranger = make_identity(role="agent")  # another platform tenant
    ids = _store_all(api, author, public=True)

    hits = api.call("POST", "/v1/memory/semantic/query", colleague, query={"query": "capital of France"}).body
    assert hits and hits[0]["id"] == ids["paris"] and hits[0]["isPublic"] is True
    assert hits[0]["tenantId"] is None and hits[0]["userId"] is None  # the author's ids are not disclosed
    legacy = api.call("GET", "/v1/memory/semantic/search", colleague, query={"q": "capital of France"}).body
    assert legacy[0]["id"] == ids["paris"]
    private_only = api.call(
        "POST", "/v1/memory/semantic/query", colleague, query={"query": "capital of France", "include_public": "false"}
    ).body
    assert private_only == []
    assert api.call("POST", "/v1/memory/semantic/query", stranger, query={"query": "capital of France"}).body == []

    # the colleague's own private row and the public rows are searched together
    api.call("POST", "/v1/memory/semantic", colleague, body={"content": "Lyon is a large city in France."})
    both = api.call("POST", "/v1/memory/semantic/query", colleague, query={"query": "city in France", "limit": 2}).body
    assert {h["isPublic"] for h in both} == {True, False}

    # an end user may not publish knowledge to every service tenant
    reply = api.call("POST", "/v1/memory/semantic", colleague, body={"content": "Spam for all", "is_public": True})
    assert reply.status == 403
    reply = api.call("POST", "/v1/memory/semantic/batch", colleague, body={"items": [{"content": "x", "isPublic": True}]})
    assert reply.status == 403

    # another agent of the platform tenant may update public knowledge by its external id
    editor = make_identity(platform=author.platform_tenant_id, role="agent")
    reply = api.call(
        "POST", "/v1/memory/semantic", editor,
        body={"content": "Paris, capital of France, has about two million inhabitants.", "external_id": "paris",
              "is_public": True},
    )
    assert reply.status == 201 and reply.body["id"] == ids["paris"]


def test_filtered_search_still_returns_limit_rows(api, make_identity, memory_db, embedder):
    """A caller whose few rows are buried among many other tenants' rows still gets `limit` results. (With this few
    rows the planner picks the identity btree plus an exact sort; the HNSW iterative-scan path itself, with EXPLAIN
    and an iterative_scan=off control, is test_memory_iterative_scan.py.)"""
    crowd = make_identity()
    texts = [f"Crowd passage number {i} about shipping logistics and warehouses." for i in range(300)]
    vectors = embedder.embed(texts)
    with memory_db.transaction(crowd) as conn:
        with conn.cursor() as cur:
            cur.executemany(
                "insert into memory.semantic_memory (platform_tenant_id, service_tenant_id, service_user_id, content,"
                " content_hash, embedding, embedding_model) values (%s, %s, %s, %s, md5(%s), %s::vector, 'test')",
                [
                    (crowd.platform_tenant_id, crowd.service_tenant_id, crowd.service_user_id, t, t, str(v))
                    for t, v in zip(texts, vectors)
                ],
            )
    loner = make_identity()
    for i in range(12):
        api.call("POST", "/v1/memory/semantic", loner, body={"content": f"Loner note {i} about gardening."})
    reply = api.call("POST", "/v1/memory/semantic/query", loner, query={"query": "shipping logistics", "limit": 10})
    assert reply.status == 200 and len(reply.body) == 10
    assert all(h["content"].startswith("Loner note") for h in reply.body)
