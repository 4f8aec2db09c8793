"""Study-quality grading: an evidence level in the spirit of Oxford CEBM and GRADE starting points,
with modifiers, and a reason — pointing at its evidence — for every step. See GRADING.md.

Why a ladder of nine labelled rungs rather than CEBM's five numbers: oncology needs distinctions
CEBM folds together (a phase III trial above a phase II one; a controlled trial above a cohort; a
case-control study above a case series), and sorting, filtering and explaining all want one order.
The code keeps the CEBM number as the rung's first character, so "1b" and "2a" read familiarly.

The rubric is data (`LADDER`, `BASE_RUNG`, the thresholds below); `grade()` applies it:
1. The design (publication types > rule cues in text and MeSH > the committed classifier; registry
   fields for trials) picks the base rung.
2. Modifiers move it down a rung each (design in doubt: two; never up: GRADE's upgrades for large effects need judgement
   we do not automate): small sample, design in doubt, open-label with a patient-reported primary
   outcome, no trial registration, surrogate end points without overall survival, early stopping,
   an expression of concern. Modifiers that hold without moving the level are still reported.
3. Retracted articles, retraction notices, withdrawn trials and deleted citations are excluded.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, Field

from ingest.records.article import EXPRESSION_OF_CONCERN_IN, RETRACTION_IN, Article
from ingest.records.trial import Trial
from synthesis import readers
from synthesis.findings import Findings
from synthesis.prompts import blank_spans, find_instructions
from synthesis.rules.design import DesignLabel

RUBRIC_ID = "grading/v1"
GRADING_DOC = Path(__file__).resolve().parent / "GRADING.md"

EvidenceKind = Literal["publication_type", "field", "quote", "classifier", "registry"]


@dataclass(frozen=True)
class Rung:
    code: str
    label: str


LADDER: tuple[Rung, ...] = (
    Rung("1a", "systematic review or meta-analysis of randomised trials"),
    Rung("1b", "randomised controlled trial (phase III/IV, or phase not stated)"),
    Rung("2a", "randomised controlled trial, phase II or earlier"),
    Rung("2b", "non-randomised controlled trial, or review pooling non-randomised studies"),
    Rung("3a", "cohort study"),
    Rung("3b", "case-control study"),
    Rung("4a", "single-arm trial, trial of unstated allocation, or cross-sectional study"),
    Rung("4b", "case series or case report"),
    Rung("5", "preclinical study, narrative review, guideline or opinion, or design not determined"),
)
RANK = {rung.code: i + 1 for i, rung in enumerate(LADDER)}

# Base rung by design label; rct and the pooled kinds are refined in `_base`.
BASE_RUNG: dict[DesignLabel, str] = {
    "meta_analysis": "1a", "systematic_review": "1a", "rct": "1b", "non_randomised_controlled": "2b",
    "cohort": "3a", "case_control": "3b", "single_arm_trial": "4a", "cross_sectional": "4a",
    "case_series": "4b", "case_report": "4b", "preclinical": "5", "narrative_review": "5", "guideline": "5",
    "editorial": "5", "other": "5",
}

SMALL_SAMPLE = 100
"""Fewer participants than this (randomised, else enrolled, else analysed) costs a rung."""
REGISTRATION_EXPECTED_FROM = 2008
"""ICMJE required registration from 2005; allow the trials then under way to report by 2008."""
DOUBT_STEPS = -2
"""Randomised wording the classifier does not back (< 0.6): two rungs, an RCT then ranks with
non-randomised trials. Reviews and cohorts that discuss randomised trials land here too."""
SURROGATE_KINDS = frozenset({"PFS", "DFS", "EFS", "ORR", "pCR"})
PATIENT_REPORTED_KINDS = frozenset({"QoL"})
_SAMPLED = frozenset({"rct", "non_randomised_controlled", "single_arm_trial", "cohort", "case_control",
                      "cross_sectional"})
_TRIALS = frozenset({"rct", "non_randomised_controlled", "single_arm_trial"})
_CLINICAL = _SAMPLED | {"meta_analysis", "systematic_review", "case_series", "case_report"}
_RANDOMISED_POOL = re.compile(r"\brandomi[sz]ed\b|\bRCTs?\b|\brandomi[sz]ation\b", re.IGNORECASE)
_CONCEALMENT = re.compile(r"\b(?:allocation\s+(?:was\s+)?conceal\w*|conceal\w*\s+allocation|central(?:ly|i[sz]ed)?"
                          r"\s+randomi[sz]\w*|interactive\s+(?:voice|web)[\s\-]response)\b", re.IGNORECASE)


class Reason(BaseModel):
    """One step of the explanation. `steps` is how far it moved the level (0 or negative: down)."""

    text: str = Field(max_length=500)
    evidence_kind: EvidenceKind
    evidence: str = Field(max_length=1000, description="The publication type, field, verbatim quote, "
                                                       "classifier output or registry field relied on.")
    steps: int = 0


class Grade(BaseModel):
    record_id: str
    version: int | None = None
    design: DesignLabel
    phase: str | None = None
    base_level: str
    level: str = Field(description="Rung code after modifiers: 1a (strongest) ... 5 (weakest); see LADDER.")
    rank: int = Field(description="Position of `level` on the ladder, 1 = strongest: sort and filter on this.")
    label: str
    excluded: bool = False
    reasons: list[Reason]
    rubric: str = RUBRIC_ID


def grade(record: Article | Trial, findings: Findings | None = None, *, retracted: bool | None = None,
          deleted: bool = False) -> Grade:
    """Grade one record. `findings` (from `synthesis.extract`) supply sample size, outcomes,
    registrations and early stopping; `retracted`/`deleted` carry catalog state the record alone may
    not show (a retraction notice ingested later, a PubMed deletion)."""
    if findings is None:
        from synthesis.extract import extract  # rules only; the import is late to keep grading light
        findings = extract(record).findings
    if isinstance(record, Trial):
        decision = readers.trial_design(record)
        reasons = [Reason(text=f"design: {_DESIGN_WORDS.get(decision.label, decision.label)} (as registered)",
                          evidence_kind="registry",
                          evidence="; ".join(decision.registry_fields))]
        text = ""
    else:
        raw = readers.record_text(record)
        text = blank_spans(raw, find_instructions(raw))
        decision = readers.decide_design(record, text)
        reasons = _design_reasons(decision)
    base = _base(decision, text, reasons)
    for modifier in MODIFIERS:
        reasons += modifier(_Context(record, findings, decision, text))
    excluded = _exclusions(record, retracted, deleted)
    reasons += excluded
    rank = min(len(LADDER), RANK[base] - sum(r.steps for r in reasons))
    rung = LADDER[rank - 1]
    label = _label(decision, base, rung.code, reasons)
    if excluded:
        label = f"excluded ({excluded[0].text}); otherwise {label}"
    return Grade(record_id=record.record_id, version=findings.version, design=decision.label,
                 phase=decision.phase, base_level=base, level=rung.code, rank=rank, label=label,
                 excluded=bool(excluded), reasons=reasons)


def _label(decision: readers.DesignDecision, base: str, level: str, reasons: list[Reason]) -> str:
    """"randomised controlled trial, phase III: level 1b", plus what moved it off its base rung."""
    design = _DESIGN_WORDS.get(decision.label, decision.label.replace("_", " "))
    phase = f", phase {decision.phase}" if decision.phase and decision.label in _TRIALS | {"other"} else ""
    text = f"{design}{phase}: level {level}"
    down = [r.text.split(":")[0].split(" (")[0] for r in reasons if r.steps]
    if level != base:
        text += f" (base {base}; down for: {'; '.join(down)})"
    return text


_DESIGN_WORDS = {
    "meta_analysis": "meta-analysis", "systematic_review": "systematic review", "rct": "randomised controlled trial",
    "non_randomised_controlled": "non-randomised controlled trial", "single_arm_trial": "single-arm trial",
    "case_control": "case-control study", "cohort": "cohort study", "cross_sectional": "cross-sectional study",
    "case_series": "case series", "case_report": "case report", "preclinical": "preclinical study",
    "narrative_review": "narrative review", "other": "design not determined",
}


# ------------------------------------------------------------------------------------------------
# Design and base level
# ------------------------------------------------------------------------------------------------

def _design_reasons(decision: readers.DesignDecision) -> list[Reason]:
    """Why the design is what it is: the deciding cues, or the classifier's call."""
    name = _DESIGN_WORDS.get(decision.label, decision.label.replace("_", " "))
    out: list[Reason] = []
    label_cues = [c for c in decision.cues if c.aspect == "label"]
    if decision.source == "classifier" and decision.prediction is not None:
        p = decision.prediction
        out.append(Reason(text=f"design: {name}, predicted by the classifier from title and abstract (no "
                               f"publication type or text cue decided it)", evidence_kind="classifier", evidence=_prediction(p)))
    for cue in label_cues:
        if cue.source == "publication_type":
            out.append(Reason(text=f"design: {name} (indexed publication type)", evidence_kind="publication_type",
                              evidence=cue.value))
        elif cue.source == "mesh":
            out.append(Reason(text=f"design: {name} (MeSH heading)", evidence_kind="field",
                              evidence=f"mesh_headings: {cue.value}"))
        else:
            out.append(Reason(text=f"design: {name} (the text says so)", evidence_kind="quote", evidence=cue.value))
    if not out:
        out.append(Reason(text="design not determined: no design publication type, no design wording, and the "
                               "classifier is not confident", evidence_kind="classifier",
                          evidence=_prediction(decision.prediction) if decision.prediction else "no text to classify"))
    if decision.doubt and decision.prediction is not None:
        out.append(Reason(text=f"design in doubt: {decision.doubt}", evidence_kind="classifier",
                          evidence=_prediction(decision.prediction), steps=DOUBT_STEPS))
    elif decision.source != "classifier" and decision.prediction is not None and decision.label != "other":
        out.append(Reason(text="design classifier's view, for comparison", evidence_kind="classifier",
                          evidence=_prediction(decision.prediction)))
    for cue in decision.cues:
        if cue.aspect == "phase":
            kind: EvidenceKind = "publication_type" if cue.source == "publication_type" else "quote"
            out.append(Reason(text=f"phase {decision.phase}", evidence_kind=kind, evidence=cue.value))
    return out


