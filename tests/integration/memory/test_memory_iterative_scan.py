"""Iterative HNSW index scans (pgvector 0.8) on a table large enough that the planner really uses the HNSW index.

Setup (module-scoped, a few seconds): one platform tenant holds CROWD private passages of one user and LONER private
passages of another user (the searcher). They are bulk-loaded with binary COPY while the HNSW index is dropped, and
the index is then rebuilt with the migration's own definition, as bench/memory.py does (inserting thousands of rows
into a live HNSW index would take much longer).

The geometry makes the filter selective where it matters: the crowd's vectors lie around the query (cosine ~0.5 to
it), the loner's are random (cosine ~0), so the nearest few hundred rows to the query are all the crowd's. The
planner sees only that the loner may read 10% of the rows (RLS: own rows; it estimates with the caller's identity),
so it orders by the HNSW index. A plain HNSW scan stops after ``ef_search`` (64) candidates — all crowd rows, which
row-level security then discards — and returns fewer than ``limit`` rows; with ``hnsw.iterative_scan`` (what the
route sets) the scan keeps walking the graph until ``limit`` rows pass the filter.
"""

from __future__ import annotations

import numpy as np
import psycopg
import pytest
from pgvector.psycopg import register_vector

from soorma.functions.memory import search
from soorma.functions.memory.resources import semantic

CROWD = 3600  # the other user's passages in the loner's platform tenant, around QUERIES[0]
LONER = 400  # the searching user's own passages, random (10%: enough for the planner to pick the HNSW index)
LIMIT = 10
DIMS = 384
QUERIES = ("where are the invoices kept", "how do I rotate the signing key", "lunch menu for friday",
           "status of the migration", "who approves travel")


