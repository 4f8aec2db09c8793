"""retrieval — nDCG@10, Recall@10/100, MRR@10 of dense, sparse and hybrid search, in one run, on a fresh index.

    oncolit eval retrieval --dataset ../shared/data/eval/pubmedqa-dev [--limit N] [--corpus-size M] [--out DIR]

Input: a BEIR folder, or a shared dataset converted in memory (PubMedQA: question -> its own abstract;
Evidence Inference: ICO prompt -> its article; the shared data root: the topical benchmark of
`eval/datasets/topical.py`, where each query's source document is excluded from its ranking); the converted folder is saved under `<out>/beir/` so the exact
evaluation input can be inspected or fed to other tools.

Path: every corpus document becomes an `Article` (title + text), is ingested into a new catalog and synced into
a new Qdrant Edge collection with the configured embedder, chunker and BM25 encoder (`index.sync.sync`); each
query then runs through `Searcher.search` — the product's retrieval path (chunks -> best chunk per record) — for
each mode, asking for 100 records. Latency is per query and mode: the search plus, for dense and hybrid, the
query's embedding (done once per query with the uncached embedder, timed, and reused by both modes).

Query expansion (`index.expansion`): the sync that builds the index also builds its synonym table from the corpus
(`index.sync.sync`, as in the product), and a mode ending in "+expand" searches with the synonyms
(`Searcher.search(expand=True)`, weights and thresholds from the `search.expansion_*` settings); the plain modes
search without them, whatever `search.expand_queries` says, so one run compares both. "sparse+expand" and
"hybrid+expand" run by default ("dense+expand" too when `search.expand_dense` is set); "+rerank" composes
("hybrid+expand+rerank"). An expanded dense query is embedded inside the search, so its time is in the search's.

`--limit N` keeps the first N judged queries; the corpus is then cut to `--corpus-size` documents (default
max(100, 10 N)), always keeping the documents judged for the kept queries, so small runs stay meaningful but are
easier than the full corpus: only full runs give numbers to quote.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from eval import metrics as M
from eval.datasets import detect
from eval.datasets.beir import BeirDataset, load_beir, write_beir
from eval.report import SuiteResult
from eval.suites.common import Phases, RunOptions, fresh_index

MODES = ("dense", "sparse", "hybrid")
DEPTH = 100  # records retrieved per query: enough for Recall@100
PR_CUTOFFS = (1, 2, 3, 5, 10, 20, 30, 50, 100)


def load_dataset(path: Path, split: str = "test", ei_split: str = "all") -> tuple[BeirDataset, bool]:
    """The dataset as BEIR, and whether it was converted (True) or read as a BEIR folder (False)."""
    kind = detect(path)
    if kind == "beir":
        return load_beir(path, split), False
    if kind == "pubmedqa":
        from eval.datasets.pubmedqa import load_pubmedqa, to_beir
        return to_beir(load_pubmedqa(path)), True
    if kind == "evidence-inference":
        from eval.datasets.evidence_inference import to_beir as ei_to_beir
        return ei_to_beir(path, ei_split), True
    if kind == "shared-root":
        from eval.datasets.topical import build_topical
        return build_topical(path).as_beir(), True
    reasons = {
        "trialgpt": "TrialGPT ships queries and trial qrels (NCT ids) but no trial texts; add its corpus.jsonl "
                    "(an NCBI download) to a copy of the folder to evaluate it as BEIR.",
        "trec-pm-topics": "TREC PM 2017 topics have no qrels or documents here; use them as queries only "
                          "(perf suite, or `oncolit search`).",
        "hallmarks-of-cancer": "HoC labels are hallmark topics, not query relevance judgements.",
        "pubmed-xml": "PubMed XML has no queries or judgements.",
    }
    raise ValueError(f"retrieval cannot evaluate {path} ({kind}): {reasons.get(kind, 'unknown format')}")


class QueryEmbedder:
    """The index's embedder without its cache (queries are new text in real use), embedding each query once:
    `prepare` embeds and times it, and the dense and hybrid searches that follow reuse the vector. A query's
    dense/hybrid latency is then its search time plus this embedding time, counted once per mode."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name, self.dim = inner.name, inner.dim
        self._text: str | None = None
        self._vector: Any = None

    def prepare(self, text: str) -> float:
        started = time.perf_counter()
        self._vector = self.inner.embed_query([text])
        self._text = text
        return time.perf_counter() - started

    def embed_query(self, texts: Any) -> Any:
        if list(texts) == [self._text]:
            return self._vector
        return self.inner.embed_query(list(texts))

    def embed(self, texts: Any) -> Any:
        """Passages: never the prepared query vector (for e5 the two sides differ)."""
        return self.inner.embed(list(texts))


def timed_searcher(handle: Any, reranker: Any = None, depth: int = 30) -> tuple[Any, QueryEmbedder]:
    from index.search import Searcher

    embedder = QueryEmbedder(getattr(handle.embedder, "inner", handle.embedder))
    searcher = Searcher(handle.store, embedder, handle.encoder, reranker, depth,  # type: ignore[arg-type]
                        getattr(handle, "expander", None), expand=False)
    return searcher, embedder


