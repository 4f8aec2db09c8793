"""Datasets for the findings encoders, built from Evidence Inference labels (never from evaluated articles).

Two tasks, one JSON-lines file per split (`train.jsonl`, `dev.jsonl`) in a folder each:

- `reader`     one abstract sentence -> is it a result sentence (the sentence that reports a comparison's
               outcome: it holds an annotator's evidence span for some prompt), and which of its words name an
               intervention, a comparator or an outcome (BIO tags). Evidence labels exist only for articles with
               v2 annotations (`evidence: null` elsewhere: the loss skips it); tags come from the article's ICO
               prompts (`prompts_merged.csv`, annotators' phrases), located in the sentence word by word.
- `direction`  (intervention, comparator, outcome, evidence text) -> significantly increased / decreased / no
               significant difference, from accepted v2 annotations: the annotator's evidence span, and the
               abstract sentence holding it when there is one (what the product will show the model).

No leakage: every article listed in `splits/*validation*` of the folder (the dev sets the eval suite scores) and
every id in `exclude` is left out before anything else; the rest is split by article id (`split_of`, a seeded hash)
into train and dev (dev picks the checkpoint and fits the confidence temperature). A card (card.json) records
counts, the excluded ids' count and the source files' sha256.
"""

from __future__ import annotations

import csv
import json
import random
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eval.datasets.evidence_inference import (
    DEV_FRACTION,
    DEV_SEED,
    LABELS,
    flagged_incorrect,
    is_training_dev,
    load_articles,
    load_evidence_inference,
)
from synthesis.finetune.data import git_commit, sha256_of
from synthesis.text import WORD, Sentence, article_sentences, content_words, flat, norm_word

TAGS = ("I", "C", "O")
DIRECTION_LABELS = LABELS  # index order = the direction head's classes
Say = Any


@dataclass(frozen=True)
class Prompt:
    """An ICO prompt of one article; `label`/`evidence` only for v2-annotated ones."""

    prompt_id: str
    pmcid: str
    intervention: str
    comparator: str
    outcome: str
    label: str | None = None
    evidence: tuple[str, ...] = ()


def heldout_ids(folder: Path) -> set[str]:
    """Article ids the evaluation scores: every `splits/*validation*` list (as "PMC<digits>")."""
    out: set[str] = set()
    for path in sorted((folder / "splits").glob("*validation*")):
        out |= {f"PMC{x.strip()}" for x in path.read_text().split() if x.strip()}
    return out


def load_prompts(folder: Path) -> dict[str, list[Prompt]]:
    """Every ICO prompt by article (flagged ones dropped), labelled where v2 annotators agreed."""
    labelled = {p.prompt_id: p for p in load_evidence_inference(folder, "all").prompts}
    bad = flagged_incorrect(folder)
    out: dict[str, list[Prompt]] = defaultdict(list)
    with (folder / "prompts_merged.csv").open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            pid = row["PromptID"]
            if pid in bad:
                continue
            pmcid = f"PMC{row['PMCID']}"
            gold = labelled.get(pid)
            out[pmcid].append(Prompt(pid, pmcid, row["Intervention"].strip(), row["Comparator"].strip(),
                                     row["Outcome"].strip(), gold.label if gold else None,
                                     gold.evidence if gold else ()))
    return out


# ------------------------------------------------------------------------------------------------
# Locating phrases and evidence in sentences
# ------------------------------------------------------------------------------------------------

def word_spans(text: str) -> list[tuple[int, int, str]]:
    return [(m.start(), m.end(), norm_word(m.group())) for m in WORD.finditer(text.lower())]


_SEPARATORS = frozenset("versus vs and or compared than between to".split())
"""Words that join two arms ("A versus B"): a run never bridges them, so each arm is its own span."""


def locate(phrase: str, text: str, min_cover: float = 0.5) -> list[tuple[int, int]]:
    """Character spans of `text` that name `phrase`: runs of words from the phrase's content words
    (one foreign word may sit inside a run: "5 mg of drug"), kept when a run covers at least
    `min_cover` of those words (all of them for a one- or two-word phrase, one is enough)."""
    wanted = content_words(phrase)
    if not wanted:
        return []
    words = word_spans(text)
    runs: list[tuple[int, int, set[str]]] = []
    current: list[int] = []
    gap = 0
    for i, (_s, _e, w) in enumerate(words):
        if w in wanted:
            current.append(i)
            gap = 0
        elif current and gap == 0 and w not in _SEPARATORS and i + 1 < len(words) and words[i + 1][2] in wanted:
            gap = 1
        else:
            if current:
                runs.append((current[0], current[-1], {words[j][2] for j in current}))
            current, gap = [], 0
    if current:
        runs.append((current[0], current[-1], {words[j][2] for j in current}))
    need = 1 if len(wanted) <= 2 else max(2, round(min_cover * len(wanted)))
    return [(words[a][0], words[b][1]) for a, b, found in runs if len(found) >= need]


def holds_evidence(sentence: str, evidence: Iterable[str]) -> bool:
    """Whether the sentence holds (or is held by) one of the annotators' evidence spans."""
    s = flat(sentence)
    for e in evidence:
        e = flat(e)
        if len(e) >= 10 and (e in s or (len(s) >= 20 and s in e)):
            return True
    return False


