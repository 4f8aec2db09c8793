"""One contract for every `Store`: Qdrant Edge and qdrant-client (local mode) must behave alike.

Vectors are small and hand-made so each expectation can be worked out by hand; a few real-ish
chunks (from `Chunker`, with a hashing bag-of-words embedder standing in for the model) check the
whole path from records to filtered hybrid hits.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from index.chunking import Chunk, Chunker, ChunkerConfig, day_number, point_id, record_flags
from index.sparse import BM25Encoder, tokenize
from index.store import PREFETCH_FACTOR, Hit, Point, SearchFilter, Store, StoreError, collection_name, rrf_fuse
from index.store_edge import EdgeStore
from index.store_qdrant import QdrantStore
from ingest.records import AbstractSection, Article, MeshHeading, PartialDate
from ingest.records.trial import Design, Trial

DIM = 64
BM25 = BM25Encoder()
StoreFactory = Callable[[], Store]


# The lean-index settings (int8 quantization with rescoring, a query-time beam) must not change
# what any contract test sees: each store runs the contract both plain and quantized.
INT8 = dict(quantization="int8", quantization_oversampling=2.0, hnsw_ef=64)
KINDS = ["edge", "edge-int8", "qdrant-local", "qdrant-local-int8"]
# Local mode is brute force and says so (once) when a query carries search params a server would use.
pytestmark = pytest.mark.filterwarnings("ignore:Local mode performs exact:UserWarning")


def _make(kind: str, root: Path) -> Store:
    extra: dict = INT8 if kind.endswith("-int8") else {}  # type: ignore[type-arg]
    if kind.startswith("edge"):
        return EdgeStore(root / "edge", **extra)
    return QdrantStore(path=root / "qdrant", **extra)


@pytest.fixture(scope="session")
def edge_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty "contract" shard with its payload indexes, made once: each index costs an fsync
    (~0.2 s on this disk), so tests copy this directory instead of creating the collection anew."""
    root = tmp_path_factory.mktemp("edge-template")
    with EdgeStore(root) as store:
        store.ensure_collection("contract", DIM)
    return root / "contract"


@pytest.fixture(params=KINDS)
def open_store(request: pytest.FixtureRequest, tmp_path: Path, edge_template: Path) -> Iterator[StoreFactory]:
    """A factory for stores on one directory: calling it again is "reopen after close"."""
    opened: list[Store] = []
    if request.param.startswith("edge"):
        shutil.copytree(edge_template, tmp_path / "edge" / "contract")

    def factory() -> Store:
        store = _make(request.param, tmp_path)
        opened.append(store)
        return store

    yield factory
    for store in opened:
        store.close()


@pytest.fixture
def store(open_store: StoreFactory) -> Store:
    s = open_store()
    s.ensure_collection("contract", DIM)
    return s


def vec(*hot: float) -> np.ndarray:
    """A DIM-d vector from its leading components (the rest zero)."""
    v = np.zeros(DIM, dtype=np.float32)
    v[:len(hot)] = hot
    return v


def point(record: str, n: int, dense: np.ndarray, text: str = "", version: int = 1, retracted: bool = False,
          excluded: bool = False, **payload: object) -> Point:
    base: dict[str, object] = {"record_id": record, "version": version, "chunk_no": n, "record_type": "article",
                               "retracted": retracted, "excluded": excluded, "text": text,
                               "flags": record_flags(retracted=retracted, excluded=excluded)}
    return Point(point_id(record, version, n), dense, BM25.encode_document(text), {**base, **payload})


def ids(hits: list[Hit]) -> list[str]:
    return [h.payload["record_id"] for h in hits]


# -- lifecycle --------------------------------------------------------------------------------


