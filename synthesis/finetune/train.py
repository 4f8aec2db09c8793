"""LoRA fine-tuning of a causal LM on a dataset built by `synthesis.finetune.data`, the nanoGPT way.

    oncolit finetune train synthesis/finetune/configs/pubmedqa-smollm2.toml [--set max_steps=20]
    python -m synthesis.finetune.train CONFIG.toml [key=value ...]

Every default is in `TrainConfig` below, with a comment each; a TOML file overrides some, `key=value`
overrides it. The resolved config is saved as `<run>/config.json` with the data card's hash and the git commit,
so a run can be rebuilt from its config and the data (adapters and merged GGUFs are never needed in git).

What a run directory holds:
    config.json        resolved config (+ base model path, data card sha256, code commit, torch/transformers versions)
    log.jsonl          one line per logged step: step, loss, lr, tokens/s, seconds; eval lines with val_loss
    ckpt/              latest checkpoint: adapter weights + optimizer/scheduler/RNG state (resume continues here)
    adapter/           the final (or best-on-val) peft LoRA adapter: load with TransformersLLM(adapter_dir=...)
    model.gguf         merged GGUF for llama.cpp (when the base is a GGUF and export_gguf is on)

Loss: cross-entropy on the assistant reply only (the prompt is context, not a target). Tokens of the example's
`emphasis` substring (e.g. `"answer": "no"`) weigh `emphasis_weight` times more, so the one decision token of a
50-token reply is not drowned by the rationale. `balance_labels` samples examples with weight 1/count(label),
so a 55% "yes" majority cannot be learnt as a constant.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synthesis.finetune.data import git_commit, load_split, sha256_of


@dataclass
class TrainConfig:
    # --- data -----------------------------------------------------------------------------------
    data_dir: str = ""  # a dataset built by `oncolit finetune build-data` (train.jsonl, val.jsonl, card.json)
    max_seq_len: int = 768  # prompt + reply tokens; longer examples are dropped (counted in the log), not cut
    max_train_examples: int = 0  # 0 = all; a small number makes the tiny test runs
    balance_labels: bool = True  # sample with weight count(label)^-balance_power (no label: weight 1)
    balance_power: float = 1.0  # 1 = every label equally often; 0.5 = halfway to the data's own frequencies
    emphasis_weight: float = 1.0  # loss weight of the tokens of each example's `emphasis` substring
    # --- base model -----------------------------------------------------------------------------
    base: str = "smollm2-135m"  # registry name (pulled GGUF), a .gguf path, or a Hugging Face model directory
    models_dir: str = ""  # where registry names are found (default: <data dir>/models)
    # --- LoRA (peft) ----------------------------------------------------------------------------
    lora_r: int = 16  # rank of the update B·A
    lora_alpha: int = 32  # scale = alpha / r
    lora_dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: [
        "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])  # all linear layers
    lora_top_layers: int = 0  # 0 = every block; N = only the last N blocks: backward stops there (CPU saver)
    # --- optimisation ---------------------------------------------------------------------------
    max_steps: int = 200  # optimizer steps
    batch_size: int = 8  # examples per optimizer step (= micro_batch_size x gradient accumulation)
    micro_batch_size: int = 1  # examples per forward pass; 1 on CPU (no padding waste), more on GPU
    learning_rate: float = 2e-4
    min_lr: float = 2e-5  # cosine decay ends here
    warmup_steps: int = 10
    weight_decay: float = 0.0
    grad_clip: float = 1.0  # 0 = off
    # --- runtime --------------------------------------------------------------------------------
    device: str = "auto"  # auto (cuda if available) | cpu | cuda
    dtype: str = "auto"  # auto: bfloat16 on CUDA when supported, float32 on CPU | float32 | bfloat16 | float16
    gradient_checkpointing: bool = False  # recompute activations in backward: less memory, ~30% more compute
    threads: int = 0  # torch CPU threads; 0 = torch's default
    seed: int = 1337
    # --- logging, evaluation, checkpoints --------------------------------------------------------
    log_interval: int = 5  # steps between log lines
    eval_interval: int = 50  # steps between validation losses (0 = only at the end)
    eval_examples: int = 40  # validation examples used for the loss (the first N, fixed)
    checkpoint_interval: int = 25  # steps between resumable checkpoints (0 = only at the end)
    keep_best: bool = True  # adapter/ holds the lowest-val-loss adapter (else the last one)
    out_dir: str = ""  # runs go under here (default: <data dir>/finetune/runs)
    run_name: str = ""  # default: the config file's stem
    resume: bool = True  # continue from <run>/ckpt when it exists
    export_gguf: bool = True  # write <run>/model.gguf (merged) when the base is a GGUF file
    # --- bookkeeping (filled in by resolve(); not for users) -------------------------------------
    base_path: str = ""
    gguf_file: str = ""


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Defaults <- TOML file <- overrides. Unknown keys are errors (a typo must not train silently)."""
    values: dict[str, Any] = {}
    if path is not None:
        values.update(tomllib.loads(Path(path).read_text(encoding="utf-8")))
        values.setdefault("run_name", Path(path).stem)
    values.update(overrides or {})
    known = {f.name: f for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(f"unknown training config key(s): {', '.join(unknown)}")
    config = TrainConfig()
    for key, value in values.items():
        setattr(config, key, _coerce(value, getattr(config, key)))
    return config


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """`key=value` strings -> dict; values are read as TOML scalars when they parse, else as strings."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep:
            raise ValueError(f"override {pair!r} is not key=value")
        try:
            out[key.strip()] = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            out[key.strip()] = raw
    return out


def _coerce(value: Any, default: Any) -> Any:
    if isinstance(default, bool):
        return value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes")
    if isinstance(default, int) and not isinstance(value, bool):
        return int(value)
    if isinstance(default, float):
        return float(value)
    if isinstance(default, list) and isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return value


def default_data_dir() -> Path:
    from oncolit.settings import Settings
    return Settings().data_dir


def resolve_base(config: TrainConfig) -> tuple[Path, str | None]:
    """(directory, gguf file name or None) of the base model."""
    from synthesis.llm.registry import REGISTRY, resolve
    models_dir = Path(config.models_dir) if config.models_dir else default_data_dir() / "models"
    if config.base in REGISTRY or config.base.endswith(".gguf"):
        path = resolve(config.base, models_dir)
        return path.parent, path.name
    path = Path(config.base).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(f"base model {config.base!r} is neither a registry name, a .gguf file nor a directory")
    return path, None


def run_dir_of(config: TrainConfig) -> Path:
    root = Path(config.out_dir) if config.out_dir else default_data_dir() / "finetune" / "runs"
    return root / (config.run_name or "run")


# ------------------------------------------------------------------------------------------------
# Model and tokenizer
# ------------------------------------------------------------------------------------------------

def pick_device(config: TrainConfig) -> tuple[str, Any]:
    import torch
    device = config.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if config.dtype == "auto":
        dtype = torch.bfloat16 if device == "cuda" and torch.cuda.is_bf16_supported() else torch.float32
    else:
        dtype = getattr(torch, config.dtype)
    return device, dtype


def load_base(directory: Path, gguf_file: str | None, dtype: Any) -> tuple[Any, Any]:
    """Tokenizer and model from a local directory (or a GGUF file in it, dequantised by transformers)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    load: dict[str, Any] = {"local_files_only": True}
    if gguf_file:
        load["gguf_file"] = gguf_file
    tokenizer = AutoTokenizer.from_pretrained(directory, **load)
    model = AutoModelForCausalLM.from_pretrained(directory, dtype=dtype, **load)
    return tokenizer, model


def encode(tokenizer: Any, example: dict[str, Any], emphasis_weight: float = 1.0) -> dict[str, Any]:
    """One example -> token ids of prompt + reply, and a weight per reply token (0 on the prompt).

    The prompt is the chat template applied with `add_generation_prompt`, exactly what the transformers backend
    sends at inference; the reply is the target followed by the template's end-of-turn (the eos token), so the
    model learns to stop. Returns {"ids": list[int], "weights": list[float]} (weights[i] for ids[i]).
    """
    prompt = tokenizer.apply_chat_template(example["messages"], add_generation_prompt=True, tokenize=False)
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    target = example["target"]
    enc = tokenizer(target, add_special_tokens=False, return_offsets_mapping=True)
    reply_ids = list(enc["input_ids"]) + [tokenizer.eos_token_id]
    weights = [1.0] * len(reply_ids)
    emphasis = example.get("emphasis")
    if emphasis and emphasis_weight != 1.0 and emphasis in target:
        lo = target.index(emphasis)
        hi = lo + len(emphasis)
        for i, (start, end) in enumerate(enc["offset_mapping"]):
            if start < hi and end > lo:
                weights[i] = emphasis_weight
    return {"ids": list(prompt_ids) + reply_ids, "weights": [0.0] * len(prompt_ids) + weights}


def collate(batch: list[dict[str, Any]], pad_id: int) -> dict[str, Any]:
    """Left-pad to the longest sequence so every reply ends at the last position; positions count real tokens.

    Shapes: input_ids, attention_mask, position_ids (B, T) long; weights (B, T) float where weights[b, t] is
    the loss weight of predicting input_ids[b, t] from the tokens before it.
    """
    import torch
    T = max(len(x["ids"]) for x in batch)
    ids = torch.full((len(batch), T), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), T), dtype=torch.long)
    weights = torch.zeros((len(batch), T), dtype=torch.float32)
    for b, x in enumerate(batch):
        n = len(x["ids"])
        ids[b, T - n:] = torch.tensor(x["ids"])
        mask[b, T - n:] = 1
        weights[b, T - n:] = torch.tensor(x["weights"])
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    return {"input_ids": ids, "attention_mask": mask, "position_ids": positions, "weights": weights}


