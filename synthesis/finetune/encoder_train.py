"""Fine-tune a findings encoder (LoRA on the packaged MiniLM + heads), nanoGPT-style: every knob is a field of
`EncoderConfig` with its default and a comment, a committed TOML per shipped model overrides them, and the run
folder keeps the resolved config, a log line per eval, a resumable checkpoint and the best model so far.

    python -m synthesis.finetune.encoder_train synthesis/finetune/configs/direction-minilm.toml [--set k=v ...]

Tasks:
  reader     sentence -> result sentence? (2 classes, weighted) + BIO tags for intervention/comparator/outcome
  direction  (I, C, O, evidence sentence) -> increased / decreased / no significant difference; swapping I and C
             flips the label, which doubles the data and teaches the model which arm is which
  answer     (question, evidence) -> yes / no / maybe

CPU by default (`device = "auto"` picks CUDA when present). Rerunning the same command resumes from the last
checkpoint; the run stops at `max_steps` or `time_budget_s`, whichever comes first, and the best checkpoint by the
dev metric is what `export` writes as the artifact (with the confidence temperature fitted on dev).
"""

from __future__ import annotations

import json
import math
import random
import sys
import time
import tomllib
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from synthesis.findings_models.encoder import (
    LORA_TARGETS,
    TAG_LABELS,
    ModelSpec,
    build_module,
    load_base_encoder,
    load_tokenizer,
    save_artifact,
)
from synthesis.findings_models.inputs import Encoded, collate, encode_direction, encode_pair, encode_reader
from synthesis.finetune.encoder_data import DIRECTION_LABELS, read_rows

ANSWER_LABELS = ("yes", "no", "maybe")
RERANK_LABELS = ("irrelevant", "relevant")


@dataclass
class EncoderConfig:
    task: str = "direction"          # reader | direction | answer | rerank
    name: str = "minilm-direction"   # artifact / run folder name
    data_dir: str = ""               # folder with train.jsonl and dev.jsonl (the task's folder from encoder_data)
    runs_dir: str = ""               # default: <data dir>/finetune/runs
    max_len: int = 160               # word pieces per example (direction query + sentence fit in ~110)
    lora_r: int = 16                 # LoRA rank on every linear layer of the 6 blocks (~0.7M parameters)
    lora_alpha: int = 32
    lora_dropout: float = 0.1
    learning_rate: float = 5e-4      # LoRA weights
    head_lr: float = 2e-3            # the heads start from scratch
    weight_decay: float = 0.01
    batch_size: int = 16
    max_steps: int = 600
    warmup_steps: int = 30
    eval_interval: int = 100
    checkpoint_interval: int = 50
    time_budget_s: float = 3600.0    # stop (and keep the best) after this much wall time
    threads: int = 2
    device: str = "auto"             # auto | cpu | cuda
    seed: int = 1337
    swap_augment: bool = True        # direction: also train on (C, I) with the label flipped
    section_dropout: float = 0.3     # reader: share of sentences shown without their section label
    evidence_weight: float = 1.0     # reader: loss weight of the result-sentence head
    tag_weight: float = 1.0          # reader: loss weight of the tagger
    positive_weight: float = 3.0     # reader: class weight of result sentences (~9% of sentences)
    tag_positive_weight: float = 1.0  # reader: class weight of the B-/I- tags against "O" (most tokens are O)
    max_untagged_examples: int = 0   # reader: cap on rows without an evidence label (0 = all)
    max_examples: int = 0            # cap on training rows after shuffling (0 = all)
    layers: int = 0                  # keep only the base's first N transformer blocks (0 = all 6): speed


def load_config(path: str | Path | None, overrides: dict[str, Any] | None = None) -> EncoderConfig:
    values: dict[str, Any] = {}
    if path:
        values.update(tomllib.loads(Path(path).read_text(encoding="utf-8")))
    values.update(overrides or {})
    known = {f.name: f for f in fields(EncoderConfig)}
    unknown = set(values) - set(known)
    if unknown:
        raise ValueError(f"unknown config keys: {', '.join(sorted(unknown))}")
    defaults = EncoderConfig()
    return EncoderConfig(**{k: _coerce(v, getattr(defaults, k)) for k, v in values.items()})


