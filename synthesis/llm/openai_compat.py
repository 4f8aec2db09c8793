"""A model behind an OpenAI-compatible HTTP server: vLLM, llama.cpp's server, llama-cpp-python's server, Ollama.

This is how OncoLit scales past one machine (the model on a GPU box, the code unchanged). Servers differ in
how they accept a JSON schema, so `schema_mode` says which dialect to send:

    "json_schema"  OpenAI's {"type": "json_schema", "json_schema": {"name", "schema", "strict"}}
                   (vLLM, llama.cpp server, Ollama)
    "json_object"  {"type": "json_object", "schema": ...} (llama-cpp-python's `python -m llama_cpp.server`)
    "none"         the server cannot constrain output: capability off, callers validate

The httpx client may be passed in (tests, shared pools, custom TLS); one built here is closed by `close()`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from typing import Any, Literal

import httpx

from synthesis.llm.base import BaseLLM, Capabilities, Completion, LLMError, Message

SchemaMode = Literal["json_schema", "json_object", "none"]


class OpenAICompatLLM(BaseLLM):
    """Chat completions over HTTP. `base_url` ends in `/v1`; `model=None` uses the server's first model."""

    def __init__(self, base_url: str | None = None, model: str | None = None, *, api_key: str | None = None,
                 client: httpx.Client | None = None, timeout: float = 300.0,
                 schema_mode: SchemaMode = "json_schema", max_context: int = 4096, streaming: bool = True,
                 name: str | None = None) -> None:
        if schema_mode not in ("json_schema", "json_object", "none"):
            raise LLMError(f"schema_mode must be json_schema, json_object or none, not {schema_mode!r}")
        if client is None and not base_url:
            raise LLMError("the openai backend needs base_url (e.g. http://127.0.0.1:8000/v1) or a client")
        # Requests use absolute URLs and per-request headers, so a client passed in is never modified.
        self.base_url = (base_url or str(client.base_url)).rstrip("/")
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._owns_client = client is None
        self._client = client if client is not None else httpx.Client(timeout=timeout)
        self.schema_mode = schema_mode
        self.model = model or self._first_model()
        self.name = name or f"openai:{self.model}"
        self.capabilities = Capabilities(json_schema=schema_mode != "none", streaming=streaming,
                                         max_context=max_context)

    def models(self) -> list[str]:
        """The model ids the server offers (GET /models)."""
        return [item["id"] for item in self._request("GET", "models").get("data", [])]

    def complete(self, messages: Sequence[Message], *, max_tokens: int = 512, temperature: float = 0.0,
                 seed: int | None = 0, json_schema: dict[str, Any] | None = None,
                 stop: Sequence[str] | None = None) -> Completion:
        body = self._body(messages, max_tokens, temperature, seed, stop)
        if json_schema is not None and self.schema_mode == "json_schema":
            body["response_format"] = {"type": "json_schema",
                                       "json_schema": {"name": "output", "schema": json_schema, "strict": True}}
        elif json_schema is not None and self.schema_mode == "json_object":
            body["response_format"] = {"type": "json_object", "schema": json_schema}
        started = time.perf_counter()
        try:
            data = self._request("POST", "chat/completions", json=body)
        except LLMError as exc:
            if "response_format" in body and "response_format" in str(exc):
                other = "json_object" if self.schema_mode == "json_schema" else "json_schema"
                raise LLMError(f"{exc} -- the server rejected the {self.schema_mode!r} schema dialect; "
                               f"set schema_mode={other!r} (or 'none' if it cannot constrain output)") from exc
            raise
        try:
            text = data["choices"][0]["message"].get("content") or ""
        except (KeyError, IndexError, TypeError, AttributeError):
            raise LLMError(f"{self.name}: the server's reply has no choices[0].message: {str(data)[:300]}") from None
        usage = data.get("usage") or {}
        return Completion(text=text, tokens_in=int(usage.get("prompt_tokens") or 0),
                          tokens_out=int(usage.get("completion_tokens") or 0),
                          seconds=time.perf_counter() - started)

    def stream(self, messages: Sequence[Message], *, max_tokens: int = 512, temperature: float = 0.0,
               seed: int | None = 0, stop: Sequence[str] | None = None) -> Iterator[str]:
        if not self.capabilities.streaming:
            raise LLMError(f"{self.name} was configured without streaming")
        body = {**self._body(messages, max_tokens, temperature, seed, stop), "stream": True}
        try:
            with self._client.stream("POST", self._url("chat/completions"), json=body,
                                     headers=self._headers) as response:
                if response.status_code >= 400:
                    response.read()
                    raise self._status_error(response)
                for line in response.iter_lines():
                    if not line.startswith("data:"):
                        continue  # SSE comments, keep-alives, blank separators
                    payload = line[len("data:"):].strip()
                    if payload == "[DONE]":
                        return
                    piece = _delta_content(payload)
                    if piece:
                        yield piece
        except httpx.HTTPError as exc:
            raise LLMError(f"{self.name}: streaming from {self.base_url} failed: {exc}") from exc

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    def _body(self, messages: Sequence[Message], max_tokens: int, temperature: float, seed: int | None,
              stop: Sequence[str] | None) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model, "messages": [dict(m) for m in messages],
                                "max_tokens": max_tokens, "temperature": temperature}
        if seed is not None:
            body["seed"] = seed
        if stop:
            body["stop"] = list(stop)
        return body

    def _first_model(self) -> str:
        models = self.models()
        if not models:
            raise LLMError(f"the server at {self.base_url} lists no models; pass model= explicitly")
        return models[0]

    def _url(self, path: str) -> str:
        return f"{self.base_url}/{path}"

    def _request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = self._client.request(method, self._url(path), headers=self._headers, **kwargs)
        except httpx.HTTPError as exc:
            raise LLMError(f"cannot reach the model server at {self.base_url}: {exc}") from exc
        if response.status_code >= 400:
            raise self._status_error(response)
        try:
            return response.json()
        except ValueError:
            raise LLMError(f"{response.request.url} returned non-JSON: {response.text[:300]!r}") from None

    @staticmethod
    def _status_error(response: httpx.Response) -> LLMError:
        return LLMError(f"{response.request.url} answered HTTP {response.status_code}: {response.text[:300]}")


def _delta_content(payload: str) -> str | None:
    try:
        choices = json.loads(payload)["choices"]
        return choices[0].get("delta", {}).get("content") if choices else None  # usage-only chunks
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        raise LLMError(f"unreadable streaming chunk from the model server: {payload[:200]!r}") from None
