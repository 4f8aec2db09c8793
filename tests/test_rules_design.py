"""Study design from publication types, MeSH and wording, with the cue that decided it."""

from __future__ import annotations

import pytest

from ingest.records.article import AbstractSection, Article, MeshHeading
from synthesis.rules.design import DESIGN_LABELS, Cue, blinding_from, classify_design, design_of, phase_from_text


def label_cues(design) -> list[tuple[str, str]]:
    return [(c.source, c.value) for c in design.evidence if c.aspect == "label"]


# --------------------------------------------------------------------------------------------
# Publication types decide when they are specific
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("types", "label"), [
    (["Meta-Analysis", "Journal Article"], "meta_analysis"),
    (["Systematic Review", "Journal Article"], "systematic_review"),
    (["Randomized Controlled Trial", "Multicenter Study"], "rct"),
    (["Controlled Clinical Trial"], "non_randomised_controlled"),
    (["Observational Study"], "cohort"),
    (["Case Reports", "Review"], "case_report"),           # "case report and review of the literature"
    (["Review"], "narrative_review"),
    (["Practice Guideline"], "guideline"),
    (["Editorial"], "editorial"),
    (["Comment", "Journal Article"], "editorial"),
    (["Letter"], "editorial"),
    (["Retraction of Publication"], "other"),
    (["Meta-Analysis", "Systematic Review"], "meta_analysis"),
])
def test_specific_publication_types(types, label):
    design = classify_design(types, "")
    assert design.label == label
    assert all(c.source == "publication_type" for c in design.evidence if c.aspect == "label")


def test_publication_type_beats_text():
    text = "We retrospectively analysed the cohort of patients treated at our centre."
    design = classify_design(["Randomized Controlled Trial", "Journal Article"], text)
    assert (design.label, design.randomised) == ("rct", True)
    assert label_cues(design) == [("publication_type", "Randomized Controlled Trial")]


def test_journal_article_alone_is_not_informative():
    text = "In this double-blind trial, 400 patients were randomly assigned to drug or placebo."
    design = classify_design(["Journal Article"], text)
    assert design.label == "rct"
    [cue] = [c for c in design.evidence if c.aspect == "label"]
    assert (cue.source, cue.value) == ("text", "randomly assigned")
    assert text[cue.span[0]:cue.span[1]] == "randomly assigned"


@pytest.mark.parametrize(("types", "text", "label", "randomised"), [
    (["Clinical Trial, Phase II"], "This single-arm, open-label study enrolled 40 patients.",
     "single_arm_trial", False),
    (["Clinical Trial, Phase II"], "Patients were randomized 2:1 to the combination.", "rct", True),
    (["Clinical Trial, Phase II"], "A non-randomized comparison with concurrent controls.",
     "non_randomised_controlled", False),
    (["Clinical Trial, Phase I"], "Dose escalation followed a 3+3 design.", "single_arm_trial", None),
    (["Clinical Trial, Phase III"], "Patients received drug X.", "other", None),
])
def test_trial_types_refined_by_text(types, text, label, randomised):
    design = classify_design(types, text)
    assert (design.label, design.randomised) == (label, randomised)


@pytest.mark.parametrize(("text", "label"), [
    ("A nested case-control design compared 120 cases with 480 controls.", "case_control"),
    ("This cross-sectional analysis used survey data.", "cross_sectional"),
    ("Data came from a prospective cohort of survivors.", "cohort"),
])
def test_observational_study_refined_by_text(text, label):
    assert classify_design(["Observational Study"], text).label == label


def test_old_review_that_is_systematic_or_pooled():
    assert classify_design(["Review"], "We systematically searched MEDLINE and Embase.").label == "systematic_review"
    assert classify_design(["Review"], "A meta-analysis of 12 trials was performed.").label == "meta_analysis"


# --------------------------------------------------------------------------------------------
# Text cues when publication types say nothing
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "label"), [
    ("We performed a meta-analysis of randomized trials of adjuvant chemotherapy.", "meta_analysis"),
    ("A systematic review following PRISMA identified 34 studies.", "systematic_review"),
    ("Patients were randomly allocated to surgery or surveillance.", "rct"),
    ("This non-randomized controlled study compared two centres.", "non_randomised_controlled"),
    ("In this single-arm phase II study, 45 patients received drug Y.", "single_arm_trial"),
    ("A phase 2 study of drug X in refractory lymphoma.", "single_arm_trial"),
    ("We retrospectively reviewed the records of 210 patients.", "cohort"),
    ("This population-based registry study included 12,000 women.", "cohort"),
    ("A case-control study of 300 cases and 600 controls.", "case_control"),
    ("This cross-sectional study assessed symptom burden.", "cross_sectional"),
    ("We report a case of primary cardiac lymphoma in a 54-year-old man.", "case_report"),
    ("We describe five patients with this rare tumour; this case series shows ...", "case_series"),
    ("Growth of xenografts in nude mice was suppressed, and cell lines showed apoptosis in vitro.", "preclinical"),
    ("In this review we summarize recent advances in CAR-T therapy.", "narrative_review"),
    ("These guidelines provide recommendations for the management of rectal cancer.", "guideline"),
    ("Tumour biology remains complex.", "other"),
    ("", "other"),
])
def test_text_cues(text, label):
    design = classify_design(["Journal Article"], text)
    assert design.label == label
    for cue in design.evidence:
        if cue.span is not None:
            assert text[cue.span[0]:cue.span[1]] == cue.value


