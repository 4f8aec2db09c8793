"""Training pairs for the reranker: (query, passage) -> relevant / irrelevant, with hard negatives from BM25.

No cross-encoder with bundled weights exists on the registries, so OncoLit trains its own from the labelled
queries the shared data holds, the way search logs train MedCPT: a query, the passage a reader wanted, and the
passages a lexical search ranks close to it that are not what was wanted.

- **Queries.** From Evidence Inference RCT reports: each article's *title* (a topical query: positive = a window
  of its abstract, without the title, so the pair is not a string match) and up to `prompts_per_article` of its
  ICO prompts "I versus C: O" (positive = the title plus the abstract window sharing the most content words).
- **Negatives.** Per query, `hard_negatives` windows from other articles among the BM25 top 30 (minus any article
  sharing the query's intervention and outcome words: likely relevant, not negative), plus one random window.
- **No leakage.** Every `splits/*validation*` article and every Evidence Inference article the topical benchmark
  (`eval/datasets/topical.py`) uses as a query source or a judged document is removed before anything else;
  PubMedQA and HoC are never used. The rest is split by article id (`split_of`) into train and dev.

Rows (JSON lines, `train.jsonl` / `dev.jsonl`): {"query", "passage", "label": 0|1, "group", "article"}; `group`
ties a query's positive to its negatives (dev is scored per group). card.json records counts and sha256s.
"""

from __future__ import annotations

import csv
import json
import math
import random
import re
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from eval.datasets.evidence_inference import flagged_incorrect, load_articles
from eval.datasets.topical import JACCARD, build_topical, content_key, jaccard
from synthesis.finetune.data import git_commit, sha256_of, split_of
from synthesis.finetune.encoder_data import heldout_ids

WINDOW_WORDS = 110  # about the 160 word pieces a pair keeps for the passage side
STRIDE_WORDS = 80


def windows(text: str) -> list[str]:
    """Overlapping word windows of an abstract: the size of the passage a search hit shows the reranker."""
    words = text.split()
    if len(words) <= WINDOW_WORDS:
        return [" ".join(words)] if words else []
    starts = range(0, max(1, len(words) - WINDOW_WORDS + STRIDE_WORDS), STRIDE_WORDS)
    return [" ".join(words[s:s + WINDOW_WORDS]) for s in starts]


class TinyBM25:
    """In-memory BM25 over the product's tokenizer: enough to mine hard negatives from ~10k windows."""

    def __init__(self, docs: list[str], k1: float = 1.2, b: float = 0.75) -> None:
        from index.sparse import tokenize

        self.tokenize = tokenize
        self.tfs = [Counter(tokenize(d)) for d in docs]
        self.lengths = [sum(tf.values()) for tf in self.tfs]
        self.avg = sum(self.lengths) / max(1, len(self.lengths))
        df: Counter[str] = Counter(t for tf in self.tfs for t in tf)
        n = len(docs)
        self.idf = {t: math.log(1 + (n - c + 0.5) / (c + 0.5)) for t, c in df.items()}
        self.postings: dict[str, list[int]] = defaultdict(list)
        for i, tf in enumerate(self.tfs):
            for t in tf:
                self.postings[t].append(i)
        self.k1, self.b = k1, b

    def top(self, query: str, k: int) -> list[int]:
        scores: dict[int, float] = defaultdict(float)
        for t in set(self.tokenize(query)):
            idf = self.idf.get(t)
            if idf is None:
                continue
            for i in self.postings[t]:
                tf = self.tfs[i][t]
                norm = tf * (self.k1 + 1) / (tf + self.k1 * (1 - self.b + self.b * self.lengths[i] / self.avg))
                scores[i] += idf * norm
        return [i for i, _ in sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:k]]


def _best_window(query: str, wins: list[str]) -> str:
    words = set(w.lower() for w in re.findall(r"\w+", query))
    return max(wins, key=lambda w: (len(words & set(x.lower() for x in re.findall(r"\w+", w))), -wins.index(w)))