def _unit(rng: np.random.Generator, n: int) -> np.ndarray:
    vectors = rng.normal(size=(n, DIMS)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def loaded(postgres, memory_db, embedder):
    """(crowd identity, loner identity, crowd vectors, loner vectors) with the rows bulk-loaded and indexed."""
    from soorma.testing import new_identity

    crowd = new_identity("agent")
    # same service tenant, another user: the planner's estimate of the loner's visible rows (it multiplies the
    # identity columns' selectivities) is then about right, 10%
    loner = new_identity("agent", platform_tenant_id=crowd.platform_tenant_id,
                         service_tenant_id=crowd.service_tenant_id)
    rng = np.random.default_rng(2024)
    q = np.asarray(embedder.embed([QUERIES[0]])[0], dtype=np.float32)
    noise = _unit(rng, CROWD)
    noise -= np.outer(noise @ q, q)  # orthogonal to q, then cosine(crowd, q) = 0.5 exactly
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    crowd_vectors = (0.5 * q + np.sqrt(0.75) * noise).astype(np.float32)
    loner_vectors = _unit(rng, LONER)
    rows = [(crowd, f"crowd {i}", v) for i, v in enumerate(crowd_vectors)]
    rows += [(loner, f"loner {i}", v) for i, v in enumerate(loner_vectors)]
    with psycopg.connect(postgres, autocommit=True) as conn:
        register_vector(conn)
        definition = conn.execute(
            "select pg_get_indexdef('memory.semantic_memory_embedding_hnsw'::regclass)").fetchone()[0]
        conn.execute("drop index memory.semantic_memory_embedding_hnsw")
        try:
            with conn.cursor() as cur:
                with cur.copy(
                    "copy memory.semantic_memory (platform_tenant_id, service_tenant_id, service_user_id, content,"
                    " content_hash, embedding, embedding_model) from stdin with (format binary)"
                ) as copy:
                    copy.set_types(["text", "text", "text", "text", "text", "vector", "text"])
                    for who, text, vector in rows:
                        copy.write_row((who.platform_tenant_id, who.service_tenant_id, who.service_user_id, text,
                                        search.content_hash(text), vector, "test"))
            conn.execute("set maintenance_work_mem = '256MB'")
            conn.execute("set max_parallel_maintenance_workers = 1")
        finally:
            conn.execute(definition)  # the index is back whatever happened (later tests rely on it)
        conn.execute("analyze memory.semantic_memory")
    return crowd, loner, crowd_vectors, loner_vectors


def _plan(conn, query: str, params: dict) -> str:
    return "\n".join(row["QUERY PLAN"] for row in conn.execute("explain " + query, params).fetchall())


def test_filtered_search_uses_hnsw_and_iterative_scan_returns_limit_rows(api, memory_db, embedder, loaded):
    """EXPLAIN shows the HNSW index for the loner's search; with iterative scans off it returns no row (all 64
    candidates are the crowd's), through the route (iterative scan on) it returns ``limit`` of the loner's rows."""
    crowd, loner, crowd_vectors, loner_vectors = loaded
    for text in QUERIES[:1]:
        q = np.asarray(embedder.embed([text])[0], dtype=np.float32)  # the crowd was built around this one
        with memory_db.transaction(loner) as conn:
            search.use_vectors(conn)
            ef = search.search_settings(conn, LIMIT)  # what the route sets: ef_search 64, iterative scan on
            assert conn.execute("show hnsw.iterative_scan").fetchone()["hnsw.iterative_scan"] == "relaxed_order"
            plan = _plan(conn, semantic.search_sql(True), {"q": q, "limit": LIMIT})
            assert "Index Scan using semantic_memory_embedding_hnsw" in plan, plan
            assert "Seq Scan" not in plan, plan

            # the control: the same plan with iterative scans off stops after ef_search candidates. Every crowd row
            # is nearer to the query (cosine 0.5) than every loner row (|cosine| < ~0.25), and there are 3,600 of
            # them, so the 64 candidates are crowd rows and RLS leaves none: deterministic, although HNSW is
            # approximate and its graph depends on pgvector's random levels (which crowd rows, not whether).
            conn.execute("select set_config('hnsw.iterative_scan', 'off', true)")
            assert "Index Scan using semantic_memory_embedding_hnsw" in _plan(
                conn, semantic.search_sql(True), {"q": q, "limit": LIMIT})
            plain = conn.execute(semantic.search_sql(True), {"q": q, "limit": LIMIT}).fetchall()
        assert float((loner_vectors @ q).max()) < 0.4 < 0.5 - 1e-3 < float((crowd_vectors @ q).min())
        assert len(plain) == 0 < LIMIT, (text, ef, [r["content"] for r in plain])
        assert all(r["content"].startswith("loner") for r in plain)  # RLS, not the scan, filters

        # the route (iterative scan on) returns LIMIT rows, all the loner's, best first
        reply = api.call("POST", "/v1/memory/semantic/query", loner, query={"query": text, "limit": LIMIT})
        assert reply.status == 200, reply.body
        hits = reply.body
        assert len(hits) == LIMIT, (text, [h["content"] for h in hits])
        assert all(h["content"].startswith("loner") for h in hits), hits
        scores = [h["score"] for h in hits]
        assert scores == sorted(scores, reverse=True)
        # and they are (nearly) the exact nearest of the loner's rows
        exact = {f"loner {i}" for i in np.argsort(-(loner_vectors @ q))[:LIMIT]}
        assert len(exact & {h["content"] for h in hits}) >= LIMIT - 2, (text, exact, hits)


def test_ef_search_from_the_route_changes_recall(api, embedder, loaded):
    """``?ef_search=`` reaches the database: the crowd user's search over its 3,600 vectors (every row visible to it,
    so the scan stops at ef_search candidates) has clearly lower recall@10 with ef_search=10 than with 1000 (near
    exact)."""
    crowd, _, crowd_vectors, _ = loaded

    def recall(ef: int) -> float:
        found = []
        for text in QUERIES[1:]:  # (every crowd row is at the same distance from QUERIES[0]: no exact top 10)
            q = np.asarray(embedder.embed([text])[0], dtype=np.float32)
            exact = {f"crowd {i}" for i in np.argsort(-(crowd_vectors @ q))[:LIMIT]}
            reply = api.call("POST", "/v1/memory/semantic/query", crowd,
                             query={"query": text, "limit": LIMIT, "ef_search": ef})
            assert reply.status == 200 and len(reply.body) == LIMIT, reply.body
            found.append(len(exact & {h["content"] for h in reply.body}) / LIMIT)
        return float(np.mean(found))

    low, high = recall(10), recall(1000)
    assert high >= 0.9, (low, high)
    assert low <= high - 0.1, (low, high)
