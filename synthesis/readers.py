"""Deterministic readers that turn a record into findings: the `none` backend, the base every LLM
answer is merged into, and the evidence grading cites.

Articles are read from their text (title + abstract) with `synthesis.rules` and a few readers of
their own here (population, arms, conclusion, primary end point, early stopping), plus the
committed design classifier for records that have no publication types yet. Trials are read from
their registry fields, which are already structured. Everything read from text keeps its span,
so it can be quoted verbatim.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from ingest.records.article import Article
from ingest.records.common import find_nct_ids
from ingest.records.trial import Trial
from synthesis.design_classifier import DesignPrediction, predict_design
from synthesis.findings import Blinding, Outcome, OutcomeKind, Population, Quote, Source
from synthesis.rules import Effect, classify_design, extract_effects, outcome_mentions, sample_sizes
from synthesis.rules.design import Cue, DesignLabel

# The model card's advice: count a record as an RCT on text alone only at rct_probability >= 0.6.
CLASSIFIER_THRESHOLD = 0.6

Span = tuple[int, int]


def record_text(record: Article | Trial) -> str:
    """The text findings are read from and verified against: an article's title and abstract as a
    reader sees them (the layout `design_of` uses, so cue spans agree), or a trial's text fields."""
    if isinstance(record, Trial):
        return record.text
    return "\n".join(part for part in (record.title, record.abstract_text) if part)


def section_spans(article: Article) -> list[tuple[str, str | None, Span]]:
    """(label, NLM category, span of the section's text in `record_text`) for each abstract section."""
    pos = len(article.title) + 1 if article.title and article.abstract else 0
    out = []
    for section in article.abstract:
        start = pos + (len(section.label) + 2 if section.label else 0)
        end = start + len(section.text)
        out.append((section.label or "", section.nlm_category, (start, end)))
        pos = end + 1
    return out


# ------------------------------------------------------------------------------------------------
# Design
# ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DesignDecision:
    """A record's design and why: `source` says what decided the label; `cues` are the rule cues
    (publication types, MeSH, phrases with spans); `prediction` the classifier's view when it was
    consulted; `doubt` a sentence when the label stands against the classifier."""

    label: DesignLabel
    source: Source
    phase: str | None = None
    randomised: bool | None = None
    blinding: Blinding | None = None
    cues: tuple[Cue, ...] = ()
    prediction: DesignPrediction | None = None
    doubt: str | None = None
    registry_fields: tuple[str, ...] = ()


def _label_source(cues: Iterable[Cue]) -> Source:
    sources = {c.source for c in cues if c.aspect == "label"}
    if "publication_type" in sources:
        return "publication_type"
    if "text" in sources:
        return "rules"
    return "mesh" if "mesh" in sources else "rules"


def decide_design(article: Article, text: str | None = None) -> DesignDecision:
    """The design of an article: publication types first; without them, the rule cues in the text
    and MeSH checked against (or, where they say nothing, replaced by) the committed classifier.

    `text` is `record_text(article)`, possibly with planted instructions blanked out.
    """
    text = record_text(article) if text is None else text
    design = classify_design(article.publication_types, text, (h.descriptor for h in article.mesh_headings))
    source = _label_source(design.evidence)
    common = dict(phase=design.phase, randomised=design.randomised, blinding=design.blinding,
                  cues=design.evidence)
    if source == "publication_type":
        return DesignDecision(design.label, source, **common)
    prediction = _predict(article, text)
    if design.label == "rct":
        doubt = None
        if prediction is None or prediction.rct_probability < CLASSIFIER_THRESHOLD:
            p = prediction.rct_probability if prediction else 0.0
            doubt = (f"the text reads as randomised but the design classifier gives rct probability {p:.2f}, "
                     f"below the {CLASSIFIER_THRESHOLD} its model card asks for")
        return DesignDecision("rct", source, prediction=prediction, doubt=doubt, **common)
    if design.label != "other" or prediction is None:
        return DesignDecision(design.label, source, prediction=prediction, **common)
    best = max(prediction.probabilities.items(), key=lambda kv: kv[1])
    if best[1] >= CLASSIFIER_THRESHOLD:
        label: DesignLabel = best[0]  # type: ignore[assignment]  # classifier labels are design labels
        randomised = True if label == "rct" else design.randomised
        return DesignDecision(label, "classifier", prediction=prediction,
                              **{**common, "randomised": randomised})
    return DesignDecision("other", "rules", prediction=prediction, **common)