def _coerce(value: Any, default: Any) -> Any:
    if isinstance(default, bool) and isinstance(value, str):
        if value.lower() not in ("true", "false", "1", "0"):
            raise ValueError(f"not a boolean: {value!r}")
        return value.lower() in ("true", "1")
    return type(default)(value)


def run_dir_of(config: EncoderConfig) -> Path:
    """`runs_dir`/<name>, by default <data dir>/finetune/runs/<name> (beside the LLM runs)."""
    if config.runs_dir:
        return Path(config.runs_dir) / config.name
    from synthesis.finetune.train import default_data_dir

    return default_data_dir() / "finetune" / "runs" / config.name


def data_dir_of(config: EncoderConfig) -> Path:
    """An absolute `data_dir` as it is; a relative one under <data dir>/finetune/data (where build-data writes)."""
    path = Path(config.data_dir).expanduser()
    if path.is_absolute():
        return path
    from synthesis.finetune.train import default_data_dir

    return default_data_dir() / "finetune" / "data" / config.data_dir


# ------------------------------------------------------------------------------------------------
# Examples
# ------------------------------------------------------------------------------------------------

@dataclass
class Example:
    enc: Encoded
    label: int  # class index, -100 when this row has no class label (reader rows without evidence labels)
    group: str = ""  # rerank: a query's positive and its negatives share a group (dev MRR is per group)


def examples_of(rows: list[dict[str, Any]], config: EncoderConfig, tokenizer: Any, *, train: bool) -> list[Example]:
    rng = random.Random(config.seed + (0 if train else 1))
    out: list[Example] = []
    for row in rows:
        if config.task == "reader":
            section = "" if (train and rng.random() < config.section_dropout) else row["section"]
            enc = encode_reader(tokenizer, section, row["text"], config.max_len,
                                [tuple(t) for t in row["tags"]])  # type: ignore[misc]
            out.append(Example(enc, -100 if row["evidence"] is None else int(row["evidence"])))
        elif config.task == "direction":
            i, c = row["intervention"], row["comparator"]
            out.append(Example(encode_direction(tokenizer, i, c, row["outcome"], row["sentence"], config.max_len),
                               row["label"]))
            if train and config.swap_augment:
                flipped = {0: 1, 1: 0, 2: 2}[row["label"]]
                out.append(Example(encode_direction(tokenizer, c, i, row["outcome"], row["sentence"],
                                                    config.max_len), flipped))
        elif config.task == "rerank":
            out.append(Example(encode_pair(tokenizer, row["query"], row["passage"], config.max_len),
                               int(row["label"]), row.get("group", "")))
        elif config.task == "answer":
            out.append(Example(encode_pair(tokenizer, row["question"], row["context"], config.max_len),
                               ANSWER_LABELS.index(row["label"])))
        else:
            raise ValueError(f"unknown task {config.task!r}")
    return out


def labels_of(config: EncoderConfig) -> tuple[list[str], list[str]]:
    if config.task == "reader":
        return ["other", "result"], list(TAG_LABELS)
    if config.task == "direction":
        return list(DIRECTION_LABELS), []
    if config.task == "rerank":
        return list(RERANK_LABELS), []
    return list(ANSWER_LABELS), []


def batches(examples: list[Example], batch_size: int, rng: random.Random) -> list[list[Example]]:
    """Shuffled batches of similar lengths (sorted within pools of 50 batches): less padding, same randomness."""
    order = list(range(len(examples)))
    rng.shuffle(order)
    pool = batch_size * 50
    out: list[list[Example]] = []
    for p in range(0, len(order), pool):
        chunk = sorted(order[p:p + pool], key=lambda i: len(examples[i].enc.input_ids))
        out += [[examples[i] for i in chunk[b:b + batch_size]] for b in range(0, len(chunk), batch_size)]
    rng.shuffle(out)
    return out


# ------------------------------------------------------------------------------------------------
# Loss and evaluation
# ------------------------------------------------------------------------------------------------

