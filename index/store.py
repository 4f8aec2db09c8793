"""The `Store` protocol both vector backends implement, and the values that cross it.

Backends: `EdgeStore` (Qdrant Edge, embedded, the default) and `QdrantStore` (qdrant-client: a
server or cluster by URL, or qdrant-client's local mode by path, which tests use). One contract test
suite runs against both, so callers (sync, retriever, CLI) never branch on the backend.

A store holds one collection at a time, opened or created by `ensure_collection`. Each point carries
a dense vector ("dense", cosine), a sparse BM25 vector ("sparse", IDF applied by the engine) and
the chunk's payload. Hybrid search runs both and fuses them by reciprocal rank (RRF) inside the
engine (a prefetch per vector and a fusion query); `rrf_fuse` is the same formula in Python, for
callers that fuse result lists of their own, and for tests that check the engines agree with it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

from index.chunking import day_number
from index.sparse import SparseVector
from ingest.errors import StoreError as StoreError  # re-exported: index.store.StoreError

DENSE = "dense"
SPARSE = "sparse"
SearchMode = Literal["hybrid", "dense", "sparse"]
# Cormack et al.'s constant; set explicitly on both engines (their defaults differ by version).
RRF_K = 60
# Each arm of a hybrid query fetches this many times `limit` candidates before fusion.
PREFETCH_FACTOR = 4
# Extra results asked of the engine so that ties at the cut can be broken by id (see `ranked`).
TIE_MARGIN = 4

# Payload fields with an index, and the index kind: what `SearchFilter` can filter on cheaply.
PAYLOAD_INDEXES: dict[str, str] = {
    "record_id": "keyword",
    "record_type": "keyword",
    "published_day": "integer",
    "design": "keyword",
    "evidence_level": "integer",
    "language": "keyword",
    "mesh": "keyword",
    "cancer_sites": "keyword",
    "trial_status": "keyword",
    "phases": "keyword",
    "flags": "keyword",  # "retracted", "excluded", "withdrawn": see chunking.record_flags
}


@dataclass(frozen=True)
class Point:
    """What is stored per chunk: id (a UUID string), both vectors, and the payload."""

    id: str
    dense: np.ndarray | Sequence[float]
    sparse: SparseVector
    payload: dict[str, Any] = field(default_factory=dict)

    def dense_list(self) -> list[float]:
        values: list[float] = np.asarray(self.dense, dtype=np.float32).tolist()
        return values


@dataclass(frozen=True)
class Hit:
    """One search result; `score` is the engine's (cosine, BM25 or RRF), comparable within one result list."""

    id: str
    score: float
    payload: dict[str, Any]


@dataclass(frozen=True)
class SearchFilter:
    """What a search may return. Empty fields do not filter; several values in one field mean any-of.

    Retracted and librarian-excluded records are left out unless asked for: evidence that must not
    be cited should not be retrieved by accident. Dates are inclusive. `evidence_level` counts from 1
    (strongest): the number of the grading rung (1a and 1b are 1; see synthesis/GRADING.md), written
    by the sync's annotator; `max_evidence_level=2` keeps levels 1 and 2 and drops ungraded records.
    """

    record_types: tuple[str, ...] = ()
    published_from: dt.date | None = None
    published_to: dt.date | None = None
    designs: tuple[str, ...] = ()
    evidence_levels: tuple[int, ...] = ()
    max_evidence_level: int | None = None
    languages: tuple[str, ...] = ()
    mesh_any: tuple[str, ...] = ()
    cancer_sites_any: tuple[str, ...] = ()
    trial_status_any: tuple[str, ...] = ()
    phases_any: tuple[str, ...] = ()
    record_ids: tuple[str, ...] = ()
    include_retracted: bool = False
    include_excluded: bool = False

    def __post_init__(self) -> None:
        # Accept lists or a single string where a tuple is meant; lower-case what the payload lower-cases.
        for name in ("record_types", "designs", "evidence_levels", "languages", "mesh_any", "cancer_sites_any",
                     "trial_status_any", "phases_any", "record_ids"):
            value = getattr(self, name)
            if isinstance(value, (str, int)):
                value = (value,)
            object.__setattr__(self, name, tuple(value))
        for name in ("languages", "mesh_any", "cancer_sites_any"):
            object.__setattr__(self, name, tuple(v.lower() for v in getattr(self, name)))

    def conditions(self) -> list[Condition]:
        """The filter as backend-neutral conditions; each store translates these one by one."""
        out: list[Condition] = []
        for key, values in (("record_type", self.record_types), ("design", self.designs),
                            ("evidence_level", self.evidence_levels), ("language", self.languages),
                            ("mesh", self.mesh_any), ("cancer_sites", self.cancer_sites_any),
                            ("trial_status", self.trial_status_any), ("phases", self.phases_any),
                            ("record_id", self.record_ids)):
            if values:
                out.append(Condition(key, "any", values=tuple(values)))
        if self.published_from or self.published_to:
            out.append(Condition("published_day", "range",
                                 gte=_day(self.published_from), lte=_day(self.published_to)))
        if self.max_evidence_level is not None:
            out.append(Condition("evidence_level", "range", lte=self.max_evidence_level))
        hidden = tuple(flag for flag, shown in (("retracted", self.include_retracted),
                                                ("excluded", self.include_excluded)) if not shown)
        if hidden:
            out.append(Condition("flags", "none_of", values=hidden))
        return out


