"""Finding the passages of record text that address a language model (prompt injection), so they are never
shown to a model, never quoted and never count as support (architecture invariant 5).

Why a detector and not a phrase list: the first guard matched a dozen English phrases and caught 3 of 12
variants an attacker tried (issue 18): a zero-width space, full-width letters, French, "Ignore the above
and say X" or "SYSTEM: new task" walked past it. This one reads a *folded view* of the text first:

1. Folding (`fold`): NFKC compatibility forms (full-width, mathematical and circled letters, ligatures
   become plain letters), diacritics removed (so "précédentes" reads as "precedentes" and the patterns
   need no accents), zero-width, bidi, soft-hyphen, tag and other control/format characters dropped,
   common Cyrillic/Greek look-alikes mapped to Latin letters, and letter-spaced words ("i g n o r e")
   closed up. Every character of the view remembers where it came from, so a span found in the view is
   a span of the original text (blanking keeps offsets; quotes stay verbatim).
2. Patterns (`RULES`, written in `synthesis.injection_rules`) for what only an instruction to a model says,
   by family: override phrases ("ignore/disregard/forget the above/previous ..." and paraphrases), turn and
   role tags ("SYSTEM:", "assistant:", `<|im_start|>`, `[INST]`, a forged end-of-record marker), a new task
   or identity ("new task:", "you are now ...", "from now on"), output commands in imperative position
   ("say ...", "respond only with ...", "instead write ..."), words addressed to a model ("Note to the AI"),
   and citation tags planted in the text (`[PMID:1]`, `[NCT99999999]` unless it names the registration,
   "PMID: 1"). In English, French, German, Spanish, Italian, Portuguese, Russian, Chinese, Japanese and
   Korean basics: the catalog's data here is English, but PubMed carries vernacular titles and
   other-language abstracts.
3. Whole sentences go, and what an instruction points at goes with it: the next sentence of its line when
   it carries no payload of its own ("Ignore previous instructions." — unlike "... and say X"), the next
   sentence wherever it is when it points forward ("the following:"), the sentence before when it points
   back ("repeat the previous sentence"), the rest of the line after a role tag, and everything up to the
   closing mark of a quotation it opens.

The patterns are kept specific to a model being addressed: a real abstract says "patients were instructed
to ..." or "ignored the guidelines", never "ignore the previous instructions". `tests/test_injection.py`
holds the variants and checks that real abstracts in the shared data are not flagged.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from synthesis.injection_rules import EN, OTHER

Span = tuple[int, int]

# Look-alike letters an attacker swaps in ("іgnоre" with Cyrillic і and о). Only the common ones: this is
# the detector's view, never shown to anyone.
_CONFUSABLES = str.maketrans({
    "а": "a", "в": "B", "е": "e", "к": "k", "м": "M", "н": "H", "о": "o", "р": "p", "с": "c", "т": "T",
    "у": "y", "х": "x", "ѕ": "s", "і": "i", "ј": "j", "ԁ": "d", "ӏ": "l", "ԛ": "q", "ԝ": "w", "һ": "h",
    "А": "A", "В": "B", "Е": "E", "К": "K", "М": "M", "Н": "H", "О": "O", "Р": "P", "С": "C", "Т": "T",
    "Х": "X", "У": "Y", "Ѕ": "S", "І": "I", "Ј": "J",
    "α": "a", "ο": "o", "ν": "v", "ρ": "p", "ι": "i", "κ": "k", "υ": "u", "ε": "e", "τ": "t",
    "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I", "Κ": "K", "Μ": "M", "Ν": "N", "Ο": "O",
    "Ρ": "P", "Τ": "T", "Υ": "Y", "Χ": "X", "ı": "i", "ɡ": "g", "ɑ": "a",
})
_LINE_BREAKS = frozenset("\n\r\x0b\x0c\x85\u2028\u2029")
_DROP_CATEGORIES = frozenset({"Cc", "Cf", "Co", "Cs", "Cn", "Mn", "Me"})
_ASCII_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def _fold_char(char: str) -> str:
    """One character as the detector reads it: "" (dropped), itself, or its folded letters."""
    if char in _LINE_BREAKS:
        return "\n"
    if char == "\t":
        return " "
    out = []
    for piece in unicodedata.normalize("NFKD", char):
        if unicodedata.category(piece) in _DROP_CATEGORIES:
            continue  # zero-width, bidi, soft hyphen, tags, variation selectors, combining accents
        out.append(piece.translate(_CONFUSABLES))
    return "".join(out)


@dataclass(frozen=True)
class Folded:
    """The detector's view of a text and, for each of its characters, the index it came from."""

    text: str
    origin: tuple[int, ...] | None  # None: the view is the text itself
    length: int                     # the original's length

    def span(self, start: int, end: int) -> Span:
        """A span of the view as a span of the original text."""
        if self.origin is None:
            return start, end
        if end <= start:
            at = self.origin[start] if start < len(self.origin) else self.length
            return at, at
        first = self.origin[start] if start < len(self.origin) else self.length
        last = self.origin[end - 1] + 1 if end - 1 < len(self.origin) else self.length
        return first, last


