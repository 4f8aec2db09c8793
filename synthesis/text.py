"""Sentences of a record with their offsets, and the content words phrases are compared by.

Why offsets: a finding's evidence quote must be a verbatim span of the text the citation check reads
(`synthesis.readers.record_text`: title, newline, abstract sections as "LABEL: text"), so sentences
here are `(start, end)` spans of that string, never re-joined copies. The boundary rule is the one
`index.chunking.split_sentences` uses for chunks (conservative: "et al.", "vs." and initials do not
end a sentence), applied to the raw text so offsets survive.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from index.chunking import _ABBREVIATIONS, _BOUNDARY  # the one boundary rule, shared with the chunker
from ingest.records.article import Article

_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class Sentence:
    """One sentence of a record text: `text == record_text[start:end]`; `section` is the abstract
    label it sits under ("RESULTS"), "TITLE" for the title, "" for unlabelled prose."""

    start: int
    end: int
    text: str
    section: str
    index: int


def _spans_in(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Sentence spans inside text[start:end], stripped of surrounding white space."""
    out: list[tuple[int, int]] = []
    cursor = start
    chunk = text[start:end]
    for match in _BOUNDARY.finditer(chunk):
        before = chunk[: match.start()].rstrip(".!?\"'\u201d)]")
        last_word = before.rsplit(None, 1)[-1].lower() if before.strip() else ""
        if last_word in _ABBREVIATIONS or (len(last_word) == 1 and last_word.isalpha()):
            continue
        out.append((cursor, start + match.start()))
        cursor = start + match.end()
    out.append((cursor, end))
    spans = []
    for s, e in out:
        while s < e and text[s].isspace():
            s += 1
        while e > s and text[e - 1].isspace():
            e -= 1
        if e > s:
            spans.append((s, e))
    return spans


def sentences_of(text: str, sections: list[tuple[str, tuple[int, int]]] | None = None) -> list[Sentence]:
    """Sentences of `text`; with `sections` ((label, span) pairs) each section is split on its own
    and its sentences carry the label. Without them, lines are split first, then prose."""
    if sections is None:
        sections = []
        pos = 0
        for line in text.split("\n"):
            sections.append(("", (pos, pos + len(line))))
            pos += len(line) + 1
    out: list[Sentence] = []
    for label, (start, end) in sections:
        for s, e in _spans_in(text, start, end):
            out.append(Sentence(s, e, text[s:e], label, len(out)))
    return out


def article_sentences(article: Article, text: str | None = None) -> list[Sentence]:
    """Sentences of an article's `record_text` (or of `text`, a same-offsets copy of it such as the text with
    planted instructions blanked), the title first (section "TITLE")."""
    from synthesis.readers import record_text, section_spans

    sections: list[tuple[str, tuple[int, int]]] = []
    if article.title:
        sections.append(("TITLE", (0, len(article.title))))
    sections += [(label, span) for label, _category, span in section_spans(article)]
    return sentences_of(record_text(article) if text is None else text, sections)


# ------------------------------------------------------------------------------------------------
# Words
# ------------------------------------------------------------------------------------------------

STOP = frozenset("""a an and the of in on at to for with without from by or vs versus group groups arm arms patients
patient subjects participants treatment treated therapy receiving received who which that than after before during
plus alone only control was were is are be been this these those its their our into between compared""".split())
WORD = re.compile(r"[a-z0-9]+(?:[.\-][a-z0-9]+)*")


def norm_word(word: str) -> str:
    """Lower case, a plural "s" stripped ("rates" -> "rate", "class" stays)."""
    w = word.lower()
    return w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w


def content_words(text: str) -> set[str]:
    """The words that carry meaning: no stop words, no single characters."""
    return {norm_word(w) for w in WORD.findall(text.lower()) if w not in STOP and len(w) >= 2}


def overlap(phrase: str, text: str) -> float:
    """Share of `phrase`'s content words found in `text` (0 when the phrase has none)."""
    words = content_words(phrase)
    if not words:
        return 0.0
    return len(words & content_words(text)) / len(words)


def flat(text: str) -> str:
    """White space collapsed, lower case: how spans written by people are compared with a text."""
    return _SPACE.sub(" ", text).strip().lower()