def _predict(article: Article, text: str) -> DesignPrediction | None:
    """The classifier on (title, abstract) as they stand in `text` (so blanked passages stay blank)."""
    cut = len(article.title) if article.title else 0
    title, abstract = text[:cut], text[cut + 1:] if article.title else text
    if not (title.strip() or abstract.strip()):
        return None
    return predict_design(title, abstract)


_TRIAL_PHASES = {"EARLY_PHASE1": "0", "PHASE1": "I", "PHASE2": "II", "PHASE3": "III", "PHASE4": "IV"}
_MASKING: dict[str, Blinding] = {"NONE": "open_label", "SINGLE": "single_blind", "DOUBLE": "double_blind",
                                 "TRIPLE": "triple_blind", "QUADRUPLE": "triple_blind"}
_OBSERVATIONAL: dict[str, DesignLabel] = {"COHORT": "cohort", "CASE_CONTROL": "case_control",
                                          "CASE_ONLY": "case_series", "ECOLOGIC_OR_COMMUNITY": "cross_sectional"}


def trial_design(trial: Trial) -> DesignDecision:
    """The design a registration states, from designModule fields (named in `registry_fields`)."""
    d = trial.design
    phases = [_TRIAL_PHASES[p] for p in d.phases if p in _TRIAL_PHASES]
    phase = "/".join(phases) or None
    blinding = _MASKING.get(d.masking or "")
    used = [f"studyType={d.study_type}"]
    randomised: bool | None = None
    label: DesignLabel = "other"
    if d.study_type == "INTERVENTIONAL":
        used.append(f"allocation={d.allocation}")
        if d.allocation == "RANDOMIZED":
            label, randomised = "rct", True
        elif d.intervention_model == "SINGLE_GROUP":
            label, randomised = "single_arm_trial", False
            used.append("interventionModel=SINGLE_GROUP")
        elif d.allocation == "NON_RANDOMIZED":
            label, randomised = "non_randomised_controlled", False
    elif d.study_type == "OBSERVATIONAL":
        used.append(f"observationalModel={d.observational_model}")
        label = _OBSERVATIONAL.get(d.observational_model or "", "cohort")
        if d.time_perspective == "CROSS_SECTIONAL":
            label = "cross_sectional"
            used.append("timePerspective=CROSS_SECTIONAL")
    if phase:
        used.append("phases=" + ",".join(d.phases))
    if d.masking:
        used.append(f"masking={d.masking}")
    return DesignDecision(label, "registry", phase=phase, randomised=randomised, blinding=blinding,
                          registry_fields=tuple(used))


# ------------------------------------------------------------------------------------------------
# Population, arms, conclusion
# ------------------------------------------------------------------------------------------------

_SPECIFIC_CANCER = re.compile(
    r"\b(?:(?i:cancers?|carcinomas?|adenocarcinomas?|melanomas?|lymphomas?|leuka?emias?|myelomas?|sarcomas?"
    r"|gliomas?|glioblastomas?|mesotheliomas?|neuroblastomas?|blastomas?|seminomas?|thymomas?)"
    r"|NSCLC|SCLC|HCC|m?CRC|AML|CLL|CML|DLBCL|RCC|GIST|m?CRPC|TNBC|HNSCC)\b")
_GENERIC_CANCER = re.compile(r"\b(?i:(?:solid\s+)?(?:tumou?rs?|neoplasms?|malignanc(?:y|ies)))\b")
_MODIFIER_STOP = frozenset("""
    a an the of in with for and or to from by on at as is was were are be been had have has who which that
    patients patient women men children adults people participants subjects among versus vs after before
    against into including than this these those their our its all any each other new received receiving
    treated untreated previously diagnosed study trial phase randomized randomised
""".split())


def _cancer_phrase(text: str, match: re.Match[str]) -> Span:
    """Extend a cancer noun leftwards over up to four modifiers ("advanced non-small-cell lung")."""
    start = match.start()
    words = list(re.finditer(r"[A-Za-z0-9][\w\-/+]*", text[max(0, start - 80):start]))
    offset = max(0, start - 80)
    taken = 0
    for word in reversed(words):
        gap = text[offset + word.end():start]
        if taken == 4 or word.group(0).lower() in _MODIFIER_STOP or not re.fullmatch(r"\s+", gap):
            break
        if word.group(0)[0].isdigit():
            break
        start = offset + word.start()
        taken += 1
    return start, match.end()


