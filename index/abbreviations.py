"""Abbreviation definitions in running text: "non-small cell lung cancer (NSCLC)" -> ("NSCLC", "non-small ...").

Why: abstracts define their own abbreviations at first use and then use only the short form, so a query that
spells a term out misses every later sentence (and every record that never spells it out). The definitions the
catalog's own records write are the only vocabulary available offline; `index.expansion` counts them over the
catalog and adds the other form to a query.

The matcher follows the published idea of Schwartz & Hearst (PSB 2003), written here from the description:

- a candidate short form is the text inside parentheses (before any ";" or ","), one or two words, 2-10
  characters, starting with a letter or digit, holding a letter and an upper-case letter; the words before
  the "(" (within the clause, at most min(|S| + 5, 2 |S|) words) are the candidate long form;
- the long form is the shortest tail of those words in which the short form's letters and digits occur in
  order, read from the right, the first one at the start of a word;
- the reverse order, "NSCLC (non-small cell lung cancer)", is tried when the parentheses hold three or more
  words and the word before them looks like a short form.

Statistics in parentheses are not definitions: "(n = 45)", "(p < 0.05)", "(HR 0.62)", "(95% CI 0.5-0.8)",
"(OR, 1.5; ...)" are refused because they hold "=", "<", ">", "%", "±" or a number-only word; roman numerals
("(III)") and single letters are refused too.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

_PAREN = re.compile(r"\(([^()\[\]]{1,160})\)")
# Where a long form cannot reach past: clause punctuation and sentence ends (". " but not "0.5").
_CLAUSE_BREAK = re.compile(r"[;:()\[\]]|,\s|\.\s|\.$")
_STATISTIC = re.compile(r"[=<>%±≤≥]")
_NUMBER_WORD = re.compile(r"[-+.,/\d]*\d[-+.,/\d]*%?")
_ROMAN = re.compile(r"[IVXLivxl]+")
# Words a long form does not start with (a function word before the first letter means the match is wrong).
_LEADING_STOP = frozenset("a an and are as at be by for from in into is it of on or the to was were with".split())


@dataclass(frozen=True)
class Abbreviation:
    """One definition found in a text: `short` ("NSCLC") stands for `long` ("non-small cell lung cancer")."""

    short: str
    long: str


def looks_short(candidate: str) -> bool:
    """Whether `candidate` can be a short form: 1-2 words, 2-10 characters, an upper-case letter, not a number,
    not a statistic, not a roman numeral."""
    words = candidate.split()
    if not 1 <= len(words) <= 2 or not 2 <= len(candidate) <= 10:
        return False
    if not candidate[0].isalnum() or not any(c.isupper() for c in candidate):
        return False
    if _STATISTIC.search(candidate) or any(_NUMBER_WORD.fullmatch(w) for w in words):
        return False
    return _ROMAN.fullmatch(candidate) is None


def _alnum(text: str) -> str:
    return "".join(c for c in text.casefold() if c.isalnum())


def match_long_form(short: str, words: str, *, whole: bool = False) -> str | None:
    """The tail of `words` that `short` abbreviates, or None.

    Reads both from the right: each letter or digit of the short form must be found in order, the first one at
    the start of a word. `whole`: the match must start at the first word (the reverse order, and MeSH terms)."""
    s, text = _alnum(short), words.casefold()
    if len(s) < 2:
        return None
    si, li = len(s) - 1, len(text) - 1
    while si >= 0:
        c = s[si]
        while li >= 0 and (text[li] != c or (si == 0 and li > 0 and text[li - 1].isalnum())):
            li -= 1
        if li < 0:
            return None
        si -= 1
        li -= 1
    start = li + 1
    long = words[start:].strip()
    if whole and words[:start].strip():
        return None
    if not _plausible(short, long):
        return None
    return long


def _plausible(short: str, long: str) -> bool:
    long_words = long.split()
    if len(long) <= len(short) or not long_words or long_words[0].casefold() in _LEADING_STOP:
        return False
    if any(w.strip(".,").casefold() == short.casefold() for w in long_words):
        return False  # "the NSCLC cohort (NSCLC)": the short form inside its own long form
    return not _STATISTIC.search(long)


def _window(text: str, end: int, short: str) -> str:
    """The words before position `end` within the clause, at most min(|S| + 5, 2 |S|) of them."""
    head = text[:end]
    breaks = list(_CLAUSE_BREAK.finditer(head))
    if breaks:
        head = head[breaks[-1].end():]
    limit = min(len(_alnum(short)) + 5, 2 * len(_alnum(short)))
    return " ".join(head.split()[-limit:])


def _short_part(inner: str) -> str | None:
    """The short form of a parenthesis' text, or None when the text is a statistic or holds one."""
    if _STATISTIC.search(inner):
        return None
    first = re.split(r"[;,]", inner, maxsplit=1)
    rest = first[1] if len(first) > 1 else ""
    if re.search(r"\d", rest):
        return None  # "(OR, 1.5)", "(HR; 0.62)": a statistic with its name in front
    candidate = " ".join(first[0].split())
    return candidate if looks_short(candidate) else None


def find_abbreviations(text: str) -> Iterator[Abbreviation]:
    """Every definition in `text`, in order (repeats included: callers count per record)."""
    for match in _PAREN.finditer(text):
        inner = match.group(1).strip()
        short = _short_part(inner)
        if short is not None:
            long = match_long_form(short, _window(text, match.start(), short))
            if long is not None:
                yield Abbreviation(short, long)
            continue
        # Reverse order: "NSCLC (non-small cell lung cancer)".
        if len(inner.split()) < 3 or _STATISTIC.search(inner) or re.search(r"[;,]", inner):
            continue
        before = text[:match.start()].split()
        if not before:
            continue
        short = before[-1].strip(".,;:")
        if looks_short(short) and len(inner.split()) <= min(len(_alnum(short)) + 5, 2 * len(_alnum(short))):
            long = match_long_form(short, " ".join(inner.split()), whole=True)
            if long is not None:
                yield Abbreviation(short, long)
