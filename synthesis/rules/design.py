"""Study design from NLM publication types, MeSH and wording: the label grading starts from.

Evidence grading needs to know what kind of study a record is before it reads a single result, and
it must be able to say why. So the answer is a label from a fixed vocabulary plus the cues that
decided it: a publication type, a MeSH heading, or a quoted phrase with its span in the text.

Order of trust:
1. Specific NLM publication types (indexers read the full paper): "Randomized Controlled Trial",
   "Meta-Analysis", "Case Reports", ... win over anything the abstract says. "Journal Article",
   "Comparative Study", "Multicenter Study" and the like say nothing about design and are ignored.
   Some specific types leave a choice that the text settles: a "Clinical Trial, Phase II" may be
   randomised or single-arm; an "Observational Study" may be a cohort or a case-control study; an
   old "Review" may be a systematic review from before NLM had that type.
2. MeSH study-design headings ("Retrospective Studies", "Animals" without "Humans") and phrases
   in the title and abstract ("randomly assigned", "case-control", "xenograft").
3. Nothing recognisable: "other".
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal, get_args

if TYPE_CHECKING:
    from ingest.records.article import Article

DesignLabel = Literal[
    "meta_analysis", "systematic_review", "rct", "non_randomised_controlled", "single_arm_trial",
    "cohort", "case_control", "cross_sectional", "case_series", "case_report", "preclinical",
    "narrative_review", "guideline", "editorial", "other",
]
DESIGN_LABELS: tuple[DesignLabel, ...] = get_args(DesignLabel)
Blinding = Literal["open_label", "single_blind", "double_blind", "triple_blind"]
Aspect = Literal["label", "phase", "randomised", "blinding", "retraction"]
CueSource = Literal["publication_type", "mesh", "text"]


@dataclass(frozen=True, slots=True)
class Cue:
    """One piece of evidence: what it decided, where it came from, and what it says.

    For text cues `value` is the phrase exactly as written and `span` its place in the text that
    was passed in; for publication types and MeSH headings `span` is None.
    """

    aspect: Aspect
    source: CueSource
    value: str
    span: tuple[int, int] | None = None


@dataclass(frozen=True, slots=True)
class Design:
    """A record's study design and the cues behind it."""

    label: DesignLabel
    phase: str | None = None          # "I", "Ib", "II", "I/II", "III", "IV"
    randomised: bool | None = None
    blinding: Blinding | None = None
    retracted: bool = False           # the record itself is retracted
    retraction_notice: bool = False   # the record is a notice retracting another one
    evidence: tuple[Cue, ...] = ()


# --------------------------------------------------------------------------------------------
# Publication types
# --------------------------------------------------------------------------------------------

# Specific types in order of precedence: the first type present decides (or, for the trial and
# observational groups, narrows the choice the text then settles). "Case Reports" precedes
# "Review" because "a case report and review of the literature" is a case report.
_PUBLICATION_TYPE_LABELS: tuple[tuple[frozenset[str], DesignLabel | str], ...] = (
    (frozenset({"Retraction of Publication", "Published Erratum", "Expression of Concern"}), "other"),
    (frozenset({"Meta-Analysis", "Network Meta-Analysis"}), "meta_analysis"),
    (frozenset({"Systematic Review"}), "systematic_review"),
    (frozenset({"Practice Guideline", "Guideline", "Consensus Development Conference",
                "Consensus Development Conference, NIH"}), "guideline"),
    (frozenset({"Randomized Controlled Trial", "Randomized Controlled Trial, Veterinary"}), "rct"),
    (frozenset({"Controlled Clinical Trial"}), "non_randomised_controlled"),
    (frozenset({"Clinical Trial", "Clinical Trial, Phase I", "Clinical Trial, Phase II",
                "Clinical Trial, Phase III", "Clinical Trial, Phase IV", "Pragmatic Clinical Trial",
                "Adaptive Clinical Trial", "Equivalence Trial", "Clinical Trial, Veterinary"}), "@trial"),
    (frozenset({"Observational Study", "Observational Study, Veterinary"}), "@observational"),
    (frozenset({"Case Reports"}), "case_report"),
    (frozenset({"Review", "Scoping Review"}), "@review"),
    (frozenset({"Editorial", "Comment", "Letter", "News", "Newspaper Article", "Interview",
                "Personal Narrative"}), "editorial"),
)

