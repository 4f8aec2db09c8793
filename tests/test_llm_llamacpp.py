"""The default backend with the real SmolLM2 GGUF: text, schema-valid JSON, determinism, streaming, limits."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import BaseModel, Field

from synthesis.llm import LLM, LLMError, make_llm
from synthesis.llm.llamacpp import LlamaCppLLM
from synthesis.llm.registry import SMOLLM2, pull

ABSTRACT = ("In this randomised phase 3 trial, 556 patients with EGFR-mutated advanced non-small-cell lung cancer "
            "received osimertinib plus chemotherapy or osimertinib alone. Median progression-free survival was "
            "25.5 versus 16.7 months (hazard ratio 0.62; 95% CI 0.49-0.79).")
MESSAGES = [{"role": "system", "content": "You summarise oncology trials faithfully."},
            {"role": "user", "content": f"Summarise in one sentence:\n<abstract>\n{ABSTRACT}\n</abstract>"}]


class TrialFacts(BaseModel):
    """The schema sent to the model and the validator of its answer."""

    design: str = Field(max_length=60)
    n_patients: int
    primary_endpoint: str = Field(max_length=60)
    hazard_ratio: float


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("models")
    pull(SMOLLM2.name, directory)
    return directory


@pytest.fixture(scope="module")
def llm(models_dir: Path) -> Iterator[LlamaCppLLM]:
    with make_llm("llamacpp", SMOLLM2.name, models_dir, n_ctx=1024) as model:
        yield model


def test_capabilities_and_protocol(llm: LlamaCppLLM) -> None:
    assert isinstance(llm, LLM)
    assert llm.name == "llamacpp:smollm2-135m"
    assert llm.capabilities.json_schema and llm.capabilities.streaming
    assert llm.capabilities.max_context == 1024


def test_complete_produces_text_with_token_counts(llm: LlamaCppLLM) -> None:
    result = llm.complete(MESSAGES, max_tokens=40)
    assert result.text.strip()
    assert result.tokens_in > 50 and 0 < result.tokens_out <= 40 and result.seconds > 0


def test_json_schema_output_validates(llm: LlamaCppLLM) -> None:
    messages = [MESSAGES[0], {"role": "user", "content": f"Extract the trial facts as JSON.\n<abstract>\n"
                                                          f"{ABSTRACT}\n</abstract>"}]
    result = llm.complete(messages, max_tokens=120, json_schema=TrialFacts.model_json_schema())
    facts = TrialFacts.model_validate_json(result.text)  # grammar-constrained: it always parses
    assert len(facts.design) <= 60


def test_temperature_zero_with_seed_is_deterministic(llm: LlamaCppLLM) -> None:
    first = llm.complete(MESSAGES, max_tokens=30, temperature=0, seed=7)
    llm.complete([{"role": "user", "content": "Say something else entirely."}], max_tokens=10)
    second = llm.complete(MESSAGES, max_tokens=30, temperature=0, seed=7)
    assert first.text == second.text


def test_sampling_with_a_seed_is_reproducible(llm: LlamaCppLLM) -> None:
    runs = [llm.complete(MESSAGES, max_tokens=20, temperature=0.9, seed=123).text for _ in range(2)]
    assert runs[0] == runs[1]


def test_stream_matches_complete(llm: LlamaCppLLM) -> None:
    pieces = list(llm.stream(MESSAGES, max_tokens=30, seed=1))
    assert len(pieces) > 1
    assert "".join(pieces) == llm.complete(MESSAGES, max_tokens=30, seed=1).text


def test_stop_strings_end_generation(llm: LlamaCppLLM) -> None:
    result = llm.complete([{"role": "user", "content": "Count from 1 to 10 separated by commas."}],
                          max_tokens=40, stop=["5"])
    assert "5" not in result.text


def test_prompt_beyond_the_context_is_an_llm_error(llm: LlamaCppLLM) -> None:
    huge = [{"role": "user", "content": "tumour " * 3000}]
    with pytest.raises(LLMError, match="context"):
        llm.complete(huge, max_tokens=8)


def test_a_local_gguf_path_loads_and_close_is_final(models_dir: Path) -> None:
    model = make_llm("llamacpp", str(models_dir / "smollm2-135m.gguf"), n_ctx=256)
    assert model.name == "llamacpp:smollm2-135m"
    model.close()
    with pytest.raises(LLMError, match="closed"):
        model.complete(MESSAGES, max_tokens=4)
