"""Fine-tuned findings models: which abstract sentences report results, what they compare, and the direction of
each result. See `runtime` (inference), `encoder` (the artifact format), `merge` (into findings) and
`synthesis/finetune/encoder_train.py` (training)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from synthesis.findings_models.answer_head import AnswerHead
from synthesis.findings_models.answerer import AnswerModel
from synthesis.findings_models.runtime import SHIPPED, Comparison, FindingsModels, Reading

__all__ = ["SHIPPED", "Comparison", "FindingsModels", "Reading", "load_answer_model", "load_findings_models"]


@lru_cache(maxsize=4)
def load_findings_models(choice: str = "shipped", threads: int | None = None) -> FindingsModels | None:
    """The models a `findings.models` setting names, loaded once per process; None for "none", and None (with
    the reason logged once) when the shipped artifacts are missing, so extraction falls back to the rules."""
    import logging

    if choice == "none":
        return None
    folder = SHIPPED if choice == "shipped" else Path(choice).expanduser()
    if not FindingsModels.available(folder):
        if choice != "shipped":
            raise FileNotFoundError(f"findings.models={choice!r}: no minilm-reader/ and minilm-direction/ "
                                    "artifacts there (train them: see synthesis/finetune/README.md)")
        logging.getLogger(__name__).warning("the shipped findings models are missing from %s; rules only", folder)
        return None
    return FindingsModels.load(folder, threads)


@lru_cache(maxsize=4)
def load_answer_model(choice: str = "shipped", threads: int | None = None) -> AnswerModel | AnswerHead | None:
    """The yes/no/maybe answer classifier beside the findings models (a fine-tuned `minilm-answer` when shipped,
    else the `answer-head` over the findings models), or None (not installed, or "none")."""
    if choice == "none":
        return None
    folder = SHIPPED if choice == "shipped" else Path(choice).expanduser()
    if AnswerModel.available(folder):
        return AnswerModel.load(folder, threads)
    models = load_findings_models(choice, threads)
    if models is not None and AnswerHead.available(folder / "answer-head"):
        return AnswerHead.load(folder / "answer-head", models)
    return None


def shipped_artifacts(folder: Path | None = None) -> dict[str, dict]:  # type: ignore[type-arg]
    """name -> model.json of every findings model shipped in the package (reader, direction, answer)."""
    import json

    root = folder or SHIPPED
    if not root.is_dir():
        return {}
    return {p.parent.name: json.loads(p.read_text(encoding="utf-8")) for p in sorted(root.glob("*/model.json"))}


def artifact_listing(folder: Path | None = None) -> tuple[list[dict], list[str]]:  # type: ignore[type-arg]
    """Rows and text lines for `oncolit models list`: shipped encoders, their size and held-out metrics."""
    root = folder or SHIPPED
    rows, lines = [], []
    for name, spec in shipped_artifacts(root).items():
        size = sum(p.stat().st_size for p in (root / name).iterdir() if p.is_file())
        evals = spec.get("eval", {})
        rows.append({"name": name, "title": f"{spec['base']} fine-tuned for {spec['task']} (findings model, shipped)",
                     "pulled": True, "size": size, "sha_ok": None, "path": str(root / name),
                     "license": f"derived from {spec['base']}", "default": True, "test": False, "fine_tuned": True,
                     "kind": "encoder", "base": spec["base"], "task": spec["task"], "data": spec.get("data"),
                     "metrics": {k: v.get("metrics") for k, v in evals.items()}})
        summary = "; ".join(f"{k}: " + ", ".join(f"{m} {v}" for m, v in (run.get("metrics") or {}).items())
                            for k, run in evals.items()) or "no eval recorded"
        lines.append(f"{name} (findings model: {spec['task']}, {size / 1e6:.1f} MB, in the package): {summary}")
    return rows, lines
