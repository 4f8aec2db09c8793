"""A topical retrieval benchmark built from the shared labels: questions with several relevant papers, the
searches clinicians and librarians make, judged without ever reading the query's own abstract.

    oncolit eval build-topical --shared ../shared/data --out DIR     # writes a BEIR folder
    oncolit eval retrieval --dataset DIR

The known-item sets (PubMedQA question -> its abstract, ICO prompt -> its article) measure whether search finds the
paper a query was written from; they are easy (nDCG@10 0.97-0.99) and say little about a topical question. Here
each query comes from one source article, that article is *excluded* from its ranking (`metadata.exclude` in
queries.jsonl; the retrieval suite drops excluded documents before scoring), and relevance comes from other
articles' labels:

- **ei-ico** — an Evidence Inference prompt "I versus C: O" of article A. Relevant: every other article B with a
  prompt whose intervention and whose outcome both share at least half their content words with A's (Jaccard
  >= 0.5 over `index.sparse` tokens minus dose words, numbers, arm words like "group", "placebo", "control").
  The judgement reads only the annotators' prompts, never an abstract. One query per (article, intervention
  key, outcome key); prompts the dataset flags "Incorrect" are dropped. Grade 1.
- **pubmedqa-mesh** — a PubMedQA question of record A. Relevant: every other PubMedQA record B that shares at
  least two *specific* MeSH descriptors with A: descriptors in at most 12 of the 500 records, not check tags
  (`CHECK_TAGS`: Humans, sexes, ages) and not statistics/method/design/place headings (`GENERIC_MESH`).
  Grade 2 when three or more are shared, else 1. MeSH is what NLM indexers assigned; the judgement never reads
  A's or B's text, and the corpus carries no MeSH, so search cannot match on it.

Corpus: every shared abstract — 2,9xx Evidence Inference RCT reports (title + sections), the 500 PubMedQA records
(title + the whole abstract, conclusion included, as PubMed shows them) and the 1,852 Hallmarks of Cancer abstracts
(no titles), about 5,300 documents; HoC documents whose PMID is already a PubMedQA record are skipped.

Limits, said plainly: the judgements are derived, not expert-made. ei-ico relevance is lexical over the prompts
(paraphrases such as "BP" vs "blood pressure" are missed, so some relevant papers count as wrong) and most
queries have one or two relevant papers; pubmedqa-mesh is topical but coarse (two shared descriptors can be
"Rectal Neoplasms" + "Neoplasm Recurrence, Local", a fair topic, or "Warfarin" + "Anticoagulants" for a trauma
question, a loose one). Unjudged relevant papers exist in both. Use the numbers to compare systems on one
build, not as absolute quality. Evidence Inference articles that take part in any judgement are listed by
`judged_articles` so that training (the reranker) can leave them out; PubMedQA is never used for training.

The build is deterministic: same shared data in, byte-identical folder out.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from eval.datasets.beir import BeirDataset
from eval.datasets.evidence_inference import flagged_incorrect, load_articles
from eval.datasets.hoc import load_hoc
from eval.datasets.pubmedqa import load_pubmedqa

NAME = "oncolit-topical"
JACCARD = 0.5
MESH_MAX_DF = 12
MESH_MIN_SHARED = 2
# MeSH headings about how a study was done or where, not what it is about.
GENERIC_MESH = re.compile(
    r"(Studies|Analysis|Models|Statistics|Statistical|Factors|Probability|Confidence Intervals|Questionnaires|"
    r"Surveys|Data|Outcome Assessment|Reference Values|Algorithms|Incidence|Retrospective|Prospective|Registries|"
    r"Databases|Follow-Up|Time Factors|Chi-Square|Regression|Odds Ratio|Risk|Sensitivity|Predictive Value|"
    r"Reproducibility|Observer Variation|Patient Selection|Decision Making|Practice Patterns|Cost|United States|"
    r"England|Canada|Japan|Germany|France|Italy|Israel|China|Netherlands|Australia|Europe|Sweden|Turkey|Spain)")
# MeSH check tags: on most records, never a topic (also excluded by MESH_MAX_DF on a set the size of PubMedQA's).
CHECK_TAGS = frozenset({"Humans", "Animals", "Male", "Female", "Adult", "Aged", "Aged, 80 and over", "Middle Aged",
                        "Young Adult", "Adolescent", "Child", "Child, Preschool", "Infant", "Infant, Newborn",
                        "Pregnancy", "Mice", "Rats"})
ARM_WORDS = frozenset("""
group groups arm arms patients subjects participants mg kg ml dose doses dosing daily day days week weeks treatment
treated therapy plus alone versus vs combined combination usual care standard control controls intervention
placebo conventional regimen received receiving administration
""".split())


@dataclass(frozen=True)
class TopicalQuery:
    query_id: str
    text: str
    family: str  # ei-ico | pubmedqa-mesh
    source: str  # the document the query was written from: excluded from its ranking
    relevant: dict[str, int]


def content_key(text: str) -> frozenset[str]:
    """The words that say what an intervention or outcome is: tokens minus arm/dose words and numbers."""
    from ingest.records.tokens import tokenize

    text = re.sub(r"\([^)]*\)", " ", text)  # "(1.2 mg)", "(Group I)"
    return frozenset(t for t in tokenize(text)
                     if t not in ARM_WORDS and len(t) > 2 and not re.search(r"\d", t))


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 0.0


def _ei_queries(root: Path, corpus: dict[str, dict[str, str]]) -> list[TopicalQuery]:
    import csv

    bad = flagged_incorrect(root)
    prompts = []
    with (root / "prompts_merged.csv").open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            pmcid = f"PMC{row['PMCID'].strip()}"
            if row["PromptID"] in bad or pmcid not in corpus:
                continue
            ikey, okey = content_key(row["Intervention"]), content_key(row["Outcome"])
            if ikey and okey:
                prompts.append((int(row["PromptID"]), pmcid, ikey, okey, row))
    prompts.sort(key=lambda p: p[0])
    by_word: dict[str, list[int]] = defaultdict(list)
    for i, p in enumerate(prompts):
        for word in p[2]:
            by_word[word].append(i)
    out, seen = [], set()
    for pid, pmcid, ikey, okey, row in prompts:
        if (pmcid, ikey, okey) in seen:
            continue
        seen.add((pmcid, ikey, okey))
        candidates = {j for word in ikey for j in by_word[word]}
        relevant = sorted({prompts[j][1] for j in candidates
                           if prompts[j][1] != pmcid and jaccard(ikey, prompts[j][2]) >= JACCARD
                           and jaccard(okey, prompts[j][3]) >= JACCARD})
        if relevant:
            text = f"{row['Intervention'].strip()} versus {row['Comparator'].strip()}: {row['Outcome'].strip()}"
            out.append(TopicalQuery(f"ei-{pid}", text, "ei-ico", pmcid, dict.fromkeys(relevant, 1)))
    return out


def specific_mesh(meshes: dict[str, tuple[str, ...]]) -> dict[str, frozenset[str]]:
    """Each record's descriptors that can define a topic: rare in the set (df <= MESH_MAX_DF) and not generic."""
    df = Counter(m for ms in meshes.values() for m in set(ms))
    return {pmid: frozenset(m for m in ms if df[m] <= MESH_MAX_DF and m not in CHECK_TAGS
                            and not GENERIC_MESH.search(m))
            for pmid, ms in meshes.items()}


