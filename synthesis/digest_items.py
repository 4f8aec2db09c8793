"""Digest items, one record each: its evidence label, its key finding, and the registry facts of a trial.

Why a module of its own: `synthesis.digest` decides *what* is listed (window, relevance, ranking, caps); this
decides *how one record is presented* so a clinician can trust it at a glance.

Evidence labels (`evidence_label`). A badge must never claim more than the grading knows:
- a record whose design could not be determined is "Not graded", with the grading's own reason, not the
  bottom rung (level 5 is the preclinical/opinion rung, and "we could not tell" is not an opinion piece);
- a registered trial (a ClinicalTrials.gov record) with no posted results and no linked publication is a
  registration — a plan, not evidence — so it is badged with its phase, status and enrolment until results
  or a publication exist; then it is graded like any other record.
The grade itself (`Grade.level`, `rank`) is unchanged and still ranks and filters: only the label differs.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ingest.records.article import Article
from ingest.records.trial import Trial
from synthesis import readers
from synthesis.citations import check_sentence, citation_tag
from synthesis.findings import key_outcome
from synthesis.grading import Grade
from synthesis.injection import clean_text
from synthesis.quotes import best_quote
from synthesis.verify import find_quote

if TYPE_CHECKING:
    from synthesis.digest_select import Candidate

log = logging.getLogger(__name__)

QUOTE_MAX_CHARS = 450


# ------------------------------------------------------------------------------------------------
# Registry facts
# ------------------------------------------------------------------------------------------------

_STATUS_WORDS = {
    "NOT_YET_RECRUITING": "not yet recruiting", "RECRUITING": "recruiting", "ENROLLING_BY_INVITATION":
    "enrolling by invitation", "ACTIVE_NOT_RECRUITING": "active, not recruiting", "SUSPENDED": "suspended",
    "TERMINATED": "terminated", "COMPLETED": "completed", "WITHDRAWN": "withdrawn", "UNKNOWN": "unknown status",
    "AVAILABLE": "available", "NO_LONGER_AVAILABLE": "no longer available", "APPROVED_FOR_MARKETING":
    "approved for marketing", "TEMPORARILY_NOT_AVAILABLE": "temporarily not available", "WITHHELD": "withheld",
}


def status_words(status: str | None) -> str:
    return _STATUS_WORDS.get(status or "", (status or "unknown status").replace("_", " ").lower())


_ROMAN = {"0": "0", "1": "I", "2": "II", "3": "III", "4": "IV"}


def phase_words(phases: Iterable[str]) -> str:
    """PHASE2, PHASE3 -> "phase II/phase III" (roman numerals, as trial phases are written)."""
    out = []
    for p in phases:
        if p == "NA":
            continue
        early = p.startswith("EARLY_")
        number = p.removeprefix("EARLY_").removeprefix("PHASE")
        out.append(f"{'early ' if early else ''}phase {_ROMAN.get(number, number)}")
    return "/".join(out)


def registry_text(trial: Trial, changes: Sequence[dict[str, Any]] = ()) -> str:
    """The registry fields as lines of text: with `trial.text` it is what a trial is checked against."""
    lines = [f"Status: {status_words(trial.overall_status)}"]
    if trial.why_stopped:
        lines.append(f"Why stopped: {trial.why_stopped}")
    if phase_words(trial.phases):
        lines.append(f"Phase: {phase_words(trial.phases)}")
    if trial.design.allocation:
        lines.append(f"Allocation: {trial.design.allocation.replace('_', ' ').lower()}")
    if trial.design.enrollment_count is not None:
        kind = f" ({trial.design.enrollment_type.lower()})" if trial.design.enrollment_type else ""
        lines.append(f"Enrolment: {trial.design.enrollment_count} participants{kind}")
    for outcome in trial.primary_outcomes:
        lines.append(f"Primary outcome: {outcome.measure}")
    if trial.results_first_posted and trial.results_first_posted.iso():
        lines.append(f"Results first posted: {trial.results_first_posted.iso()}")
    elif trial.has_results:
        lines.append("Results posted")
    for ch in changes:
        if ch.get("field") == "overall_status":
            lines.append(f"Previous status: {status_words(ch.get('before'))}; status changed to "
                         f"{status_words(ch.get('after'))}")
        elif ch.get("field") == "primary_outcomes":
            lines.append("Primary outcome changed")
    if trial.lead_sponsor:
        lines.append(f"Sponsor: {trial.lead_sponsor.name}")
    return "\n".join(lines)


def source_text(record: Article | Trial, changes: Sequence[dict[str, Any]] = ()) -> str:
    """The text a sentence citing `record` is checked against and quoted from (title + abstract; a trial's text +
    registry), with the passages addressed to a model blanked (`synthesis.injection`)."""
    if isinstance(record, Trial):
        return clean_text(f"{record.text}\n{registry_text(record, changes)}")
    return clean_text(readers.record_text(record))


def _field(text: str | None) -> str:
    """A registry field put into a sentence: one line, and nothing of it when it addresses a model."""
    return " ".join(clean_text(text or "").split())



# ------------------------------------------------------------------------------------------------
# Key findings and badges
# ------------------------------------------------------------------------------------------------

@dataclass
class KeyFinding:
    text: str
    kind: str  # quote | generated
    verified: bool = True
    direction: str | None = None  # the findings models' direction of the result sentence, when it is one
    confidence: float | None = None
    outcome: str | None = None
    evidence: bool = False  # the findings models' result sentence: the preferred support of an overview sentence

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"text": self.text, "kind": self.kind, "verified": self.verified}
        if self.direction:
            out.update(direction=self.direction, direction_badge=DIRECTION_BADGES[self.direction],
                       confidence=self.confidence, outcome=self.outcome)
        return out


BADGE_MIN_CONFIDENCE = 0.5
"""The direction model's calibrated confidence a badge needs: under it a reader gets the result sentence alone."""
DIRECTION_BADGES = {"increased": "▲ significantly increased", "decreased": "▼ significantly decreased",
                    "no significant difference": "● no significant difference"}