def test_ensure_collection_is_idempotent_and_checks_dimension(open_store: StoreFactory) -> None:
    store = open_store()
    with pytest.raises(StoreError):
        store.count()  # nothing open yet
    store.ensure_collection("contract", DIM)
    assert store.collection == "contract"
    store.upsert([point("pubmed:1", 0, vec(1))])
    store.ensure_collection("contract", DIM)
    assert store.count() == 1
    with pytest.raises(StoreError, match="-d"):
        store.ensure_collection("contract", DIM * 2)


def test_upsert_rejects_wrong_dimension_before_writing(store: Store) -> None:
    good = point("pubmed:1", 0, vec(1))
    bad = Point(point_id("pubmed:2", 1, 0), np.ones(DIM + 1, dtype=np.float32), BM25.encode_document("x"), {})
    with pytest.raises(StoreError):
        store.upsert([good, bad])
    assert store.count() == 0


def test_persistence_across_close_and_reopen(open_store: StoreFactory) -> None:
    first = open_store()
    first.ensure_collection("contract", DIM)
    first.upsert([point("pubmed:1", 0, vec(1, 0), "egfr mutation", title="kept"),
                  point("pubmed:2", 0, vec(0, 1), "kras mutation")])
    first.close()
    again = open_store()
    again.ensure_collection("contract", DIM)
    assert again.count() == 2
    hits = again.search(vec(1, 0.1), BM25.encode_query("egfr"), limit=1)
    assert ids(hits) == ["pubmed:1"] and hits[0].payload["title"] == "kept"


# -- writes -----------------------------------------------------------------------------------


def test_upsert_count_and_dense_search_returns_payload(store: Store) -> None:
    store.upsert([point("pubmed:1", 0, vec(1, 0, 0)), point("pubmed:2", 0, vec(0, 1, 0)),
                  point("pubmed:3", 0, vec(0, 0, 1), published="2020-01-02")])
    assert store.count() == 3
    hits = store.search(vec(0.1, 0.2, 0.9), None, mode="dense", limit=2)
    assert ids(hits) == ["pubmed:3", "pubmed:2"]
    assert hits[0].id == point_id("pubmed:3", 1, 0)
    assert hits[0].payload["published"] == "2020-01-02"
    assert hits[0].score == pytest.approx(0.9 / np.linalg.norm([0.1, 0.2, 0.9]), abs=1e-5)


def test_overwrite_same_id_replaces_vectors_and_payload(store: Store) -> None:
    store.upsert([point("pubmed:1", 0, vec(1, 0), "old words", title="old")])
    store.upsert([point("pubmed:1", 0, vec(0, 1), "new words", title="new")])
    assert store.count() == 1
    hit = store.search(vec(0, 1), None, mode="dense", limit=1)[0]
    assert hit.payload["title"] == "new" and hit.score == pytest.approx(1.0, abs=1e-5)
    assert store.search(None, BM25.encode_query("old"), mode="sparse") == []


def test_delete_by_ids_and_by_record(store: Store) -> None:
    store.upsert([point("pubmed:1", n, vec(1, n)) for n in range(3)] + [point("pubmed:2", 0, vec(0, 1))])
    assert store.point_ids_for("pubmed:1") == {point_id("pubmed:1", 1, n) for n in range(3)}
    store.delete([point_id("pubmed:1", 1, 0)])
    assert store.count() == 3
    store.delete([])  # a no-op, not an error
    store.delete_record("pubmed:1")
    assert store.count() == 1
    assert store.point_ids_for("pubmed:1") == set()
    assert store.point_ids_for("pubmed:2") == {point_id("pubmed:2", 1, 0)}


def test_points_by_record_lists_every_point_with_its_version(store: Store) -> None:
    """`index verify` compares this full listing with the catalog, so it must miss nothing."""
    assert store.points_by_record() == {}
    store.upsert([point("pubmed:1", n, vec(1, n), version=2) for n in range(3)]
                 + [point(f"pubmed:{i}", 0, vec(0, 1)) for i in range(2, 1300)])  # more than one scroll page
    listing = store.points_by_record()
    assert listing["pubmed:1"] == {point_id("pubmed:1", 2, n): 2 for n in range(3)}
    assert len(listing) == 1299 and sum(map(len, listing.values())) == store.count() == 1301


