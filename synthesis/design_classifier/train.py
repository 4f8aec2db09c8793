"""Fit the study-design classifier on real labelled abstracts and export it for numpy-only inference.

    python -m synthesis.design_classifier.train --data /work/shared/data --out synthesis/design_classifier/model

Every default below can be overridden as `--name value`. The resolved config, the data counts, the held-out
metrics, the external sanity checks and the weights are written to `--out` (weights.json, metrics.json,
split.json). The model card README.md there is written by hand: update its numbers after retraining.

Labels (why each source may be trusted, and how far):
  rct             Evidence Inference abstracts: the corpus was built from PubMed Central reports of randomised
                  trials. Also PubMedQA records indexed with "Double-Blind Method"/"Single-Blind Method", which
                  NLM assigns for the study's own blinding (not "Randomized Controlled Trials as Topic", which is
                  a topic heading and says nothing about the record's own design).
  preclinical     Hallmarks of Cancer abstracts (laboratory cancer biology), minus those with human-study cues
                  (cohort, trial, case-control, ...), plus PubMedQA records indexed "Animals" without "Humans".
  cohort, case_control, cross_sectional
                  PubMedQA records by the design check tags NLM indexes for the study itself: "Case-Control
                  Studies", "Cross-Sectional Studies", and "Cohort/Prospective/Retrospective/Follow-Up/
                  Longitudinal Studies" for cohort. Weak labels: "Retrospective Studies" also covers chart
                  reviews and case series, and records with no such tag are left unlabelled, not called "other".
The constructed files' publication type "Journal Article" is a placeholder and is never read as a label.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import platform
import re
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from synthesis.design_classifier.model import (
    ANALYSER_VERSION,
    LABELS,
    WEIGHTS_FILE,
    DesignModel,
    analyse,
    document_text,
    tokenise,
)

# -----------------------------------------------------------------------------
# defaults (each overridable as --name value)
_before_defaults = set(globals())
data = "../shared/data"  # root of the shared real data (never copied into the repo)
out = "synthesis/design_classifier/model"  # where weights.json, metrics.json and split.json go
seed = 1337  # one seed for the split and the cross-validation folds
test_fraction = 0.2  # share of the de-duplicated labelled documents held out, stratified by label
train_with_title = False  # PubMedQA titles are questions by selection and HoC has none: titles would teach source
min_df = 2  # a term must occur in 2 training documents: drops typos and per-document identifiers (NCT numbers)
max_features = 30000  # vocabulary cap by corpus frequency; keeps weights.json at a few MB
block_topic_words = True  # drop cancer-topic features (see TOPIC_STEMS): they would teach source, not design
c_grid = "1,3,10,30"  # inverse L2 strengths tried by CV on the training split (at 0.3 RCT probabilities stay <0.6)
cv_folds = 5  # folds for choosing C (macro-F1)
cv_tolerance = 0.01  # take the most regularised C within this of the best CV macro-F1 (a one-standard-error rule)
class_weight = "balanced"  # the observational classes have tens of examples against thousands of RCTs
max_iter = 3000  # lbfgs iterations; converges well before this
float_digits = 6  # significant digits kept in weights.json (probabilities still agree with sklearn to ~1e-6)
n_examples = 12  # held-out predictions stored in metrics.json so tests can check the exported model
# -----------------------------------------------------------------------------
CONFIG_KEYS = [k for k in list(globals()) if k not in _before_defaults and k != "_before_defaults"]

# Sections that are publisher boilerplate, not abstract text (Springer/BMC notes about online material).
DROP_SECTIONS = {"ELECTRONIC SUPPLEMENTARY MATERIAL"}
# Human-study wording that makes a Hallmarks of Cancer abstract something other than a laboratory study.
HUMAN_STUDY_CUES = re.compile(
    r"case[- ]control|cohort|randomi[sz]ed|cross[- ]sectional|odds ratio|hazard ratio|\btrial\b|questionnaire"
    r"|retrospective|prospective", re.I)
# MeSH descriptors that make a PubMedQA record oncology (for the external check): neoplasm headings and the like.
ONCOLOGY_MESH = re.compile(
    r"neoplas|cancer|carcinom|lymphoma|leukemi|melanoma|sarcoma|glioma|blastoma|myeloma|antineoplastic"
    r"|oncolog|metasta|adenoma|mesothelioma|tumor (?!necrosis)", re.I)
# Cancer topic words, matched as word prefixes. Every Hallmarks of Cancer abstract is about cancer and nine in ten
# Evidence Inference trials are not, so these words would teach "cancer => laboratory study" and drag the product's
# oncology records towards preclinical. They name a topic, not a design: no feature may contain them.
TOPIC_STEMS = (
    "cancer", "tumor", "carcino", "adenocarcino", "neoplas", "malignan", "metasta", "oncolog", "lymphom", "leukemi",
    "leukaemi", "melanom", "sarcom", "gliom", "glioblastom", "myelom", "mesotheliom", r"\w*blastoma", "adenoma",
    "nsclc", "sclc", "hcc", "crc", "chemotherap", "radiotherap", "chemoradi", "breast", "lung", "prostat",
    "colorectal", "colon", "rectal", "rectum", "pancrea", "ovar", "gastric", "stomach", "hepatocellular", "liver",
    "esophag", "oesophag", "bladder", "thyroid", "cervix", "cervical", "endometri", "lymph")
BLINDING_MESH = {"Double-Blind Method", "Single-Blind Method"}
COHORT_MESH = {"Cohort Studies", "Prospective Studies", "Retrospective Studies", "Follow-Up Studies",
               "Longitudinal Studies"}


@dataclass(frozen=True)
class Doc:
    """One abstract. `label` is None where no honest label exists (used only for external checks)."""

    doc_id: str  # "pmid:<PMID>" or "pmc:PMC<id>"
    source: str  # evidence_inference | hallmarks_of_cancer | pubmedqa
    label: str | None
    why: str  # the rule that produced the label (or the reason there is none)
    title: str
    abstract: str
    oncology: bool


class DesignFeatures:
    """`analyse` minus every n-gram containing a topic word. Used only in training: the exported vocabulary then
    lacks those n-grams, so inference ignores them without needing this filter. (A class, not a closure, so that
    scikit-learn can send it to worker processes.)"""

    def __init__(self, stems: tuple[str, ...]) -> None:
        self.pattern = re.compile("^(?:" + "|".join(stems) + ")") if stems else None

    def __call__(self, text: str) -> list[str]:
        grams = analyse(text)
        if self.pattern is None:
            return grams
        return [g for g in grams if not any(self.pattern.match(w) for w in g.split(" "))]


# --------------------------------------------------------------------------- loading and labelling

def load_evidence_inference(root: Path) -> list[Doc]:
    """Evidence Inference abstracts (all randomised-trial reports); section headings are dropped."""
    docs = []
    with open(root / "eval" / "evidence-inference" / "abstracts.jsonl", encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            sections = [s["text"] for s in row["abstract_sections"] if s["label"] not in DROP_SECTIONS]
            abstract = " ".join(t.strip() for t in sections if t.strip())
            if not abstract:
                continue
            docs.append(Doc(f"pmc:{row['pmcid']}", "evidence_inference", "rct", "evidence_inference_rct",
                            row["title"], abstract, bool(row["oncology_keyword_match"])))
    return docs


def load_hallmarks(root: Path) -> list[Doc]:
    """Hallmarks of Cancer abstracts: laboratory studies unless they carry a human-study cue."""
    docs = []
    with open(root / "eval" / "hallmarks-of-cancer" / "hoc_abstracts.jsonl", encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            abstract = " ".join(row["sentences"])
            cue = HUMAN_STUDY_CUES.search(abstract)
            label, why = ("preclinical", "hoc_laboratory") if cue is None else (None, "hoc_human_cue")
            docs.append(Doc(f"pmid:{row['pmid']}", "hallmarks_of_cancer", label, why, "", abstract, True))
    return docs


def pubmedqa_label(mesh: set[str]) -> tuple[str | None, str]:
    """Weak design label from the MeSH check tags NLM indexes for the study itself, with the rule that fired."""
    if "Animals" in mesh and "Humans" not in mesh:
        return "preclinical", "mesh_animals_only"
    if "Animals" in mesh:
        return None, "mesh_animals_and_humans"
    if mesh & BLINDING_MESH:
        return "rct", "mesh_blinding"
    case_control, cross_sectional = "Case-Control Studies" in mesh, "Cross-Sectional Studies" in mesh
    if case_control and cross_sectional:
        return None, "mesh_conflicting_designs"
    if case_control:
        return "case_control", "mesh_case_control"
    if cross_sectional:
        return "cross_sectional", "mesh_cross_sectional"
    if mesh & COHORT_MESH:
        return "cohort", "mesh_cohort_family"
    return None, "mesh_no_design_tag"


def _article_fields(article: ET.Element) -> tuple[str, str, str, list[str], list[str]]:
    """PMID, title, abstract text, MeSH descriptor names and publication types of one PubmedArticle."""
    pmid = (article.findtext(".//MedlineCitation/PMID") or "").strip()
    title = "".join(article.find(".//ArticleTitle").itertext()).strip() if article.find(".//ArticleTitle") is not None else ""
    if title.startswith("[Not Available]"):
        title = ""
    abstract = " ".join("".join(a.itertext()).strip() for a in article.findall(".//Abstract/AbstractText"))
    mesh = [d.text or "" for d in article.findall(".//MeshHeading/DescriptorName")]
    types = [p.text or "" for p in article.findall(".//PublicationType")]
    return pmid, title, abstract, mesh, types


def load_pubmedqa(root: Path) -> list[Doc]:
    """PubMedQA records from the constructed update file: real title, full abstract and MeSH (not the pub type)."""
    path = root / "pubmed" / "constructed" / "pubmedqa-dev-0001.xml.gz"
    docs = []
    with gzip.open(path) as fh:
        for article in ET.parse(fh).getroot().iter("PubmedArticle"):
            pmid, title, abstract, mesh, _placeholder_types = _article_fields(article)
            label, why = pubmedqa_label(set(mesh))
            oncology = any(ONCOLOGY_MESH.search(m) for m in mesh)
            docs.append(Doc(f"pmid:{pmid}", "pubmedqa", label, why, title, abstract, oncology))
    return docs


def load_corpus(root: Path) -> list[Doc]:
    """All three sources, in a fixed order."""
    return load_evidence_inference(root) + load_hallmarks(root) + load_pubmedqa(root)


def fingerprints(doc: Doc) -> tuple[str, str]:
    """Normalised-text keys: the whole abstract and its first 30 words (catches re-formatted near-copies)."""
    words = tokenise(doc.abstract)
    return (hashlib.sha1(" ".join(words).encode()).hexdigest(),
            hashlib.sha1(" ".join(words[:30]).encode()).hexdigest())


def deduplicate(docs: list[Doc]) -> tuple[list[Doc], dict[str, int]]:
    """Collapse documents sharing a PMID or a normalised text; drop every copy where the copies' labels disagree.

    Run before splitting so that no abstract can sit on both sides of it.
    """
    groups: dict[str, int] = {}  # key -> group number
    parent: list[int] = []

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, doc in enumerate(docs):
        parent.append(i)
        for key in (doc.doc_id, *fingerprints(doc)):
            if key in groups:
                parent[find(i)] = find(groups[key])
            else:
                groups[key] = i
    members: dict[int, list[int]] = {}
    for i in range(len(docs)):
        members.setdefault(find(i), []).append(i)
    kept, stats = [], Counter()
    for group in members.values():
        labels = {docs[i].label for i in group}
        if len(group) > 1:
            stats["duplicate_groups"] += 1
            stats["duplicates_removed"] += len(group) - 1
        if len(labels) > 1:
            stats["conflict_groups_dropped"] += 1
            stats["conflict_docs_dropped"] += len(group)
            continue
        kept.append(docs[min(group)])
    return kept, dict(stats)


def load_real_pubmed(root: Path) -> list[dict[str, Any]]:
    """Real NLM records (efetch XML and MEDLINE text) with their real publication types and MeSH."""
    records = []
    for path in sorted((root / "pubmed" / "real").rglob("*.xml")):
        try:
            tree = ET.parse(path)
        except ET.ParseError:
            continue
        for article in tree.getroot().iter("PubmedArticle"):
            pmid, title, abstract, mesh, types = _article_fields(article)
            records.append({"pmid": pmid, "file": str(path.relative_to(root)), "title": title,
                            "abstract": abstract, "mesh": mesh, "publication_types": types})
    for path in sorted((root / "pubmed" / "real").rglob("*.txt")):
        for block in path.read_text(encoding="utf-8", errors="replace").split("\n\n"):
            fields: dict[str, list[str]] = {}
            key = None
            for line in block.splitlines():
                if len(line) > 6 and line[4:6] == "- ":
                    key = line[:4].strip()
                    fields.setdefault(key, []).append(line[6:].strip())
                elif key and line.startswith("      "):
                    fields[key][-1] += " " + line.strip()
            if "PMID" in fields:
                records.append({"pmid": fields["PMID"][0], "file": str(path.relative_to(root)),
                                "title": " ".join(fields.get("TI", [])), "abstract": " ".join(fields.get("AB", [])),
                                "mesh": [m.split("/")[0].lstrip("*") for m in fields.get("MH", [])],
                                "publication_types": fields.get("PT", [])})
    return records


# --------------------------------------------------------------------------- evaluation helpers

def expected_design(record: dict[str, Any]) -> str | None:
    """What a real NLM record's own indexing says its design is, where it says anything: publication types first,
    then Animals-without-Humans for laboratory work. "observational" covers our three observational labels."""
    types, mesh = set(record["publication_types"]), set(record["mesh"])
    if "Randomized Controlled Trial" in types:
        return "rct"
    if "Observational Study" in types:
        return "observational"
    if "Animals" in mesh and "Humans" not in mesh:
        return "preclinical"
    return None


def evaluate(labels: list[str], y_true: list[str], proba: np.ndarray) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class P/R/F1, confusion matrix and RCT-vs-rest AUROC for one prediction set."""
    from sklearn.metrics import (
        accuracy_score,
        confusion_matrix,
        f1_score,
        precision_recall_fscore_support,
        roc_auc_score,
    )

    y_pred = [labels[i] for i in proba.argmax(axis=1)]
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    is_rct = np.array([y == "rct" for y in y_true])
    # The hard, useful question: trial or observational human study (RCT vs preclinical is easy).
    human = np.array([y in ("rct", "cohort", "case_control", "cross_sectional") for y in y_true])
    return {
        "n": len(y_true),
        "accuracy": round(float(accuracy_score(y_true, y_pred)), 4),
        "macro_f1": round(float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)), 4),
        "rct_auroc": round(float(roc_auc_score(is_rct, proba[:, labels.index("rct")])), 4)
        if 0 < is_rct.sum() < len(is_rct) else None,
        "rct_auroc_vs_human_observational": round(float(roc_auc_score(
            is_rct[human], proba[human, labels.index("rct")])), 4) if 0 < is_rct.sum() < human.sum() else None,
        "per_class": {lab: {"precision": round(float(p[i]), 4), "recall": round(float(r[i]), 4),
                            "f1": round(float(f[i]), 4), "support": int(s[i])} for i, lab in enumerate(labels)},
        "confusion": {"rows_true_cols_pred": labels,
                      "matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist()},
    }