def _short_quote(quote: str, query: str) -> str:
    """A long conclusion cut to its best sentence (still verbatim)."""
    quote = quote.strip()
    if len(quote) <= QUOTE_MAX_CHARS:
        return quote
    shorter = best_quote(query, quote)
    return shorter if shorter and len(shorter) <= QUOTE_MAX_CHARS * 2 else quote[:QUOTE_MAX_CHARS].rsplit(" ", 1)[0]


def article_key_finding(article: Article, findings: Any, query: str) -> KeyFinding | None:
    """The primary comparison's result sentence with its direction (the findings models'), else the authors'
    conclusion verbatim, else the abstract sentence that best matches the topic; all from the clean text."""
    text = source_text(article)
    result = key_outcome(findings) if findings is not None else None
    if result is not None and result.quote and result.source in ("model", "rules+model") and \
            find_quote(result.quote, text) is not None:
        sure = (result.confidence or 0.0) >= BADGE_MIN_CONFIDENCE  # below it: the sentence without a badge
        return KeyFinding(_short_quote(result.quote, query), "quote", direction=result.direction if sure else None,
                          confidence=result.confidence if sure else None, outcome=result.name if sure else None,
                          evidence=True)
    conclusion = getattr(findings, "conclusion", None)
    if conclusion:
        quote = _short_quote(conclusion, query)
        if find_quote(quote, text) is not None:
            return KeyFinding(quote, "quote")
    quote = best_quote(query, text)
    if quote and find_quote(quote, text) is not None:
        return KeyFinding(_short_quote(quote, query), "quote")
    return None


def trial_sentences(trial: Trial, reason: str, changes: Sequence[dict[str, Any]]) -> list[str]:
    """Registry facts as sentences (generated, so they are checked before use)."""
    out: list[str] = []
    if reason == "changed":
        fields_changed = {c["field"]: c for c in changes}
        status = fields_changed.get("overall_status")
        if status:
            sentence = (f"Status changed from {status_words(status.get('before'))} to "
                        f"{status_words(status.get('after'))}.")
            if _field(trial.why_stopped) and status.get("after") in ("TERMINATED", "SUSPENDED", "WITHDRAWN"):
                sentence = sentence[:-1] + f"; why stopped: {_field(trial.why_stopped)}."
            out.append(sentence)
        if "has_results" in fields_changed or "results_first_posted" in fields_changed:
            posted = trial.results_first_posted.iso() if trial.results_first_posted else None
            out.append(f"Results posted on ClinicalTrials.gov{f' ({posted})' if posted else ''}.")
        if "primary_outcomes" in fields_changed and trial.primary_outcomes and \
                _field(trial.primary_outcomes[0].measure):
            out.append(f"Primary outcome changed; now: {_field(trial.primary_outcomes[0].measure)}.")
        return out
    what = " ".join(p for p in (phase_words(trial.phases),
                                "randomised" if (trial.design.allocation or "").upper() == "RANDOMIZED" else "",
                                "trial" if trial.design.study_type != "OBSERVATIONAL" else "observational study")
                    if p)
    facts = [f"{what[0].upper()}{what[1:]}, {status_words(trial.overall_status)}"]
    if trial.design.enrollment_count is not None:
        facts.append(f"enrolment {trial.design.enrollment_count} participants")
    if trial.primary_outcomes and _field(trial.primary_outcomes[0].measure):
        facts.append(f"primary outcome: {_field(trial.primary_outcomes[0].measure)}")
    out.append("; ".join(facts) + ".")
    return out