def test_background_mention_of_randomized_trials_is_not_a_cue():
    text = "Previous randomized trials showed benefit. We analysed outcomes in our institutional database."
    design = classify_design([], text)
    assert (design.label, design.randomised) == ("cohort", None)


def test_translational_study_with_patients_and_two_lab_cues_is_preclinical():
    text = ("We studied tumour samples from a patient cohort, then tested the inhibitor in cell lines "
            "and in xenograft models.")
    assert classify_design([], text).label == "preclinical"


def test_mesh_animals_without_humans_points_to_preclinical():
    design = classify_design([], "Tumour growth was reduced.", ["Animals", "Neoplasms"])
    assert design.label == "preclinical"
    assert ("mesh", "Animals (without Humans)") in label_cues(design)


def test_mesh_study_design_headings_count_as_cues():
    design = classify_design([], "Outcomes were compared.", ["Humans", "Retrospective Studies"])
    assert design.label == "cohort"
    assert label_cues(design) == [("mesh", "Retrospective Studies")]


# --------------------------------------------------------------------------------------------
# Phase, blinding, retraction
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "phase"), [
    ("a randomized phase III trial", "III"),
    ("a phase 3, open-label trial", "III"),
    ("this phase Ib/II study", "Ib/II"),
    ("a phase 2-3 trial", "II/III"),
    ("in the phase I portion of the study", "I"),
    ("cells accumulated in the G2/M phase after treatment", None),
    ("the second phase of follow-up began in 2019", None),
    ("S phase fraction was measured in 40 tumours", None),
])
def test_phase_from_text(text, phase):
    assert phase_from_text(text)[0] == phase


def test_phase_from_publication_types_wins_and_combines():
    design = classify_design(["Clinical Trial, Phase I", "Clinical Trial, Phase II"], "a phase III trial, randomized")
    assert design.phase == "I/II"
    phase_cues = [c for c in design.evidence if c.aspect == "phase"]
    assert phase_cues == [Cue("phase", "publication_type", "Clinical Trial, Phase I, Clinical Trial, Phase II")]


def test_meta_analysis_of_phase_iii_trials_has_no_phase():
    assert classify_design(["Meta-Analysis"], "We pooled 8 phase III trials.").phase is None


@pytest.mark.parametrize(("text", "blinding"), [
    ("a randomized, double-blind, placebo-controlled trial", "double_blind"),
    ("an open-label, multicentre trial with blinded independent central review", "open_label"),
    ("a single-blind crossover study", "single_blind"),
    ("an assessor-blinded randomized trial", "single_blind"),
    ("a triple-blind trial", "triple_blind"),
    ("a double-blind core phase and an open-label extension", "double_blind"),
    ("a retrospective study", None),
])
def test_blinding(text, blinding):
    assert blinding_from(text)[0] == blinding


def test_blinding_from_mesh():
    assert blinding_from("randomized trial", ["Double-Blind Method"])[0] == "double_blind"


def test_retraction_flags():
    design = classify_design(["Retracted Publication", "Randomized Controlled Trial"], "")
    assert (design.label, design.retracted, design.retraction_notice) == ("rct", True, False)
    notice = classify_design(["Retraction of Publication"], "This article has been retracted at the authors' request.")
    assert (notice.label, notice.retracted, notice.retraction_notice) == ("other", False, True)


def test_every_label_is_in_the_vocabulary():
    assert set(DESIGN_LABELS) == {
        "meta_analysis", "systematic_review", "rct", "non_randomised_controlled", "single_arm_trial", "cohort",
        "case_control", "cross_sectional", "case_series", "case_report", "preclinical", "narrative_review",
        "guideline", "editorial", "other"}


def test_design_of_article_reads_title_abstract_and_mesh():
    article = Article(
        pmid="40000001",
        title="Adjuvant drug Z in resected melanoma: a phase 3 trial",
        abstract=[AbstractSection(label="METHODS", text="Patients were randomly assigned in a double-blind fashion.")],
        publication_types=["Journal Article"],
        mesh_headings=[MeshHeading(descriptor="Humans")],
    )
    design = design_of(article)
    assert (design.label, design.phase, design.randomised, design.blinding) == ("rct", "III", True, "double_blind")