def test_set_payload_changes_those_keys_only_and_keeps_the_vectors(store: Store) -> None:
    """What a grading refresh does: new `design` / `evidence_level` on existing points, no re-embedding."""
    store.upsert([point("pubmed:1", n, vec(1, n), f"egfr words {n}", design=None, evidence_level=None, title="t")
                  for n in range(2)] + [point("pubmed:2", 0, vec(0, 1), "kras words", evidence_level=5)])
    before = {h.id: h.score for h in store.search(vec(1, 0.5), None, mode="dense", limit=3)}
    graded = sorted(store.point_ids_for("pubmed:1"))
    store.set_payload([*graded, point_id("pubmed:9", 1, 0)], {"design": "rct", "evidence_level": 1})  # one unknown
    store.set_payload([], {"evidence_level": 3})  # a no-op, not an error
    assert store.count() == 3 and store.point_ids_for("pubmed:9") == set()
    hits = store.search(vec(1, 0.5), None, mode="dense", limit=3)
    assert {h.id: h.score for h in hits} == pytest.approx(before)
    mine = [h.payload for h in hits if h.payload["record_id"] == "pubmed:1"]
    assert len(mine) == 2 and all(p["design"] == "rct" and p["evidence_level"] == 1 and p["title"] == "t"
                                  and p["text"].startswith("egfr") for p in mine)
    top = store.search(vec(1, 0.5), BM25.encode_query("egfr words"), SearchFilter(max_evidence_level=2), limit=3)
    assert set(ids(top)) == {"pubmed:1"}
    assert ids(store.search(vec(0, 1), None, SearchFilter(evidence_levels=(5,)), mode="dense")) == ["pubmed:2"]


def test_resync_of_new_version_replaces_stale_points(store: Store) -> None:
    """What the catalog sync does: upsert the new version's points, delete ids no longer produced."""
    store.upsert([point("pubmed:1", n, vec(1, n), version=1) for n in range(3)])
    fresh = [point("pubmed:1", n, vec(1, n), version=2) for n in range(2)]
    store.upsert(fresh)
    stale = store.point_ids_for("pubmed:1") - {p.id for p in fresh}
    store.delete(sorted(stale))
    assert store.point_ids_for("pubmed:1") == {p.id for p in fresh}
    store.upsert(fresh)  # syncing the same version again changes nothing
    assert store.count() == 2


# -- filters ----------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=KINDS)
def filtered(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
             edge_template: Path) -> Iterator[Store]:
    """Six records, all near the query, differing only in payload; built once per backend, read only."""
    root = tmp_path_factory.mktemp("filtered")
    if request.param.startswith("edge"):
        shutil.copytree(edge_template, root / "edge" / "contract")
    store = _make(request.param, root)
    store.ensure_collection("contract", DIM)

    def day(y: int, m: int = 1, d: int = 1) -> dict[str, object]:
        return {"published": dt.date(y, m, d).isoformat(), "published_day": day_number(dt.date(y, m, d))}

    store.upsert([
        point("pubmed:1", 0, vec(1, 0.1), **day(2019, 6, 1), language=["eng"], mesh=["lung neoplasms", "humans"],
              cancer_sites=["lung neoplasms"], design="rct", evidence_level=2),
        point("pubmed:2", 0, vec(1, 0.2), **day(2021, 3, 15), language=["fre"], mesh=["breast neoplasms"],
              cancer_sites=["breast neoplasms"], design="cohort", evidence_level=3),
        point("pubmed:3", 0, vec(1, 0.3), **day(2023, 12, 31), language=["eng"], mesh=["humans"],
              cancer_sites=[], design=None, evidence_level=None, retracted=True),
        point("pubmed:4", 0, vec(1, 0.4), **day(2022), language=["eng"], mesh=["lung neoplasms"],
              cancer_sites=["lung neoplasms"], design="meta_analysis", evidence_level=1, excluded=True),
        point("ctgov:NCT1", 0, vec(1, 0.5), **day(2020), record_type="trial", trial_status="RECRUITING",
              phases=["PHASE2", "PHASE3"], cancer_sites=["lung neoplasms"], language=["eng"]),
        point("ctgov:NCT2", 0, vec(1, 0.6), **day(2018), record_type="trial", trial_status="COMPLETED",
              phases=["PHASE1"], cancer_sites=["breast neoplasms"], language=["eng"]),
    ])
    yield store
    store.close()


