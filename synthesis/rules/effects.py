"""Effect estimates in abstract text, read by rules: ratios, medians, rates, differences, p-values.

Why rules when an LLM could read the same sentence: these run on every record (the "none" backend),
they are features for ranking and grading, and they are the referee for LLM output. So they must be
exact rather than clever: every result carries the character span it was read from, and
`text[span[0]:span[1]]` gives back exactly the words that justify it.

Reading is done in steps rather than with one giant pattern: find a measure and its value, then
try to read a confidence interval right after it, then a p-value right after that. Each step is a
small anchored pattern, so a sentence that has a CI but no p (or the reverse) still reads, and each
pattern stays readable.

Numbers are read with the shared number patterns of `numbers.py` (Lancet "0·62", JAMA ".03",
unicode minus, thousands commas).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Literal

from synthesis.rules.numbers import MINUS_CHARS, SIGNED_NUMBER, UNSIGNED_NUMBER, normalise_number, parse_number

Measure = Literal["HR", "OR", "RR", "median", "rate", "mean_difference", "risk_difference"]
Direction = Literal["increased", "decreased", "no significant difference"]
Comparator = Literal["<", "=", "≤", ">", "≥"]

# Outcome labels (a fixed vocabulary, so callers can filter on them).
OUTCOMES = ("OS", "PFS", "DFS", "RFS", "EFS", "ORR", "pCR", "grade_3plus_toxicity", "QoL")

RATIO_MEASURES = frozenset({"HR", "OR", "RR"})
DIFFERENCE_MEASURES = frozenset({"mean_difference", "risk_difference"})
SIGNIFICANCE_LEVEL = 0.05

_DASHES = "\\-\u2010\u2011\u2012\u2013\u2014\u2212"  # hyphen(s), figure/en/em dash, minus
_NUM = f"(?:{UNSIGNED_NUMBER})"
_SNUM = f"(?:{SIGNED_NUMBER})"
# A value that is really the "95" of a following "95% CI" is not a value.
_NOT_CI_LEVEL = r"(?!\s*%?\s*(?:CI\b|C\.I\.|confidence|credible|CrI\b))"
# A value ends where the number ends: not "0" of "0.62" nor "1" of "1,234" after backtracking.
_END = r"(?![.·⋅,]?\d)"


# --------------------------------------------------------------------------------------------
# Result types
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ConfidenceInterval:
    """Bounds of an interval estimate; `level` is 95.0 etc. when the text states it."""

    low: float
    high: float
    level: float | None
    span: tuple[int, int]


@dataclass(frozen=True, slots=True)
class PValue:
    """A reported p-value: "P<.001" is comparator "<", value 0.001."""

    comparator: Comparator
    value: float
    span: tuple[int, int]
    text: str

    @property
    def significant(self) -> bool:
        """True when the p-value is below the 0.05 level.

        "P = .05" and "P ≤ .05" are not (p may equal the threshold); "P < .05" is.
        """
        if self.comparator in (">", "≥"):
            return False
        if self.comparator == "<":
            return self.value <= SIGNIFICANCE_LEVEL
        return self.value < SIGNIFICANCE_LEVEL


@dataclass(frozen=True, slots=True)
class Effect:
    """One effect estimate read from text.

    `value` holds the single statistic (a ratio, a difference, one median or one rate); for an
    arm-by-arm comparison ("26.3 vs 22.1 months") `arms` holds the arm values in text order and
    `value` is None. An arm that has "not reached" its median is None in `arms`.
    """

    measure: Measure
    value: float | None
    span: tuple[int, int]
    text: str
    arms: tuple[float | None, ...] = ()
    unit: str | None = None
    ci: ConfidenceInterval | None = None
    p: PValue | None = None
    outcome: str | None = None
    direction: Direction | None = None
    adjusted: bool = False
    n: int | None = None          # denominator or sample ("(n=123)", "(55/123)")
    events: int | None = None     # numerator of a proportion ("(55/123)")


# --------------------------------------------------------------------------------------------
# p-values
# --------------------------------------------------------------------------------------------

_P_VALUE = re.compile(
    rf"""
    (?<![\w\-])[Pp]                                        # the P itself, not inside a word
    (?:[\s\-]?values?)?                                    # "P value", "p-value"
    (?:\s*(?:[(_]\s*)?(?:for\s+)?(?:trend|interaction|heterogeneity)\s*\)?)?  # "P(trend)", "P for trend"
    \s*
    (?P<cmp>
        <\s*or\s*=|=\s*or\s*<|<=|=<|>=|≤|⩽|≥|⩾|<|>|=       # symbols, longest first
      | (?:was|of|is)(?:\s+(?:less|lower)\s+than)?         # "p-value of 0.03", "P was less than .05"
      | (?:less|lower)\s+than
    )
    \s*
    (?:
        10\s*\^?\s*[{MINUS_CHARS}]\s*(?P<power>\d+)                 # "P < 10−6", "P<10^-6"
      | (?P<value>{_NUM})
        (?:\s*[x×*]\s*10\s*\^?\s*(?P<exp_sign>[{MINUS_CHARS}])?\s*(?P<exp>\d+)  # "1.2 × 10−5"
          | [eE](?P<e_sign>[{MINUS_CHARS}])?(?P<e_exp>\d+))?                          # "3e-4"
    )
    (?![.·⋅]?\d)
    """,
    re.VERBOSE,
)

_COMPARATORS: dict[str, Comparator] = {
    "<": "<", ">": ">", "=": "=", "≤": "≤", "⩽": "≤", "<=": "≤", "=<": "≤",
    "≥": "≥", "⩾": "≥", ">=": "≥",
}


def _comparator(raw: str) -> Comparator:
    """The comparator as one symbol ("<=" and "< or =" -> "≤", "was less than" -> "<", "of" -> "=")."""
    squeezed = re.sub(r"\s+", "", raw.lower())
    if squeezed in _COMPARATORS:
        return _COMPARATORS[squeezed]
    if squeezed in ("<or=", "=or<"):
        return "≤"
    return "<" if "than" in squeezed else "="


def _p_number(match: re.Match[str]) -> float:
    """The probability a p-value match states, exponents applied (in decimal, so 3e-4 is 0.0003)."""
    if match.group("power"):
        return float(Decimal(10) ** -int(match.group("power")))
    value = Decimal(normalise_number(match.group("value")))
    exponent, negative = match.group("exp") or match.group("e_exp"), match.group("exp_sign") or match.group("e_sign")
    if exponent:
        value *= Decimal(10) ** (-int(exponent) if negative else int(exponent))
    return float(value)


def _p_value_from(match: re.Match[str]) -> PValue | None:
    """A PValue from a match, or None when the number cannot be a probability ("P = 5")."""
    value = _p_number(match)
    if not 0.0 <= value <= 1.0:
        return None
    return PValue(_comparator(match.group("cmp")), value, match.span(), match.group(0))


def find_p_values(text: str) -> list[PValue]:
    """Every p-value in the text, in order ("P = .03", "p<0.0001", "(P=0.12)", "P < 1 × 10−5")."""
    found = []
    for match in _P_VALUE.finditer(text):
        if (p := _p_value_from(match)) is not None:
            found.append(p)
    return found


# --------------------------------------------------------------------------------------------
# Confidence intervals (read right after a value)
# --------------------------------------------------------------------------------------------

_CI_LABEL = r"""
    (?:
        (?P<level>\d{2}(?:[.·]\d+)?)\s*%\s*(?:CI\b|C\.I\.|CrI\b|(?:confidence|credible)\s+intervals?)
      | (?:CI|confidence\s+interval)\s*\(?\s*(?P<level_after>\d{2}(?:[.·]\d+)?)\s*%\s*\)?  # "CI 95%"
      | CI\b | confidence\s+interval
    )