_PHASE_TYPES = {"Clinical Trial, Phase I": "I", "Clinical Trial, Phase II": "II",
                "Clinical Trial, Phase III": "III", "Clinical Trial, Phase IV": "IV"}


def _decisive_publication_type(types: Iterable[str]) -> tuple[str, list[str]] | None:
    """The first specific group present: its label (or "@group") and the matching types."""
    present = set(types)
    for group, label in _PUBLICATION_TYPE_LABELS:
        matched = sorted(present & group)
        if matched:
            return label, matched
    return None


# --------------------------------------------------------------------------------------------
# Text and MeSH cues
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class _CueRule:
    """A design label and what in the text or MeSH points to it."""

    label: DesignLabel
    pattern: re.Pattern[str]
    mesh: frozenset[str] = frozenset()


def _words(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.VERBOSE | re.IGNORECASE)


# Randomisation stated as this study's method. "previous randomized trials" in a background
# sentence is not, so a few words before the cue can veto it (see `_is_background`).
_RANDOMISED = _words(r"""
    (?<!non-)(?<!non)(?<!quasi-)(?<!not\s)
    \b(?:randomi[sz]ed|randomly\s+(?:assigned|allocated|divided|distributed)|randomi[sz]ation
        |random\s+(?:assignment|allocation))\b
""")
_NON_RANDOMISED = _words(r"\bnon[\s\-]?randomi[sz]ed\b|\bquasi[\s\-]randomi[sz]ed\b|\bnot\s+randomi[sz]ed\b")
_SINGLE_ARM = _words(r"""
    \bsingle[\s\-](?:arm|group|cohort|center,?\s+single[\s\-]arm)\b|\bone[\s\-]arm\b|\buncontrolled\s+(?:trial|study)
""")
_BACKGROUND = _words(r"""
    \b(?:previous|prior|published|existing|earlier|several|many|other|recent|large)\s+(?:\w+\s+){0,2}$
""")

_CUE_RULES: tuple[_CueRule, ...] = (
    # ("Meta-Analysis as Topic" and the like are not used: they say what a paper is about.)
    _CueRule("meta_analysis", _words(r"\bmeta[\s\-]?analy(?:sis|ses|tic)\b|\bmeta[\s\-]?regression\b")),
    _CueRule("systematic_review", _words(r"""
        \bsystematic(?:ally)?\s+(?:literature\s+)?(?:review(?:ed)?|search(?:ed)?)\b|\bPRISMA\b
        |\bCochrane\s+review\b|\bscoping\s+review\b""")),
    _CueRule("guideline", _words(r"""
        \b(?:this|these|present|updated?|new)\s+(?:\w+\s+){0,2}guidelines?\b
        |\bconsensus\s+statement\b|\bexpert\s+consensus\s+(?:panel|statement|recommendations?)\b""")),
    _CueRule("case_report", _words(r"""
        \bwe\s+(?:report|present|describe)\s+(?:a|an|the)\s+(?:\w+\s+){0,2}case\b|\bcase\s+report\b
        |\ba\s+\d{1,3}[\s\-]year[\s\-]old\s+(?:man|woman|male|female|boy|girl|patient|child)\b""")),
    _CueRule("case_series", _words(r"""
        \bcase\s+series\b|\bwe\s+(?:report|present|describe)\s+(?:\d+|two|three|four|five|six|seven
        |eight|nine|ten)\s+(?:cases|patients)\b""")),
    _CueRule("case_control", _words(r"\bcase[\s\-]+control\b|\bmatched\s+controls\b"),
             frozenset({"Case-Control Studies"})),
    _CueRule("cross_sectional", _words(r"\bcross[\s\-]sectional\b|\bsurvey\b|\bquestionnaire[\s\-]based\b"),
             frozenset({"Cross-Sectional Studies"})),
    _CueRule("cohort", _words(r"""
        \bcohort\b|\bretrospective(?:ly)?\b|\bprospective(?:ly)?\s+(?:\w+\s+){0,2}(?:study|analysis|collected
        |followed|registry|database)\b|\bregistry\b|\bpopulation[\s\-]based\b|\blongitudinal\s+study\b
        |\bmedical\s+records\b|\bchart\s+review\b
        |\b(?:institutional|hospital|national|claims|administrative|insurance)\s+databases?\b"""),
             frozenset({"Cohort Studies", "Retrospective Studies", "Prospective Studies",
                        "Longitudinal Studies", "Follow-Up Studies", "Registries"})),
    _CueRule("preclinical", _words(r"""
        \b(?:in\s+vitro|mice|mouse|murine|rats?|rabbits?|zebrafish|xenografts?|cell\s+lines?|organoids?
        |cultured\s+cells|patient[\s\-]derived\s+xenografts?|PDX|nude\s+mice|in\s+vivo\s+models?)\b"""),
             frozenset({"Cell Line, Tumor", "Xenograft Model Antitumor Assays", "Disease Models, Animal",
                        "Mice", "Mice, Nude", "Rats", "Cell Line", "Cell Proliferation"})),
    _CueRule("narrative_review", _words(r"""
        \b(?:this|the\s+present|our)\s+(?:narrative\s+|mini[\s\-]?)?review\b|\bwe\s+(?:review|summari[sz]e)\b
        |\breview\s+of\s+(?:the\s+)?(?:current\s+)?literature\b|\bin\s+this\s+(?:article|overview)\b
        |\bhere,?\s+we\s+(?:review|discuss|summari[sz]e)\b""")),
)
_RULES_BY_LABEL = {rule.label: rule for rule in _CUE_RULES}