def build(shared: Path | str, out_dir: Path | str, *, seed: int = 1337, dev_fraction: float = 0.05,
          prompts_per_article: int = 3, hard_negatives: int = 3) -> dict[str, Any]:
    """Write train.jsonl, dev.jsonl and card.json into `out_dir`; returns the card."""
    root = Path(shared)
    ei = root / "eval" / "evidence-inference"
    excluded = heldout_ids(ei) | build_topical(root).judged_articles()
    articles = {k: v for k, v in load_articles(ei).items() if k not in excluded}
    assert not excluded & set(articles), "held-out articles must not reach training"
    bad = flagged_incorrect(ei)
    prompts: dict[str, list[dict[str, str]]] = defaultdict(list)
    with (ei / "prompts_merged.csv").open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            pmcid = f"PMC{row['PMCID'].strip()}"
            if pmcid in articles and row["PromptID"] not in bad:
                prompts[pmcid].append(row)
    ids = sorted(articles)
    wins = {a: windows(articles[a].text) for a in ids}
    flat_docs = [(a, w) for a in ids for w in wins[a]]
    bm25 = TinyBM25([w for _, w in flat_docs])
    keys = {a: [(content_key(p["Intervention"]), content_key(p["Outcome"])) for p in prompts[a]] for a in ids}
    rng = random.Random(seed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    counts: Counter[str] = Counter()
    handles = {s: (out / f"{s}.jsonl").open("w", encoding="utf-8") for s in ("train", "dev")}
    try:
        for a in ids:
            if not wins[a]:
                continue
            split = "dev" if split_of(a, {"train": 1 - dev_fraction, "val": dev_fraction}, seed) == "val" else "train"
            queries: list[tuple[str, str, str]] = []  # (kind, query, positive passage)
            if articles[a].title.strip():
                queries.append(("title", articles[a].title.strip(), wins[a][0]))
            seen: set[tuple[frozenset[str], frozenset[str]]] = set()
            for p in prompts[a]:
                key = (content_key(p["Intervention"]), content_key(p["Outcome"]))
                if key in seen or len(seen) >= prompts_per_article:
                    continue
                seen.add(key)
                q = f"{p['Intervention'].strip()} versus {p['Comparator'].strip()}: {p['Outcome'].strip()}"
                queries.append(("prompt", q, f"{articles[a].title} {_best_window(q, wins[a])}".strip()))
            for n, (kind, query, positive) in enumerate(queries):
                group = f"{a}-{n}"
                rows = [{"query": query, "passage": positive, "label": 1}]
                negatives = []
                for i in bm25.top(query, 30):
                    other, window = flat_docs[i]
                    if other == a or other in {x for x, _ in negatives} or _shares_topic(keys[a], keys[other]):
                        continue
                    negatives.append((other, window))
                    if len(negatives) == hard_negatives:
                        break
                for _ in range(50):  # one random negative from another article (bounded: a tiny corpus may have none)
                    other, window = flat_docs[rng.randrange(len(flat_docs))]
                    if other != a:
                        negatives.append((other, window))
                        break
                if not negatives:
                    continue  # a positive alone teaches nothing
                for other, window in negatives:
                    title = articles[other].title if kind == "prompt" else ""
                    rows.append({"query": query, "passage": f"{title} {window}".strip(), "label": 0})
                for r in rows:
                    handles[split].write(json.dumps({**r, "group": group, "article": a, "kind": kind},
                                                    ensure_ascii=False) + "\n")
                counts[f"{split}_groups"] += 1
                counts[f"{split}_pairs"] += len(rows)
                counts[f"{split}_{kind}_queries"] += 1
    finally:
        for h in handles.values():
            h.close()
    card = {"task": "rerank", "source": str(ei), "seed": seed, "dev_fraction": dev_fraction,
            "hard_negatives": hard_negatives, "prompts_per_article": prompts_per_article,
            "articles": len(articles), "excluded_articles": len(excluded), "counts": dict(sorted(counts.items())),
            "sha256": {name: sha256_of(ei / name) for name in ("abstracts.jsonl", "prompts_merged.csv")},
            "commit": git_commit()}
    (out / "card.json").write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    return card


def _shares_topic(a: list[tuple[frozenset[str], frozenset[str]]], b: list[tuple[frozenset[str], frozenset[str]]]) -> bool:
    """Whether two articles have prompts whose intervention words and outcome words overlap by half: the
    benchmark's relevance rule, so a likely-relevant article is never used as a negative."""
    return any(jaccard(i1, i2) >= JACCARD and jaccard(o1, o2) >= JACCARD for i1, o1 in a for i2, o2 in b)
