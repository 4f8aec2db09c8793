"""The one `LLM` protocol every generator sits behind, its result types, its errors, and a test double.

Callers (findings extraction, digests, question answering) depend only on this module, so a backend can be
swapped by settings alone: llama.cpp in-process, an OpenAI-compatible server, transformers + LoRA, or none.
Capability flags let a caller choose its path *before* asking: constrained JSON when `json_schema` is true,
otherwise parse-and-validate, and rule extractors when `generation` is false.

    OncoLitError                  (the classes live in ingest.errors, the one error tree)
    └── LLMError                  a model could not be loaded, found, verified or run
        ├── GenerationRefused     the configured backend does not generate (backend "none")
        ├── ModelNotFound         unknown registry name, model not pulled, or a path that is not a model
        └── ModelVerificationError an assembled or stored model file failed its pinned sha256 / size
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, Self, runtime_checkable

from ingest.errors import GenerationRefused, LLMError, ModelNotFound, ModelVerificationError

__all__ = ["LLM", "BaseLLM", "Capabilities", "Completion", "GenerationRefused", "LLMError", "Message",
           "ModelNotFound", "ModelVerificationError", "ScriptedLLM", "truncate_at_stop"]

Message = dict[str, str]
"""A chat message: `{"role": "system" | "user" | "assistant", "content": "..."}` (the OpenAI shape)."""


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do, so callers pick a strategy up front instead of catching failures."""

    json_schema: bool
    """Output can be constrained to a JSON schema (grammar / guided decoding), not just asked for."""
    streaming: bool
    """`stream()` yields text as it is generated."""
    max_context: int
    """Tokens of prompt + completion the loaded model accepts (0 when the backend does not generate)."""
    generation: bool = True
    """False only for the "none" backend: every call refuses, use rule extractors instead."""


@dataclass(frozen=True)
class Completion:
    """One finished generation with the numbers the eval harness and logs need."""

    text: str
    tokens_in: int
    tokens_out: int
    seconds: float

    def json(self) -> Any:
        """The text parsed as JSON; an `LLMError` (not a bare ValueError) when the model produced none."""
        try:
            return json.loads(self.text)
        except json.JSONDecodeError as exc:
            raise LLMError(f"the model did not return valid JSON ({exc.msg} at char {exc.pos}): "
                           f"{self.text[:200]!r}") from None


@runtime_checkable
class LLM(Protocol):
    """A chat model. Implementations hold one loaded model; `close()` releases it."""

    name: str
    capabilities: Capabilities

    def complete(self, messages: Sequence[Message], *, max_tokens: int = 512, temperature: float = 0.0,
                 seed: int | None = 0, json_schema: dict[str, Any] | None = None,
                 stop: Sequence[str] | None = None) -> Completion:
        """Generate one reply. With `json_schema` the reply is constrained to it when
        `capabilities.json_schema` is true; otherwise the schema is only a hint and callers must validate."""
        ...

    def stream(self, messages: Sequence[Message], *, max_tokens: int = 512, temperature: float = 0.0,
               seed: int | None = 0, stop: Sequence[str] | None = None) -> Iterator[str]:
        """Yield the reply in pieces; raises `LLMError` when `capabilities.streaming` is false."""
        ...

    def close(self) -> None:
        """Release the model or connection; the object is unusable afterwards."""
        ...

    def __enter__(self) -> LLM: ...

    def __exit__(self, *exc_info: object) -> None: ...


class BaseLLM:
    """Shared plumbing for the real backends: context-manager support and a refusing `stream()`."""

    name: str = "llm"
    capabilities: Capabilities = Capabilities(json_schema=False, streaming=False, max_context=0)

    def stream(self, messages: Sequence[Message], *, max_tokens: int = 512, temperature: float = 0.0,
               seed: int | None = 0, stop: Sequence[str] | None = None) -> Iterator[str]:
        raise LLMError(f"backend {self.name!r} does not support streaming; call complete() instead")

    def close(self) -> None:
        return None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def truncate_at_stop(text: str, stop: Sequence[str] | None) -> str:
    """Cut `text` at the earliest stop string, for backends that cannot stop on strings themselves."""
    if not stop:
        return text
    cut = min((i for i in (text.find(s) for s in stop if s) if i >= 0), default=-1)
    return text if cut < 0 else text[:cut]


@dataclass
class ScriptedLLM(BaseLLM):
    """TEST DOUBLE — never a production backend. Replies with queued strings (or dicts, sent as JSON) in
    order, and records every call in `calls`, so unit tests of *callers* (extraction, digests) can script
    model behaviour, including malformed output, without loading a model. Not for testing backends.
    """

    replies: deque[str | dict[str, Any]] = field(default_factory=deque)
    capabilities: Capabilities = Capabilities(json_schema=True, streaming=True, max_context=8192)
    name: str = "scripted"
    calls: list[dict[str, Any]] = field(default_factory=list)

    def enqueue(self, *replies: str | dict[str, Any]) -> ScriptedLLM:
        self.replies.extend(replies)
        return self

    def _next(self, messages: Sequence[Message], **kwargs: Any) -> str:
        self.calls.append({"messages": [dict(m) for m in messages], **kwargs})
        if not self.replies:
            raise LLMError("ScriptedLLM has no reply queued for this call; enqueue() one in the test")
        reply = self.replies.popleft()
        return json.dumps(reply) if isinstance(reply, dict) else reply

    def complete(self, messages: Sequence[Message], *, max_tokens: int = 512, temperature: float = 0.0,
                 seed: int | None = 0, json_schema: dict[str, Any] | None = None,
                 stop: Sequence[str] | None = None) -> Completion:
        text = truncate_at_stop(self._next(messages, max_tokens=max_tokens, temperature=temperature, seed=seed,
                                           json_schema=json_schema, stop=stop), stop)
        tokens_in = sum(len(m.get("content", "").split()) for m in messages)
        return Completion(text=text, tokens_in=tokens_in, tokens_out=len(text.split()), seconds=0.0)

    def stream(self, messages: Sequence[Message], *, max_tokens: int = 512, temperature: float = 0.0,
               seed: int | None = 0, stop: Sequence[str] | None = None) -> Iterator[str]:
        text = truncate_at_stop(self._next(messages, max_tokens=max_tokens, temperature=temperature, seed=seed,
                                           json_schema=None, stop=stop), stop)
        yield from _words(text)


def _words(text: str) -> Iterator[str]:
    """Split keeping the spaces, so the joined stream equals the scripted text exactly."""
    start = 0
    for i, char in enumerate(text):
        if char == " " and i > start:
            yield text[start:i]
            start = i
    if start < len(text):
        yield text[start:]
