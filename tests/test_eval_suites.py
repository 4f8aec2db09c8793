"""Every suite end to end on a tiny slice of its real dataset, writing a complete run folder.

Small on purpose (the whole eval test set must stay within a few minutes on a busy 2-core machine): a handful of
items, corpora of a dozen abstracts, the small model (smollm2-135m) for the LLM-heavy suites or backend `none`
where that is meaningful. Full runs are separate commands (eval/README.md).
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from eval.report import write_run
from eval.suites import citations, extraction, grading, perf, qa, retrieval
from eval.suites.common import RunOptions
from oncolit.settings import Settings
from synthesis.llm.registry import SMOLLM2, pull


@pytest.fixture(scope="module")
def model_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir whose models/ holds smollm2-135m (copied from the installed wheel and sha256-checked)."""
    home = tmp_path_factory.mktemp("eval-home")
    pull(SMOLLM2.name, home / "models")
    return home


@pytest.fixture(scope="module")
def embedder(tmp_path_factory: pytest.TempPathFactory):
    """The configured embedder, loaded once for the module (each suite would otherwise load it again)."""
    from oncolit.wiring import make_embedder

    emb = make_embedder(Settings(data_dir=tmp_path_factory.mktemp("eval-embed")))
    yield emb
    emb.close()


def _options(tmp_path: Path, dataset: Path, limit: int, home: Path | None = None, embedder=None) -> RunOptions:
    settings = Settings(data_dir=home or tmp_path / "home")
    return RunOptions(dataset=dataset, out=tmp_path / "run", settings=settings, limit=limit, embedder=embedder)


def _written(result, options: RunOptions) -> dict:
    doc = write_run(result, options.out, options.settings.redacted(), options.dataset)
    assert (options.out / "results.json").exists() and (options.out / "report.md").exists()
    assert doc["images"] and all((options.out / name).exists() for name in doc["images"])
    assert doc["git"]["commit"] and doc["dataset"]["fingerprint"]["sha256"]
    assert not (options.out / "work").exists()  # the fresh catalog/index is removed after the run
    return doc


def test_retrieval_on_pubmedqa_slice(shared_data: Path, tmp_path: Path, embedder) -> None:
    options = _options(tmp_path, shared_data / "eval" / "pubmedqa-dev", 3, embedder=embedder)
    result = retrieval.run(options, corpus_size=12)
    doc = _written(result, options)
    modes = doc["metrics"]["modes"]
    assert set(modes) == {"dense", "sparse", "hybrid", "sparse+expand", "hybrid+expand",  # + the synonym table's
                          "hybrid+rerank", "hybrid+expand+rerank"}  # the shipped reranker is configured
    assert doc["metrics"]["index"]["expansion"]["terms"] > 0  # the sync built it from the 12 abstracts
    for mode in modes.values():
        assert mode["queries_scored"] == 3
        assert 0.0 <= mode["ndcg@10"] <= 1.0 and mode["latency"]["n"] == 3
    assert modes["dense"]["recall@100"] == 1.0  # 12 documents: dense search returns them all (BM25 may not)
    assert doc["dataset"]["documents"] == 12
    assert (options.out / "beir" / "corpus.jsonl").exists()  # the converted input, saved beside the results
    assert len(result.items) == 3 and result.items[0]["dense"]["top10"]


def test_retrieval_refuses_sets_without_documents(shared_data: Path, tmp_path: Path) -> None:
    for name in ("trialgpt-queries-qrels", "trec-pm-2017-topics", "hallmarks-of-cancer"):
        with pytest.raises(ValueError, match="retrieval cannot evaluate"):
            retrieval.run(_options(tmp_path, shared_data / "eval" / name, 2))


def test_extraction_rules_on_evidence_inference_slice(shared_data: Path, tmp_path: Path) -> None:
    options = _options(tmp_path, shared_data / "eval" / "evidence-inference", 8)
    result = extraction.run(options, backends=["none"], split="validation")
    doc = _written(result, options)
    r = doc["metrics"]["none"]
    assert r["articles"] == 8
    for field in ("interventions", "comparators", "outcomes"):
        assert 0.0 <= r[field]["f1"] <= 1.0 and r[field]["tp"] + r[field]["fn"] > 0
    assert r["direction"]["n"] > 0 and set(r["direction"]["per_label"]) == {
        "significantly increased", "significantly decreased", "no significant difference"}
    assert "effect direction - none" in doc["plots"]["confusion"]