def batch_loss(model: Any, batch: dict[str, Any], device: str) -> tuple[Any, float]:
    """Weighted mean cross-entropy over reply tokens, and the number of reply tokens.

    Only the last K positions get logits (`logits_to_keep`), K = the longest reply + 1: with left padding every
    reply sits at the end, and the (T x vocab) logits of the prompt — most of the compute of a 49k-vocab head
    on a short model — are never made.
    """
    import torch
    weights = batch["weights"].to(device)
    has_weight = (weights > 0).any(dim=0).nonzero()
    first = int(has_weight[0]) if len(has_weight) else weights.shape[1] - 1
    keep = weights.shape[1] - first + 1  # logits at positions first-1 .. T-1 predict tokens first .. T-1 (+1 spare)
    out = model(input_ids=batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device),
                position_ids=batch["position_ids"].to(device), logits_to_keep=keep, use_cache=False)
    logits = out.logits[:, :-1, :].float()  # (B, keep-1, V): predictions for tokens first .. T-1
    targets = batch["input_ids"][:, first:].to(device)  # (B, keep-1)
    w = weights[:, first:]
    nll = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                                            reduction="none").view_as(w)
    return (nll * w).sum() / w.sum().clamp(min=1e-8), float((w > 0).sum())


# ------------------------------------------------------------------------------------------------
# Training
# ------------------------------------------------------------------------------------------------