def loss_of(module: Any, batch: list[Example], config: EncoderConfig, device: str) -> Any:
    import torch
    import torch.nn.functional as F

    inputs = collate([x.enc for x in batch])
    labels = torch.tensor([x.label for x in batch], device=device)
    logits, tags = module(inputs["input_ids"].to(device), inputs["attention_mask"].to(device),
                          inputs["token_type_ids"].to(device))
    if config.task == "reader":
        weight = torch.tensor([1.0, config.positive_weight], device=device)
        loss = torch.zeros((), device=device)
        if (labels != -100).any():
            loss = loss + config.evidence_weight * F.cross_entropy(logits, labels, weight=weight, ignore_index=-100)
        tag_labels = inputs["tag_labels"].to(device)
        if (tag_labels != -100).any():
            tag_class = torch.full((tags.shape[-1],), config.tag_positive_weight, device=device)
            tag_class[0] = 1.0
            loss = loss + config.tag_weight * F.cross_entropy(tags.reshape(-1, tags.shape[-1]),
                                                              tag_labels.reshape(-1), weight=tag_class,
                                                              ignore_index=-100)
        return loss
    return F.cross_entropy(logits, labels)


def predict_logits(module: Any, examples: list[Example], device: str, batch_size: int = 64) -> tuple[Any, list[Any]]:
    """Class logits (n x k) and per-example tag logits (tokens x tags), in example order."""
    import torch

    module.eval()
    out, tag_out = [], []
    with torch.inference_mode():
        for b in range(0, len(examples), batch_size):
            chunk = examples[b:b + batch_size]
            inputs = collate([x.enc for x in chunk])
            logits, tags = module(inputs["input_ids"].to(device), inputs["attention_mask"].to(device),
                                  inputs["token_type_ids"].to(device))
            out.append(logits.float().cpu())
            if tags is not None:
                tag_out += [tags[i, :len(x.enc.input_ids)].float().cpu() for i, x in enumerate(chunk)]
    module.train()
    return torch.cat(out), tag_out


def fit_temperature(logits: Any, labels: list[int]) -> float:
    """The temperature that minimises dev NLL (grid 0.5..5): confidences that mean what they say."""
    import torch
    import torch.nn.functional as F

    y = torch.tensor(labels)
    keep = y != -100
    if not keep.any():
        return 1.0
    grid = [0.5 + 0.05 * i for i in range(91)]
    return min(grid, key=lambda t: F.cross_entropy(logits[keep] / t, y[keep]).item())


def expected_calibration_error(probs: Any, labels: list[int], bins: int = 10) -> float:
    conf, pred = probs.max(1)
    total, ece = 0, 0.0
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        idx = [i for i, c in enumerate(conf.tolist()) if lo < c <= hi and labels[i] != -100]
        if idx:
            acc = sum(int(pred[i] == labels[i]) for i in idx) / len(idx)
            ece += len(idx) * abs(acc - sum(conf[i].item() for i in idx) / len(idx))
            total += len(idx)
    return ece / total if total else 0.0


def evaluate(module: Any, dev: list[Example], config: EncoderConfig, device: str,
             temperature: float = 1.0) -> dict[str, float]:
    """Dev metrics; `score` is the one the best checkpoint is chosen by."""
    from sklearn.metrics import f1_score

    logits, tag_logits = predict_logits(module, dev, device)
    gold = [x.label for x in dev]
    scored = [i for i, g in enumerate(gold) if g != -100]
    pred = logits.argmax(1).tolist()
    out: dict[str, float] = {}
    if scored:
        out["macro_f1"] = float(f1_score([gold[i] for i in scored], [pred[i] for i in scored], average="macro"))
        out["accuracy"] = sum(pred[i] == gold[i] for i in scored) / len(scored)
        probs = (logits / temperature).softmax(1)
        out["ece"] = expected_calibration_error(probs[scored], [gold[i] for i in scored])
    if config.task == "reader":
        tag_gold = [t for x in dev for t in (x.enc.labels or []) if t != -100]
        tag_pred = [int(p) for x, tl in zip(dev, tag_logits) for p, t in zip(tl.argmax(1).tolist(), x.enc.labels or [])
                    if t != -100]
        out["tag_macro_f1"] = float(f1_score(tag_gold, tag_pred, average="macro", labels=list(range(1, 7))))
        out["score"] = out.get("macro_f1", 0.0) + out["tag_macro_f1"]
    elif config.task == "rerank":
        out["mrr"] = group_mrr(logits[:, 1] - logits[:, 0], dev)
        out["score"] = out["mrr"]
    else:
        out["score"] = out.get("macro_f1", 0.0)
    return out


