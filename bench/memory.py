"""Memory benchmark: prints one JSON line.

* **Ingestion** with the local embedding model: passages of up to 128 word pieces stored through
  ``POST /v1/memory/semantic/batch`` (the Lambda handler, API Gateway v2 events): embedding + insert + HNSW
  maintenance, ``ingest_passages_per_s`` (median of batches); ``embed_passages_per_s`` is the model alone.
* **Vector search** at 10,000 and 100,000 vectors of 384 dimensions, in ``memory.semantic_memory`` with the
  migration's HNSW index, searched through ``semantic.search_semantic`` (the route's SQL, as role ``soorma_app`` under
  row-level security, minus the HTTP layer and the query's embedding): latency p50/p99 and recall@10 against exact
  search (numpy brute force over the rows the caller may see).

  - **unfiltered**: 99% of the rows are public knowledge of the caller's platform tenant, searched with
    ``include_public=true`` (every row is a candidate);
  - **filtered to one user**: the caller's own 1% of private rows, searched with ``include_public=false``.

  Vectors are **synthetic clustered** data: 1,000 random unit centres in 384-d, each point a centre plus Gaussian
  noise (σ per dimension = ``--noise`` / √384), normalised; queries are fresh points from the same mixture. (Pure
  random vectors have no neighbourhood structure at all and are the worst case for any ANN index; real sentence
  embeddings are clustered. ``--random`` runs the uniform-random case too.)

  Rows are bulk-loaded first (binary COPY) and the HNSW index is built afterwards with the migration's definition
  (pgvector inserts into an HNSW-indexed table run ~600 rows/s on this machine). ``ef_search`` is swept.

The database is an embedded PostgreSQL started here (migrated with ``soorma.functions.migrate.apply``), or the owner
DSN in ``SOORMA_DATABASE_URL``. The machine is shared and noisy: compare ratios within one run.

    python bench/memory.py [--sizes 10000,100000] [--queries 200] [--ef 40,64,100,200] [--random]
                           [--ingest 512] [--skip-ingest] [--skip-search]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

DIMS = 384
USERS = 100  # the filtered caller owns 1 / USERS of the rows


# -- data ------------------------------------------------------------------------------------------------------------


def clustered(n: int, rng: np.random.Generator, centres: np.ndarray, noise: float) -> np.ndarray:
    which = rng.integers(0, len(centres), size=n)
    points = centres[which] + rng.normal(scale=noise / np.sqrt(DIMS), size=(n, DIMS)).astype(np.float32)
    return (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32)


def uniform(n: int, rng: np.random.Generator) -> np.ndarray:
    points = rng.normal(size=(n, DIMS)).astype(np.float32)
    return points / np.linalg.norm(points, axis=1, keepdims=True)


def passages_128(count: int, seed: int, tokenizer) -> list[str]:
    """Synthetic English-like passages of 40-128 word pieces ([CLS]/[SEP] included), unique by their prefix."""
    import random

    from memory_ingest import WORDS

    rnd = random.Random(seed)
    out = []
    while len(out) < count:
        words = [rnd.choice(WORDS) for _ in range(rnd.randint(30, 110))]
        text = f"Passage {seed}-{len(out)}: " + " ".join(words).capitalize() + "."
        n = len(tokenizer.encode(text).ids)
        if n <= 128:
            out.append(text)
    return out


# -- ingestion -------------------------------------------------------------------------------------------------------


def bench_ingest(owner_dsn: str, count: int, batch: int) -> dict:
    from mangum import Mangum

    from memory_ingest import batch_rates
    from soorma.functions.memory.app import create_app
    from soorma.functions.memory.embeddings.local import LocalMiniLM
    from soorma.functions.shared.db import Database
    from soorma.identity import Identity
    from soorma.local.postgres import app_dsn

    model = LocalMiniLM()
    start = time.perf_counter()
    model.load()
    load_s = time.perf_counter() - start
    tokenizer = model._tokenizer
    texts = passages_128(count, seed=11, tokenizer=tokenizer)
    lengths = [len(tokenizer.encode(t).ids) for t in texts]
    model.embed(passages_128(32, seed=12, tokenizer=tokenizer))  # warm up

    start = time.perf_counter()
    model.embed(passages_128(count, seed=13, tokenizer=tokenizer))
    embed_rate = count / (time.perf_counter() - start)

    db = Database(app_dsn(owner_dsn))
    handler = Mangum(create_app(db=db, embedder=model), lifespan="off")
    who = Identity("pt_ingest", "st_ingest", "su_" + uuid.uuid4().hex[:8], "pr_bench", "agent")
    total_start = time.perf_counter()
    try:
        rates = batch_rates(handler, [texts[i : i + batch] for i in range(0, count, batch)], who)
    finally:
        db.close()
    overall = count / (time.perf_counter() - total_start)
    return {
        "ingest_passages_per_s": round(statistics.median(rates), 1),
        "ingest_passages_per_s_overall": round(overall, 1),
        "ingest_batches_per_s": [round(r, 1) for r in rates],
        "embed_passages_per_s": round(embed_rate, 1),
        "ingest_passages": count,
        "ingest_batch": batch,
        "passage_tokens_mean": round(float(np.mean(lengths)), 1),
        "passage_tokens_max": int(max(lengths)),
        "model_load_s": round(load_s, 2),
        "onnx_threads": model.threads,
        "embed_batch_size": model.batch_size,
        "embed_max_tokens": model.max_seq_length,
    }


class _Before:
    """The embedding loop as it was before this change (for a before/after ratio in one run): batches formed by
    character length, each tokenised again with the tokenizer's own padding."""

    def __init__(self, model) -> None:
        self.model = model
        tokenizer = model._tokenizer.__class__.from_str(model._tokenizer.to_str())
        tokenizer.enable_padding(pad_id=model._pad_id, pad_token="[PAD]")
        self.tokenizer = tokenizer

    def embed(self, texts: list[str]) -> np.ndarray:
        from soorma.functions.memory.embeddings.local import _mean_pool_normalise

        model = self.model
        out = np.zeros((len(texts), 384), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        for start in range(0, len(order), 32):
            chunk = order[start : start + 32]
            encodings = self.tokenizer.encode_batch([texts[i] for i in chunk])
            ids = np.asarray([e.ids for e in encodings], dtype=np.int64)
            mask = np.asarray([e.attention_mask for e in encodings], dtype=np.int64)
            feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
            (hidden,) = model._session.run(["last_hidden_state"], feeds)
            out[chunk] = _mean_pool_normalise(hidden, mask)
        return out


def bench_embedding_variants(count: int, rounds: int, int8_model: str | None) -> dict:
    """Passages per second of the embedding step alone, variants interleaved round by round (medians): the loop
    before this change, the current one at several batch sizes, and an int8 model file if given."""
    from soorma.functions.memory.embeddings.local import LocalMiniLM, packaged_model_path

    # the float graph (before/after length bucketing), whatever the default is
    base = LocalMiniLM(model_path=packaged_model_path())
    base.load()
    texts = passages_128(count, seed=21, tokenizer=base._tokenizer)
    variants = {"before_b32": _Before(base).embed}
    for batch in (16, 32, 64):
        model = LocalMiniLM(model_path=packaged_model_path(), batch_size=batch)
        model.load()
        variants[f"after_b{batch}"] = model.embed_array
    reference = base.embed_array(texts)
    agreement = {}
    default = LocalMiniLM()  # the memory function's model: the int8 build, one text per run, where it can be had
    if default.int8:
        default.load()
        variants["int8_default"] = default.embed_array
        cos = (default.embed_array(texts) * reference).sum(axis=1)
        agreement = {"int8_default_cosine_to_float_mean": round(float(cos.mean()), 4),
                     "int8_default_cosine_to_float_min": round(float(cos.min()), 4)}
    if int8_model:
        quantized = LocalMiniLM(model_path=int8_model)
        quantized.load()
        variants["int8_b32"] = quantized.embed_array
        cos = (quantized.embed_array(texts) * reference).sum(axis=1)
        agreement.update({"int8_cosine_to_float_mean": round(float(cos.mean()), 4),
                          "int8_cosine_to_float_min": round(float(cos.min()), 4)})
    for embed in variants.values():
        embed(texts[:64])  # warm up
    rates: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, embed in variants.items():
            start = time.perf_counter()
            embed(texts)
            rates[name].append(count / (time.perf_counter() - start))
    medians = {name: round(statistics.median(r), 1) for name, r in rates.items()}
    return {
        "embed_variants_passages_per_s": medians,
        "embed_variants_rounds": {name: [round(x, 1) for x in r] for name, r in rates.items()},
        "embed_after_over_before": round(medians["after_b32"] / medians["before_b32"], 2),
        **({"embed_int8_over_float": round(medians["int8_b32"] / medians["after_b32"], 2)} if int8_model else {}),
        **({"embed_int8_default_over_float": round(medians["int8_default"] / medians["after_b32"], 2)}
           if "int8_default" in medians else {}),
        **agreement,
    }


# -- search ----------------------------------------------------------------------------------------------------------


def load(owner_dsn: str, pt: str, vectors: np.ndarray, public: np.ndarray, owners: list[str]) -> float:
    """Bulk-load rows (binary COPY) into memory.semantic_memory with the HNSW index dropped, then rebuild it with the
    migration's definition. Returns the index build seconds."""
    import psycopg
    from pgvector.psycopg import register_vector

    with psycopg.connect(owner_dsn, autocommit=True) as conn:
        register_vector(conn)
        definition = conn.execute(
            "select pg_get_indexdef('memory.semantic_memory_embedding_hnsw'::regclass)"
        ).fetchone()[0]
        conn.execute("drop index memory.semantic_memory_embedding_hnsw")
        conn.execute("delete from memory.semantic_memory where platform_tenant_id like 'pt_search%'")
        with conn.cursor() as cur:
            with cur.copy(
                "copy memory.semantic_memory (platform_tenant_id, service_tenant_id, service_user_id, content,"
                " content_hash, is_public, embedding, embedding_model) from stdin with (format binary)"
            ) as copy:
                copy.set_types(["text", "text", "text", "text", "text", "bool", "vector", "text"])
                for i, vector in enumerate(vectors):
                    copy.write_row((pt, "st", owners[i], f"row {i}", f"h{i}", bool(public[i]), vector, "bench"))
        conn.execute("set maintenance_work_mem = '1GB'")
        conn.execute("set max_parallel_maintenance_workers = 1")
        start = time.perf_counter()
        conn.execute(definition)
        build_s = time.perf_counter() - start
        conn.execute("vacuum analyze memory.semantic_memory")
    return build_s


def exact_top(vectors: np.ndarray, mask: np.ndarray, query: np.ndarray, k: int) -> set[int]:
    ids = np.flatnonzero(mask)
    scores = vectors[ids] @ query
    top = ids[np.argsort(-scores)[:k]]
    return set(int(i) for i in top)


def measure(db, who, vectors, mask, queries, include_public: bool, ef: int, k: int = 10) -> dict:
    from soorma.functions.memory import search
    from soorma.functions.memory.resources import semantic

    latencies, recalls, plans = [], [], set()
    with db.transaction(who) as conn:  # warm the connection and the index pages
        search.use_vectors(conn)
        for q in queries[:20]:
            semantic.search_semantic(conn, who, q, k, include_public, ef)
        search.search_settings(conn, k, ef)
        plan = "\n".join(r["QUERY PLAN"] for r in conn.execute(
            "explain " + semantic.search_sql(include_public), {"q": queries[0], "limit": k}).fetchall())
        plans.add("hnsw" if "semantic_memory_embedding_hnsw" in plan else
                  "seq" if "Seq Scan" in plan else "btree+sort")
    for q in queries:
        with db.transaction(who) as conn:
            start = time.perf_counter()
            found = semantic.search_semantic(conn, who, q, k, include_public, ef)
            latencies.append((time.perf_counter() - start) * 1000)
        got = {int(row["content"].split()[1]) for row, _ in found}
        recalls.append(len(got & exact_top(vectors, mask, q, k)) / k)
    latencies.sort()
    return {
        "ef_search": ef,
        "p50_ms": round(statistics.median(latencies), 2),
        "p99_ms": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))], 2),
        "recall_at_10": round(float(np.mean(recalls)), 4),
        "plan": "/".join(sorted(plans)),
    }