def _prediction(p: object) -> str:
    probabilities = getattr(p, "probabilities", {})
    top = ", ".join(f"{k} {v:.2f}" for k, v in sorted(probabilities.items(), key=lambda kv: -kv[1])[:3])
    terms = ", ".join(getattr(p, "top_terms", [])[:5])
    return f"{getattr(p, 'label', '?')} (probabilities: {top}; terms: {terms})"


def _base(decision: readers.DesignDecision, text: str, reasons: list[Reason]) -> str:
    """The base rung, with the reason when a refinement (phase, pooled designs) decided it."""
    label = decision.label
    if label == "rct" and decision.phase and "III" not in decision.phase and "IV" not in decision.phase:
        reasons.append(Reason(text=f"phase {decision.phase} randomised trial ranks below phase III",
                              evidence_kind="field", evidence=f"phase: {decision.phase}"))
        return "2a"
    if label in ("meta_analysis", "systematic_review"):
        match = _RANDOMISED_POOL.search(text)
        if match:
            reasons.append(Reason(text="pools randomised trials", evidence_kind="quote", evidence=match.group(0)))
            return "1a"
        reasons.append(Reason(text="does not say it pools randomised trials", evidence_kind="field",
                              evidence="title and abstract: no mention of randomised trials"))
        return "2b"
    if label == "other" and decision.phase:
        reasons.append(Reason(text="a clinical trial whose allocation the record does not state",
                              evidence_kind="field", evidence=f"phase: {decision.phase}"))
        return "4a"
    return BASE_RUNG[label]


