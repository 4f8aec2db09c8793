"""The topical retrieval benchmark builder: deterministic, judged from other documents' labels only, the query's
own source excluded from its ranking; and the retrieval suite honours that exclusion."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import pytest

from eval.datasets.beir import load_beir
from eval.datasets.topical import build_topical, write_topical


def _abstract(pmcid: str, title: str, text: str) -> dict[str, object]:
    return {"pmcid": pmcid, "title": title, "abstract_sections": [{"label": "RESULTS", "text": text}],
            "oncology_keyword_match": False}


def make_shared(root: Path, source_text: str = "Simvastatin lowered LDL cholesterol in 120 adults.") -> Path:
    ei = root / "eval" / "evidence-inference"
    (ei / "splits").mkdir(parents=True)
    (ei / "splits" / "ev2_validation_article_ids.txt").write_text("4\n")
    docs = [_abstract("PMC1", "Simvastatin and LDL", source_text),
            _abstract("PMC2", "Statins in adults", "Simvastatin 40 mg reduced LDL cholesterol versus placebo."),
            _abstract("PMC3", "Exercise and mood", "Aerobic exercise improved depressive symptoms."),
            _abstract("PMC4", "Yoga", "Yoga lowered blood pressure.")]
    (ei / "abstracts.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    with (ei / "prompts_merged.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["PromptID", "PMCID", "Outcome", "Intervention", "Comparator"])
        w.writerow([10, 1, "LDL cholesterol", "Simvastatin (20 mg)", "Placebo"])
        w.writerow([11, 2, "LDL cholesterol levels", "Simvastatin", "Placebo"])
        w.writerow([12, 3, "Depressive symptoms", "Aerobic exercise", "Usual care"])
    (ei / "v2_annotations.csv").write_text("UserID,PromptID,PMCID,Valid Label\n")
    pqa = root / "eval" / "pubmedqa-dev"
    pqa.mkdir(parents=True)
    meshes = {"101": ["Humans", "Rectal Neoplasms", "Neoplasm Recurrence, Local", "Retrospective Studies"],
              "102": ["Humans", "Rectal Neoplasms", "Neoplasm Recurrence, Local", "Pelvic Exenteration"],
              "103": ["Humans", "Warfarin"]}
    (pqa / "pqal_dev.json").write_text(json.dumps({pmid: {
        "QUESTION": f"Question {pmid}?", "CONTEXTS": [f"Context of {pmid}."], "LABELS": ["RESULTS"], "MESHES": m,
        "YEAR": "2010", "final_decision": "yes", "LONG_ANSWER": "Yes."} for pmid, m in meshes.items()}))
    hoc = root / "eval" / "hallmarks-of-cancer"
    hoc.mkdir(parents=True)
    (hoc / "hoc_abstracts.jsonl").write_text(
        json.dumps({"pmid": "900", "sentences": ["Tumour cells", "proliferate ."]}) + "\n"
        + json.dumps({"pmid": "101", "sentences": ["duplicate of a PubMedQA record"]}) + "\n")
    (root / "pubmed").mkdir()
    return root


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            h.update(path.name.encode() + path.read_bytes())
    return h.hexdigest()


def test_judgements_come_from_other_documents_and_exclude_the_source(tmp_path: Path) -> None:
    bench = build_topical(make_shared(tmp_path / "shared"))
    by_id = {q.query_id: q for q in bench.queries}
    assert set(by_id) == {"ei-10", "ei-11", "pqa-101", "pqa-102"}  # exercise and warfarin have no topical peer
    assert by_id["ei-10"].relevant == {"PMC2": 1} and by_id["ei-10"].source == "PMC1"
    assert by_id["ei-10"].text == "Simvastatin (20 mg) versus Placebo: LDL cholesterol"
    assert by_id["pqa-101"].relevant == {"102": 1}  # two specific descriptors shared; Humans never counts
    for q in bench.queries:
        assert q.source not in q.relevant
    assert set(bench.corpus) == {"PMC1", "PMC2", "PMC3", "PMC4", "101", "102", "103", "900"}
    assert bench.judged_articles() == {"PMC1", "PMC2"}
    beir = bench.as_beir()
    assert beir.query_meta["ei-10"] == {"family": "ei-ico", "exclude": ["PMC1"]}


def test_build_is_deterministic_and_ignores_the_source_text(tmp_path: Path) -> None:
    a = write_topical(build_topical(make_shared(tmp_path / "a")), tmp_path / "out-a")
    b = write_topical(build_topical(make_shared(tmp_path / "b")), tmp_path / "out-b")
    assert _digest(a) == _digest(b)
    changed = build_topical(make_shared(tmp_path / "c", source_text="Entirely different words about knees."))
    assert {q.query_id: q.relevant for q in changed.queries} == {q.query_id: q.relevant for q in
                                                                 build_topical(tmp_path / "a").queries}
    loaded = load_beir(a)
    assert loaded.query_meta["pqa-101"]["exclude"] == ["101"] and loaded.qrels["ei-11"] == {"PMC1": 1}


def test_shared_topical_benchmark_has_both_families(shared_data: Path) -> None:
    bench = build_topical(shared_data)
    families = {q.family for q in bench.queries}
    assert families == {"ei-ico", "pubmedqa-mesh"}
    assert len(bench.queries) > 300 and len(bench.corpus) > 5000
    assert all(q.source not in q.relevant for q in bench.queries)


def test_retrieval_suite_drops_the_excluded_source(tmp_path: Path) -> None:
    from eval.datasets.beir import BeirDataset
    from eval.suites.retrieval import evaluate_rankings, per_family

    data = BeirDataset("t", {"a": {"title": "", "text": ""}}, {"q": "x"}, {"q": {"b": 1}},
                       query_meta={"q": {"family": "f", "exclude": ["a"]}})
    metrics = per_family({"hybrid": {"q": ["b"]}}, data)
    assert metrics["f"]["hybrid"]["ndcg@10"] == pytest.approx(1.0)
    assert evaluate_rankings({"q": ["a", "b"]}, data.qrels)["mrr@10"] == pytest.approx(0.5)