def _is_background(text: str, start: int) -> bool:
    """True when the words just before a cue make it about other studies ("previous randomized")."""
    return bool(_BACKGROUND.search(text[max(0, start - 40):start]))


def _text_cue(pattern: re.Pattern[str], text: str, aspect: Aspect = "label",
              skip_background: bool = False) -> Cue | None:
    for match in pattern.finditer(text):
        if skip_background and _is_background(text, match.start()):
            continue
        return Cue(aspect, "text", match.group(0), match.span())
    return None


def _cue_for(label: DesignLabel, text: str, mesh: set[str]) -> Cue | None:
    """The first text phrase, else MeSH heading, that points to `label`."""
    rule = _RULES_BY_LABEL[label]
    if cue := _text_cue(rule.pattern, text):
        return cue
    for heading in sorted(mesh & rule.mesh):
        return Cue("label", "mesh", heading)
    return None


def _preclinical_cues(text: str, mesh: set[str]) -> list[Cue]:
    """Distinct preclinical cues (by lower-cased phrase), MeSH "Animals" without "Humans" included."""
    rule = _RULES_BY_LABEL["preclinical"]
    seen: dict[str, Cue] = {}
    for match in rule.pattern.finditer(text):
        seen.setdefault(match.group(0).lower().rstrip("s"), Cue("label", "text", match.group(0), match.span()))
    for heading in sorted(mesh & rule.mesh):
        seen.setdefault(heading.lower(), Cue("label", "mesh", heading))
    if "Animals" in mesh and "Humans" not in mesh:
        seen.setdefault("animals", Cue("label", "mesh", "Animals (without Humans)"))
    return list(seen.values())


# --------------------------------------------------------------------------------------------
# Phase and blinding
# --------------------------------------------------------------------------------------------

_ROMAN = {"1": "I", "2": "II", "3": "III", "4": "IV", "0": "0"}
_PHASE = re.compile(
    r"""
    \bphase[\s\-]*
    (?P<first>IV|I{1,3}|[0-4])(?P<first_sub>[ab])?                  # "III", "3", "Ib"
    (?:\s*(?:/|-|–|and|to)\s*(?:phase\s*)?
       (?P<second>IV|I{1,3}|[1-4])(?P<second_sub>[ab])?)?            # "I/II", "2-3", "Ib/II"
    \b
    (?=[^.;]{0,60}?\b(?:trials?|stud(?:y|ies)|clinical|programme|program|evaluation|portion|part|cohort)\b)
    """,
    re.VERBOSE | re.IGNORECASE,
)


def _roman(numeral: str, sub: str | None) -> str:
    return _ROMAN.get(numeral, numeral.upper()) + (sub.lower() if sub else "")


def phase_from_text(text: str) -> tuple[str | None, Cue | None]:
    """The trial phase a text states ("phase 3 trial" -> "III", "phase Ib/II study" -> "Ib/II").

    A phase must be followed by a trial word within the clause, so cell-cycle phases ("G2/M phase",
    "S phase") and study periods ("the second phase of follow-up") are not read as trial phases.
    """
    match = _PHASE.search(text)
    if not match:
        return None, None
    phase = _roman(match.group("first"), match.group("first_sub"))
    if match.group("second"):
        phase += "/" + _roman(match.group("second"), match.group("second_sub"))
    return phase, Cue("phase", "text", match.group(0), match.span())


