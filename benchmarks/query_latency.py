"""Query latency p50/p95 at 100k and 1M points: Qdrant Edge against qdrant-client local mode, with and
without filters, through OncoLit's own `Store` implementations (`EdgeStore`, `QdrantStore(path=...)`).

The points are synthetic but shaped like ours: 384-d unit vectors drawn around topic centres (real
embeddings cluster; uniform random vectors would make HNSW look worse than it is), BM25-style sparse
vectors that share topic terms with their dense cluster, and the chunk payload the sync writes
(record_type, published_day, design, evidence_level, cancer_sites, mesh, flags, title, passage ...).
Generation is seeded, so both stores get identical points and queries, and excluded from the timings.

Per (store, size), in a fresh process (so memory is the store's own): insert time, build time
(`optimize()`: Edge builds its HNSW graph; local mode has none), RSS after build and peak, disk
size, reopen time, then queries in every mode, the modes interleaved query by query so load from
other work hits them alike. Dense recall@10 against exact brute force (computed while generating)
shows the latency is not bought with wrong answers.

Modes: dense|hybrid x filter:
    none     no condition at all
    default  what `Searcher` sends with no user filter: hide retracted/excluded (a must_not on `flags`)
    broad    articles published since 2018, plus default (~1/3 of points)
    narrow   design "rct" and cancer site "breast neoplasms", plus default (~1.5% of points)

qdrant-client local mode is brute force in pure Python and warns above 20k points; it is skipped
above `--max-local` points (default 100k), and the output says so for each skipped size.

    .venv/bin/python -m benchmarks.query_latency --sizes 100000 [1000000] [--stores edge,local]
        [--max-local 100000] [--queries 200] [--local-queries 20] [--out latency.json]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import stamp
from index.chunking import day_number
from index.sparse import SparseVector
from index.store import Point, SearchFilter, Store

REPO = Path(__file__).resolve().parents[1]
SIZES = (100_000,)  # points per collection; the issue asks for 100k and 1M (--sizes 100000 1000000)
STORES = ("edge", "local")  # Qdrant Edge (embedded default) and qdrant-client local mode
MAX_LOCAL = 100_000  # local mode is skipped above this many points (pure-Python brute force)
QUERIES = 200  # timed queries per mode for Edge
LOCAL_QUERIES = 20  # per mode for local mode: a filtered hybrid query there takes seconds at 100k
WARMUP = 5  # untimed queries per mode first (page cache, lazy structures)
LIMIT = 10  # results per query, as `oncolit search` asks
DIM = 384  # all-MiniLM-L6-v2
CLUSTERS = 2_000  # topic centres for the dense vectors
SPREAD = 1.0  # noise norm around a centre: cos(point, centre) ~ 1/sqrt(1 + SPREAD^2) ~ 0.71
VOCAB = 50_000  # sparse term ids, Zipf-distributed background vocabulary
TOPIC_TERMS = 20  # terms belonging to each topic (cluster)
DOC_TERMS = (10, 30)  # (topic terms, background terms) per point: ~40 distinct terms, like a chunk
QUERY_TERMS = (2, 2)  # (topic terms, mid-frequency background terms) per query
PASSAGE_CHARS = 300  # payload text per point (title and passage are what hits carry back)
BATCH = 2_000  # points generated and upserted per step
SEED = 20261127
MODES = (("dense", "none"), ("dense", "broad"), ("hybrid", "none"), ("hybrid", "default"),
         ("hybrid", "broad"), ("hybrid", "narrow"))
SITES = ("breast neoplasms", "lung neoplasms", "colorectal neoplasms", "prostatic neoplasms", "melanoma",
         "leukemia", "lymphoma", "pancreatic neoplasms", "stomach neoplasms", "liver neoplasms",
         "ovarian neoplasms", "glioma", "kidney neoplasms", "urinary bladder neoplasms", "multiple myeloma",
         "head and neck neoplasms", "thyroid neoplasms", "sarcoma", "uterine cervical neoplasms",
         "esophageal neoplasms")
DESIGNS = ("rct", "cohort", "case_control", "systematic_review", "meta_analysis", "case_series", "cross_sectional")
FIRST_DAY, LAST_DAY = day_number(dt.date(1990, 1, 1)), day_number(dt.date(2026, 11, 1))
BROAD_FROM = dt.date(2018, 1, 1)
FILTERS = {
    "none": SearchFilter(include_retracted=True, include_excluded=True),
    "default": SearchFilter(),
    "broad": SearchFilter(record_types=("article",), published_from=BROAD_FROM),
    "narrow": SearchFilter(designs=("rct",), cancer_sites_any=("breast neoplasms",)),
}
FILLER = ("Patients were randomly assigned to the experimental regimen or standard therapy; the primary "
          "endpoint was progression-free survival and secondary endpoints included overall survival, "
          "response rate, safety and quality of life, assessed at prespecified intervals. ") * 4


# -- synthetic data ----------------------------------------------------------------------------


class World:
    """The fixed parts every batch and query draws on: topic centres, topic terms, term frequencies."""

    def __init__(self, seed: int) -> None:
        rng = np.random.default_rng(seed)
        centres = rng.standard_normal((CLUSTERS, DIM)).astype(np.float32)
        self.centres = centres / np.linalg.norm(centres, axis=1, keepdims=True)
        self.topic_terms = rng.integers(0, VOCAB, size=(CLUSTERS, TOPIC_TERMS))
        ranks = np.arange(1, VOCAB + 1, dtype=np.float64)
        self.term_p = (1.0 / (ranks + 10.0)) / np.sum(1.0 / (ranks + 10.0))  # Zipf-like background
        self.site_p = np.array([1.0 / (i + 2) for i in range(len(SITES))])
        self.site_p /= self.site_p.sum()


def unit_noise(rng: np.random.Generator, n: int) -> np.ndarray:
    """n random directions of norm ~1 (components N(0, 1/DIM))."""
    return rng.standard_normal((n, DIM)).astype(np.float32) / np.float32(np.sqrt(DIM))


Batch = tuple[int, np.ndarray, list[SparseVector], dict[str, np.ndarray], list[dict[str, Any]]]


def batches(world: World, size: int, seed: int) -> Iterator[Batch]:
    """(first index, dense (n, DIM), sparse, payload columns for exact filters, payloads), BATCH at a time."""
    for start in range(0, size, BATCH):
        n = min(BATCH, size - start)
        rng = np.random.default_rng([seed, start])
        cluster = rng.integers(0, CLUSTERS, size=n)
        dense = world.centres[cluster] + SPREAD * unit_noise(rng, n)
        dense /= np.linalg.norm(dense, axis=1, keepdims=True)

        topic_pick = np.argsort(rng.random((n, TOPIC_TERMS)), axis=1)[:, :DOC_TERMS[0]]
        topic = np.take_along_axis(world.topic_terms[cluster], topic_pick, axis=1)
        background = rng.choice(VOCAB, size=(n, DOC_TERMS[1]), p=world.term_p)
        tf_extra = rng.poisson(0.3, size=(n, sum(DOC_TERMS)))
        sparse = []
        for row in range(n):
            terms = np.concatenate([topic[row], background[row]])
            weights: dict[int, float] = {}
            for term, extra in zip(terms.tolist(), tf_extra[row].tolist()):
                tf = weights.get(term, 0.0) + 1.0 + extra
                weights[term] = tf
            sparse.append(SparseVector.from_weights({t: tf * 2.2 / (tf + 1.2) for t, tf in weights.items()}))

        cols = {
            "trial": rng.random(n) < 0.15,
            "day": (FIRST_DAY + (LAST_DAY - FIRST_DAY) * np.sqrt(rng.random(n))).astype(np.int64),
            "design": rng.choice(len(DESIGNS) + 1, size=n, p=[0.08, 0.2, 0.07, 0.05, 0.03, 0.07, 0.1, 0.4]),
            "level": rng.integers(0, 6, size=n),  # 0 = ungraded
            "site": rng.choice(len(SITES), size=n, p=world.site_p),
            "mesh": rng.integers(0, 500, size=(n, 3)),
            "flag": rng.choice(3, size=n, p=[0.995, 0.003, 0.002]),  # none, retracted, excluded
        }
        payloads = []
        for row in range(n):
            i = start + row
            trial = bool(cols["trial"][row])
            rid = f"ctgov:NCT{10_000_000 + i // 4:08d}" if trial else f"pubmed:{30_000_000 + i // 2}"
            design_i, level = int(cols["design"][row]), int(cols["level"][row])
            day = int(cols["day"][row])
            flag = ("", "retracted", "excluded")[int(cols["flag"][row])]
            offset = (i * 37) % (len(FILLER) - PASSAGE_CHARS)
            payloads.append({
                "record_id": rid, "version": 1, "chunk_no": i % 4 if trial else i % 2,
                "chunk_id": f"{rid}@1#{i % 4 if trial else i % 2}", "section": None,
                "record_type": "trial" if trial else "article",
                "published": (dt.date(1970, 1, 1) + dt.timedelta(days=day)).isoformat(), "published_day": day,
                "design": DESIGNS[design_i] if design_i < len(DESIGNS) else None,
                "evidence_level": level or None, "language": ["eng"],
                "mesh": [f"mesh term {m}" for m in cols["mesh"][row].tolist()],
                "cancer_sites": [SITES[int(cols["site"][row])]],
                "trial_status": "COMPLETED" if trial else None, "phases": ["PHASE3"] if trial else [],
                "flags": [flag] if flag else [], "retracted": flag == "retracted", "excluded": flag == "excluded",
                "title": f"Synthetic record {i} on {SITES[int(cols['site'][row])]}",
                "passage": FILLER[offset:offset + PASSAGE_CHARS],
            })
        yield start, dense, sparse, cols, payloads


def make_queries(world: World, n: int, seed: int) -> tuple[np.ndarray, list[SparseVector]]:
    """Dense queries drawn like new points of random topics; sparse queries share two of their topic terms."""
    rng = np.random.default_rng([seed, 999_999_999])
    cluster = rng.integers(0, CLUSTERS, size=n)
    dense = world.centres[cluster] + SPREAD * unit_noise(rng, n)
    dense /= np.linalg.norm(dense, axis=1, keepdims=True)
    sparse = []
    for row in range(n):
        topic = rng.choice(world.topic_terms[cluster[row]], size=QUERY_TERMS[0], replace=False)
        background = rng.integers(100, 5_000, size=QUERY_TERMS[1])  # mid-frequency words
        sparse.append(SparseVector.from_weights({int(t): 1.0 for t in np.concatenate([topic, background])}))
    return dense, sparse


def exact_mask(cols: dict[str, np.ndarray], name: str) -> np.ndarray:
    """Which points of a batch pass filter `name` (only the ones recall is computed for)."""
    if name == "none":
        return np.ones(len(cols["trial"]), dtype=bool)
    if name == "broad":
        return (~cols["trial"]) & (cols["day"] >= day_number(BROAD_FROM)) & (cols["flag"] == 0)
    raise ValueError(name)


def point_uuid(i: int) -> str:
    return str(uuid.UUID(int=i + 1))


# -- one store at one size (runs in its own process) -------------------------------------------


def rss_mb() -> float:
    """Resident set size now, from /proc (Linux; psutil is not a dependency)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def dir_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def open_store(kind: str, root: Path) -> Store:
    if kind == "edge":
        from index.store_edge import EdgeStore
        return EdgeStore(root)
    from index.store_qdrant import QdrantStore
    return QdrantStore(path=root)


