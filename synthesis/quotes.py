"""Quotes: a record's sentences as spans of its text, scored as support for a query, and the best one sliced
verbatim (so a quote used in place of a generated sentence passes the checks that sentence failed).

Sentences inside a passage `synthesis.injection` flags, and sentences holding a citation tag written into the
record, are never candidates: a quote is shown to readers and models and may become a cited sentence.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from synthesis.citations import CITATION_RE, content_terms
from synthesis.injection import find_instructions
from synthesis.verify import verify_numbers

# "RESULTS: ..." at the start of a line: a structured abstract's section label.
_LABEL = re.compile(r"^[ \t]*(?P<label>[A-Z][A-Za-z &/\-]{1,40}):[ \t]+")
_RESULT_LABELS = re.compile(r"result|finding|conclusion|interpretation|outcome|main", re.IGNORECASE)
_BACKGROUND_LABELS = re.compile(r"background|introduction|context|objective|purpose|aim|method|design|setting",
                                re.IGNORECASE)
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"'\u201d)\]]*\s+(?=[\"'\u201c(\[]?[A-Z0-9])")
_ABBREVIATIONS = frozenset("al approx ca cf dr e.g eg etc fig figs i.e ie incl inc jr mr mrs ms no nos pp resp "
                           "sr st vol vs viz".split())


@dataclass(frozen=True)
class SentenceSpan:
    start: int
    end: int
    label: str | None   # the section label of the line it sits on ("RESULTS"), if any
    line_no: int


def sentence_spans(text: str) -> list[SentenceSpan]:
    """Sentences of a record's text as spans into it (so a slice is verbatim): per line, after any
    section label, split at sentence ends that are not abbreviations."""
    spans: list[SentenceSpan] = []
    pos = 0
    for line_no, line in enumerate(text.split("\n")):
        label_match = _LABEL.match(line)
        label = label_match.group("label") if label_match else None
        start = label_match.end() if label_match else 0
        cursor = start
        for boundary in _SENTENCE_END.finditer(line, start):
            before = line[cursor:boundary.start()].rstrip(".!?\"'\u201d)]")
            last = before.rsplit(" ", 1)[-1].lower()
            if last in _ABBREVIATIONS or (len(last) == 1 and last.isalpha()):
                continue
            spans.append(SentenceSpan(pos + cursor, pos + boundary.start(), label, line_no))
            cursor = boundary.end()
        spans.append(SentenceSpan(pos + cursor, pos + len(line.rstrip()), label, line_no))
        pos += len(line) + 1
    return [s for s in spans if text[s.start:s.end].strip()]


def quote_candidates(query: str, record_text: str,
                     skip: Sequence[tuple[int, int]] = ()) -> list[tuple[float, SentenceSpan]]:
    """Every sentence of `record_text` scored as support for `query`, best first.

    Score: the share of the query's content words the sentence holds (the main term), plus 0.25 for
    a results/conclusion section, 0.15 when it reports a number (the findings a reader wants), minus
    0.25 for background/methods sections, 0.3 for fragments under six words and 1.0 for questions;
    the title line (line 0 when there are others) loses 0.1. Sentences overlapping `skip` or a passage
    `synthesis.injection` flags, and sentences holding a citation tag written into the record ("[PMID:1]",
    "[NCT01234567]": quoted, it would turn into a link and a citation), are never candidates.
    """
    q_terms = content_terms(query)
    blocked = [*skip, *find_instructions(record_text)]
    spans = [s for s in sentence_spans(record_text)
             if not any(s.start < end and start < s.end for start, end in blocked)
             and not CITATION_RE.search(record_text, s.start, s.end)]
    multi_line = any(s.line_no > 0 for s in spans)
    scored = []
    for s in spans:
        sentence = record_text[s.start:s.end]
        terms = content_terms(sentence)
        score = len(q_terms & terms) / len(q_terms) if q_terms else 0.0
        if s.label and _RESULT_LABELS.search(s.label):
            score += 0.25
        elif s.label and _BACKGROUND_LABELS.search(s.label):
            score -= 0.25
        if not verify_numbers(sentence, set())[0]:
            score += 0.15
        if len(sentence.split()) < 6:
            score -= 0.3
        if sentence.rstrip().endswith("?"):  # a question (PubMedQA-style titles) is not a finding
            score -= 1.0
        if multi_line and s.line_no == 0:
            score -= 0.1
        scored.append((score, s))
    scored.sort(key=lambda pair: (-pair[0], pair[1].start))
    return scored


def best_quote(query: str, record_text: str, skip: Sequence[tuple[int, int]] = ()) -> str:
    """The record sentence that best supports `query` (see `quote_candidates`), sliced verbatim from
    `record_text`; "" when the text has no sentence."""
    scored = quote_candidates(query, record_text, skip)
    if not scored:
        return ""
    best = scored[0][1]
    return record_text[best.start:best.end].strip()