def _phase_from_types(types: Iterable[str]) -> str | None:
    phases = sorted({_PHASE_TYPES[t] for t in types if t in _PHASE_TYPES}, key=["I", "II", "III", "IV"].index)
    return "/".join(phases) if phases else None


_BLINDING: tuple[tuple[Blinding, re.Pattern[str], frozenset[str]], ...] = (
    ("triple_blind", _words(r"\btriple[\s\-](?:blind(?:ed)?|mask(?:ed)?)\b"), frozenset()),
    ("double_blind", _words(r"\bdouble[\s\-](?:blind(?:ed)?|mask(?:ed)?|dummy)\b"), frozenset({"Double-Blind Method"})),
    ("open_label", _words(r"\bopen[\s\-]label(?:ed)?\b|\bunblinded\b|\bnon[\s\-]?blinded\b|\bunmasked\b"), frozenset()),
    ("single_blind", _words(r"""
        \bsingle[\s\-](?:blind(?:ed)?|mask(?:ed)?)\b
        |\b(?:assessor|observer|evaluator|rater|investigator|outcome[\s\-]assessor)[\s\-]blind(?:ed)?\b"""),
     frozenset({"Single-Blind Method"})),
)


def blinding_from(text: str, mesh: Iterable[str] = ()) -> tuple[Blinding | None, Cue | None]:
    """The masking a study reports; the strongest stated wins ("double-blind ... open-label
    extension" is double-blind)."""
    headings = set(mesh)
    for blinding, pattern, mesh_terms in _BLINDING:
        if cue := _text_cue(pattern, text, aspect="blinding"):
            return blinding, cue
        for heading in sorted(headings & mesh_terms):
            return blinding, Cue("blinding", "mesh", heading)
    return None, None


# --------------------------------------------------------------------------------------------
# Deciding
# --------------------------------------------------------------------------------------------

def _trial_label(text: str, phase: str | None) -> tuple[DesignLabel, list[Cue]]:
    """A trial's design from its wording: randomised, non-randomised controlled, or single-arm.

    With no wording either way, phase I and II trials are labelled single-arm (their usual design)
    and other trials "other": a phase III trial is probably randomised, but "probably" is not a cue.
    """
    if cue := _text_cue(_NON_RANDOMISED, text):
        if single := _text_cue(_SINGLE_ARM, text):
            return "single_arm_trial", [cue, single]
        return "non_randomised_controlled", [cue]
    if cue := _text_cue(_RANDOMISED, text, skip_background=True):
        return "rct", [cue]
    if cue := _text_cue(_SINGLE_ARM, text):
        return "single_arm_trial", [cue]
    if phase and phase.split("/")[0].rstrip("ab") in ("0", "I", "II"):
        return "single_arm_trial", []
    return "other", []


_OBSERVATIONAL_KINDS: tuple[DesignLabel, ...] = ("case_series", "case_control", "cross_sectional", "cohort")
_POOLED_KINDS: tuple[DesignLabel, ...] = ("meta_analysis", "systematic_review")
_SYNTHESIS_KINDS: tuple[DesignLabel, ...] = ("meta_analysis", "systematic_review", "guideline")
_CASE_AND_SURVEY_KINDS: tuple[DesignLabel, ...] = ("case_report", "case_series", "case_control", "cross_sectional")


def _first_cued(labels: tuple[DesignLabel, ...], text: str, mesh: set[str]) -> tuple[DesignLabel, list[Cue]] | None:
    """The first of `labels` that the text or MeSH points to, with its cue."""
    for label in labels:
        if cue := _cue_for(label, text, mesh):
            return label, [cue]
    return None


def _observational_label(text: str, mesh: set[str]) -> tuple[DesignLabel, list[Cue]]:
    """An observational study's kind from its wording; cohort when nothing narrows it."""
    return _first_cued(_OBSERVATIONAL_KINDS, text, mesh) or ("cohort", [])


def _review_label(text: str) -> tuple[DesignLabel, list[Cue]]:
    """A "Review" is narrative unless the text says it is systematic or pools data."""
    return _first_cued(_POOLED_KINDS, text, set()) or ("narrative_review", [])