def test_extraction_scoring_by_hand() -> None:
    from eval.datasets.evidence_inference import EIPrompt

    assert extraction.phrase_match("Liraglutide (1.2 mg) plus glimepiride", "liraglutide")
    assert not extraction.phrase_match("Placebo", "glimepiride")
    prompts = [EIPrompt("1", "PMC1", "Drug A", "Placebo", "Overall survival", "significantly increased"),
               EIPrompt("2", "PMC1", "Drug A", "Placebo", "Nausea", "no significant difference",
                        evidence=("nausea 12% vs 10% (p=0.4)",))]
    outcome = SimpleNamespace(name="overall survival", quote=None, direction="increased", value=0.7, ci_low=None,
                              ci_high=None, arm_values=[])
    other = SimpleNamespace(name="progression", quote=None, direction=None, value=12.0, ci_low=None, ci_high=None,
                            arm_values=[])
    findings = SimpleNamespace(interventions=["drug A"], comparator="placebo", outcomes=[outcome, other])
    row = extraction.score_article(findings, prompts)
    assert (row["interventions"]["tp"], row["comparators"]["tp"], row["outcomes"]["tp"]) == (1, 1, 1)
    assert row["outcomes"]["fp"] == 1 and row["outcomes"]["fn"] == 1
    calls = {p.prompt_id: label for p, label, _ in row["calls"]}
    assert calls == {"1": "significantly increased", "2": extraction.NONE}
    assert (row["effect_tp_p"], row["effect_n_p"]) == (1, 2)  # 12 is in the evidence, 0.7 is not
    assert (row["effect_tp_r"], row["effect_n_r"]) == (1, 1)
    summary = extraction.summarise([row])
    assert summary["direction"]["coverage"] == 0.5 and summary["direction"]["accuracy"] == 0.5
    assert summary["direction"]["accuracy_when_predicted"] == 1.0


def test_grading_slice_never_scores_training_documents(shared_data: Path, tmp_path: Path) -> None:
    options = _options(tmp_path, shared_data, 25)
    result = grading.run(options)
    doc = _written(result, options)
    train = set(json.loads(grading.split_file().read_text())["train"])
    assert result.items and not {i["doc_id"] for i in result.items} & train
    assert {i["gold"] for i in result.items} == set(grading.CLASSES)  # stratified: every class in a small slice
    m = doc["metrics"]
    for system in ("classifier", "rules_text_only", "product_decide_design"):
        assert 0.0 <= m[system]["accuracy"] <= 1.0 and m[system]["rct_auroc"] is not None
    assert 0.0 <= m["evidence_level"]["base_level_agreement"] <= 1.0
    assert m["real_publication_types"]["n_with_gold"] >= 1
    assert any("leakage control" in n for n in doc["notes"])
    assert "design - classifier" in doc["plots"]["confusion"]


def test_qa_with_the_small_model(shared_data: Path, tmp_path: Path, model_home: Path, embedder) -> None:
    options = _options(tmp_path, shared_data / "eval" / "pubmedqa-dev", 1, home=model_home, embedder=embedder)
    result = qa.run(options, backend="llamacpp:smollm2-135m", k=1, corpus_size=6)
    doc = _written(result, options)
    m = doc["metrics"]
    assert m["majority_baseline"]["answer"] in {"yes", "no", "maybe"}
    for mode in ("context", "retrieval"):
        assert m[mode]["n"] == 1 and m[mode]["accuracy"] is not None
        assert m[mode]["invalid_rate"] == 0.0  # the JSON-schema enum makes every reply readable
    assert m["retrieval"]["hit@1"] is not None
    assert {i["mode"] for i in result.items} == {"context", "retrieval"}


