"""The reranker: a cross-encoder that reads (query, passage) together and says how relevant the passage is.

Why: the first stage (BM25 + a bi-encoder, fused) ranks by matching words and by comparing two vectors made
apart; a cross-encoder attends across query and passage, which is what orders a topical question's papers well
(MedCPT's recipe). No cross-encoder with bundled weights exists on the registries, so OncoLit trains its own
(`synthesis/finetune/rerank_data.py` + `encoder_train.py`, task "rerank") from the packaged all-MiniLM-L6-v2 cut
to its first four blocks, and ships the LoRA adapter and head (about 1 MB) in `artifacts/minilm-rerank/`.

`index.search.Searcher` takes any object with `name` and `score(query, passages) -> list[float]` (the
`index.search.Reranker` protocol); the wiring module passes this one in. Torch loads on the first `score`, not
at import or construction, so commands that never rerank start fast.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ARTIFACTS = Path(__file__).parent / "artifacts"
SHIPPED = "minilm-rerank"
_LOADED: dict[tuple[str, int | None], Any] = {}  # one loaded model per (folder, threads) per process
_LOAD_LOCK = threading.Lock()


def shipped_path() -> Path:
    return ARTIFACTS / SHIPPED


class CrossEncoderReranker:
    """A findings-model-format artifact with task "rerank": score = P(relevant), temperature-calibrated, 0-1.

    Deterministic (eval mode, no dropout); one padded batch per call (a search reranks ~30 passages).
    `onnx_dir`: where `synthesis.rerank.onnx.export_reranker` left this artifact's graph; when it is there
    and onnxruntime is installed, scores come from ONNX Runtime and torch is never loaded."""

    def __init__(self, folder: Path | str | None = None, *, threads: int | None = None,
                 batch_size: int = 32, onnx_dir: Path | None = None) -> None:
        self.folder = Path(folder) if folder is not None else shipped_path()
        if not (self.folder / "model.json").is_file():
            raise FileNotFoundError(f"{self.folder} holds no reranker (model.json missing); set "
                                    "search.reranker to 'shipped', 'none' or a folder written by "
                                    "`oncolit finetune train synthesis/finetune/configs/rerank-minilm.toml`")
        self.name = self.folder.name
        self.threads = threads
        self.batch_size = batch_size
        self.onnx_dir = onnx_dir

    def _loaded(self) -> Any:
        key = (str(self.folder.resolve()), self.threads)
        with _LOAD_LOCK:
            if key not in _LOADED:
                from synthesis.findings_models.encoder import load_artifact

                model = load_artifact(self.folder, threads=self.threads)
                if model.spec.task != "rerank":
                    raise ValueError(f"{self.folder} is a {model.spec.task!r} model, not a reranker")
                _LOADED[key] = model
            return _LOADED[key]

    def _onnx(self) -> Any:
        """The ONNX Runtime scorer of this artifact's exported graph, or None (no export, no onnxruntime)."""
        if self.onnx_dir is None:
            return None
        import importlib.util

        from synthesis.rerank.onnx import OnnxCrossEncoder, export_path, load_spec

        graph = export_path(self.folder, self.onnx_dir)
        key = (str(graph), self.threads)
        with _LOAD_LOCK:
            if key not in _LOADED:
                if not graph.is_file() or importlib.util.find_spec("onnxruntime") is None:
                    return None
                _LOADED[key] = OnnxCrossEncoder(graph, load_spec(self.folder), threads=self.threads,
                                                batch_size=self.batch_size)
            return _LOADED[key]

    def score(self, query: str, passages: Sequence[str]) -> list[float]:
        """P(relevant) of each passage for `query`, in input order."""
        if not passages:
            return []
        onnx = self._onnx()
        if onnx is not None:
            return list(onnx.score(query, passages))
        import torch

        from synthesis.findings_models.inputs import collate, encode_pair

        model = self._loaded()
        spec = model.spec
        encoded = [encode_pair(model.tokenizer, query, p, spec.max_len) for p in passages]
        out: list[float] = []
        with torch.inference_mode():
            for start in range(0, len(encoded), self.batch_size):
                batch = collate(encoded[start:start + self.batch_size])
                logits, _ = model.module(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
                out += (logits / spec.temperature).softmax(-1)[:, 1].tolist()
        return out


def load_reranker(choice: str, *, threads: int | None = None,
                  onnx_dir: Path | None = None) -> CrossEncoderReranker | None:
    """`choice`: "shipped", "none" (no reranking) or an artifact folder; `onnx_dir`: where its ONNX export may be."""
    if choice == "none":
        return None
    return CrossEncoderReranker(None if choice == "shipped" else Path(choice).expanduser(), threads=threads,
                                onnx_dir=onnx_dir)
