"""Evidence Inference 2.0 (MIT): RCT reports from PMC with intervention/comparator/outcome (ICO) prompts, each
labelled "significantly increased" / "significantly decreased" / "no significant difference" with evidence spans.

Files in `eval/evidence-inference/` (see its ORIGINAL_README.md):
  abstracts.jsonl           {pmcid "PMC…", title, abstract_sections [{label, text}], oncology_keyword_match}
  prompts_merged.csv        PromptID, PMCID (digits), Outcome, Intervention, Comparator
  v2_annotations.csv        UserID, PromptID, PMCID, Valid Label, Valid Reasoning, Label, Annotations (evidence
                            text), Label Code, In Abstract (all "UNK" in v2), Evidence Start/End (full-text offsets)
  splits/ev2_{train,validation}_article_ids.txt   article ids of the v2 split

Splits: `train` and `validation` as shipped; `dev` is the part of `train` the findings models held out for
checkpoint selection (`oncolit finetune build-data findings`: seeded by article id, DEV_FRACTION of the non-
validation articles) and `fit` the rest of `train`. Settings chosen after training (how many ranked sentences the
direction model reads, and their weights) are tuned on `dev`, never on `validation`.
  ORIGINAL_README.md        lists prompts flagged "Incorrect": they are dropped here

Gold per prompt: the majority label over annotations whose label the verifier accepted (`Valid Label` True); ties
are left out and counted. Annotators read full texts, but OncoLit reads abstracts, so each prompt says whether one
of its evidence spans occurs in the abstract (`in_abstract`, whitespace- and case-insensitive): extraction is
scored on those by default, and the count of the rest is reported.
"""

from __future__ import annotations

import csv
import json
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from eval.datasets.beir import BeirDataset
from eval.datasets.splits import split_of
from ingest.records import Article

LABELS = ("significantly increased", "significantly decreased", "no significant difference")
_LABEL_FIX = {"significantly increase": "significantly increased"}
DROP_SECTIONS = {"ELECTRONIC SUPPLEMENTARY MATERIAL"}
SPLITS = ("all", "train", "validation", "dev", "fit")
DEV_SEED, DEV_FRACTION = 1337, 0.1  # the findings models' train/dev cut (synthesis/finetune/encoder_data.build)


@dataclass(frozen=True)
class EIArticle:
    pmcid: str  # "PMC101395"
    title: str
    sections: tuple[tuple[str, str], ...]
    oncology: bool

    @property
    def text(self) -> str:
        return " ".join(t for _, t in self.sections)

    def record(self) -> Article:
        from eval.datasets.records import article
        return article(self.pmcid, self.title, self.sections)


@dataclass(frozen=True)
class EIPrompt:
    prompt_id: str
    pmcid: str
    intervention: str
    comparator: str
    outcome: str
    label: str | None  # majority of accepted annotations; None = no majority
    votes: tuple[str, ...] = ()
    evidence: tuple[str, ...] = ()
    in_abstract: bool = False


@dataclass
class EvidenceInference:
    articles: dict[str, EIArticle]
    prompts: list[EIPrompt]
    counts: dict[str, int] = field(default_factory=dict)


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


def flagged_incorrect(root: Path) -> set[str]:
    """Prompt ids the dataset's README lists as "Incorrect" (obviously wrong, not to be used)."""
    readme = root / "ORIGINAL_README.md"
    if not readme.exists():
        return set()
    match = re.search(r"### Incorrect:\s*\n(.*?)(?:\n\s*\n|\n###)", readme.read_text(encoding="utf-8-sig"), re.S)
    return set(re.findall(r"\d+", match.group(1))) if match else set()


def load_articles(root: Path) -> dict[str, EIArticle]:
    out = {}
    with (root / "abstracts.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            sections = tuple((s.get("label") or "", s["text"]) for s in row["abstract_sections"]
                             if s.get("label") not in DROP_SECTIONS and s["text"].strip())
            if sections:
                out[row["pmcid"]] = EIArticle(row["pmcid"], row.get("title") or "", sections,
                                              bool(row.get("oncology_keyword_match")))
    return out