def _pubmedqa_queries(items: Iterable[tuple[str, str, tuple[str, ...]]]) -> list[TopicalQuery]:
    rows = list(items)
    topics = specific_mesh({pmid: meshes for pmid, _, meshes in rows})
    out = []
    for pmid, question, _ in rows:
        relevant = {}
        for other, _, _ in rows:
            shared = len(topics[pmid] & topics[other])
            if other != pmid and shared >= MESH_MIN_SHARED:
                relevant[other] = 2 if shared >= MESH_MIN_SHARED + 1 else 1
        if relevant:
            out.append(TopicalQuery(f"pqa-{pmid}", question, "pubmedqa-mesh", pmid, dict(sorted(relevant.items()))))
    return out


@dataclass
class TopicalBenchmark:
    corpus: dict[str, dict[str, str]]
    queries: list[TopicalQuery]

    def as_beir(self) -> BeirDataset:
        return BeirDataset(NAME, self.corpus, {q.query_id: q.text for q in self.queries},
                           {q.query_id: q.relevant for q in self.queries},
                           query_meta={q.query_id: {"family": q.family, "exclude": [q.source]} for q in self.queries},
                           notes=["topical benchmark: each query's source document is excluded from its ranking; "
                                  "relevance from other documents' labels (eval/datasets/topical.py)"])

    def judged_articles(self) -> set[str]:
        """Every Evidence Inference article a query comes from or is judged relevant: training leaves them out."""
        out = set()
        for q in self.queries:
            if q.family == "ei-ico":
                out.add(q.source)
                out.update(q.relevant)
        return out


def build_topical(shared: Path | str) -> TopicalBenchmark:
    """The benchmark from a shared data root (the folder holding eval/ and pubmed/)."""
    root = Path(shared)
    ei_root, pqa_root, hoc_root = root / "eval" / "evidence-inference", root / "eval" / "pubmedqa-dev", \
        root / "eval" / "hallmarks-of-cancer"
    for folder in (ei_root, pqa_root, hoc_root):
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder} is missing: --shared must be the shared data root (holding eval/)")
    corpus: dict[str, dict[str, str]] = {}
    for pmcid, art in sorted(load_articles(ei_root).items()):
        corpus[pmcid] = {"title": art.title,
                         "text": "\n".join(f"{lab}: {t}" if lab else t for lab, t in art.sections)}
    pqa = load_pubmedqa(pqa_root)
    for it in pqa:
        text = it.context_text + (f"\nCONCLUSIONS: {it.long_answer}" if it.long_answer else "")
        corpus[it.pmid] = {"title": it.question, "text": text}
    for doc in load_hoc(hoc_root):
        corpus.setdefault(doc.pmid, {"title": "", "text": doc.text})
    queries = _ei_queries(ei_root, corpus) + _pubmedqa_queries((it.pmid, it.question, it.meshes) for it in pqa)
    return TopicalBenchmark(corpus, queries)


def write_topical(bench: TopicalBenchmark, folder: Path | str) -> Path:
    """The BEIR folder, plus README.md (how it was built) and stats.json."""
    from eval.datasets.beir import write_beir

    out = write_beir(bench.as_beir(), Path(folder))
    families = Counter(q.family for q in bench.queries)
    stats = {"documents": len(bench.corpus), "queries": len(bench.queries), "families": dict(sorted(families.items())),
             "relevant_per_query": {f: round(sum(len(q.relevant) for q in bench.queries if q.family == f) / n, 2)
                                    for f, n in sorted(families.items())},
             "judged_ei_articles": len(bench.judged_articles())}
    (out / "stats.json").write_text(json.dumps(stats, indent=2) + "\n", encoding="utf-8")
    (out / "README.md").write_text(f"# {NAME}\n\nBuilt by `oncolit eval build-topical` from the shared data; "
                                   "how and its limits: eval/datasets/topical.py.\n\n```\n"
                                   + json.dumps(stats, indent=2) + "\n```\n", encoding="utf-8")
    return out
