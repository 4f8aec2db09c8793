"""Checks that generated text says nothing the source does not: numbers and quotes.

Invariant 4 of the architecture: every number in a generated sentence appears in the cited
record's text, and every quote is a verbatim span of it. An LLM paraphrases well and copies
numbers badly (0.62 becomes 0.61, a CI bound becomes a point estimate), so the check is on the
exact numbers, compared in normal form so that typography never causes a false alarm:

    "45%" = "45 %" = "45.0%",  "0·62" = "0.62",  "1,234" = "1234",  "−2.1" = "-2.1"

Things that look like numbers but are not claims are ignored in the generated text: citations
(`[PMID:12345678]`, `[NCT01234567]`), list markers at the start of a line ("1.", "2)", "(3)") and
ordinals ("2nd"). Identifiers glued to letters (HER2, CD8) are never numbers (see `numbers_in`).

Quotes are matched exactly, tolerating only whitespace differences and Unicode compatibility forms
(NFKC: non-breaking spaces, ligatures, full-width digits). Paraphrase is never accepted.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Collection
from typing import Any

from synthesis.rules.numbers import format_value, iter_numbers, numbers_in

# Citations as OncoLit writes them, and bare identifiers: never numbers to verify.
_CITATION = re.compile(
    r"""
    \[\s*(?:PMID\s*:?\s*\d+|NCT\s?\d{8})(?:\s*[,;]\s*(?:PMID\s*:?\s*\d+|NCT\s?\d{8}))*\s*\]  # [PMID:1; NCT0...]
  | \bPMID\s*:?\s*\d+                                                                   # PMID: 12345678
  | \bNCT\s?\d{8}\b                                                                     # NCT01234567
  | \bPMC\d+\b                                                                          # PMC1234567
    """,
    re.VERBOSE | re.IGNORECASE,
)
# "1. ", "2) ", "(3) ", "- 4." at the start of a line: list markers, not claims.
_LIST_MARKER = re.compile(r"^(?P<indent>[ \t]*(?:[-*•][ \t]+)?)(?:\d{1,2}[.)]|\(\d{1,2}\))(?=[ \t])", re.MULTILINE)
# "1st", "2nd", "3rd", "4th": ordinals, not measurements.
_ORDINAL = re.compile(r"(?<![\w.])\d+(?:st|nd|rd|th)\b", re.IGNORECASE)


def _claims_only(generated: str) -> str:
    """The generated text with citations, list markers and ordinals blanked out (same length)."""
    blank = lambda m: " " * len(m.group(0))  # noqa: E731 - keeps offsets stable for reporting
    text = _CITATION.sub(blank, generated)
    text = _LIST_MARKER.sub(lambda m: m.group("indent") + " " * (len(m.group(0)) - len(m.group("indent"))), text)
    return _ORDINAL.sub(blank, text)


def _number_present(number: str, source_numbers: set[str]) -> bool:
    """True when `number` occurs in the source. An unsigned number may stand for a signed one
    ("reduced by 2.1" for "−2.1"); a signed one must match its sign."""
    return number in source_numbers or (not number.startswith("-") and f"-{number}" in source_numbers)


def source_numbers(source_text: str) -> set[str]:
    """The numbers of a source text in normal form (worth computing once per record)."""
    return numbers_in(unicodedata.normalize("NFKC", source_text))


def verify_numbers(generated: str, source_text: str | set[str]) -> tuple[bool, list[str]]:
    """Whether every number in `generated` occurs in the source; the missing ones, in order.

    `source_text` may be the text or the set `source_numbers(text)` already computed.
    """
    available = source_text if isinstance(source_text, set) else source_numbers(source_text)
    missing: list[str] = []
    for number, _span in iter_numbers(unicodedata.normalize("NFKC", _claims_only(generated))):
        if not _number_present(number, available) and number not in missing:
            missing.append(number)
    return not missing, missing


# --------------------------------------------------------------------------------------------
# Quotes
# --------------------------------------------------------------------------------------------

_OUTER_QUOTES = [('"', '"'), ("\u201c", "\u201d"), ("'", "'"), ("\u2018", "\u2019"), ("\u00ab", "\u00bb")]


def _normalise_with_offsets(text: str) -> tuple[str, list[int], list[int]]:
    """NFKC text with whitespace runs collapsed to one space, and for each output character the
    start and end offsets in `text` of what it came from.

    Normalising one base character with its combining marks at a time keeps the offset map exact
    while still composing "e" + U+0301 into "é".
    """
    out: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    i = 0
    while i < len(text):
        j = i + 1
        while j < len(text) and unicodedata.combining(text[j]):
            j += 1
        for char in unicodedata.normalize("NFKC", text[i:j]):
            if char.isspace():
                if out and out[-1] == " ":
                    ends[-1] = j
                    continue
                char = " "
            out.append(char)
            starts.append(i)
            ends.append(j)
        i = j
    return "".join(out), starts, ends


def _normalise_quote(quote: str) -> str:
    quote = quote.strip()
    for left, right in _OUTER_QUOTES:
        if len(quote) >= 2 and quote.startswith(left) and quote.endswith(right):
            quote = quote[len(left):-len(right)].strip()
            break
    return re.sub(r"\s+", " ", unicodedata.normalize("NFKC", quote)).strip()


def find_quote(quote: str, source_text: str) -> tuple[int, int] | None:
    """The span of `quote` in `source_text`, or None when it is not there verbatim.

    Tolerates whitespace differences (runs, line breaks, non-breaking spaces) and NFKC forms, and
    a pair of quotation marks around the whole quote; nothing else. The span indexes the original
    source, so `source_text[start:end]` is the passage as the record has it.
    """
    needle = _normalise_quote(quote)
    if not needle:
        return None
    haystack, starts, ends = _normalise_with_offsets(source_text)
    at = haystack.find(needle)
    if at < 0:
        return None
    return starts[at], ends[at + len(needle) - 1]


# --------------------------------------------------------------------------------------------
# Extraction JSON
# --------------------------------------------------------------------------------------------

# Keys whose values are quotes to check verbatim.
QUOTE_KEYS = frozenset({"quote", "quotes", "evidence", "evidence_quote", "evidence_quotes", "span_text",
                        "supporting_text", "verbatim"})
# Keys whose values are identifiers or bookkeeping, not claims about the source.
SKIP_KEYS = frozenset({"pmid", "pmids", "record_id", "record_ids", "nct_id", "nct_ids", "id", "ids",
                       "citation", "citations", "doi", "pmcid", "version", "schema_version"})


def _is_quote_key(key: str) -> bool:
    key = key.lower()
    return key in QUOTE_KEYS or key.endswith("_quote") or key.endswith("_quotes")


class _Walker:
    """Walks an extraction dict once, keeping what checks out and noting what does not."""

    def __init__(self, source_text: str, quote_keys: Collection[str] | None, skip_keys: Collection[str]):
        self.source = source_text
        self.numbers = source_numbers(source_text)
        self.quote_keys = quote_keys
        self.skip_keys = {k.lower() for k in skip_keys}
        self.dropped: list[dict[str, str]] = []

    def is_quote_key(self, key: str) -> bool:
        return key in self.quote_keys if self.quote_keys is not None else _is_quote_key(key)

    def drop(self, path: str, reason: str) -> None:
        self.dropped.append({"path": path, "reason": reason})

    def check(self, value: Any, path: str, quote: bool) -> tuple[bool, Any]:
        """(keep?, value to keep) for one value; containers are walked and kept, pruned."""
        if isinstance(value, dict):
            return True, self.walk_dict(value, path)
        if isinstance(value, list):
            return True, self.walk_list(value, path, quote)
        if isinstance(value, bool) or value is None:
            return True, value
        if isinstance(value, (int, float)):
            if isinstance(value, float) and not math.isfinite(value):
                self.drop(path, f"number {value!r} is not finite")
                return False, None
            number = format_value(value)
            if not _number_present(number, self.numbers):
                self.drop(path, f"number {number} not in source")
                return False, None
            return True, value
        if isinstance(value, str):
            if quote:
                if find_quote(value, self.source) is None:
                    self.drop(path, "quote not verbatim in source")
                    return False, None
                return True, value
            ok, missing = verify_numbers(value, self.numbers)
            if not ok:
                self.drop(path, "numbers not in source: " + ", ".join(missing))
                return False, None
            return True, value
        return True, value

    def walk_dict(self, obj: dict[str, Any], path: str) -> dict[str, Any]:
        kept: dict[str, Any] = {}
        for key, value in obj.items():
            child = f"{path}.{key}" if path else str(key)
            if str(key).lower() in self.skip_keys:
                kept[key] = value
                continue
            ok, checked = self.check(value, child, quote=self.is_quote_key(str(key)))
            if ok:
                kept[key] = checked
        return kept

    def walk_list(self, items: list[Any], path: str, quote: bool) -> list[Any]:
        kept = []
        for index, item in enumerate(items):
            ok, checked = self.check(item, f"{path}[{index}]", quote)
            if ok:
                kept.append(checked)
        return kept


def verify_fields(obj: dict[str, Any], source_text: str, *, quote_keys: Collection[str] | None = None,
                  skip_keys: Collection[str] = SKIP_KEYS) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """Prune an extraction dict to what the source supports.

    Numbers (JSON numbers, and every number inside a string) must occur in the source; values under
    quote keys ("quote", "evidence", "*_quote", ...; or exactly `quote_keys` when given) must be
    verbatim spans. What fails is removed: a dict key, or a list item. Returns the pruned copy and
    one {"path", "reason"} per removal; paths use the input's indices ("effects[2].ci.low").
    Keys in `skip_keys` (identifiers, versions) are kept unchecked.
    """
    walker = _Walker(source_text, quote_keys, skip_keys)
    return walker.walk_dict(obj, ""), walker.dropped