def sample_order(examples: list[dict[str, Any]], n: int, balance: bool, seed: int, power: float = 1.0) -> list[int]:
    """The whole sequence of example indices the run will see, fixed by the seed (so a resumed run sees the
    same stream from where it stopped). Balanced: with replacement, weight count(label)^-power."""
    rng = random.Random(seed)
    if balance and any(ex.get("label") for ex in examples):
        counts: dict[Any, int] = {}
        for ex in examples:
            counts[ex.get("label")] = counts.get(ex.get("label"), 0) + 1
        weights = [counts[ex.get("label")] ** -power for ex in examples]
        return rng.choices(range(len(examples)), weights=weights, k=n)
    order: list[int] = []
    while len(order) < n:  # epochs of shuffled passes
        epoch = list(range(len(examples)))
        rng.shuffle(epoch)
        order += epoch
    return order[:n]


def lr_at(step: int, config: TrainConfig) -> float:
    """Linear warmup then cosine decay to min_lr (nanoGPT's schedule)."""
    if step < config.warmup_steps:
        return config.learning_rate * (step + 1) / max(1, config.warmup_steps)
    progress = (step - config.warmup_steps) / max(1, config.max_steps - config.warmup_steps)
    coeff = 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    return config.min_lr + coeff * (config.learning_rate - config.min_lr)


def evaluate_loss(model: Any, encoded: list[dict[str, Any]], pad_id: int, device: str, micro: int) -> float | None:
    import torch
    if not encoded:
        return None
    model.eval()
    total, count = 0.0, 0.0
    with torch.no_grad():
        for i in range(0, len(encoded), micro):
            loss, n = batch_loss(model, collate(encoded[i:i + micro], pad_id), device)
            total, count = total + float(loss) * n, count + n
    model.train()
    return total / max(count, 1.0)