def cancer_type(text: str, title_end: int) -> Span | None:
    """Span of the population's cancer: a specific cancer named in the title, else the first in the
    abstract; a generic "solid tumours" only when nothing specific is named."""
    for pattern in (_SPECIFIC_CANCER, _GENERIC_CANCER):
        matches = list(pattern.finditer(text))
        if matches:
            in_title = [m for m in matches if m.end() <= title_end]
            return _cancer_phrase(text, (in_title or matches)[0])
    return None


_STAGE = re.compile(r"""
    \bstage\s+(?:[0IV]{1,4}|[0-4])[A-Ca-c]?(?:\s*(?:-|–|to|or|and|/)\s*(?:[IV]{1,4}|[1-4])[A-Ca-c]?)?(?![\w])
  | \b(?:locally\s+advanced|advanced|metastatic|early[\s\-]stage|unresectable|resected|resectable|recurrent
      |relapsed(?:\s+(?:or|and|/)\s+refractory)?|refractory|inoperable|operable|limited[\s\-]stage
      |extensive[\s\-]stage|high[\s\-]risk|locali[sz]ed|non[\s\-]metastatic|adjuvant|neoadjuvant|perioperative)\b
""", re.VERBOSE | re.IGNORECASE)
_LINE = re.compile(r"""
    \b(?:first|second|third|fourth|later|subsequent|1st|2nd|3rd|4th)[\s\-]line\b|\bpreviously\s+untreated\b
  | \b(?:treatment|chemotherapy)[\s\-]na[iï]ve\b|\bpreviously\s+treated\b|\b(?:heavily\s+)?pre[\s\-]?treated\b
  | \bmaintenance\b|\bsalvage\b
""", re.VERBOSE | re.IGNORECASE)
_GENES = (r"BRAF|B-RAF|KRAS|NRAS|EGFR|ALK|ROS1|RET|NTRK[1-3]?|HER2|ERBB2|BRCA[12]?|PIK3CA|PTEN|IDH[12]|FLT3"
          r"|NPM1|TP53|KIT|PDGFRA|FGFR[1-4]?|ESR1|PD-L1|PD-1|CTLA-4|MSI-H|dMMR|pMMR|BCR-ABL1?|JAK2|MGMT|BCMA"
          r"|CD20|CD19|CD30|CD38|HPV|EBV|MET")
_STATUS = (r"mutat(?:ed|ion|ions|ant)|positive|negative|amplified|amplification|overexpress(?:ing|ion|ed)"
           r"|rearranged|rearrangement|fusion(?:s|-positive)?|wild[\s\-]type|altered|alteration|deficient"
           r"|proficient|high|low|expression|expressing")
_BIOMARKER = re.compile(rf"""
    (?<![\w\-])(?:[A-Z]\d{{2,4}}[A-Z](?:\s*(?:or|/|and)\s*[A-Z]\d{{2,4}}[A-Z])*\s+)?   # "V600E or V600K BRAF"
    (?:{_GENES})(?![\w])
    (?:[\s\-]?(?:[A-Z]\d{{2,4}}[A-Z]|exon\s+\d+(?:\s+\w+)?)|[\s\-](?:{_STATUS}))*
  | (?<![\w\-])(?:estrogen|oestrogen|progesterone|hormone|androgen)[\s\-]receptor[\s\-](?:positive|negative)
  | (?<![\w\-])(?:ER|PR|HR|AR)[\s\-]?(?:positive|negative|\+|-)(?=[\s,;)/])
""", re.VERBOSE)


def _distinct(texts: Iterable[str], limit: int) -> list[str]:
    seen: dict[str, str] = {}
    for text in texts:
        key = re.sub(r"[\s\-]+", " ", text.lower()).strip()
        if key and key not in seen:
            seen[key] = text
    return list(seen.values())[:limit]


def population(text: str, title_end: int) -> tuple[Population, list[Quote]]:
    """Cancer type, stage or setting, biomarkers and line of therapy, each as written in `text`."""
    quotes: list[Quote] = []
    cancer = cancer_type(text, title_end)
    cancer_text = None
    if cancer:
        cancer_text = text[cancer[0]:cancer[1]][:200]
        quotes.append(Quote(field="population.cancer_type", text=cancer_text, start=cancer[0], end=cancer[1]))
    stages = _distinct((m.group(0) for m in _STAGE.finditer(text)), 3)
    line = _LINE.search(text)
    markers = _biomarkers(text)
    return Population(cancer_type=cancer_text, stage_setting=", ".join(stages)[:200] or None,
                      biomarkers=markers, line_of_therapy=line.group(0)[:100] if line else None), quotes