def test_qa_parse_answer() -> None:
    assert qa.parse_answer('{"answer": "Maybe"}') == "maybe"
    assert qa.parse_answer("Yes.") == "yes"
    assert qa.parse_answer("yes or no") == qa.INVALID
    assert qa.parse_answer("") == qa.INVALID


def test_citations_extractive_slice(shared_data: Path, tmp_path: Path, embedder) -> None:
    options = _options(tmp_path, shared_data / "eval" / "pubmedqa-dev", 2, embedder=embedder)
    result = citations.run(options, backend="none", corpus_size=12)
    doc = _written(result, options)
    answers = doc["metrics"]["answers"]
    assert answers["outputs"] == 2 and answers["generated_sentences"] == 0
    if answers["citations"]:
        assert answers["citations_resolve"] == 1.0  # invariant 4: every citation resolves
        assert answers["final_checks_ok"] == 1.0 and answers["final_verbatim_quotes"] == 1.0
    assert "digests" in doc["metrics"] and doc["metrics"]["judge"] == "none"


def test_citations_auditor_flags_unsupported_sentences(tmp_path: Path) -> None:
    from eval.datasets.records import article, catalog_item
    from ingest.catalog import Catalog

    with Catalog(f"sqlite:///{tmp_path / 'catalog.sqlite'}") as catalog:
        catalog.ingest_batch([catalog_item(article("123", "Trial", "Drug A improved response in 45% of patients "
                                                                   "with melanoma."))])
        audit = citations.Auditor(catalog, None)
        good = audit.sentence("Drug A improved response in 45% of patients [PMID:123].")
        paraphrase = audit.sentence("Response to drug A improved in 45% of melanoma patients [PMID:123].")
        wrong_number = audit.sentence("Drug A improved response in 54% of patients [PMID:123].")
        missing = audit.sentence("Drug A improved response [PMID:999].")
    assert good["checks_ok"] and good["numbers_ok"] and good["verbatim_quote"]  # a verbatim span of the record
    assert paraphrase["checks_ok"] and not paraphrase["verbatim_quote"] and paraphrase["entailed"] is None
    assert not wrong_number["numbers_ok"] and not wrong_number["checks_ok"]
    assert missing["resolved"] == 0 and not missing["checks_ok"]


def test_claim_units_keep_a_multi_sentence_quote_with_its_citation() -> None:
    text = "We found 1.6% of S. aureus were positive. It was rare [PMID:5]. Drug B worked [PMID:6; PMID:7]. Filler"
    assert citations.claim_units(text) == ["We found 1.6% of S. aureus were positive. It was rare [PMID:5].",
                                           "Drug B worked [PMID:6; PMID:7].", "Filler"]
    assert citations.claim_units("") == []
    assert citations.claim_units("A claim [PMID:1] [PMID:2]. Next [PMID:3].") == ["A claim [PMID:1] [PMID:2].",
                                                                                 "Next [PMID:3]."]


def test_perf_slice(shared_data: Path, tmp_path: Path, embedder) -> None:
    options = _options(tmp_path, shared_data / "pubmed" / "constructed", 15, embedder=embedder)
    result = perf.run(options, backend="none", n_queries=3)
    doc = _written(result, options)
    m = doc["metrics"]
    assert m["records"] == 15 and m["reingest"]["counts"] == {"unchanged": 15}
    assert m["sync"]["records_indexed"] == 15 and m["index_points"] >= 15
    assert m["queries"]["n"] == 3 and m["queries"]["hybrid"]["p50_ms"] > 0
    assert doc["machine"]["cpus"] and doc["settings_hash"]


@pytest.mark.slow
def test_grading_full_run_reproduces_the_model_cards_held_out_numbers(shared_data: Path, tmp_path: Path) -> None:
    """The full grading run on the classifier's held-out split gives the numbers its model card quotes."""
    result = grading.run(_options(tmp_path, shared_data, None))  # type: ignore[arg-type]
    held = result.metrics["classifier_held_out_split_only"]
    assert held["n"] == 983
    assert held["accuracy"] == pytest.approx(0.9522, abs=5e-4)
    assert held["macro_f1"] == pytest.approx(0.6146, abs=5e-4)
    assert held["rct_auroc"] == pytest.approx(0.9943, abs=5e-4)
