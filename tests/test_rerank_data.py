"""The reranker's training pairs never hold an article the evaluation scores: EI validation articles and every
article the topical benchmark judges are removed first; each query has one positive and its negatives."""

from __future__ import annotations

import json
from pathlib import Path

from synthesis.finetune.rerank_data import build, windows
from tests.test_topical_benchmark import make_shared


def test_pairs_leave_out_every_evaluated_article(tmp_path: Path) -> None:
    shared = make_shared(tmp_path / "shared")
    abstracts = shared / "eval" / "evidence-inference" / "abstracts.jsonl"
    extra = [{"pmcid": f"PMC{n}", "title": f"Trial {n}", "oncology_keyword_match": False,
              "abstract_sections": [{"label": "RESULTS", "text": f"Drug {n} improved outcome {n} in adults."}]}
             for n in (5, 6)]
    abstracts.write_text(abstracts.read_text() + "".join(json.dumps(d) + "\n" for d in extra))
    card = build(shared, tmp_path / "out")
    rows = [json.loads(line) for split in ("train", "dev")
            for line in (tmp_path / "out" / f"{split}.jsonl").read_text().splitlines()]
    articles = {r["article"] for r in rows}
    # PMC1/PMC2 are judged by the topical benchmark, PMC4 is a validation article
    assert articles == {"PMC3", "PMC5", "PMC6"} and card["excluded_articles"] == 3
    groups: dict[str, list[int]] = {}
    for r in rows:
        groups.setdefault(r["group"], []).append(r["label"])
    assert all(labels.count(1) == 1 and len(labels) >= 2 for labels in groups.values())


def test_windows_cover_a_long_abstract_with_overlap() -> None:
    words = [f"w{i}" for i in range(300)]
    parts = windows(" ".join(words))
    assert parts[0].split()[0] == "w0" and parts[-1].split()[-1] == "w299" and len(parts) >= 3
