"""A model run by Hugging Face transformers, optionally with a LoRA adapter (peft): the fine-tuning path.

Adapters trained by `synthesis/finetune` are applied here without merging, so one base model on disk serves
several adapters. The base is a local HF model directory, or a GGUF file (`gguf_file=`, dequantised to fp32
by transformers — about 5x slower than llama.cpp, but trainable). Output is not grammar-constrained here, so
`json_schema` is a capability this backend lacks: callers parse and validate. Offline only: nothing is
fetched from a hub (`local_files_only=True`).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from synthesis.llm.base import BaseLLM, Capabilities, Completion, LLMError, Message, truncate_at_stop


class TransformersLLM(BaseLLM):
    """`model_dir` (+ optional `gguf_file` inside it, or a .gguf path) and an optional peft `adapter_dir`."""

    def __init__(self, model: str | os.PathLike[str], *, gguf_file: str | None = None,
                 adapter_dir: str | os.PathLike[str] | None = None, device: str = "cpu",
                 dtype: str | None = None, threads: int | None = None, name: str | None = None) -> None:
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError as exc:
            raise LLMError("the transformers backend needs torch and transformers installed") from exc
        path = Path(model)
        if path.is_file() and path.suffix == ".gguf" and gguf_file is None:
            path, gguf_file = path.parent, path.name
        if not path.is_dir():
            raise LLMError(f"{path} is not a model directory (nor a .gguf file)")
        if threads:
            torch.set_num_threads(threads)
        load: dict[str, Any] = {"local_files_only": True}
        if gguf_file:
            load["gguf_file"] = gguf_file
        try:
            self._tokenizer = AutoTokenizer.from_pretrained(path, **load)
            model_obj = AutoModelForCausalLM.from_pretrained(
                path, dtype=getattr(torch, dtype) if dtype else "auto", **load)
        except (OSError, ValueError, ImportError) as exc:
            raise LLMError(f"transformers could not load {path / (gguf_file or '')}: {exc}") from exc
        if adapter_dir is not None:
            model_obj = _with_adapter(model_obj, Path(adapter_dir))
        self._model = model_obj.to(device).eval()
        self._torch = torch
        self._device = device
        self._lock = threading.Lock()
        self.adapter_dir = Path(adapter_dir) if adapter_dir is not None else None
        suffix = f"+{self.adapter_dir.name}" if self.adapter_dir else ""
        self.name = name or f"transformers:{Path(gguf_file).stem if gguf_file else path.name}{suffix}"
        max_context = int(getattr(self._model.config, "max_position_embeddings", 0) or 2048)
        self.capabilities = Capabilities(json_schema=False, streaming=False, max_context=max_context)

    def complete(self, messages: Sequence[Message], *, max_tokens: int = 512, temperature: float = 0.0,
                 seed: int | None = 0, json_schema: dict[str, Any] | None = None,
                 stop: Sequence[str] | None = None) -> Completion:
        # json_schema is not enforced (capabilities.json_schema is False); callers put it in the prompt.
        torch = self._torch
        input_ids = self._encode(messages)
        sampling: dict[str, Any] = {"do_sample": False}
        if temperature > 0:
            sampling = {"do_sample": True, "temperature": temperature, "top_p": 1.0, "top_k": 0}
        started = time.perf_counter()
        with self._lock, torch.inference_mode():
            if seed is not None:
                torch.manual_seed(seed)
            output = self._model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                                          max_new_tokens=max_tokens,
                                          pad_token_id=self._tokenizer.pad_token_id
                                          if self._tokenizer.pad_token_id is not None
                                          else self._tokenizer.eos_token_id, **sampling)
        new_tokens = output[0, input_ids.shape[1]:]
        text = truncate_at_stop(self._tokenizer.decode(new_tokens, skip_special_tokens=True), stop)
        return Completion(text=text, tokens_in=int(input_ids.shape[1]), tokens_out=int(new_tokens.shape[0]),
                          seconds=time.perf_counter() - started)

    def close(self) -> None:
        self._model = None

    def _encode(self, messages: Sequence[Message]) -> Any:
        if self._model is None:
            raise LLMError(f"{self.name} is closed")
        chat = [dict(m) for m in messages]
        if getattr(self._tokenizer, "chat_template", None):
            ids = self._tokenizer.apply_chat_template(chat, add_generation_prompt=True, return_tensors="pt",
                                                      return_dict=True)["input_ids"]
        else:  # a base model without a template: a plain transcript ending where the assistant speaks
            text = "".join(f"{m['role']}: {m['content']}\n" for m in chat) + "assistant:"
            ids = self._tokenizer(text, return_tensors="pt")["input_ids"]
        return ids.to(self._device)


def _with_adapter(model: Any, adapter_dir: Path) -> Any:
    try:
        from peft import PeftModel
    except ImportError as exc:
        raise LLMError("a LoRA adapter needs peft: pip install peft") from exc
    if not (adapter_dir / "adapter_config.json").is_file():
        raise LLMError(f"{adapter_dir} is not a peft adapter directory (no adapter_config.json)")
    try:
        return PeftModel.from_pretrained(model, adapter_dir, is_trainable=False)
    except (OSError, ValueError, KeyError) as exc:
        raise LLMError(f"could not apply the adapter in {adapter_dir}: {exc}") from exc