def split_ids(root: Path, split: str) -> set[str] | None:
    if split == "all":
        return None
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}")
    if split in ("dev", "fit"):
        return {pmcid for pmcid in split_ids(root, "train") or set() if is_training_dev(pmcid) == (split == "dev")}
    path = root / "splits" / f"ev2_{split}_article_ids.txt"
    return {f"PMC{x.strip()}" for x in path.read_text().split() if x.strip()}


def is_training_dev(pmcid: str, seed: int = DEV_SEED, fraction: float = DEV_FRACTION) -> bool:
    """Whether the findings models kept this (non-validation) article out of training, for checkpoint selection."""
    return split_of(pmcid, {"train": 1 - fraction, "val": fraction}, seed) == "val"


def load_evidence_inference(path: Path | str, split: str = "all") -> EvidenceInference:
    """Articles with abstracts and their v2-annotated prompts (flagged prompts dropped)."""
    root = Path(path)
    if not (root / "v2_annotations.csv").exists():
        raise FileNotFoundError(f"{root} is not the evidence-inference folder (no v2_annotations.csv)")
    articles = load_articles(root)
    wanted = split_ids(root, split)
    bad = flagged_incorrect(root)
    prompts_meta = {}
    with (root / "prompts_merged.csv").open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            prompts_meta[row["PromptID"]] = row
    votes: dict[str, list[str]] = defaultdict(list)
    evidence: dict[str, list[str]] = defaultdict(list)
    with (root / "v2_annotations.csv").open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if row["Valid Label"] != "True":
                continue
            label = _LABEL_FIX.get(row["Label"].strip(), row["Label"].strip())
            if label not in LABELS:
                continue
            votes[row["PromptID"]].append(label)
            if row["Annotations"].strip():
                evidence[row["PromptID"]].append(row["Annotations"].strip())
    counts: Counter[str] = Counter()
    prompts = []
    for pid in sorted(votes, key=int):
        meta = prompts_meta.get(pid)
        if meta is None:
            counts["no_prompt_text"] += 1
            continue
        pmcid = f"PMC{meta['PMCID']}"
        if wanted is not None and pmcid not in wanted:
            continue
        if pid in bad:
            counts["flagged_incorrect"] += 1
            continue
        if pmcid not in articles:
            counts["no_abstract"] += 1
            continue
        tally = Counter(votes[pid]).most_common()
        label = tally[0][0] if len(tally) == 1 or tally[0][1] > tally[1][1] else None
        if label is None:
            counts["no_majority"] += 1
        abstract = _norm(articles[pmcid].title + " " + articles[pmcid].text)
        in_abstract = any(_norm(e) in abstract for e in evidence[pid] if len(_norm(e)) >= 10)
        prompts.append(EIPrompt(pid, pmcid, meta["Intervention"].strip(), meta["Comparator"].strip(),
                                meta["Outcome"].strip(), label, tuple(votes[pid]), tuple(evidence[pid]), in_abstract))
    counts["prompts"] = len(prompts)
    counts["prompts_in_abstract"] = sum(p.in_abstract for p in prompts)
    counts["articles"] = len({p.pmcid for p in prompts})
    keep = {p.pmcid for p in prompts}
    return EvidenceInference({k: v for k, v in articles.items() if k in keep}, prompts, dict(counts))


def to_beir(path: Path | str, split: str = "all") -> BeirDataset:
    """ICO prompt -> its article. Query text: "<intervention> versus <comparator>: <outcome>"; corpus: every abstract
    in abstracts.jsonl (2,9xx RCT reports, annotated or not), title + sections."""
    root = Path(path)
    data = load_evidence_inference(root, split)
    everything = load_articles(root)
    corpus = {pmcid: {"title": a.title, "text": "\n".join(f"{lab}: {t}" if lab else t for lab, t in a.sections)}
              for pmcid, a in everything.items()}
    queries = {p.prompt_id: f"{p.intervention} versus {p.comparator}: {p.outcome}" for p in data.prompts}
    qrels = {p.prompt_id: {p.pmcid: 1} for p in data.prompts}
    return BeirDataset(f"evidence-inference-{split}", corpus, queries, qrels, notes=[
        "Evidence Inference as retrieval: query = the ICO prompt, its only relevant document = the article it was "
        "written for; several prompts share an article, and common interventions (placebo) recur across articles."])
