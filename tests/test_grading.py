"""Study-quality grading: real records meet the levels their publication types call for, the classifier
stands in when types are missing, modifiers move levels with evidence, and retractions are excluded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ingest.ctgov_json import iter_ctgov_path
from ingest.pubmed_xml import parse_pubmed_xml
from ingest.records import AbstractSection, Article, CommentCorrection, PartialDate
from synthesis.extract import extract
from synthesis.grading import GRADING_DOC, LADDER, RANK, Grade, explain, grade

REAL = ["pubmed/real/biomcp/efetch_citation_22663011.xml",
        *(f"pubmed/real/biopython/entrez/pubmed{i}.xml" for i in (1, 2, 4, 5, 6, 7))]

# Every real record whose indexed publication types name a design, with the level those types call for.
# (record, design, base level, level, the deciding publication type)
TYPED = [
    ("pubmed:22663011", "rct", "1b", "1b", "Randomized Controlled Trial"),   # + Clinical Trial, Phase III
    ("pubmed:12091962", "narrative_review", "5", "5", "Review"),
    ("pubmed:27797938", "case_control", "3b", "3b", "Observational Study"),  # nested case-control in cohorts
]


@pytest.fixture(scope="module")
def real(shared_data: Path) -> dict[str, Article]:
    out: dict[str, Article] = {}
    for name in REAL:
        for item in parse_pubmed_xml((shared_data / name).read_bytes()):
            assert isinstance(item.record, Article)
            out[item.record.record_id] = item.record
    return out


@pytest.fixture(scope="module")
def nejm(real: dict[str, Article]) -> Article:
    return real["pubmed:22663011"]


def graded(article: Article, **kwargs: object) -> Grade:
    return grade(article, extract(article, version=1).findings, **kwargs)  # type: ignore[arg-type]


def steps(g: Grade) -> dict[str, int]:
    return {r.text.split(":")[0].split(" (")[0]: r.steps for r in g.reasons if r.steps}


def test_every_design_type_among_the_real_records_is_in_the_table(real: dict[str, Article]) -> None:
    from synthesis.rules.design import _decisive_publication_type  # the rules' own list of design types

    typed = {rid for rid, a in real.items() if _decisive_publication_type(a.publication_types)}
    assert typed == {rid for rid, *_ in TYPED}


@pytest.mark.parametrize(("record_id", "design", "base", "level", "publication_type"), TYPED)
def test_real_records_meet_the_level_of_their_publication_types(real: dict[str, Article], record_id: str,
                                                                design: str, base: str, level: str,
                                                                publication_type: str) -> None:
    g = graded(real[record_id])
    assert (g.design, g.base_level, g.level, g.excluded) == (design, base, level, False)
    assert g.rank == RANK[level]
    decisive = g.reasons[0]
    assert (decisive.evidence_kind, decisive.evidence) == ("publication_type", publication_type)
    assert all(r.evidence for r in g.reasons)


def test_the_nejm_rct_explains_itself_with_evidence(nejm: Article) -> None:
    g = graded(nejm)
    assert g.phase == "III" and g.label == "randomised controlled trial, phase III: level 1b"
    by_text = {r.text: r for r in g.reasons}
    assert by_text["phase III"].evidence == "Clinical Trial, Phase III"
    assert by_text["sample size 322"].evidence == "randomly assigned 322 patients"
    assert by_text["open-label (outcome assessment not blinded)"].evidence_kind == "quote"
    assert by_text["registered trial"].evidence == "registrations: NCT01245062"
    assert by_text["overall survival reported"].evidence == "hazard ratio for death, 0.54; 95% CI, 0.32 to 0.92; P=0.01"
    text = explain(g)
    assert "level 1b" in text and "publication_type: Randomized Controlled Trial" in text


def test_records_without_design_types_are_graded_from_text_mesh_or_classifier(real: dict[str, Article]) -> None:
    untyped = [a for rid, a in real.items() if rid not in {r for r, *_ in TYPED} and a.abstract]
    assert len(untyped) == 6
    for article in untyped:
        g = graded(article)
        design_reasons = [r for r in g.reasons if r.text.startswith("design")]
        assert design_reasons and all(r.evidence_kind != "publication_type" for r in design_reasons)
        if g.design == "other":  # nothing decided it: the classifier was asked and said why not
            assert g.level == "5" and design_reasons[0].evidence_kind == "classifier"


def test_without_publication_types_the_classifier_backs_the_text(nejm: Article) -> None:
    """The same NEJM record as it arrives before indexing: no publication types, no MeSH."""
    fresh = nejm.model_copy(update={"publication_types": ["Journal Article"], "mesh_headings": []})
    g = graded(fresh)
    assert (g.design, g.phase, g.level) == ("rct", "III", "1b")  # "phase 3 ... trial", "randomly assigned"
    kinds = {r.evidence_kind for r in g.reasons if r.text.startswith("design")}
    assert kinds == {"quote", "classifier"}
    assert not any(r.evidence_kind == "publication_type" for r in g.reasons)


def _evidence_inference(shared_data: Path, pmcid: str) -> Article:
    with (shared_data / "eval/evidence-inference/abstracts.jsonl").open(encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            if row["pmcid"] == pmcid:
                return Article(pmid=pmcid.removeprefix("PMC"), title=row["title"], abstract=[
                    AbstractSection(label=s["label"] or None, text=s["text"]) for s in row["abstract_sections"]])
    raise AssertionError(pmcid)


def test_classifier_decides_when_the_text_has_no_design_words(shared_data: Path) -> None:
    article = _evidence_inference(shared_data, "PMC2644279")  # aromatherapy massage, a randomised trial
    g = graded(article)
    assert g.design == "rct"
    (reason,) = [r for r in g.reasons if r.text.startswith("design")]
    assert reason.evidence_kind == "classifier" and reason.evidence.startswith("rct (probabilities: rct 0.7")


def test_randomised_wording_the_classifier_does_not_back_costs_two_rungs(shared_data: Path) -> None:
    article = _evidence_inference(shared_data, "PMC3626705")  # "MEK and the inhibitors: from bench to bedside"
    g = graded(article)
    assert g.design == "rct"
    doubt = next(r for r in g.reasons if r.text.startswith("design in doubt"))
    assert doubt.steps == -2 and doubt.evidence_kind == "classifier" and "0.6" in doubt.text
    assert g.rank >= RANK[g.base_level] + 2


# ------------------------------------------------------------------------------------------------
# Modifiers on hand-written records
# ------------------------------------------------------------------------------------------------

def _rct(results: str, *, methods: str = "In this phase 3 double-blind trial, we randomly assigned 480 patients "
                                         "with metastatic colorectal cancer to drug X or placebo.",
         year: int = 2016, citation_status: str = "MEDLINE", nct: bool = True, **update: object) -> Article:
    conclusions = "Drug X improved outcomes." + (" ClinicalTrials.gov number, NCT01234567." if nct else "")
    fields: dict[str, object] = {"publication_types": ["Journal Article", "Randomized Controlled Trial"], **update}
    return Article(pmid="1", title="Drug X versus placebo in metastatic colorectal cancer",
                   pub_date=PartialDate(year=year), citation_status=citation_status,
                   abstract=[AbstractSection(label="METHODS", text=methods),
                             AbstractSection(label="RESULTS", text=results),
                             AbstractSection(label="CONCLUSIONS", text=conclusions)], **fields)


OS_RESULT = "Overall survival was longer with drug X (hazard ratio for death, 0.70; 95% CI, 0.58 to 0.85; P<0.001)."
PFS_RESULT = ("Progression-free survival was the primary end point. The hazard ratio for progression or death was "
              "0.60 (95% CI, 0.50 to 0.72; P<0.001).")


def test_a_well_reported_phase_3_rct_keeps_1b() -> None:
    g = graded(_rct(OS_RESULT))
    assert (g.level, steps(g)) == ("1b", {})
    assert any(r.text.startswith("double-blind") for r in g.reasons)


def test_small_sample_costs_a_rung() -> None:
    g = graded(_rct(OS_RESULT, methods="In this phase 3 double-blind trial, we randomly assigned 60 patients "
                                       "to drug X or placebo."))
    assert g.level == "2a" and steps(g) == {"small sample": -1}
    assert next(r for r in g.reasons if r.steps).evidence == "randomly assigned 60 patients"


def test_surrogate_end_point_without_overall_survival_costs_a_rung() -> None:
    g = graded(_rct(PFS_RESULT))
    assert g.level == "2a" and steps(g) == {"surrogate end point": -1}
    assert "0.60" in next(r for r in g.reasons if r.steps).evidence


def test_early_stopping_costs_a_rung() -> None:
    g = graded(_rct(OS_RESULT + " The trial was stopped early for benefit at the first interim analysis."))
    assert g.level == "2a" and steps(g) == {"stopped early": -1}
    assert next(r for r in g.reasons if r.steps).evidence == "stopped early"


def test_missing_registration_costs_a_rung_only_where_medline_would_show_it() -> None:
    assert steps(graded(_rct(OS_RESULT, nct=False))) == {"no trial registration in a MEDLINE record published 2016": -1}
    assert steps(graded(_rct(OS_RESULT, nct=False, year=2003))) == {}
    assert steps(graded(_rct(OS_RESULT, nct=False, citation_status="In-Process"))) == {}


def test_open_label_costs_a_rung_only_with_a_patient_reported_primary_outcome() -> None:
    methods = "In this phase 3 open-label trial, we randomly assigned 480 patients to drug X or usual care."
    qol = "Quality of life was the primary end point. Overall survival did not differ."
    g = graded(_rct(qol, methods=methods))
    assert steps(g) == {"open-label with a patient-reported primary outcome": -1}
    assert steps(graded(_rct(OS_RESULT, methods=methods))) == {}


def test_phase_2_randomised_trial_ranks_below_phase_3() -> None:
    methods = "In this randomised phase II trial, we randomly assigned 200 patients to drug X or placebo."
    g = graded(_rct(OS_RESULT, methods=methods, publication_types=["Journal Article"]))
    assert (g.design, g.phase, g.base_level) == ("rct", "II", "2a")


def test_levels_never_fall_below_the_ladder() -> None:
    single_arm = _rct("The objective response rate (primary end point) was 30% (95% CI, 17 to 46). The trial "
                      "was stopped early.", nct=False, publication_types=["Journal Article"],
                      methods="In this single-arm phase II trial, 40 patients were enrolled.")
    g = graded(single_arm)
    assert (g.design, g.base_level) == ("single_arm_trial", "4a")
    assert sum(steps(g).values()) == -4 and g.level == "5" and g.rank == len(LADDER)


# ------------------------------------------------------------------------------------------------
# Exclusions
# ------------------------------------------------------------------------------------------------

def test_a_retracted_rct_is_excluded_with_its_evidence() -> None:
    article = _rct(OS_RESULT, publication_types=["Journal Article", "Randomized Controlled Trial",
                                                 "Retracted Publication"])
    g = graded(article)
    assert g.excluded and g.label.startswith("excluded (retracted)")
    reason = next(r for r in g.reasons if r.text == "retracted")
    assert (reason.evidence_kind, reason.evidence) == ("publication_type", "Retracted Publication")


def test_retraction_links_and_catalog_flags_exclude_too() -> None:
    linked = _rct(OS_RESULT, comments_corrections=[CommentCorrection(ref_type="RetractionIn", pmid="999")])
    g = graded(linked)
    assert g.excluded and any(r.evidence == "comments_corrections: RetractionIn PMID 999" for r in g.reasons)
    flagged = graded(_rct(OS_RESULT), retracted=True)
    assert flagged.excluded and any("retraction notice in the catalog" in r.evidence for r in flagged.reasons)
    notice = _rct("", publication_types=["Retraction of Publication"])
    assert graded(notice).excluded
    assert graded(_rct(OS_RESULT), deleted=True).excluded
    assert not graded(_rct(OS_RESULT)).excluded


# ------------------------------------------------------------------------------------------------
# Trials
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("nct", "design", "level", "excluded"), [
    ("NCT02552212", "rct", "1b", False),             # phase 3, quadruple-masked, 317 enrolled
    ("NCT02210780", "rct", "2a", False),             # phase 2, 194 enrolled
    ("NCT00973089", "rct", "2a", True),              # withdrawn, 0 enrolled
    ("NCT04207047", "single_arm_trial", "4b", False),  # single group, 3 enrolled
])
def test_trials_are_graded_from_registry_fields(shared_data: Path, nct: str, design: str, level: str,
                                                excluded: bool) -> None:
    trial = next(iter_ctgov_path(shared_data / f"ctgov/real/aact/v2_json/{nct}.json")).record
    g = grade(trial, extract(trial, version=1).findings)
    assert (g.design, g.level, g.excluded) == (design, level, excluded)
    assert g.reasons[0].evidence_kind == "registry" and "studyType=INTERVENTIONAL" in g.reasons[0].evidence


def test_grading_doc_lists_every_rung() -> None:
    doc = GRADING_DOC.read_text(encoding="utf-8")
    for rung in LADDER:
        assert f"**{rung.code}**" in doc, rung
