"""The lazy embedder: what opening the index needs comes from the model folder's files (no torch), the model
loads on the first embed, and a query may be answered by the ONNX export of the same weights."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from index.chunking import Chunker
from index.embedder import CachedEmbedder, SentenceTransformerEmbedder, default_model_path
from index.embedder_lazy import LazyEmbedder, describe_model, lazily, onnx_twin, prepare_queries
from index.store import collection_name
from oncolit.settings import Settings
from oncolit.wiring import make_embedder

TEXTS = ["Osimertinib prolonged progression-free survival in EGFR-mutated lung cancer.",
         "Aerobic exercise reduced cancer-related fatigue in breast cancer survivors."]


@pytest.fixture(scope="module")
def minilm() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder(batch_size=8)


class Counting:
    """`build` for a LazyEmbedder that counts how often it ran."""

    def __init__(self, make: object) -> None:
        self.make, self.calls = make, 0

    def __call__(self) -> object:
        self.calls += 1
        return self.make() if callable(self.make) else self.make


def test_the_folder_describes_the_packaged_model_as_loading_it_does(minilm: SentenceTransformerEmbedder) -> None:
    facts = describe_model(default_model_path())
    assert facts is not None and (facts.dim, facts.max_tokens) == (minilm.dim, minilm.max_tokens) == (384, 256)
    lazy = lazily(lambda: minilm, None)
    assert isinstance(lazy, LazyEmbedder) and lazy.loaded == (None, None)
    assert (lazy.name, lazy.dim, lazy.max_tokens) == (minilm.name, minilm.dim, minilm.max_tokens)
    # the same collection as the eager embedder: same name, dim and chunker fingerprint (the counter's name)
    eager_chunker, lazy_chunker = Chunker(count_tokens=minilm.token_counter()), Chunker(count_tokens=lazy.token_counter())
    assert lazy_chunker.fingerprint == eager_chunker.fingerprint
    assert (collection_name(lazy.name, lazy.dim, lazy_chunker.fingerprint)
            == collection_name(minilm.name, minilm.dim, eager_chunker.fingerprint))
    assert lazy.token_counter()(TEXTS[0]) == minilm.token_counter()(TEXTS[0])


def test_the_model_is_built_on_the_first_embed_and_once(minilm: SentenceTransformerEmbedder) -> None:
    build = Counting(minilm)
    lazy = lazily(build, None)  # type: ignore[arg-type]
    assert build.calls == 0
    assert lazy.embed([]).shape == (0, 384) and lazy.embed_query([]).shape == (0, 384) and build.calls == 0
    assert np.array_equal(lazy.embed(TEXTS), minilm.embed(TEXTS))
    assert np.array_equal(lazy.embed_query(TEXTS[:1]), minilm.embed_query(TEXTS[:1]))
    assert build.calls == 1


def test_a_server_can_build_the_query_side_up_front(minilm: SentenceTransformerEmbedder, tmp_path: Path) -> None:
    build = Counting(minilm)
    with CachedEmbedder(lazily(build, None), tmp_path) as cached:  # type: ignore[arg-type]
        prepare_queries(cached)  # through the cache's `inner`
        assert build.calls == 1
        prepare_queries(cached)
    prepare_queries(minilm)  # an eager embedder: nothing to do
    assert build.calls == 1


def test_a_model_unlike_its_config_files_is_refused(minilm: SentenceTransformerEmbedder) -> None:
    facts = describe_model(default_model_path())
    assert facts is not None
    lazy = LazyEmbedder(lambda: minilm, name=minilm.name, dim=768, max_tokens=facts.max_tokens,
                        tokenizer_json=facts.tokenizer_json)
    with pytest.raises(ValueError, match="768"):
        lazy.embed(TEXTS)


def test_a_folder_its_files_do_not_describe_is_loaded_at_once(tmp_path: Path, minilm: SentenceTransformerEmbedder) -> None:
    folder = tmp_path / "custom"
    shutil.copytree(default_model_path(), folder, ignore=shutil.ignore_patterns("*.safetensors"))
    modules = json.loads((folder / "modules.json").read_text())
    modules.append({"idx": 3, "name": "3", "path": "3_Custom", "type": "somewhere.CustomModule"})
    (folder / "modules.json").write_text(json.dumps(modules))
    assert describe_model(folder) is None
    build = Counting(minilm)
    assert lazily(build, folder) is minilm and build.calls == 1  # type: ignore[arg-type]
    (folder / "modules.json").write_text(json.dumps(modules[:2] + [
        {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"}]))
    (folder / "2_Dense").mkdir()
    (folder / "2_Dense" / "config.json").write_text(json.dumps({"in_features": 384, "out_features": 128}))
    facts = describe_model(folder)
    assert facts is not None and facts.dim == 128  # a Dense layer after pooling sets the dimension


def test_no_export_no_twin_and_the_default_wiring_is_lazy(tmp_path: Path) -> None:
    assert onnx_twin(None, tmp_path / "onnx")() is None  # nothing exported: the query side uses the model
    emb = make_embedder(Settings(data_dir=tmp_path))
    inner = getattr(emb, "inner", None)
    assert isinstance(inner, LazyEmbedder) and inner.loaded == (None, None)
    assert (emb.name, emb.dim, emb.max_tokens) == ("all-MiniLM-L6-v2", 384, 256)
    emb.close()  # type: ignore[attr-defined]


def test_queries_run_on_the_onnx_export_passages_on_the_model(minilm: SentenceTransformerEmbedder,
                                                              tmp_path_factory: pytest.TempPathFactory) -> None:
    pytest.importorskip("onnxruntime", reason="optional faster CPU path")
    pytest.importorskip("onnx", reason="needed to export the graph")
    from index.embedder import export_onnx

    onnx_dir = tmp_path_factory.mktemp("onnx")
    export_onnx(default_model_path(), onnx_dir)
    build = Counting(minilm)
    lazy = lazily(build, None, query_twin=onnx_twin(None, onnx_dir, batch_size=4))  # type: ignore[arg-type]
    assert isinstance(lazy, LazyEmbedder)
    got = lazy.embed_query(TEXTS)
    model, twin = lazy.loaded
    assert model is None and twin is not None and build.calls == 0, "a query needs no torch model"
    assert twin.name == minilm.name and np.min(np.sum(got * minilm.embed(TEXTS), axis=1)) > 0.9999
    assert np.array_equal(lazy.embed(TEXTS), minilm.embed(TEXTS)) and build.calls == 1  # passages: the model
    assert np.array_equal(lazy.embed_query(TEXTS), minilm.embed_query(TEXTS))  # once loaded, it answers queries
    # the digest of the weights is remembered beside the export: a later start does not hash 90 MB again
    memo = json.loads((onnx_dir / "weights-sha256.json").read_text())
    assert [v["sha256"][:12] for v in memo.values()] == [next(onnx_dir.glob("*.onnx")).stem.rsplit("-", 1)[1]]
