"""The answer classifier's dataset: (question, evidence) -> yes / no / maybe, from real labels only.

- PubMedQA (PQA-L expert labels): the 500 dev items are split in half by a seeded hash of the PMID; only the
  `train` half is ever trained on (a fifth of it is the checkpoint-picking dev set), the `heldout` half is what
  `oncolit eval qa --backend default` scores. Each training item gives two rows: the question with its abstract
  (results first, the conclusion removed, as the task gives it) and the question with the authors' long answer
  (the conclusion, which teaches how findings language maps to an answer; never shown at evaluation).
- Evidence Inference (v2 labels, the articles the extraction suite evaluates are excluded): each prompt becomes a
  question "Does <intervention> change <outcome> compared with <comparator>?" over its abstract without the
  conclusion sections; "yes" when the annotators found a significant difference, "no" when they did not. These
  teach the model to read significance from result sentences; they never say "maybe".

The held-out PMIDs and the trained ones are written into the card, so evaluation can refuse to score an item the
model saw.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

from synthesis.finetune.data import git_commit, sha256_of, split_of

RESULTS = re.compile(r"result|finding|outcome", re.IGNORECASE)
CONCLUSION = re.compile(r"conclusion|interpretation|implication|summary", re.IGNORECASE)
EXPECTED_FIRST = ("yes", "no", "maybe")


def evidence_text(sections: list[tuple[str, str]], max_chars: int = 1600) -> str:
    """The text an answer is read from: result sections first, then the rest in order, no conclusion; cut at
    `max_chars` on a word boundary. The same function serves training and the product (`synthesis.answer`)."""
    kept = [(label, text) for label, text in sections if not CONCLUSION.search(label or "")]
    ordered = [s for s in kept if RESULTS.search(s[0] or "")] + [s for s in kept if not RESULTS.search(s[0] or "")]
    text = " ".join(" ".join(t.split()) for _, t in ordered if t.strip())
    return text if len(text) <= max_chars else text[:max_chars].rsplit(" ", 1)[0]


def pubmedqa_split(pmid: str, seed: int = 1337) -> str:
    """"train" or "heldout": half each, fixed by (seed, PMID)."""
    return "train" if split_of(f"pubmedqa:{pmid}", {"train": 0.5, "test": 0.5}, seed) == "train" else "heldout"


def build(pubmedqa_file: Path | str, out_dir: Path | str, *, evidence_inference: Path | str | None = None,
          seed: int = 1337, dev_fraction: float = 0.2, max_chars: int = 1600) -> dict[str, Any]:
    """Write train.jsonl / dev.jsonl into `out_dir` and return the card."""
    pubmedqa_file, out_dir = Path(pubmedqa_file), Path(out_dir)
    raw = json.loads(pubmedqa_file.read_text(encoding="utf-8"))
    rows: dict[str, list[dict[str, Any]]] = {"train": [], "dev": []}
    heldout, trained = [], []
    for pmid, item in sorted(raw.items()):
        label = item["final_decision"].strip().lower()
        if pubmedqa_split(pmid, seed) == "heldout":
            heldout.append(pmid)
            continue
        trained.append(pmid)
        split = "dev" if split_of(f"dev:{pmid}", {"train": 1 - dev_fraction, "val": dev_fraction}, seed) == "val" \
            else "train"
        labels = item.get("LABELS") or [""] * len(item["CONTEXTS"])
        context = evidence_text(list(zip(labels, item["CONTEXTS"])), max_chars)
        rows[split].append({"id": f"pubmedqa:{pmid}", "source": "pubmedqa", "question": item["QUESTION"],
                            "context": context, "label": label})
        if split == "train" and item.get("LONG_ANSWER"):
            rows[split].append({"id": f"pubmedqa:{pmid}:long", "source": "pubmedqa-long-answer",
                                "question": item["QUESTION"], "context": item["LONG_ANSWER"][:max_chars],
                                "label": label})
    counts: Counter[str] = Counter()
    if evidence_inference is not None:
        from eval.datasets.evidence_inference import load_articles
        from synthesis.finetune.encoder_data import heldout_ids, load_prompts

        folder = Path(evidence_inference)
        excluded = heldout_ids(folder)
        articles = load_articles(folder)
        for pmcid, prompts in sorted(load_prompts(folder).items()):
            if pmcid in excluded or pmcid not in articles:
                continue
            context = evidence_text(list(articles[pmcid].sections), max_chars)
            for p in prompts:
                if p.label is None:
                    continue
                rows["train"].append({
                    "id": f"ei:{p.prompt_id}", "source": "evidence-inference",
                    "question": f"Does {p.intervention} change {p.outcome} compared with {p.comparator}?",
                    "context": context, "label": "no" if p.label == "no significant difference" else "yes"})
    out_dir.mkdir(parents=True, exist_ok=True)
    for split, items in rows.items():
        with (out_dir / f"{split}.jsonl").open("w", encoding="utf-8") as fh:
            for row in items:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        for row in items:
            counts[f"{split}_{row['source']}_{row['label']}"] += 1
    card = {"pubmedqa": {"path": str(pubmedqa_file), "sha256": sha256_of(pubmedqa_file), "seed": seed,
                         "trained_pmids": trained, "heldout_pmids": heldout},
            "evidence_inference": str(evidence_inference) if evidence_inference else None,
            "counts": dict(sorted(counts.items())), "max_chars": max_chars, "commit": git_commit()}
    (out_dir / "card.json").write_text(json.dumps(card, indent=1) + "\n", encoding="utf-8")
    return card