def round_sig(values: np.ndarray, digits: int) -> list[float]:
    """Floats cut to `digits` significant digits, so the JSON stays small."""
    return [float(f"{v:.{digits}g}") for v in np.asarray(values).ravel()]


def git_commit() -> str | None:
    """The checkout's commit, stamped into the metrics (None outside a git checkout)."""
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


# --------------------------------------------------------------------------- the run

def main(argv: list[str] | None = None) -> dict[str, Any]:
    from sklearn import __version__ as sklearn_version
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict, train_test_split
    from sklearn.pipeline import make_pipeline

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for key in CONFIG_KEYS:
        default = globals()[key]
        kind = (lambda s: s.lower() in ("1", "true", "yes")) if isinstance(default, bool) else type(default)
        parser.add_argument(f"--{key.replace('_', '-')}", dest=key, type=kind, default=default)
    config = vars(parser.parse_args(argv))
    started = time.time()
    root, out_dir = Path(config["data"]), Path(config["out"])
    out_dir.mkdir(parents=True, exist_ok=True)

    # ---- data: load, dedupe, separate the external oncology set, split by document
    corpus = load_corpus(root)
    raw_counts = Counter((d.source, d.why) for d in corpus)
    docs, dedupe_stats = deduplicate(corpus)
    # PubMedQA oncology records never enter training: they are the external oncology check.
    external = [d for d in docs if d.source == "pubmedqa" and d.oncology]
    pool = sorted((d for d in docs if d.label is not None and not (d.source == "pubmedqa" and d.oncology)),
                  key=lambda d: d.doc_id)
    train_docs, test_docs = train_test_split(pool, test_size=config["test_fraction"],
                                             random_state=config["seed"], stratify=[d.label for d in pool])
    labels = [lab for lab in LABELS if any(d.label == lab for d in pool)]

    def texts(ds: list[Doc], with_title: bool) -> list[str]:
        return [document_text(d.title if with_title else "", d.abstract) for d in ds]

    x_train, y_train = texts(train_docs, config["train_with_title"]), [d.label for d in train_docs]

    features = DesignFeatures(TOPIC_STEMS if config["block_topic_words"] else ())

    def pipeline(c: float):
        return make_pipeline(
            TfidfVectorizer(analyzer=features, sublinear_tf=True, min_df=config["min_df"],
                            max_features=config["max_features"], dtype=np.float64),
            LogisticRegression(C=c, class_weight=config["class_weight"] or None, max_iter=config["max_iter"]))

    # ---- choose C by cross-validation on the training split (the test split is not looked at)
    folds = StratifiedKFold(config["cv_folds"], shuffle=True, random_state=config["seed"])
    cv = {}
    for c in (float(v) for v in config["c_grid"].split(",")):
        pred = cross_val_predict(pipeline(c), x_train, y_train, cv=folds, n_jobs=2)
        cv[str(c)] = round(float(f1_score(y_train, pred, average="macro")), 4)
        print(f"cv C={c:g}: macro-F1 {cv[str(c)]}", flush=True)
    best_c = min(float(k) for k, v in cv.items() if v >= max(cv.values()) - config["cv_tolerance"])
    model = pipeline(best_c).fit(x_train, y_train)
    vectoriser, classifier = model.steps[0][1], model.steps[1][1]
    assert list(classifier.classes_) == sorted(labels)

    # ---- export to JSON (label order = classifier.classes_) and prove numpy inference reproduces sklearn
    weights = {
        "format": "oncolit-design-classifier/tfidf-logreg",
        "analyser_version": ANALYSER_VERSION,
        "labels": list(classifier.classes_),
        "vocabulary": list(vectoriser.get_feature_names_out()),
        "idf": round_sig(vectoriser.idf_, config["float_digits"]),
        "coef": [round_sig(row, config["float_digits"]) for row in classifier.coef_],
        "intercept": round_sig(classifier.intercept_, config["float_digits"]),
    }
    (out_dir / WEIGHTS_FILE).write_text(json.dumps(weights, separators=(",", ":")), encoding="utf-8")
    exported = DesignModel.load(out_dir)
    order = [list(classifier.classes_).index(lab) for lab in exported.labels]

    def predict_both(ds: list[Doc], with_title: bool) -> tuple[np.ndarray, np.ndarray]:
        xs = texts(ds, with_title)
        return model.predict_proba(xs)[:, order], np.array([exported.probabilities(x) for x in xs])

    metrics_held_out, export_check, y_test = {}, {}, [d.label for d in test_docs]
    for mode, with_title in (("title_and_abstract", True), ("abstract_only", False)):
        sk, np_proba = predict_both(test_docs, with_title)  # (n_test, n_labels) each
        export_check[mode] = {"max_abs_probability_diff": float(np.abs(sk - np_proba).max()),
                              "argmax_agreement": float((sk.argmax(1) == np_proba.argmax(1)).mean())}
        predicted = [exported.labels[i] for i in np_proba.argmax(1)]
        result = evaluate(exported.labels, y_test, np_proba)
        result["accuracy_by_source"] = {
            source: {"n": len(hits), "accuracy": round(float(np.mean(hits)), 4)}
            for source in sorted({d.source for d in test_docs})
            for hits in [[p == d.label for p, d in zip(predicted, test_docs) if d.source == source]]}
        onc = [p == "rct" for p, d in zip(predicted, test_docs) if d.source == "evidence_inference" and d.oncology]
        result["evidence_inference_oncology_rct_recall"] = {"n": len(onc), "recall": round(float(np.mean(onc)), 4)}
        metrics_held_out[mode] = result
        if mode == "title_and_abstract":
            sk_primary = sk
    # A few held-out documents with sklearn's own probabilities: tests re-read them from the shared data and
    # check that the committed weights and this analyser still give the same numbers.
    by_hash = sorted(range(len(test_docs)), key=lambda i: hashlib.sha1(test_docs[i].doc_id.encode()).hexdigest())
    per_label = max(1, config["n_examples"] // len(labels))
    examples = [{"doc_id": test_docs[i].doc_id, "source": test_docs[i].source, "label": test_docs[i].label,
                 "sklearn_probabilities": {lab: float(p) for lab, p in zip(exported.labels, sk_primary[i])}}
                for lab in labels for i in [j for j in by_hash if test_docs[j].label == lab][:per_label]]

    # ---- what the model learned: the strongest terms per class (artefacts would show up here)
    vocab = weights["vocabulary"]
    top_features = exported.strongest_terms(30)

    # ---- external sanity checks: unseen PubMedQA oncology records, real NLM records with real publication types
    ext_rows, agree = [], Counter()
    for d in external:
        pred = exported.predict(d.title, d.abstract, n_terms=5)
        ext_rows.append({"pmid": d.doc_id.split(":", 1)[1], "weak_label": d.label, "why": d.why,
                         "predicted": pred.label, "rct_probability": round(pred.rct_probability, 4),
                         "top_terms": pred.top_terms})
        if d.label is not None:
            agree[(d.label, pred.label)] += 1
    weak = [r for r in ext_rows if r["weak_label"] is not None]
    observational = {"cohort", "case_control", "cross_sectional"}
    external_pubmedqa = {
        "n": len(ext_rows),
        "predicted_distribution": dict(Counter(r["predicted"] for r in ext_rows)),
        "n_with_weak_label": len(weak),
        "weak_label_exact_agreement": round(sum(r["weak_label"] == r["predicted"] for r in weak) / max(1, len(weak)), 4),
        "weak_label_coarse_agreement": round(sum(
            (r["weak_label"] in observational and r["predicted"] in observational) or r["weak_label"] == r["predicted"]
            for r in weak) / max(1, len(weak)), 4),
        "weak_label_pairs": {f"{a}->{b}": n for (a, b), n in sorted(agree.items())},
        "records": ext_rows,
    }
    real_rows = []
    for rec in load_real_pubmed(root):
        if not rec["abstract"]:
            continue
        pred = exported.predict(rec["title"], rec["abstract"], n_terms=5)
        real_rows.append({"pmid": rec["pmid"], "file": rec["file"], "expected": expected_design(rec),
                          "publication_types": rec["publication_types"],
                          "design_mesh": sorted(set(rec["mesh"]) & (COHORT_MESH | BLINDING_MESH | {
                              "Case-Control Studies", "Cross-Sectional Studies", "Animals", "Humans"})),
                          "predicted": pred.label, "probabilities": {k: round(v, 4) for k, v in pred.probabilities.items()},
                          "top_terms": pred.top_terms})

    metrics = {
        "config": config | {"chosen_C": best_c, "topic_stems": list(TOPIC_STEMS) if config["block_topic_words"] else []},
        "versions": {"python": platform.python_version(), "numpy": np.__version__, "scikit_learn": sklearn_version},
        "git_commit": git_commit(),
        "data": {
            "raw_by_source_and_rule": {f"{s}/{w}": n for (s, w), n in sorted(raw_counts.items())},
            "deduplication": dedupe_stats,
            "external_pubmedqa_oncology_excluded_from_training": len(external),
            "labelled_pool": dict(Counter(d.label for d in pool)),
            "train": dict(Counter(d.label for d in train_docs)),
            "test": dict(Counter(d.label for d in test_docs)),
            "test_by_source": dict(Counter(d.source for d in test_docs)),
        },
        "cv_macro_f1_by_C": cv,
        "held_out": metrics_held_out,
        "primary_mode": "title_and_abstract",
        "export_check": export_check,
        "vocabulary_size": len(vocab),
        "top_features": top_features,
        "held_out_examples": examples,
        "external": {"pubmedqa_oncology": external_pubmedqa, "real_pubmed": {
            "n": len(real_rows),
            "n_with_expected_design": sum(r["expected"] is not None for r in real_rows),
            "n_agreeing": sum(r["expected"] == r["predicted"] or (r["expected"] == "observational" and r["predicted"]
                                                                   in observational) for r in real_rows),
            "records": real_rows}},
        "train_seconds": round(time.time() - started, 1),
    }
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=1), encoding="utf-8")
    (out_dir / "split.json").write_text(json.dumps({"train": sorted(d.doc_id for d in train_docs),
                                                    "test": sorted(d.doc_id for d in test_docs)}), encoding="utf-8")
    primary = metrics_held_out["title_and_abstract"]
    print(json.dumps({k: primary[k] for k in ("n", "accuracy", "macro_f1", "rct_auroc")}), flush=True)
    print(f"wrote {out_dir} in {metrics['train_seconds']} s", flush=True)
    return metrics


if __name__ == "__main__":
    main(sys.argv[1:])
