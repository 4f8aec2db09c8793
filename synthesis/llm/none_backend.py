"""The "none" backend: OncoLit without a language model, for purely extractive operation.

It exists so "no LLM" is a configured choice with a clear message rather than a missing object: callers see
`capabilities.generation == False` and use the rule extractors (synthesis/rules) instead of calling it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from synthesis.llm.base import BaseLLM, Capabilities, Completion, GenerationRefused, Message

_REFUSAL = ("no language model is configured (LLM backend 'none'): OncoLit runs extractively only. "
            "Use the rule extractors, or choose a backend (llamacpp, openai, transformers) to generate text.")


class NoneLLM(BaseLLM):
    """Refuses every generation; all capabilities are off."""

    name = "none"
    capabilities = Capabilities(json_schema=False, streaming=False, max_context=0, generation=False)

    def complete(self, messages: Sequence[Message], *, max_tokens: int = 512, temperature: float = 0.0,
                 seed: int | None = 0, json_schema: dict[str, Any] | None = None,
                 stop: Sequence[str] | None = None) -> Completion:
        raise GenerationRefused(_REFUSAL)

    def stream(self, messages: Sequence[Message], *, max_tokens: int = 512, temperature: float = 0.0,
               seed: int | None = 0, stop: Sequence[str] | None = None) -> Iterator[str]:
        raise GenerationRefused(_REFUSAL)
