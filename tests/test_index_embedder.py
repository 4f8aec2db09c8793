"""The real all-MiniLM-L6-v2 embedder, the cache in front of it, and the ONNX Runtime path."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from index.chunking import Chunker
from index.embedder import CachedEmbedder, Embedder, SentenceTransformerEmbedder

TEXTS = ["Osimertinib prolonged progression-free survival in EGFR-mutated lung cancer.",
         "EGFR tyrosine kinase inhibitors improve outcomes in non-small-cell lung cancer.",
         "Aerobic exercise reduced cancer-related fatigue in breast cancer survivors."]


@pytest.fixture(scope="module")
def minilm() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder(batch_size=8)


class CountingModel:
    """Wraps the loaded SentenceTransformer: records each `encode` call's inputs, delegates the rest."""

    def __init__(self, model: Any) -> None:
        self._model = model
        self.calls: list[list[str]] = []

    def encode(self, texts: Sequence[str], **kw: Any) -> Any:
        self.calls.append(list(texts))
        return self._model.encode(texts, **kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)


@pytest.fixture
def counted(minilm: SentenceTransformerEmbedder, monkeypatch: pytest.MonkeyPatch) -> CountingModel:
    wrapper = CountingModel(minilm.model)
    monkeypatch.setattr(minilm, "model", wrapper)
    return wrapper


def test_minilm_gives_normalised_384d_float32(minilm: SentenceTransformerEmbedder) -> None:
    assert isinstance(minilm, Embedder)
    assert minilm.name == "all-MiniLM-L6-v2" and minilm.dim == 384 and minilm.max_tokens == 256
    vectors = minilm.embed(TEXTS)
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]  # the two EGFR sentences are closer
    assert minilm.embed([]).shape == (0, 384)


def test_cache_hit_skips_the_model(minilm: SentenceTransformerEmbedder, counted: CountingModel,
                                   tmp_path: Path) -> None:
    with CachedEmbedder(minilm, tmp_path / "cache") as cached:
        first = cached.embed([TEXTS[0], TEXTS[1], TEXTS[0]])  # a repeat inside one call is embedded once
        assert counted.calls == [[TEXTS[0], TEXTS[1]]]
        again = cached.embed([TEXTS[1], TEXTS[0]])
        assert len(counted.calls) == 1  # all hits: the model was not called
        assert np.array_equal(again, first[[1, 0]])
        mixed = cached.embed([TEXTS[2], TEXTS[0]])
        assert counted.calls[-1] == [TEXTS[2]]  # only the new text reaches the model
        assert np.allclose(mixed[0], minilm.embed([TEXTS[2]])[0], atol=1e-6)
        assert (cached.hits, cached.misses) == (3, 4)
    with CachedEmbedder(minilm, tmp_path / "cache") as reopened:  # the cache is on disk
        calls = len(counted.calls)
        assert np.array_equal(reopened.embed([TEXTS[0]])[0], first[0])
        assert len(counted.calls) == calls


def test_cache_is_keyed_by_model_name(minilm: SentenceTransformerEmbedder, counted: CountingModel,
                                      tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with CachedEmbedder(minilm, tmp_path) as cached:
        cached.embed([TEXTS[0]])
    monkeypatch.setattr(minilm, "name", "another-model")
    with CachedEmbedder(minilm, tmp_path) as other:
        other.embed([TEXTS[0]])
    assert len(counted.calls) == 2


def test_token_counter_keeps_chunks_inside_the_window(minilm: SentenceTransformerEmbedder) -> None:
    """Chunks sized with the embedder's counter are never truncated by the model's own tokenizer."""
    from ingest.records import AbstractSection, Article

    text = " ".join(f"Patients in arm {i} with HER2-low disease (n = {i * 7}) had ORR of {i}.{i}%." for i in range(60))
    art = Article(pmid="1", title="Trastuzumab deruxtecan", abstract=[AbstractSection(label="RESULTS", text=text)])
    chunks = Chunker(count_tokens=minilm.token_counter()).chunk_article(art, version=1)
    tokenizer = minilm.model.tokenizer
    assert len(chunks) > 2
    assert all(len(tokenizer(c.text)["input_ids"]) <= minilm.max_tokens for c in chunks)


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
