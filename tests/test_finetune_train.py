"""A tiny real fine-tuning run on CPU: SmolLM2-135M (the registry GGUF, dequantised by transformers) learns one
PubMedQA example with LoRA; the adapter is saved, reloaded by the transformers backend and, merged into a GGUF,
served by llama.cpp — and both backends generate the same reply. Export is also checked without any training:
an all-zero adapter exports the base byte for byte, and the merged Q/K rows are exactly what transformers'
GGUF loader maps back onto the adapter's own layout.

The run is small (1 example, ~130 tokens, LoRA on the last blocks, 1 thread): about a minute on an idle 2-core
machine, most of it loading the model twice.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from synthesis.finetune import data
from synthesis.finetune.export_gguf import export_merged, permute_rows
from synthesis.llm.registry import SMOLLM2, pull

torch = pytest.importorskip("torch")
pytest.importorskip("peft")
gguf = pytest.importorskip("gguf")


@pytest.fixture(scope="module")
def base_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The registry's SmolLM2 GGUF (copied from the installed wheel; no network when it is installed)."""
    return pull(SMOLLM2, tmp_path_factory.mktemp("models")).path


@pytest.fixture(scope="module")
def tiny_data(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    items = json.loads((shared_data / "eval" / "pubmedqa-dev" / "pqal_dev.json").read_text())
    root = tmp_path_factory.mktemp("tiny")
    (root / "pq.json").write_text(json.dumps(dict(list(items.items())[:12])))
    data.build_pubmedqa(root / "pq.json", root / "data", context_chars=120, test_fraction=0.25, val_fraction=0.1)
    return root / "data"


@pytest.fixture(scope="module")
def tiny_run(base_gguf: Path, tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from synthesis.finetune.train import load_config, train

    config = load_config(None, dict(
        data_dir=str(tiny_data), base=str(base_gguf), max_steps=6, batch_size=1, max_train_examples=1,
        balance_labels=False, learning_rate=3e-3, min_lr=3e-3, warmup_steps=0, lora_dropout=0.0, lora_top_layers=6,
        log_interval=1, eval_interval=0, eval_examples=1, checkpoint_interval=3, threads=1,
        out_dir=str(tmp_path_factory.mktemp("runs")), run_name="tiny"))
    return train(config, say=lambda _m: None)


def test_tiny_run_saves_config_log_checkpoint_adapter_and_gguf(tiny_run: Path):
    config = json.loads((tiny_run / "config.json").read_text())
    assert config["max_steps"] == 6 and config["gguf_file"].endswith(".gguf") and config["data_card_sha256"]
    assert (tiny_run / "adapter" / "adapter_config.json").is_file()
    assert (tiny_run / "ckpt" / "state.pt").is_file()
    assert (tiny_run / "model.gguf").read_bytes()[:4] == b"GGUF"


def test_loss_goes_down_on_an_overfit_batch(tiny_run: Path):
    losses = [row["loss"] for row in data.read_jsonl(tiny_run / "log.jsonl") if "loss" in row]
    assert len(losses) == 6
    assert losses[-1] < 0.5 * losses[0]


def test_adapter_reloads_in_transformers_and_llamacpp_serves_the_merged_gguf(tiny_run: Path, tiny_data: Path,
                                                                             base_gguf: Path):
    from synthesis.llm.llamacpp import LlamaCppLLM
    from synthesis.llm.transformers_backend import TransformersLLM

    example = data.load_split(tiny_data, "train")[0]
    with TransformersLLM(base_gguf, adapter_dir=tiny_run / "adapter", threads=1, dtype="float32") as tuned:
        via_transformers = tuned.complete(example["messages"], max_tokens=48).text
    with LlamaCppLLM(tiny_run / "model.gguf", n_ctx=1024, n_threads=1) as merged:
        via_llamacpp = merged.complete(example["messages"], max_tokens=48).text
    with LlamaCppLLM(base_gguf, n_ctx=1024, n_threads=1) as base:
        untuned = base.complete(example["messages"], max_tokens=48).text
    assert via_transformers == via_llamacpp  # same weights, two runtimes
    assert via_llamacpp.startswith('{"answer": "')  # it learnt the reply's form ...
    assert untuned != via_llamacpp  # ... which the base does not produce
    # registered, it is a model like any other: both backends load it by name
    from synthesis.finetune.local_models import register_run
    from synthesis.llm import make_llm

    models_dir = base_gguf.parent
    register_run(models_dir, tiny_run, "tiny-pubmedqa")
    with make_llm("llamacpp", "tiny-pubmedqa", models_dir, n_ctx=1024, n_threads=1) as by_name:
        assert by_name.name == "llamacpp:tiny-pubmedqa"
        assert by_name.complete(example["messages"], max_tokens=48).text == via_llamacpp
    with make_llm("transformers", "tiny-pubmedqa", models_dir, threads=1, dtype="float32") as by_name:
        assert by_name.name == "transformers:tiny-pubmedqa"
        assert by_name.complete(example["messages"], max_tokens=48).text == via_transformers


def test_finetune_eval_gives_the_same_numbers_twice(tiny_run: Path):
    from typer.testing import CliRunner

    from oncolit.cli.finetune_cmd import app
    from synthesis.finetune.evaluate import without_timing

    runs = []
    for _ in range(2):
        result = CliRunner().invoke(app, ["eval", str(tiny_run), "--split", "test", "--max-tokens", "24", "--json"])
        assert result.exit_code == 0, result.output
        runs.append(json.loads(result.stdout))
    assert runs[0]["metrics"]["n"] == 3 and runs[0]["decoding"]["constrained"] is True
    assert without_timing(runs[0]["metrics"]) == without_timing(runs[1]["metrics"])
    assert (tiny_run / "eval" / "test-tuned-llamacpp-t24.items.jsonl").is_file()


def _write_adapter(directory: Path, modules: dict[str, tuple[int, int]], *, r: int, zero_b: bool, seed: int) -> None:
    """A peft LoRA adapter written directly (config + safetensors), without loading any model."""
    import numpy as np
    from peft import LoraConfig
    from safetensors.numpy import save_file

    rng = np.random.default_rng(seed)
    tensors = {}
    for module, (out_dim, in_dim) in modules.items():
        tensors[f"base_model.model.{module}.lora_A.weight"] = rng.normal(0, 0.02, (r, in_dim)).astype(np.float32)
        b = np.zeros((out_dim, r)) if zero_b else rng.normal(0, 0.02, (out_dim, r))
        tensors[f"base_model.model.{module}.lora_B.weight"] = b.astype(np.float32)
    directory.mkdir(parents=True, exist_ok=True)
    LoraConfig(r=r, lora_alpha=2 * r, target_modules=["q_proj", "k_proj"], task_type="CAUSAL_LM").save_pretrained(directory)
    save_file(tensors, str(directory / "adapter_model.safetensors"))


SMOL_QK = {**{f"model.layers.{i}.self_attn.q_proj": (576, 576) for i in (0, 29)},
           **{f"model.layers.{i}.self_attn.k_proj": (192, 576) for i in (0, 29)}}


def test_an_untrained_adapter_exports_the_base_unchanged(base_gguf: Path, tmp_path: Path):
    _write_adapter(tmp_path / "zero", SMOL_QK, r=4, zero_b=True, seed=0)
    out = export_merged(base_gguf, tmp_path / "zero", tmp_path / "zero.gguf")
    base, merged = gguf.GGUFReader(str(base_gguf)), gguf.GGUFReader(str(out))
    assert [t.name for t in base.tensors] == [t.name for t in merged.tensors]
    for a, b in zip(base.tensors, merged.tensors):
        assert a.tensor_type == b.tensor_type and bytes(a.data) == bytes(b.data)
    assert merged.get_field("tokenizer.chat_template").contents() == base.get_field("tokenizer.chat_template").contents()


def test_merged_q_and_k_rows_map_back_onto_the_adapter_layout(base_gguf: Path, tmp_path: Path):
    """transformers un-permutes Q/K rows when it loads a GGUF; the merged delta must come back as B @ A."""
    from transformers.modeling_gguf_pytorch_utils import LlamaTensorProcessor

    from synthesis.finetune.export_gguf import read_adapter

    _write_adapter(tmp_path / "rand", SMOL_QK, r=4, zero_b=False, seed=1)
    out = export_merged(base_gguf, tmp_path / "rand", tmp_path / "rand.gguf", out_type="f32")
    _, deltas = read_adapter(tmp_path / "rand")
    unpermute = LlamaTensorProcessor(config={"num_attention_heads": 9, "num_key_value_heads": 3})
    base = {t.name: t for t in gguf.GGUFReader(str(base_gguf)).tensors}
    merged = {t.name: t for t in gguf.GGUFReader(str(out)).tensors}
    for module, delta in deltas.items():
        layer, kind = module.split(".")[2], module.split(".")[-1]
        name = f"blk.{layer}.attn_{kind[0]}.weight"
        w0 = gguf.quants.dequantize(base[name].data, base[name].tensor_type)
        w1 = gguf.quants.dequantize(merged[name].data, merged[name].tensor_type)
        back = unpermute.process(w1 - w0, name).weights  # what transformers would see as the weight change
        assert abs(back - delta).max() < 1e-5, name
        assert abs(w1 - w0 - delta).max() > 1e-4  # and the permutation was not a no-op


def test_permute_rows_is_llamacpps_permutation():
    import numpy as np

    w = np.arange(12 * 2).reshape(12, 2)
    p = permute_rows(w, n_head=2)  # per head of 6 rows: the two rotary halves interleaved
    assert p[:6, 0].tolist() == [0, 6, 2, 8, 4, 10]


@pytest.mark.slow
def test_a_stopped_run_resumes_from_its_checkpoint(base_gguf: Path, tiny_data: Path, tmp_path: Path):
    from synthesis.finetune.train import load_config, train

    settings = dict(data_dir=str(tiny_data), base=str(base_gguf), batch_size=1, max_train_examples=2,
                    balance_labels=False, learning_rate=1e-3, lora_top_layers=2, log_interval=1, eval_interval=0,
                    checkpoint_interval=1, threads=1, out_dir=str(tmp_path), run_name="r", export_gguf=False)
    messages: list[str] = []
    train(load_config(None, dict(settings, max_steps=2)), say=messages.append)
    train(load_config(None, dict(settings, max_steps=4)), say=messages.append)
    assert any("resumed" in m and "step 2" in m for m in messages)
    steps = [row["step"] for row in data.read_jsonl(tmp_path / "r" / "log.jsonl") if "loss" in row]
    assert steps == [1, 2, 3, 4]  # the second call did steps 3 and 4 only