# ------------------------------------------------------------------------------------------------
# Modifiers
# ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Context:
    record: Article | Trial
    findings: Findings
    decision: readers.DesignDecision
    text: str

    @property
    def evidence_kind(self) -> EvidenceKind:
        return "registry" if isinstance(self.record, Trial) else "field"

    def quote_for(self, field_name: str) -> str | None:
        return next((q.text for q in self.findings.quotes if q.field == field_name), None)


Modifier = Callable[[_Context], list[Reason]]


def sample_size(ctx: _Context) -> list[Reason]:
    if ctx.decision.label not in _SAMPLED:
        return []
    f = ctx.findings
    for key in ("n_randomised", "n_enrolled", "n_analysed"):
        n = getattr(f, key)
        if n is None:
            continue
        quote = ctx.quote_for(key)
        kind: EvidenceKind = "quote" if quote else ctx.evidence_kind
        evidence = quote or f"{key}: {n}"
        if n < SMALL_SAMPLE:
            return [Reason(text=f"small sample: {n} participants (< {SMALL_SAMPLE})", evidence_kind=kind,
                           evidence=evidence, steps=-1)]
        return [Reason(text=f"sample size {n}", evidence_kind=kind, evidence=evidence)]
    return [Reason(text="sample size not stated", evidence_kind="field",
                   evidence="n_randomised, n_enrolled, n_analysed: none found")]