def measure(kind: str, size: int, n_queries: int, seed: int, workdir: str) -> dict[str, Any]:
    """Insert, build, reopen and query one store of `size` points; everything a row of the report needs."""
    import warnings
    warnings.filterwarnings("ignore", message=".*Local mode is not recommended.*")
    world = World(seed)
    q_dense, q_sparse = make_queries(world, n_queries + WARMUP, seed)
    recall_modes = ("none", "broad")
    # Exact top-LIMIT per query and filter, kept as (scores, ids) and merged batch by batch.
    best = {f: (np.full((len(q_dense), LIMIT), -np.inf, dtype=np.float32), np.full((len(q_dense), LIMIT), -1))
            for f in recall_modes}
    root = Path(workdir) / f"{kind}-{size}"
    rss_before = rss_mb()
    store = open_store(kind, root)
    t0 = time.perf_counter()
    store.ensure_collection("bench", DIM)
    create_s = time.perf_counter() - t0
    insert_s = 0.0
    for start, dense, sparse, cols, payloads in batches(world, size, seed):
        points = [Point(point_uuid(start + j), dense[j], sparse[j], payloads[j]) for j in range(len(payloads))]
        t0 = time.perf_counter()
        store.upsert(points)
        insert_s += time.perf_counter() - t0
        sims = q_dense @ dense.T  # (queries, batch): exact cosine, rows are unit length
        ids = np.arange(start, start + len(payloads))
        for f in recall_modes:
            masked = np.where(exact_mask(cols, f)[None, :], sims, -np.inf)
            scores = np.concatenate([best[f][0], masked], axis=1)
            cand = np.concatenate([best[f][1], np.broadcast_to(ids, masked.shape)], axis=1)
            top = np.argsort(-scores, axis=1)[:, :LIMIT]
            best[f] = (np.take_along_axis(scores, top, axis=1), np.take_along_axis(cand, top, axis=1))
        del points, payloads, sparse
        if start and start % (BATCH * 50) == 0:
            print(f"  {kind} {size:,}: {start:,} points inserted ({insert_s:.0f} s)", file=sys.stderr, flush=True)
    rss_insert = rss_mb()
    t0 = time.perf_counter()
    store.optimize()
    build_s = time.perf_counter() - t0
    rss_build = rss_mb()
    count = store.count()

    t0 = time.perf_counter()
    store.close()
    store = open_store(kind, root)
    store.ensure_collection("bench", DIM)
    store.count()
    reopen_s = time.perf_counter() - t0

    latencies: dict[str, list[float]] = {f"{m}/{f}": [] for m, f in MODES}
    recall: dict[str, list[float]] = {f"dense/{f}": [] for f in recall_modes}
    for qi in range(len(q_dense)):
        for m, f in MODES:  # interleaved: every mode sees the same moment of machine load
            t0 = time.perf_counter()
            hits = store.search(q_dense[qi], q_sparse[qi], filters=FILTERS[f], limit=LIMIT,
                                mode=m)  # type: ignore[arg-type]
            elapsed = time.perf_counter() - t0
            if qi < WARMUP:
                continue
            latencies[f"{m}/{f}"].append(elapsed * 1000)
            if m == "dense" and f in recall_modes:
                found = {uuid.UUID(h.id).int - 1 for h in hits}
                truth = {int(i) for i in best[f][1][qi] if i >= 0}
                recall[f"dense/{f}"].append(len(found & truth) / max(len(truth), 1))
        if qi and qi % 50 == 0:
            print(f"  {kind} {size:,}: {qi} queries per mode", file=sys.stderr, flush=True)
    store.close()
    disk = dir_mb(root)
    shutil.rmtree(root, ignore_errors=True)

    def pct(values: list[float], q: float) -> float:
        return round(float(np.percentile(values, q)), 2)

    return {
        "store": kind, "size": size, "points": count,
        "create_collection_s": round(create_s, 2), "insert_s": round(insert_s, 1),
        "insert_points_per_s": round(size / insert_s), "build_s": round(build_s, 1), "reopen_s": round(reopen_s, 2),
        "rss_mb_after_insert": round(rss_insert - rss_before), "rss_mb_after_build": round(rss_build - rss_before),
        "peak_rss_mb_process": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "disk_mb": round(disk), "queries_per_mode": n_queries,
        "latency_ms": {k: {"p50": pct(v, 50), "p95": pct(v, 95), "mean": round(statistics.mean(v), 2)}
                       for k, v in latencies.items()},
        "dense_recall_at_10": {k: round(statistics.mean(v), 4) for k, v in recall.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--stores", default=",".join(STORES), help="comma-separated: edge,local")
    parser.add_argument("--max-local", type=int, default=MAX_LOCAL,
                        help="skip qdrant-client local mode above this many points (and say so)")
    parser.add_argument("--queries", type=int, default=QUERIES)
    parser.add_argument("--local-queries", type=int, default=LOCAL_QUERIES)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--workdir", type=Path, default=None, help="where stores are built (default: a temp dir)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    stores = [s.strip() for s in args.stores.split(",") if s.strip()]
    if set(stores) - set(STORES):
        raise SystemExit(f"unknown stores {sorted(set(stores) - set(STORES))}; choose from {STORES}")

    result: dict[str, Any] = {"benchmark": "query_latency", **stamp(), "settings": {
        "sizes": args.sizes, "stores": stores, "max_local": args.max_local, "queries_edge": args.queries,
        "queries_local": args.local_queries, "warmup": WARMUP, "limit": LIMIT, "dim": DIM, "clusters": CLUSTERS,
        "spread": SPREAD, "doc_terms": DOC_TERMS, "query_terms": QUERY_TERMS, "vocab": VOCAB,
        "passage_chars": PASSAGE_CHARS, "seed": args.seed, "modes": [f"{m}/{f}" for m, f in MODES],
        "filters": {k: repr(v) for k, v in FILTERS.items()}}, "runs": []}
    ctx = multiprocessing.get_context("spawn")  # a fresh interpreter per run: memory figures are the store's
    if args.workdir:
        args.workdir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        for size in args.sizes:
            for kind in stores:
                if kind == "local" and size > args.max_local:
                    reason = (f"skipped: {size:,} points is above --max-local {args.max_local:,}; qdrant-client "
                              "local mode is pure-Python brute force (OFFLINE.md: 97 s to insert and ~0.1-1 s per "
                              "query at 100k, scaling linearly)")
                    print(f"local {size:,}: {reason}", file=sys.stderr, flush=True)
                    result["runs"].append({"store": kind, "size": size, "skipped": reason})
                    continue
                n_queries = args.queries if kind == "edge" else args.local_queries
                print(f"{kind} {size:,}: building and querying ({n_queries} queries per mode)", file=sys.stderr,
                      flush=True)
                started = time.perf_counter()
                with ctx.Pool(1) as pool:
                    run = pool.apply(measure, (kind, size, n_queries, args.seed, tmp))
                run["wall_s"] = round(time.perf_counter() - started, 1)
                result["runs"].append(run)
                print(summary(run), file=sys.stderr, flush=True)
    result["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


def summary(run: dict[str, Any]) -> str:
    lines = [f"{run['store']} {run['size']:,}: insert {run['insert_s']} s, build {run['build_s']} s, "
             f"reopen {run['reopen_s']} s, RSS +{run['rss_mb_after_build']} MB, disk {run['disk_mb']} MB, "
             f"recall@10 {run['dense_recall_at_10']}"]
    lines += [f"  {mode:16s} p50 {v['p50']:8.2f} ms  p95 {v['p95']:8.2f} ms" for mode, v in run["latency_ms"].items()]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
