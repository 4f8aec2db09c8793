"""Fine-tuned findings models: which abstract sentences report results, what they compare, and the direction of
each result. See `runtime` (inference), `encoder` (the artifact format), `merge` (into findings) and
`synthesis/finetune/encoder_train.py` (training)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from synthesis.findings_models.runtime import SHIPPED, Comparison, FindingsModels, Reading

__all__ = ["SHIPPED", "Comparison", "FindingsModels", "Reading", "load_findings_models"]


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