def _main_outcome(findings: Findings) -> str | None:
    """The kind of the primary outcome, else of the first outcome with an estimate."""
    primary = [o.kind for o in findings.outcomes if o.primary]
    if primary:
        return primary[0]
    return next((o.kind for o in findings.outcomes if o.value is not None or o.arm_values), None)


def blinding(ctx: _Context) -> list[Reason]:
    if ctx.decision.label not in _TRIALS:
        return []
    b = ctx.findings.blinding or ctx.decision.blinding
    kind: EvidenceKind = "registry" if isinstance(ctx.record, Trial) else "quote"
    cue = next((c.value for c in ctx.decision.cues if c.aspect == "blinding"), None)
    evidence = cue or (f"masking={ctx.record.design.masking}" if isinstance(ctx.record, Trial) else f"blinding: {b}")
    if b is None:
        return [Reason(text="blinding not stated", evidence_kind="field", evidence="blinding: none found")]
    if b == "open_label":
        main = _main_outcome(ctx.findings)
        if main in PATIENT_REPORTED_KINDS:
            return [Reason(text=f"open-label with a patient-reported primary outcome ({main}): risk of bias",
                           evidence_kind=kind if cue or kind == "registry" else "field", evidence=evidence, steps=-1)]
        return [Reason(text="open-label (outcome assessment not blinded)",
                       evidence_kind=kind if cue or kind == "registry" else "field", evidence=evidence)]
    return [Reason(text=f"{b.replace('_', '-')}: lowers the risk of assessment bias",
                   evidence_kind=kind if cue or kind == "registry" else "field", evidence=evidence)]


def allocation(ctx: _Context) -> list[Reason]:
    if ctx.decision.label != "rct":
        return []
    if isinstance(ctx.record, Trial):
        return [Reason(text="randomised allocation", evidence_kind="registry", evidence="allocation=RANDOMIZED")]
    match = _CONCEALMENT.search(ctx.text)
    if match:
        return [Reason(text="allocation concealed", evidence_kind="quote", evidence=match.group(0))]
    return [Reason(text="allocation concealment not described in the abstract", evidence_kind="field",
                   evidence="title and abstract: no concealment wording")]


def registration(ctx: _Context) -> list[Reason]:
    if ctx.decision.label not in _TRIALS:
        return []
    ids = ctx.findings.registrations
    if ids:
        kind: EvidenceKind = "registry" if isinstance(ctx.record, Trial) else "field"
        return [Reason(text="registered trial", evidence_kind=kind,
                       evidence=f"registrations: {', '.join(ids[:3])}")]
    record = ctx.record
    year = record.published.year if isinstance(record, Article) and record.published else None
    indexed = isinstance(record, Article) and record.citation_status == "MEDLINE"
    if year and year >= REGISTRATION_EXPECTED_FROM and indexed:
        return [Reason(text=f"no trial registration in a MEDLINE record published {year} "
                            f"(expected since {REGISTRATION_EXPECTED_FROM})", evidence_kind="field",
                       evidence="databanks and text: no registry id", steps=-1)]
    return [Reason(text="no trial registration found", evidence_kind="field",
                   evidence="databanks and text: no registry id")]


def endpoint(ctx: _Context) -> list[Reason]:
    if ctx.decision.label not in _CLINICAL or isinstance(ctx.record, Trial):
        return []
    outcomes = ctx.findings.outcomes
    with_estimate = [(i, o) for i, o in enumerate(outcomes) if o.value is not None or o.arm_values]
    os_reported = next(((i, o) for i, o in sorted(with_estimate, key=lambda io: io[1].ci_low is None)
                        if o.kind == "OS"), None)
    if os_reported:
        i, o = os_reported
        return [Reason(text="overall survival reported", evidence_kind="quote" if o.quote else "field",
                       evidence=o.quote or f"outcomes[{i}]: {o.name}")]
    main = _main_outcome(ctx.findings)
    if main in SURROGATE_KINDS:
        i, o = next((i, o) for i, o in enumerate(outcomes) if o.kind == main)
        return [Reason(text=f"surrogate end point ({main}) without overall survival", evidence_kind="quote"
                       if o.quote else "field", evidence=o.quote or f"outcomes[{i}]: {o.name}", steps=-1)]
    return []


