"""Memory ingest benchmark: prints one JSON line.

* ``embed_passages_per_s``: passages embedded per second by ``LocalMiniLM`` as the memory function configures it
  (the int8 graph, one text per run, where it can be had; ``SOORMA_EMBEDDING_INT8=0`` measures the float graph with
  length-bucketed batches of 32), median of rounds; ``embed_model_id`` says which;
* ``upsert_rows_per_s``: new passages stored per second through ``POST /v1/memory/semantic/batch`` (embedding,
  insert, HNSW index maintenance), called through the Lambda handler with API Gateway v2 events, median of batches;
* ``reupsert_rows_per_s``: the same passages sent again: the stored embeddings are reused (no model call), so this
  is the database side alone.

The database is an embedded PostgreSQL started here (``soorma.local.postgres.EmbeddedPostgres``, migrated with
``soorma.functions.migrate.apply``), or the owner DSN in ``SOORMA_DATABASE_URL`` when that is set.

    python bench/memory_ingest.py [--passages 512] [--batch 128] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

WORDS = (
    "agent event plan task goal memory vector tenant service worker planner tool search index database query result "
    "request response topic stream message delivery retry failure success state context knowledge passage user "
    "platform function lambda gateway registry tracker schema payload deploy local cloud region latency throughput "
    "the a of to in and for with on by from is are was be this that which as at it its into over under between"
).split()


def passages(count: int, seed: int) -> list[str]:
    """Deterministic synthetic passages of 30-90 words (roughly 40-120 word pieces), unique by their prefix."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        words = [rng.choice(WORDS) for _ in range(rng.randint(30, 90))]
        out.append(f"Passage {seed}-{i}: " + " ".join(words).capitalize() + ".")
    return out


def bench_embedding(model, rounds: int, count: int) -> tuple[float, list[float]]:
    model.embed(passages(32, seed=999))  # load and warm up
    rates = []
    for r in range(rounds):
        texts = passages(count, seed=100 + r)
        start = time.perf_counter()
        model.embed(texts)
        rates.append(count / (time.perf_counter() - start))
    return statistics.median(rates), rates


def _event(path: str, body: dict, identity) -> dict:
    now = time.time()
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"host": "localhost", "content-type": "application/json"},
        "requestContext": {
            "accountId": "000000000000",
            "apiId": "bench",
            "domainName": "localhost",
            "domainPrefix": "localhost",
            "http": {"method": "POST", "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1",
                     "userAgent": "bench"},
            "requestId": str(uuid.uuid4()),
            "routeKey": "$default",
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
            "authorizer": {"lambda": identity.as_context()},
        },
        "body": json.dumps(body),
        "isBase64Encoded": False,
    }


def batch_rates(handler: Callable[[dict, None], dict], batches: list[list[str]], identity) -> list[float]:
    """Passages stored per second, one figure per batch, each batch one ``POST /v1/memory/semantic/batch`` through
    the Lambda ``handler`` as ``identity``. Raises ``RuntimeError`` when the route does not answer 201."""
    rates = []
    for chunk in batches:
        event = _event("/v1/memory/semantic/batch", {"items": [{"content": t} for t in chunk]}, identity)
        start = time.perf_counter()
        reply = handler(event, None)
        elapsed = time.perf_counter() - start
        if reply["statusCode"] != 201:
            raise RuntimeError(f"batch route answered {reply['statusCode']}: {reply.get('body')}")
        rates.append(len(chunk) / elapsed)
    return rates


@contextmanager
def migrated_database() -> Iterator[tuple[str, str]]:
    """``(owner DSN, where)`` of a migrated database: ``SOORMA_DATABASE_URL`` when set (``where`` is that name),
    else an embedded PostgreSQL started here and stopped on exit (``where`` is ``"embedded"``)."""
    owner_dsn = os.environ.get("SOORMA_DATABASE_URL")
    server = None
    if not owner_dsn:
        from soorma.local.postgres import EmbeddedPostgres

        data = Path(tempfile.mkdtemp(prefix="soorma-bench-")) / "pg"  # short path: Unix socket length limit
        server = EmbeddedPostgres(data, cleanup="delete")
        owner_dsn = server.start()
    try:
        from soorma.functions.migrate import apply

        apply(owner_dsn)
        yield owner_dsn, "embedded" if server else "SOORMA_DATABASE_URL"
    finally:
        if server is not None:
            server.stop()


def print_result(result: dict) -> None:
    """Print ``result`` as the benchmark's one JSON line, with the machine's CPU count and Python version."""
    result["cpus"] = os.cpu_count()
    result["python"] = platform.python_version()
    print(json.dumps(result))


def bench_ingest(model, owner_dsn: str, total: int, batch: int) -> dict:
    from mangum import Mangum

    from soorma.functions.memory.app import create_app
    from soorma.functions.shared.db import Database
    from soorma.identity import Identity
    from soorma.local.postgres import app_dsn

    db = Database(app_dsn(owner_dsn))
    handler = Mangum(create_app(db=db, embedder=model), lifespan="off")
    who = Identity("pt_bench", "st_bench", "su_bench", "pr_bench", "agent")
    texts = passages(total, seed=7)
    batches = [texts[i : i + batch] for i in range(0, total, batch)]

    try:
        fresh = batch_rates(handler, batches, who)
        again = batch_rates(handler, batches, who)
        with db.transaction(who) as conn:
            rows = conn.execute("select count(*) as n from memory.semantic_memory").fetchone()["n"]
    finally:
        db.close()
    return {
        "upsert_rows_per_s": round(statistics.median(fresh), 1),
        "upsert_rows_per_s_batches": [round(r, 1) for r in fresh],
        "reupsert_rows_per_s": round(statistics.median(again), 1),
        "reupsert_rows_per_s_batches": [round(r, 1) for r in again],
        "rows_stored": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--passages", type=int, default=512, help="passages ingested through the batch route")
    parser.add_argument("--batch", type=int, default=128, help="items per batch request (at most 256)")
    parser.add_argument("--rounds", type=int, default=3, help="embedding rounds (each of --embed-count passages)")
    parser.add_argument("--embed-count", type=int, default=256, help="passages per embedding round")
    args = parser.parse_args()

    from soorma.functions.memory.embeddings.local import LocalMiniLM

    model = LocalMiniLM()  # what provider_from_env() gives the memory function
    load_start = time.perf_counter()
    model.load()
    load_s = time.perf_counter() - load_start
    embed_rate, embed_rates = bench_embedding(model, args.rounds, args.embed_count)

    result = {
        "bench": "memory_ingest",
        "embed_passages_per_s": round(embed_rate, 1),
        "embed_passages_per_s_rounds": [round(r, 1) for r in embed_rates],
        "embed_batch_size": model.batch_size,
        "embed_model_id": model.model_id,
        "onnx_threads": model.threads,
        "model_load_s": round(load_s, 2),
        "passages_words": "30-90",
    }

    with migrated_database() as (owner_dsn, where):
        result.update(bench_ingest(model, owner_dsn, args.passages, args.batch))
        result["batch_size"] = args.batch
        result["database"] = where
    print_result(result)


if __name__ == "__main__":
    main()
