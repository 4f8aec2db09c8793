"""Loaders for evaluation data. Each reads a path (never a hub) and knows one format:

    beir.py                BEIR folders (corpus.jsonl, queries.jsonl, qrels/*.tsv); writer too
    pubmedqa.py            PubMedQA PQA-L dev (qa; retrieval: question -> its own abstract)
    evidence_inference.py  Evidence Inference 2.0 (extraction; retrieval: ICO prompt -> its article; grading: RCTs)
    hoc.py                 Hallmarks of Cancer (grading: laboratory studies; a corpus for perf/citations)
    pubmed.py              PubMed XML files via the product's parser (grading: real publication types; perf)
    topics.py              TREC PM 2017 topics and TrialGPT queries/qrels: queries without documents
    records.py             dataset documents -> Article records and catalog items

`detect(path)` names the kind of dataset a path holds, so `--dataset` can take any of them.
"""

from __future__ import annotations

from pathlib import Path

KINDS = ("beir", "trialgpt", "pubmedqa", "evidence-inference", "hallmarks-of-cancer", "trec-pm-topics",
         "shared-root", "pubmed-xml")


def detect(path: Path | str) -> str:
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"dataset {p} does not exist")
    if p.is_file():
        if p.name.endswith(".json") and "pqal" in p.name:
            return "pubmedqa"
        if p.name.endswith(".xml") and p.name.startswith("topics"):
            return "trec-pm-topics"
        if p.name.endswith((".xml", ".xml.gz")):
            return "pubmed-xml"
        if p.name == "hoc_abstracts.jsonl":
            return "hallmarks-of-cancer"
        raise ValueError(f"cannot tell what dataset {p} is")
    if (p / "queries.jsonl").exists() and (p / "qrels").is_dir():
        return "beir" if (p / "corpus.jsonl").exists() else "trialgpt"
    if any((d / "queries.jsonl").exists() and not (d / "corpus.jsonl").exists() for d in p.iterdir() if d.is_dir()):
        return "trialgpt"
    if (p / "pqal_dev.json").exists():
        return "pubmedqa"
    if (p / "v2_annotations.csv").exists():
        return "evidence-inference"
    if (p / "hoc_abstracts.jsonl").exists():
        return "hallmarks-of-cancer"
    if any(p.glob("topics*.xml")):
        return "trec-pm-topics"
    if (p / "eval").is_dir() and (p / "pubmed").is_dir():
        return "shared-root"
    if any(p.rglob("*.xml")) or any(p.rglob("*.xml.gz")):
        return "pubmed-xml"
    raise ValueError(f"cannot tell what dataset {p} is; see eval/README.md for the formats each suite reads")


def shared_root(path: Path | str) -> Path | None:
    """The shared data root a dataset path lies in (the folder holding eval/ and pubmed/), if any."""
    for candidate in [Path(path).resolve(), *Path(path).resolve().parents]:
        if (candidate / "eval").is_dir() and (candidate / "pubmed").is_dir():
            return candidate
    return None
