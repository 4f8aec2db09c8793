"""Chunking: windows fit the model, overlap, title on every chunk, stable ids, labels, trial kinds."""

from __future__ import annotations

import datetime as dt
import gzip
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from index.chunking import (
    TRIAL_KINDS,
    ApproxCounter,
    Chunker,
    ChunkerConfig,
    WordPieceCounter,
    default_token_counter,
    point_id,
    split_sentences,
)
from ingest.records import AbstractSection, Article, CommentCorrection, MeshHeading, PartialDate
from ingest.records.trial import Arm, Design, Eligibility, Intervention, MeshTerm, Outcome, Trial, TrialDate

SENTENCES = [f"Sentence {i} reports that osimertinib changed outcome number {i} in cohort {i}." for i in range(30)]


@pytest.fixture(scope="module")
def counter() -> WordPieceCounter:
    return default_token_counter()  # type: ignore[return-value]


@pytest.fixture(scope="module")
def small(counter: WordPieceCounter) -> Chunker:
    """A 96-piece window so a short abstract already needs several chunks."""
    return Chunker(ChunkerConfig(max_tokens=96, overlap_tokens=24, max_title_tokens=24), counter)


def article(**kw: object) -> Article:
    fields: dict[str, object] = dict(
        pmid="123", title="Osimertinib in EGFR-mutated lung cancer",
        abstract=[AbstractSection(label="BACKGROUND", text=" ".join(SENTENCES[:6])),
                  AbstractSection(label="METHODS", text=" ".join(SENTENCES[6:12])),
                  AbstractSection(label="RESULTS", text=" ".join(SENTENCES[12:24])),
                  AbstractSection(label="CONCLUSIONS", text=" ".join(SENTENCES[24:]))],
        mesh_headings=[MeshHeading(descriptor="Lung Neoplasms"), MeshHeading(descriptor="Humans")],
        languages=["eng"], pub_date=PartialDate(year=2021, month=3, day=4),
        publication_types=["Randomized Controlled Trial"])
    fields.update(kw)
    return Article(**fields)  # type: ignore[arg-type]


def test_every_chunk_fits_the_window_and_carries_the_title(small: Chunker, counter: WordPieceCounter) -> None:
    chunks = small.chunk_article(article(), version=1)
    assert len(chunks) > 4
    for c in chunks:
        assert counter(c.text) <= 96 - 2
        assert c.text.startswith("Osimertinib in EGFR-mutated lung cancer\n")
        assert c.title == "Osimertinib in EGFR-mutated lung cancer"
        assert c.title not in c.passage and c.passage in c.text


def test_sentences_are_whole_in_order_and_all_covered(small: Chunker) -> None:
    chunks = small.chunk_article(article(), version=1)
    seen = [s for c in chunks for s in SENTENCES if s in c.passage]
    assert sorted(set(seen), key=SENTENCES.index) == SENTENCES
    positions = [SENTENCES.index(s) for s in dict.fromkeys(seen)]
    assert positions == sorted(positions)


def test_consecutive_chunks_overlap(small: Chunker) -> None:
    chunks = small.chunk_article(article(), version=1)
    for before, after in zip(chunks, chunks[1:]):
        last = [s for s in SENTENCES if s in before.passage][-1]
        assert last in after.passage, (before.passage, after.passage)


def test_no_overlap_when_configured_off(counter: WordPieceCounter) -> None:
    chunker = Chunker(ChunkerConfig(max_tokens=96, overlap_tokens=0, max_title_tokens=24), counter)
    chunks = chunker.chunk_article(article(), version=1)
    counts = [sum(s in c.passage for c in chunks) for s in SENTENCES]
    assert counts == [1] * len(SENTENCES)


def test_section_labels_kept(small: Chunker) -> None:
    chunks = small.chunk_article(article(), version=1)
    assert chunks[0].section == "BACKGROUND" and chunks[0].passage.startswith("BACKGROUND: ")
    assert chunks[-1].section in {"RESULTS", "CONCLUSIONS"} and "CONCLUSIONS" in chunks[-1].sections
    for c in chunks:
        for label in c.sections:
            assert f"{label}: " in c.passage  # a label opens each section a chunk touches
        payload = c.point_payload()
        assert payload["section"] == c.section and payload["sections"] == list(c.sections)
        assert payload["passage"] == c.passage and payload["chunk_no"] == c.chunk_no


