"""The reranker's ONNX export scores as the torch reranker does, and a search with it loads no torch."""

from __future__ import annotations

from pathlib import Path

import pytest

from synthesis.findings_models.inputs import encode_pair
from synthesis.rerank import CrossEncoderReranker, shipped_path
from synthesis.rerank.onnx import OnnxCrossEncoder, export_path, export_reranker, load_spec

pytest.importorskip("onnxruntime", reason="optional faster CPU path")
pytest.importorskip("onnx", reason="needed to export the graph")

QUERY = "Does osimertinib improve survival in EGFR-mutated lung cancer?"
PASSAGES = ["Osimertinib prolonged progression-free survival in EGFR-mutated non-small-cell lung cancer.",
            "Aerobic exercise reduced cancer-related fatigue in breast cancer survivors.",
            " ".join(["A long passage about tumours, chemotherapy and survival."] * 40),  # cut at max_len
            "", "NSCLC"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    onnx_dir = tmp_path_factory.mktemp("onnx")
    graph = export_reranker(shipped_path(), onnx_dir)
    assert graph == export_path(shipped_path(), onnx_dir) and export_reranker(shipped_path(), onnx_dir) == graph
    return onnx_dir


def test_onnx_scores_equal_the_torch_scores(exported: Path) -> None:
    torch_scores = CrossEncoderReranker(threads=1).score(QUERY, PASSAGES)
    fast = CrossEncoderReranker(threads=1, onnx_dir=exported)
    onnx_scores = fast.score(QUERY, PASSAGES)
    assert fast._onnx() is not None
    assert max(abs(a - b) for a, b in zip(torch_scores, onnx_scores)) < 1e-4, (torch_scores, onnx_scores)
    assert fast.score(QUERY, []) == []


def test_the_tokens_are_the_ones_transformers_gives(exported: Path) -> None:
    model = CrossEncoderReranker(threads=1)._loaded()
    onnx = OnnxCrossEncoder(export_path(shipped_path(), exported), load_spec(shipped_path()))
    onnx.tokenizer.no_padding()
    for passage in PASSAGES:
        want = encode_pair(model.tokenizer, QUERY, passage, model.spec.max_len)
        got = onnx.tokenizer.encode(QUERY, passage) if passage else onnx.tokenizer.encode(QUERY)
        assert (got.ids, got.type_ids) == (want.input_ids, want.token_type_ids), passage[:40]


def test_without_the_export_the_torch_reranker_scores(tmp_path: Path) -> None:
    assert CrossEncoderReranker(threads=1, onnx_dir=tmp_path)._onnx() is None
