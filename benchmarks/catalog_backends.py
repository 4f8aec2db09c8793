"""PostgreSQL vs SQLite catalog on the same records, in one run: ingest throughput and digest build time.

The same parsed PubMed records (the constructed update files in ../shared/data, parsed once, up front) go
into a fresh catalog on each backend, in the batches the pipeline uses; then the same window is ingested
again (every record `unchanged`, the re-run case); then a digest of two topics is built over the catalog
twice (the first build extracts and caches findings in the catalog, the second reads the cache). Backends
alternate per repeat so machine noise hits both alike. Ratios are PostgreSQL time / SQLite time (> 1:
PostgreSQL slower).

PostgreSQL: `--pg-url` (a server you run; a fresh schema per repeat is created in it and dropped), else a
throwaway cluster (initdb/pg_ctl, loopback, the tests' helper) with fsync on and synchronous_commit off —
the same durability class as the SQLite catalog's WAL + synchronous=NORMAL (a crash may lose the last
commits, never corrupt) — over TCP on 127.0.0.1, as a networked deployment would talk to it.

    .venv/bin/python -m benchmarks.catalog_backends [--data ../shared/data] [--n 2352] [--repeat 3] --json
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.common import stamp
from ingest.catalog import Catalog
from ingest.pubmed_xml import parse_pubmed_xml
from ingest.source import ParsedItem

REPO = Path(__file__).resolve().parents[1]
# What the benchmark cluster runs with (see the module docstring); tests use tests/pg.py's faster defaults.
BENCH_PG_SETTINGS = {"fsync": "on", "synchronous_commit": "off", "full_page_writes": "on",
                     "shared_buffers": "256MB"}


def load_items(data: Path, n: int | None) -> list[ParsedItem]:
    items: list[ParsedItem] = []
    for path in sorted((data / "pubmed" / "constructed").glob("*.xml.gz")):
        items.extend(parse_pubmed_xml(gzip.decompress(path.read_bytes())))
    return items[:n] if n else items


def ingest_all(catalog: Catalog, items: list[ParsedItem], batch_size: int) -> float:
    start = time.perf_counter()
    for i in range(0, len(items), batch_size):
        catalog.ingest_batch(items[i:i + batch_size])
    return time.perf_counter() - start


def build_digest_s(catalog: Catalog) -> float:
    from synthesis import digest as dg

    topics = [dg.Topic(name="Breast", query="breast cancer tumour growth"),
              dg.Topic(name="Apoptosis", query="apoptosis resistance in cancer cells")]
    start = time.perf_counter()
    window = dg.window_after(catalog, None, 30)
    doc = dg.build_digest(catalog, topics, window, period_end=dt.date(2026, 11, 27))
    if not doc["item_ids"]:
        raise RuntimeError("the digest found no items: the benchmark would time nothing")
    return time.perf_counter() - start


def catalog_bytes(catalog: Catalog) -> int:
    """The catalog's size on disk: the SQLite file with its WAL (checkpointed first), or every table
    of the catalog's schema with its indexes and TOAST on PostgreSQL."""
    from sqlalchemy import text

    with catalog.engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
            path = Path(catalog.url.removeprefix("sqlite:///"))
            return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())
        return int(conn.execute(text(
            "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = current_schema() AND c.relkind = 'r'"
        )).scalar_one())


def one_backend(url: str, items: list[ParsedItem], batch_size: int) -> dict[str, float]:
    with Catalog(url) as catalog:
        first = ingest_all(catalog, items, batch_size)
        size = catalog_bytes(catalog)
        again = ingest_all(catalog, items, batch_size)
        records = catalog.stats()["total"]["records"]
        if records != len({i.record.record_id for i in items}):
            raise RuntimeError(f"{url}: {records} records stored from {len(items)} items")
        digest_first = build_digest_s(catalog)
        digest_cached = build_digest_s(catalog)
    return {"ingest_s": first, "reingest_s": again, "digest_first_s": digest_first, "digest_cached_s": digest_cached,
            "catalog_bytes": size}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--n", type=int, default=None, help="records to use (default: all, 2352)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--pg-url", default=None, help="postgresql+psycopg://... (default: a throwaway cluster)")
    parser.add_argument("--json", action="store_true", help="only the JSON result (no summary on stderr)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    from tests import pg  # the throwaway-cluster helper the tests use

    started = stamp()
    items = load_items(args.data, args.n)
    cluster = pg.PgCluster(args.pg_url) if args.pg_url else pg.start_cluster(BENCH_PG_SETTINGS)
    runs: dict[str, list[dict[str, float]]] = {"sqlite": [], "postgresql": []}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for r in range(args.repeat):
                order: list[tuple[str, Callable[[], str]]] = [
                    ("sqlite", lambda r=r: f"sqlite:///{tmp}/catalog-{r}.sqlite"),
                    ("postgresql", cluster.fresh_url)]
                for name, make_url in order if r % 2 == 0 else order[::-1]:
                    url = make_url()
                    runs[name].append(one_backend(url, items, args.batch_size))
                    if name == "postgresql":
                        cluster.drop(url)
    finally:
        if not args.pg_url:
            cluster.stop()
    n = len(items)
    med = {name: {k: statistics.median(run[k] for run in rs) for k in rs[0]} for name, rs in runs.items()}
    result: dict[str, Any] = {
        "benchmark": "catalog_backends", "records": n, "repeat": args.repeat, "batch_size": args.batch_size,
        "postgresql": {"server": "external" if args.pg_url else "throwaway cluster on 127.0.0.1",
                       "settings": None if args.pg_url else BENCH_PG_SETTINGS},
        "results": {name: {"ingest_rps": round(n / m["ingest_s"], 1), "reingest_rps": round(n / m["reingest_s"], 1),
                           "digest_first_s": round(m["digest_first_s"], 3),
                           "digest_cached_s": round(m["digest_cached_s"], 3),
                           # records + versions (fields JSON, zlib raw payload) + links, after the first ingest
                           "catalog_mb_per_million_records": round(m["catalog_bytes"] / n * 1e6 / 2**20, 1)}
                    for name, m in med.items()},
        "ratio_pg_to_sqlite": {k: round(med["postgresql"][k] / med["sqlite"][k], 3) for k in med["sqlite"]},
        "runs": runs, **started,
    }
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.write_text(text)
    print(text)  # the JSON on stdout, as every benchmark here; a summary in words on stderr unless --json
    if not args.json:
        res, ratio = result["results"], result["ratio_pg_to_sqlite"]
        for name in ("sqlite", "postgresql"):
            print(f"{name:>10}: ingest {res[name]['ingest_rps']} rec/s, re-ingest {res[name]['reingest_rps']} rec/s, "
                  f"digest {res[name]['digest_first_s']} s (cached {res[name]['digest_cached_s']} s)", file=sys.stderr)
        print(f"PostgreSQL / SQLite time: ingest x{ratio['ingest_s']}, re-ingest x{ratio['reingest_s']}, "
              f"digest x{ratio['digest_first_s']} (cached x{ratio['digest_cached_s']})", file=sys.stderr)


if __name__ == "__main__":
    main()
