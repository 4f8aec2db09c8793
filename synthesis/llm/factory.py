"""`make_llm`: settings values in, one `LLM` out. The short explicit list of backends lives here.

Backend modules are imported only when chosen, so `none` and `openai` never import torch or llama.cpp.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

from synthesis.llm.base import LLM, LLMError
from synthesis.llm.local_registry import get_local_model
from synthesis.llm.registry import DEFAULT_MODEL, REGISTRY, resolve

B = TypeVar("B", bound=LLM)
BACKENDS = ("llamacpp", "openai", "transformers", "none")
DEFAULT_BACKEND = "llamacpp"


def make_llm(backend: str = DEFAULT_BACKEND, model: str | None = None, models_dir: Path | None = None,
             **options: Any) -> LLM:
    """Build a backend.

    - llamacpp: `model` is a registry name (default qwen2.5-coder-1.5b; must be pulled), a registered
      fine-tuned model (`oncolit models list`; its merged GGUF) or a .gguf path;
      options go to `LlamaCppLLM` (n_ctx defaults to the registry's; `verify_hash=True` re-hashes
      registry files before loading).
    - openai: `model` is the server's model id (None: its first); options `base_url`, `api_key`, `client`,
      `schema_mode`, `max_context`, `timeout`.
    - transformers: `model` is a local HF model dir, a .gguf path, a pulled registry name, or a registered
      fine-tuned model (its base with its LoRA adapter); options
      `adapter_dir`, `gguf_file`, `device`, `dtype`, `threads`.
    - none: no model; every generation refuses (extractive operation).
    """
    if backend == "none":
        from synthesis.llm.none_backend import NoneLLM
        return NoneLLM()
    if backend == "openai":
        from synthesis.llm.openai_compat import OpenAICompatLLM
        return _build(OpenAICompatLLM, model=model, **options)
    if backend == "llamacpp":
        from synthesis.llm.llamacpp import LlamaCppLLM
        name = model or DEFAULT_MODEL
        path = resolve(name, _need_dir(models_dir, name), verify_hash=options.pop("verify_hash", True))
        if name in REGISTRY:
            options.setdefault("n_ctx", REGISTRY[name].n_ctx)
        if not name.endswith(".gguf") and "/" not in name:  # a name (registry or fine-tuned), not a path
            options.setdefault("name", f"llamacpp:{name}")
        return _build(LlamaCppLLM, path, **options)
    if backend == "transformers":
        from synthesis.llm.transformers_backend import TransformersLLM
        if not model:
            raise LLMError("the transformers backend needs model= (a local HF model directory or a .gguf file)")
        target: str | Path = model
        tuned = _fine_tuned(models_dir, model)
        if tuned is not None and tuned.get("adapter_dir"):  # a registered fine-tuned model: its base + adapter
            options.setdefault("adapter_dir", tuned["adapter_dir"])
            options.setdefault("name", f"transformers:{model}")
            model = target = tuned["base"]
        if model in REGISTRY or model.endswith(".gguf"):
            target = resolve(model, _need_dir(models_dir, model), verify_hash=options.pop("verify_hash", False))
        return _build(TransformersLLM, target, **options)
    raise LLMError(f"unknown LLM backend {backend!r}; choose one of {', '.join(BACKENDS)}")


def _fine_tuned(models_dir: Path | None, name: str) -> dict[str, Any] | None:
    if models_dir is None or name in REGISTRY:
        return None
    return get_local_model(models_dir, name)


def _need_dir(models_dir: Path | None, name: str) -> Path:
    if models_dir is None and name in REGISTRY:
        raise LLMError(f"model {name!r} is a registry name, so make_llm needs models_dir to find it")
    return models_dir or Path.cwd()


def _build(cls: type[B], *args: Any, **options: Any) -> B:
    """Turn a misspelt option into a one-line `LLMError` instead of a TypeError from deep inside."""
    try:
        return cls(*args, **options)
    except TypeError as exc:
        if "unexpected keyword argument" in str(exc):
            raise LLMError(f"{cls.__name__}: {exc}; check the LLM options in the settings") from None
        raise
