"""Query-only sets: TREC Precision Medicine 2017 topics and the TrialGPT patient queries with trial qrels.

Neither ships document text, so neither can score retrieval on its own:

- TREC PM 2017 (`eval/trec-pm-2017-topics/topics2017.xml`): 30 oncology topics (disease, gene, demographic,
  other). No qrels here (they are on trec.nist.gov, and judge PMIDs of the 2017 MEDLINE baseline and NCT ids).
  Usable as realistic oncology *queries* — latency in `perf`, and qualitative inspection of what OncoLit returns —
  not for nDCG/recall.
- TrialGPT (`eval/trialgpt-queries-qrels/{sigir,trec_2021,trec_2022}`): BEIR-shaped queries.jsonl + qrels/test.tsv
  judging NCT ids, but no corpus.jsonl (the trial corpus is a separate NCBI download). Drop that corpus.jsonl into
  the folder (or a copy of it) and the `retrieval` suite reads it as any BEIR folder; until then it can be used only
  to count how many judged trials a catalog already holds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from eval.datasets.beir import load_qrels, load_queries


@dataclass(frozen=True)
class PMTopic:
    number: str
    disease: str
    gene: str
    demographic: str
    other: str

    @property
    def query(self) -> str:
        """The topic as a search query: disease and gene (demographics rarely appear in abstracts)."""
        return f"{self.disease} {self.gene}".strip()


def load_trec_pm_topics(path: Path | str) -> list[PMTopic]:
    p = Path(path)
    if p.is_dir():
        files = sorted(p.glob("topics*.xml"))
        if not files:
            raise FileNotFoundError(f"no topics*.xml in {p}")
        p = files[0]
    text = p.read_text(encoding="utf-8")
    topics = []
    for block in re.findall(r"<(?:TOP|topic)\b[^>]*>(.*?)</(?:TOP|topic)>", text, re.S):
        topics.append(PMTopic(*(_field(block, name) for name in ("NUM", "disease", "gene", "demographic", "other"))))
    return topics


def _field(block: str, name: str) -> str:
    m = re.search(rf"<{name}>(.*?)</{name}>", block, re.S | re.I)
    return m.group(1).strip() if m else ""


def load_trialgpt(path: Path | str) -> dict[str, tuple[dict[str, str], dict[str, dict[str, int]]]]:
    """{set name: (queries, qrels)} for the folder or one of its sets."""
    root = Path(path)
    if (root / "queries.jsonl").exists():
        sets = [root]
    else:
        sets = sorted(d for d in root.iterdir() if (d / "queries.jsonl").exists())
    return {d.name: (load_queries(d / "queries.jsonl"), load_qrels(d / "qrels", "test")) for d in sets}
