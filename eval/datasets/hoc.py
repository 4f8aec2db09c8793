"""Hallmarks of Cancer (HoC, GPL-3.0): 1,852 cancer abstracts with sentence-level hallmark labels.

File: `eval/hallmarks-of-cancer/hoc_abstracts.jsonl`, {pmid, sentences[], sentence_labels, labels_raw,
doc_top_level_hallmarks[]}. Text is pre-tokenised (spaces around punctuation); there are no titles.

Uses: `grading` (laboratory cancer biology -> design `preclinical`, minus abstracts with human-study wording, by the
same rule the design classifier's training used), and a real oncology corpus for `perf` and `citations`. Hallmark
labels are topics, not query relevance: they are not used as retrieval judgements.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from eval.datasets.files import find_file

FILE = "hoc_abstracts.jsonl"


@dataclass(frozen=True)
class HocDoc:
    pmid: str
    text: str
    hallmarks: tuple[str, ...]


def load_hoc(path: Path | str, limit: int | None = None) -> list[HocDoc]:
    docs = []
    with find_file(path, FILE, "hallmarks-of-cancer").open(encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            row = json.loads(line)
            hallmarks = tuple(row.get("doc_top_level_hallmarks") or ())
            docs.append(HocDoc(str(row["pmid"]), " ".join(row["sentences"]), hallmarks))
            if limit is not None and len(docs) >= limit:
                break
    return docs