def found(store: Store, **kw: object) -> set[str]:
    return set(ids(store.search(vec(1, 0.3), None, SearchFilter(**kw), limit=20, mode="dense")))  # type: ignore[arg-type]


def test_default_filter_hides_retracted_and_excluded(filtered: Store) -> None:
    assert found(filtered) == {"pubmed:1", "pubmed:2", "ctgov:NCT1", "ctgov:NCT2"}
    assert "pubmed:3" in found(filtered, include_retracted=True)
    assert "pubmed:4" in found(filtered, include_excluded=True)


@pytest.mark.parametrize(("kw", "expected"), [
    ({"record_types": ("trial",)}, {"ctgov:NCT1", "ctgov:NCT2"}),
    ({"record_types": "article"}, {"pubmed:1", "pubmed:2"}),
    ({"published_from": dt.date(2019, 6, 1), "published_to": dt.date(2021, 3, 15)},
     {"pubmed:1", "pubmed:2", "ctgov:NCT1"}),  # inclusive at both ends
    ({"published_from": dt.date(2020, 1, 2)}, {"pubmed:2"}),
    ({"languages": ("FRE",)}, {"pubmed:2"}),
    ({"mesh_any": ("Lung Neoplasms", "other")}, {"pubmed:1"}),
    ({"cancer_sites_any": ("breast neoplasms",)}, {"pubmed:2", "ctgov:NCT2"}),
    ({"designs": ("rct", "cohort")}, {"pubmed:1", "pubmed:2"}),
    ({"evidence_levels": (3,)}, {"pubmed:2"}),
    ({"max_evidence_level": 2}, {"pubmed:1"}),
    ({"max_evidence_level": 2, "include_excluded": True}, {"pubmed:1", "pubmed:4"}),
    ({"trial_status_any": ("RECRUITING", "ACTIVE_NOT_RECRUITING")}, {"ctgov:NCT1"}),
    ({"phases_any": ("PHASE3",)}, {"ctgov:NCT1"}),
    ({"record_ids": ("pubmed:2", "ctgov:NCT2")}, {"pubmed:2", "ctgov:NCT2"}),
    ({"record_types": ("trial",), "cancer_sites_any": ("lung neoplasms",), "published_to": dt.date(2020, 12, 31)},
     {"ctgov:NCT1"}),
    ({"record_types": ("article",), "languages": ("eng",), "include_retracted": True,
      "published_from": dt.date(2023, 1, 1)}, {"pubmed:3"}),
])
def test_filters(filtered: Store, kw: dict[str, object], expected: set[str]) -> None:
    assert found(filtered, **kw) == expected


def test_filters_apply_to_every_mode(filtered: Store) -> None:
    only_trials = SearchFilter(record_types=("trial",))
    for mode in ("dense", "sparse", "hybrid"):
        hits = filtered.search(vec(1, 0.3), BM25.encode_query("anything"), only_trials, mode=mode)  # type: ignore[arg-type]
        assert set(ids(hits)) <= {"ctgov:NCT1", "ctgov:NCT2"}


# -- sparse and hybrid ------------------------------------------------------------------------