def test_ids_are_deterministic_uuid5_per_record_version_and_number(small: Chunker) -> None:
    first = small.chunk_article(article(), version=3)
    again = small.chunk_article(article(), version=3)
    assert [c.point_id for c in first] == [c.point_id for c in again]
    assert [c.chunk_no for c in first] == list(range(len(first)))
    assert first[0].chunk_id == "pubmed:123@3#0"
    assert uuid.UUID(first[0].point_id).version == 5
    assert first[1].point_id == point_id("pubmed:123", 3, 1)
    newer = small.chunk_article(article(), version=4)
    assert not {c.point_id for c in first} & {c.point_id for c in newer}


def test_article_payload(small: Chunker) -> None:
    retracted = article(comments_corrections=[CommentCorrection(ref_type="RetractionIn", pmid="999")],
                        languages=["ENG"])
    chunks = small.chunk_article(retracted, version=1, excluded=True, design="rct", evidence_level=2)
    payloads = [c.payload for c in chunks]
    assert all(p == payloads[0] for p in payloads)
    p = payloads[0]
    assert p["record_type"] == "article"
    assert p["published"] == "2021-03-04" and p["published_day"] == (dt.date(2021, 3, 4) - dt.date(1970, 1, 1)).days
    assert p["language"] == ["eng"]
    assert p["mesh"] == ["lung neoplasms", "humans"] and p["cancer_sites"] == ["lung neoplasms"]
    assert p["design"] == "rct" and p["evidence_level"] == 2
    assert p["retracted"] is True and p["excluded"] is True and p["flags"] == ["retracted", "excluded"]
    assert p["trial_status"] is None and p["phases"] == []


def test_article_without_abstract_is_one_title_chunk(small: Chunker) -> None:
    chunks = small.chunk_article(article(abstract=[], pub_date=PartialDate()), version=1)
    assert len(chunks) == 1
    assert chunks[0].text == "Osimertinib in EGFR-mutated lung cancer" and chunks[0].passage == ""
    assert chunks[0].payload["published"] is None and chunks[0].payload["published_day"] is None


def test_overlong_sentence_and_title_are_cut_to_fit(small: Chunker, counter: WordPieceCounter) -> None:
    words = " ".join(f"word{i}" for i in range(400))
    long_title = "A very long title " + " ".join(f"about topic{i}" for i in range(60))
    chunks = small.chunk_article(article(title=long_title, abstract=[AbstractSection(text=words)]), version=1)
    assert len(chunks) > 3
    assert all(counter(c.text) <= 94 for c in chunks)
    assert chunks[0].title.endswith("…") and counter(chunks[0].title) <= 24
    assert " ".join(c.passage for c in chunks).count("word399") >= 1


def test_default_chunker_fits_minilm_window(counter: WordPieceCounter) -> None:
    chunker = Chunker()
    long = article(abstract=[AbstractSection(label="RESULTS", text=" ".join(SENTENCES * 4))])
    chunks = chunker.chunk_article(long, version=1)
    assert len(chunks) >= 3
    assert max(counter(c.text) for c in chunks) <= 254
    assert max(counter(c.text) for c in chunks) > 200  # windows are used, not wasted


def test_sentence_splitter_keeps_abbreviations_and_numbers() -> None:
    text = ("Smith et al. compared drug A vs. placebo (n = 120; P < .001). Median OS was 14.2 months "
            "[95% CI 11.1-16.0]. J. Doe agreed! Was it significant? Yes.")
    assert split_sentences(text) == [
        "Smith et al. compared drug A vs. placebo (n = 120; P < .001).",
        "Median OS was 14.2 months [95% CI 11.1-16.0].", "J. Doe agreed!", "Was it significant?", "Yes."]
    assert split_sentences("  ") == []


def test_fingerprint_names_config_and_counter(counter: WordPieceCounter) -> None:
    base = Chunker(ChunkerConfig(), counter).fingerprint
    assert base == Chunker(ChunkerConfig(), counter).fingerprint and len(base) == 8
    assert base != Chunker(ChunkerConfig(overlap_tokens=32), counter).fingerprint
    assert base != Chunker(ChunkerConfig(), ApproxCounter()).fingerprint