def early_stopping(ctx: _Context) -> list[Reason]:
    f = ctx.findings
    if not f.stopped_early or ctx.decision.label not in _TRIALS | {"other"}:
        return []
    if isinstance(ctx.record, Trial):
        why = f"; whyStopped={f.why_stopped}" if f.why_stopped else ""
        return [Reason(text="terminated early (truncated trials overestimate effects)", evidence_kind="registry",
                       evidence=f"overallStatus={f.status}{why}", steps=-1)]
    quote = ctx.quote_for("stopped_early")
    return [Reason(text="stopped early (truncated trials overestimate effects)",
                   evidence_kind="quote" if quote else "field", evidence=quote or "stopped_early: true", steps=-1)]


def concern(ctx: _Context) -> list[Reason]:
    record = ctx.record
    if not isinstance(record, Article):
        return []
    notices = [c.pmid or "?" for c in record.comments_corrections if c.ref_type == EXPRESSION_OF_CONCERN_IN]
    if not notices:
        return []
    return [Reason(text="an expression of concern was published about it", evidence_kind="field",
                   evidence=f"comments_corrections: ExpressionOfConcernIn PMID {', '.join(notices)}", steps=-1)]


def primary_result(ctx: _Context) -> list[Reason]:
    """What the primary comparison found, as the findings models read it (informative: it never moves the level;
    a significant result is not better evidence, but a reader weighing the study wants to see it next to the
    design). Only model-read comparisons with a direction and a quote count."""
    read = [o for o in ctx.findings.outcomes if o.source in ("model", "rules+model") and o.direction and o.quote]
    primary = next((o for o in read if o.primary), None)
    if primary is None:
        return []
    words = {"increased": "significantly increased", "decreased": "significantly decreased",
             "no significant difference": "no significant difference"}[primary.direction]  # type: ignore[index]
    p = f", p {primary.p_comparator or '='} {primary.p_value:g}" if primary.p_value is not None else ""
    conf = f" (model confidence {primary.confidence:.0%})" if primary.confidence is not None else ""
    return [Reason(text=f"primary outcome ({primary.name[:80]}): {words}{p}{conf}", evidence_kind="quote",
                   evidence=primary.quote)]


MODIFIERS: tuple[Modifier, ...] = (sample_size, blinding, allocation, registration, endpoint, early_stopping,
                                   concern, primary_result)


def _exclusions(record: Article | Trial, retracted: bool | None, deleted: bool) -> list[Reason]:
    out: list[Reason] = []
    if isinstance(record, Trial):
        if record.withdrawn:
            out.append(Reason(text="withdrawn before enrolment", evidence_kind="registry",
                              evidence=f"overallStatus={record.overall_status}"))
    else:
        if "Retracted Publication" in record.publication_types:
            out.append(Reason(text="retracted", evidence_kind="publication_type", evidence="Retracted Publication"))
        elif any(c.ref_type == RETRACTION_IN for c in record.comments_corrections):
            notices = ", ".join(c.pmid or "?" for c in record.comments_corrections if c.ref_type == RETRACTION_IN)
            out.append(Reason(text="retracted", evidence_kind="field",
                              evidence=f"comments_corrections: RetractionIn PMID {notices}"))
        elif retracted:
            out.append(Reason(text="retracted", evidence_kind="field",
                              evidence="catalog: a retraction notice in the catalog retracts this record"))
        if record.is_retraction_notice:
            out.append(Reason(text="a retraction notice, not a study", evidence_kind="publication_type",
                              evidence="Retraction of Publication"))
    if deleted:
        out.append(Reason(text="deleted from its source", evidence_kind="field", evidence="catalog state: deleted"))
    return out


def explain(g: Grade) -> str:
    """The grade as lines for people: the verdict, then each reason with its evidence."""
    lines = [f"{g.record_id}: {g.label}",
             f"level {g.level} is where this ladder starts a {LADDER[g.rank - 1].label}"]
    for r in g.reasons:
        step = f" [{r.steps:+d}]" if r.steps else ""
        lines.append(f"  - {r.text}{step}\n      {r.evidence_kind}: {r.evidence}")
    return "\n".join(lines)