def test_sparse_scores_use_engine_idf(store: Store) -> None:
    """Equal term weights, equal lengths: only IDF can rank the rare term's document first."""
    common = [point(f"pubmed:{n}", 0, vec(1), f"cancer filler{n}") for n in range(6)]
    rare = point("pubmed:99", 0, vec(1), "osimertinib filler99")
    store.upsert([*common, rare])
    hits = store.search(None, BM25.encode_query("osimertinib cancer"), mode="sparse", limit=3)
    assert ids(hits)[0] == "pubmed:99"
    assert hits[0].score > 1.5 * hits[1].score


def test_hybrid_ranks_a_document_found_by_both_first(store: Store) -> None:
    """A: 2nd by dense and by sparse. B: 1st by dense only. C: 1st by sparse only, last by dense."""
    store.upsert([
        point("pubmed:A", 0, vec(0.9, 0.3), "pembrolizumab melanoma"),
        point("pubmed:B", 0, vec(1.0, 0.0), "unrelated words here"),
        point("pubmed:C", 0, vec(-1.0, 0.0), "pembrolizumab melanoma pembrolizumab"),
        *[point(f"pubmed:F{n}", 0, vec(0.5, 1.0 + n), f"filler text {n}") for n in range(8)],
    ])
    query_dense, query_sparse = vec(1.0, 0.05), BM25.encode_query("pembrolizumab melanoma")
    assert ids(store.search(query_dense, None, mode="dense", limit=2)) == ["pubmed:B", "pubmed:A"]
    assert ids(store.search(None, query_sparse, mode="sparse", limit=2)) == ["pubmed:C", "pubmed:A"]
    hybrid = store.search(query_dense, query_sparse, limit=3)
    assert ids(hybrid)[0] == "pubmed:A"
    # The engine's fusion is `rrf_fuse` over the two arms, each fetched PREFETCH_FACTOR x limit deep.
    fetch = 3 * PREFETCH_FACTOR
    ours = rrf_fuse([store.search(query_dense, None, mode="dense", limit=fetch),
                     store.search(None, query_sparse, mode="sparse", limit=fetch)], limit=3)
    assert {h.id: round(h.score, 6) for h in hybrid} == {h.id: round(h.score, 6) for h in ours}


def test_hybrid_without_known_terms_falls_back_to_dense_order(store: Store) -> None:
    store.upsert([point("pubmed:1", 0, vec(1, 0), "egfr"), point("pubmed:2", 0, vec(0, 1), "kras")])
    empty = BM25.encode_query("the of and")
    assert len(empty) == 0
    assert ids(store.search(vec(0, 1), empty, limit=2)) == ["pubmed:2", "pubmed:1"]
    assert store.search(vec(0, 1), empty, mode="sparse") == []
    with pytest.raises(ValueError):
        store.search(None, None)


# -- real-ish chunks --------------------------------------------------------------------------


def _hashing_dense(text: str) -> np.ndarray:
    """A stand-in embedder for contract tests: bag of hashed tokens, normalised (overlap ~ similarity)."""
    v = np.zeros(DIM, dtype=np.float32)
    for token in tokenize(text):
        v[int(hashlib.md5(token.encode()).hexdigest(), 16) % v.size] += 1.0
    return v / max(float(np.linalg.norm(v)), 1e-9)


def _articles() -> list[Article]:
    return [
        Article(pmid="101", title="Osimertinib in EGFR T790M-positive non-small-cell lung cancer",
                abstract=[AbstractSection(label="RESULTS", text="Osimertinib improved progression-free survival "
                                                                "in patients with T790M. Median PFS was 10.1 months.")],
                mesh_headings=[MeshHeading(descriptor="Lung Neoplasms")], languages=["eng"],
                pub_date=PartialDate(year=2017, month=2)),
        Article(pmid="102", title="Trastuzumab deruxtecan in HER2-low breast cancer",
                abstract=[AbstractSection(text="HER2-low disease responded to trastuzumab deruxtecan.")],
                mesh_headings=[MeshHeading(descriptor="Breast Neoplasms")], languages=["eng"],
                pub_date=PartialDate(year=2022, month=7)),
        Article(pmid="103", title="Exercise and fatigue in cancer survivors",
                abstract=[AbstractSection(text="Aerobic exercise reduced fatigue in survivors.")],
                languages=["eng"], pub_date=PartialDate(year=2015)),
    ]