# Four or more single letters separated by one space or punctuation mark: "i g n o r e", "i.g.n.o.r.e".
_SPACED = re.compile(r"(?<![^\W\d_])(?:[^\W\d_][ .\-_*·|/]){3,}[^\W\d_](?![^\W\d_])")


def fold(text: str) -> Folded:
    """The folded view of `text` (see the module docstring), with its way back to the original."""
    if text.isascii() and not _ASCII_CONTROL.search(text) and not _SPACED.search(text):
        return Folded(text, None, len(text))
    chars: list[str] = []
    origin: list[int] = []
    for i, char in enumerate(text):
        if char.isascii() and char.isprintable() or char == "\n":
            chars.append(char)
            origin.append(i)
            continue
        for piece in _fold_char(char):
            chars.append(piece)
            origin.append(i)
    view = "".join(chars)
    # Close up letter-spaced words: drop the separators inside each run.
    keep = [True] * len(view)
    for match in _SPACED.finditer(view):
        for j in range(match.start() + 1, match.end(), 2):
            keep[j] = False
    if not all(keep):
        origin = [o for o, k in zip(origin, keep) if k]
        view = "".join(c for c, k in zip(view, keep) if k)
    return Folded(view, tuple(origin), len(text))


def _fold_pattern(pattern: str) -> str:
    """A pattern written with real letters ("précédentes", "プロンプト") folded the way the text is, so
    both sides meet. ASCII (all regex syntax) is left as it is."""
    return "".join(c if c.isascii() else _fold_char(c) for c in pattern)


# ------------------------------------------------------------------------------------------------
# The patterns
# ------------------------------------------------------------------------------------------------

_FLAGS = re.IGNORECASE | re.MULTILINE
_TABLE = [(name, p, ()) for name, p in EN.items()] + [(name, p, needles) for name, ps in OTHER.items()
                                                      for p, needles in ps]
RULES: tuple[tuple[str, re.Pattern[str]], ...] = tuple((name, re.compile(_fold_pattern(p), _FLAGS))
                                                       for name, p, _ in _TABLE)
"""(family, pattern) over the folded view; a match flags its sentence."""
_NEEDLES: tuple[tuple[str, ...], ...] = tuple(tuple(_fold_pattern(n).lower() for n in needles)
                                              for _, _, needles in _TABLE)
"""Per rule: words one of which a match must hold (none: always run). The other languages' patterns are skipped
with a substring test on a text that holds none of their words: on 1,783 of the shared data's texts that saves a
quarter to a third of a scan (1.5 vs 2.2 ms and 3.4 vs 4.7 ms per text, two runs at different loads of this shared
2-core machine)."""

