"""Query -> ranked records: the one retrieval path shared by the CLI, the HTTP API, QA and llama-index.

The store ranks chunks; readers want records. A record's score is its best chunk's score, and the
passage shown is that chunk's passage, so every result can be cited with the text that matched.

A `Reranker` (passed in by the wiring module; the trained cross-encoder of `synthesis.rerank`) may then reorder
the first `rerank_depth` records by reading the query with each record's title and passage together; records
below that depth keep their first-stage order. A reranked hit carries `relevance` (the reranker's 0-1 score).

A `QueryExpander` (`index.expansion`, the synonyms the catalog's records define) may add synonyms of the query's
terms: to the sparse side at a lower weight, and to the dense side's text when its config says so. `expand`
sets the default; `search(..., expand=)` overrides it per call, and `expansions(query)` says what was added.
The reranker always reads the query as written.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, runtime_checkable

from index.embedder import Embedder
from index.expansion import Expansion, QueryExpander, sparse_terms
from index.sparse import BM25Encoder
from index.store import Hit, SearchFilter, SearchMode, Store

# Chunks fetched per record asked for: several chunks of one record often rank together.
CHUNKS_PER_RECORD = 4


@runtime_checkable
class Reranker(Protocol):
    """Scores passages for a query, higher = more relevant; deterministic for the same inputs."""

    name: str

    def score(self, query: str, passages: Sequence[str]) -> list[float]: ...


@dataclass(frozen=True)
class RecordHit:
    record_id: str
    score: float
    rank: int
    passage: str
    title: str
    chunk_id: str
    section: str | None
    payload: dict[str, Any] = field(repr=False)
    relevance: float | None = None  # the reranker's 0-1 score, when the hit was reranked

    def as_dict(self) -> dict[str, Any]:
        p = self.payload
        return {"rank": self.rank, "record_id": self.record_id, "score": round(self.score, 6),
                "relevance": None if self.relevance is None else round(self.relevance, 4), "title": self.title,
                "passage": self.passage, "chunk_id": self.chunk_id, "section": self.section,
                "record_type": p.get("record_type"), "published": p.get("published"), "design": p.get("design"),
                "evidence_level": p.get("evidence_level"), "trial_status": p.get("trial_status"),
                "journal": p.get("journal"), "phases": p.get("phases", []),
                "flags": p.get("flags", [])}


@dataclass
class Searcher:
    store: Store
    embedder: Embedder
    encoder: BM25Encoder
    reranker: Reranker | None = None
    rerank_depth: int = 30
    expander: QueryExpander | None = None
    expand: bool = False  # the default of `search(expand=None)`
    rerank: bool = False  # the default of `search(rerank=None)` when a reranker is wired

    def expansions(self, query: str, expand: bool | None = None, mode: SearchMode = "hybrid") -> list[Expansion]:
        """The synonyms a `mode` search for `query` adds (none when expansion is off, no expander is wired, or
        the mode is dense and the expander leaves the dense side alone)."""
        if self.expander is None or not (self.expand if expand is None else expand):
            return []
        if mode == "dense" and not self.expander.config.dense:
            return []
        return self.expander.expand(query)

    def chunks(self, query: str, filters: SearchFilter | None = None, limit: int = 10,
               mode: SearchMode = "hybrid", expand: bool | None = None) -> list[Hit]:
        added = self.expansions(query, expand, mode)
        dense_text = self.expander.dense_text(query, added) if self.expander is not None else query
        dense = self.embedder.embed_query([dense_text])[0] if mode != "sparse" else None  # the query side, not embed
        sparse = self.encoder.encode_query(query, sparse_terms(added)) if mode != "dense" else None
        return self.store.search(dense, sparse, filters=filters, limit=limit, mode=mode)

    def search(self, query: str, filters: SearchFilter | None = None, limit: int = 10,
               mode: SearchMode = "hybrid", rerank: bool | None = None,
               expand: bool | None = None) -> list[RecordHit]:
        """The best `limit` records for `query`, each with its best-matching passage. `rerank`: None = the
        searcher's default (`self.rerank`, from search.rerank_by_default), True = must (ValueError without one), False = first stage only. `expand`:
        None = the searcher's default, True / False = with / without the synonyms of `expansions(query)`."""
        if rerank and self.reranker is None:
            raise ValueError("no reranker is configured (search.reranker = 'none')")
        if not query.strip():
            return []
        if rerank is None:
            rerank = self.rerank
        if self.reranker is None or not rerank:
            return self.first_stage(query, filters, limit, mode, expand)
        hits = self.first_stage(query, filters, max(limit, self.rerank_depth), mode, expand)
        head, tail = hits[:self.rerank_depth], hits[self.rerank_depth:]
        scores = self.reranker.score(query, [f"{h.title} {h.passage}".strip() for h in head])
        order = sorted(range(len(head)), key=lambda i: (-scores[i], i))
        ranked = [replace(head[i], relevance=scores[i]) for i in order] + tail
        return [replace(h, rank=n + 1) for n, h in enumerate(ranked[:limit])]

    def first_stage(self, query: str, filters: SearchFilter | None = None, limit: int = 10,
                    mode: SearchMode = "hybrid", expand: bool | None = None) -> list[RecordHit]:
        """Fused (or dense / sparse) retrieval, chunks folded into records: what the reranker reorders."""
        if not query.strip():
            return []
        best: dict[str, Hit] = {}
        for hit in self.chunks(query, filters, limit * CHUNKS_PER_RECORD, mode, expand):
            rid = hit.payload["record_id"]
            if rid not in best:  # hits arrive best first
                best[rid] = hit
            if len(best) == limit:
                break
        return [RecordHit(record_id=rid, score=hit.score, rank=i + 1, passage=hit.payload.get("passage", ""),
                          title=hit.payload.get("title", ""), chunk_id=hit.payload.get("chunk_id", hit.id),
                          section=hit.payload.get("section"), payload=hit.payload)
                for i, (rid, hit) in enumerate(best.items())]
