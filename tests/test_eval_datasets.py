"""Loaders read the real shared datasets from their paths; converters produce BEIR inputs; BEIR round-trips."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from eval.datasets import detect, shared_root
from eval.datasets.beir import BeirDataset, load_beir, write_beir
from eval.datasets.evidence_inference import LABELS, flagged_incorrect, load_evidence_inference
from eval.datasets.evidence_inference import to_beir as ei_to_beir
from eval.datasets.hoc import load_hoc
from eval.datasets.pubmed import load_articles
from eval.datasets.pubmedqa import load_pubmedqa, to_beir
from eval.datasets.topics import load_trec_pm_topics, load_trialgpt


def test_detect_names_every_shared_dataset(shared_data: Path) -> None:
    ev = shared_data / "eval"
    assert detect(shared_data) == "shared-root"
    assert detect(ev / "pubmedqa-dev") == "pubmedqa"
    assert detect(ev / "pubmedqa-dev" / "pqal_dev.json") == "pubmedqa"
    assert detect(ev / "evidence-inference") == "evidence-inference"
    assert detect(ev / "hallmarks-of-cancer") == "hallmarks-of-cancer"
    assert detect(ev / "trec-pm-2017-topics") == "trec-pm-topics"
    assert detect(ev / "trialgpt-queries-qrels") == "trialgpt"
    assert detect(ev / "trialgpt-queries-qrels" / "sigir") == "trialgpt"
    assert detect(shared_data / "pubmed" / "constructed") == "pubmed-xml"
    assert shared_root(ev / "pubmedqa-dev") == shared_data.resolve()


def test_pubmedqa_loader_and_retrieval_conversion(shared_data: Path) -> None:
    items = load_pubmedqa(shared_data / "eval" / "pubmedqa-dev")
    assert len(items) == 500
    assert Counter(i.answer for i in items) == {"yes": 276, "no": 169, "maybe": 55}
    assert all(i.contexts and i.question for i in items)
    beir = to_beir(items)
    assert beir.stats() == {"documents": 500, "queries": 500, "judged_queries": 500, "qrels": 500}
    first = items[0]
    assert beir.qrels[first.pmid] == {first.pmid: 1}
    assert beir.corpus[first.pmid]["title"] == ""  # titles are the questions in PubMedQA: never shown


def test_evidence_inference_loader(shared_data: Path) -> None:
    root = shared_data / "eval" / "evidence-inference"
    assert len(flagged_incorrect(root)) > 50
    data = load_evidence_inference(root, "validation")
    assert 150 < len(data.prompts) < 300
    assert {p.label for p in data.prompts} <= {*LABELS, None}
    inside = [p for p in data.prompts if p.in_abstract]
    assert 0 < len(inside) < len(data.prompts)
    for p in inside[:20]:
        abstract = " ".join((data.articles[p.pmcid].title + " " + data.articles[p.pmcid].text).split()).lower()
        assert any(" ".join(e.split()).lower() in abstract for e in p.evidence)
    record = data.articles[inside[0].pmcid].record()
    assert record.abstract and record.publication_types == []  # no placeholder type to be read as a design
    beir = ei_to_beir(root, "validation")
    assert beir.stats()["queries"] == len(data.prompts) and beir.stats()["documents"] > 2000


def test_hoc_pubmed_and_query_only_sets(shared_data: Path) -> None:
    docs = load_hoc(shared_data / "eval" / "hallmarks-of-cancer", limit=5)
    assert len(docs) == 5 and all(d.text for d in docs)
    real = load_articles(shared_data / "pubmed" / "real")
    assert any("Randomized Controlled Trial" in a.publication_types for a in real)
    topics = load_trec_pm_topics(shared_data / "eval" / "trec-pm-2017-topics")
    assert len(topics) == 30 and topics[0].disease == "Liposarcoma"
    sets = load_trialgpt(shared_data / "eval" / "trialgpt-queries-qrels")
    assert set(sets) == {"sigir", "trec_2021", "trec_2022"}
    with pytest.raises(FileNotFoundError, match="corpus.jsonl is missing"):
        load_beir(shared_data / "eval" / "trialgpt-queries-qrels" / "sigir")


def test_beir_round_trip_and_slicing_keeps_judged_documents(tmp_path: Path) -> None:
    data = BeirDataset("toy", {f"d{i}": {"title": f"T{i}", "text": f"text {i}"} for i in range(10)},
                       {"q1": "one", "q2": "two", "q3": "unjudged"}, {"q1": {"d9": 1}, "q2": {"d8": 2, "d0": 0}})
    small = data.sliced(1, corpus_size=3)
    assert list(small.queries) == ["q1"]
    assert "d9" in small.corpus and len(small.corpus) == 3
    folder = write_beir(data, tmp_path / "beir")
    back = load_beir(folder)
    assert back.corpus == data.corpus and back.queries == data.queries
    assert back.qrels == {"q1": {"d9": 1}, "q2": {"d8": 2, "d0": 0}}