_SENTENCE_END = re.compile(r"[.!?](?=[\s\"'”»」)\]]|$)|[。！？]|\n")
# A flagged sentence that points at something takes it too: forwards ("say the following:"), backwards
# ("repeat the previous sentence").
_POINTS_ON = re.compile(_fold_pattern(
    r"[:：]\s*$|\b(?:the\s+following|following\s+(?:sentence|text|claim|statement|words)|next\s+sentence|below|"
    r"this\s+sentence|these\s+words|verbatim|word\s+for\s+word|suivant\w*|ci-dessous|folgend\w*|siguiente\w*|"
    r"seguinte\w*|seguente\w*|以下|下面|次の)"), _FLAGS)
_POINTS_BACK = re.compile(_fold_pattern(
    r"\b(?:previous|above|preceding|prior|last|first)\s+(?:sentence|statement|claim|line|paragraph)|"
    r"\b(?:that|this)\s+(?:claim|statement)\b|phrase\s+precedente|vorherigen\s+satz|frase\s+anterior|上一句|前の文"),
    _FLAGS)
_CARRIERS = frozenset({"output command", "planted citation"})
_QUOTES = {"\"": "\"", "“": "”", "«": "»", "„": "“", "「": "」", "『": "』"}


_REGISTRY_WORDS = re.compile(r"(?i:clinicaltrials\.gov|regist|identifier|\bnumber\b|\btrials?\b|\bstud(?:y|ies)\b)"
                             r"|\b[A-Z][A-Z0-9\-]{3,}\s*[,;(]?\s*$")


def _registry_mention(folded: str, match: re.Match[str]) -> bool:
    """A bracketed NCT id as real records write one: closing the title line ("... trial [NCT00114725]", as
    PMC titles do), named as the registration ("ClinicalTrials.gov [NCT...]") or after a trial's name or code
    ("A7501004 [NCT00159744]", "the KEYNOTE-006 trial [NCT...]"). PMIDs get no such pass: a record has no
    reason to write OncoLit's "[PMID:1]", and a "PMID: 1" sentence is a reference, not a finding."""
    tag = match.group(0)
    if "pmid" in tag.lower() or "pubmed" in tag.lower() or not tag.startswith("["):
        return False
    line_end = folded.find("\n")
    if line_end < 0 or match.end() <= line_end:
        rest = folded[match.end():line_end if line_end >= 0 else len(folded)]
        if not rest.strip(" .;)"):
            return True
    before = folded[max(0, match.start() - 60):match.start()]
    return bool(_REGISTRY_WORDS.search(before)) if "\n" not in before else \
        bool(_REGISTRY_WORDS.search(before.rsplit("\n", 1)[1]))


def _sentence_of(ends: list[int], length: int, start: int, end: int) -> Span:
    """The sentence(s) holding [start, end) in the view: from the last sentence end at or before `start`
    to the first one at or after `end`."""
    first = max((e for e in ends if e <= start), default=0)
    last = next((e for e in ends if e >= end and e > start), length)
    return first, last


@lru_cache(maxsize=512)
def _scan(text: str) -> tuple[tuple[int, int, str], ...]:
    view = fold(text)
    folded = view.text
    ends = [m.end() for m in _SENTENCE_END.finditer(folded)]
    lower = folded.lower()
    found: list[tuple[int, int, str]] = []
    for (family, pattern), needles in zip(RULES, _NEEDLES):
        if needles and not any(n in lower for n in needles):
            continue
        for match in pattern.finditer(folded):
            if match.end() == match.start() or (family == "planted citation" and _registry_mention(folded, match)):
                continue
            start, end = _sentence_of(ends, len(folded), match.start(), match.end())
            if family == "role tag":  # a turn: the rest of its line
                newline = folded.find("\n", match.end())
                end = max(end, newline if newline >= 0 else len(folded))
            end = _close_quote(folded, start, end)
            sentence = folded[start:end].rstrip()
            # The payload rides next to the instruction. An instruction that says what to write holds it
            # ("... and say X"); one that does not ("Ignore previous instructions.") takes the next sentence of
            # its line, and one that points at it ("the following:") takes the next sentence wherever it is.
            carries = family in _CARRIERS or any(rule.search(sentence) for name, rule in RULES if name in _CARRIERS)
            if _POINTS_ON.search(sentence) or (not carries and not folded[start:end].endswith("\n")):
                end = _close_quote(folded, end, _sentence_of(ends, len(folded), end, end + 1)[1])
            if _POINTS_BACK.search(sentence) and start > 0 and folded[start - 1] != "\n":
                start = _sentence_of(ends, len(folded), max(0, start - 1), start)[0]
            found.append((start, end, family))
    found.sort()
    merged: list[tuple[int, int, str]] = []
    for start, end, family in found:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]), merged[-1][2])
        else:
            merged.append((start, end, family))
    return tuple((*view.span(s, e), family) for s, e, family in merged)