def train(config: TrainConfig, *, say: Any = None) -> Path:
    """Train (or resume) one run; returns its directory. Saves adapter/, log.jsonl, config.json (and model.gguf)."""
    import numpy as np
    import torch
    import transformers
    from peft import LoraConfig, get_peft_model, get_peft_model_state_dict, set_peft_model_state_dict

    say = say or (lambda message: print(message, file=sys.stderr, flush=True))
    if not config.data_dir:
        raise ValueError("data_dir is required: a dataset built by `oncolit finetune build-data`")
    data_dir = Path(config.data_dir)
    run_dir = run_dir_of(config)
    run_dir.mkdir(parents=True, exist_ok=True)
    base_dir, gguf_file = resolve_base(config)
    config.base_path, config.gguf_file = str(base_dir), gguf_file or ""
    if config.threads:
        torch.set_num_threads(config.threads)
    random.seed(config.seed)
    np.random.seed(config.seed)
    torch.manual_seed(config.seed)
    device, dtype = pick_device(config)

    # resolved config, saved before anything slow so a crashed run still says what it was
    card = data_dir / "card.json"
    resolved = {**dataclasses.asdict(config), "device_resolved": device, "dtype_resolved": str(dtype),
                "data_card_sha256": sha256_of(card) if card.is_file() else None, "code_commit": git_commit(),
                "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                             "peft": __import__("peft").__version__, "python": sys.version.split()[0]}}
    (run_dir / "config.json").write_text(json.dumps(resolved, indent=2) + "\n", encoding="utf-8")

    tokenizer, model = load_base(base_dir, gguf_file, dtype)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    n_layers = int(getattr(model.config, "num_hidden_layers", 0) or 0)
    layers = None
    if config.lora_top_layers and n_layers and config.lora_top_layers < n_layers:
        layers = list(range(n_layers - config.lora_top_layers, n_layers))  # gradients never reach lower blocks
    lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                      target_modules=list(config.target_modules), layers_to_transform=layers, bias="none",
                      task_type="CAUSAL_LM")
    model = get_peft_model(model, lora)
    if config.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    model.to(device)
    model.train()
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    say(f"{config.base}: {total / 1e6:.1f}M parameters, {trainable / 1e6:.2f}M trainable (LoRA r={config.lora_r}) "
        f"on {device} {str(dtype).removeprefix('torch.')}")

    # data: encode once; drop (and count) what does not fit
    def encoded_split(split: str, limit: int = 0) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int]:
        rows = load_split(data_dir, split)
        rows = rows[:limit] if limit else rows
        out, kept, too_long = [], [], 0
        for ex in rows:
            enc = encode(tokenizer, ex, config.emphasis_weight)
            if len(enc["ids"]) > config.max_seq_len:
                too_long += 1
                continue
            out.append(enc)
            kept.append(ex)
        return out, kept, too_long

    train_enc, train_rows, train_long = encoded_split("train", config.max_train_examples)
    val_enc, _val_rows, _ = encoded_split("val", config.eval_examples)
    if not train_enc:
        raise ValueError(f"no training examples fit max_seq_len={config.max_seq_len} in {data_dir}")
    say(f"data: {len(train_enc)} train examples ({train_long} longer than {config.max_seq_len} tokens dropped), "
        f"{len(val_enc)} val; mean length {sum(len(e['ids']) for e in train_enc) / len(train_enc):.0f} tokens")
    order = sample_order(train_rows, config.max_steps * config.batch_size, config.balance_labels, config.seed,
                         config.balance_power)

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay,
                                  betas=(0.9, 0.99))
    step, best_val = 0, float("inf")
    ckpt = run_dir / "ckpt"
    if not (ckpt / "state.pt").is_file() and (run_dir / "ckpt.tmp" / "state.pt").is_file():
        (run_dir / "ckpt.tmp").rename(ckpt)  # a crash between writing the new checkpoint and swapping it in
    if config.resume and (ckpt / "state.pt").is_file():
        state = torch.load(ckpt / "state.pt", map_location="cpu", weights_only=False)
        set_peft_model_state_dict(model, state["adapter"])
        optimizer.load_state_dict(state["optimizer"])
        step, best_val = state["step"], state.get("best_val", float("inf"))
        random.setstate(state["rng_python"])
        torch.set_rng_state(state["rng_torch"])
        say(f"resumed from {ckpt} at step {step}")

    def save_checkpoint() -> None:
        tmp = ckpt.with_name("ckpt.tmp")
        tmp.mkdir(exist_ok=True)
        torch.save({"adapter": get_peft_model_state_dict(model), "optimizer": optimizer.state_dict(), "step": step,
                    "best_val": best_val, "rng_python": random.getstate(), "rng_torch": torch.get_rng_state(),
                    "config": dataclasses.asdict(config)}, tmp / "state.pt")
        if ckpt.exists():
            import shutil
            shutil.rmtree(ckpt)
        tmp.rename(ckpt)

    def log(row: dict[str, Any]) -> None:
        with (run_dir / "log.jsonl").open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(row) + "\n")

    accum = max(1, config.batch_size // config.micro_batch_size)
    started = time.perf_counter()
    window_tokens, window_loss, window_steps, window_start = 0.0, 0.0, 0, time.perf_counter()
    while step < config.max_steps:
        lr = lr_at(step, config)
        for group in optimizer.param_groups:
            group["lr"] = lr
        step_loss = 0.0
        for micro in range(accum):
            at = step * config.batch_size + micro * config.micro_batch_size
            batch = collate([train_enc[i] for i in order[at:at + config.micro_batch_size]], pad_id)
            with torch.autocast(device_type="cuda", dtype=dtype, enabled=device == "cuda" and dtype != torch.float32):
                loss, n_tokens = batch_loss(model, batch, device)
            (loss / accum).backward()
            step_loss += loss.item() / accum
            window_tokens += float(batch["attention_mask"].sum())
        if config.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        window_loss, window_steps = window_loss + step_loss, window_steps + 1
        if step % config.log_interval == 0 or step == config.max_steps:
            seconds = time.perf_counter() - window_start
            row = {"step": step, "loss": round(window_loss / window_steps, 4), "lr": lr,
                   "tokens_per_s": round(window_tokens / seconds, 1), "elapsed_s": round(time.perf_counter() - started, 1)}
            log(row)
            say(f"step {step}/{config.max_steps} loss {row['loss']:.4f} lr {lr:.2e} {row['tokens_per_s']:.0f} tok/s "
                f"{row['elapsed_s']:.0f} s")
            window_tokens, window_loss, window_steps, window_start = 0.0, 0.0, 0, time.perf_counter()
        last = step == config.max_steps
        if val_enc and ((config.eval_interval and step % config.eval_interval == 0) or last):
            val = evaluate_loss(model, val_enc, pad_id, device, config.micro_batch_size)
            log({"step": step, "val_loss": round(val, 4)})
            say(f"step {step}: val loss {val:.4f}")
            if val < best_val:
                best_val = val
                if config.keep_best:
                    model.save_pretrained(run_dir / "adapter")
        if (config.checkpoint_interval and step % config.checkpoint_interval == 0) or last:
            save_checkpoint()
    if not (config.keep_best and val_enc and (run_dir / "adapter").is_dir()):
        model.save_pretrained(run_dir / "adapter")
    tokenizer_info = {"chat_template": getattr(tokenizer, "chat_template", None), "eos_token": tokenizer.eos_token}
    (run_dir / "adapter" / "oncolit_run.json").write_text(json.dumps(
        {"base": config.base, "gguf_file": config.gguf_file, "data_dir": str(data_dir),
         "best_val_loss": None if best_val == float("inf") else round(best_val, 4), "steps": step,
         "tokenizer": tokenizer_info}, indent=2) + "\n", encoding="utf-8")
    say(f"saved adapter to {run_dir / 'adapter'} ({time.perf_counter() - started:.0f} s)")
    if config.export_gguf and gguf_file:
        from synthesis.finetune.export_gguf import export_merged
        out = export_merged(base_dir / gguf_file, run_dir / "adapter", run_dir / "model.gguf")
        say(f"merged GGUF for llama.cpp: {out}")
    return run_dir


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    path = argv.pop(0) if argv and not argv[0].count("=") else None
    train(load_config(path, parse_overrides(argv)))


if __name__ == "__main__":
    main()
