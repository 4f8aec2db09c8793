"""Fine-tuned models as models like any other: a manifest, `<models dir>/local_models.json`, beside the pulled
registry files.

Each entry names a merged GGUF (served by the default llama.cpp backend) and/or a peft adapter (served by the
transformers backend on the base), with where it came from: the base model, the dataset card, the run config,
and the held-out metrics. `oncolit models list` shows it (`listing`), and `synthesis.llm.registry.resolve` loads it by name
(`resolve_local`), so `--model NAME` works wherever a registry name does.

    {"models": {"smollm2-135m-pubmedqa": {"name": ..., "title": ..., "base": "smollm2-135m",
                "path": ".../model.gguf", "adapter_dir": ".../adapter", "task": "pubmedqa",
                "data": {"dir": ..., "card_sha256": ...}, "run": ..., "metrics": {...},
                "sha256": ..., "size": ..., "created": ...}}}
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from pathlib import Path
from typing import Any

# Reading the manifest is the LLM registry's (it resolves these names); writing it is ours.
from synthesis.llm.local_registry import MANIFEST, get_local_model, list_local_models, manifest_path, resolve_local

__all__ = ["MANIFEST", "SHIPPED", "get_local_model", "install_shipped", "list_local_models", "listing",
           "manifest_path", "register", "register_run", "resolve_local", "shipped_models"]

_NAME = re.compile(r"^[a-z0-9][a-z0-9.\-_]{1,63}$")


def register(models_dir: Path, name: str, *, base: str, task: str, path: Path | None = None,
             adapter_dir: Path | None = None, title: str | None = None, data: dict[str, Any] | None = None,
             run: Path | None = None, metrics: dict[str, Any] | None = None) -> dict[str, Any]:
    """Add or replace one entry (atomic write). A registry name cannot be shadowed."""
    from synthesis.llm.registry import REGISTRY, sha256_file

    if not _NAME.match(name) or name in REGISTRY:
        raise ValueError(f"model name {name!r} must be lower-case letters, digits, . - _ and not a registry name")
    if path is None and adapter_dir is None:
        raise ValueError("register a merged GGUF (path) or an adapter directory, or both")
    entry = {"name": name, "title": title or f"{base} fine-tuned for {task}", "base": base, "task": task,
             "path": str(path) if path else None, "adapter_dir": str(adapter_dir) if adapter_dir else None,
             "data": data or {}, "run": str(run) if run else None, "metrics": metrics or {},
             "sha256": sha256_file(Path(path)) if path else None,
             "size": Path(path).stat().st_size if path else None,
             "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
    target = manifest_path(models_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    document = json.loads(target.read_text(encoding="utf-8")) if target.is_file() else {"models": {}}
    document.setdefault("models", {})[name] = entry
    tmp = target.with_suffix(".tmp")
    tmp.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, target)
    return entry


def register_run(models_dir: Path, run_dir: Path, name: str) -> dict[str, Any]:
    """Register a finished run: its merged GGUF and adapter, base, dataset card and the eval results found."""
    from synthesis.finetune.data import sha256_of

    config = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
    data_dir = Path(config["data_dir"])
    card = json.loads((data_dir / "card.json").read_text(encoding="utf-8")) if (data_dir / "card.json").is_file() else {}
    metrics = {}
    for result in sorted((run_dir / "eval").glob("*.json")) if (run_dir / "eval").is_dir() else []:
        doc = json.loads(result.read_text(encoding="utf-8"))
        m = doc.get("metrics", {})
        keep = {k: m[k] for k in ("accuracy", "macro_f1", "verified_field_rate", "field_f1", "n", "records") if k in m}
        metrics[result.stem] = keep
    gguf = run_dir / "model.gguf"
    return register(models_dir, name, base=config["base"], task=card.get("task", "?"),
                    path=gguf if gguf.is_file() else None,
                    adapter_dir=run_dir / "adapter" if (run_dir / "adapter").is_dir() else None,
                    data={"dir": str(data_dir), "card_sha256": sha256_of(data_dir / "card.json")
                          if (data_dir / "card.json").is_file() else None, "counts": card.get("counts")},
                    run=run_dir, metrics=metrics)


def listing(models_dir: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """Rows for `oncolit models list`: (JSON rows shaped like the registry's, one text line each)."""
    rows, lines = [], []
    for m in list_local_models(models_dir):
        present = bool(m.get("path") and Path(m["path"]).is_file())
        rows.append({"name": m["name"], "title": m["title"], "pulled": present, "size": m.get("size"), "sha_ok": None,
                     "path": m.get("path"), "license": f"derived from {m['base']}", "default": False, "test": False,
                     "fine_tuned": True, "base": m["base"], "task": m["task"], "adapter_dir": m.get("adapter_dir"),
                     "data": m.get("data"), "metrics": m.get("metrics")})
        metrics = m.get("metrics") or {}
        tuned = sorted(k for k in metrics if k.startswith("test-tuned"))
        whole = [k for k in tuned if not re.search(r"-n\d+", k)]  # the whole held-out split, not a --limit slice
        key = (whole or tuned or list(metrics) or [None])[0]
        summary = (f"{key}: " + ", ".join(f"{k} {v}" for k, v in metrics[key].items())) if key else "no eval recorded"
        lines.append(f"{m['name']} (fine-tuned {m['base']} for {m['task']}): "
                     f"{'present' if present else 'MISSING'}, {summary} — {m['title']}")
    return rows, lines


# ------------------------------------------------------------------------------------------------
# Shipped fine-tuned models: small LoRA adapters committed in `shipped/<name>/` with their card
# ------------------------------------------------------------------------------------------------

SHIPPED = Path(__file__).with_name("shipped")
_LISTED = ("accuracy", "macro_f1", "verified_field_rate", "field_f1", "n", "records")


def shipped_models() -> dict[str, dict[str, Any]]:
    """name -> model.json (base, task, training config, data card summary, held-out eval) of each shipped adapter."""
    if not SHIPPED.is_dir():
        return {}
    return {p.parent.name: json.loads(p.read_text(encoding="utf-8")) for p in sorted(SHIPPED.glob("*/model.json"))}


def install_shipped(name: str, models_dir: Path, *, progress: Any = None) -> dict[str, Any]:
    """Pull the base model, merge the shipped adapter into `<models dir>/<name>.gguf`, register it.

    What `oncolit models pull NAME` does for a fine-tuned model: the adapter (a few MB) is in git, the merged
    file (~117 MB) is made here, so the default llama.cpp backend serves it and the transformers backend can
    load base + adapter."""
    from synthesis.finetune.export_gguf import export_merged
    from synthesis.llm.registry import pull

    manifest = shipped_models().get(name)
    if manifest is None:
        raise ValueError(f"no shipped fine-tuned model {name!r}; shipped: {', '.join(shipped_models()) or 'none'}")
    say = progress or (lambda _m: None)
    base = pull(manifest["base"], Path(models_dir), progress=progress).path
    say(f"merging the {name} adapter into {base.name}")
    path = export_merged(base, SHIPPED / name, Path(models_dir) / f"{name}.gguf", name=name)
    metrics = {key: {k: v for k, v in run["metrics"].items() if k in _LISTED}
               for key, run in manifest.get("eval", {}).items()}
    return register(Path(models_dir), name, base=manifest["base"], task=manifest["task"], path=path,
                    adapter_dir=SHIPPED / name, title=f"{manifest['base']} fine-tuned for {manifest['task']} (shipped)",
                    data=manifest.get("data"), metrics=metrics)