RERANK = "+rerank"
EXPAND = "+expand"


def split_mode(mode: str) -> tuple[str, bool, bool]:
    """"hybrid+expand+rerank" -> ("hybrid", True, True): the first-stage mode, whether the reranker reorders it,
    and whether the query is expanded with synonyms."""
    rerank = mode.endswith(RERANK)
    mode = mode[:-len(RERANK)] if rerank else mode
    expand = mode.endswith(EXPAND)
    return (mode[:-len(EXPAND)] if expand else mode), rerank, expand


def expansion_info(handle: Any, queries: dict[str, str]) -> dict[str, Any]:
    """The synonym table the sync built, and how many queries it expanded (with a few examples)."""
    expander = getattr(handle, "expander", None)
    if expander is None:
        return {}
    vocab = expander.vocabulary()
    expanded = {qid: [e.as_dict() for e in expander.expand(text)] for qid, text in queries.items()}
    expanded = {qid: found for qid, found in expanded.items() if found}
    return {"terms": len(vocab.links), "queries_expanded": len(expanded), "queries": len(queries),
            "config": vars(expander.config), "examples": dict(list(expanded.items())[:20])}


def evaluate_rankings(rankings: dict[str, list[str]], qrels: dict[str, dict[str, int]]) -> dict[str, Any]:
    """Mean metrics of one mode's rankings {query id: [doc ids]}."""
    out: dict[str, Any] = {}
    for name, fn, k in (("ndcg@10", M.ndcg_at_k, 10), ("recall@10", M.recall_at_k, 10),
                        ("recall@100", M.recall_at_k, 100), ("mrr@10", M.mrr_at_k, 10),
                        ("precision@10", M.precision_at_k, 10)):
        mean, scored, skipped = M.mean_over_queries(fn(rankings.get(q, []), rel, k) for q, rel in qrels.items())
        out[name] = mean
        out["queries_scored"], out["queries_skipped_no_relevant"] = scored, skipped
    return out


def per_family(rankings: dict[str, dict[str, list[str]]], data: BeirDataset) -> dict[str, dict[str, Any]]:
    """{family: {mode: metrics}} when queries carry a "family" (the topical benchmark); {} otherwise."""
    families = sorted({m["family"] for m in data.query_meta.values() if m.get("family")})
    out = {}
    for family in families:
        qrels = {q: rel for q, rel in data.qrels.items() if data.query_meta.get(q, {}).get("family") == family}
        out[family] = {mode: evaluate_rankings(ranked, qrels) for mode, ranked in rankings.items()}
    return out


def pr_by_cutoff(rankings: dict[str, list[str]], qrels: dict[str, dict[str, int]]) -> dict[str, Any]:
    """Mean precision and recall at each cut-off in PR_CUTOFFS: the ranking's precision-recall curve."""
    rows = [M.precision_recall_at_ks(rankings.get(q, []), rel, PR_CUTOFFS) for q, rel in qrels.items()]
    rows = [r for r in rows if r is not None]
    if not rows:
        return {"precision": [], "recall": [], "cutoffs": list(PR_CUTOFFS)}
    precision = [sum(r[i][0] for r in rows) / len(rows) for i in range(len(PR_CUTOFFS))]
    recall = [sum(r[i][1] for r in rows) / len(rows) for i in range(len(PR_CUTOFFS))]
    return {"precision": precision, "recall": recall, "cutoffs": list(PR_CUTOFFS)}


