"""Export a peft LoRA adapter for llama.cpp: base GGUF + adapter -> one merged GGUF file.

    python -m synthesis.finetune.export_gguf BASE.gguf ADAPTER_DIR OUT.gguf [--type q8_0|f16|f32]

Why merged (not a GGUF LoRA file): a merged file is one model that every llama.cpp build, server and binding
loads the same way, with no adapter-loading API to depend on; for a 135M-1.5B model it is small.

How, tensor by tensor (the base file is read with `gguf.GGUFReader`, memory-mapped):
- every metadata key is copied unchanged (tokenizer, chat template, hyper-parameters), plus `oncolit.*` keys
  that record the adapter and the base file;
- a tensor no LoRA module touches is copied byte for byte (quantised blocks included);
- a tensor W of a LoRA target gets W + scale * B @ A (scale = lora_alpha / r, or alpha / sqrt(r) with rsLoRA).
  W is dequantised from its GGUF type; the sum is written as `--type` (Q8_0 by default: ~0.1% error, 1/4 of
  F32; F32 reproduces the transformers backend's arithmetic most closely). An adapter whose B is all zeros
  (peft's initial state) leaves W's bytes untouched, so the export of an untrained adapter IS the base.

Two conversions make HF names and layouts line up with GGUF's:
- names: `model.layers.N.self_attn.q_proj` <-> `blk.N.attn_q` (gguf's own TensorNameMap for the file's arch);
- layout: llama.cpp's converter permutes the rows of Q and K for the `llama` architecture (it interleaves the
  two rotary halves of each head). transformers un-permutes them when it loads a GGUF, so the adapter was
  trained against un-permuted weights: its delta must be permuted the same way before it is added. Archs such
  as qwen2 use NeoX-style rotary embeddings and are stored unpermuted.
Shapes: GGUF stores a linear weight as ne = [in, out], which numpy reads as (out, in) — the same as torch's
`nn.Linear.weight`, so delta = B (out, r) @ A (r, in) needs no transpose.
"""

from __future__ import annotations

import argparse
import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np

PERMUTED_ARCHS = {"llama"}  # archs whose converter applies llama.cpp's Q/K row permutation
OUT_TYPES = ("q8_0", "f16", "f32")
_PEFT_KEY = re.compile(r"^(?:base_model\.model\.)?(?P<module>.+)\.lora_(?P<ab>[AB])(?:\.default)?\.weight$")


def permute_rows(weights: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's `permute` (convert_hf_to_gguf.py, LlamaModel): HF row order -> GGUF row order, per head.
    The exact inverse of transformers' `_reverse_permute_weights` used when loading a GGUF."""
    return (weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))