def group_mrr(scores: Any, examples: list[Example]) -> float:
    """Mean reciprocal rank of each group's positive among its negatives (ties count against it)."""
    groups: dict[str, list[tuple[float, int]]] = {}
    for score, x in zip(scores.tolist(), examples):
        groups.setdefault(x.group, []).append((score, x.label))
    ranks = []
    for items in groups.values():
        positives = [s for s, label in items if label == 1]
        if positives:
            ranks.append(1.0 / (1 + sum(1 for s, label in items if label != 1 and s >= positives[0])))
    return sum(ranks) / len(ranks) if ranks else 0.0


# ------------------------------------------------------------------------------------------------
# Training
# ------------------------------------------------------------------------------------------------

def lr_factor(step: int, config: EncoderConfig) -> float:
    if step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.max_steps - config.warmup_steps)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def make_model(config: EncoderConfig) -> tuple[Any, Any]:
    """(module with heads, the peft-wrapped encoder inside it)."""
    import torch
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(config.seed)
    lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                      target_modules=list(LORA_TARGETS), bias="none")
    encoder = get_peft_model(load_base_encoder(config.layers), lora)
    classes, tags = labels_of(config)
    return build_module(encoder, len(classes), len(tags)), encoder


def train(config: EncoderConfig, say: Any = print) -> Path:
    """Train (or resume) and export the best checkpoint; returns the artifact folder."""
    import torch

    torch.set_num_threads(config.threads)
    device = "cuda" if config.device == "auto" and torch.cuda.is_available() else (
        "cpu" if config.device == "auto" else config.device)
    run = run_dir_of(config)
    run.mkdir(parents=True, exist_ok=True)
    (run / "config.json").write_text(json.dumps(asdict(config), indent=2) + "\n", encoding="utf-8")
    tokenizer = load_tokenizer()
    data = data_dir_of(config)
    train_rows, dev_rows = read_rows(data / "train.jsonl"), read_rows(data / "dev.jsonl")
    rng = random.Random(config.seed)
    rng.shuffle(train_rows)
    if config.task == "reader" and config.max_untagged_examples:
        labelled = [r for r in train_rows if r["evidence"] is not None]
        rest = [r for r in train_rows if r["evidence"] is None][:config.max_untagged_examples]
        train_rows = labelled + rest
    if config.max_examples:
        train_rows = train_rows[:config.max_examples]
    train_set = examples_of(train_rows, config, tokenizer, train=True)
    dev_set = examples_of(dev_rows, config, tokenizer, train=False)
    say(f"{config.name}: {len(train_set)} training examples, {len(dev_set)} dev, device {device}")
    module, encoder = make_model(config)
    module.to(device)
    lora_params = [p for n, p in module.named_parameters() if p.requires_grad and "lora_" in n]
    head_params = [p for n, p in module.named_parameters() if n.startswith(("classify.", "tag."))]
    optimizer = torch.optim.AdamW([{"params": lora_params, "lr": config.learning_rate},
                                   {"params": head_params, "lr": config.head_lr}], weight_decay=config.weight_decay)
    step, best, epoch = 0, -1.0, 0
    ckpt = run / "ckpt.pt"
    if ckpt.exists():
        state = torch.load(ckpt, map_location=device, weights_only=False)
        module.load_state_dict(state["module"], strict=False)
        optimizer.load_state_dict(state["optimizer"])
        step, best, epoch = state["step"], state["best"], state["epoch"]
        say(f"resumed at step {step} (best dev score {best:.4f})")
    started = time.monotonic()
    trainable = {n for n, p in module.named_parameters() if p.requires_grad}
    module.train()
    log = (run / "log.jsonl").open("a", encoding="utf-8")
    queue: list[list[Example]] = []
    losses: list[float] = []
    while step < config.max_steps and time.monotonic() - started < config.time_budget_s:
        if not queue:
            queue = batches(train_set, config.batch_size, random.Random(config.seed * 1000 + epoch))
            epoch += 1
        batch = queue.pop()
        for g, base_lr in zip(optimizer.param_groups, (config.learning_rate, config.head_lr)):
            g["lr"] = base_lr * lr_factor(step, config)
        loss = loss_of(module, batch, config, device)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]], 1.0)
        optimizer.step()
        losses.append(loss.item())
        step += 1
        if step % config.eval_interval == 0 or step == config.max_steps:
            metrics = evaluate(module, dev_set, config, device)
            line = {"step": step, "epoch": epoch, "train_loss": sum(losses) / len(losses),
                    "seconds": round(time.monotonic() - started, 1), **metrics}
            losses = []
            log.write(json.dumps(line) + "\n")
            log.flush()
            say(json.dumps(line))
            if metrics["score"] > best:
                best = metrics["score"]
                torch.save({n: p.detach().cpu() for n, p in module.state_dict().items()
                            if n in trainable or n.startswith(("classify.", "tag."))}, run / "best.pt")
        if step % config.checkpoint_interval == 0:
            _save_checkpoint(ckpt, module, optimizer, step, best, epoch, trainable)
    if losses:  # stopped by the time budget between evaluations: score the last step too
        metrics = evaluate(module, dev_set, config, device)
        log.write(json.dumps({"step": step, "epoch": epoch, "train_loss": sum(losses) / len(losses),
                              "seconds": round(time.monotonic() - started, 1), **metrics}) + "\n")
        if metrics["score"] > best:
            best = metrics["score"]
            torch.save({n: p.detach().cpu() for n, p in module.state_dict().items()
                        if n in trainable or n.startswith(("classify.", "tag."))}, run / "best.pt")
    _save_checkpoint(ckpt, module, optimizer, step, best, epoch, trainable)
    log.close()
    if not (run / "best.pt").exists():
        torch.save({n: p.detach().cpu() for n, p in module.state_dict().items()
                    if n in trainable or n.startswith(("classify.", "tag."))}, run / "best.pt")
    return export(config, module, encoder, dev_set, device, say)