def _biomarkers(text: str) -> list[str]:
    """One entry per gene, the most specific wording ("BRAF V600E" over "BRAF")."""
    best: dict[str, str] = {}
    for match in _BIOMARKER.finditer(text):
        phrase = re.sub(r"\s+", " ", match.group(0)).strip()[:80]
        gene = re.search(rf"(?:{_GENES})|receptor|\b(?:ER|PR|HR|AR)\b", phrase)
        key = (gene.group(0) if gene else phrase).upper().replace("-", "")
        if len(phrase) > len(best.get(key, "")):
            best[key] = phrase
    return list(best.values())[:10]


_ARMS_RECEIVE = re.compile(r"""
    \bto\s+(?:receive\s+)?(?:either\s+)?(?P<a>[^,;.()]{2,80}?)(?:\s*\([^)]{0,80}\))?(?:,[^;.]{0,100}?,)?
    \s+or\s+(?P<b>[^,;.()]{2,80}?)
    (?=\s*(?:[,;.(]|$)|\s+(?:in\s+an?\b|at\b|for\b|every\b|once\b|twice\b|daily\b|until\b|with\s+stratification))
""", re.VERBOSE | re.IGNORECASE)
_ARMS_VERSUS = re.compile(r"""
    (?P<a>[A-Za-z][\w\-+/]*(?:\s+[\w\-+/]+){0,5}?)\s+(?:versus|vs\.?|compared\s+(?:with|to))\s+
    (?P<b>[A-Za-z][\w\-+/]*(?:\s+[\w\-+/]+){0,5}?)(?=\s+(?:in|for|as|among|with|on|after)\b|\s*[:,.;?]|\s*$)
""", re.VERBOSE | re.IGNORECASE)
_LEAD_IN = re.compile(r"^.*\b(?:of|trial|study|comparing|comparison|between)\s+", re.IGNORECASE)


def arms(text: str, title_end: int) -> tuple[list[str], str | None, list[Quote]]:
    """Interventions and comparator from "assigned to receive X or Y" or a "X versus Y" title."""
    match = _ARMS_RECEIVE.search(text)
    if match is None:
        match = _ARMS_VERSUS.search(text, 0, title_end) or _ARMS_VERSUS.search(text)
    if match is None:
        return [], None, []
    a, b = (_LEAD_IN.sub("", match.group(g)).strip() for g in ("a", "b"))
    if not a or not b:
        return [], None, []
    quote = Quote(field="interventions", text=text[match.start():match.end()], start=match.start(), end=match.end())
    return [a[:200]], b[:200], [quote]


_CONCLUSION_LABEL = re.compile(r"conclusion|interpretation|implication", re.IGNORECASE)
_CONCLUSION_LEAD = re.compile(
    r"(?:^|(?<=[.!?]\s)|(?<=\n))(?:In\s+conclusion|In\s+summary|To\s+conclude|We\s+conclude|Overall,"
    r"|(?:These|Our|The(?:se)?)\s+(?:results|findings|data)\s+(?:suggest|indicate|show|demonstrate|support|confirm))")
_TRAILER = re.compile(r"\s*\((?:Funded|Supported|Sponsored)\b.*$|\s*(?:Trial\s+)?registration\s*:.*$",
                      re.IGNORECASE | re.DOTALL)


def conclusion(article: Article, text: str) -> Span | None:
    """The authors' conclusion: the CONCLUSIONS / INTERPRETATION section, else from "In conclusion,"
    (or "These results suggest ...") to the end; funding and registration trailers cut off."""
    for label, category, span in reversed(section_spans(article)):
        if _CONCLUSION_LABEL.search(label) or (category or "").upper() == "CONCLUSIONS":
            return trim(text, span)
    leads = list(_CONCLUSION_LEAD.finditer(text))
    if leads:
        return trim(text, (leads[-1].start(), len(text)))
    return None


def trim(text: str, span: Span) -> Span | None:
    """`span` without surrounding whitespace and without a funding / registration trailer."""
    start, end = span
    piece = text[start:end]
    cut = _TRAILER.search(piece)
    if cut:
        end = start + cut.start()
    while end > start and text[end - 1].isspace():
        end -= 1
    while start < end and text[start].isspace():
        start += 1
    return (start, end) if end > start else None


