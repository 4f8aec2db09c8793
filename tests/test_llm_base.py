"""The protocol's small parts: the scripted test double, the none backend, the factory's refusals."""

from __future__ import annotations

import pytest

from ingest.errors import OncoLitError
from synthesis.llm import (
    LLM,
    Capabilities,
    Completion,
    GenerationRefused,
    LLMError,
    ScriptedLLM,
    make_llm,
)
from synthesis.llm.base import truncate_at_stop

MESSAGES = [{"role": "user", "content": "Summarise the trial."}]


def test_scripted_llm_replays_in_order_and_records_calls() -> None:
    llm = ScriptedLLM().enqueue("first answer", {"n": 556})
    assert isinstance(llm, LLM)
    first = llm.complete(MESSAGES, max_tokens=10)
    second = llm.complete(MESSAGES, json_schema={"type": "object"})
    assert first.text == "first answer"
    assert second.json() == {"n": 556}
    assert llm.calls[0]["max_tokens"] == 10 and llm.calls[1]["json_schema"] == {"type": "object"}
    with pytest.raises(LLMError, match="no reply queued"):
        llm.complete(MESSAGES)


def test_scripted_stream_joins_back_to_the_reply() -> None:
    llm = ScriptedLLM().enqueue("Median PFS was 25.5 months.  Done")
    assert "".join(llm.stream(MESSAGES)) == "Median PFS was 25.5 months.  Done"


def test_completion_json_error_is_an_llm_error() -> None:
    with pytest.raises(LLMError, match="valid JSON"):
        Completion("not json", 1, 1, 0.0).json()


def test_truncate_at_stop_cuts_at_earliest() -> None:
    assert truncate_at_stop("a END b STOP c", ["STOP", "END"]) == "a "
    assert truncate_at_stop("abc", ["zz"]) == "abc"
    assert truncate_at_stop("abc", None) == "abc"


def test_none_backend_refuses_with_a_clear_message() -> None:
    llm = make_llm("none")
    assert llm.capabilities == Capabilities(json_schema=False, streaming=False, max_context=0, generation=False)
    with pytest.raises(GenerationRefused, match="extractive") as info:
        llm.complete(MESSAGES)
    assert isinstance(info.value, OncoLitError)
    with pytest.raises(GenerationRefused):
        list(llm.stream(MESSAGES))


def test_unknown_backend_and_bad_option_are_clear_errors(tmp_path) -> None:
    with pytest.raises(LLMError, match="choose one of llamacpp, openai, transformers, none"):
        make_llm("gpt-9", models_dir=tmp_path)
    with pytest.raises(LLMError, match="unexpected keyword argument"):
        make_llm("openai", base_url="http://127.0.0.1:9/v1", model="m", temprature=0.5)
    with pytest.raises(LLMError, match="not pulled"):
        make_llm("llamacpp", "smollm2-135m", models_dir=tmp_path)