def _trial() -> Trial:
    return Trial(nct_id="NCT01234567", brief_title="Osimertinib versus chemotherapy for EGFR lung cancer",
                 overall_status="RECRUITING", design=Design(phases=["PHASE3"]), conditions=["Lung Cancer"],
                 brief_summary="This study compares osimertinib with platinum chemotherapy.",
                 first_posted={"year": 2019, "month": 5, "day": 2})


def _points(chunks: list[Chunk]) -> list[Point]:
    return [Point(c.point_id, _hashing_dense(c.text), BM25.encode_document(c.text), c.point_payload())
            for c in chunks]


def test_chunks_end_to_end(store: Store) -> None:
    chunker = Chunker(ChunkerConfig())
    chunks = [c for a in _articles() for c in chunker.chunk(a, version=1)] + chunker.chunk(_trial(), version=1)
    store.upsert(_points(chunks))
    assert store.count() == len(chunks)
    query = "osimertinib T790M"
    hits = store.search(_hashing_dense(query), BM25.encode_query(query), limit=3)
    assert hits[0].payload["record_id"] == "pubmed:101"
    assert "Median PFS" in hits[0].payload["passage"]
    trials = store.search(_hashing_dense(query), BM25.encode_query(query),
                          SearchFilter(record_types=("trial",), phases_any=("PHASE3",)), limit=5)
    assert {h.payload["record_id"] for h in trials} == {"ctgov:NCT01234567"}
    recent = store.search(_hashing_dense(query), BM25.encode_query(query),
                          SearchFilter(published_from=dt.date(2020, 1, 1), record_types=("article",)))
    assert ids(recent) == ["pubmed:102"]
    store.upsert(_points(chunks))  # re-sync: harmless
    assert store.count() == len(chunks)


def test_backends_agree(tmp_path: Path, edge_template: Path) -> None:
    """Same points, same queries: Edge and qdrant-client return the same hits in the same order."""
    chunker = Chunker(ChunkerConfig())
    chunks = [c for a in _articles() for c in chunker.chunk(a, version=1)] + chunker.chunk(_trial(), version=1)
    results = []
    shutil.copytree(edge_template, tmp_path / "edge" / "contract")
    for kind in ("edge", "qdrant-local"):
        with _make(kind, tmp_path) as store:  # type: ignore[attr-defined]
            store.ensure_collection("contract", DIM)
            store.upsert(_points(chunks))
            per_query = []
            for query in ("osimertinib lung cancer", "HER2 breast", "fatigue exercise survivors"):
                for mode in ("dense", "sparse", "hybrid"):
                    hits = store.search(_hashing_dense(query), BM25.encode_query(query), limit=4, mode=mode)
                    per_query.append([(h.id, round(h.score, 5)) for h in hits])
            results.append(per_query)
    assert results[0] == results[1]


# -- backend specifics ------------------------------------------------------------------------


def test_edge_creates_payload_indexes_and_optimizes(tmp_path: Path, edge_template: Path) -> None:
    from index.store import PAYLOAD_INDEXES

    shutil.copytree(edge_template, tmp_path / "edge" / "contract")
    with EdgeStore(tmp_path / "edge") as store:
        store.ensure_collection("contract", DIM)
        store.upsert([point(f"pubmed:{n}", 0, vec(np.cos(n / 30), np.sin(n / 30))) for n in range(50)])
        store.optimize()
        info = store.info()
        assert info["points"] == 50
        assert info["payload_indexes"] == sorted(PAYLOAD_INDEXES)
        assert ids(store.search(vec(np.cos(49 / 30), np.sin(49 / 30)), None, mode="dense", limit=1)) == ["pubmed:49"]


