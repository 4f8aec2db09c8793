"""Query -> ranked records: the one retrieval path shared by the CLI, the HTTP API, QA and llama-index.

The store ranks chunks; readers want records. A record's score is its best chunk's score, and the
passage shown is that chunk's passage, so every result can be cited with the text that matched.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from index.embedder import Embedder
from index.sparse import BM25Encoder
from index.store import Hit, SearchFilter, SearchMode, Store

# Chunks fetched per record asked for: several chunks of one record often rank together.
CHUNKS_PER_RECORD = 4


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

    def as_dict(self) -> dict[str, Any]:
        p = self.payload
        return {"rank": self.rank, "record_id": self.record_id, "score": round(self.score, 6), "title": self.title,
                "passage": self.passage, "chunk_id": self.chunk_id, "section": self.section,
                "record_type": p.get("record_type"), "published": p.get("published"), "design": p.get("design"),
                "evidence_level": p.get("evidence_level"), "trial_status": p.get("trial_status"),
                "flags": p.get("flags", [])}


@dataclass
class Searcher:
    store: Store
    embedder: Embedder
    encoder: BM25Encoder

    def chunks(self, query: str, filters: SearchFilter | None = None, limit: int = 10,
               mode: SearchMode = "hybrid") -> list[Hit]:
        dense = self.embedder.embed_query([query])[0] if mode != "sparse" else None  # the query side, not embed
        sparse = self.encoder.encode_query(query) if mode != "dense" else None
        return self.store.search(dense, sparse, filters=filters, limit=limit, mode=mode)

    def search(self, query: str, filters: SearchFilter | None = None, limit: int = 10,
               mode: SearchMode = "hybrid") -> list[RecordHit]:
        """The best `limit` records for `query`, each with its best-matching passage."""
        if not query.strip():
            return []
        best: dict[str, Hit] = {}
        for hit in self.chunks(query, filters, limit * CHUNKS_PER_RECORD, mode):
            rid = hit.payload["record_id"]
            if rid not in best:  # hits arrive best first
                best[rid] = hit
            if len(best) == limit:
                break
        return [RecordHit(record_id=rid, score=hit.score, rank=i + 1, passage=hit.payload.get("passage", ""),
                          title=hit.payload.get("title", ""), chunk_id=hit.payload.get("chunk_id", hit.id),
                          section=hit.payload.get("section"), payload=hit.payload)
                for i, (rid, hit) in enumerate(best.items())]
