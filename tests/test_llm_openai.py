"""The OpenAI-compatible backend against a real server on loopback: `python -m llama_cpp.server` + SmolLM2."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest
from pydantic import BaseModel, Field

from synthesis.llm import LLM, LLMError, make_llm
from synthesis.llm.openai_compat import OpenAICompatLLM
from synthesis.llm.registry import SMOLLM2, pull

MESSAGES = [{"role": "user", "content": "Name one drug used to treat EGFR-mutated lung cancer."}]


class Drug(BaseModel):
    name: str = Field(max_length=40)
    approved: bool


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A llama.cpp server with the small model; yields its /v1 base URL and is killed at teardown."""
    models_dir = tmp_path_factory.mktemp("models")
    model = pull(SMOLLM2.name, models_dir).path
    port = _free_port()
    log = (tmp_path_factory.mktemp("server") / "server.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--model_alias", "smollm2",
         "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "1024", "--n_threads", "1",
         "--n_threads_batch", "1"], stdout=log, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited with {process.returncode}; see {log.name}")
            try:
                if httpx.get(f"{base_url}/models", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"llama_cpp.server did not answer within 60 s; see {log.name}")
            time.sleep(0.2)
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@pytest.fixture
def llm(server: str) -> Iterator[OpenAICompatLLM]:
    with make_llm("openai", base_url=server, schema_mode="json_object", max_context=1024) as model:
        yield model


def test_discovers_the_model_and_generates(llm: OpenAICompatLLM) -> None:
    assert isinstance(llm, LLM)
    assert llm.model == "smollm2" and llm.name == "openai:smollm2"
    result = llm.complete(MESSAGES, max_tokens=24)
    assert result.text.strip() and result.tokens_in > 5 and 0 < result.tokens_out <= 24


def test_json_schema_as_llama_cpp_python_expects_it(llm: OpenAICompatLLM) -> None:
    result = llm.complete(MESSAGES, max_tokens=60, json_schema=Drug.model_json_schema())
    assert len(Drug.model_validate_json(result.text).name) <= 40


def test_deterministic_at_temperature_zero(llm: OpenAICompatLLM) -> None:
    texts = {llm.complete(MESSAGES, max_tokens=20, temperature=0, seed=3).text for _ in range(2)}
    assert len(texts) == 1


def test_stream_matches_complete(llm: OpenAICompatLLM) -> None:
    pieces = list(llm.stream(MESSAGES, max_tokens=20))
    assert len(pieces) > 1
    assert "".join(pieces) == llm.complete(MESSAGES, max_tokens=20).text


def test_unsupported_schema_dialect_is_a_clear_error(server: str) -> None:
    """llama-cpp-python's server only knows {"type": "json_object", "schema": ...}; OpenAI's form is refused."""
    with OpenAICompatLLM(server, schema_mode="json_schema") as strict:
        with pytest.raises(LLMError, match="rejected the 'json_schema' schema dialect; set schema_mode='json_object'"):
            strict.complete(MESSAGES, max_tokens=8, json_schema=Drug.model_json_schema())


def test_a_passed_in_client_is_used_and_left_open(server: str) -> None:
    with httpx.Client(base_url=server, timeout=60) as client:
        llm = OpenAICompatLLM(client=client, model="smollm2", schema_mode="none")
        assert llm.capabilities.json_schema is False
        assert llm.complete(MESSAGES, max_tokens=4).tokens_out > 0
        llm.close()
        assert not client.is_closed


def test_no_server_is_a_clear_error() -> None:
    port = _free_port()
    with pytest.raises(LLMError, match="cannot reach the model server"):
        OpenAICompatLLM(f"http://127.0.0.1:{port}/v1")