def run(options: RunOptions, *, corpus_size: int | None = None, split: str = "test", ei_split: str = "all",
        modes: tuple[str, ...] | None = None, save_beir: bool = True) -> SuiteResult:
    """`modes`: default dense, sparse, hybrid, sparse+expand, hybrid+expand (and dense+expand with
    search.expand_dense), and hybrid+rerank, hybrid+expand+rerank when a reranker is configured (search.reranker)."""
    from eval.datasets.records import article, doc_id_of
    from oncolit.wiring import make_reranker

    reranker = make_reranker(options.settings)
    if modes is None:
        expanded = (("dense" + EXPAND,) if options.settings.search.expand_dense else ()) + (
            "sparse" + EXPAND, "hybrid" + EXPAND)
        modes = MODES + expanded + (("hybrid" + RERANK, "hybrid" + EXPAND + RERANK) if reranker is not None else ())
    if any(split_mode(m)[1] for m in modes) and reranker is None:
        raise ValueError("a +rerank mode needs a reranker: set search.reranker (ONCOLIT_SEARCH__RERANKER)")

    phases = Phases()
    with phases("load"):
        full, converted = load_dataset(options.dataset, split, ei_split)
        if options.limit is not None and corpus_size is None:
            corpus_size = max(100, 10 * options.limit)
        data = full.sliced(options.limit, corpus_size)
    if converted and save_beir:
        write_beir(data, options.out / "beir")
    records = [article(doc_id, doc["title"], doc["text"]) for doc_id, doc in data.corpus.items()]
    rankings: dict[str, dict[str, list[str]]] = {m: {} for m in modes}
    latencies: dict[str, list[float]] = {m: [] for m in modes}
    embed_seconds: list[float] = []
    with fresh_index(options, records, phases, name="retrieval") as corpus:
        searcher, query_embedder = timed_searcher(corpus.handle, reranker, options.settings.search.rerank_depth)
        searcher.search("warm-up query", limit=1, mode="hybrid",  # first call loads lazily-built pieces
                        rerank=True if reranker is not None else None)
        with phases("queries"):
            for qid, text in data.queries.items():
                embed_seconds.append(query_embedder.prepare(text))
                exclude = set(data.query_meta.get(qid, {}).get("exclude", []))
                for mode in modes:
                    base, rerank, expand = split_mode(mode)
                    started = time.perf_counter()
                    hits = searcher.search(text, limit=DEPTH + len(exclude), mode=base,  # type: ignore[arg-type]
                                           rerank=rerank, expand=expand)
                    spent = time.perf_counter() - started
                    # The prepared embedding is the plain query's; an expanded dense query is embedded (its own
                    # text) inside the search, so its time is already in `spent`.
                    own_embedding = (base != "sparse" and expand and searcher.expander is not None
                                     and searcher.expander.config.dense and bool(searcher.expansions(text, True, base)))
                    reused = base != "sparse" and not own_embedding
                    latencies[mode].append(spent + (embed_seconds[-1] if reused else 0.0))
                    ranked = [doc_id_of(h.record_id) for h in hits]
                    rankings[mode][qid] = [d for d in ranked if d not in exclude][:DEPTH]
        index_info = {"collection": corpus.handle.collection, "points": corpus.handle.store.count(),
                      "embedder": getattr(corpus.handle.embedder, "name", None),
                      "reranker": getattr(reranker, "name", None),
                      "rerank_depth": options.settings.search.rerank_depth, "ingest": corpus.ingest,
                      "sync": corpus.sync, "expansion": expansion_info(corpus.handle, data.queries)}
    by_mode = {m: {**evaluate_rankings(rankings[m], data.qrels), "latency": M.latency_summary(latencies[m])}
               for m in modes}
    by_family = per_family(rankings, data)
    query_embedding = M.latency_summary(embed_seconds)
    columns = ["mode", "nDCG@10", "Recall@10", "Recall@100", "MRR@10", "P@10", "p50 ms", "p90 ms"]
    rows = [[m, r["ndcg@10"], r["recall@10"], r["recall@100"], r["mrr@10"], r["precision@10"],
             r["latency"]["p50_ms"], r["latency"]["p90_ms"]] for m, r in by_mode.items()]
    items = []
    for qid, text in data.queries.items():
        rel = data.qrels.get(qid, {})
        row: dict[str, Any] = {"query_id": qid, "query": text, "relevant": sorted(d for d, g in rel.items() if g > 0)}
        for m in modes:
            ranked = rankings[m][qid]
            row[m] = {"top10": ranked[:10],
                      "first_relevant_rank": next((i + 1 for i, d in enumerate(ranked) if rel.get(d, 0) > 0), None)}
        items.append(row)
    notes = list(data.notes)
    if options.limit is not None:
        notes.append("a --limit run: the corpus is cut down, so scores are higher than on the full corpus")
    return SuiteResult(
        suite="retrieval",
        metrics={"modes": by_mode, **({"families": by_family} if by_family else {}),
                 "query_embedding_latency": query_embedding, "index": index_info,
                 "dataset": data.stats()},
        config={"limit": options.limit, "corpus_size": corpus_size, "modes": list(modes), "depth": DEPTH,
                "split": split, "evidence_inference_split": ei_split, "converted": converted},
        dataset={"path": str(options.dataset), "kind": detect(options.dataset), "name": data.name, **data.stats()},
        timings=phases.seconds,
        plots={"pr": {"precision-recall by cut-off (1..100)": {m: pr_by_cutoff(rankings[m], data.qrels)
                                                               for m in modes}},
               "latency": {"query latency by mode": latencies},
               "bars": {"nDCG@10 by mode": {m: by_mode[m]["ndcg@10"] or 0.0 for m in modes}}},
        tables=[{"title": "Retrieval quality and latency", "columns": columns, "rows": rows},
                *([{"title": "By query family", "columns": ["family", "mode", "queries", "nDCG@10", "Recall@10",
                                                            "Recall@100", "MRR@10"],
                    "rows": [[f, m, r["queries_scored"], r["ndcg@10"], r["recall@10"], r["recall@100"], r["mrr@10"]]
                             for f, modes_ in by_family.items() for m, r in modes_.items()]}] if by_family else [])],
        notes=notes, items=items)
