"""Read-time enforcement for the surfaces that retrieve: search, QA and digests.

The index sync drops excluded records' points (pass `curation.is_excluded` to `index.sync.sync`), but
a decision taken a second ago is not in the index until the next sync. `CuratedSearcher` closes that
gap: it wraps a searcher and removes every hit the current decisions and rules exclude, asking for a
few more results so the caller still gets `limit` records.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from ingest.curation.service import Curation

OVERFETCH = 2  # extra results asked per excluded hit found, up to this many rounds


class CuratedSearcher:
    """Same surface as `index.search.Searcher` (`search`, `chunks`), minus the excluded records."""

    def __init__(self, searcher: Any, curation: Curation):
        self.searcher = searcher
        self.curation = curation

    def __getattr__(self, name: str) -> Any:  # store, embedder, encoder, ... of the wrapped searcher
        return getattr(self.searcher, name)

    def search(self, query: str, filters: Any = None, limit: int = 10, mode: str = "hybrid",
               rerank: bool | None = None, expand: bool | None = None) -> list[Any]:
        asked = limit
        for _ in range(OVERFETCH + 1):
            hits = self.searcher.search(query, filters, asked, mode, rerank=rerank, expand=expand)
            visible = set(self.curation.visible([h.record_id for h in hits]))
            kept = [h for h in hits if h.record_id in visible]
            if len(kept) >= limit or len(hits) < asked:
                break
            asked += (asked - len(kept)) * 2 + limit
        return [_renumber(h, i + 1) for i, h in enumerate(kept[:limit])]

    def chunks(self, query: str, filters: Any = None, limit: int = 10, mode: str = "hybrid",
               expand: bool | None = None) -> list[Any]:
        hits = self.searcher.chunks(query, filters, limit * 2, mode, expand)
        visible = set(self.curation.visible(list({h.payload["record_id"] for h in hits})))
        return [h for h in hits if h.payload["record_id"] in visible][:limit]


def _renumber(hit: Any, rank: int) -> Any:
    if dataclasses.is_dataclass(hit) and getattr(hit, "rank", rank) != rank:
        return dataclasses.replace(hit, rank=rank)
    return hit


def without_excluded(curation: Curation, items: Sequence[Any], key: str = "record_id") -> list[Any]:
    """Items (objects or dicts with a record id) that may be shown, in order: e.g. a digest's candidate pool."""
    def rid(item: Any) -> str:
        return item[key] if isinstance(item, dict) else getattr(item, key)

    visible = set(curation.visible([rid(i) for i in items]))
    return [i for i in items if rid(i) in visible]
