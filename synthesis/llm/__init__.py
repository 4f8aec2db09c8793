"""Language models behind one `LLM` protocol, their registry of pinned GGUF files, and `make_llm`.

Import backends through `make_llm` (each one's heavy dependency is loaded only when chosen).
"""

from synthesis.llm.base import (
    LLM,
    BaseLLM,
    Capabilities,
    Completion,
    GenerationRefused,
    LLMError,
    Message,
    ModelNotFound,
    ModelVerificationError,
    ScriptedLLM,
)
from synthesis.llm.factory import BACKENDS, DEFAULT_BACKEND, make_llm
from synthesis.llm.registry import DEFAULT_MODEL, REGISTRY, TEST_MODEL, ModelSpec, list_models, pull, resolve, verify

__all__ = [
    "BACKENDS", "DEFAULT_BACKEND", "DEFAULT_MODEL", "LLM", "REGISTRY", "TEST_MODEL", "BaseLLM", "Capabilities",
    "Completion", "GenerationRefused", "LLMError", "Message", "ModelNotFound", "ModelSpec", "ModelVerificationError",
    "ScriptedLLM", "list_models", "make_llm", "pull", "resolve", "verify",
]
