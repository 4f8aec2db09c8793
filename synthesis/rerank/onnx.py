"""The reranker without torch: its merged model exported once to ONNX, scored by ONNX Runtime.

Loading the torch reranker costs a search most of its time on 2 cores (torch, transformers and peft imports,
the LoRA merge: ~5 s, then the first forward pass), for ~30 short passages. The export (`export_reranker`, run
by `oncolit index export-onnx`; needs torch, peft and `onnx` once) writes the merged encoder + head as one graph;
`OnnxCrossEncoder` tokenizes with the Rust `tokenizers` exactly as `inputs.encode_pair` does through
transformers (pair, longest side cut first, `max_len`) and computes the same P(relevant), to float rounding.
The file is named by a hash of the artifact (model.json, adapter, heads), so a retrained reranker is never
scored by the old graph.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def artifact_digest(folder: Path) -> str:
    """sha256 (first 12 hex) over the files that decide the scores: model.json, the adapter, the heads."""
    h = hashlib.sha256()
    for name in ("model.json", "adapter_config.json", "adapter_model.safetensors", "heads.safetensors"):
        path = folder / name
        h.update(name.encode() + b"\0" + (path.read_bytes() if path.is_file() else b"") + b"\0")
    return h.hexdigest()[:12]


def export_path(folder: Path, onnx_dir: Path) -> Path:
    return onnx_dir / f"rerank-{folder.name}-{artifact_digest(folder)}.onnx"


def export_reranker(folder: Path, onnx_dir: Path) -> Path:
    """Export the reranker in `folder` to `onnx_dir` once (torch + peft + onnx needed); reuse afterwards."""
    target = export_path(folder, onnx_dir)
    if target.exists():
        return target
    import torch

    from synthesis.findings_models.encoder import load_artifact

    model = load_artifact(folder)

    class _Logits(torch.nn.Module):
        def __init__(self, module: Any) -> None:
            super().__init__()
            self.module = module

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            return self.module(input_ids, attention_mask, token_type_ids)[0]

    onnx_dir.mkdir(parents=True, exist_ok=True)
    sample = torch.ones((2, 8), dtype=torch.long)
    axes = {0: "batch", 1: "sequence"}
    tmp = target.with_suffix(f".tmp{os.getpid()}")
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer chatter; the export is checked against torch by the tests
        torch.onnx.export(_Logits(model.module.eval()), (sample, sample, torch.zeros_like(sample)), str(tmp),
                          input_names=["input_ids", "attention_mask", "token_type_ids"], output_names=["logits"],
                          dynamic_axes={"input_ids": axes, "attention_mask": axes, "token_type_ids": axes,
                                        "logits": {0: "batch"}},
                          opset_version=17, dynamo=False)
    tmp.replace(target)
    return target


class OnnxCrossEncoder:
    """P(relevant) of (query, passage) pairs from the exported graph: the torch reranker's scores."""

    def __init__(self, graph: Path, spec: Any, *, threads: int | None = None, batch_size: int = 32) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        from synthesis.findings_models.encoder import base_path

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
        self.tokenizer = Tokenizer.from_file(str(base_path() / "tokenizer.json"))
        self.tokenizer.enable_truncation(spec.max_len, strategy="longest_first")
        self.tokenizer.enable_padding(pad_id=0, pad_type_id=0)
        self.temperature = float(spec.temperature)
        self.batch_size = batch_size

    def score(self, query: str, passages: Sequence[str]) -> list[float]:
        import numpy as np

        out: list[float] = []
        for start in range(0, len(passages), self.batch_size):
            # an empty passage is no second sequence, as transformers' tokenizer(query, "") reads it
            pairs = [(query, p) if p else query for p in passages[start:start + self.batch_size]]
            encodings = self.tokenizer.encode_batch(pairs)
            feeds = {"input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
                     "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
                     "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64)}
            logits = self.session.run(None, feeds)[0] / self.temperature
            logits = logits - logits.max(axis=1, keepdims=True)
            probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
            out += [float(p) for p in probs[:, 1]]
        return out


def load_spec(folder: Path) -> Any:
    from synthesis.findings_models.encoder import ModelSpec

    return ModelSpec.from_json(json.loads((folder / "model.json").read_text(encoding="utf-8")))