def test_collection_name_derives_from_model_and_chunker() -> None:
    a = collection_name("all-MiniLM-L6-v2", 384, "abcd1234", BM25.fingerprint)
    assert a.startswith("oncolit_all-minilm-l6-v2_384_") and len(a.rsplit("_", 1)[1]) == 8
    assert a == collection_name("all-MiniLM-L6-v2", 384, "abcd1234", BM25.fingerprint)
    assert a != collection_name("all-MiniLM-L6-v2", 384, "abcd1235", BM25.fingerprint)
    assert a != collection_name("all-MiniLM-L6-v2", 384, "abcd1234", BM25Encoder(k1=1.5).fingerprint)


def test_rrf_fuse_formula() -> None:
    a, b, c = (Hit(x, 0.0, {}) for x in "abc")
    fused = rrf_fuse([[a, b], [b, c]], limit=3, k=60)
    assert [h.id for h in fused] == ["b", "a", "c"]
    assert fused[0].score == pytest.approx(1 / 61 + 1 / 60)
    assert rrf_fuse([[a], [b]], limit=1, weights=[1.0, 3.0])[0].id == "b"


# -- the lean index: int8 quantization, query-time ef, payload on disk --------------------------


def test_edge_int8_with_rescoring_keeps_recall_at_10(tmp_path: Path) -> None:
    """5,000 clustered 384-d points (the embedder's width), HNSW and the int8 copy built by `optimize()`:
    the quantized, rescored search finds ≥ 98% of the exact top 10 (numpy cosine over all points). The
    same shard reopened without rescoring scores lower (0.96 when written): the query-time parameters
    reach the engine, and the int8 copy is what the graph search used."""
    rng = np.random.default_rng(7)
    centres = rng.standard_normal((40, 384))
    data = (centres[rng.integers(0, 40, 5000)] + 0.7 * rng.standard_normal((5000, 384))).astype(np.float32)
    queries = (centres[rng.integers(0, 40, 40)] + 0.7 * rng.standard_normal((40, 384))).astype(np.float32)
    unit = data / np.linalg.norm(data, axis=1, keepdims=True)
    exact = [set(np.argsort(-(unit @ (q / np.linalg.norm(q))))[:10].tolist()) for q in queries]

    def recall(store: EdgeStore) -> float:
        found = [{h.payload["n"] for h in store.search(q, None, mode="dense", limit=10)} for q in queries]
        return float(np.mean([len(e & f) / 10 for e, f in zip(exact, found, strict=True)]))

    # indexing_threshold_kb below the 7.5 MB of vectors, so the optimizer indexes and quantizes this segment.
    with EdgeStore(tmp_path / "edge", indexing_threshold_kb=1000, **INT8) as store:  # type: ignore[arg-type]
        store.ensure_collection("lean", 384)
        store.upsert([Point(point_id(f"pubmed:{n}", 1, 0), data[n], BM25.encode_document(""), {"n": n})
                      for n in range(len(data))])
        store.optimize()
        assert store.info()["indexed_vectors"] == 5000  # the graph is walked, not a full scan
        assert list((tmp_path / "edge" / "lean").rglob("quantized.data")), "no int8 copy was built"
        rescored = recall(store)
    with EdgeStore(tmp_path / "edge", quantization_rescore=False, **INT8) as raw:  # type: ignore[arg-type]
        raw.ensure_collection("lean", 384)
        unrescored = recall(raw)
    assert rescored >= 0.98
    assert unrescored < rescored


