"""Listing and deleting knowledge (GET /semantic?cursor=, DELETE /semantic/{id}), and per-query ef_search."""

from __future__ import annotations

import uuid


def test_list_pages_through_own_passages(api, make_identity):
    who = make_identity(role="developer")
    other = make_identity(platform=who.platform_tenant_id)
    ids = api.call("POST", "/v1/memory/semantic/batch", who, body={"items": [
        {"content": f"passage number {i}", "is_public": i == 3} for i in range(7)]}).body["ids"]
    api.call("POST", "/v1/memory/semantic", other, body={"content": "someone else's"})

    seen, cursor, pages = [], None, 0
    while True:
        query = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        reply = api.call("GET", "/v1/memory/semantic", who, query=query)
        assert reply.status == 200, reply.body
        assert reply.body["count"] == len(reply.body["items"]) <= 3
        seen += [item["id"] for item in reply.body["items"]]
        pages += 1
        cursor = reply.body["nextCursor"]
        if cursor is None:
            break
    assert pages == 3 and sorted(seen) == sorted(ids) and len(set(seen)) == 7  # own rows, public one included
    assert api.call("GET", "/v1/memory/semantic", other).body["count"] == 1


def test_delete_knowledge(api, make_identity):
    who = make_identity()
    row = api.call("POST", "/v1/memory/semantic", who, body={"content": "Delete me, please."}).body
    assert api.call("DELETE", f"/v1/memory/semantic/{row['id']}", who).status == 204
    assert api.call("DELETE", f"/v1/memory/semantic/{row['id']}", who).status == 404
    hits = api.call("POST", "/v1/memory/semantic/query", who, query={"query": "delete me"}).body
    assert row["id"] not in {h["id"] for h in hits}
    assert api.call("DELETE", f"/v1/memory/semantic/{uuid.uuid4()}", who).status == 404
    bad = api.call("DELETE", "/v1/memory/semantic/not-a-uuid", who)
    assert bad.status == 422 and "UUID" in bad.body["detail"]


def test_bad_cursor_is_a_422(api, make_identity):
    for cursor in ("garbage", "W10", "WyJ4IiwgInkiXQ"):  # not base64 JSON / [] / ["x", "y"]
        reply = api.call("GET", "/v1/memory/semantic", make_identity(), query={"cursor": cursor})
        assert reply.status == 422 and "cursor" in reply.body["detail"], (cursor, reply.body)


def test_ef_search_is_accepted_and_bounded(api, make_identity, memory_db, embedder):
    who = make_identity()
    api.call("POST", "/v1/memory/semantic", who, body={"content": "The Danube flows through Vienna."})
    for ef in (1, 40, 1000):
        reply = api.call("POST", "/v1/memory/semantic/query", who, query={"query": "river in Austria", "ef_search": ef})
        assert reply.status == 200 and reply.body[0]["content"].startswith("The Danube"), (ef, reply.body)
    for ef in (0, 1001, "many"):
        assert api.call("GET", "/v1/memory/semantic/search", who, query={"q": "x", "ef_search": ef}).status == 422

    # the value is applied to the search's own transaction (bounded: never below the limit, at most 1000; 64 or
    # 2 x limit by default), and only to it (set_config(..., true) is transaction-local). That the route passes
    # ?ef_search= through to the database is shown by its effect on recall in test_memory_iterative_scan.py.
    import numpy as np

    from soorma.functions.memory.resources import semantic

    def setting(conn, name: str):
        return conn.execute("select current_setting(%s, true) as v", (name,)).fetchone()["v"]

    vector = np.asarray(embedder.embed(["river in Austria"])[0], dtype=np.float32)
    for limit, ef, applied in ((5, 1, 5), (5, 41, 41), (5, 1000, 1000), (5, None, 64), (50, None, 100)):
        with memory_db.transaction(who) as conn:
            found = semantic.search_semantic(conn, who, vector, limit, True, ef)
            assert setting(conn, "hnsw.ef_search") == str(applied), (limit, ef)
            assert setting(conn, "hnsw.iterative_scan") == "relaxed_order"
            assert found and found[0][0]["content"].startswith("The Danube")
        with memory_db.transaction(who) as conn:  # back to pgvector's default (or not loaded in this backend)
            assert setting(conn, "hnsw.ef_search") in (None, "40")
