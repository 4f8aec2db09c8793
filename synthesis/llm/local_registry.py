"""Reading the manifest of fine-tuned models, `<models dir>/local_models.json`, so that `resolve` and
`make_llm` load a registered fine-tuned model by name like a registry model.

The manifest is written by `synthesis.finetune.local_models` (`register`, `install_shipped`), which sits
above this package: the LLM layer only reads it, so the two do not import each other.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

MANIFEST = "local_models.json"


def manifest_path(models_dir: Path) -> Path:
    return Path(models_dir) / MANIFEST


def list_local_models(models_dir: Path) -> list[dict[str, Any]]:
    """The registered fine-tuned models (empty when there is no manifest)."""
    path = manifest_path(models_dir)
    if not path.is_file():
        return []
    return list(json.loads(path.read_text(encoding="utf-8")).get("models", {}).values())


def get_local_model(models_dir: Path, name: str) -> dict[str, Any] | None:
    return next((m for m in list_local_models(models_dir) if m["name"] == name), None)


def resolve_local(models_dir: Path, name: str) -> Path | None:
    """The merged GGUF of a registered fine-tuned model, or None when `name` is not one."""
    entry = get_local_model(models_dir, name)
    if entry is None or not entry.get("path"):
        return None
    return Path(entry["path"])