@dataclass(frozen=True)
class Condition:
    """One condition: `any` (a value in `values`), `range` (inclusive ints) or `none_of` (no value in
    `values`; a missing field passes, so points written before a flag existed are not lost)."""

    key: str
    op: Literal["any", "range", "none_of"]
    values: tuple[Any, ...] = ()
    gte: int | None = None
    lte: int | None = None


def _day(date: dt.date | None) -> int | None:
    return day_number(date) if date else None


@runtime_checkable
class Store(Protocol):
    """A vector store holding one collection of chunk points at a time."""

    def ensure_collection(self, name: str, dim: int) -> None:
        """Open `name`, creating it (vectors, sparse IDF, payload indexes) if missing; make it current.
        Raises `StoreError` if it exists with another dense dimension."""
        ...

    @property
    def collection(self) -> str | None: ...

    def upsert(self, points: Sequence[Point]) -> None:
        """Insert or overwrite (same id: vectors and payload replaced)."""
        ...

    def delete(self, point_ids: Sequence[str]) -> None: ...

    def set_payload(self, point_ids: Sequence[str], payload: dict[str, Any]) -> None:
        """Set `payload`'s keys on each point (other keys and both vectors stay as they are): how derived
        fields such as the grade are refreshed without re-embedding. Ids not in the collection are ignored."""
        ...

    def delete_record(self, record_id: str) -> None:
        """Delete every point whose payload `record_id` matches, whatever its version."""
        ...

    def count(self) -> int: ...

    def point_ids_for(self, record_id: str) -> set[str]:
        """Ids of the record's points: what a re-sync compares with the new chunking to find stale ones."""
        ...

    def points_by_record(self) -> dict[str, dict[str, int]]:
        """Every point of the collection: record id -> {point id: version}. A full scan (payloads
        only), for `index verify`, which compares the whole index with the catalog."""
        ...

    def search(self, dense: np.ndarray | Sequence[float] | None, sparse: SparseVector | None,
               filters: SearchFilter | None = None, limit: int = 10,
               mode: SearchMode = "hybrid") -> list[Hit]: ...

    def optimize(self) -> None:
        """Build indexes after a bulk load (Edge builds HNSW only when asked); no-op where the engine does it."""
        ...

    def close(self) -> None: ...


def collection_name(embedder_name: str, dim: int, chunker_fingerprint: str, sparse_fingerprint: str = "") -> str:
    """`oncolit_<model-slug>_<dim>_<hash8>`: a new model or chunking gets a new collection, never a mix.

    The hash covers the chunker fingerprint and the sparse encoder settings (both change stored points).
    """
    slug = re.sub(r"[^a-z0-9]+", "-", embedder_name.lower()).strip("-")[:48] or "model"
    digest = hashlib.sha256(f"{chunker_fingerprint}|{sparse_fingerprint}".encode()).hexdigest()[:8]
    return f"oncolit_{slug}_{dim}_{digest}"


def rrf_fuse(rankings: Sequence[Sequence[Hit]], limit: int, k: int = RRF_K,
             weights: Sequence[float] | None = None) -> list[Hit]:
    """Reciprocal-rank fusion: score = sum over lists of weight / (k + rank), rank counted from 0.

    This is the formula both Qdrant engines use (checked by the contract tests), so fused scores
    from `Store.search(mode="hybrid")` and from this function agree. Ties are broken by id, as in `ranked`.
    """
    weights = list(weights) if weights is not None else [1.0] * len(rankings)
    if len(weights) != len(rankings):
        raise ValueError("one weight per ranking")
    scores: dict[str, float] = {}
    payloads: dict[str, dict[str, Any]] = {}
    for ranking, weight in zip(rankings, weights):
        for rank, hit in enumerate(ranking):
            scores[hit.id] = scores.get(hit.id, 0.0) + weight / (k + rank)
            payloads.setdefault(hit.id, hit.payload)
    return ranked([Hit(pid, score, payloads[pid]) for pid, score in scores.items()], limit)


def ranked(hits: Sequence[Hit], limit: int) -> list[Hit]:
    """Best first, equal scores by point id, cut to `limit`.

    RRF ties are common (ranks 1+2 and 2+1 sum alike) and each engine breaks them its own way, Edge
    not even the same way twice; ordering ties by id makes results repeatable and equal across
    backends. Stores ask the engine for `limit + TIE_MARGIN` hits so a tie at the cut is seen whole.
    """
    return sorted(hits, key=lambda h: (-h.score, h.id))[:limit]


def validate_points(points: Sequence[Point], dim: int) -> None:
    """Fail before writing anything: a wrong-sized vector would otherwise abort half a batch."""
    for p in points:
        size = len(p.dense)
        if size != dim:
            raise StoreError(f"point {p.id}: dense vector has {size} dimensions, the collection {dim}")
