"""Numbers as papers write them: parsing, normalising, and sample sizes.

Oncology abstracts spell one number many ways: "1,234" and "1234", Lancet's "0·62" and "0.62",
JAMA's ".03" and "0.03", a unicode minus "−2.1" and "-2.1", "45%" and "45 %". The verifier has to see
these as the same number, and the effect extractors have to read all of them, so both use the one
pattern and the one normal form defined here.

Normal form (`normalise_number`): ASCII digits, "." as decimal point, no thousands separators, no
leading "+", a leading "-" for negatives, no trailing fractional zeros ("0.80" -> "0.8",
"45.0" -> "45"), a leading "0" before a bare decimal (".03" -> "0.03"). A percent sign is a unit,
not part of the number: "45%" normalises to "45".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Literal

# Characters that papers use as a minus sign in front of a number. The en dash is a minus only
# where it stands right before a digit and not right after one ("–0.5" yes, "0.51–0.75" no).
MINUS_CHARS = "-\u2212\u2013\u2012\uFE63\uFF0D"  # hyphen, minus, en dash, figure dash, small/fullwidth
# Decimal points: full stop, Lancet's middle dot, the dot operator some PDFs turn it into.
DECIMAL_CHARS = ".\u00B7\u22C5\u2027"

# One unsigned number as written, usable inside larger verbose patterns. Thousands groups must be
# exactly three digits ("1,234" but not "1,2"), so "(1.10,1.92)" stays two numbers.
UNSIGNED_NUMBER = rf"""
    (?:
        \d{{1,3}}(?:,\d{{3}})+(?!\d)             # 1,234 or 12,345,678
      | \d+                                   # 1234
    )
    (?:[{DECIMAL_CHARS}]\d+)?                  # .5  ·62
  | [{DECIMAL_CHARS}]\d+                       # .03 (JAMA style, no leading zero)