_PRIMARY = re.compile(r"""
    (?P<before>[^.;:]{3,120}?)\s+(?:was|were|is)\s+the\s+primary\s+(?:end[\s\-]?points?|outcomes?|objectives?)
  | \bprimary\s+(?:end[\s\-]?points?|outcomes?|objectives?)\s+(?:was|were|is|included)\s+(?P<after>[^.;]{3,120})
  | \bprimary\s+(?:end[\s\-]?points?|outcomes?)\s*[:(]\s*(?P<colon>[^.;)]{3,120})
""", re.VERBOSE | re.IGNORECASE)

_STOPPED = re.compile(r"""
    \b(?:stopped|terminated|halted|closed|discontinued)\s+(?:early|prematurely)\b
  | \bearly\s+(?:stopping|termination|closure)\b
  | \b(?:stopped|terminated|halted)\s+(?:at|after)\s+(?:the\s+|a\s+)?(?:first\s+|second\s+|planned\s+|pre-?specified\s+)?interim\s+analysis
""", re.VERBOSE | re.IGNORECASE)

_REGISTRY_ID = re.compile(r"\b(?:NCT\d{8}|ISRCTN\d{8}|ACTRN\d{14}|ChiCTR[\w\-]{6,20}|UMIN\d{9}|DRKS\d{8}"
                          r"|EudraCT\s*(?:No\.?|number)?\s*:?\s*\d{4}-\d{6}-\d{2}|JapicCTI-\d{6}|CTRI/\d{4}/\d+/\d+)\b")


def primary_outcome(text: str) -> tuple[OutcomeKind, str, Span] | None:
    """The outcome the record calls primary: (kind, name as written, span of the statement)."""
    match = _PRIMARY.search(text)
    if not match:
        return None
    group = next(g for g in ("before", "after", "colon") if match.group(g))
    name_span = match.span(group)
    mentions = outcome_mentions(text[name_span[0]:name_span[1]])
    kind = outcome_kind(mentions[-1][0] if group == "before" and mentions else mentions[0][0] if mentions else None)
    name = text[name_span[0]:name_span[1]].strip()
    return kind, name[-200:], match.span()


def stopped_early(text: str) -> Span | None:
    match = _STOPPED.search(text)
    return match.span() if match else None


def registrations(article: Article, text: str) -> list[str]:
    """Trial registry ids: the article's data-bank NCT ids, then the ids named in `text` (the clean text: an id
    in a passage addressed to a model is planted, not a registration)."""
    found = list(article.registered_nct_ids) + find_nct_ids(text)
    found += [re.sub(r"\s+", " ", m.group(0)) for m in _REGISTRY_ID.finditer(text)]
    return list(dict.fromkeys(i[:40] for i in found))[:20]


# ------------------------------------------------------------------------------------------------
# Outcomes from effect estimates
# ------------------------------------------------------------------------------------------------

_KIND_OF_RULE_LABEL: dict[str, OutcomeKind] = {
    "OS": "OS", "PFS": "PFS", "DFS": "DFS", "RFS": "DFS", "EFS": "EFS", "ORR": "ORR", "pCR": "pCR",
    "grade_3plus_toxicity": "toxicity_grade_3plus", "QoL": "QoL"}
OUTCOME_NAMES: dict[str, str] = {
    "OS": "overall survival", "PFS": "progression-free survival", "DFS": "disease-free survival",
    "RFS": "recurrence-free survival", "EFS": "event-free survival", "ORR": "objective response rate",
    "pCR": "pathological complete response", "grade_3plus_toxicity": "grade 3 or higher adverse events",
    "QoL": "quality of life"}
_MEASURE_NAMES = {"HR": "hazard ratio", "OR": "odds ratio", "RR": "relative risk", "median": "median",
                  "rate": "rate", "mean_difference": "mean difference", "risk_difference": "risk difference"}


def outcome_kind(rule_label: str | None) -> OutcomeKind:
    return _KIND_OF_RULE_LABEL.get(rule_label or "", "other")


def kind_of_name(name: str) -> OutcomeKind:
    """The outcome family of a free-text outcome name (registry measures, LLM names)."""
    mentions = outcome_mentions(name)
    return outcome_kind(mentions[0][0]) if mentions else "other"


