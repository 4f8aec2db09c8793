"""Tokens of biomedical text: the one tokenizer BM25, query expansion and the benchmark builders share.

It lives on the records floor because both the index (BM25 vectors) and the dataset readers below it (the
topical benchmark's judgements, which must tokenize exactly as search does) need it.
"""

from __future__ import annotations

import re
import unicodedata

# Runs of letters/digits, joined by inner "-", ".", "/" or "+" when both sides are alphanumeric:
# keeps "pd-l1", "her2/neu", "0.05", "cd4+" (trailing "+" handled below), splits on everything else.
_TOKEN_RE = re.compile(r"[^\W_]+(?:[-./+][^\W_]+)*\+?")
_PART_RE = re.compile(r"[^\W_]+")
_NUMBER_RE = re.compile(r"\d+(?:[./]\d+)*")  # "0.62", "1/2": a number, not a compound of two

# Function words only. Domain words ("patients", "cancer") stay: the engine's IDF weighs them down.
STOPWORDS = frozenset("""
a an and are as at be been but by for from had has have in into is it its of on or that the their
there these this those to was were which with we our than then also after before between during
""".split())


def tokenize(text: str) -> list[str]:
    """Lower-cased, NFKC-normalised tokens; compound tokens are followed by their parts.

    "PD-L1 expression" -> ["pd-l1", "pd", "l1", "expression"]. Numbers stay ("0.05", "2").
    Deterministic and dependency-free so the index can always be rebuilt bit-for-bit.
    """
    text = unicodedata.normalize("NFKC", text).casefold()
    tokens: list[str] = []
    for match in _TOKEN_RE.finditer(text):
        token = match.group(0)
        parts = _PART_RE.findall(token)
        if token not in STOPWORDS:
            tokens.append(token)
        if (len(parts) > 1 or token.endswith("+")) and not _NUMBER_RE.fullmatch(token):
            tokens.extend(p for p in parts if p != token and p not in STOPWORDS)
    return tokens