def _label_from_text(text: str, mesh: set[str]) -> tuple[DesignLabel, list[Cue]]:
    """The design from wording and MeSH alone, in order of how decisive a cue is."""
    if cued := _first_cued(_SYNTHESIS_KINDS, text, mesh):
        return cued
    phase, phase_cue = phase_from_text(text)
    trial_label, trial_cues = _trial_label(text, phase)
    if trial_cues:
        return trial_label, trial_cues
    if phase_cue is not None:  # "a phase II study" with no word on allocation
        return trial_label, [replace(phase_cue, aspect="label")]
    if cued := _first_cued(_CASE_AND_SURVEY_KINDS, text, mesh):
        return cued
    preclinical = _preclinical_cues(text, mesh)
    cohort = _cue_for("cohort", text, mesh)
    # Translational papers mention patients too: two distinct lab cues outweigh one cohort cue.
    if len(preclinical) >= 2 or (preclinical and cohort is None):
        return "preclinical", preclinical
    if cohort:
        return "cohort", [cohort]
    if cue := _cue_for("narrative_review", text, mesh):
        return "narrative_review", [cue]
    return "other", []


def _randomised(label: DesignLabel, text: str, mesh: set[str]) -> tuple[bool | None, Cue | None]:
    """Whether allocation was random: True for an RCT, False where something says it was not
    (a non-randomised or single-arm cue, a "Controlled Clinical Trial"), else read from the text.
    A phase II trial labelled single-arm only by default stays None: nobody said."""
    if label == "rct":
        return True, None
    for pattern in (_NON_RANDOMISED, _SINGLE_ARM):
        if cue := _text_cue(pattern, text, aspect="randomised"):
            return False, cue
    if label == "non_randomised_controlled":
        return False, None
    if label in ("meta_analysis", "systematic_review", "narrative_review", "guideline", "editorial"):
        return None, None  # these talk about randomised trials without being one
    if cue := _text_cue(_RANDOMISED, text, aspect="randomised", skip_background=True):
        return True, cue
    if "Random Allocation" in mesh:
        return True, Cue("randomised", "mesh", "Random Allocation")
    return None, None


def classify_design(publication_types: Iterable[str] = (), text: str = "",
                    mesh_headings: Iterable[str] = ()) -> Design:
    """The design of a record from its publication types, title + abstract text and MeSH names.

    Spans in the evidence index into `text` as passed.
    """
    types = list(publication_types)
    mesh = set(mesh_headings)

    phase_cue: Cue | None
    if phase := _phase_from_types(types):
        phase_cue = Cue("phase", "publication_type", ", ".join(t for t in types if t in _PHASE_TYPES))
    else:
        phase, phase_cue = phase_from_text(text)

    decisive = _decisive_publication_type(types)
    if decisive is None:
        label, cues = _label_from_text(text, mesh)
    else:
        group, matched = decisive
        cues = [Cue("label", "publication_type", t) for t in matched]
        if group == "@trial":
            label, refined = _trial_label(text, phase)
        elif group == "@observational":
            label, refined = _observational_label(text, mesh)
        elif group == "@review":
            label, refined = _review_label(text)
        else:
            label, refined = group, []  # type: ignore[assignment]
        cues += refined

    evidence = list(cues)
    if not _has_phase(label):
        phase, phase_cue = None, None  # a meta-analysis "of phase III trials" has no phase
    if phase_cue:
        evidence.append(phase_cue)
    randomised, randomised_cue = _randomised(label, text, mesh)
    blinding, blinding_cue = blinding_from(text, mesh)
    evidence += [cue for cue in (randomised_cue, blinding_cue) if cue]

    retracted = "Retracted Publication" in types
    notice = "Retraction of Publication" in types
    evidence += [Cue("retraction", "publication_type", t)
                 for t in ("Retracted Publication", "Retraction of Publication") if t in types]
    return Design(label=label, phase=phase, randomised=randomised, blinding=blinding,
                  retracted=retracted, retraction_notice=notice, evidence=tuple(evidence))


def _has_phase(label: DesignLabel) -> bool:
    """Only trials have phases; a meta-analysis "of phase III trials" does not."""
    return label in ("rct", "non_randomised_controlled", "single_arm_trial", "other")


def design_of(article: Article) -> Design:
    """`classify_design` for an Article: title and abstract (as a reader sees it) and MeSH."""
    text = "\n".join(part for part in (article.title, article.abstract_text) if part)
    return classify_design(article.publication_types, text, (h.descriptor for h in article.mesh_headings))
