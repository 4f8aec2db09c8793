"""An embedder that loads its model on the first `embed`, not when it is built.

Opening the index needs the embedder's `name` and `dim` (they name the collection), its window
(`max_tokens`) and token counter (the chunker's budget), but a sparse search, `index verify` or a command
that only reads the catalog never embeds anything. `LazyEmbedder` answers those four from the model
folder's own files (`modules.json`, `1_Pooling/config.json`, `sentence_bert_config.json`, `tokenizer.json`
through the Rust `tokenizers`), so none of them imports torch; the model loads on the first call that
embeds, and is checked then against what was promised (a mismatch is an error, never a wrong collection).

A query twin is a second way to compute the same vectors that starts faster: the ONNX Runtime export of
the same weights (`index.embedder.OnnxEmbedder`, same `name`, vectors equal to float rounding). When one is
given and ready (`onnxruntime` installed, the graph exported before), queries (`embed_query`) run on it and
a search never imports torch: a hybrid query costs the ONNX session (~0.3 s), not torch and
sentence-transformers (5-7 s on 2 loaded cores). Passages (`embed`, what sync stores) always run on the
configured model.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from index.chunking import TokenCounter, WordPieceCounter
from index.embedder import ChunkingEmbedder, _empty

# The pooling modes sentence-transformers concatenates: each adds `word_embedding_dimension` to the output.
POOLING_MODES = ("pooling_mode_cls_token", "pooling_mode_mean_tokens", "pooling_mode_max_tokens",
                 "pooling_mode_mean_sqrt_len_tokens", "pooling_mode_weightedmean_tokens", "pooling_mode_lasttoken")


@dataclass(frozen=True)
class ModelFacts:
    """What the index needs to know about a model before loading it."""

    dim: int
    max_tokens: int
    tokenizer_json: Path


def describe_model(model_path: Path) -> ModelFacts | None:
    """`dim`, window and tokenizer of a sentence-transformers folder, read from its config files; None when
    the folder holds something these files do not describe for certain (then the model is loaded to ask)."""
    try:
        modules = json.loads((model_path / "modules.json").read_text())
        dim: int | None = None
        max_tokens: int | None = None
        tokenizer: Path | None = None
        for module in sorted(modules, key=lambda m: m["idx"]):
            kind, folder = module["type"].rsplit(".", 1)[-1], model_path / module.get("path", "")
            if kind == "Transformer":
                max_tokens = json.loads((folder / "sentence_bert_config.json").read_text())["max_seq_length"]
                tokenizer = model_path / "tokenizer.json"  # where the loaded embedders' token_counter reads it
            elif kind == "Pooling":
                config = json.loads((folder / "config.json").read_text())
                modes = sum(1 for mode in POOLING_MODES if config.get(mode))
                dim = int(config["word_embedding_dimension"]) * modes if modes else None
            elif kind == "Dense":
                dim = int(json.loads((folder / "config.json").read_text())["out_features"])
            elif kind != "Normalize":
                return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not dim or not max_tokens or tokenizer is None or not tokenizer.is_file():
        return None
    return ModelFacts(dim=dim, max_tokens=int(max_tokens), tokenizer_json=tokenizer)


class LazyEmbedder:
    """A `ChunkingEmbedder` over `build` (the real embedder), built on the first call that embeds.

    `query_twin` returns an embedder with the same name and vectors that starts without torch, or None when
    it cannot (not installed, not exported). It is asked once, by the first `embed_query` made before the
    model is loaded, and answers the queries when it can; `embed` (the passages the index stores) always
    runs the configured model, and once that is loaded it answers the queries too."""

    def __init__(self, build: Callable[[], ChunkingEmbedder], *, name: str, dim: int, max_tokens: int,
                 tokenizer_json: Path, query_twin: Callable[[], ChunkingEmbedder | None] | None = None) -> None:
        self.name = name
        self.dim = dim
        self._max_tokens = max_tokens
        self._tokenizer_json = tokenizer_json
        self._build = build
        self._query_twin = query_twin
        self._model: ChunkingEmbedder | None = None
        self._twin: ChunkingEmbedder | None = None
        self._lock = threading.Lock()

    @property
    def max_tokens(self) -> int:
        return self._max_tokens

    @property
    def loaded(self) -> tuple[ChunkingEmbedder | None, ChunkingEmbedder | None]:
        """(the model, the query twin), each None until built."""
        return self._model, self._twin

    def token_counter(self) -> TokenCounter:
        """The same counter the loaded embedders give (`wordpiece-<name>` over the model's tokenizer.json)."""
        return WordPieceCounter(self._tokenizer_json, name=f"wordpiece-{self.name}")

    def model(self) -> ChunkingEmbedder:
        """The configured embedder, built on the first call."""
        with self._lock:
            if self._model is None:
                self._model = self._checked(self._build())
            return self._model

    def query_model(self) -> ChunkingEmbedder:
        """What embeds queries: the loaded model, else the twin when it can, else the model (built now)."""
        with self._lock:
            if self._model is not None:
                return self._model
            if self._query_twin is not None:
                twin, self._query_twin = self._query_twin(), None  # asked once
                self._twin = self._checked(twin) if twin is not None else None
            if self._twin is not None:
                return self._twin
        return self.model()

    def _checked(self, model: ChunkingEmbedder) -> ChunkingEmbedder:
        promised = (self.name, self.dim, self._max_tokens)
        got = (model.name, model.dim, int(model.max_tokens))
        if got != promised:
            raise ValueError(f"the embedding model loaded as (name, dim, max_tokens) = {got}, not {promised} as "
                             "its folder's config files said")
        return model

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return _empty(self.dim)
        return self.model().embed(texts)

    def embed_query(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return _empty(self.dim)
        return self.query_model().embed_query(texts)

    def close(self) -> None:
        for model in (self._model, self._twin):
            close = getattr(model, "close", None)
            if close is not None:
                close()


def lazily(build: Callable[[], ChunkingEmbedder], model_path: Path | str | None, *,
           query_twin: Callable[[], ChunkingEmbedder | None] | None = None) -> ChunkingEmbedder:
    """`build` (an embedder of the sentence-transformers folder `model_path`; None = the packaged
    all-MiniLM-L6-v2) behind a `LazyEmbedder`, or built now when the folder's files do not describe it."""
    from index.embedder import _model_name

    path, name = _model_name(model_path, None)
    facts = describe_model(path)
    if facts is None:
        return build()
    return LazyEmbedder(build, name=name, dim=facts.dim, max_tokens=facts.max_tokens,
                        tokenizer_json=facts.tokenizer_json, query_twin=query_twin)


def onnx_twin(model_path: Path | str | None, onnx_dir: Path, *, batch_size: int = 16,
              threads: int | None = None) -> Callable[[], ChunkingEmbedder | None]:
    """The query twin of a torch sentence-transformers model: its ONNX Runtime export, when `onnxruntime` is
    installed and the graph of these weights was exported before (`export_onnx`: `oncolit index export-onnx`,
    or any run of the onnx backend). Never exports: that needs torch, which is what the twin avoids."""

    def build() -> ChunkingEmbedder | None:
        import importlib.util

        from index.embedder import OnnxEmbedder, _model_name, onnx_export_path

        path, _name = _model_name(model_path, None)
        if importlib.util.find_spec("onnxruntime") is None or not any(onnx_dir.glob(f"{path.name}-*.onnx")):
            return None
        try:
            if not onnx_export_path(path, onnx_dir).is_file():
                return None  # an export of other weights under the same folder name
        except FileNotFoundError:
            return None
        return OnnxEmbedder(model_path, onnx_dir=onnx_dir, batch_size=batch_size, threads=threads)

    return build


def prepare_queries(embedder: object) -> None:
    """Build what embeds queries now, for a server whose first search should not wait for a model: the
    `LazyEmbedder` under `embedder` (itself, or an `inner` of a wrapper such as `CachedEmbedder`), if any."""
    seen: object | None = embedder
    for _ in range(8):  # wrappers nest a level or two; a cycle must not hang the start
        if isinstance(seen, LazyEmbedder):
            seen.query_model()
            return
        seen = getattr(seen, "inner", None)
        if seen is None:
            return
