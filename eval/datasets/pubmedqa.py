"""PubMedQA (PQA-L, MIT licence): expert-labelled yes/no/maybe questions over PubMed abstracts.

File: `eval/pubmedqa-dev/pqal_dev.json`, {PMID: {QUESTION, CONTEXTS[], LABELS[], MESHES[], YEAR, final_decision,
LONG_ANSWER, ...}}. CONTEXTS is the abstract *without* its conclusion section (the conclusion is LONG_ANSWER), which
is what the task gives a reader. The 500 items here are the development half; the official test half is held out.

Uses:
- `qa` suite: question + CONTEXTS -> yes/no/maybe (gold `final_decision`).
- `retrieval` suite (`to_beir`): each question is a query whose one relevant document is its own abstract; the
  corpus is all 500 abstracts (CONTEXTS joined, no title: PubMedQA selected articles whose *titles are the
  questions*, so a title would make retrieval trivial).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from eval.datasets.beir import BeirDataset
from eval.datasets.files import find_file

FILE = "pqal_dev.json"
ANSWERS = ("yes", "no", "maybe")


@dataclass(frozen=True)
class PubMedQAItem:
    pmid: str
    question: str
    contexts: tuple[str, ...]
    labels: tuple[str, ...]
    meshes: tuple[str, ...]
    year: str | None
    answer: str  # yes | no | maybe
    long_answer: str

    @property
    def context_text(self) -> str:
        """The abstract as a reader sees it: "LABEL: text" per section."""
        return "\n".join(f"{label}: {text}" if label else text
                         for label, text in zip(self.labels or ("",) * len(self.contexts), self.contexts))


def load_pubmedqa(path: Path | str, limit: int | None = None) -> list[PubMedQAItem]:
    raw = json.loads(find_file(path, FILE, "pubmedqa-dev").read_text(encoding="utf-8"))
    items = []
    for pmid, row in raw.items():
        answer = row["final_decision"].strip().lower()
        if answer not in ANSWERS:
            raise ValueError(f"PubMedQA item {pmid}: unexpected answer {answer!r}")
        labels = tuple(row.get("LABELS") or ())
        contexts = tuple(row["CONTEXTS"])
        items.append(PubMedQAItem(pmid=str(pmid), question=row["QUESTION"], contexts=contexts,
                                  labels=labels if len(labels) == len(contexts) else ("",) * len(contexts),
                                  meshes=tuple(row.get("MESHES") or ()), year=row.get("YEAR"), answer=answer,
                                  long_answer=row.get("LONG_ANSWER", "")))
    return items[:limit] if limit is not None else items


def to_beir(items: list[PubMedQAItem]) -> BeirDataset:
    corpus = {it.pmid: {"title": "", "text": it.context_text} for it in items}
    queries = {it.pmid: it.question for it in items}
    qrels = {it.pmid: {it.pmid: 1} for it in items}
    return BeirDataset("pubmedqa-dev", corpus, queries, qrels, notes=[
        "PubMedQA as retrieval: query = question, its only relevant document = its own abstract (context without "
        "the conclusion, no title); corpus = all abstracts of the file."])