def tag_sentence(text: str, prompts: list[Prompt]) -> list[tuple[int, int, str]]:
    """Non-overlapping (start, end, tag) spans: outcomes first (they are the longest phrases), then
    interventions, then comparators; a span already taken is not tagged again."""
    taken: list[tuple[int, int, str]] = []
    for tag, attr in (("O", "outcome"), ("I", "intervention"), ("C", "comparator")):
        for phrase in dict.fromkeys(getattr(p, attr) for p in prompts):
            for s, e in locate(phrase, text):
                if all(e <= a or s >= b for a, b, _ in taken):
                    taken.append((s, e, tag))
    return sorted(taken)


# ------------------------------------------------------------------------------------------------
# Building
# ------------------------------------------------------------------------------------------------

def _reader_rows(pmcid: str, sentences: list[Sentence], prompts: list[Prompt], split: str) -> list[dict[str, Any]]:
    labelled = [p for p in prompts if p.label is not None]
    evidence = [e for p in labelled for e in p.evidence]
    rows = []
    for s in sentences:
        if s.section == "TITLE":
            continue
        tags = tag_sentence(s.text, prompts)
        rows.append({"id": f"{pmcid}:{s.index}", "article": pmcid, "split": split, "section": s.section,
                     "text": s.text, "evidence": (int(holds_evidence(s.text, evidence)) if labelled else None),
                     "tags": [list(t) for t in tags]})
    return rows


def _direction_rows(pmcid: str, sentences: list[Sentence], prompts: list[Prompt], split: str) -> list[dict[str, Any]]:
    rows = []
    for p in prompts:
        if p.label is None:
            continue
        texts = list(dict.fromkeys(e.strip() for e in p.evidence if len(e.strip()) >= 10))
        texts += [s.text for s in sentences if s.section != "TITLE" and holds_evidence(s.text, p.evidence)]
        for n, text in enumerate(dict.fromkeys(texts)):
            rows.append({"id": f"{p.prompt_id}:{n}", "article": pmcid, "split": split,
                         "intervention": p.intervention, "comparator": p.comparator, "outcome": p.outcome,
                         "sentence": text[:1200], "label": DIRECTION_LABELS.index(p.label)})
    return rows


def build(folder: Path | str, out_dir: Path | str, *, seed: int = DEV_SEED, dev_fraction: float = DEV_FRACTION,
          exclude: Iterable[str] = (), max_untagged: float = 0.15, say: Say = None) -> dict[str, Any]:
    """Write `reader/` and `direction/` under `out_dir`; returns the card. `max_untagged` keeps that
    share of sentences without any tag or evidence label (so the tagger also sees sentences with none)."""
    folder, out_dir = Path(folder), Path(out_dir)
    say = say or (lambda _m: None)
    excluded = heldout_ids(folder) | set(exclude)
    articles = load_articles(folder)
    prompts = load_prompts(folder)
    rng = random.Random(seed)
    reader: dict[str, list[dict[str, Any]]] = {"train": [], "dev": []}
    direction: dict[str, list[dict[str, Any]]] = {"train": [], "dev": []}
    counts: Counter[str] = Counter()
    for pmcid in sorted(articles):
        if pmcid in excluded:
            counts["articles_excluded_heldout"] += 1
            continue
        if not prompts.get(pmcid):
            counts["articles_without_prompts"] += 1
            continue
        split = "dev" if is_training_dev(pmcid, seed, dev_fraction) else "train"
        sentences = article_sentences(articles[pmcid].record())
        for row in _reader_rows(pmcid, sentences, prompts[pmcid], split):
            if row["evidence"] is None and not row["tags"] and rng.random() > max_untagged:
                continue
            reader[split].append(row)
        direction[split] += _direction_rows(pmcid, sentences, prompts[pmcid], split)
        counts[f"articles_{split}"] += 1
    for task, data in (("reader", reader), ("direction", direction)):
        (out_dir / task).mkdir(parents=True, exist_ok=True)
        for split, rows in data.items():
            with (out_dir / task / f"{split}.jsonl").open("w", encoding="utf-8") as fh:
                for row in rows:
                    fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            counts[f"{task}_{split}"] = len(rows)
    for split, rows in reader.items():
        counts[f"reader_{split}_evidence_positive"] = sum(r["evidence"] == 1 for r in rows)
        counts[f"reader_{split}_with_tags"] = sum(bool(r["tags"]) for r in rows)
    for split, rows in direction.items():
        for label, n in Counter(DIRECTION_LABELS[r["label"]] for r in rows).items():
            counts[f"direction_{split}_{label}"] = n
    train_articles = {r["article"] for d in (reader, direction) for r in d["train"] + d["dev"]}
    assert not train_articles & excluded, "a held-out article reached the training data"
    card = {"source": str(folder), "seed": seed, "dev_fraction": dev_fraction, "counts": dict(sorted(counts.items())),
            "heldout_articles_excluded": len(excluded),
            "heldout_lists": sorted(p.name for p in (folder / "splits").glob("*validation*")),
            "sha256": {name: sha256_of(folder / name) for name in ("abstracts.jsonl", "prompts_merged.csv",
                                                                   "v2_annotations.csv")},
            "commit": git_commit()}
    (out_dir / "card.json").write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    say(f"findings data: {dict(counts)}")
    return card


def read_rows(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]