"""

_CI_AFTER_VALUE = re.compile(
    rf"""
    (?P<lead>
        \s*(?:[,;]\s*)?                                   # "0.62; 95% CI", "0.62, 95% CI"
        (?P<open>[(\[]\s*)?                               # "0.62 (95% CI", "0.62 [0.51"
        (?:(?:with\s+)?(?:an?\s+|the\s+)?(?P<label>{_CI_LABEL}))?
        (?:\s*[\[(]CI[\])])?                               # NEJM: "95% confidence interval [CI], 0.33 to 0.63"
        \s*(?:[:=,]|\bof\b|\bwas\b|\bfrom\b)?\s*
    )
    (?P<low>{_SNUM})(?:\s*%)?                             # "13%–37%": bounds of a rate
    \s*(?:[{_DASHES}]|\bto\b|,|;|\band\b)\s*
    (?P<high>{_SNUM})(?:\s*%)?
    (?P<close>\s*[)\]])?
    """,
    re.VERBOSE | re.IGNORECASE,
)


def _read_ci(text: str, pos: int, value: float | None) -> ConfidenceInterval | None:
    """A CI starting at `pos` (just after a value), or None.

    Without a "CI" label the two numbers must sit in brackets and enclose the value, so that
    "(55/123)" or "(aged 18-75 years)" are never read as an interval.
    """
    match = _CI_AFTER_VALUE.match(text, pos)
    if not match:
        return None
    low, high = parse_number(match.group("low")), parse_number(match.group("high"))
    if low > high:
        return None
    labelled = bool(match.group("label"))
    if not labelled:
        if not match.group("open") or not match.group("close"):
            return None
        if value is None or not low <= value <= high:
            return None
    level_text = match.group("level") or match.group("level_after")
    level = parse_number(level_text) if level_text else None
    start = match.start("open") if match.group("open") else (
        match.start("label") if labelled else match.start("low"))
    # a closing bracket belongs to the interval only when the interval opened it
    end = match.end() if match.group("open") else match.end("high")
    return ConfidenceInterval(low, high, level, (start, end))


# p-value that follows a value or CI, across punctuation and a few qualifying words.
_P_AFTER = re.compile(
    r"""
    [\s,;:()\[\]]*
    (?:(?:two|one)[\s\-]sided\s+|stratified\s+|log[\s\-]?rank\s+|adjusted\s+|Wald\s+|exact\s+){0,3}
    """,
    re.VERBOSE | re.IGNORECASE,
)


def _read_p(text: str, pos: int) -> PValue | None:
    """A p-value starting at `pos` or after a little punctuation, or None."""
    lead = _P_AFTER.match(text, pos)
    if not lead:
        return None
    match = _P_VALUE.match(text, lead.end())
    return _p_value_from(match) if match else None


# --------------------------------------------------------------------------------------------
# Outcomes
# --------------------------------------------------------------------------------------------

# (label, spelled-out words [any case], abbreviations [exact case]). Ordered so that at one position
# the most specific name wins; finditer takes the leftmost match, so "progression or death" (PFS)
# beats the "death" (OS) inside it.
_OUTCOME_PATTERNS: tuple[tuple[str, str, str], ...] = (
    ("PFS", r"progression[\s\-]free(?:\s+survival)?|(?:disease\s+)?progression\s+or\s+death"
            r"|time\s+to\s+(?:disease\s+)?progression", r"\bPFS\b|\bTTP\b"),
    ("DFS", r"(?:invasive\s+)?disease[\s\-]free(?:\s+survival)?", r"\bi?DFS\b"),
    ("RFS", r"(?:recurrence|relapse|(?:distant[\s\-])?metastasis)[\s\-]free(?:\s+survival)?",
            r"\b(?:RFS|DMFS|MFS)\b"),
    ("EFS", r"event[\s\-]free(?:\s+survival)?", r"\bEFS\b"),
    ("pCR", r"path(?:o|olo)gic(?:al)?(?:ly)?\s+complete\s+(?:response|remission)", r"\bpCR\b"),
    ("ORR", r"(?:objective|overall)\s+response(?:\s+rates?)?|response\s+rates?"
            r"|(?:objective|tumou?r)\s+responses?", r"\bORR\b"),
    ("grade_3plus_toxicity",
     r"""grade\s*(?:≥|>=|⩾|>\s*or\s*=)\s*(?:3|III)
       |grade\s*(?:3|III)\s*(?:\+|(?:or|and|to|[\-–/])\s*(?:4|5|IV|V|higher|greater|above|more|worse)\b
                            |(?:or\s+)?(?:higher|greater|above|worse)\b)
       |severe\s+(?:adverse\s+events?|toxicit(?:y|ies))""", r"\b[Gg]3\+|\bG\s*≥\s*3"),
    ("QoL", r"(?:health[\s\-]related\s+)?quality[\s\-]of[\s\-]life", r"\b(?:HR)?QoL\b|\bQLQ-C30\b|\bFACT-\w+"),
    ("OS", r"overall\s+survival|death\s+from\s+any\s+cause|(?:all[\s\-]cause|overall)\s+mortality"
           r"|\bdeath\b|(?<!free\s)(?<!specific\s)(?<!free-)(?<!specific-)\bsurvival\b", r"\bOS\b"),
)
_OUTCOME_RE = re.compile(
    "|".join(f"(?P<{label}>(?i:{words})|{abbreviations})" for label, words, abbreviations in _OUTCOME_PATTERNS),
    re.VERBOSE,
)

# Where a sentence ends: a full stop, "!" or "?" before a capital, or a line break. "vs." and
# "et al." do not end sentences.
_SENTENCE_END = re.compile(r"(?<!\bvs)(?<!\bv)(?<!\bal)(?<!\be\.g)(?<!\bi\.e)[.!?](?=\s+[A-Z(\[])|\n")


def outcome_mentions(text: str) -> list[tuple[str, tuple[int, int]]]:
    """(label, span) of every outcome name in the text, in order."""
    return [(m.lastgroup, m.span()) for m in _OUTCOME_RE.finditer(text) if m.lastgroup]


def _sentence_bounds(text: str, start: int, end: int) -> tuple[int, int]:
    """The sentence that holds text[start:end]."""
    left = 0
    for match in _SENTENCE_END.finditer(text, 0, start):
        left = match.end()
    after = _SENTENCE_END.search(text, end)
    return left, after.start() if after else len(text)


def outcome_near(text: str, span: tuple[int, int], lookback: int = 160, lookahead: int = 60) -> str | None:
    """The outcome an estimate at `span` refers to.

    Preference: a name inside the span ("hazard ratio for death"), then the nearest name before it
    in the same sentence ("For overall survival, the HR was ..."), then one just after it
    ("HR 0.62 for overall survival").
    """
    start, end = span
    left, right = _sentence_bounds(text, start, end)
    window_left, window_right = max(left, start - lookback), min(right, end + lookahead)
    mentions = outcome_mentions(text[window_left:window_right])
    # spans relative to the text; a name that straddles the start ("Pathologic complete response
    # rates", where the estimate starts at "complete") counts as inside
    placed = [(label, window_left + s, window_left + e) for label, (s, e) in mentions]
    inside = [label for label, s, e in placed if s < end and e > start]
    if inside:
        return inside[0]
    before = [label for label, s, e in placed if e <= start]
    if before:
        return before[-1]
    after = [label for label, s, e in placed if s >= end]
    return after[0] if after else None


# --------------------------------------------------------------------------------------------
# Direction
# --------------------------------------------------------------------------------------------

def direction_of(measure: Measure, value: float | None, ci: ConfidenceInterval | None,
                 p: PValue | None, arms: tuple[float | None, ...] = ()) -> Direction | None:
    """Which way an effect goes, judged against the null (1 for ratios, 0 for differences).

    The CI decides when there is one: entirely below the null -> "decreased", entirely above ->
    "increased", touching or spanning it -> "no significant difference" (a CI that ends exactly at
    1.0 includes the null). Without a CI the p-value decides significance at 0.05 and the point
    estimate (or the first arm against the second) decides the side. With neither: None.
    """
    null = 1.0 if measure in RATIO_MEASURES else 0.0
    if ci is not None and (measure in RATIO_MEASURES or measure in DIFFERENCE_MEASURES):
        if ci.high < null:
            return "decreased"
        if ci.low > null:
            return "increased"
        return "no significant difference"
    if p is None:
        return None
    if not p.significant:
        return "no significant difference"
    if value is not None and measure in RATIO_MEASURES | DIFFERENCE_MEASURES:
        if value == null:
            return "no significant difference"
        return "decreased" if value < null else "increased"
    if len(arms) >= 2 and arms[0] is not None and arms[1] is not None and arms[0] != arms[1]:
        return "increased" if arms[0] > arms[1] else "decreased"
    return None


# --------------------------------------------------------------------------------------------
# Measures read from text
# --------------------------------------------------------------------------------------------

_RATIO_NAMES: tuple[tuple[Measure, str], ...] = (
    ("HR", r"(?i:(?:subdistribution\s+|cause[\s\-]specific\s+)?hazard\s+ratios?)|(?P<a_hr>a)?s?HRs?\b"),
    ("OR", r"(?i:odds\s+ratios?)|(?P<a_or>a)?ORs?\b"),
    ("RR", r"(?i:relative\s+risks?|risk\s+ratios?|(?:incidence\s+)?rate\s+ratios?)|(?P<a_rr>a)?I?RRs?\b"),
)
# "adjusted HR", "multivariable-adjusted hazard ratio"
_ADJUSTED = r"(?P<adjusted>(?i:(?:multivariable|multivariate|covariate|age)[\s\-])?(?i:adjusted)\s+)?"

# What may stand between a ratio's name and its value: an abbreviation in brackets, a "(95% CI)"
# column header, a short qualifier ("for death", "for pembrolizumab vs. placebo"), a separator.
_RATIO_GAP = r"""
    (?:\s*[(\[]\s*(?:a|s)?(?:HR|OR|RR|IRR)s?\s*[)\]])?             # "hazard ratio (HR)", "(ORs)"
    (?:\s*[(\[]\s*(?:(?P<header_level>\d{2})\s*%\s*)?CIs?\s*[)\]])?    # "HR (95% CI): 0.58 (0.38, 0.88)"
    (?:\s+(?i:for|of|with|in|comparing|between|favou?ring)\b
        (?:[^\d;()\[\].<>=]|\bvs?\.|\([A-Za-z\-\s]+\)){1,60}?)?       # "for death", "for OS (primary)"
    (?:\s*[:=,]\s*|\s+(?i:was|were|of|is|at)\s+|\s+|\s*\(\s*)       # separator
"""

_RATIO_RE = re.compile(
    rf"""
    (?<![\w\-])
    {_ADJUSTED}
    (?P<name>{"|".join(f"(?P<{m}>{pattern})" for m, pattern in _RATIO_NAMES)})
    {_RATIO_GAP}
    (?P<value>{_NUM}){_END}{_NOT_CI_LEVEL}
    (?!\s*%|\s*[{_DASHES}]\s*\d)                                    # not a percent, not a range
    (?!\s*(?i:bpm|beats|/\s*min|mm\s*Hg))                             # heart rate (HR) is not a ratio
    """,
    re.VERBOSE,
)

_DIFFERENCE_RE = re.compile(
    rf"""
    (?<![\w\-])
    (?P<name>
        (?P<risk_difference>(?i:(?:absolute\s+)?risk\s+difference|absolute\s+difference)|\bRD\b)
      | (?P<mean_difference>(?i:(?:standardi[sz]ed\s+|weighted\s+|adjusted\s+)?mean\s+differences?
                             |difference\s+in\s+means|between[\s\-]group\s+differences?
                             |treatment\s+differences?)|\b(?:S|W)?MD\b)
      | (?P<bare_difference>(?i:differences?))                # kept only with a CI (see below)
    )
    (?:\s+(?i:in|for|of)\b(?:[^\d;()\[\].<>=]|\([A-Za-z\-\s]+\)){{1,60}}?)?
    (?:\s*[:=,]\s*|\s+(?i:was|of|is)\s+|\s+|\s*\(\s*)
    (?P<value>{_SNUM}){_END}{_NOT_CI_LEVEL}
    (?P<unit>\s*(?:%|(?i:percentage\s+points?|points?)\b|(?!(?i:vs|versus|and|or|in|for|with|to)\b)
                    [A-Za-zμµ][\w.·]{{0,8}}(?:\s*/\s*[A-Za-z]{{1,5}}\b)?))?  # "points", "kg", "ng/dL"
    """,
    re.VERBOSE,
)

_TIME_UNIT = r"(?:months?|mos?\b\.?|weeks?|wks?\b|days?|years?|yrs?\b)"
_SURVIVAL_WORDS = r"""
    (?:survival|\bOS\b|\bPFS\b|\bDFS\b|\bRFS\b|\bEFS\b|\bTTP\b|\bDoR\b|\bTTF\b|time\s+to
      |duration\s+of\s+(?:response|remission)|response\s+duration)
"""
_ARM_VALUE = rf"(?:{_NUM}|not\s+(?:yet\s+)?reached|\bNR\b|not\s+estimable|\bNE\b)"
_ARM_SEP = r"""
    (?:\s+(?:in|with|for)\s+(?:the\s+)?[A-Za-z][\w\-+/ ]{0,40}?(?:\s+(?:group|arm|cohort))?)?  # arm label
    \s*(?:,\s*)?
    (?:\bvs\.?|\bversus\b|\bv\.?(?=\s)|\bcompared\s+(?:with|to)\b|\band\b|\bor\b|,)
    \s*(?:(?:with|in|for)\s+[A-Za-z][\w\-+/ ]{0,40}?\s*[:,]?\s*)?                # "vs with placebo,"
"""

_MEDIAN_RE = re.compile(
    rf"""
    (?<![\w\-])(?i:medians?)\b
    (?P<what>(?:[^\d;.<>=]|\bvs?\.){{0,80}}?{_SURVIVAL_WORDS}(?:[^\d;.<>=()]|\([^()\d]*\)){{0,40}}?)
    (?:\s*[:=,]\s*|\s+(?i:was|were|of|is|reached)\s+|\s+|\s*\(\s*)
    (?P<first>{_ARM_VALUE}){_END}{_NOT_CI_LEVEL}
    (?P<first_unit>\s*(?i:{_TIME_UNIT}))?
    (?P<rest>
        (?:\s*\((?:[^()]|\([^()]*\)){{0,60}}\))?                     # a per-arm CI in brackets
        {_ARM_SEP}
        (?P<second>{_ARM_VALUE}){_END}{_NOT_CI_LEVEL}
        (?P<second_unit>\s*(?i:{_TIME_UNIT}))?
    )?
    (?(first_unit)|(?(second_unit)|(?!)))                              # some arm must carry a unit
    """,
    re.VERBOSE,
)

_RATE_ANCHOR = r"""
    (?:\bORR\b|\bDCR\b|\bCBR\b|\bpCR\b|\bCR\b|\bPR\b
      | (?i:rates?|incidences?|proportions?|percentages?|frequenc(?:y|ies)
          |(?:objective|overall|complete|partial|tumou?r|clinical)\s+responses?|remissions?))
"""
# "grade 3", "grade ≥3", "grade 3/4", "grades III-IV". Each space has exactly one way to be read:
# inside a repeated group, "\s*(?:≥)?\s*" would give 2^n parses of n "grade 3"s and hang the engine.
_GRADE_WORDS = r"""
    (?i:grades?\s*(?:(?:≥|>=|⩾)\s*)?(?:[1-5]|I{1,3}V?|IV|V)                 # "grade 3", "grade ≥3"
        (?:\s*(?:[\-–/]|or|and|to)\s*(?:[1-5]|I{1,3}V?|IV|V))?)              # "... 3/4", "... III-IV"
"""
_RATE_RE = re.compile(
    rf"""
    (?<![\w\-]){_RATE_ANCHOR}
    (?P<what>(?:{_GRADE_WORDS}|\b\d+[\s\-](?i:year|month|yr)s?\b|[^\d;%<>=≤≥.]|\bvs?\.){{0,80}}?)
    (?:\s*[:=,]\s*|\s+(?i:was|were|of|is|reached|occurred\s+in)\s+|\s+|\s*\(\s*)
    (?P<first>{_NUM}){_END}{_NOT_CI_LEVEL}
    (?P<first_pct>\s*%)?
    (?P<counts>\s*\(\s*(?:[nN]\s*=\s*(?P<n_eq>\d[\d,]*)|(?P<events>\d[\d,]*)\s*(?:/|of)\s*(?P<n_of>\d[\d,]*))\s*\))?
    (?P<rest>
        {_ARM_SEP}
        (?P<second>{_NUM}){_END}{_NOT_CI_LEVEL}
        (?P<second_pct>\s*%)
        (?:\s*\(\s*(?:[nN]\s*=\s*\d[\d,]*|\d[\d,]*\s*(?:/|of)\s*\d[\d,]*)\s*\))?
    )?
    (?(first_pct)|(?(second_pct)|(?!)))                                # a rate is a percentage
    """,
    re.VERBOSE,
)


_CLOSING_BRACKET = re.compile(r"\s*[)\]]")
_RESPECTIVELY = re.compile(r",?\s*respectively\b")


def _close_brackets(text: str, start: int, end: int) -> int:
    """Extend `end` over closing brackets that the span opened ("HR 0.62 (95% CI 0.5-0.8" + ")")."""
    depth = sum(1 for c in text[start:end] if c in "([") - sum(1 for c in text[start:end] if c in ")]")
    while depth > 0 and (following := _CLOSING_BRACKET.match(text, end)):
        end = following.end()
        depth -= 1
    return end


def _skip_respectively(text: str, end: int) -> int:
    """Include a trailing ", respectively" in the span: it belongs to the comparison."""
    following = _RESPECTIVELY.match(text, end)
    return following.end() if following else end


def _p_after_arms(text: str, pos: int) -> tuple[PValue | None, int]:
    """The p-value of an arm comparison, read after an optional ", respectively", and the new end.

    No CI is read: an interval after two arms belongs to neither arm alone.
    """
    end = _skip_respectively(text, pos)
    p = _read_p(text, end)
    return p, (p.span[1] if p else end)


def _trailing_ci_and_p(text: str, pos: int,
                       value: float | None) -> tuple[ConfidenceInterval | None, PValue | None, int]:
    """Read an optional CI, then an optional p-value, after `pos`; return both and the new end."""
    ci = _read_ci(text, pos, value)
    end = ci.span[1] if ci else pos
    p = _read_p(text, end)
    if p is not None:
        end = p.span[1]
    return ci, p, end


def _arm(raw: str) -> float | None:
    """An arm's value; None for "not reached" / "not estimable"."""
    return None if re.match(r"[A-Za-z]", raw) else parse_number(raw)


def _unit(raw: str | None) -> str | None:
    """A time unit in one spelling ("mo", "mos.", "months" -> "months")."""
    if not raw:
        return None
    word = raw.strip().lower().rstrip(".")
    for unit, prefix in (("months", "mo"), ("weeks", "w"), ("days", "d"), ("years", "y")):
        if word.startswith(prefix):
            return unit
    return word


def _build(text: str, measure: Measure, start: int, end: int, **fields: object) -> Effect:
    """Finish an Effect: close brackets, slice the text, find the outcome, judge the direction."""
    end = _close_brackets(text, start, end)
    effect = Effect(measure=measure, span=(start, end), text=text[start:end], **fields)  # type: ignore[arg-type]
    return replace(effect, outcome=outcome_near(text, effect.span),
                   direction=direction_of(measure, effect.value, effect.ci, effect.p, effect.arms))


def _ratio_effects(text: str) -> list[Effect]:
    """Hazard, odds and risk ratios, and any same-measure estimates listed right after them."""
    found = []
    for match in _RATIO_RE.finditer(text):
        measure: Measure = next(m for m, _ in _RATIO_NAMES if match.group(m))
        value = parse_number(match.group("value"))
        if value <= 0:
            continue  # a ratio is positive; "HR 0" is a typo or something else
        adjusted = bool(match.group("adjusted") or any(match.group(f"a_{m.lower()}") for m, _ in _RATIO_NAMES))
        ci, p, end = _trailing_ci_and_p(text, match.end(), value)
        if ci is not None and ci.level is None and match.group("header_level"):
            ci = replace(ci, level=float(match.group("header_level")))
        found.append(_build(text, measure, match.start(), end, value=value, ci=ci, p=p, adjusted=adjusted))
        found.extend(_continued_ratios(text, end, measure, adjusted))
    return found


# "HRs for OS and PFS were 0.62 (95% CI ...) and 0.55 (95% CI ...)": a second value of the same
# measure, accepted only with its own CI.
_CONTINUATION = re.compile(
    rf"\s*(?:,\s*|\s)(?:and|respectively,?)?\s*(?P<value>{_NUM}){_END}{_NOT_CI_LEVEL}(?!\s*%)", re.VERBOSE)


def _continued_ratios(text: str, pos: int, measure: Measure, adjusted: bool) -> list[Effect]:
    found = []
    while (match := _CONTINUATION.match(text, pos)) is not None:
        value = parse_number(match.group("value"))
        ci, p, end = _trailing_ci_and_p(text, match.end(), value)
        if ci is None or value <= 0:
            break
        found.append(_build(text, measure, match.start("value"), end, value=value, ci=ci, p=p, adjusted=adjusted))
        pos = end
    return found


def _difference_effects(text: str) -> list[Effect]:
    """Mean and risk differences; kept only with a CI or p-value, and a bare "difference" only with
    a CI, since the word is too common to trust on its own. A bare difference in percent or
    percentage points is a risk difference; any other is read as a mean difference."""
    found = []
    for match in _DIFFERENCE_RE.finditer(text):
        value = parse_number(match.group("value"))
        # the unit guess may have eaten a word: read the CI after it, else right after the value
        unit = match.group("unit")
        ci, p, end = _trailing_ci_and_p(text, match.end(), value)
        if unit and ci is None and p is None:
            unit = None
            ci, p, end = _trailing_ci_and_p(text, match.end("value"), value)
        if ci is None and (p is None or match.group("bare_difference")):
            continue  # "mean difference 3 ..." with nothing inferential is too weak to keep
        measure: Measure = "mean_difference"
        if match.group("risk_difference") or (
                match.group("bare_difference") and unit and re.match(r"%|percentage", unit.strip())):
            measure = "risk_difference"
        found.append(_build(text, measure, match.start(), end, value=value,
                            unit=unit.strip() if unit else None, ci=ci, p=p,
                            adjusted="adjusted" in match.group("name").lower()))
    return found


def _median_effects(text: str) -> list[Effect]:
    """Medians of time-to-event outcomes, one arm or two, with a time unit."""
    found = []
    for match in _MEDIAN_RE.finditer(text):
        if re.search(r"(?i)follow[\s\-]?up|\bage\b|\baged\b", match.group("what")):
            continue  # median follow-up / median age are not outcomes
        unit = _unit(match.group("second_unit") or match.group("first_unit"))
        if match.group("second"):
            arms = (_arm(match.group("first")), _arm(match.group("second")))
            value, ci = None, None
            p, end = _p_after_arms(text, match.end())
        else:
            arms = (_arm(match.group("first")),)
            value = arms[0]
            ci, p, end = _trailing_ci_and_p(text, match.end(), value)
        found.append(_build(text, "median", match.start(), end, value=value, arms=arms, unit=unit, ci=ci, p=p))
    return found


def _counts(text: str | None) -> int | None:
    return int(text.replace(",", "")) if text else None


# "rate" in these names is a physiological or dosing rate, not a proportion of patients.
_NOT_A_PROPORTION = re.compile(
    r"(?i:filtration|heart|respiratory|pulse|flow|infusion|dose|dosing|sedimentation|metabolic|growth"
    r"|breathing|glucose\s+disposal|clearance|excretion|firing|sampling)\s+$")


def _rate_effects(text: str) -> list[Effect]:
    """Percentages after a rate word ("ORR 45%", "incidence of ... was 30% versus 20%")."""
    found = []
    for match in _RATE_RE.finditer(text):
        if _NOT_A_PROPORTION.search(text, max(0, match.start() - 25), match.start()):
            continue
        first = parse_number(match.group("first"))
        if match.group("second"):
            second = parse_number(match.group("second"))
            arms: tuple[float | None, ...] = (first, second)
            value, ci = None, None
            if first > 100 or second > 100:
                continue
            p, end = _p_after_arms(text, match.end())
        else:
            if first > 100:
                continue
            arms, value = (first,), first
            ci, p, end = _trailing_ci_and_p(text, match.end(), first)
        found.append(_build(
            text, "rate", match.start(), end, value=value, arms=arms, unit="%", ci=ci, p=p,
            n=_counts(match.group("n_eq") or match.group("n_of")), events=_counts(match.group("events"))))
    return found


def _drop_nested(effects: list[Effect]) -> list[Effect]:
    """Sort by position and drop results whose span lies inside another's (keep the fuller read)."""
    ordered = sorted(effects, key=lambda e: (e.span[0], -(e.span[1] - e.span[0])))
    kept: list[Effect] = []
    for effect in ordered:
        if any(k.span[0] <= effect.span[0] and effect.span[1] <= k.span[1] for k in kept):
            continue
        kept.append(effect)
    return kept


def extract_effects(text: str) -> list[Effect]:
    """All effect estimates in `text`, in text order, each with its exact span.

    Covers hazard/odds/risk ratios, mean and risk differences, medians (one arm or two), and
    percentage rates, each with CI, p-value, outcome and direction where the text gives them.
    """
    effects = (_ratio_effects(text) + _difference_effects(text)
               + _median_effects(text) + _rate_effects(text))
    return _drop_nested(effects)
