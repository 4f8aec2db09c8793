"""The committed study-design model: it loads without scikit-learn, predicts sensible designs with reasons,
reproduces its recorded held-out results on the real data, and has not learned corpus formatting or topic."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from synthesis.design_classifier import LABELS, DesignModel, ModelFileError, predict_design
from synthesis.design_classifier.model import MODEL_DIR, WEIGHTS_FILE, analyse, default_model, document_text
from synthesis.design_classifier.train import (
    TOPIC_STEMS,
    DesignFeatures,
    Doc,
    deduplicate,
    fingerprints,
    load_corpus,
)

# Hand-written for these tests (not taken from any dataset).
RCT_TITLE = "Maintenance therapy after first-line treatment of advanced disease: a double-blind trial"
RCT_ABSTRACT = (
    "We enrolled 412 adults at 23 hospitals. Patients were randomly assigned (1:1) to receive the study drug every "
    "four weeks or matching placebo for twelve months; participants and investigators were masked to allocation. "
    "The primary endpoint was progression-free survival, analysed by intention to treat. Secondary endpoints were "
    "overall survival and adverse events. Progression-free survival did not differ between the two groups.")
LAB_TITLE = "Loss of a scaffold protein sensitises cells to replication stress"
LAB_ABSTRACT = (
    "Using CRISPR knockout in three human cell lines and xenografts in nude mice, we show that depletion of the "
    "scaffold protein impairs phosphorylation of its downstream kinases, arrests cells in S phase and increases "
    "apoptosis after treatment with a checkpoint inhibitor. Western blotting and immunofluorescence confirmed "
    "reduced expression, and xenograft growth in mice was slowed.")
COHORT_ABSTRACT = (
    "We retrospectively reviewed the records of 311 consecutive patients who underwent resection at our "
    "institution between 2005 and 2015 and followed them for a median of five years. Mortality and complications "
    "were compared between patients older and younger than 75 years.")


@pytest.fixture(scope="module")
def metrics() -> dict:
    return json.loads((MODEL_DIR / "metrics.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def held_out(shared_data: Path) -> dict[str, Doc]:
    """The de-duplicated real documents, by id, as training saw them."""
    docs, _ = deduplicate(load_corpus(shared_data))
    return {d.doc_id: d for d in docs}


def test_rct_abstract_is_rct_and_the_reasons_mention_randomisation() -> None:
    pred = predict_design(RCT_TITLE, RCT_ABSTRACT)
    assert pred.label == "rct"
    assert pred.rct_probability > 0.85
    assert pred.rct_probability == pred.probabilities["rct"]
    assert any("random" in term for term in pred.top_terms), pred.top_terms
    assert "placebo" in pred.top_terms


def test_laboratory_abstract_is_preclinical() -> None:
    pred = predict_design(LAB_TITLE, LAB_ABSTRACT)
    assert pred.label == "preclinical"
    assert pred.probabilities["preclinical"] > 0.85
    assert pred.rct_probability < 0.1
    assert {"cells", "mice"} <= set(pred.top_terms)


def test_retrospective_review_is_cohort() -> None:
    pred = predict_design("", COHORT_ABSTRACT)
    assert pred.label == "cohort"
    assert any("retrospective" in t or "reviewed" in t for t in pred.top_terms)


def test_probabilities_cover_the_design_vocabulary() -> None:
    pred = predict_design(RCT_TITLE, LAB_ABSTRACT)
    assert set(pred.probabilities) == set(LABELS)
    assert sum(pred.probabilities.values()) == pytest.approx(1.0)
    assert pred.label == max(pred.probabilities, key=pred.probabilities.get)


def test_blank_record_is_refused() -> None:
    with pytest.raises(ValueError):
        predict_design("", "  ")


def test_tokenised_spacing_headings_and_spelling_do_not_change_features() -> None:
    """HoC's tokenised text, inline headings and British spelling must look like ordinary text to the model."""
    plain = "Patients were randomized (n = 40), and p < 0.05; tumor cells (HeLa) grew."
    assert analyse("RESULTS: Patients were randomised ( n = 40 ) , and p<0.05 ; tumour cells ( HeLa ) grew .") \
        == analyse(plain)