def outcome_from_effect(effect: Effect) -> Outcome:
    """A rule-read effect estimate as a findings outcome; the quote is its exact span."""
    name = OUTCOME_NAMES.get(effect.outcome or "", None) or f"{_MEASURE_NAMES[effect.measure]} (outcome not named)"
    return Outcome(
        name=name, kind=outcome_kind(effect.outcome), measure=effect.measure, value=effect.value,
        arm_values=list(effect.arms)[:4] if effect.value is None else [], unit=effect.unit,
        ci_low=effect.ci.low if effect.ci else None, ci_high=effect.ci.high if effect.ci else None,
        ci_level=effect.ci.level if effect.ci else None,
        p_value=effect.p.value if effect.p else None, p_comparator=effect.p.comparator if effect.p else None,
        direction=effect.direction, quote=effect.text[:1000], source="rules")


def effect_outcomes(text: str) -> list[tuple[Outcome, Span]]:
    return [(outcome_from_effect(e), e.span) for e in extract_effects(text)]


def counts(text: str) -> dict[str, tuple[int, Span]]:
    """The largest randomised, enrolled (or total) and analysed head counts with their spans."""
    out: dict[str, tuple[int, Span]] = {}
    for size in sample_sizes(text):
        key = {"randomised": "n_randomised", "enrolled": "n_enrolled", "total": "n_enrolled",
               "analysed": "n_analysed"}.get(size.kind)
        if key and (key not in out or size.value > out[key][0]):
            out[key] = (size.value, size.span)
    return out


# ------------------------------------------------------------------------------------------------
# Trials
# ------------------------------------------------------------------------------------------------

_COMPARATOR_ARMS = frozenset({"ACTIVE_COMPARATOR", "PLACEBO_COMPARATOR", "SHAM_COMPARATOR", "NO_INTERVENTION"})


def _intervention_name(name: str) -> str:
    """"Drug: Pembrolizumab" -> "Pembrolizumab"."""
    return re.sub(r"^[A-Za-z ]{2,30}:\s*", "", name).strip()


@dataclass
class TrialArms:
    interventions: list[str] = field(default_factory=list)
    comparator: str | None = None


def trial_arms(trial: Trial) -> TrialArms:
    """Experimental arms' interventions and the comparator arms, as registered."""
    experimental: list[str] = []
    comparators: list[str] = []
    for arm in trial.arms:
        names = [_intervention_name(n) for n in arm.intervention_names] or [arm.label]
        (comparators if arm.type in _COMPARATOR_ARMS else experimental).extend(names)
    if not trial.arms:
        experimental = [iv.name for iv in trial.interventions]
    comparator = "; ".join(dict.fromkeys(comparators))[:200] or None
    return TrialArms(list(dict.fromkeys(n[:200] for n in experimental if n))[:10], comparator)


def trial_outcomes(trial: Trial, limit: int = 60) -> list[Outcome]:
    """Registered outcome measures (no values: a registration states what will be measured)."""
    out = []
    for primary, outcomes in ((True, trial.primary_outcomes), (False, trial.secondary_outcomes)):
        for o in outcomes:
            out.append(Outcome(name=o.measure[:200], kind=kind_of_name(o.measure), primary=primary,
                               source="registry"))
    return out[:limit]


def trial_population(trial: Trial) -> Population:
    """Conditions as the cancer type; stage, biomarkers and line from titles, conditions and keywords."""
    text = "\n".join(p for p in (trial.brief_title, trial.official_title, *trial.conditions, *trial.keywords,
                                 trial.brief_summary) if p)
    stages = _distinct((m.group(0) for m in _STAGE.finditer(text)), 3)
    line = _LINE.search(text)
    return Population(cancer_type="; ".join(trial.conditions[:4])[:200] or None,
                      stage_setting=", ".join(stages)[:200] or None, biomarkers=_biomarkers(text),
                      line_of_therapy=line.group(0)[:100] if line else None)


def clip(span: Span, blocked: Sequence[Span]) -> Span | None:
    """The longest part of `span` that overlaps none of `blocked` (planted instructions)."""
    pieces = [span]
    for b_start, b_end in blocked:
        next_pieces = []
        for start, end in pieces:
            if b_end <= start or b_start >= end:
                next_pieces.append((start, end))
                continue
            if b_start > start:
                next_pieces.append((start, b_start))
            if b_end < end:
                next_pieces.append((b_end, end))
        pieces = next_pieces
    pieces = [p for p in pieces if p[1] > p[0]]
    return max(pieces, key=lambda p: p[1] - p[0]) if pieces else None
