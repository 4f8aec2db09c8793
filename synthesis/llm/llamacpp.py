"""The default backend: a GGUF model run in-process by llama.cpp (`llama-cpp-python`).

In-process means no server to manage and grammar-constrained JSON (llama.cpp turns the JSON schema into a
GBNF grammar, so the output always parses). The model object is not thread-safe, so calls are serialised.

Threads: llama-cpp-python's default runs prompt processing on *every* core. On a busy 2-core machine
(tests, an embedder beside it) the OpenMP threads then wait on each other and a 170-token prompt took
5-8 s instead of 0.7 s with one thread. So both thread counts default to half the cores (1 of 2).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from synthesis.llm.base import BaseLLM, Capabilities, Completion, LLMError, Message


class LlamaCppLLM(BaseLLM):
    """One GGUF file loaded with llama.cpp. `n_ctx` bounds prompt + completion and sizes the KV cache."""

    def __init__(self, model_path: str | os.PathLike[str], *, n_ctx: int = 4096, n_threads: int | None = None,
                 n_threads_batch: int | None = None, n_batch: int = 512, seed: int = 0,
                 chat_format: str | None = None, name: str | None = None, verbose: bool = False) -> None:
        try:
            from llama_cpp import Llama
        except ImportError as exc:
            raise LLMError("the llamacpp backend needs llama-cpp-python: pip install llama-cpp-python") from exc
        path = Path(model_path)
        if not path.is_file():
            raise LLMError(f"no GGUF model at {path}")
        n_threads = n_threads or max(1, (os.cpu_count() or 2) // 2)
        try:
            self._llama = Llama(model_path=str(path), n_ctx=n_ctx, n_threads=n_threads,
                                n_threads_batch=n_threads_batch or n_threads, n_batch=n_batch,
                                seed=seed, chat_format=chat_format, verbose=verbose)
        except (ValueError, RuntimeError) as exc:  # llama-cpp-python reports load failures as ValueError
            raise LLMError(f"llama.cpp could not load {path}: {exc}") from exc
        self._lock = threading.Lock()
        self.name = name or f"llamacpp:{path.stem}"
        self.model_path = path
        self.capabilities = Capabilities(json_schema=True, streaming=True, max_context=self._llama.n_ctx())

    def complete(self, messages: Sequence[Message], *, max_tokens: int = 512, temperature: float = 0.0,
                 seed: int | None = 0, json_schema: dict[str, Any] | None = None,
                 stop: Sequence[str] | None = None) -> Completion:
        kwargs = self._sampling(max_tokens, temperature, seed, stop)
        if json_schema is not None:
            # llama-cpp-python's form: {"type": "json_object", "schema": ...} compiles the schema to a grammar.
            kwargs["response_format"] = {"type": "json_object", "schema": json_schema}
        started = time.perf_counter()
        with self._lock:
            response = self._call(messages, **kwargs)
        usage = response.get("usage") or {}
        text = response["choices"][0]["message"].get("content") or ""
        return Completion(text=text, tokens_in=int(usage.get("prompt_tokens", 0)),
                          tokens_out=int(usage.get("completion_tokens", 0)),
                          seconds=time.perf_counter() - started)

    def stream(self, messages: Sequence[Message], *, max_tokens: int = 512, temperature: float = 0.0,
               seed: int | None = 0, stop: Sequence[str] | None = None) -> Iterator[str]:
        kwargs = self._sampling(max_tokens, temperature, seed, stop)
        with self._lock:  # held until the generator finishes or is closed
            chunks = self._call(messages, stream=True, **kwargs)
            try:
                for chunk in chunks:
                    piece = chunk["choices"][0].get("delta", {}).get("content")
                    if piece:
                        yield piece
            except ValueError as exc:
                raise LLMError(f"{self.name}: {exc}") from exc

    def close(self) -> None:
        llama, self._llama = getattr(self, "_llama", None), None
        if llama is not None:
            llama.close()

    @staticmethod
    def _sampling(max_tokens: int, temperature: float, seed: int | None,
                  stop: Sequence[str] | None) -> dict[str, Any]:
        return {"max_tokens": max_tokens, "temperature": temperature, "seed": seed,
                "stop": list(stop) if stop else None}

    def _call(self, messages: Sequence[Message], **kwargs: Any) -> Any:
        if self._llama is None:
            raise LLMError(f"{self.name} is closed")
        try:
            return self._llama.create_chat_completion(messages=[dict(m) for m in messages], **kwargs)
        except ValueError as exc:  # context overflow, a schema the grammar converter rejects, bad messages
            raise LLMError(f"{self.name}: {exc}") from exc
