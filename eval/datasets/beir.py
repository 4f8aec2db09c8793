"""BEIR-style retrieval folders: `corpus.jsonl`, `queries.jsonl`, `qrels/<split>.tsv`.

    corpus.jsonl   {"_id": "...", "title": "...", "text": "..."} per line
    queries.jsonl  {"_id": "...", "text": "...", "metadata": {...}} per line (metadata optional)
    qrels/test.tsv query-id <tab> corpus-id <tab> score, with a header line

The converters in this package build a `BeirDataset` in memory from the shared datasets; `write_beir` saves one
(under a run's out dir, never into the repository) so that other tools can read exactly what was evaluated.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class BeirDataset:
    name: str
    corpus: dict[str, dict[str, str]]  # doc id -> {"title", "text"}
    queries: dict[str, str]  # query id -> text
    qrels: dict[str, dict[str, int]]  # query id -> {doc id: grade}
    notes: list[str] = field(default_factory=list)
    # query id -> metadata; the retrieval suite reads "family" (scores are also given per family) and "exclude"
    # (documents dropped from that query's ranking before scoring: the document a topical query was written from)
    query_meta: dict[str, dict[str, Any]] = field(default_factory=dict)

    def sliced(self, limit: int | None, corpus_size: int | None = None) -> BeirDataset:
        """The first `limit` judged queries, and a corpus cut to `corpus_size` documents that always keeps
        every document judged for those queries (the rest are distractors, in corpus order)."""
        if limit is None and corpus_size is None:
            return self
        qids = [q for q in self.queries if q in self.qrels][: limit if limit is not None else None]
        queries = {q: self.queries[q] for q in qids}
        qrels = {q: self.qrels[q] for q in qids}
        judged = {d for q in qids for d in [*self.qrels[q], *self.query_meta.get(q, {}).get("exclude", [])]
                  if d in self.corpus}
        size = corpus_size if corpus_size is not None else len(self.corpus)
        keep = list(judged)
        for doc in self.corpus:
            if len(keep) >= size:
                break
            if doc not in judged:
                keep.append(doc)
        corpus = {d: self.corpus[d] for d in self.corpus if d in set(keep)}
        note = f"sliced: {len(queries)} of {len(self.queries)} queries, {len(corpus)} of {len(self.corpus)} documents"
        meta = {q: self.query_meta[q] for q in qids if q in self.query_meta}
        return BeirDataset(self.name, corpus, queries, qrels, [*self.notes, note], meta)

    def stats(self) -> dict[str, int]:
        return {"documents": len(self.corpus), "queries": len(self.queries),
                "judged_queries": sum(1 for q in self.queries if self.qrels.get(q)),
                "qrels": sum(len(v) for v in self.qrels.values())}


def is_beir(path: Path) -> bool:
    return path.is_dir() and (path / "queries.jsonl").exists() and (path / "qrels").is_dir()


def load_beir(path: Path | str, split: str = "test") -> BeirDataset:
    root = Path(path)
    corpus_file = root / "corpus.jsonl"
    if not corpus_file.exists():
        raise FileNotFoundError(
            f"{corpus_file} is missing: a BEIR folder needs its documents. (The TrialGPT folders in shared/data ship "
            "queries and qrels only; their trial corpus is a separate NCBI download — put its corpus.jsonl here.)")
    corpus = {}
    with corpus_file.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                row = json.loads(line)
                corpus[str(row["_id"])] = {"title": row.get("title") or "", "text": row.get("text") or ""}
    queries = load_queries(root / "queries.jsonl")
    return BeirDataset(root.name, corpus, queries, load_qrels(root / "qrels", split),
                       query_meta=load_query_meta(root / "queries.jsonl"))


def load_queries(path: Path) -> dict[str, str]:
    out = {}
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                row = json.loads(line)
                out[str(row["_id"])] = row["text"]
    return out


def load_query_meta(path: Path) -> dict[str, dict[str, Any]]:
    out = {}
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                row = json.loads(line)
                if isinstance(row.get("metadata"), dict) and row["metadata"]:
                    out[str(row["_id"])] = row["metadata"]
    return out


def load_qrels(qrels_dir: Path, split: str = "test") -> dict[str, dict[str, int]]:
    path = qrels_dir / f"{split}.tsv"
    if not path.exists():
        found = sorted(p.stem for p in qrels_dir.glob("*.tsv"))
        raise FileNotFoundError(f"{path} not found; splits here: {', '.join(found) or 'none'}")
    qrels: dict[str, dict[str, int]] = {}
    with path.open(encoding="utf-8") as fh:
        for row in csv.reader(fh, delimiter="\t"):
            if len(row) < 3 or not row[2].strip().lstrip("-").isdigit():
                continue  # header or blank line
            qrels.setdefault(row[0], {})[row[1]] = int(row[2])
    return qrels


def write_beir(data: BeirDataset, folder: Path, split: str = "test") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "qrels").mkdir(exist_ok=True)
    with (folder / "corpus.jsonl").open("w", encoding="utf-8") as fh:
        for doc_id, doc in data.corpus.items():
            fh.write(json.dumps({"_id": doc_id, "title": doc["title"], "text": doc["text"]}, ensure_ascii=False) + "\n")
    with (folder / "queries.jsonl").open("w", encoding="utf-8") as fh:
        for qid, text in data.queries.items():
            row: dict[str, Any] = {"_id": qid, "text": text}
            if data.query_meta.get(qid):
                row["metadata"] = data.query_meta[qid]
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    with (folder / "qrels" / f"{split}.tsv").open("w", encoding="utf-8") as fh:
        fh.write("query-id\tcorpus-id\tscore\n")
        for qid, docs in data.qrels.items():
            for doc_id, grade in docs.items():
                fh.write(f"{qid}\t{doc_id}\t{grade}\n")
    return folder
