"""The research-advisor's setup step: put the standard library's documentation into semantic memory.

``soorma local deploy examples/research-advisor`` runs it once (see ``soorma.toml``), with ``SOORMA_API_URL`` and
``SOORMA_API_KEY`` set to the deploying developer's. Run it by hand the same way::

    cd examples/research-advisor && python setup_corpus.py            # ingest
    python setup_corpus.py --dry-run                                  # only build and count the passages

Passages are stored public (``is_public``: shared by every service tenant and user of the platform tenant) with
``external_id`` = the qualified name, so running it again updates the same entries instead of adding copies.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from corpus import build_corpus  # noqa: E402

#: Passages per ``POST /v1/memory/semantic/batch`` (the route takes up to 256).
BATCH_SIZE = 128


async def ingest(passages: list[dict], batch_size: int = BATCH_SIZE) -> float:
    """Store ``passages`` in batches with a progress bar; returns the seconds it took."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from soorma import MemoryClient
    from soorma.settings import Settings

    settings = Settings.from_env()
    if not settings.api_key:
        raise SystemExit("no API key: set SOORMA_API_KEY (soorma local deploy sets it for the setup step)")
    client = MemoryClient(settings.memory_base, settings.api_key, timeout=max(settings.timeout, 120.0))
    started = time.perf_counter()
    columns = (TextColumn("ingesting"), BarColumn(), MofNCompleteColumn(), TextColumn("passages"), TimeElapsedColumn())
    try:
        with Progress(*columns, transient=False) as progress:
            bar = progress.add_task("ingest", total=len(passages))
            for start in range(0, len(passages), batch_size):
                batch = passages[start:start + batch_size]
                ids = await client.store_knowledge_batch(batch)
                if len(ids) != len(batch):
                    raise SystemExit(f"the memory service stored {len(ids)} of {len(batch)} passages of one batch")
                progress.advance(bar, len(batch))
    finally:
        await client.close()
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="build the corpus and print its size; store nothing")
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE, help=f"passages per request (default {BATCH_SIZE})")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    passages = build_corpus()
    modules = len({p["metadata"]["module"] for p in passages})
    print(f"corpus: {len(passages)} passages from {modules} standard-library modules "
          f"(built in {time.perf_counter() - started:.1f} s)")
    if args.dry_run:
        return 0
    from soorma.errors import SoormaError

    try:
        seconds = asyncio.run(ingest(passages, max(1, min(args.batch_size, 256))))
    except SoormaError as exc:
        print(f"ingestion failed: {exc}", file=sys.stderr)
        return 1
    print(f"ingested {len(passages)} passages in {seconds:.1f} s ({len(passages) / seconds:.0f} passages/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