def _save_checkpoint(path: Path, module: Any, optimizer: Any, step: int, best: float, epoch: int,
                     trainable: set[str]) -> None:
    import torch

    state = {n: p.detach().cpu() for n, p in module.state_dict().items()
             if n in trainable or n.startswith(("classify.", "tag."))}
    tmp = path.with_suffix(".tmp")
    torch.save({"module": state, "optimizer": optimizer.state_dict(), "step": step, "best": best, "epoch": epoch},
               tmp)
    tmp.replace(path)  # a kill mid-write leaves the previous checkpoint


def export(config: EncoderConfig, module: Any, encoder: Any, dev_set: list[Example], device: str,
           say: Any = print) -> Path:
    """Load the best weights, fit the temperature on dev, write the artifact into <run>/artifact."""
    import torch

    run = run_dir_of(config)
    module.load_state_dict(torch.load(run / "best.pt", map_location=device), strict=False)
    logits, _ = predict_logits(module, dev_set, device)
    labels = [x.label for x in dev_set]
    temperature = fit_temperature(logits, labels)
    metrics = evaluate(module, dev_set, config, device, temperature)
    classes, tags = labels_of(config)
    card = data_card(config)
    extra: dict[str, Any] = {"dev_metrics": {k: round(v, 4) for k, v in metrics.items()}, "config": asdict(config),
                             "data": {k: v for k, v in card.items() if k != "pubmedqa"}}
    if "pubmedqa" in card:  # the answer classifier: which PubMedQA items it saw (evaluation never scores them)
        extra["trained_pmids"] = card["pubmedqa"]["trained_pmids"]
        extra["data"]["pubmedqa_sha256"] = card["pubmedqa"]["sha256"]
    extra["commit"] = card.get("commit")
    spec = ModelSpec(name=config.name, task=config.task, labels=classes, tags=tags, max_len=config.max_len,
                     temperature=round(temperature, 3), extra=extra)
    out = run / "artifact"
    save_artifact(module, encoder, spec, out)
    say(f"exported {out} (temperature {temperature:.2f}; dev {metrics})")
    return out


def data_card(config: EncoderConfig) -> dict[str, Any]:
    """The dataset card beside the training data (the task folder's, else its parent's)."""
    data = data_dir_of(config)
    for path in (data / "card.json", data.parent / "card.json"):
        if path.is_file():
            return dict(json.loads(path.read_text(encoding="utf-8")))
    return {}


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    overrides: dict[str, Any] = {}
    while "--set" in args:
        i = args.index("--set")
        key, _, value = args[i + 1].partition("=")
        overrides[key] = value
        del args[i:i + 2]
    config = load_config(args[0] if args else None, overrides)
    train(config)


if __name__ == "__main__":
    main()