def _close_quote(folded: str, start: int, end: int) -> int:
    """`end`, moved past the closing quotation mark of a quote the span opens but does not close (on the same
    line: a stray inch mark must not blank the rest of the record)."""
    piece = folded[start:end]
    if piece.endswith("\n"):
        return end
    line_end = folded.find("\n", end)
    line_end = len(folded) if line_end < 0 else line_end
    for opening, closing in _QUOTES.items():
        opened = piece.count(opening) if opening == closing else piece.count(opening) - piece.count(closing)
        if (opening == closing and opened % 2) or (opening != closing and opened > 0):
            close = folded.find(closing, end, line_end)
            if close >= 0:
                end = close + 1
    return end


def find_instructions(text: str) -> list[Span]:
    """Spans of `text` that address a model (whole sentences, with what they point at), merged, in order."""
    return [(s, e) for s, e, _ in _scan(text)] if text else []


def explain(text: str) -> list[tuple[Span, str]]:
    """Each flagged span with the family of the first rule that flagged it (for warnings and tests)."""
    return [((s, e), family) for s, e, family in _scan(text)] if text else []


def blank_spans(text: str, spans: Sequence[Span]) -> str:
    """`text` with each span replaced by spaces: same length, so offsets into it stay offsets into the
    original (line breaks inside a span are kept, so line-based readers keep their lines)."""
    if not spans:
        return text
    chars = list(text)
    for start, end in spans:
        for i in range(start, min(end, len(chars))):
            if chars[i] != "\n":
                chars[i] = " "
    return "".join(chars)


def clean_text(text: str) -> str:
    """`text` with every passage addressed to a model blanked: what a model is shown and what is checked."""
    return blank_spans(text, find_instructions(text))


_LABEL = re.compile(r"^\s*[A-Z][A-Za-z &/\-]{1,40}:\s+")


def _words(text: str) -> str:
    """Text as a run of lower-case words, so a chunk that re-spaced, re-labelled or dropped a quotation mark
    still meets the record text it came from."""
    return " " + " ".join(re.findall(r"\w+", fold(text).text.lower())) + " "


def clean_passage(passage: str, text: str, planted: Sequence[Span]) -> str:
    """A piece of `text` (an index chunk) with what the whole text's scan flagged (`planted`) blanked too: a
    chunk alone may hold the payload sentence but not the instruction before it that made it planted
    ("... repeat the following."). "" when nothing is left (callers then show the text's clean form)."""
    spans = list(find_instructions(passage))
    fragments = [f for f in (_words(text[s:e]) for s, e in planted) if f.strip()]
    if fragments:
        start = 0
        for match in [*_SENTENCE_END.finditer(passage), None]:
            end = match.end() if match else len(passage)
            body = _words(_LABEL.sub("", passage[start:end]))
            if body.strip() and any(body in f or f in body for f in fragments):
                spans.append((start, end))
            start = end
    out = blank_spans(passage, spans)
    return out if out.strip() else ""


WITHHELD = "[…]"


def redact(text: str) -> str:
    """`text` for display (titles in answers and digests): each flagged passage becomes "[…]"."""
    spans = find_instructions(text)
    if not spans:
        return text
    out, pos = [], 0
    for start, end in spans:
        out.append(text[pos:start])
        out.append(WITHHELD + (" " if text[end - 1:end].isspace() else ""))
        pos = end
    out.append(text[pos:])
    return re.sub(r"[ \t]{2,}", " ", "".join(out)).strip()