def bench_search(owner_dsn: str, size: int, queries_n: int, efs: list[int], kind: str, noise: float) -> dict:
    from soorma.functions.shared.db import Database
    from soorma.identity import Identity
    from soorma.local.postgres import app_dsn

    rng = np.random.default_rng(size)
    if kind == "clustered":
        centres = uniform(1000, rng)
        vectors = clustered(size, rng, centres, noise)
        queries = clustered(queries_n, rng, centres, noise)
    else:
        vectors, queries = uniform(size, rng), uniform(queries_n, rng)
    pt = f"pt_search_{size}"
    owners = [f"u{i % USERS}" for i in range(size)]
    mine = np.asarray([o == "u0" for o in owners])
    public = ~mine  # 99% public rows of other users; the caller's 1% private
    build_s = load(owner_dsn, pt, vectors, public, owners)

    db = Database(app_dsn(owner_dsn))
    who = Identity(pt, "st", "u0", "pr_bench", "agent")
    try:
        unfiltered = [measure(db, who, vectors, np.ones(size, bool), queries, True, ef) for ef in efs]
        filtered = [measure(db, who, vectors, mine, queries, False, ef) for ef in efs]
    finally:
        db.close()
    return {"vectors": size, "data": kind, "index_build_s": round(build_s, 1), "caller_rows": int(mine.sum()),
            "unfiltered": unfiltered, "filtered_one_user": filtered}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--ef", default="40,64,100,200", help="ef_search values to sweep")
    parser.add_argument("--noise", type=float, default=1.0, help="cluster spread (σ·√384) of the clustered data")
    parser.add_argument("--random", action="store_true", help="also run uniform-random vectors at the largest size")
    parser.add_argument("--ingest", type=int, default=512, help="passages ingested through the batch route")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--skip-ingest", action="store_true")
    parser.add_argument("--variants", type=int, default=0,
                        help="also compare embedding variants on this many passages (0: skip)")
    parser.add_argument("--variant-rounds", type=int, default=3)
    parser.add_argument("--int8-model", help="an int8 model file (embeddings/quantize.py) to compare")
    parser.add_argument("--skip-search", action="store_true")
    args = parser.parse_args()

    from memory_ingest import migrated_database, print_result

    result: dict = {"bench": "memory"}
    with migrated_database() as (owner_dsn, where):
        import psycopg

        with psycopg.connect(owner_dsn) as conn:
            result["pgvector"] = conn.execute("select extversion from pg_extension where extname = 'vector'").fetchone()[0]
            result["hnsw_index"] = conn.execute(
                "select pg_get_indexdef('memory.semantic_memory_embedding_hnsw'::regclass)").fetchone()[0]
        if not args.skip_ingest:
            result.update(bench_ingest(owner_dsn, args.ingest, args.batch))
        if args.variants:
            result.update(bench_embedding_variants(args.variants, args.variant_rounds, args.int8_model))
        if not args.skip_search:
            efs = [int(x) for x in args.ef.split(",")]
            sizes = [int(x) for x in args.sizes.split(",")]
            result["search"] = [bench_search(owner_dsn, n, args.queries, efs, "clustered", args.noise) for n in sizes]
            if args.random:
                result["search"].append(bench_search(owner_dsn, max(sizes), args.queries, efs, "random", args.noise))
            from soorma.functions.memory.search import EF_SEARCH_DEFAULT

            # the figures at the function's default ef_search (64 for limit 10), per size and data set
            result["at_default_ef_search"] = {
                f"{entry['data']}_{entry['vectors']}": {
                    case: next((m for m in entry[case] if m["ef_search"] == EF_SEARCH_DEFAULT), None)
                    for case in ("unfiltered", "filtered_one_user")
                }
                for entry in result["search"]
            }
        result["database"] = where
    print_result(result)


if __name__ == "__main__":
    main()
