"""`EdgeStore`: Qdrant Edge (`qdrant-edge-py`), the Qdrant engine embedded in this process.

One collection is one Edge shard, a directory `<root>/<collection name>/` with its segments and
write-ahead log; reopening it is a load, not a rebuild. Facts this module relies on (qdrant-edge-py
0.9.0, a beta API; checked by the contract tests):

- dense + sparse named vectors per point; the sparse vector is created with `Modifier.Idf`, and the
  engine applies IDF to query terms at search time;
- hybrid search is a `QueryRequest` with one `Prefetch` per vector and `Fusion.Rrf(k=...)`;
  score = sum 1 / (k + rank), rank from 0 — the same as `store.rrf_fuse` and qdrant-client's;
- payload indexes are created with `UpdateOperation.create_field_index` and persist in the shard;
- HNSW graphs are built only by `optimize()` (no background optimizer): until then search is exact
  over the appendable segment, which is fine for small shards and slow for large ones. Call
  `optimize()` after a bulk sync.
- boolean payload values cannot be matched (a Python `True` reaches the engine as the integer 1), so
  the retracted/excluded filters test a keyword list (`flags`) instead, on both backends;
- `set_payload` with an id the shard does not hold fails after updating the ids before it, so the
  known ids are looked up (`retrieve`) first;
- Errors come back as plain `Exception` with a message; they are mapped to `StoreError` here.
- scalar int8 quantization (`ScalarQuantizationConfig`), payload placement (`payload_memory`) and
  query-time `SearchParams(hnsw_ef, QuantizationSearchParams(rescore, oversampling))` are all in the
  Edge API, as on the server; the quantized copy is built by `optimize()` with the HNSW graph, for
  segments past the optimizer's indexing threshold (`indexing_threshold_kb`, Qdrant's default
  10,000 KB), and a shard reopened with other settings is rewritten to them by its next `optimize()`.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import qdrant_edge as qe

from index.sparse import SparseVector
from index.store import (
    DENSE,
    PAYLOAD_INDEXES,
    PREFETCH_FACTOR,
    RRF_K,
    SPARSE,
    TIE_MARGIN,
    Condition,
    Hit,
    Point,
    SearchFilter,
    SearchMode,
    StoreError,
    ranked,
    validate_points,
)

_SCHEMA = {"keyword": qe.PayloadSchemaType.Keyword, "integer": qe.PayloadSchemaType.Integer,
           "bool": qe.PayloadSchemaType.Bool, "float": qe.PayloadSchemaType.Float}
_BATCH = 512


class EdgeStore:
    """Qdrant Edge shards under `root`, one per collection.

    `on_disk_vectors` memory-maps the dense vectors instead of caching them in RAM; the HNSW
    arguments are Qdrant's (`m` edges per node, `ef_construct`, and the point count under which a
    filtered search scans instead of walking the graph). `quantization="int8"` adds an int8 copy of
    the dense vectors (pinned in RAM with `quantization_always_ram`) that searches score with, then
    rescore `oversampling` times the wanted hits on the originals; `hnsw_ef` is the query-time beam.
    """

    def __init__(self, root: Path | str, *, on_disk_vectors: bool = False, hnsw_m: int = 16,
                 hnsw_ef_construct: int = 100, full_scan_threshold: int = 10_000, rrf_k: int = RRF_K,
                 search_threads: int | None = None, hnsw_ef: int | None = None, quantization: str = "none",
                 quantization_always_ram: bool = True, quantization_rescore: bool = True,
                 quantization_oversampling: float = 2.0, on_disk_payload: bool = True,
                 indexing_threshold_kb: int | None = None) -> None:
        if quantization not in ("none", "int8"):
            raise StoreError(f"unknown quantization {quantization!r}: choose none or int8")
        self.root = Path(root)
        self.on_disk_vectors = on_disk_vectors
        self.hnsw = qe.HnswIndexConfig(m=hnsw_m, ef_construct=hnsw_ef_construct,
                                       full_scan_threshold=full_scan_threshold)
        self.quantization = (qe.ScalarQuantizationConfig(
            qe.ScalarType.Int8, quantile=0.99,
            memory=qe.Memory.Pinned if quantization_always_ram else qe.Memory.Cold)
            if quantization == "int8" else None)
        self.payload_memory = qe.Memory.Cold if on_disk_payload else qe.Memory.Cached
        self.optimizers = (qe.EdgeOptimizersConfig(indexing_threshold=indexing_threshold_kb)
                           if indexing_threshold_kb is not None else None)
        # Query-time parameters of the dense arm; None = the engine's defaults.
        quant = (qe.QuantizationSearchParams(rescore=quantization_rescore, oversampling=quantization_oversampling)
                 if quantization == "int8" else None)
        self.search_params = qe.SearchParams(hnsw_ef=hnsw_ef, quantization=quant) if hnsw_ef or quant else None
        self.rrf_k = rrf_k
        self.search_threads = search_threads
        self._shard: Any = None
        self._name: str | None = None
        self._dim = 0

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def collection(self) -> str | None:
        return self._name

    def _config(self, dim: int) -> Any:
        memory = qe.Memory.Cold if self.on_disk_vectors else qe.Memory.Cached
        return qe.EdgeConfig(
            vectors={DENSE: qe.EdgeVectorParams(size=dim, distance=qe.Distance.Cosine, memory=memory,
                                                quantization_config=self.quantization)},
            sparse_vectors={SPARSE: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)},
            hnsw_config=self.hnsw, max_search_threads=self.search_threads, payload_memory=self.payload_memory,
            optimizers=self.optimizers)

    def ensure_collection(self, name: str, dim: int) -> None:
        self.close()
        path = self.root / name
        try:
            if (path / "edge_config.json").exists():
                stored = json.loads((path / "edge_config.json").read_text())
                stored_dim = stored.get("vectors", {}).get(DENSE, {}).get("size")
                if stored_dim != dim:
                    raise StoreError(f"collection {name} holds {stored_dim}-d vectors, not {dim}-d: "
                                     "a different embedder needs its own collection")
                shard = qe.EdgeShard.load(str(path), self._config(dim))
            else:
                path.mkdir(parents=True, exist_ok=True)
                shard = qe.EdgeShard.create(str(path), self._config(dim))
            # Also on load: a crash during creation, or a field added to PAYLOAD_INDEXES since, is mended here.
            existing = set(shard.info().payload_schema)
            for field, kind in PAYLOAD_INDEXES.items():
                if field not in existing:
                    shard.update(qe.UpdateOperation.create_field_index(field, _SCHEMA[kind]))
        except StoreError:
            raise
        except Exception as exc:  # qdrant_edge raises bare Exception
            raise StoreError(f"Qdrant Edge could not open {path}: {exc}") from exc
        self._shard, self._name, self._dim = shard, name, dim

    def drop_collection(self, name: str) -> None:
        """Delete a collection's shard directory (the index is derived: a rebuild re-creates it)."""
        if name == self._name:
            self.close()
        shutil.rmtree(self.root / name, ignore_errors=True)

    def close(self) -> None:
        if self._shard is not None:
            self._shard.close()  # flushes segments and the WAL
        self._shard, self._name = None, None

    def __enter__(self) -> EdgeStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def optimize(self) -> None:
        self._run(lambda s: s.optimize())

    def info(self) -> dict[str, Any]:
        """Points, segments and how many vectors sit in an HNSW index (for `oncolit index status`)."""
        i = self._run(lambda s: s.info())
        return {"points": i.points_count, "segments": i.segments_count, "indexed_vectors": i.indexed_vectors_count,
                "payload_indexes": sorted(i.payload_schema)}

    # -- writes ------------------------------------------------------------------------------

    def upsert(self, points: Sequence[Point]) -> None:
        validate_points(points, self._dim)
        for start in range(0, len(points), _BATCH):
            batch = [qe.Point(p.id, {DENSE: p.dense_list(), SPARSE: _sparse(p.sparse)}, p.payload)
                     for p in points[start:start + _BATCH]]
            self._run(lambda s, batch=batch: s.update(qe.UpdateOperation.upsert_points(batch)))

    def delete(self, point_ids: Sequence[str]) -> None:
        if point_ids:
            self._run(lambda s: s.update(qe.UpdateOperation.delete_points(list(point_ids))))

    def set_payload(self, point_ids: Sequence[str], payload: dict[str, Any]) -> None:
        if not point_ids:
            return
        known = sorted(self._existing(point_ids))  # an unknown id fails the operation halfway through
        for start in range(0, len(known), _BATCH):
            batch = known[start:start + _BATCH]
            self._run(lambda s, batch=batch: s.update(qe.UpdateOperation.set_payload(batch, dict(payload))))

    def _existing(self, point_ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for start in range(0, len(point_ids), _BATCH):
            batch = list(point_ids[start:start + _BATCH])
            found.update(str(r.id) for r in self._run(
                lambda s, batch=batch: s.retrieve(batch, with_payload=False, with_vector=False)))
        return found

    def delete_record(self, record_id: str) -> None:
        flt = qe.Filter(must=[qe.FieldCondition("record_id", match=qe.MatchValue(record_id))])
        self._run(lambda s: s.update(qe.UpdateOperation.delete_points_by_filter(flt)))

    # -- reads -------------------------------------------------------------------------------

    def count(self) -> int:
        return int(self._run(lambda s: s.count(qe.CountRequest(exact=True))))

    def point_ids_for(self, record_id: str) -> set[str]:
        flt = qe.Filter(must=[qe.FieldCondition("record_id", match=qe.MatchValue(record_id))])
        ids: set[str] = set()
        offset = None
        while True:
            records, offset = self._run(lambda s, offset=offset: s.scroll(qe.ScrollRequest(
                offset=offset, limit=256, filter=flt, with_payload=False, with_vector=False)))
            ids.update(str(r.id) for r in records)
            if offset is None:
                return ids

    def points_by_record(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        offset = None
        while True:
            records, offset = self._run(lambda s, at=offset: s.scroll(qe.ScrollRequest(
                offset=at, limit=1024, with_payload=True, with_vector=False)))
            for r in records:
                payload = r.payload or {}
                out.setdefault(str(payload.get("record_id")), {})[str(r.id)] = int(payload.get("version") or 0)
            if offset is None:
                return out

    def search(self, dense: np.ndarray | Sequence[float] | None, sparse: SparseVector | None,
               filters: SearchFilter | None = None, limit: int = 10, mode: SearchMode = "hybrid") -> list[Hit]:
        flt = _filter(filters or SearchFilter())
        arms: list[tuple[Any, Any]] = []  # (query, its search params)
        if mode in ("hybrid", "dense") and dense is not None:
            arms.append((qe.Query.Nearest(np.asarray(dense, dtype=np.float32).tolist(), using=DENSE),
                         self.search_params))
        if mode in ("hybrid", "sparse") and sparse is not None and len(sparse):
            arms.append((qe.Query.Nearest(_sparse(sparse), using=SPARSE), None))
        if not arms:
            if mode == "dense" or (dense is None and sparse is None):
                raise ValueError(f"mode {mode!r} needs a query vector")
            return []  # a query with no indexable terms matches nothing lexically
        if mode == "hybrid":
            fetch = max(limit * PREFETCH_FACTOR, limit)
            request = qe.QueryRequest(limit=limit + TIE_MARGIN, with_payload=True, filter=flt,
                                      prefetches=[qe.Prefetch(limit=fetch, query=q, filter=flt, params=p)
                                                  for q, p in arms],
                                      query=qe.Fusion.Rrf(k=self.rrf_k))
        else:
            query, params = arms[0]
            request = qe.QueryRequest(limit=limit + TIE_MARGIN, with_payload=True, filter=flt, query=query,
                                      params=params)
        points = self._run(lambda s: s.query(request))
        return ranked([Hit(str(p.id), float(p.score), dict(p.payload or {})) for p in points], limit)

    # -- helpers -----------------------------------------------------------------------------

    def _run(self, op: Any) -> Any:
        if self._shard is None:
            raise StoreError("no collection is open: call ensure_collection first")
        try:
            return op(self._shard)
        except Exception as exc:
            raise StoreError(f"Qdrant Edge ({self._name}): {exc}") from exc


def _sparse(vector: SparseVector) -> Any:
    return qe.SparseVector(list(vector.indices), list(vector.values))


def _condition(c: Condition) -> Any:
    if c.op == "any":
        values = list(c.values)
        match = qe.MatchValue(values[0]) if len(values) == 1 else qe.MatchAny(values)
        return qe.FieldCondition(c.key, match=match)
    if c.op == "range":
        return qe.FieldCondition(c.key, range=qe.RangeFloat(gte=c.gte, lte=c.lte))
    raise ValueError(c.op)


def _filter(filters: SearchFilter) -> Any:
    must, must_not = [], []
    for c in filters.conditions():
        if c.op == "none_of":
            must_not.append(_condition(Condition(c.key, "any", values=c.values)))
        else:
            must.append(_condition(c))
    return qe.Filter(must=must or None, must_not=must_not or None)