def read_adapter(adapter_dir: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(adapter_config.json, {module name: delta (out, in) float32}) with the scale already applied."""
    from safetensors.numpy import load_file

    adapter_dir = Path(adapter_dir)
    config = json.loads((adapter_dir / "adapter_config.json").read_text(encoding="utf-8"))
    if config.get("fan_in_fan_out"):
        raise ValueError("adapters with fan_in_fan_out (GPT-2 Conv1D layers) are not supported by this exporter")
    tensors = load_file(str(adapter_dir / "adapter_model.safetensors"))
    pairs: dict[str, dict[str, np.ndarray]] = {}
    for key, value in tensors.items():
        match = _PEFT_KEY.match(key)
        if match is None:
            raise ValueError(f"unexpected tensor {key!r} in the adapter: only LoRA A/B matrices can be merged "
                             "(modules_to_save / DoRA are not supported)")
        pairs.setdefault(match["module"], {})[match["ab"]] = value.astype(np.float32)
    r, alpha = int(config["r"]), float(config["lora_alpha"])
    scale = alpha / math.sqrt(r) if config.get("use_rslora") else alpha / r
    deltas = {}
    for module, ab in pairs.items():
        if set(ab) != {"A", "B"}:
            raise ValueError(f"adapter module {module} lacks its A or B matrix")
        deltas[module] = scale * (ab["B"] @ ab["A"])  # (out, r) @ (r, in) -> (out, in)
    return config, deltas


def gguf_names(arch: str, n_blocks: int, modules: list[str]) -> dict[str, str]:
    """HF module name -> GGUF tensor name (`blk.N.attn_q.weight`), via gguf's TensorNameMap."""
    import gguf

    arch_enum = {name: key for key, name in gguf.MODEL_ARCH_NAMES.items()}.get(arch)
    if arch_enum is None:
        raise ValueError(f"unknown GGUF architecture {arch!r}")
    name_map = gguf.get_tensor_name_map(arch_enum, n_blocks)
    out = {}
    for module in modules:
        name = name_map.get_name(module)
        if name is None:
            raise ValueError(f"no GGUF tensor corresponds to adapter module {module!r} for arch {arch}")
        out[module] = f"{name}.weight"
    return out


def export_merged(base_gguf: Path, adapter_dir: Path, out_path: Path, *, out_type: str = "q8_0",
                  name: str | None = None) -> Path:
    """Write base + adapter as one GGUF at `out_path` (atomically). Returns the path."""
    import gguf

    if out_type not in OUT_TYPES:
        raise ValueError(f"out_type must be one of {OUT_TYPES}")
    reader = gguf.GGUFReader(str(base_gguf))
    arch = reader.get_field("general.architecture").contents()
    n_blocks = int(reader.get_field(f"{arch}.block_count").contents())
    n_head = int(reader.get_field(f"{arch}.attention.head_count").contents())
    kv_field = reader.get_field(f"{arch}.attention.head_count_kv")
    n_head_kv = int(kv_field.contents()) if kv_field is not None else n_head
    config, deltas = read_adapter(adapter_dir)
    names = gguf_names(arch, n_blocks, list(deltas))
    by_tensor = {names[m]: d for m, d in deltas.items()}
    present = {t.name for t in reader.tensors}
    missing = sorted(set(by_tensor) - present)
    if missing:
        raise ValueError(f"the base GGUF has no tensor(s) {missing[:3]} for the adapter: is it the adapter's base?")
    qtype = {"q8_0": gguf.GGMLQuantizationType.Q8_0, "f16": gguf.GGMLQuantizationType.F16,
             "f32": gguf.GGMLQuantizationType.F32}[out_type]

    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(out_path.name + ".tmp")
    writer = gguf.GGUFWriter(str(tmp), arch, endianess=reader.endianess)
    for fld in reader.fields.values():
        if fld.name == gguf.Keys.General.ARCHITECTURE or fld.name.startswith("GGUF."):
            continue  # the writer adds the architecture and the header fields itself
        value = fld.contents()
        if fld.name == gguf.Keys.General.NAME and name:
            value = name
        vtype = fld.types[0]
        writer.add_key_value(fld.name, value, vtype,
                             sub_type=fld.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None)
    if name and reader.get_field(gguf.Keys.General.NAME) is None:
        writer.add_name(name)
    writer.add_string("oncolit.lora.base", Path(base_gguf).name)
    writer.add_string("oncolit.lora.adapter", json.dumps(
        {k: config.get(k) for k in ("r", "lora_alpha", "use_rslora", "target_modules")}, default=str))
    writer.add_string("oncolit.lora.merged_type", out_type)

    merged_data: dict[str, np.ndarray] = {}
    for tensor in reader.tensors:
        delta = by_tensor.get(tensor.name)
        if delta is None or not np.any(delta):
            writer.add_tensor_info(tensor.name, tensor.data.shape, tensor.data.dtype, tensor.data.nbytes,
                                   tensor.tensor_type)
            continue
        weights = gguf.quants.dequantize(tensor.data, tensor.tensor_type).astype(np.float32)  # (out, in)
        if weights.shape != delta.shape:
            raise ValueError(f"{tensor.name}: base {weights.shape} vs adapter delta {delta.shape}")
        if arch in PERMUTED_ARCHS and ".attn_q." in tensor.name:
            delta = permute_rows(delta, n_head)
        elif arch in PERMUTED_ARCHS and ".attn_k." in tensor.name:
            delta = permute_rows(delta, n_head_kv)
        merged = gguf.quants.quantize(weights + delta, qtype)
        merged_data[tensor.name] = merged  # written in the data pass below
        writer.add_tensor_info(tensor.name, merged.shape, merged.dtype, merged.nbytes, qtype)

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for tensor in reader.tensors:
        writer.write_tensor_data(merged_data.get(tensor.name, tensor.data), tensor_endianess=reader.endianess)
    writer.close()
    tmp.replace(out_path)
    return out_path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("base", type=Path)
    parser.add_argument("adapter", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--type", default="q8_0", choices=OUT_TYPES)
    parser.add_argument("--name", default=None)
    args = parser.parse_args(argv)
    print(export_merged(args.base, args.adapter, args.out, out_type=args.type, name=args.name))


if __name__ == "__main__":
    main()
