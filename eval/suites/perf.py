"""perf — ingest, extraction, sync and query throughput and latency on a corpus of a given size.

    oncolit eval perf --dataset ../shared/data/pubmed/constructed --limit 1000 [--backend llamacpp:… --llm-records 10]

Corpus: PubMed XML files (parsed by the product's parser: parse time is measured), the shared data folder (its
pubmed/constructed files), or any dataset with abstracts (PubMedQA, HoC, Evidence Inference, a BEIR corpus).
`--limit N` takes the first N records. Everything runs on a fresh catalog and a fresh Qdrant Edge index under
<out>/work, with the configured embedder, chunking and index settings; the machine (CPU model, cores, memory,
load average) and the settings are in the stamp of results.json — throughput numbers mean nothing without them.

Phases, in order: parse -> ingest (catalog batches of 500) -> re-ingest the same items (must change nothing;
measures the idempotent path) -> rules extraction per record -> grading per record -> LLM extraction of the first
--llm-records records (when --backend is not none) -> index sync -> queries (TREC PM 2017 topics when the shared
data folder is reachable, then record titles; each mode searched with the uncached embedder, as a new query is).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from eval import metrics as M
from eval.datasets import detect, shared_root
from eval.report import SuiteResult
from eval.suites.common import Phases, RunOptions, build_llm, describe_backend, fresh_index, llm_name

MODES = ("hybrid", "dense", "sparse")
BATCH = 500


def load_items(path: Path, limit: int | None, phases: Phases) -> tuple[list[Any], str]:
    """(Article records, how they were read); parsing of XML is timed as the `parse` phase."""
    from eval.datasets import records as R

    kind = detect(path)
    with phases("parse"):
        if kind in ("pubmed-xml", "shared-root"):
            from eval.datasets.pubmed import load_articles
            source = path / "pubmed" / "constructed" if kind == "shared-root" else path
            return load_articles(source, limit), f"PubMed XML ({source})"
        if kind == "pubmedqa":
            from eval.datasets.pubmedqa import load_pubmedqa
            return [R.article(it.pmid, "", [*zip(it.labels, it.contexts), ("CONCLUSIONS", it.long_answer)])
                    for it in load_pubmedqa(path, limit)], "PubMedQA abstracts"
        if kind == "hallmarks-of-cancer":
            from eval.datasets.hoc import load_hoc
            return [R.article(d.pmid, "", d.text) for d in load_hoc(path, limit)], "HoC abstracts"
        if kind == "evidence-inference":
            from eval.datasets.evidence_inference import load_articles
            arts = list(load_articles(path).values())[:limit]
            return [a.record() for a in arts], "Evidence Inference abstracts"
        if kind == "beir":
            from eval.datasets.beir import load_beir
            corpus = list(load_beir(path).corpus.items())[:limit]
            return [R.article(i, d["title"], d["text"]) for i, d in corpus], "BEIR corpus"
    raise ValueError(f"perf needs documents; {path} is {kind}")


def queries_for(path: Path, records: list[Any], n: int) -> list[str]:
    out: list[str] = []
    root = shared_root(path)
    topics = root / "eval" / "trec-pm-2017-topics" if root else None
    if topics is not None and topics.exists():
        from eval.datasets.topics import load_trec_pm_topics
        out += [t.query for t in load_trec_pm_topics(topics)]
    for r in records:
        if len(out) >= n:
            break
        text = r.title or (r.abstract[0].text.split(". ")[0] if r.abstract else "")
        if text.strip():
            out.append(text[:300])
    return out[:n]


def run(options: RunOptions, *, backend: str = "none", llm_records: int = 10, n_queries: int = 100) -> SuiteResult:
    from index.search import Searcher
    from synthesis.extract import extract
    from synthesis.grading import grade

    phases = Phases()
    records, how = load_items(options.dataset, options.limit, phases)
    if not records:
        raise ValueError(f"no records in {options.dataset}")
    n = len(records)
    metrics: dict[str, Any] = {"records": n, "source": how}
    latency: dict[str, list[float]] = {}
    with fresh_index(options, records, phases, name="perf", batch_size=BATCH) as corpus:
        from eval.datasets.records import catalog_item

        metrics["parse"] = {"seconds": phases.seconds.get("parse"),
                            "records_per_s": n / phases.seconds["parse"] if phases.seconds.get("parse") else None}
        ingest_s = corpus.ingest["seconds"]
        metrics["ingest"] = corpus.ingest | {"records_per_s": n / ingest_s if ingest_s else None}
        started = time.perf_counter()
        counts: dict[str, int] = {}
        with phases("reingest"):
            for i in range(0, n, BATCH):
                for key, value in corpus.catalog.ingest_batch([catalog_item(r) for r in records[i:i + BATCH]]).items():
                    counts[key] = counts.get(key, 0) + value
        spent = time.perf_counter() - started
        metrics["reingest"] = {"seconds": spent, "records_per_s": n / spent if spent else None, "counts": counts}
        sync = corpus.sync
        sync_s = phases.seconds.get("sync", 0.0)
        metrics["sync"] = {"seconds": sync_s, "records_per_s": sync["records_indexed"] / sync_s if sync_s else None,
                           "chunks_per_s": sync["chunks_embedded"] / sync_s if sync_s else None,
                           "index_open_seconds": phases.seconds.get("index_open"), **sync}
        rows = list(corpus.catalog.iter_records([r.record_id for r in records]))
        stored = [rec for _row, rec in rows]
        seconds, findings = [], []
        with phases("extract_rules"):
            for rec in stored:
                t0 = time.perf_counter()
                findings.append(extract(rec).findings)
                seconds.append(time.perf_counter() - t0)
        metrics["extract_rules"] = {"records_per_s": len(seconds) / sum(seconds) if sum(seconds) else None,
                                    "latency": M.latency_summary(seconds)}
        latency["extraction (rules) per record"] = seconds
        grading_s = []
        with phases("grade"):
            for rec, f in zip(stored, findings):
                t0 = time.perf_counter()
                grade(rec, f)
                grading_s.append(time.perf_counter() - t0)
        metrics["grade"] = {"records_per_s": len(grading_s) / sum(grading_s) if sum(grading_s) else None,
                            "latency": M.latency_summary(grading_s)}
        if backend != "none" and llm_records > 0:
            llm = build_llm(options.settings, backend)
            try:
                llm_s = []
                with phases("extract_llm"):
                    for rec in stored[:llm_records]:
                        t0 = time.perf_counter()
                        extract(rec, llm)
                        llm_s.append(time.perf_counter() - t0)
                described = describe_backend(backend, options.settings) | {"model_name": llm_name(llm)}
                metrics["extract_llm"] = {"backend": described,
                                          "records": len(llm_s), "latency": M.latency_summary(llm_s),
                                          "records_per_s": len(llm_s) / sum(llm_s) if sum(llm_s) else None}
                latency["extraction (LLM) per record"] = llm_s
            finally:
                if llm is not None:
                    llm.close()
        queries = queries_for(options.dataset, records, n_queries)
        inner = getattr(corpus.handle.embedder, "inner", corpus.handle.embedder)
        searcher = Searcher(corpus.handle.store, inner, corpus.handle.encoder)
        searcher.search("warm-up", limit=1)
        query_latency: dict[str, list[float]] = {m: [] for m in MODES}
        with phases("queries"):
            for q in queries:
                for mode in MODES:
                    t0 = time.perf_counter()
                    searcher.search(q, limit=10, mode=mode)  # type: ignore[arg-type]
                    query_latency[mode].append(time.perf_counter() - t0)
        metrics["queries"] = {m: M.latency_summary(v) | {"qps": len(v) / sum(v) if sum(v) else None}
                              for m, v in query_latency.items()}
        metrics["queries"]["n"] = len(queries)
        metrics["index_points"] = corpus.handle.store.count()
    q = metrics["queries"]
    latency_tables = [[m, q[m]["p50_ms"], q[m]["p90_ms"], q[m]["p99_ms"], q[m]["qps"]] for m in MODES]
    throughput = [["parse", metrics["parse"]["records_per_s"]],
                  ["ingest (catalog)", metrics["ingest"]["records_per_s"]],
                  ["re-ingest (unchanged)", metrics["reingest"]["records_per_s"]],
                  ["extraction (rules)", metrics["extract_rules"]["records_per_s"]],
                  ["grading", metrics["grade"]["records_per_s"]],
                  ["index sync (embed + store)", metrics["sync"]["records_per_s"]]]
    if "extract_llm" in metrics:
        llm_row = metrics["extract_llm"]
        throughput.append([f"extraction ({llm_row['backend']['spec']})", llm_row["records_per_s"]])
    return SuiteResult(
        suite="perf", metrics=metrics,
        config={"limit": options.limit, "backend": backend, "llm_records": llm_records, "queries": n_queries,
                "batch_size": BATCH, "modes": list(MODES)},
        dataset={"path": str(options.dataset), "kind": detect(options.dataset), "records": n, "source": how},
        timings=phases.seconds,
        plots={"latency": {"query latency by mode (uncached query embedding)": query_latency,
                           "per-record latency": latency}},
        tables=[{"title": f"Throughput on {n} records (records/s)", "columns": ["phase", "records/s"],
                 "rows": throughput},
                {"title": f"Query latency ({len(queries)} queries, top 10)", "columns": ["mode", "p50 ms", "p90 ms",
                                                                                       "p99 ms", "queries/s"],
                 "rows": latency_tables}],
        notes=[f"sync: {metrics['sync']['records_indexed']} records, {metrics['sync']['chunks_embedded']} chunks; "
               f"phase seconds {metrics['sync'].get('timings')}",
               f"re-ingest counts {counts} (a repeat must be all 'unchanged')"],
        items=[])