def test_edge_quantizes_an_existing_index_at_its_next_optimize(tmp_path: Path) -> None:
    """Turning `index.quantization` on for an index built without it: the reopened shard's next
    `optimize()` rebuilds its indexed segment with the int8 copy (no rebuild from the catalog)."""
    data = np.random.default_rng(3).standard_normal((2000, 384)).astype(np.float32)
    with EdgeStore(tmp_path / "edge", indexing_threshold_kb=1000) as plain:
        plain.ensure_collection("lean", 384)
        plain.upsert([Point(point_id(f"pubmed:{n}", 1, 0), data[n], BM25.encode_document(""), {"n": n})
                      for n in range(len(data))])
        plain.optimize()
        assert plain.info()["indexed_vectors"] == 2000
    assert not list((tmp_path / "edge").rglob("quantized.data"))
    with EdgeStore(tmp_path / "edge", indexing_threshold_kb=1000, **INT8) as lean:  # type: ignore[arg-type]
        lean.ensure_collection("lean", 384)
        lean.optimize()
        assert lean.count() == 2000 and lean.info()["indexed_vectors"] == 2000
        assert list((tmp_path / "edge").rglob("quantized.data"))
        assert lean.search(data[17], None, mode="dense", limit=1)[0].payload["n"] == 17


def test_qdrant_store_asks_the_server_for_int8_and_rescoring(tmp_path: Path) -> None:
    """Local mode drops a collection's quantization and ignores search params, so what a server would
    receive is checked here: the create-collection arguments and the query's search params."""
    with QdrantStore(path=tmp_path / "q", on_disk_vectors=True, quantization_always_ram=True,
                     **INT8) as store:  # type: ignore[arg-type]
        params = store.collection_params(384)
        quant = params["quantization_config"]
        assert quant.scalar.type == "int8" and quant.scalar.always_ram is True
        assert params["on_disk_payload"] is True and params["vectors_config"]["dense"].on_disk is True
        sp = store.search_params
        assert sp is not None and sp.hnsw_ef == 64
        assert sp.quantization is not None and sp.quantization.rescore is True and sp.quantization.oversampling == 2.0
    with QdrantStore(path=tmp_path / "plain", on_disk_payload=False) as plain:
        assert plain.collection_params(384)["quantization_config"] is None and plain.search_params is None
        assert plain.collection_params(384)["on_disk_payload"] is False
    with pytest.raises(StoreError, match="int8"):
        QdrantStore(path=tmp_path / "bad", quantization="int4")
    with pytest.raises(StoreError, match="int8"):
        EdgeStore(tmp_path / "bad", quantization="pq")


def test_make_store_carries_the_index_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    from oncolit.settings import Settings
    from oncolit.wiring import make_store

    monkeypatch.setenv("ONCOLIT_INDEX__QUANTIZATION", "int8")
    monkeypatch.setenv("ONCOLIT_INDEX__HNSW_EF", "96")
    monkeypatch.setenv("ONCOLIT_INDEX__QUANTIZATION_OVERSAMPLING", "3")
    edge = make_store(Settings())
    assert isinstance(edge, EdgeStore) and edge.search_params is not None
    assert edge.search_params.hnsw_ef == 96
    assert edge.search_params.quantization is not None and edge.search_params.quantization.oversampling == 3.0
    assert edge.quantization is not None
    monkeypatch.setenv("ONCOLIT_INDEX__BACKEND", "qdrant")
    monkeypatch.setenv("ONCOLIT_INDEX__QDRANT_URL", "http://127.0.0.1:1")  # never contacted: nothing is opened
    monkeypatch.setenv("ONCOLIT_INDEX__ON_DISK_PAYLOAD", "false")
    server = make_store(Settings())
    assert isinstance(server, QdrantStore)
    assert server.collection_params(384)["quantization_config"].scalar.type == "int8"
    assert server.collection_params(384)["on_disk_payload"] is False
    monkeypatch.setenv("ONCOLIT_INDEX__QUANTIZATION", "int4")
    with pytest.raises(ValidationError, match="int8"):
        Settings()
