"""grading — study design against labelled abstracts, and evidence-level agreement where a gold level follows.

    oncolit eval grading --dataset ../shared/data            # everything below
    oncolit eval grading --dataset ../shared/data/eval/evidence-inference   (or hallmarks-of-cancer, pubmedqa-dev)
    oncolit eval grading --dataset ../shared/data/pubmed/real               # real NLM publication types only

Gold labels (the design classifier's own labelling rules, imported from its train.py so they cannot drift):
  rct              every Evidence Inference abstract (a corpus of RCT reports); PubMedQA records with blinding MeSH
  preclinical      Hallmarks of Cancer abstracts without human-study wording; PubMedQA "Animals" without "Humans"
  cohort / case_control / cross_sectional   PubMedQA MeSH check tags (weak labels)
  real publication types (pubmed/real): "Randomized Controlled Trial" -> rct, "Observational Study" ->
  observational, MeSH Animals-only -> preclinical; records whose types name no design have no gold.

Three systems are scored on the same documents:
  classifier  `predict_design(title, abstract)` — the committed model. LEAKAGE CONTROL: it was fitted on the
              documents listed under "train" in synthesis/design_classifier/model/split.json; those are removed
              here, so it is scored on its held-out test split plus documents never used in training (PubMedQA
              oncology records kept out as an external check, unlabelled-by-training ones).
  rules       `classify_design(text=title + abstract)` — no publication types (the constructed files carry only
              a placeholder) and no MeSH (the PubMedQA gold labels *are* MeSH tags: passing them would score the
              labelling rule against itself).
  product     `synthesis.readers.decide_design(article)` — what grading uses (publication types > rules >
              classifier), on records built without publication types or MeSH, for the same reason.
Predicted labels outside the five classifier classes count as `other` (always wrong against these gold labels).

Evidence level: `synthesis.grading.grade(article)` base level against the rung the gold design implies
(rct -> 1b, or 2a for a phase II-or-earlier randomised trial; cohort 3a; case_control 3b; cross_sectional 4a;
preclinical 5). These corpora carry no graded levels of their own, so this checks the design-to-level path, not
the modifiers; the distribution of final levels is reported alongside.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eval import metrics as M
from eval.datasets import detect, shared_root
from eval.report import SuiteResult
from eval.suites.common import Phases, RunOptions

CLASSES = ("rct", "preclinical", "cohort", "case_control", "cross_sectional")
OTHER = "other"
GOLD_LEVELS = {"rct": {"1b", "2a"}, "preclinical": {"5"}, "cohort": {"3a"}, "case_control": {"3b"},
               "cross_sectional": {"4a"}}
OBSERVATIONAL = {"cohort", "case_control", "cross_sectional"}


@dataclass(frozen=True)
class DesignDoc:
    doc_id: str  # "pmc:PMC…" / "pmid:…", as in split.json
    source: str
    label: str | None
    title: str
    abstract: str
    oncology: bool = False


def split_file() -> Path:
    from synthesis.design_classifier.model import MODEL_DIR
    return MODEL_DIR / "split.json"


def load_docs(path: Path) -> tuple[list[DesignDoc], list[dict[str, Any]], list[str]]:
    """(labelled documents, real-NLM records, notes) for the dataset path."""
    from synthesis.design_classifier import train

    kind = detect(path)
    root = shared_root(path)
    docs: list[DesignDoc] = []
    real: list[dict[str, Any]] = []
    notes: list[str] = []

    def from_train(items: list[Any]) -> list[DesignDoc]:
        return [DesignDoc(d.doc_id, d.source, d.label, d.title, d.abstract, d.oncology) for d in items]

    if kind == "shared-root":
        docs = from_train(train.load_evidence_inference(path) + train.load_hallmarks(path) + train.load_pubmedqa(path))
        real = train.load_real_pubmed(path)
    elif kind == "evidence-inference":
        docs = _evidence_inference(path)
    elif kind == "hallmarks-of-cancer":
        docs = _hallmarks(path)
    elif kind == "pubmedqa":
        if root is None:
            raise ValueError("PubMedQA design labels come from the records' MeSH in pubmed/constructed; give a path "
                             "inside the shared data folder")
        docs = from_train(train.load_pubmedqa(root))
    elif kind == "pubmed-xml":
        real = _real_records(path)
    else:
        raise ValueError(f"grading cannot use {path} ({kind}); give the shared data folder, evidence-inference, "
                         "hallmarks-of-cancer, pubmedqa-dev or a folder of real PubMed XML")
    return docs, real, notes


def _evidence_inference(path: Path) -> list[DesignDoc]:
    from eval.datasets.evidence_inference import load_articles

    return [DesignDoc(f"pmc:{a.pmcid}", "evidence_inference", "rct", a.title, a.text, a.oncology)
            for a in load_articles(path).values()]


def _hallmarks(path: Path) -> list[DesignDoc]:
    from eval.datasets.hoc import load_hoc
    from synthesis.design_classifier.train import HUMAN_STUDY_CUES

    return [DesignDoc(f"pmid:{d.pmid}", "hallmarks_of_cancer",
                      None if HUMAN_STUDY_CUES.search(d.text) else "preclinical", "", d.text, True)
            for d in load_hoc(path)]


def _real_records(path: Path) -> list[dict[str, Any]]:
    from eval.datasets.pubmed import load_articles

    return [{"pmid": a.pmid, "file": "", "title": a.title, "abstract": " ".join(s.text for s in a.abstract),
             "mesh": [h.descriptor for h in a.mesh_headings], "publication_types": list(a.publication_types)}
            for a in load_articles(path)]


def _class(label: str) -> str:
    return label if label in CLASSES else OTHER


def _record(title: str, abstract: str) -> Any:
    from eval.datasets.records import article
    return article("0", title, abstract)


def score(gold: list[str], predicted: list[str], rct_scores: list[float] | None = None) -> dict[str, Any]:
    labels = [c for c in CLASSES if c in gold or c in predicted]
    out: dict[str, Any] = {"n": len(gold), "accuracy": M.accuracy(gold, predicted),
                           "macro_f1": M.macro_f1(gold, predicted, labels),
                           "per_class": M.per_class(gold, predicted, labels),
                           "predicted_other": sum(p == OTHER for p in predicted)}
    y = [g == "rct" for g in gold]
    scores = rct_scores if rct_scores is not None else [1.0 if p == "rct" else 0.0 for p in predicted]
    out["rct_auroc"] = M.auroc(y, scores)
    out["rct_vs_not"] = M.binary_at_threshold(y, scores, 0.5)
    return out


def run(options: RunOptions) -> SuiteResult:
    from synthesis.design_classifier import predict_design
    from synthesis.grading import grade
    from synthesis.readers import decide_design
    from synthesis.rules.design import classify_design

    phases = Phases()
    with phases("load"):
        docs, real, notes = load_docs(options.dataset)
        split = json.loads(split_file().read_text())
        train_ids = set(split["train"])
        test_ids = set(split["test"])
        labelled = [d for d in docs if d.label is not None]
        unseen = [d for d in labelled if d.doc_id not in train_ids]
        if options.limit is not None:
            unseen = _stratified(unseen, options.limit)
            real = real[: options.limit]
    excluded = len(labelled) - len([d for d in labelled if d.doc_id not in train_ids])
    notes.append(f"leakage control: {excluded} labelled documents the classifier was trained on "
                 f"(split.json 'train') are excluded; {len(unseen)} scored, of which "
                 f"{sum(d.doc_id in test_ids for d in unseen)} from its held-out test split and "
                 f"{sum(d.doc_id not in test_ids for d in unseen)} never in its training pool")
    gold = [d.label for d in unseen]
    pred_cls, p_rct, pred_rules, pred_product, levels_ok, levels, items = [], [], [], [], [], Counter(), []
    with phases("classify"):
        for d in unseen:
            text = " ".join(p for p in (d.title, d.abstract) if p)
            pred = predict_design(d.title, d.abstract)
            rules = classify_design((), text, ())
            record = _record(d.title, d.abstract)
            decision = decide_design(record)
            g = grade(record)
            pred_cls.append(pred.label)
            p_rct.append(pred.rct_probability)
            pred_rules.append(_class(rules.label))
            pred_product.append(_class(decision.label))
            ok = g.base_level in GOLD_LEVELS[d.label]  # type: ignore[index]
            levels_ok.append(ok)
            levels[g.level] += 1
            items.append({"doc_id": d.doc_id, "source": d.source, "gold": d.label,
                          "held_out_split": d.doc_id in test_ids,
                          "classifier": pred.label, "classifier_rct_probability": round(pred.rct_probability, 4),
                          "rules": rules.label, "product": decision.label, "product_source": decision.source,
                          "base_level": g.base_level, "level": g.level, "level_agrees": ok})
    results: dict[str, Any] = {}
    tables: list[dict[str, Any]] = []
    plots: dict[str, dict[str, Any]] = {"confusion": {}, "pr": {}, "bars": {}}
    if unseen:
        results["classifier"] = score(gold, pred_cls, p_rct)  # type: ignore[arg-type]
        results["rules_text_only"] = score(gold, pred_rules)  # type: ignore[arg-type]
        results["product_decide_design"] = score(gold, pred_product)  # type: ignore[arg-type]
        held = [i for i, d in enumerate(unseen) if d.doc_id in test_ids]
        if held and len(held) < len(unseen):
            results["classifier_held_out_split_only"] = score(
                [gold[i] for i in held], [pred_cls[i] for i in held], [p_rct[i] for i in held])  # type: ignore[misc]
        by_source = {}
        for source in sorted({d.source for d in unseen}):
            idx = [i for i, d in enumerate(unseen) if d.source == source]
            by_source[source] = {"n": len(idx),
                                 "classifier_accuracy": M.accuracy([gold[i] for i in idx], [pred_cls[i] for i in idx]),
                                 "rules_accuracy": M.accuracy([gold[i] for i in idx], [pred_rules[i] for i in idx]),
                                 "product_accuracy": M.accuracy([gold[i] for i in idx], [pred_product[i] for i in idx])}
        results["by_source"] = by_source
        results["evidence_level"] = {"n": len(levels_ok), "base_level_agreement": sum(levels_ok) / len(levels_ok),
                                     "final_level_distribution": dict(sorted(levels.items()))}
        rows = []
        for name, key in (("classifier", "classifier"), ("rules (text only)", "rules_text_only"),
                          ("product decide_design", "product_decide_design")):
            r = results[key]
            rows.append([name, r["n"], r["accuracy"], r["macro_f1"], r["rct_auroc"], r["rct_vs_not"]["precision"],
                         r["rct_vs_not"]["recall"], r["predicted_other"]])
        tables.append({"title": "Design classification (documents the classifier never trained on)",
                       "columns": ["system", "n", "accuracy", "macro-F1", "RCT AUROC", "RCT precision", "RCT recall",
                                   "called other"], "rows": rows})
        tables.append({"title": "Per class (classifier)", "columns": ["class", "precision", "recall", "F1", "support"],
                       "rows": [[c, v["precision"], v["recall"], v["f1"], v["support"]]
                                for c, v in results["classifier"]["per_class"].items()]})
        tables.append({"title": "Accuracy by source", "columns": ["source", "n", "classifier", "rules", "product"],
                       "rows": [[s, v["n"], v["classifier_accuracy"], v["rules_accuracy"], v["product_accuracy"]]
                                for s, v in by_source.items()]})
        tables.append({"title": "Evidence level (grade base level vs the rung the gold design implies)",
                       "columns": ["n", "agreement", "final levels"],
                       "rows": [[len(levels_ok), results["evidence_level"]["base_level_agreement"],
                                 ", ".join(f"{k}: {v}" for k, v in sorted(levels.items()))]]})
        labels = [c for c in CLASSES if c in gold or c in pred_cls]
        for name, pred in (("classifier", pred_cls), ("rules text-only", pred_rules), ("product", pred_product)):
            cols = labels + ([OTHER] if OTHER in pred else [])
            lab, counts = M.confusion_matrix(gold, pred, cols)  # type: ignore[arg-type]
            plots["confusion"][f"design - {name}"] = {"labels": lab, "counts": counts}
        y = [g == "rct" for g in gold]
        curve = M.pr_curve(y, p_rct)
        if curve is not None:
            plots["pr"]["RCT vs not (classifier rct_probability)"] = {
                "classifier": {"precision": curve["precision"], "recall": curve["recall"],
                               "average_precision": curve["average_precision"]}}
            results["classifier"]["rct_average_precision"] = curve["average_precision"]
            results["classifier"]["rct_thresholds"] = [M.binary_at_threshold(y, p_rct, t) for t in (0.5, 0.6, 0.7)]
        plots["bars"]["macro-F1 by system"] = {k: results[k]["macro_f1"] or 0.0
                                               for k in ("classifier", "rules_text_only", "product_decide_design")}
    if real:
        results["real_publication_types"] = _real(real)
        r = results["real_publication_types"]
        tables.append({"title": "Real NLM records: design from publication types vs from text",
                       "columns": ["pmid", "gold (publication types / MeSH)", "classifier", "rules text-only"],
                       "rows": [[x["pmid"], x["gold"], x["classifier"], x["rules"]] for x in r["records"]]})
        notes.append(f"real NLM records: {r['n_with_gold']} of {r['n_records']} have a design in their publication "
                     "types or an Animals-only MeSH; the rest have no gold and are listed for inspection only")
    return SuiteResult(
        suite="grading", metrics=results,
        config={"limit": options.limit, "classes": list(CLASSES), "split_file": str(split_file()),
                "gold_levels": {k: sorted(v) for k, v in GOLD_LEVELS.items()}},
        dataset={"path": str(options.dataset), "kind": detect(options.dataset), "labelled": len(labelled),
                 "scored": len(unseen), "excluded_trained_on": excluded, "real_records": len(real)},
        timings=phases.seconds, plots={k: v for k, v in plots.items() if v}, tables=tables, notes=notes, items=items)


def _stratified(docs: list[DesignDoc], limit: int) -> list[DesignDoc]:
    """Up to `limit` documents, round-robin over gold classes, so a small slice still has every class."""
    by: dict[str, list[DesignDoc]] = {}
    for d in docs:
        by.setdefault(d.label or "", []).append(d)
    out: list[DesignDoc] = []
    while len(out) < limit and any(by.values()):
        for label in sorted(by):
            if by[label] and len(out) < limit:
                out.append(by[label].pop(0))
    return out


def _real(records: list[dict[str, Any]]) -> dict[str, Any]:
    from synthesis.design_classifier import predict_design
    from synthesis.design_classifier.train import expected_design
    from synthesis.rules.design import classify_design

    rows = []
    for r in records:
        gold = expected_design(r)
        if not (r["title"] or r["abstract"]):
            rows.append({"pmid": r["pmid"], "gold": gold, "classifier": None, "rules": None})
            continue
        pred = predict_design(r["title"], r["abstract"]).label
        rules = classify_design((), " ".join(p for p in (r["title"], r["abstract"]) if p), ()).label
        rows.append({"pmid": r["pmid"], "gold": gold, "classifier": pred, "rules": rules})

    def agree(pred: str | None, gold: str) -> bool:
        return pred in OBSERVATIONAL if gold == "observational" else pred == gold

    scored = [x for x in rows if x["gold"] is not None and x["classifier"] is not None]
    def rate(system: str) -> float | None:
        return sum(agree(x[system], x["gold"]) for x in scored) / len(scored) if scored else None

    return {"n_records": len(rows), "n_with_gold": len(scored), "classifier_agreement": rate("classifier"),
            "rules_agreement": rate("rules"), "records": rows}
