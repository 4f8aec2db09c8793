"""Reranker latency on real text: the shipped cross-encoder scoring a search's top-k passages, next to the query
embedding every dense search already pays, measured in the same run and interleaved query by query.

Queries are the topical benchmark's (eval/datasets/topical.py); each query's passages are k real abstract windows
of ~110 words (what a search hit carries: title + best chunk), drawn with a seed from the shared corpus. Latency
does not depend on which passages they are, only on their number and length, so the first stage is not run here
(its latency at 100k and 1M points is `query_latency.py`'s). Reported per depth and thread count: p50/p95 ms of
`reranker.score`, p50/p95 of MiniLM's `embed_query`, and their ratio.

    .venv/bin/python -m benchmarks.rerank_latency --data ../shared/data [--queries 40] [--depths 10,20,30]
        [--threads 1,2] [--out rerank.json]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from pathlib import Path
from typing import Any

from benchmarks.common import stamp


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="The shared data root.")
    parser.add_argument("--queries", type=int, default=40)
    parser.add_argument("--depths", default="10,20,30")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=Path("rerank_latency.json"))
    args = parser.parse_args()

    import torch

    from eval.datasets.topical import build_topical
    from index.embedder import SentenceTransformerEmbedder
    from synthesis.finetune.rerank_data import windows
    from synthesis.rerank import CrossEncoderReranker

    result: dict[str, Any] = stamp()
    bench = build_topical(args.data)
    rng = random.Random(args.seed)
    queries = [q.text for q in rng.sample(bench.queries, min(args.queries, len(bench.queries)))]
    docs = list(bench.corpus.values())
    pool = [f"{d['title']} {w}".strip() for d in rng.sample(docs, 400) for w in windows(d["text"])[:1]]
    depths = [int(x) for x in args.depths.split(",")]
    embedder = SentenceTransformerEmbedder()
    rows = []
    for threads in (int(x) for x in args.threads.split(",")):
        torch.set_num_threads(threads)
        reranker = CrossEncoderReranker(threads=threads)
        reranker.score("warm up", pool[:4])
        embedder.embed_query(["warm up"])
        timings: dict[str, list[float]] = {f"rerank@{k}": [] for k in depths} | {"embed_query": []}
        for n, query in enumerate(queries):
            started = time.perf_counter()
            embedder.embed_query([query])
            timings["embed_query"].append(time.perf_counter() - started)
            for k in depths:
                passages = [pool[(n * 31 + i) % len(pool)] for i in range(k)]
                started = time.perf_counter()
                reranker.score(query, passages)
                timings[f"rerank@{k}"].append(time.perf_counter() - started)
        base = statistics.median(timings["embed_query"])
        for name, values in timings.items():
            ms = [v * 1000 for v in values]
            rows.append({"threads": threads, "what": name, "p50_ms": round(pct(ms, 50), 1),
                         "p95_ms": round(pct(ms, 95), 1),
                         "p50_vs_embed_query": round(statistics.median(values) / base, 2)})
    result.update({"queries": len(queries), "passage_words": 110, "reranker": "minilm-rerank", "results": rows})
    from eval.stamp import machine

    result["load_avg_end"] = machine()["load_average"]
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    for r in rows:
        print(f"threads {r['threads']}  {r['what']:<12} p50 {r['p50_ms']:>7} ms  p95 {r['p95_ms']:>7} ms  "
              f"x{r['p50_vs_embed_query']} of a query embedding")


if __name__ == "__main__":
    main()
