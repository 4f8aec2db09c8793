"""`QdrantStore`: a Qdrant server or cluster through `qdrant-client`, or its local mode by path.

The server is how the index scales past one machine (shards, replicas, on-disk vectors); local mode
(`QdrantClient(path=...)`, pure Python, brute force) speaks the same client API, so the contract
tests exercise this module's every code path without a server. Hybrid search uses the Query API:
one prefetch per named vector and an RRF query with an explicit `k` (the server needs a version with
parametrised RRF, `RrfQuery`; pass `rrf_k=None` for an older one, which then uses its own default k).
Local mode ignores payload indexes, so they are created on servers only; it also drops the
quantization and on-disk-payload settings of a collection and ignores query-time `search_params`
(it is brute force), so what this store asks a server for is built by `collection_params()` and
`search_params`, which the contract tests check directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from qdrant_client import QdrantClient, models

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

_SCHEMA = {"keyword": models.PayloadSchemaType.KEYWORD, "integer": models.PayloadSchemaType.INTEGER,
           "bool": models.PayloadSchemaType.BOOL, "float": models.PayloadSchemaType.FLOAT}
_BATCH = 256


class QdrantStore:
    """Collections on a Qdrant server (`url`, `api_key`) or in a local-mode directory (`path`).

    `shard_number`, `replication_factor`, `on_disk_vectors` and `on_disk_payload` apply when a
    collection is created; `quantization="int8"` (Qdrant's scalar quantization, the int8 copy pinned in
    RAM with `quantization_always_ram`) also to an existing collection, which the server then
    re-quantizes in the background. Queries carry `hnsw_ef` and, when quantized, rescoring with
    `quantization_oversampling`. `client` may be passed in instead (e.g. one built with TLS options),
    the store then does not own it.
    """

    def __init__(self, url: str | None = None, *, path: Path | str | None = None, api_key: str | None = None,
                 shard_number: int = 1, replication_factor: int = 1, on_disk_vectors: bool = False,
                 hnsw_m: int = 16, hnsw_ef_construct: int = 100, full_scan_threshold: int = 10_000,
                 rrf_k: int | None = RRF_K, timeout: float = 60.0, client: QdrantClient | None = None,
                 hnsw_ef: int | None = None, quantization: str = "none", quantization_always_ram: bool = True,
                 quantization_rescore: bool = True, quantization_oversampling: float = 2.0,
                 on_disk_payload: bool = True) -> None:
        if sum(x is not None for x in (url, path, client)) != 1:
            raise ValueError("give exactly one of url, path or client")
        if quantization not in ("none", "int8"):
            raise StoreError(f"unknown quantization {quantization!r}: choose none or int8")
        self.local = path is not None
        if client is None:
            client = (QdrantClient(path=str(path)) if path is not None
                      else QdrantClient(url=url, api_key=api_key, timeout=int(timeout)))
            self._owns_client = True
        else:
            self._owns_client = False
        self.client = client
        self.shard_number = shard_number
        self.replication_factor = replication_factor
        self.on_disk_vectors = on_disk_vectors
        self.hnsw = models.HnswConfigDiff(m=hnsw_m, ef_construct=hnsw_ef_construct,
                                          full_scan_threshold=full_scan_threshold)
        self.rrf_k = rrf_k
        self.on_disk_payload = on_disk_payload
        self.quantization = (models.ScalarQuantization(scalar=models.ScalarQuantizationConfig(
            type=models.ScalarType.INT8, quantile=0.99, always_ram=quantization_always_ram))
            if quantization == "int8" else None)
        quant = (models.QuantizationSearchParams(rescore=quantization_rescore, oversampling=quantization_oversampling)
                 if quantization == "int8" else None)
        # Query-time parameters of the dense arm; None = the server's defaults.
        self.search_params = models.SearchParams(hnsw_ef=hnsw_ef, quantization=quant) if hnsw_ef or quant else None
        self._name: str | None = None
        self._dim = 0

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def collection(self) -> str | None:
        return self._name

    def ensure_collection(self, name: str, dim: int) -> None:
        try:
            existing: set[str] = set()
            if self.client.collection_exists(name):
                info = self.client.get_collection(name)
                existing = set(info.payload_schema or {})
                vectors = info.config.params.vectors
                stored = vectors.get(DENSE) if isinstance(vectors, dict) else None
                if stored is None or stored.size != dim:
                    found = stored.size if stored is not None else "no named dense"
                    raise StoreError(f"collection {name} holds {found} vectors, not {dim}-d: "
                                     "a different embedder needs its own collection")
                if not self.local and (info.config.quantization_config is None) != (self.quantization is None):
                    self.client.update_collection(
                        name, quantization_config=self.quantization or models.Disabled.DISABLED)
            else:
                self.client.create_collection(name, **self.collection_params(dim))
            if not self.local:  # local mode ignores payload indexes (and warns)
                for field, kind in PAYLOAD_INDEXES.items():
                    if field not in existing:
                        self.client.create_payload_index(name, field, field_schema=_SCHEMA[kind], wait=True)
        except StoreError:
            raise
        except Exception as exc:
            raise StoreError(f"Qdrant could not open collection {name}: {exc}") from exc
        self._name, self._dim = name, dim

    def collection_params(self, dim: int) -> dict[str, Any]:
        """The arguments of `create_collection` for a new collection of `dim`-d vectors."""
        return dict(
            vectors_config={DENSE: models.VectorParams(size=dim, distance=models.Distance.COSINE,
                                                       on_disk=self.on_disk_vectors)},
            sparse_vectors_config={SPARSE: models.SparseVectorParams(modifier=models.Modifier.IDF)},
            shard_number=self.shard_number, replication_factor=self.replication_factor, hnsw_config=self.hnsw,
            on_disk_payload=self.on_disk_payload, quantization_config=self.quantization)

    def drop_collection(self, name: str) -> None:
        self._run(lambda c: c.delete_collection(name))
        if name == self._name:
            self._name = None

    def close(self) -> None:
        if self._owns_client:
            self.client.close()
        self._name = None

    def __enter__(self) -> QdrantStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def optimize(self) -> None:
        """The server indexes in the background; local mode has no index to build."""

    # -- writes ------------------------------------------------------------------------------

    def upsert(self, points: Sequence[Point]) -> None:
        validate_points(points, self._dim)
        for start in range(0, len(points), _BATCH):
            batch = [models.PointStruct(id=p.id, vector={DENSE: p.dense_list(), SPARSE: _sparse(p.sparse)},
                                        payload=p.payload) for p in points[start:start + _BATCH]]
            self._run(lambda c, batch=batch: c.upsert(self._name, points=batch, wait=True))

    def delete(self, point_ids: Sequence[str]) -> None:
        if point_ids:
            selector = models.PointIdsList(points=list(point_ids))
            self._run(lambda c: c.delete(self._name, points_selector=selector, wait=True))

    def set_payload(self, point_ids: Sequence[str], payload: dict[str, Any]) -> None:
        ids = list(point_ids)
        for start in range(0, len(ids), _BATCH):
            # An unknown id fails the call (the server: not found; local mode: KeyError): keep the known ones.
            known = [str(r.id) for r in self._run(lambda c, at=start: c.retrieve(
                self._name, ids[at:at + _BATCH], with_payload=False, with_vectors=False))]
            if known:
                self._run(lambda c, known=known: c.set_payload(self._name, payload=dict(payload), points=known,
                                                               wait=True))

    def delete_record(self, record_id: str) -> None:
        selector = models.FilterSelector(filter=_record_filter(record_id))
        self._run(lambda c: c.delete(self._name, points_selector=selector, wait=True))

    # -- reads -------------------------------------------------------------------------------

    def count(self) -> int:
        return int(self._run(lambda c: c.count(self._name, exact=True)).count)

    def point_ids_for(self, record_id: str) -> set[str]:
        ids: set[str] = set()
        offset = None
        while True:
            records, offset = self._run(lambda c, offset=offset: c.scroll(
                self._name, scroll_filter=_record_filter(record_id), limit=256, offset=offset,
                with_payload=False, with_vectors=False))
            ids.update(str(r.id) for r in records)
            if offset is None:
                return ids

    def points_by_record(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        offset = None
        while True:
            records, offset = self._run(lambda c, at=offset: c.scroll(
                self._name, limit=1024, offset=at, with_payload=["record_id", "version"], with_vectors=False))
            for r in records:
                payload = r.payload or {}
                out.setdefault(str(payload.get("record_id")), {})[str(r.id)] = int(payload.get("version") or 0)
            if offset is None:
                return out

    def search(self, dense: np.ndarray | Sequence[float] | None, sparse: SparseVector | None,
               filters: SearchFilter | None = None, limit: int = 10, mode: SearchMode = "hybrid") -> list[Hit]:
        flt = _filter(filters or SearchFilter())
        arms: list[tuple[Any, str, models.SearchParams | None]] = []  # (query, vector name, search params)
        params = self.search_params  # local mode is exact: it ignores them (warning once), a server uses them
        if mode in ("hybrid", "dense") and dense is not None:
            arms.append((np.asarray(dense, dtype=np.float32).tolist(), DENSE, params))
        if mode in ("hybrid", "sparse") and sparse is not None and len(sparse):
            arms.append((_sparse(sparse), SPARSE, None))
        if not arms:
            if mode == "dense" or (dense is None and sparse is None):
                raise ValueError(f"mode {mode!r} needs a query vector")
            return []  # a query with no indexable terms matches nothing lexically
        if mode == "hybrid":
            fetch = max(limit * PREFETCH_FACTOR, limit)
            fusion = (models.RrfQuery(rrf=models.Rrf(k=self.rrf_k)) if self.rrf_k is not None
                      else models.FusionQuery(fusion=models.Fusion.RRF))
            response = self._run(lambda c: c.query_points(
                self._name, prefetch=[models.Prefetch(query=q, using=using, limit=fetch, filter=flt, params=p)
                                      for q, using, p in arms],
                query=fusion, query_filter=flt, limit=limit + TIE_MARGIN, with_payload=True))
        else:
            query, using, p = arms[0]
            response = self._run(lambda c: c.query_points(
                self._name, query=query, using=using, query_filter=flt, limit=limit + TIE_MARGIN,
                with_payload=True, search_params=p))
        return ranked([Hit(str(p.id), float(p.score), dict(p.payload or {})) for p in response.points], limit)

    # -- helpers -----------------------------------------------------------------------------

    def _run(self, op: Any) -> Any:
        if self._name is None:
            raise StoreError("no collection is open: call ensure_collection first")
        try:
            return op(self.client)
        except Exception as exc:  # http, grpc and local-mode errors alike
            raise StoreError(f"Qdrant ({self._name}): {exc}") from exc


def _sparse(vector: SparseVector) -> models.SparseVector:
    return models.SparseVector(indices=list(vector.indices), values=list(vector.values))


def _record_filter(record_id: str) -> models.Filter:
    return models.Filter(must=[models.FieldCondition(key="record_id", match=models.MatchValue(value=record_id))])


def _condition(c: Condition) -> models.FieldCondition:
    if c.op == "any":
        values = list(c.values)
        match: Any = models.MatchValue(value=values[0]) if len(values) == 1 else models.MatchAny(any=values)
        return models.FieldCondition(key=c.key, match=match)
    if c.op == "range":
        return models.FieldCondition(key=c.key, range=models.Range(gte=c.gte, lte=c.lte))
    raise ValueError(c.op)


def _filter(filters: SearchFilter) -> models.Filter:
    must: list[Any] = []
    must_not: list[Any] = []
    for c in filters.conditions():
        if c.op == "none_of":
            must_not.append(_condition(Condition(c.key, "any", values=c.values)))
        else:
            must.append(_condition(c))
    return models.Filter(must=must or None, must_not=must_not or None)