def trial_key_finding(c: Candidate, query: str) -> tuple[KeyFinding | None, int]:
    """Checked registry sentences (how many failed is returned too), else a verbatim quote."""
    trial = c.record
    assert isinstance(trial, Trial)
    source = source_text(trial, c.changes)
    kept, failed = [], 0
    for sentence in trial_sentences(trial, c.reason, c.changes):
        if check_sentence(f"{sentence} {citation_tag(c.record_id)}", {c.record_id: source}).ok:
            kept.append(sentence)
        else:
            failed += 1
            log.info("registry sentence for %s failed its check and was left out: %r", c.record_id, sentence)
    if kept:
        return KeyFinding(" ".join(kept), "generated"), failed
    quote = best_quote(query, clean_text(trial.text))
    return (KeyFinding(_short_quote(quote, query), "quote") if quote else None), failed


def grade_line(g: Grade) -> str:
    """The one-line reason of a badge: what moved the level, else the design's own reason."""
    moved = [r.text for r in g.reasons if r.steps]
    if moved:
        return "; ".join(moved)
    return g.reasons[0].text if g.reasons else g.label


_DESIGN_SHORT = {
    "meta_analysis": "Meta-analysis", "systematic_review": "Systematic review", "rct": "RCT",
    "non_randomised_controlled": "Non-randomised trial", "single_arm_trial": "Single-arm trial", "cohort": "Cohort",
    "case_control": "Case-control", "cross_sectional": "Cross-sectional", "case_series": "Case series",
    "case_report": "Case report", "preclinical": "Preclinical", "narrative_review": "Review",
    "guideline": "Guideline", "editorial": "Editorial", "other": "Design not determined",
}


def design_badge(g: Grade) -> str:
    phase = f" phase {g.phase}" if g.phase and g.design in ("rct", "single_arm_trial", "non_randomised_controlled",
                                                            "other") else ""
    return f"{_DESIGN_SHORT.get(g.design, g.design)}{phase}"


# ------------------------------------------------------------------------------------------------
# Evidence labels
# ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class EvidenceLabel:
    """What the level badge says: `kind` graded | not_graded | registration; `label` the badge text;
    `why` the one line under it. Registrations carry their phase, status and enrolment."""

    kind: str
    label: str
    why: str
    phase: str | None = None
    status: str | None = None
    enrolment: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "label": self.label, "why": self.why}
        if self.kind == "registration":
            out.update(phase=self.phase, status=self.status, enrolment=self.enrolment)
        return out


def is_registration(record: Article | Trial) -> bool:
    """A trial record with neither posted results nor a linked results publication: a plan, not evidence."""
    return isinstance(record, Trial) and not record.has_results and not (
        record.results_first_posted and record.results_first_posted.iso()) and not record.result_pmids


def enrolment_words(trial: Trial) -> str | None:
    count = trial.design.enrollment_count
    if count is None:
        return None
    kind = (trial.design.enrollment_type or "").lower()
    return f"{count} participants{f' ({kind})' if kind else ''}"


def evidence_label(record: Article | Trial, g: Grade) -> EvidenceLabel:
    """The badge of one listed record (see the module docstring for the two cases that are not a level)."""
    if isinstance(record, Trial) and is_registration(record):
        phase = phase_words(record.phases) or None
        status = status_words(record.overall_status)
        enrolment = enrolment_words(record)
        facts = ", ".join(p for p in (phase, status, f"enrolment {enrolment}" if enrolment else "") if p)
        return EvidenceLabel("registration", "Registration" + (f" · {facts}" if facts else ""),
                             "a registered trial with no results posted and no publication linked yet: not "
                             "evidence, so not graded", phase, status, enrolment)
    if g.design == "other" and g.base_level == "5":
        reason = next((r.text for r in g.reasons if r.text.startswith("design not determined")), None)
        return EvidenceLabel("not_graded", "Not graded", reason or "design not determined, so no evidence level")
    return EvidenceLabel("graded", f"Level {g.level}", grade_line(g))