"""

# A number with an optional sign glued to it ("−2.1", "+5"; "- 2.1" with a space is not a sign).
SIGNED_NUMBER = rf"(?:[{MINUS_CHARS}+](?=[\d{DECIMAL_CHARS}]))?(?:{UNSIGNED_NUMBER})"

# Free-standing numbers in running text, for `numbers_in`. A number glued to a preceding letter or
# digit is part of an identifier (HER2, CD8, T790M, NCT01234567) and is not a number here.
_NUMBER_IN_TEXT = re.compile(
    rf"""
    (?<![\w{DECIMAL_CHARS}])                   # not inside a word, identifier or another number
    (?P<sign>
        (?<![\w)\]%])[{MINUS_CHARS}]           # a minus only when no digit/word/bracket precedes it
        (?=[\d{DECIMAL_CHARS}])
    )?
    (?P<number>{UNSIGNED_NUMBER})
    (?![\w{DECIMAL_CHARS}]*\d)                 # ...and not the front of an identifier like 5FU2
    """,
    re.VERBOSE,
)


def _strip_separators(text: str) -> tuple[bool, str]:
    """Split a written number into (negative, plain ASCII digits with '.')."""
    text = text.strip()
    negative = bool(text) and text[0] in MINUS_CHARS
    if negative:
        text = text[1:].lstrip()
    text = text.replace(",", "")
    for dot in DECIMAL_CHARS:
        text = text.replace(dot, ".")
    text = text.rstrip("%").strip()
    return negative, text


def normalise_number(text: str) -> str:
    """The canonical string of a written number ("−0·620" -> "-0.62", "1,234" -> "1234").

    Raises ValueError when `text` is not a number, so callers notice a pattern that matched junk.
    """
    negative, plain = _strip_separators(text)
    try:
        value = Decimal(plain)
    except InvalidOperation as exc:
        raise ValueError(f"not a number: {text!r}") from exc
    return format_decimal(-value if negative else value)


def format_decimal(value: Decimal) -> str:
    """Plain positional notation without trailing zeros (Decimal.normalize would write 1E+2)."""
    if value.is_zero():
        return "0"
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def format_value(value: int | float | Decimal) -> str:
    """Normal form of a number that arrives as a Python value (e.g. from an LLM's JSON)."""
    if isinstance(value, bool):
        raise TypeError("a bool is not a number")
    if isinstance(value, float):
        # repr gives the shortest string that round-trips, which is what a model wrote.
        return normalise_number(repr(value))
    return format_decimal(Decimal(value))


def parse_number(text: str) -> float:
    """A written number as a float ("0·62" -> 0.62, "−2.1" -> -2.1, "1,234" -> 1234.0)."""
    return float(normalise_number(text))


def numbers_in(text: str) -> set[str]:
    """Every free-standing number in `text`, in normal form.

    Ranges split into their ends ("18-75" -> {"18", "75"}); identifiers (HER2, NCT01234567) yield
    nothing. Used by the verifier on both sides, so the same rules apply to source and output.
    """
    return {normalise_number(m.group(0)) for m in _NUMBER_IN_TEXT.finditer(text)}


def iter_numbers(text: str) -> list[tuple[str, tuple[int, int]]]:
    """Like `numbers_in`, in order of appearance with spans, for reporting what is missing."""
    return [(normalise_number(m.group(0)), m.span()) for m in _NUMBER_IN_TEXT.finditer(text)]


# --------------------------------------------------------------------------------------------
# Sample sizes
# --------------------------------------------------------------------------------------------

SampleKind = Literal["randomised", "enrolled", "analysed", "total", "n"]

_PEOPLE = r"""
    (?:patients|participants|subjects|women|men|children|adolescents|adults|individuals|persons
      |people|volunteers|survivors|cases|infants|girls|boys|smokers|veterans|residents)
"""

_INTEGER = r"(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?![.·,]\d)"  # a whole count, not a decimal

# Verbs that make a head count a sample size, and the kind each one implies.
_VERB_KINDS: tuple[tuple[str, SampleKind], ...] = (
    (r"randomi[sz](?:ed|ation)|randomly\s+(?:assigned|allocated)|allocated|assigned", "randomised"),
    (r"enrolled|recruited|included|registered|accrued|entered|treated|eligible|studied",
     "enrolled"),
    (r"analy[sz]ed|evaluable|evaluated|assessed", "analysed"),
)
_VERBS = "|".join(f"(?:{pattern})" for pattern, _ in _VERB_KINDS)

_SAMPLE_PATTERNS: tuple[re.Pattern[str], ...] = (
    # "A total of 1,234 patients were randomized", "456 patients were enrolled",
    # "1,234 eligible patients", "300 patients underwent randomization"
    re.compile(
        rf"""
        (?P<total>\b(?:a\s+)?total\s+of\s+)?
        (?<![\w.,·\-/])(?P<n>{_INTEGER})\s+
        (?P<pre>(?:(?:{_VERBS}|consecutive|adult|evaluable|eligible)\s+)?)  # "456 eligible ..."
        (?:[A-Za-z][\w\-]*\s+){{0,3}}?                  # "adult", "newly diagnosed", "breast cancer"
        {_PEOPLE}\b
        (?P<post>
            (?:\s+\([^)]{{0,40}}\))?                    # "(aged 18-75 years)"
            (?:\s+(?:[a-z\-]+\s+){{0,4}}?               # "with advanced NSCLC"
               (?:were|was|had\s+been|have\s+been|underwent|who\s+were)\s+
               (?:\w+\s+)?(?:{_VERBS}|randomi[sz]ation|enrollment))?
        )
        """,
        re.VERBOSE | re.IGNORECASE,
    ),
    # "we randomly assigned 300 women", "enrolled 456 participants", "randomised 1,234 patients"
    re.compile(
        rf"""
        \b(?P<verb>{_VERBS})\s+(?:a\s+total\s+of\s+)?
        (?P<n>{_INTEGER})\s+
        (?:[A-Za-z][\w\-]*\s+){{0,3}}?{_PEOPLE}\b
        """,
        re.VERBOSE | re.IGNORECASE,
    ),
    # "n = 456", "N=456", "(n = 1,234)"
    re.compile(rf"(?<![\w/])[nN]\s*=\s*(?P<n>{_INTEGER})", re.VERBOSE),
)


@dataclass(frozen=True, slots=True)
class SampleSize:
    """A head count the text gives, what kind it is, and where it stands."""

    value: int
    kind: SampleKind
    span: tuple[int, int]
    text: str


def _kind_from_words(words: str) -> SampleKind | None:
    for pattern, kind in _VERB_KINDS:
        if re.search(pattern, words, re.IGNORECASE):
            return kind
    return None


def _sample_kind(match: re.Match[str]) -> SampleKind | None:
    """Which kind of sample a match reports; None when the head count is not a sample size."""
    groups = match.re.groupindex
    if "verb" in groups:
        return _kind_from_words(match.group("verb"))
    if "post" not in groups:
        return "n"
    verb_kind = _kind_from_words(match.group("post") or "") or _kind_from_words(match.group("pre") or "")
    if verb_kind:
        return verb_kind
    if match.group("total"):
        return "total"
    return None  # "12 patients had grade 3 events" is a count of events, not a sample


def sample_sizes(text: str) -> list[SampleSize]:
    """All sample-size statements, in text order, without overlaps (the longest wins)."""
    found: list[SampleSize] = []
    for pattern in _SAMPLE_PATTERNS:
        for match in pattern.finditer(text):
            kind = _sample_kind(match)
            if kind is None:
                continue
            start, end = match.span()
            # a trailing "(aged ...)" group may have been consumed without a verb: trim spaces
            snippet = text[start:end].rstrip()
            end = start + len(snippet)
            found.append(SampleSize(int(match.group("n").replace(",", "")), kind, (start, end), snippet))
    found.sort(key=lambda s: (s.span[0], -(s.span[1] - s.span[0])))
    kept: list[SampleSize] = []
    for size in found:
        if kept and size.span[0] < kept[-1].span[1]:
            continue
        kept.append(size)
    return kept


def total_sample_size(text: str) -> int | None:
    """The study's size as one number: the largest randomised, enrolled or total count, else the
    largest "n =" (which is often an arm, hence the lower rank)."""
    sizes = sample_sizes(text)
    for kinds in (("randomised", "enrolled", "total"), ("analysed",), ("n",)):
        values = [s.value for s in sizes if s.kind in kinds]
        if values:
            return max(values)
    return None
