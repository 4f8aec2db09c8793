"""`embedding.backend = "e5"` end to end: the setting builds the e5 stack, the index gets its own collection
and chunking, the sync embeds passages, and search embeds the question on the query side and finds it.

A small real corpus (the records the hand-written questions of test_index_sync are about, plus distractors
from the same PubMedQA file), so the engine's CPU time stays a few seconds.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from index.sync import sync
from ingest.catalog import Catalog
from ingest.errors import ConfigError
from oncolit.settings import Settings
from oncolit.wiring import make_embedder, open_index
from tests.test_index_sync import QUESTIONS, _items

DISTRACTORS = 12  # the engine takes ~0.6 s a chunk on a busy core: keep the corpus to ~50 chunks


@pytest.fixture(scope="module")
def e5_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(data_dir=tmp_path_factory.mktemp("e5"), embedding={"backend": "e5", "threads": 1})


@pytest.fixture(scope="module")
def embedder(e5_settings: Settings) -> Iterator[Any]:
    emb: Any = make_embedder(e5_settings)
    yield emb
    emb.close()


@pytest.fixture(scope="module")
def indexed(shared_data: Path, e5_settings: Settings, embedder: Any) -> Settings:
    wanted = {rid for _, rid in QUESTIONS}
    items = _items(shared_data)
    chosen = [i for i in items if i.record.record_id in wanted]
    chosen += [i for i in items if i.record.record_id not in wanted][:DISTRACTORS]
    with Catalog(e5_settings.resolved_catalog_url) as catalog, open_index(e5_settings, embedder=embedder) as handle:
        catalog.ingest_batch(chosen)
        report = sync(catalog, handle)
        assert report.records_indexed == len(chosen)
    return e5_settings


def test_the_setting_builds_the_e5_stack_with_its_own_collection(embedder: Any, e5_settings: Settings) -> None:
    from index.embedder import CachedEmbedder
    from index.embedder_e5 import E5Embedder

    assert isinstance(embedder, CachedEmbedder) and isinstance(embedder.inner, E5Embedder)
    assert (embedder.name, embedder.dim, embedder.max_tokens) == ("multilingual-e5-small-q4", 384, 510)
    assert embedder.inner.threads == 1
    with open_index(e5_settings, embedder=embedder) as handle:
        assert handle.collection.startswith("oncolit_multilingual-e5-small-q4_384_")
        assert handle.chunker.config.max_tokens == 256  # the chunking setting, below the engine's 510
        assert handle.chunker.count_tokens.name == "e5-sentencepiece-multilingual-e5-small-q4"


def test_unknown_backend_names_the_choices(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="sentence-transformers, onnx, e5"):
        make_embedder(Settings(data_dir=tmp_path, embedding={"backend": "e6"}))


def test_search_embeds_the_question_as_a_query_and_finds_its_record(indexed: Settings, embedder: Any,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    inner = embedder.inner
    sides: list[tuple[str, list[str]]] = []
    for side in ("embed", "embed_query"):
        original = getattr(inner, side)

        def spy(texts: Sequence[str], _side: str = side, _fn: Any = original) -> np.ndarray:
            sides.append((_side, list(texts)))
            return _fn(texts)  # type: ignore[no-any-return]

        monkeypatch.setattr(inner, side, spy)
    misses = []
    with open_index(indexed, embedder=embedder) as handle:
        searcher = handle.searcher()
        for question, expected in QUESTIONS:
            top = [h.record_id for h in searcher.search(question, limit=3, mode="dense")]
            if expected not in top:
                misses.append((question, expected, top))
    assert sides == [("embed_query", [q]) for q, _ in QUESTIONS]  # the query side, never the passage side
    assert not misses, misses
