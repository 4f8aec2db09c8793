"""BM25-style sparse vectors: we supply the term-frequency half, Qdrant supplies the IDF half.

Both stores create the sparse vector with the IDF modifier, so the engine multiplies every query
term by an inverse document frequency computed over the live collection. That keeps document
weights independent of the corpus (a new record never forces re-encoding old ones), and the
statistics stay right after deletes. What is left for us:

- a deterministic tokenizer that keeps biomedical tokens intact ("her2", "pd-l1", "t790m", "5-fu",
  "0.5") and also emits their parts, so "PD-L1", "PD L1" and "pd-l1" queries meet;
- document weights saturated in term frequency and normalised by length (BM25's k1 and b);
- query weights of 1 per distinct term (the IDF is applied by the engine), and lower ones for the
  synonyms `index.expansion` adds;
- a stable token -> uint32 index (a hash, so no vocabulary file has to be kept in step).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from ingest.records.tokens import STOPWORDS as STOPWORDS  # re-exported: the BM25 vocabulary is these tokens
from ingest.records.tokens import tokenize as tokenize


def token_index(token: str) -> int:
    """A stable uint32 for a token: the first 4 bytes of its BLAKE2b digest (Python's hash() is salted)."""
    return int.from_bytes(hashlib.blake2b(token.encode("utf-8"), digest_size=4).digest(), "big")


@dataclass(frozen=True)
class SparseVector:
    """Sorted, unique indices with their weights; what both stores accept."""

    indices: tuple[int, ...]
    values: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.indices) != len(self.values):
            raise ValueError("sparse vector needs one value per index")

    def __len__(self) -> int:
        return len(self.indices)

    @classmethod
    def from_weights(cls, weights: dict[int, float]) -> SparseVector:
        items = sorted((i, w) for i, w in weights.items() if w > 0)
        return cls(tuple(i for i, _ in items), tuple(float(w) for _, w in items))


@dataclass(frozen=True)
class BM25Encoder:
    """Encodes documents and queries for a sparse vector with the engine's IDF modifier.

    `k1` saturates term frequency, `b` normalises by length against `avg_len` tokens. `avg_len` is a
    fixed setting rather than a corpus statistic so document vectors never depend on other
    documents; chunks are capped near the embedder's window, so a fixed value is close to the truth.
    """

    k1: float = 1.2
    b: float = 0.75
    avg_len: float = 150.0

    @property
    def fingerprint(self) -> str:
        """What changes document vectors; part of the collection name."""
        return f"bm25-k{self.k1:g}-b{self.b:g}-L{self.avg_len:g}"

    def encode_document(self, text: str) -> SparseVector:
        tokens = tokenize(text)
        counts = Counter(token_index(t) for t in tokens)
        norm = self.k1 * (1.0 - self.b + self.b * len(tokens) / self.avg_len)
        return SparseVector.from_weights(
            {idx: tf * (self.k1 + 1.0) / (tf + norm) for idx, tf in counts.items()})

    def encode_query(self, text: str, extra: Iterable[tuple[str, float]] = ()) -> SparseVector:
        """One per distinct term: repeating a word in a query should not outweigh a rarer one.

        `extra`: (text, weight) pairs whose tokens are added at that weight (below 1: synonyms from
        `index.expansion`); a token the query spells keeps 1, one added twice keeps its larger weight."""
        weights = {token_index(t): 1.0 for t in tokenize(text)}
        for added, weight in extra:
            for t in tokenize(added):
                idx = token_index(t)
                weights[idx] = max(weights.get(idx, 0.0), min(weight, 1.0))
        return SparseVector.from_weights(weights)

    def encode_documents(self, texts: Iterable[str]) -> list[SparseVector]:
        return [self.encode_document(t) for t in texts]