def test_approx_counter_never_undercounts_real_abstracts(shared_data: Path, counter: WordPieceCounter) -> None:
    path = sorted((shared_data / "pubmed" / "constructed").glob("*.xml.gz"))[0]
    root = ET.parse(gzip.open(path)).getroot()
    texts = [" ".join("".join(a.itertext()) for a in art.iter("AbstractText"))
             for art in root.iter("PubmedArticle")][:300]
    texts = [t for t in texts if t]
    approx = ApproxCounter()
    assert len(texts) > 100
    assert all(approx(t) >= counter(t) for t in texts)


# -- trials -----------------------------------------------------------------------------------


def trial(**kw: object) -> Trial:
    fields: dict[str, object] = dict(
        nct_id="NCT01234567", brief_title="Osimertinib After Chemoradiation in Stage III NSCLC", acronym="LAURA",
        overall_status="ACTIVE_NOT_RECRUITING", design=Design(phases=["PHASE3"]),
        brief_summary="This study tests osimertinib. It enrols adults with EGFR mutations.",
        detailed_description="Patients are randomised 2:1.\nTreatment continues until progression.",
        conditions=["Non-small Cell Lung Cancer"],
        condition_mesh=[MeshTerm(id="D002289", term="Carcinoma, Non-Small-Cell Lung")],
        eligibility=Eligibility(criteria="Inclusion Criteria:\n* Age 18 or over\n* EGFR Ex19del or L858R\n"
                                         "Exclusion Criteria:\n* Prior EGFR-TKI", sex="ALL", minimum_age="18 Years",
                                healthy_volunteers=False),
        primary_outcomes=[Outcome(measure="Progression-free survival", time_frame="Up to 5 years")],
        secondary_outcomes=[Outcome(measure="Overall survival", description="Time to death from any cause.")],
        arms=[Arm(label="Osimertinib", type="EXPERIMENTAL", intervention_names=["Drug: Osimertinib"]),
              Arm(label="Placebo", type="PLACEBO_COMPARATOR")],
        interventions=[Intervention(name="Osimertinib", type="DRUG", other_names=["AZD9291"],
                                    description="80 mg once daily")],
        first_posted=TrialDate(year=2018, month=6, day=1), start_date=TrialDate(year=2018, month=8))
    fields.update(kw)
    return Trial(**fields)  # type: ignore[arg-type]


def test_trial_chunk_kinds_are_separate(small: Chunker, counter: WordPieceCounter) -> None:
    chunks = small.chunk_trial(trial(), version=2)
    kinds = [c.section for c in chunks]
    assert list(dict.fromkeys(kinds)) == list(TRIAL_KINDS)  # summary, eligibility, outcomes, arms, in order
    assert all(len(c.sections) == 1 for c in chunks)
    assert [c.chunk_no for c in chunks] == list(range(len(chunks)))
    by_kind = {k: "\n".join(c.passage for c in chunks if c.section == k) for k in TRIAL_KINDS}
    assert "osimertinib" in by_kind["summary"] and "Treatment continues" in by_kind["summary"]
    assert "* Prior EGFR-TKI" in by_kind["eligibility"] and "Sex: all" in by_kind["eligibility"]
    assert "Primary outcome: Progression-free survival [time frame: Up to 5 years]" in by_kind["outcomes"]
    assert "Secondary outcome: Overall survival" in by_kind["outcomes"]
    assert "Arm: Placebo (placebo comparator)" in by_kind["arms"] and "AZD9291" in by_kind["arms"]
    for c in chunks:
        assert c.text.startswith("Osimertinib After Chemoradiation in Stage III NSCLC (LAURA)\n")
        assert counter(c.text) <= 94


def test_trial_payload(small: Chunker) -> None:
    p = small.chunk_trial(trial(overall_status="WITHDRAWN"), version=1)[0].payload
    assert p["record_type"] == "trial" and p["trial_status"] == "WITHDRAWN" and p["phases"] == ["PHASE3"]
    assert p["published"] == "2018-06-01"
    assert p["withdrawn"] is True and p["retracted"] is False and p["flags"] == ["withdrawn"]
    assert p["cancer_sites"] == ["carcinoma, non-small-cell lung", "non-small cell lung cancer"]
    assert p["mesh"] == ["carcinoma, non-small-cell lung"] and p["language"] == ["eng"]


def test_trial_without_text_is_one_title_chunk(small: Chunker) -> None:
    chunks = small.chunk(Trial(nct_id="NCT00000001", brief_title="Bare"), version=1)
    assert [(c.text, c.section) for c in chunks] == [("Bare", None)]