def test_no_corpus_artefact_or_topic_word_among_the_strongest_terms() -> None:
    """What the model learned is design wording, not which corpus or which disease a text came from."""
    model = default_model()
    # Section headings and publisher boilerplate. ("results" is not listed: "these results suggest that" is
    # ordinary prose of unstructured laboratory abstracts, and ranks among the preclinical terms for that reason.)
    artefacts = {"background", "methods", "conclusions", "conclusion", "objective", "objectives", "abstract",
                 "electronic", "supplementary", "copyright", "lrb", "rrb", "unlabelled"}
    strongest = model.strongest_terms(50)
    for label, terms in strongest.items():
        words = {w for t in terms for w in t.split()}
        assert not words & artefacts, (label, words & artefacts)
    topic_word = DesignFeatures(TOPIC_STEMS).pattern
    topic = [t for t in model.terms if any(topic_word.match(w) for w in t.split())]
    assert topic == [], topic[:10]
    assert {"randomized", "placebo", "randomly"} <= set(strongest["rct"][:30])
    assert {"cells", "mice"} <= set(strongest["preclinical"][:30])


def test_committed_model_is_small_json(metrics: dict) -> None:
    files = {p.name for p in MODEL_DIR.iterdir()}
    assert {WEIGHTS_FILE, "metrics.json", "split.json", "README.md"} <= files
    assert not [f for f in files if f.endswith((".pkl", ".pickle", ".joblib"))]
    assert (MODEL_DIR / WEIGHTS_FILE).stat().st_size < 4_000_000
    assert metrics["export_check"]["title_and_abstract"]["argmax_agreement"] == 1.0


def test_weights_for_another_analyser_version_are_refused(tmp_path: Path) -> None:
    blob = json.loads((MODEL_DIR / WEIGHTS_FILE).read_text(encoding="utf-8"))
    blob["analyser_version"] = -1
    (tmp_path / WEIGHTS_FILE).write_text(json.dumps(blob), encoding="utf-8")
    with pytest.raises(ModelFileError):
        DesignModel.load(tmp_path)


def test_numpy_inference_reproduces_sklearn_on_recorded_held_out_documents(
        metrics: dict, held_out: dict[str, Doc]) -> None:
    model = default_model()
    examples = metrics["held_out_examples"]
    assert {e["label"] for e in examples} == set(LABELS)
    for example in examples:
        doc = held_out[example["doc_id"]]
        assert doc.label == example["label"]
        pred = model.predict(doc.title, doc.abstract)
        for label, expected in example["sklearn_probabilities"].items():
            assert pred.probabilities[label] == pytest.approx(expected, abs=1e-5), (example["doc_id"], label)


def test_held_out_metrics_reproduce_and_the_split_does_not_leak(
        metrics: dict, held_out: dict[str, Doc]) -> None:
    split = json.loads((MODEL_DIR / "split.json").read_text(encoding="utf-8"))
    train_ids, test_ids = set(split["train"]), set(split["test"])
    assert not train_ids & test_ids
    train_prints = {fp for i in train_ids for fp in fingerprints(held_out[i])}
    assert not any(set(fingerprints(held_out[i])) & train_prints for i in test_ids)

    model = default_model()
    docs = [held_out[i] for i in sorted(test_ids)]
    predicted = [model.labels[int(np.argmax(model.probabilities(document_text(d.title, d.abstract))))]
                 for d in docs]
    recorded = metrics["held_out"]["title_and_abstract"]
    assert len(docs) == recorded["n"]
    accuracy = float(np.mean([p == d.label for p, d in zip(predicted, docs)]))
    assert accuracy == pytest.approx(recorded["accuracy"], abs=1e-4)
    assert recorded["rct_auroc"] > 0.98
